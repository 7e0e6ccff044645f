//! [`ServerConnection`]: one live MCP connection over a server process's stdio.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientJsonRpcMessage, ProgressToken, ProtocolVersion,
    ServerJsonRpcMessage, Tool,
};
use rmcp::service::{ClientInitializeError, PeerRequestOptions, RunningService};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::Transport;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceError};
use serde_json::{Map, Value};

use super::era::{self, Era, ProbeOutcome, PROBE_ID_PREFIX};
use super::handler::ConnectionHandler;
use super::process::{ServerPipes, ServerProcess, ShutdownPolicy};
use super::{lock, ClientError, ConnectHooks, ConnectionState, ProgressRoutes, ProgressSink};
use crate::config::{ProtocolMode, ServerConfig};

/// One live stdio MCP connection to a server process.
///
/// Dropping it kills the process group; call [`ServerConnection::close`] to end the server
/// the way the spec asks (stdin first) and wait for it to exit.
pub struct ServerConnection {
    name: Arc<str>,
    config: ServerConfig,
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, ConnectionHandler>>>,
    peer: rmcp::Peer<RoleClient>,
    state: Mutex<ConnectionState>,
    process: ServerProcess,
    tools_generation: Arc<AtomicU64>,
    progress: ProgressRoutes,
}

impl std::fmt::Debug for ServerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConnection")
            .field("name", &self.name)
            .field("pid", &self.process.pid())
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

/// The transport of a connection: rmcp's line transport over the process's pipes, minus
/// late answers to the era probe's own requests (which rmcp would take for a conflict).
struct ServerTransport(
    AsyncRwTransport<
        RoleClient,
        tokio::io::BufReader<super::process::WatchedStdout>,
        tokio::process::ChildStdin,
    >,
);

fn is_probe_answer(message: &ServerJsonRpcMessage) -> bool {
    let id = match message {
        ServerJsonRpcMessage::Response(r) => Some(&r.id),
        ServerJsonRpcMessage::Error(e) => e.id.as_ref(),
        _ => None,
    };
    matches!(id, Some(rmcp::model::NumberOrString::String(s)) if s.starts_with(PROBE_ID_PREFIX))
}

impl Transport<RoleClient> for ServerTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.0.send(item)
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        loop {
            let message = self.0.receive().await?;
            if !is_probe_answer(&message) {
                return Some(message);
            }
        }
    }

    fn close(&mut self) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        self.0.close()
    }
}

/// How one tool call is made, beyond its name and arguments.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// The call's timeout (default: the server's configured call timeout).
    pub timeout: Option<Duration>,
    /// Where the call's `notifications/progress` go, if anywhere.
    pub progress: Option<ProgressSink>,
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
        let deadline = tokio::time::Instant::now() + config.connect_timeout;
        let conn = match config.protocol {
            ProtocolMode::Legacy => {
                Self::start(name, config, &hooks, Handshake::Initialize, deadline).await
            }
            ProtocolMode::Modern => {
                Self::start(name, config, &hooks, Handshake::Discover, deadline).await
            }
            ProtocolMode::Auto => Self::start_auto(name, config, &hooks, deadline).await,
        }
        .map_err(|f| f.error)?;
        tracing::debug!(server = %name, pid = conn.process.pid(), state = ?conn.state(), elapsed = ?started.elapsed(), "connected");
        Ok(conn)
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
                    details: process.describe(),
                }
                .into())
            }
            Ok(ProbeOutcome::Modern) => {
                let conn = Self::handshake(
                    name,
                    config,
                    hooks,
                    process,
                    pipes,
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
                    process,
                    pipes,
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
        Self::handshake(name, config, hooks, process, pipes, handshake, deadline).await
    }

    /// Runs rmcp's lifecycle on a spawned process; a process that dies meanwhile is reported
    /// at once, with its exit status and what it wrote.
    async fn handshake(
        name: &str,
        config: &ServerConfig,
        hooks: &ConnectHooks,
        process: ServerProcess,
        pipes: ServerPipes,
        handshake: Handshake,
        deadline: tokio::time::Instant,
    ) -> Result<Self, StartFailure> {
        let name: Arc<str> = name.into();
        let tools_generation = Arc::new(AtomicU64::new(0));
        let progress: ProgressRoutes = Arc::default();
        let handler = ConnectionHandler {
            server: name.clone(),
            roots: Arc::new(config.roots.clone()),
            tools_generation: tools_generation.clone(),
            hooks: hooks.clone(),
            progress: progress.clone(),
        };
        let transport = ServerTransport(AsyncRwTransport::new_client(pipes.stdout, pipes.stdin));
        let opening = handler.serve_with_lifecycle(transport, handshake.lifecycle());
        let method = handshake.method();
        let service = tokio::select! {
            opened = tokio::time::timeout_at(deadline, opening) => match opened {
                Err(_) => {
                    return Err(ClientError::ConnectTimeout {
                        server: name.to_string(),
                        timeout: config.connect_timeout,
                        details: process.describe(),
                    }
                    .into())
                }
                Ok(Err(e)) => {
                    let refused = matches!(
                        e,
                        ClientInitializeError::JsonRpcError(_)
                            | ClientInitializeError::NoCompatibleProtocolVersion { .. }
                            | ClientInitializeError::ExpectedInitResult(_)
                            | ClientInitializeError::UncorrelatedErrorResponse { .. }
                    );
                    let what = match &e {
                        ClientInitializeError::ConnectionClosed(_) => {
                            format!("the server closed its stdout before answering {method}")
                        }
                        other => format!("{method}: {other}"),
                    };
                    // A process that is exiting says how; give it a moment to.
                    process.settle(Duration::from_millis(200)).await;
                    return Err(StartFailure {
                        error: ClientError::Handshake {
                            server: name.to_string(),
                            message: format!("{what}{}", process.describe()),
                        },
                        refused,
                    });
                }
                Ok(Ok(service)) => service,
            },
            _ = process.exited() => {
                process.settle(Duration::from_millis(200)).await;
                return Err(ClientError::Handshake {
                    server: name.to_string(),
                    message: format!("the server process ended before answering {method}{}", process.describe()),
                }
                .into());
            }
        };
        let peer = service.peer().clone();
        let info = peer.peer_info();
        let state = ConnectionState::Ready {
            protocol_version: info
                .as_ref()
                .map(|i| i.protocol_version.to_string())
                .unwrap_or_else(|| "unknown".into()),
            server_name: info
                .as_ref()
                .and_then(|i| i.server_info.as_ref().map(|s| s.name.clone())),
            server_version: info
                .as_ref()
                .and_then(|i| i.server_info.as_ref().map(|s| s.version.clone())),
        };
        Ok(Self {
            name,
            config: config.clone(),
            service: tokio::sync::Mutex::new(Some(service)),
            peer,
            state: Mutex::new(state),
            process,
            tools_generation,
            progress,
        })
    }

    /// The server's name in the registry.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server process id (the leader of its process group).
    pub fn pid(&self) -> Option<u32> {
        Some(self.process.pid())
    }

    /// The current state; a `Ready` connection whose transport has closed reports `Failed`.
    pub fn state(&self) -> ConnectionState {
        let mut state = lock(&self.state);
        if matches!(*state, ConnectionState::Ready { .. })
            && (self.peer.is_transport_closed() || self.process.exit_status().is_some())
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

    /// Whether requests can still be sent.
    pub fn is_ready(&self) -> bool {
        matches!(self.state(), ConnectionState::Ready { .. })
    }

    /// Counts `notifications/tools/list_changed` received; a cache of this server's tools is
    /// stale once this moves.
    pub fn tools_generation(&self) -> u64 {
        self.tools_generation.load(Ordering::SeqCst)
    }

    /// All tools (every page of `tools/list`).
    pub async fn list_tools(&self) -> Result<Vec<Tool>, ClientError> {
        let timeout = self.config.call_timeout;
        match tokio::time::timeout(timeout, self.peer.list_all_tools()).await {
            Err(_) => Err(ClientError::Timeout {
                server: self.name.to_string(),
                operation: "tools/list".into(),
                timeout,
            }),
            Ok(result) => result.map_err(|e| self.classify(e, "tools/list", None)),
        }
    }

    /// Calls a tool (un-namespaced name) with the configured call timeout. A tool error
    /// (`isError: true`) is a successful return carrying the server's own content. On timeout
    /// the request is cancelled (`notifications/cancelled`).
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<CallToolResult, ClientError> {
        self.call_tool_with(tool, arguments, CallOptions::default())
            .await
    }

    /// Like [`ServerConnection::call_tool`], with a timeout of its own and the call's
    /// `notifications/progress` sent where [`CallOptions`] says.
    pub async fn call_tool_with(
        &self,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        options: CallOptions,
    ) -> Result<CallToolResult, ClientError> {
        let timeout = options.timeout.unwrap_or(self.config.call_timeout);
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = arguments;
        let timed_out = || ClientError::Timeout {
            server: self.name.to_string(),
            operation: format!("tools/call {tool}"),
            timeout,
        };
        let Some(progress) = options.progress else {
            // Dropping rmcp's call future (on timeout, or when our caller is cancelled) sends
            // `notifications/cancelled` for the request.
            return match tokio::time::timeout(timeout, self.peer.call_tool(params)).await {
                Err(_) => Err(timed_out()),
                Ok(result) => result.map_err(|e| self.classify(e, "tools/call", Some(tool))),
            };
        };
        let request =
            rmcp::model::ClientRequest::CallToolRequest(rmcp::model::Request::new(params));
        let handle = self
            .peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| self.classify(e, "tools/call", Some(tool)))?;
        let route = ProgressRoute {
            token: handle.progress_token.clone(),
            routes: self.progress.clone(),
            request: Some((self.peer.clone(), handle.id.clone())),
        };
        lock(&self.progress).insert(route.token.clone(), progress);
        let outcome = tokio::time::timeout(timeout, handle.await_response()).await;
        let result = match outcome {
            Err(_) => Err(timed_out()),
            Ok(Ok(rmcp::model::ServerResult::CallToolResult(r))) => Ok(r),
            Ok(Ok(_)) => {
                Err(self.classify(ServiceError::UnexpectedResponse, "tools/call", Some(tool)))
            }
            Ok(Err(e)) => Err(self.classify(e, "tools/call", Some(tool))),
        };
        route.finish(result.is_ok());
        result
    }

    /// Sends `ping` (legacy era) and waits for the answer.
    pub async fn ping(&self) -> Result<(), ClientError> {
        let timeout = self.config.call_timeout;
        let request = rmcp::model::ClientRequest::PingRequest(Default::default());
        match tokio::time::timeout(timeout, self.peer.send_request(request)).await {
            Err(_) => Err(ClientError::Timeout {
                server: self.name.to_string(),
                operation: "ping".into(),
                timeout,
            }),
            Ok(result) => result
                .map(|_| ())
                .map_err(|e| self.classify(e, "ping", None)),
        }
    }

    /// Whether the server declared a capability in its handshake (unknown: assume it did and
    /// let the server answer).
    fn declares(&self, capability: impl Fn(&rmcp::model::ServerCapabilities) -> bool) -> bool {
        self.peer
            .peer_info()
            .is_none_or(|info| capability(&info.capabilities))
    }

    /// Runs one request under the configured call timeout, naming `operation` in errors.
    async fn timed<T>(
        &self,
        operation: &str,
        request: impl std::future::Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ClientError> {
        let timeout = self.config.call_timeout;
        match tokio::time::timeout(timeout, request).await {
            Err(_) => Err(ClientError::Timeout {
                server: self.name.to_string(),
                operation: operation.into(),
                timeout,
            }),
            Ok(result) => result.map_err(|e| self.classify(e, operation, None)),
        }
    }

    /// All resources (every page of `resources/list`); none if the server has no resources.
    pub async fn list_resources(&self) -> Result<Vec<rmcp::model::Resource>, ClientError> {
        if !self.declares(|c| c.resources.is_some()) {
            return Ok(Vec::new());
        }
        self.timed("resources/list", self.peer.list_all_resources())
            .await
    }

    /// All resource templates (every page of `resources/templates/list`).
    pub async fn list_resource_templates(
        &self,
    ) -> Result<Vec<rmcp::model::ResourceTemplate>, ClientError> {
        if !self.declares(|c| c.resources.is_some()) {
            return Ok(Vec::new());
        }
        self.timed(
            "resources/templates/list",
            self.peer.list_all_resource_templates(),
        )
        .await
    }

    /// Reads one resource.
    pub async fn read_resource(
        &self,
        uri: &str,
    ) -> Result<rmcp::model::ReadResourceResult, ClientError> {
        let params = rmcp::model::ReadResourceRequestParams::new(uri);
        self.timed("resources/read", self.peer.read_resource(params))
            .await
    }

    /// Subscribes to updates of one resource (`notifications/resources/updated` arrive as
    /// [`ServerEvent::ResourceUpdated`]).
    #[allow(deprecated)] // resources/subscribe: legacy era only; 2026-07-28 uses subscriptions/listen
    pub async fn subscribe(&self, uri: &str) -> Result<(), ClientError> {
        let params = rmcp::model::SubscribeRequestParams::new(uri);
        self.timed("resources/subscribe", self.peer.subscribe(params))
            .await
    }

    /// Ends a subscription made with [`ServerConnection::subscribe`].
    #[allow(deprecated)] // resources/unsubscribe: legacy era only
    pub async fn unsubscribe(&self, uri: &str) -> Result<(), ClientError> {
        let params = rmcp::model::UnsubscribeRequestParams::new(uri);
        self.timed("resources/unsubscribe", self.peer.unsubscribe(params))
            .await
    }

    /// All prompts (every page of `prompts/list`); none if the server has no prompts.
    pub async fn list_prompts(&self) -> Result<Vec<rmcp::model::Prompt>, ClientError> {
        if !self.declares(|c| c.prompts.is_some()) {
            return Ok(Vec::new());
        }
        self.timed("prompts/list", self.peer.list_all_prompts())
            .await
    }

    /// Gets one prompt (un-namespaced name).
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<rmcp::model::GetPromptResult, ClientError> {
        let mut params = rmcp::model::GetPromptRequestParams::new(name);
        params.arguments = arguments;
        self.timed("prompts/get", self.peer.get_prompt(params))
            .await
    }

    /// Asks for argument completions (`completion/complete`); an empty list if the server
    /// does not offer completions.
    pub async fn complete(
        &self,
        params: rmcp::model::CompleteRequestParams,
    ) -> Result<rmcp::model::CompleteResult, ClientError> {
        if !self.declares(|c| c.completions.is_some()) {
            return Ok(rmcp::model::CompleteResult::default());
        }
        self.timed("completion/complete", self.peer.complete(params))
            .await
    }

    /// Closes stdin and waits up to [`CLOSE_GRACE`] for the process to exit, then kills its
    /// whole process group (the spec's stdio shutdown, with a short fuse: a server busy with
    /// abandoned requests must not hold up a session's close). Idempotent.
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
        // Ends rmcp's service loop, which closes the transport and with it the server's stdin.
        let _ = service.close_with_timeout(Duration::from_millis(500)).await;
        let status = self.process.shutdown(policy).await;
        *lock(&self.state) = ConnectionState::Closed;
        tracing::debug!(server = %self.name, pid = self.process.pid(), ?status, "closed");
    }

    /// The connection's state as a failure message, if its process is gone.
    fn lost(&self) -> String {
        match self.process.exit_status() {
            Some(status) => format!(
                "the server process {}{}",
                super::process::describe_exit(&status),
                self.process.describe_output()
            ),
            None => "the server process closed its pipes".into(),
        }
    }

    fn classify(&self, error: ServiceError, operation: &str, tool: Option<&str>) -> ClientError {
        let server = self.name.to_string();
        match error {
            ServiceError::McpError(data) => {
                let message = data.message.to_string();
                let lower = message.to_ascii_lowercase();
                match (data.code, tool) {
                    (rmcp::model::ErrorCode::INVALID_PARAMS, Some(tool))
                        if lower.contains("not found")
                            || lower.contains("unknown tool")
                            || lower.contains("no such tool") =>
                    {
                        ClientError::UnknownTool {
                            server,
                            tool: tool.into(),
                            message,
                        }
                    }
                    (rmcp::model::ErrorCode::INVALID_PARAMS, Some(tool)) => {
                        ClientError::InvalidArguments {
                            server,
                            tool: tool.into(),
                            message,
                        }
                    }
                    _ => ClientError::Protocol {
                        server,
                        operation: operation.into(),
                        message,
                    },
                }
            }
            ServiceError::Timeout { timeout } => ClientError::Timeout {
                server,
                operation: operation.into(),
                timeout,
            },
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                let message = self.lost();
                *lock(&self.state) = ConnectionState::Failed(message.clone());
                ClientError::Transport { server, message }
            }
            other => ClientError::Protocol {
                server,
                operation: operation.into(),
                message: other.to_string(),
            },
        }
    }
}

/// A call's progress route; dropping it before the call finished (the caller was cancelled,
/// or timed out) sends `notifications/cancelled` for the request, as rmcp's own `call_tool`
/// does.
struct ProgressRoute {
    token: ProgressToken,
    routes: ProgressRoutes,
    request: Option<(rmcp::Peer<RoleClient>, rmcp::model::RequestId)>,
}

impl ProgressRoute {
    fn finish(mut self, answered: bool) {
        if answered {
            self.request = None;
        }
    }
}

impl Drop for ProgressRoute {
    fn drop(&mut self) {
        lock(&self.routes).remove(&self.token);
        if let Some((peer, id)) = self.request.take() {
            let cancel = rmcp::model::CancelledNotification::new(
                rmcp::model::CancelledNotificationParam::new(
                    Some(id),
                    Some("cancelled by the caller".into()),
                ),
            );
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = peer.send_notification(cancel.into()).await;
                });
            }
        }
    }
}
