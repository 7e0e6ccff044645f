//! One stdio MCP connection: spawn, handshake, list, call, close.
//!
//! The protocol itself (JSON-RPC framing, the `initialize` handshake, `server/discover` with
//! fallback, cancellation on drop) is rmcp's; this module adds what a registry needs around
//! it: an explicit [`ConnectionState`], per-server timeouts, the server's stderr routed to our
//! log, distinct error kinds, and a shutdown that never leaves a process behind.
//!
//! Why a process group: servers are often launched through wrappers (`npx`, `uv run`, shell
//! scripts) whose real server is a grandchild. Killing only the direct child would orphan
//! it, so each server is the leader of its own group and the whole group is killed.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    ProgressNotificationParam, ProgressToken, ProtocolVersion, Tool,
};
#[allow(deprecated)] // roots: deprecated for 2026-07-28, still asked for by 2025-11-25 servers
use rmcp::model::{ListRootsResult, Root};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{
    ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient, ServiceError,
};
use serde_json::{Map, Value};
use tokio::io::AsyncBufReadExt;

use crate::config::{ProtocolMode, ServerConfig};

/// How long the `server/discover` probe of [`ProtocolMode::Auto`] may take before falling
/// back to `initialize` on a fresh process (the spec's rule: fall back on any error or a
/// timeout).
pub const PROBE_BUDGET: Duration = Duration::from_secs(3);

/// How long [`ServerConnection::close`] waits for a server to exit after closing its stdin
/// before killing it.
pub const CLOSE_GRACE: Duration = Duration::from_millis(1000);

/// Where a connection is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Spawned; handshake in progress.
    Connecting,
    /// Handshake done; requests may be sent.
    Ready {
        /// The negotiated MCP protocol version (e.g. `2025-11-25` or `2026-07-28`).
        protocol_version: String,
        /// The server's self-reported name, if any.
        server_name: Option<String>,
        /// The server's self-reported version, if any.
        server_version: Option<String>,
    },
    /// The connection broke (process exited, pipe closed, handshake failed).
    Failed(String),
    /// `close` is in progress.
    Closing,
    /// Closed by us; the process has exited.
    Closed,
}

/// Errors of one MCP connection. Each kind is distinct so callers (and guests) can tell a
/// slow server from a dead one from a bad request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The server process could not be started.
    #[error("server \"{server}\": cannot start `{command}`: {message}")]
    Spawn {
        /// Server name.
        server: String,
        /// The command we tried to run.
        command: String,
        /// The OS error.
        message: String,
    },
    /// The handshake did not complete in time.
    #[error("server \"{server}\": no handshake within {timeout:?}")]
    ConnectTimeout {
        /// Server name.
        server: String,
        /// The configured connect timeout.
        timeout: Duration,
    },
    /// The handshake failed.
    #[error("server \"{server}\": handshake failed: {message}")]
    Handshake {
        /// Server name.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// The connection is gone: the process exited or closed its pipes.
    #[error("server \"{server}\": connection lost: {message}")]
    Transport {
        /// Server name.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// A request did not get an answer in time (a cancellation was sent).
    #[error("server \"{server}\": `{operation}` timed out after {timeout:?}")]
    Timeout {
        /// Server name.
        server: String,
        /// The request, e.g. `tools/call echo`.
        operation: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The server does not have this tool.
    #[error("server \"{server}\": unknown tool \"{tool}\": {message}")]
    UnknownTool {
        /// Server name.
        server: String,
        /// Tool name (un-namespaced).
        tool: String,
        /// The server's message.
        message: String,
    },
    /// The server rejected the arguments.
    #[error("server \"{server}\": invalid arguments for \"{tool}\": {message}")]
    InvalidArguments {
        /// Server name.
        server: String,
        /// Tool name.
        tool: String,
        /// The server's message.
        message: String,
    },
    /// Any other JSON-RPC error the server returned.
    #[error("server \"{server}\": {operation} failed: {message}")]
    Protocol {
        /// Server name.
        server: String,
        /// The request.
        operation: String,
        /// The server's message.
        message: String,
    },
}

impl ClientError {
    /// Whether this error means the connection is unusable (so a pool should restart it).
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, ClientError::Transport { .. })
    }
}

/// Receives the `notifications/progress` of one call, in order. Bounded: progress is advisory,
/// so what a full channel cannot take is dropped rather than queued.
pub type ProgressSink = tokio::sync::mpsc::Sender<ProgressNotificationParam>;

type ProgressRoutes = Arc<Mutex<HashMap<ProgressToken, ProgressSink>>>;

/// A notification from a server that layers above may forward (e.g. `serve` to its own
/// clients).
#[derive(Debug, Clone)]
pub enum ServerEvent {
    /// `notifications/tools/list_changed` from this server.
    ToolsChanged(String),
    /// `notifications/resources/list_changed` from this server.
    ResourcesChanged(String),
    /// `notifications/prompts/list_changed` from this server.
    PromptsChanged(String),
    /// `notifications/resources/updated` for a resource this server serves.
    ResourceUpdated {
        /// The server's name.
        server: String,
        /// The resource that changed.
        uri: String,
    },
    /// A log message (`notifications/message`) from this server.
    Log {
        /// The server's name.
        server: String,
        /// The message as the server sent it.
        #[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
        message: rmcp::model::LoggingMessageNotificationParam,
    },
}

/// Where servers' [`ServerEvent`]s are announced.
pub type ServerEvents = tokio::sync::broadcast::Sender<ServerEvent>;

/// Where a server's own requests to its client are relayed: the client of a front end such
/// as `serve`. `server` names the registry server that asked, so a front end can deliver the
/// request alongside the call that caused it.
#[async_trait::async_trait]
#[allow(deprecated)] // sampling: deprecated for 2026-07-28, part of 2025-11-25
pub trait RequestRelay: Send + Sync {
    /// Relays `sampling/createMessage`.
    async fn create_message(
        &self,
        server: &str,
        params: rmcp::model::CreateMessageRequestParams,
    ) -> Result<rmcp::model::CreateMessageResult, ErrorData>;

    /// Relays `elicitation/create`.
    async fn create_elicitation(
        &self,
        server: &str,
        params: rmcp::model::ElicitRequestParams,
    ) -> Result<rmcp::model::ElicitResult, ErrorData>;
}

/// What a connection reports to, and relays through, the layers above it.
#[derive(Clone, Default)]
pub struct ConnectHooks {
    /// Where the server's notifications are announced.
    pub events: Option<ServerEvents>,
    /// Where the server's sampling and elicitation requests are relayed. Without one, the
    /// client declares neither capability, so servers do not ask.
    pub relay: Option<Arc<dyn RequestRelay>>,
}

/// Answers the requests a server sends to us and records notifications we care about.
#[derive(Clone)]
struct ClientEvents {
    server: Arc<str>,
    roots: Arc<Vec<String>>,
    tools_generation: Arc<AtomicU64>,
    hooks: ConnectHooks,
    progress: ProgressRoutes,
}

impl ClientEvents {
    fn relay(&self) -> Result<&Arc<dyn RequestRelay>, ErrorData> {
        self.hooks
            .relay
            .as_ref()
            .ok_or_else(ErrorData::method_not_found::<rmcp::model::CreateMessageRequestMethod>)
    }

    fn announce(&self, event: ServerEvent) {
        if let Some(observer) = &self.hooks.events {
            let _ = observer.send(event);
        }
    }
}

impl ClientHandler for ClientEvents {
    #[allow(deprecated)] // sampling: deprecated for 2026-07-28, part of 2025-11-25
    async fn create_message(
        &self,
        params: rmcp::model::CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, ErrorData> {
        tracing::debug!(server = %self.server, "relaying sampling/createMessage to the client");
        self.relay()?.create_message(&self.server, params).await
    }

    async fn create_elicitation(
        &self,
        params: rmcp::model::ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, ErrorData> {
        tracing::debug!(server = %self.server, "relaying elicitation/create to the client");
        self.relay()?.create_elicitation(&self.server, params).await
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let sink = lock(&self.progress).get(&params.progress_token).cloned();
        if let Some(sink) = sink {
            // Advisory: a flood the consumer cannot keep up with is dropped, not queued.
            let _ = sink.try_send(params);
        }
    }

    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        capabilities.roots = Some(Default::default());
        if self.hooks.relay.is_some() {
            #[allow(deprecated)] // sampling: part of 2025-11-25
            {
                capabilities.sampling = Some(Default::default());
            }
            capabilities.elicitation = Some(Default::default());
        }
        ClientConfig::new(
            capabilities,
            Implementation::new("mcp-registry", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    #[allow(deprecated)]
    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let roots = self
            .roots
            .iter()
            .map(|uri| Root::new(uri.clone()))
            .collect();
        Ok(ListRootsResult::new(roots))
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::debug!(server = %self.server, "tools/list_changed");
        self.tools_generation.fetch_add(1, Ordering::SeqCst);
        self.announce(ServerEvent::ToolsChanged(self.server.to_string()));
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.announce(ServerEvent::ResourcesChanged(self.server.to_string()));
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.announce(ServerEvent::PromptsChanged(self.server.to_string()));
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.announce(ServerEvent::ResourceUpdated {
            server: self.server.to_string(),
            uri: params.uri,
        });
    }

    #[allow(deprecated)] // logging: deprecated for 2026-07-28, part of 2025-11-25
    async fn on_logging_message(
        &self,
        message: rmcp::model::LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        tracing::debug!(server = %self.server, level = ?message.level, data = %message.data, "server log");
        self.announce(ServerEvent::Log {
            server: self.server.to_string(),
            message,
        });
    }
}

/// One live stdio MCP connection to a server process.
///
/// Dropping it closes the connection in the background and kills the process group; call
/// [`ServerConnection::close`] to wait for the process to exit.
pub struct ServerConnection {
    name: Arc<str>,
    config: ServerConfig,
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, ClientEvents>>>,
    peer: rmcp::Peer<RoleClient>,
    state: Mutex<ConnectionState>,
    pid: Option<u32>,
    tools_generation: Arc<AtomicU64>,
    progress: ProgressRoutes,
}

impl std::fmt::Debug for ServerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConnection")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("state", &self.state())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ServerConnection {
    /// Spawns the server and completes the handshake within the configured connect timeout.
    pub async fn connect(name: &str, config: &ServerConfig) -> Result<Self, ClientError> {
        Self::connect_observed(name, config, ConnectHooks::default()).await
    }

    /// Like [`ServerConnection::connect`], announcing the server's `tools/list_changed`
    /// notifications on `observer`.
    pub async fn connect_observed(
        name: &str,
        config: &ServerConfig,
        observer: ConnectHooks,
    ) -> Result<Self, ClientError> {
        let started = Instant::now();
        let legacy_known = config.protocol == ProtocolMode::Auto && is_known_legacy(config);
        let lifecycle = match config.protocol {
            ProtocolMode::Legacy => ClientLifecycleMode::Initialize,
            _ if legacy_known => ClientLifecycleMode::Initialize,
            ProtocolMode::Modern => ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
            ProtocolMode::Auto => ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
            },
        };
        let probing = matches!(lifecycle, ClientLifecycleMode::Auto { .. });
        // rmcp waits up to 10 s for a `server/discover` answer; a legacy server that ignores
        // the request should not cost that much, so the probe gets a shorter budget.
        let budget = if probing {
            config.connect_timeout.min(PROBE_BUDGET)
        } else {
            config.connect_timeout
        };
        let conn = match Self::spawn_and_handshake(
            name,
            config,
            observer.clone(),
            lifecycle,
            budget,
        )
        .await
        {
            // Some legacy servers (e.g. Python `mcp` 1.x) fail on the unknown `server/discover`
            // (exit, or stop reading) instead of answering it with an error, so the probe
            // cannot fall back on the same connection. The spec's rule is to fall back on any failure: start the server
            // again with `initialize`, and remember the answer for this process.
            Err(e) if probing && !matches!(e, ClientError::Spawn { .. }) => {
                tracing::warn!(
                    server = name,
                    error = %e,
                    "no answer to the server/discover probe; using initialize (set \"protocol\": \"legacy\" for this server to skip the probe)"
                );
                let remaining = config
                    .connect_timeout
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_secs(1));
                let conn = Self::spawn_and_handshake(
                    name,
                    config,
                    observer,
                    ClientLifecycleMode::Initialize,
                    remaining,
                )
                .await?;
                remember_legacy(config);
                conn
            }
            other => other?,
        };
        tracing::debug!(server = %name, pid = ?conn.pid, state = ?conn.state(), elapsed = ?started.elapsed(), "connected");
        Ok(conn)
    }

    async fn spawn_and_handshake(
        name: &str,
        config: &ServerConfig,
        observer: ConnectHooks,
        lifecycle: ClientLifecycleMode,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let mut command = tokio::process::Command::new(&config.command);
        command.args(&config.args).envs(&config.env);
        if let Some(cwd) = &config.cwd {
            command.current_dir(cwd);
        }
        let mut wrapped = CommandWrap::from(command);
        wrapped.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
        let (transport, stderr) = TokioChildProcess::builder(wrapped)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ClientError::Spawn {
                server: name.into(),
                command: config.command.clone(),
                message: e.to_string(),
            })?;
        let pid = transport.id();
        let name: Arc<str> = name.into();
        if let Some(stderr) = stderr {
            tokio::spawn(forward_stderr(name.clone(), stderr));
        }
        let tools_generation = Arc::new(AtomicU64::new(0));
        let progress: ProgressRoutes = Arc::default();
        let events = ClientEvents {
            server: name.clone(),
            roots: Arc::new(config.roots.clone()),
            tools_generation: tools_generation.clone(),
            hooks: observer,
            progress: progress.clone(),
        };
        let handshake =
            tokio::time::timeout(timeout, events.serve_with_lifecycle(transport, lifecycle));
        // rmcp does not notice a server that exits mid-handshake until its own timeout; watch
        // the process so such a failure is reported at once.
        let service = tokio::select! {
            r = handshake => r
                .map_err(|_| ClientError::ConnectTimeout { server: name.to_string(), timeout })?
                .map_err(|e| ClientError::Handshake { server: name.to_string(), message: e.to_string() })?,
            _ = exited(pid) => {
                return Err(ClientError::Handshake {
                    server: name.to_string(),
                    message: "the server process exited during the handshake".into(),
                })
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
            pid,
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
        self.pid
    }

    /// The current state; a `Ready` connection whose transport has closed reports `Failed`.
    pub fn state(&self) -> ConnectionState {
        let mut state = lock(&self.state);
        if matches!(*state, ConnectionState::Ready { .. }) && self.peer.is_transport_closed() {
            *state = ConnectionState::Failed("the server process closed the connection".into());
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
        self.call_tool_with_timeout(tool, arguments, self.config.call_timeout)
            .await
    }

    /// Like [`ServerConnection::call_tool`] with an explicit timeout.
    pub async fn call_tool_with_timeout(
        &self,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        timeout: Duration,
    ) -> Result<CallToolResult, ClientError> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = arguments;
        // Dropping rmcp's call future (on timeout, or when our caller is cancelled) sends
        // `notifications/cancelled` for the request.
        match tokio::time::timeout(timeout, self.peer.call_tool(params)).await {
            Err(_) => Err(ClientError::Timeout {
                server: self.name.to_string(),
                operation: format!("tools/call {tool}"),
                timeout,
            }),
            Ok(result) => result.map_err(|e| self.classify(e, "tools/call", Some(tool))),
        }
    }

    /// Like [`ServerConnection::call_tool_with_timeout`], sending the call's
    /// `notifications/progress` to `progress` as they arrive.
    pub async fn call_tool_with_progress(
        &self,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        timeout: Duration,
        progress: ProgressSink,
    ) -> Result<CallToolResult, ClientError> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = arguments;
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
            Err(_) => Err(ClientError::Timeout {
                server: self.name.to_string(),
                operation: format!("tools/call {tool}"),
                timeout,
            }),
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
    pub async fn close(&self) {
        let service = self.service.lock().await.take();
        if let Some(mut service) = service {
            *lock(&self.state) = ConnectionState::Closing;
            match service.close_with_timeout(CLOSE_GRACE).await {
                Ok(Some(_)) => {}
                _ => {
                    if let Some(pid) = self.pid {
                        tracing::debug!(server = %self.name, pid, "no exit after closing stdin; killing");
                        // SAFETY: kill(2) on the process group we created for this server;
                        // rmcp's transport task still owns and reaps the child.
                        unsafe {
                            libc::kill(-(pid as i32), libc::SIGKILL);
                        }
                    }
                }
            }
            *lock(&self.state) = ConnectionState::Closed;
            tracing::debug!(server = %self.name, pid = ?self.pid, "closed");
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
                let message = "the server process exited or closed its pipes".to_string();
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

/// Servers (by command line) that failed the `server/discover` probe in this process: the
/// spec's "cache the answer per process".
fn legacy_servers() -> &'static Mutex<std::collections::HashSet<String>> {
    static LEGACY: std::sync::OnceLock<Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    LEGACY.get_or_init(Default::default)
}

fn server_key(config: &ServerConfig) -> String {
    format!(
        "{}\0{}\0{:?}",
        config.command,
        config.args.join("\0"),
        config.cwd
    )
}

fn is_known_legacy(config: &ServerConfig) -> bool {
    lock(legacy_servers()).contains(&server_key(config))
}

fn remember_legacy(config: &ServerConfig) {
    lock(legacy_servers()).insert(server_key(config));
}

/// Resolves once the process `pid` has exited (it is a zombie or gone). Never resolves where
/// `/proc` is not available.
async fn exited(pid: Option<u32>) {
    let Some(pid) = pid else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(Duration::from_millis(25)).await;
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat
                    .rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().next());
                if matches!(state, Some("Z") | Some("X")) {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => return std::future::pending().await,
        }
    }
}

async fn forward_stderr(server: Arc<str>, stderr: tokio::process::ChildStderr) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "mcp_registry::server_stderr", server = %server, "{line}");
    }
}
