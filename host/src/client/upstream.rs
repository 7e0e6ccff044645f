//! What is at the other end of a connection: a server process we started, or a remote
//! server at a URL. A connection asks it how the other end is doing (for its state and its
//! error messages) and ends it when the connection closes.

use std::time::Duration;

use super::process::{describe_exit, ServerProcess, ShutdownPolicy};

/// The other end of a [`super::ServerConnection`].
pub(super) enum Upstream {
    /// A process we spawned, speaking over its pipes.
    Process(ServerProcess),
    /// A remote server; the URL as messages may show it.
    Remote(String),
}

impl Upstream {
    /// The process id, for a process.
    pub(super) fn pid(&self) -> Option<u32> {
        match self {
            Upstream::Process(p) => Some(p.pid()),
            Upstream::Remote(_) => None,
        }
    }

    /// Whether this is a remote server.
    pub(super) fn is_remote(&self) -> bool {
        matches!(self, Upstream::Remote(_))
    }

    /// The URL as messages may show it, or the process id.
    pub(super) fn endpoint(&self) -> String {
        match self {
            Upstream::Process(p) => format!("pid {}", p.pid()),
            Upstream::Remote(url) => url.clone(),
        }
    }

    /// Whether the process has exited (a remote server's loss shows on the transport).
    pub(super) fn has_ended(&self) -> bool {
        match self {
            Upstream::Process(p) => p.exit_status().is_some(),
            Upstream::Remote(_) => false,
        }
    }

    /// Resolves when the process exits; never for a remote server.
    pub(super) async fn ended(&self) {
        match self {
            Upstream::Process(p) => {
                p.exited().await;
            }
            Upstream::Remote(_) => std::future::pending().await,
        }
    }

    /// For error messages: how the process ended and what it said.
    pub(super) fn describe(&self) -> String {
        match self {
            Upstream::Process(p) => p.describe(),
            Upstream::Remote(_) => String::new(),
        }
    }

    /// Gives a process that is failing up to `timeout` to exit and finish its stderr.
    pub(super) async fn settle(&self, timeout: Duration) {
        if let Upstream::Process(p) = self {
            p.settle(timeout).await;
        }
    }

    /// Ends the process with `policy` once its stdin is closed; a remote server has nothing
    /// of ours left to end once its transport is closed.
    pub(super) async fn shutdown(&self, policy: ShutdownPolicy) {
        if let Upstream::Process(p) = self {
            let status = p.shutdown(policy).await;
            tracing::debug!(pid = p.pid(), ?status, "server process ended");
        }
    }

    /// What it means that the transport closed: in words, for a connection that failed.
    pub(super) fn lost(&self) -> String {
        match self {
            Upstream::Process(p) => match p.exit_status() {
                Some(status) => format!(
                    "the server process {}{}",
                    describe_exit(&status),
                    p.describe_output()
                ),
                None => "the server process closed its pipes".into(),
            },
            Upstream::Remote(url) => format!("the connection to {url} was lost"),
        }
    }

    /// How a handshake's closed transport reads: "the server closed its stdout".
    pub(super) fn closed(&self) -> &'static str {
        match self {
            Upstream::Process(_) => "the server closed its stdout",
            Upstream::Remote(_) => "the connection closed",
        }
    }
}
