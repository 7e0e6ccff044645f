//! [`ServerConnection`]: one live MCP connection, over a server process's stdio or to a
//! remote server over HTTP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{ClientJsonRpcMessage, ProtocolVersion, ServerJsonRpcMessage};
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::Transport;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient};
use serde_json::Value;

use super::calls::CallsInFlight;
use super::era::{self, Era, ProbeOutcome, PROBE_ID_PREFIX};
use super::handler::{ConnectionHandler, Listening};
use super::process::{ServerPipes, ServerProcess, ShutdownPolicy};
use super::remote::{self, SseTransport};
use super::upstream::Upstream;
use super::{lock, ClientError, ConnectHooks, ConnectionState};
use crate::config::{ProtocolMode, RemoteServer, RemoteTransport, ServerConfig};

/// Tells connections apart (a reconnect to a remote server has no new pid to show it).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One live MCP connection: to a server process over its stdio, or to a remote server.
///
/// Dropping it kills the process group; call [`ServerConnection::close`] to end the server
/// the way the spec asks (stdin first) and wait for it to exit.
pub struct ServerConnection {
    pub(super) name: Arc<str>,
    pub(super) config: ServerConfig,
    pub(super) service: tokio::sync::Mutex<Option<RunningService<RoleClient, ConnectionHandler>>>,
    pub(super) peer: rmcp::Peer<RoleClient>,
    pub(super) state: Mutex<ConnectionState>,
    pub(super) upstream: Upstream,
    pub(super) id: u64,
    pub(super) tools_generation: Arc<AtomicU64>,
    pub(super) calls: Arc<CallsInFlight>,
    /// The `subscriptions/listen` of a 2026-07-28 connection, ended before it closes.
    pub(super) listening: Mutex<Option<Listening>>,
    /// One `subscriptions/listen` per resource subscribed to on a 2026-07-28 connection.
    pub(super) resource_listens: Mutex<std::collections::HashMap<String, Listening>>,
    /// Our side of the connection, which follows those subscriptions.
    pub(super) handler: ConnectionHandler,
}

impl std::fmt::Debug for ServerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConnection")
            .field("name", &self.name)
            .field("pid", &self.upstream.pid())
            .field("state", &self.state())
            .finish()
    }
}

/// Which lifecycle opens a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    Initialize,
    Discover,
}

impl Handshake {
    fn of(era: Era) -> Self {
        match era {
            Era::Legacy => Handshake::Initialize,
            Era::Modern => Handshake::Discover,
        }
    }

    fn method(self) -> &'static str {
        match self {
            Handshake::Initialize => "initialize",
            Handshake::Discover => "server/discover",
        }
    }

    fn era(self) -> Era {
        match self {
            Handshake::Initialize => Era::Legacy,
            Handshake::Discover => Era::Modern,
        }
    }

    fn lifecycle(self) -> ClientLifecycleMode {
        match self {
            Handshake::Initialize => ClientLifecycleMode::Initialize,
            Handshake::Discover => ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        }
    }
}

/// A failed start: the error, and whether the server answered the handshake with a refusal
/// (so the era we assumed may be wrong) rather than dying or staying silent.
struct StartFailure {
    error: ClientError,
    refused: bool,
}

impl From<ClientError> for StartFailure {
    fn from(error: ClientError) -> Self {
        StartFailure {
            error,
            refused: false,
        }
    }
}

/// The transport of a stdio connection: rmcp's line transport over the process's pipes,
/// minus late answers to the era probe's own requests (which rmcp would take for a conflict),
/// and with progress delivered as it is read (see [`DeliversInOrder`]).
struct PipeTransport {
    lines: AsyncRwTransport<
        RoleClient,
        tokio::io::BufReader<super::process::WatchedStdout>,
        tokio::process::ChildStdin,
    >,
    progress_to: Option<Arc<CallsInFlight>>,
    /// The server's name and where its log messages are announced.
    logs_to: Option<(Arc<str>, super::ServerEvents)>,
}

/// A transport that delivers `notifications/progress` to the calls in flight, and announces
/// `notifications/message` (logs), itself, in the order it reads them. Why: rmcp runs each
/// notification's handler in a task of its own and hands a response to its caller at once, so
/// under load a call's last progress reached the call after its result (and its client after
/// the result too, which drops it), and the logs a call wrote before its answer missed the
/// relay that sends them before the answer.
trait DeliversInOrder {
    /// From now on, progress goes to `calls` as it is read.
    fn deliver_progress_to(&mut self, _calls: Arc<CallsInFlight>) {}
    /// From now on, log messages are announced on `events` as they are read.
    fn announce_logs_to(&mut self, _server: Arc<str>, _events: super::ServerEvents) {}
}

impl DeliversInOrder for PipeTransport {
    fn deliver_progress_to(&mut self, calls: Arc<CallsInFlight>) {
        self.progress_to = Some(calls);
    }
    fn announce_logs_to(&mut self, server: Arc<str>, events: super::ServerEvents) {
        self.logs_to = Some((server, events));
    }
}

/// Remote transports: progress through rmcp's handler (a remote server's responses and
/// notifications may travel on different streams anyway).
impl DeliversInOrder for SseTransport {}
impl DeliversInOrder for rmcp::transport::StreamableHttpClientTransport<reqwest::Client> {}
impl DeliversInOrder
    for rmcp::transport::StreamableHttpClientTransport<
        rmcp::transport::auth::AuthClient<reqwest::Client>,
    >
{
}

fn is_probe_answer(message: &ServerJsonRpcMessage) -> bool {
    let id = match message {
        ServerJsonRpcMessage::Response(r) => Some(&r.id),
        ServerJsonRpcMessage::Error(e) => e.id.as_ref(),
        _ => None,
    };
    matches!(id, Some(rmcp::model::NumberOrString::String(s)) if s.starts_with(PROBE_ID_PREFIX))
}

impl PipeTransport {
    fn new(pipes: ServerPipes) -> Self {
        PipeTransport {
            lines: AsyncRwTransport::new_client(pipes.stdout, pipes.stdin),
            progress_to: None,
            logs_to: None,
        }
    }
}

impl Transport<RoleClient> for PipeTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.lines.send(item)
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        loop {
            let message = self.lines.receive().await?;
            if is_probe_answer(&message) {
                continue;
            }
            if let ServerJsonRpcMessage::Notification(n) = &message {
                use rmcp::model::ServerNotification as N;
                match (&n.notification, &self.progress_to, &self.logs_to) {
                    (N::ProgressNotification(p), Some(calls), _) => {
                        calls.progress(p.params.clone());
                        continue;
                    }
                    #[allow(deprecated)] // logging: deprecated for 2026-07-28, still part of it
                    (N::LoggingMessageNotification(m), _, Some((server, events))) => {
                        super::handler::log_arrived(server, events, m.params.clone());
                        continue;
                    }
                    _ => {}
                }
            }
            return Some(message);
        }
    }

    fn close(&mut self) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        self.lines.close()
    }
}

/// A handshake rmcp reported as failed, as our error: what the server did, how its process
/// ended if it did, what it wrote; `refused` if it answered (the era may be wrong).
async fn refusal(
    name: &str,
    method: &str,
    e: ClientInitializeError,
    upstream: &Upstream,
) -> StartFailure {
    let refused = matches!(
        e,
        ClientInitializeError::JsonRpcError(_)
            | ClientInitializeError::NoCompatibleProtocolVersion { .. }
            | ClientInitializeError::ExpectedInitResult(_)
            | ClientInitializeError::UncorrelatedErrorResponse { .. }
    );
    let what = match &e {
        ClientInitializeError::ConnectionClosed(_) => {
            format!("{} before answering {method}", upstream.closed())
        }
        ClientInitializeError::TransportError { error, .. } if upstream.is_remote() => {
            let why = remote::explain(name, error.error.as_ref());
            let why = why.as_deref().unwrap_or("the connection failed");
            format!("{method} ({}): {why}", upstream.endpoint())
        }
        other => format!("{method}: {other}"),
    };
    // A process that is exiting says how; give it a moment to.
    upstream.settle(Duration::from_millis(200)).await;
    StartFailure {
        error: ClientError::Handshake {
            server: name.to_string(),
            message: format!("{what}{}", upstream.describe()),
        },
        refused,
    }
}

/// `Ready`, with what the server told about itself.
fn ready_state(peer: &rmcp::Peer<RoleClient>) -> ConnectionState {
    let info = peer.peer_info();
    let server_info = info.as_ref().and_then(|i| i.server_info.as_ref());
    ConnectionState::Ready {
        protocol_version: info
            .as_ref()
            .map(|i| i.protocol_version.to_string())
            .unwrap_or_else(|| "unknown".into()),
        server_name: server_info.map(|s| s.name.clone()),
        server_version: server_info.map(|s| s.version.clone()),
    }
}

/// What we tell servers about ourselves.
fn client_info() -> Value {
    serde_json::json!({"name": "mcp-registry", "version": env!("CARGO_PKG_VERSION")})
}

impl ServerConnection {
    /// Spawns the server and completes the handshake within the configured connect timeout.
    pub async fn connect(name: &str, config: &ServerConfig) -> Result<Self, ClientError> {
        Self::connect_with(name, config, ConnectHooks::default()).await
    }

    /// Like [`ServerConnection::connect`], reporting the server's notifications to, and
    /// relaying its requests through, `hooks`.
    pub async fn connect_with(
        name: &str,
        config: &ServerConfig,
        hooks: ConnectHooks,
    ) -> Result<Self, ClientError> {
        let started = Instant::now();
        let config = &config.expanded(name)?;
        let deadline = tokio::time::Instant::now() + config.connect_timeout;
        let conn = match (&config.remote, config.protocol) {
            (Some(remote), protocol) => {
                Self::start_remote(name, config, remote, protocol, &hooks, deadline).await
            }
            (None, protocol) => Self::start_stdio(name, config, protocol, &hooks, deadline).await,
        }
        .map_err(|f| f.error)?;
        tracing::debug!(server = %name, pid = ?conn.upstream.pid(), state = ?conn.state(), elapsed = ?started.elapsed(), "connected");
        Ok(conn)
    }

    /// A stdio server, in the era `protocol` asks for.
    async fn start_stdio(
        name: &str,
        config: &ServerConfig,
        protocol: ProtocolMode,
        hooks: &ConnectHooks,
        deadline: tokio::time::Instant,
    ) -> Result<Self, StartFailure> {
        match protocol {
            ProtocolMode::Legacy => {
                Self::start(name, config, hooks, Handshake::Initialize, deadline).await
            }
            ProtocolMode::Modern => {
                Self::start(name, config, hooks, Handshake::Discover, deadline).await
            }
            ProtocolMode::Auto => Self::start_auto(name, config, hooks, deadline).await,
        }
    }

    /// A remote server. `"protocol": "auto"` opens with the era remembered for it, else
    /// `initialize` (what every remote server spoke before 2026-07-28), and tries the other
    /// handshake once if the server refuses the first: there is no cheap probe over HTTP.
    async fn start_remote(
        name: &str,
        config: &ServerConfig,
        remote: &RemoteServer,
        protocol: ProtocolMode,
        hooks: &ConnectHooks,
        deadline: tokio::time::Instant,
    ) -> Result<Self, StartFailure> {
        let first = match protocol {
            ProtocolMode::Legacy => Handshake::Initialize,
            ProtocolMode::Modern => Handshake::Discover,
            ProtocolMode::Auto => era::remembered(config)
                .map(Handshake::of)
                .unwrap_or(Handshake::Initialize),
        };
        let open = |handshake| Self::open_remote(name, config, remote, hooks, handshake, deadline);
        let (conn, handshake) = match open(first).await {
            Ok(conn) => (conn, first),
            Err(f) if f.refused && protocol == ProtocolMode::Auto => {
                let other = match first {
                    Handshake::Initialize => Handshake::Discover,
                    Handshake::Discover => Handshake::Initialize,
                };
                tracing::info!(server = name, error = %f.error, "refused {}; trying {}", first.method(), other.method());
                (open(other).await?, other)
            }
            Err(f) => return Err(f),
        };
        if protocol == ProtocolMode::Auto {
            era::remember(config, handshake.era());
        }
        Ok(conn)
    }

    /// Opens `remote`'s transport and runs `handshake` on it.
    async fn open_remote(
        name: &str,
        config: &ServerConfig,
        remote: &RemoteServer,
        hooks: &ConnectHooks,
        handshake: Handshake,
        deadline: tokio::time::Instant,
    ) -> Result<Self, StartFailure> {
        let upstream = Upstream::Remote(remote::shown_url(&remote.url));
        match remote.transport {
            RemoteTransport::StreamableHttp if remote.oauth.is_some() => {
                let owner = hooks.sign_in_as.as_deref();
                let signed_in = remote::signed_in_streamable_http(name, remote, owner);
                let transport = match tokio::time::timeout_at(deadline, signed_in).await {
                    Ok(transport) => transport?,
                    Err(_) => {
                        return Err(ClientError::ConnectTimeout {
                            server: name.into(),
                            timeout: config.connect_timeout,
                            details: "; its authorization server did not answer".into(),
                        }
                        .into())
                    }
                };
                Self::handshake(
                    name, config, hooks, upstream, transport, handshake, deadline,
                )
                .await
            }
            RemoteTransport::StreamableHttp => {
                let transport = remote::streamable_http(name, remote)?;
                Self::handshake(
                    name, config, hooks, upstream, transport, handshake, deadline,
                )
                .await
            }
            RemoteTransport::Sse => {
                let transport =
                    match tokio::time::timeout_at(deadline, SseTransport::connect(name, remote))
                        .await
                    {
                        Ok(opened) => opened?,
                        Err(_) => {
                            return Err(ClientError::ConnectTimeout {
                                server: name.into(),
                                timeout: config.connect_timeout,
                                details: String::new(),
                            }
                            .into())
                        }
                    };
                Self::handshake(
                    name, config, hooks, upstream, transport, handshake, deadline,
                )
                .await
            }
        }
    }

    /// `"protocol": "auto"`: the era remembered for this server, else a probe.
    async fn start_auto(
        name: &str,
        config: &ServerConfig,
        hooks: &ConnectHooks,
        deadline: tokio::time::Instant,
    ) -> Result<Self, StartFailure> {
        if let Some(era) = era::remembered(config) {
            match Self::start(name, config, hooks, Handshake::of(era), deadline).await {
                Ok(conn) => return Ok(conn),
                Err(f) if f.refused => {
                    tracing::info!(server = name, error = %f.error, "the server no longer speaks the protocol era remembered for it; probing again");
                    era::forget(config);
                }
                Err(f) => return Err(f),
            }
        }
        let (process, mut pipes) = ServerProcess::spawn(name, config)?;
        let probed =
            tokio::time::timeout_at(deadline, era::probe(&mut pipes, &client_info())).await;
        let conn = match probed {
            Err(_) => {
                return Err(ClientError::ConnectTimeout {
                    server: name.into(),
                    timeout: config.connect_timeout,
                    details: format!(
                        "{}; it answered neither server/discover nor ping (a server that \
                         answers nothing before initialize needs \"protocol\": \"legacy\")",
                        process.describe()
                    ),
                }
                .into())
            }
            Ok(ProbeOutcome::Modern) => {
                let conn = Self::handshake(
                    name,
                    config,
                    hooks,
                    Upstream::Process(process),
                    PipeTransport::new(pipes),
                    Handshake::Discover,
                    deadline,
                )
                .await?;
                era::remember(config, Era::Modern);
                conn
            }
            Ok(ProbeOutcome::Legacy) => {
                let conn = Self::handshake(
                    name,
                    config,
                    hooks,
                    Upstream::Process(process),
                    PipeTransport::new(pipes),
                    Handshake::Initialize,
                    deadline,
                )
                .await?;
                era::remember(config, Era::Legacy);
                conn
            }
            Ok(ProbeOutcome::Restart(why)) => {
                tracing::info!(server = name, "{why}; starting it again with initialize");
                drop((process, pipes));
                // A second start, with a connect timeout of its own: the first one's time went
                // to a process that is gone (on a loaded host, two interpreter starts can take
                // more than one timeout).
                let deadline = tokio::time::Instant::now() + config.connect_timeout;
                let conn =
                    Self::start(name, config, hooks, Handshake::Initialize, deadline).await?;
                era::remember(config, Era::Legacy);
                conn
            }
        };
        Ok(conn)
    }

    /// Spawns a fresh process and opens it with `handshake`.
    async fn start(
        name: &str,
        config: &ServerConfig,
        hooks: &ConnectHooks,
        handshake: Handshake,
        deadline: tokio::time::Instant,
    ) -> Result<Self, StartFailure> {
        let (process, pipes) = ServerProcess::spawn(name, config)?;
        let (upstream, transport) = (Upstream::Process(process), PipeTransport::new(pipes));
        Self::handshake(
            name, config, hooks, upstream, transport, handshake, deadline,
        )
        .await
    }

    /// Runs rmcp's lifecycle on `transport`; a process that dies meanwhile is reported at
    /// once, with its exit status and what it wrote.
    async fn handshake<T>(
        name: &str,
        config: &ServerConfig,
        hooks: &ConnectHooks,
        upstream: Upstream,
        transport: T,
        handshake: Handshake,
        deadline: tokio::time::Instant,
    ) -> Result<Self, StartFailure>
    where
        T: Transport<RoleClient> + DeliversInOrder + Send + 'static,
        T::Error: std::error::Error + Send + Sync + 'static,
    {
        let name: Arc<str> = name.into();
        let tools_generation = Arc::new(AtomicU64::new(0));
        let calls = Arc::new(CallsInFlight::new(hooks.relay.clone()));
        let mut transport = transport;
        transport.deliver_progress_to(calls.clone());
        if let Some(events) = &hooks.events {
            transport.announce_logs_to(name.clone(), events.clone());
        }
        let handler = ConnectionHandler {
            server: name.clone(),
            roots: Arc::new(config.roots.clone()),
            tools_generation: tools_generation.clone(),
            events: hooks.events.clone(),
            calls: calls.clone(),
        };
        let listener = handler.clone();
        let opening = handler.serve_with_lifecycle(transport, handshake.lifecycle());
        let method = handshake.method();
        let service = tokio::select! {
            opened = tokio::time::timeout_at(deadline, opening) => match opened {
                Err(_) => {
                    return Err(ClientError::ConnectTimeout {
                        server: name.to_string(),
                        timeout: config.connect_timeout,
                        details: upstream.describe(),
                    }
                    .into())
                }
                Ok(Err(e)) => return Err(refusal(&name, method, e, &upstream).await),
                Ok(Ok(service)) => service,
            },
            _ = upstream.ended() => {
                upstream.settle(Duration::from_millis(200)).await;
                return Err(ClientError::Handshake {
                    server: name.to_string(),
                    message: format!("the server process ended before answering {method}{}", upstream.describe()),
                }
                .into());
            }
        };
        let peer = service.peer().clone();
        let state = ready_state(&peer);
        let listening = match handshake {
            Handshake::Discover => listener.listen_for_changes(&peer),
            Handshake::Initialize => None,
        };
        Ok(Self {
            name,
            config: config.clone(),
            service: tokio::sync::Mutex::new(Some(service)),
            peer,
            state: Mutex::new(state),
            upstream,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            tools_generation,
            calls,
            listening: Mutex::new(listening),
            resource_listens: Mutex::default(),
            handler: listener,
        })
    }

    /// The server's name in the registry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server process id (the leader of its process group); `None` for a remote server.
    pub fn pid(&self) -> Option<u32> {
        self.upstream.pid()
    }

    /// This connection's own number, unique in this process: a new connection to the same
    /// server (a restart, a reconnect) has a new one.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The current state; a `Ready` connection whose transport has closed reports `Failed`.
    pub fn state(&self) -> ConnectionState {
        let mut state = lock(&self.state);
        if matches!(*state, ConnectionState::Ready { .. })
            && (self.peer.is_transport_closed() || self.upstream.has_ended())
        {
            *state = ConnectionState::Failed(self.lost());
        }
        state.clone()
    }

    /// The negotiated protocol version, while ready.
    pub fn protocol_version(&self) -> Option<String> {
        match self.state() {
            ConnectionState::Ready {
                protocol_version, ..
            } => Some(protocol_version),
            _ => None,
        }
    }

    /// Whether the connection speaks 2026-07-28 or later (versions are dates, so they order
    /// as strings).
    pub fn is_modern(&self) -> bool {
        self.protocol_version()
            .is_some_and(|v| v.as_str() >= "2026-07-28")
    }

    /// Whether requests can still be sent.
    pub fn is_ready(&self) -> bool {
        matches!(self.state(), ConnectionState::Ready { .. })
    }

    /// Counts `notifications/tools/list_changed` received; a cache of this server's tools is
    /// stale once this moves.
    pub fn tools_generation(&self) -> u64 {
        self.tools_generation.load(Ordering::SeqCst)
    }

    /// Closes the connection the way the spec asks, with [`ShutdownPolicy::GRACEFUL`]: stdin
    /// first, then `SIGTERM`, then `SIGKILL`, to the whole process group. Idempotent.
    pub async fn close(&self) {
        self.close_with(ShutdownPolicy::GRACEFUL).await
    }

    /// Like [`ServerConnection::close`] with an explicit policy.
    pub async fn close_with(&self, policy: ShutdownPolicy) {
        let service = self.service.lock().await.take();
        let Some(mut service) = service else {
            return;
        };
        *lock(&self.state) = ConnectionState::Closing;
        let listening = lock(&self.listening).take();
        if let Some(listening) = listening {
            listening.stop().await;
        }
        let resource_listens: Vec<Listening> = lock(&self.resource_listens)
            .drain()
            .map(|(_, l)| l)
            .collect();
        for listening in resource_listens {
            listening.stop().await;
        }
        // Ends rmcp's service loop, which closes the transport and with it the server's stdin.
        let _ = service.close_with_timeout(Duration::from_millis(500)).await;
        self.upstream.shutdown(policy).await;
        *lock(&self.state) = ConnectionState::Closed;
        tracing::debug!(server = %self.name, pid = ?self.upstream.pid(), "closed");
    }

    /// The connection's state as a failure message, once its process or transport is gone.
    pub(super) fn lost(&self) -> String {
        self.upstream.lost()
    }
}
