//! The aggregator's errors, and the one place they are classified.
//!
//! Front ends speak different wires (WIT error variants for guests, JSON-RPC errors or
//! `isError` results for `serve`'s clients, exit codes for the CLI). Each maps an
//! [`ErrorKind`] to its wire; none looks inside the errors of the layers below.

use crate::client::ClientError;
use crate::manager::ManagerError;
use crate::names::NameError;

/// What kind of failure an [`AggregatorError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No such server, tool, prompt or resource.
    NotFound,
    /// It exists, but the caller may not use it.
    Denied,
    /// The request itself is wrong (a malformed name, arguments that are not an object,
    /// arguments the server rejects, a closed session).
    Invalid,
    /// The server could not be started, or broke, or answered with an error.
    ServerFailed,
    /// The server did not answer in time.
    Timeout,
    /// A bound was reached (processes, calls in flight, rate).
    Limit,
}

impl ErrorKind {
    /// The kind's name as guests and logs see it (`not-found`, `server-failed`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::Denied => "denied",
            ErrorKind::Invalid => "invalid",
            ErrorKind::ServerFailed => "server-failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Limit => "limit",
        }
    }
}

/// How a tool call ended, as every record of it names it: metrics labels, audit lines, a
/// run's trace and code mode's `calls`. (Guests see WIT error variants, whose names are part
/// of the WIT contract; each maps to one [`ErrorKind`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The tool answered.
    Ok,
    /// The tool answered with `isError`.
    ToolError,
    /// The call failed, for this reason.
    Failed(ErrorKind),
}

impl Outcome {
    /// The outcome of a call that returned `result`.
    pub fn of(result: &Result<rmcp::model::CallToolResult, AggregatorError>) -> Self {
        match result {
            Ok(r) if r.is_error == Some(true) => Outcome::ToolError,
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Failed(e.kind()),
        }
    }

    /// `ok`, `tool-error`, or the kind's name (`not-found`, `invalid`, `limit`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool-error",
            Outcome::Failed(kind) => kind.as_str(),
        }
    }
}

/// Errors of the aggregator.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AggregatorError {
    /// No server of this name in the registry.
    #[error("unknown server \"{0}\"")]
    UnknownServer(String),
    /// The name is not `server__tool`.
    #[error(transparent)]
    BadToolName(#[from] NameError),
    /// The tool exists but the server's tool filter hides it.
    #[error("tool \"{tool}\" of server \"{server}\" is excluded by the registry's tool filter")]
    Filtered {
        /// Server name.
        server: String,
        /// Tool name (un-namespaced).
        tool: String,
    },
    /// The tool's definition no longer matches its pin (see [`crate::pins`]).
    #[error("tool \"{tool}\" of server \"{server}\" is quarantined: {why}; review it with `mcp-registry pins diff {server}__{tool}`, approve it with `mcp-registry pins approve {server}__{tool}`")]
    Quarantined {
        /// Server name.
        server: String,
        /// Tool name (un-namespaced).
        tool: String,
        /// What drifted.
        why: String,
    },
    /// Arguments are not a JSON object.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The session was closed.
    #[error("the session is closed")]
    SessionClosed,
    /// No server of the session lists this resource or a template it matches.
    #[error("no server of this session serves resource \"{0}\"")]
    UnknownResource(String),
    /// The server failed (spawn, handshake, timeout, transport, protocol).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A bound was reached (processes, calls in flight, rate); says which.
    #[error("{0}")]
    Limit(String),
    /// The server failed to connect; the pool retries it in the background.
    #[error("{error} (retried in the background; next try in {})", crate::client::human_duration(*.retry_in))]
    Down {
        /// Why its last connect failed.
        error: ClientError,
        /// When the next attempt is due.
        retry_in: std::time::Duration,
    },
}

impl AggregatorError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AggregatorError::UnknownServer(_) | AggregatorError::UnknownResource(_) => {
                ErrorKind::NotFound
            }
            AggregatorError::BadToolName(_)
            | AggregatorError::InvalidArguments(_)
            | AggregatorError::SessionClosed => ErrorKind::Invalid,
            AggregatorError::Filtered { .. } | AggregatorError::Quarantined { .. } => {
                ErrorKind::Denied
            }
            AggregatorError::Limit(_) => ErrorKind::Limit,
            AggregatorError::Down { .. } => ErrorKind::ServerFailed,
            AggregatorError::Client(c) => match c {
                ClientError::UnknownTool { .. } => ErrorKind::NotFound,
                ClientError::InvalidArguments { .. } => ErrorKind::Invalid,
                ClientError::Timeout { .. } | ClientError::ConnectTimeout { .. } => {
                    ErrorKind::Timeout
                }
                _ => ErrorKind::ServerFailed,
            },
        }
    }
}

impl From<ManagerError> for AggregatorError {
    fn from(e: ManagerError) -> Self {
        match e {
            ManagerError::NotInPool(s) => AggregatorError::UnknownServer(s),
            ManagerError::Closed => AggregatorError::SessionClosed,
            ManagerError::Client(c) => AggregatorError::Client(c),
            ManagerError::Limit(l) => AggregatorError::Limit(l.to_string()),
            ManagerError::Down { error, retry_in } => AggregatorError::Down { error, retry_in },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn client(e: ClientError) -> ErrorKind {
        AggregatorError::Client(e).kind()
    }

    #[test]
    fn every_error_has_one_kind() {
        let s = || "s".to_string();
        assert_eq!(
            AggregatorError::UnknownServer(s()).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            AggregatorError::UnknownResource(s()).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            AggregatorError::BadToolName(NameError(s())).kind(),
            ErrorKind::Invalid
        );
        assert_eq!(AggregatorError::SessionClosed.kind(), ErrorKind::Invalid);
        let filtered = AggregatorError::Filtered {
            server: s(),
            tool: s(),
        };
        assert_eq!(filtered.kind(), ErrorKind::Denied);
        let unknown = ClientError::UnknownTool {
            server: s(),
            tool: s(),
            message: s(),
        };
        assert_eq!(client(unknown), ErrorKind::NotFound);
        let timeout = ClientError::Timeout {
            server: s(),
            operation: s(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(client(timeout), ErrorKind::Timeout);
        let lost = ClientError::Transport {
            server: s(),
            message: s(),
        };
        assert_eq!(client(lost), ErrorKind::ServerFailed);
        assert_eq!(ErrorKind::ServerFailed.as_str(), "server-failed");
    }
}
