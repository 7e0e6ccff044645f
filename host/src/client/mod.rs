//! One MCP connection to a server (a process, or a remote one): spawn or connect, era,
//! handshake, requests, close.
//!
//! The protocol itself (JSON-RPC framing, both handshakes, cancellation on drop) is rmcp's;
//! this module adds what a registry needs around it, one concern per file:
//! - [`process`]: the server process (its own process group, a watchdog for when we are
//!   killed, stderr kept for error messages, a shutdown that never leaves a process behind);
//! - [`recording`]: `run --record`, every upstream request and answer as JSON lines;
//! - `remote`: the HTTP transports of remote servers (streamable HTTP, and HTTP+SSE);
//! - `upstream`: what is at the other end (a process, or a URL), as a connection sees it;
//! - [`era`]: which protocol era a server speaks, probed cheaply and remembered on disk;
//! - `handler`: our rmcp `ClientHandler` (roots, relayed requests, notifications);
//! - `connection`: [`ServerConnection`] and its [`ConnectionState`]: start, era, close;
//! - `requests`: what it sends (tools, resources, prompts), with timeouts and errors;
//! - `calls`: its calls in flight (progress, relays of the server's requests, cancellation).

use std::sync::Arc;

use crate::locks::lock;
use std::time::Duration;

use rmcp::ErrorData;

mod calls;
mod connection;
pub mod era;
mod handler;
mod input;
pub mod oauth;
pub mod process;
pub mod recording;
mod remote;
mod requests;
mod trace_context;
mod upstream;

pub use connection::ServerConnection;
pub use process::{live_servers, terminate_all, ShutdownPolicy};
pub use remote::install_tls_provider;
pub use requests::CallOptions;
pub use trace_context::TraceContext;

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

/// A duration for people: `250 ms`, `2.5 s`, `27 s`, `2 min 5 s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{} ms", ms.round())
    } else if ms < 10_000.0 {
        let s = format!("{:.1}", ms / 1000.0);
        format!("{} s", s.trim_end_matches(".0"))
    } else if ms < 60_000.0 {
        format!("{} s", (ms / 1000.0).round())
    } else {
        let s = d.as_secs();
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// Errors of one MCP connection. Each kind is distinct so callers (and guests) can tell a
/// slow server from a dead one from a bad request.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A `${VAR}` in the server's configuration could not be expanded.
    #[error(transparent)]
    Config(#[from] crate::config::ExpandError),
    /// The server process could not be started.
    #[error("server \"{server}\": cannot start `{command}`: {source}")]
    Spawn {
        /// Server name.
        server: String,
        /// The command we tried to run.
        command: String,
        /// The OS error.
        source: Arc<std::io::Error>,
    },
    /// The handshake did not complete in time.
    #[error("server \"{server}\": no handshake within {}{details}", human_duration(*.timeout))]
    ConnectTimeout {
        /// Server name.
        server: String,
        /// The configured connect timeout.
        timeout: Duration,
        /// What the process said meanwhile (`; its stderr ended with: ...`), or empty.
        details: String,
    },
    /// A server that takes an OAuth sign-in has none we can use, or the sign-in failed.
    #[error("server \"{server}\": {message}")]
    SignIn {
        /// Server name.
        server: String,
        /// What is wrong and what to do (never a token).
        message: String,
    },
    /// The handshake failed: the process exited, closed its pipes, or refused.
    #[error("server \"{server}\": handshake failed: {message}")]
    Handshake {
        /// Server name.
        server: String,
        /// What went wrong, with the exit status and stderr where there are any.
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
    #[error("server \"{server}\": `{operation}` timed out after {}", human_duration(*.timeout))]
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

/// One progress report of a call or a plugin run: how far, out of how much, and what is
/// happening. Whoever relays it to a client adds that client's own progress token.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// How far (increasing).
    pub progress: f64,
    /// Out of how much, if known.
    pub total: Option<f64>,
    /// What is happening.
    pub message: Option<String>,
}

/// Receives the progress reports of one call or run, in order. Bounded: progress is advisory,
/// so what a full channel cannot take is dropped rather than queued.
pub type ProgressSink = tokio::sync::mpsc::Sender<Progress>;

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

impl ServerEvent {
    /// The server it comes from.
    pub fn server(&self) -> &str {
        match self {
            ServerEvent::ToolsChanged(s)
            | ServerEvent::ResourcesChanged(s)
            | ServerEvent::PromptsChanged(s) => s,
            ServerEvent::ResourceUpdated { server, .. } | ServerEvent::Log { server, .. } => server,
        }
    }
}

/// Where servers' [`ServerEvent`]s are announced.
pub type ServerEvents = tokio::sync::broadcast::Sender<ServerEvent>;

/// Where a server's own requests to its client are relayed: the client of a front end such
/// as `serve`. `server` names the registry server that asked. A relay may stand for one call
/// (and deliver the request alongside it); [`RequestRelay::client_key`] says which client.
#[async_trait::async_trait]
#[allow(deprecated)] // sampling: deprecated for 2026-07-28, part of 2025-11-25
pub trait RequestRelay: Send + Sync {
    /// Relays with the same key reach the same client.
    fn client_key(&self) -> usize;

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

/// Gives the notifications a server sent just before an answer a turn to be handled: rmcp
/// handles each in a task of its own, so they may still be on their way when the answer is.
pub(crate) async fn notifications_land() {
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

/// What a connection reports to, and relays through, the layers above it.
#[derive(Clone, Default)]
pub struct ConnectHooks {
    /// Where the server's notifications are announced.
    pub events: Option<ServerEvents>,
    /// Where the server's sampling and elicitation requests are relayed when no call in
    /// flight carries a relay of its own ([`CallOptions::relay`]). Without one, the client
    /// declares neither capability, so servers do not ask.
    pub relay: Option<Arc<dyn RequestRelay>>,
    /// Whose OAuth sign-in a server with `"auth": "oauth"` is connected with: a tenant's own
    /// (its token files, [`oauth::token_path`]), or `None`, the operator's.
    pub sign_in_as: Option<Arc<str>>,
}

#[cfg(test)]
mod tests {
    use super::human_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_duration(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(human_duration(Duration::from_secs(3)), "3 s");
        assert_eq!(
            human_duration(Duration::from_secs_f64(26.998956316)),
            "27 s"
        );
        assert_eq!(human_duration(Duration::from_secs(125)), "2 min 5 s");
    }
}
