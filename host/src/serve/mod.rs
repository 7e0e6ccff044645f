//! `mcp-registry serve`: the registry as one MCP server.
//!
//! Our client sees every selected server's tools and prompts as `server__name`, the
//! registry's aliases, every plugin as a tool of its own, and the servers' resources under
//! their own URIs. Upstream connections are persistent for the life of the front end
//! (connected lazily, restarted after a crash), tool lists are cached, and upstream
//! notifications (list changes, resource updates, progress, logs) are forwarded to our
//! client; upstream sampling and elicitation requests are relayed to it.
//!
//! Why one [`Session`](crate::Session) per front-end session: a client session (stdio, or
//! HTTP with `Mcp-Session-Id`) gets upstream processes of its own, so server-side state (a
//! counter, a memory graph) is not shared with other sessions. Requests without a protocol
//! session (2026-07-28 clients over HTTP have none) share one pool: the alternative, a pool
//! per request, spawns every server for every request.
//!
//! Files: `setup` (what all front-end sessions share), `handler` (the `ServerHandler`),
//! `relay` (notifications, progress and server requests on their way to our client),
//! `http` (streamable HTTP).

use std::net::SocketAddr;

use rmcp::ServiceExt;

use crate::aggregator::{Aggregator, AggregatorError};
use crate::config::FilterSpecError;
use crate::plugin::{PluginError, PluginPolicy};

mod handler;
mod http;
mod relay;
mod setup;

pub use handler::RegistryServer;

/// Errors of the front end (set-up only; per-request errors go back to the client).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A `--filter` spec could not be parsed.
    #[error(transparent)]
    Filter(#[from] FilterSpecError),
    /// A server named on the command line or in a filter is not in the registry.
    #[error(transparent)]
    Aggregator(#[from] AggregatorError),
    /// A plugin could not be loaded or described.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The transport failed.
    #[error("serve: {0}")]
    Io(String),
}

/// What to serve.
pub struct ServeOptions {
    /// Servers to expose (empty: all, or those named by the filter).
    pub servers: Vec<String>,
    /// `--filter` spec.
    pub filter: Option<String>,
    /// Plugins to expose as tools, with their policies.
    pub plugins: Vec<(String, std::path::PathBuf, PluginPolicy)>,
    /// Grant each plugin what its `describe` requests (as far as the registry has it), on
    /// top of its policy.
    pub allow_requested: bool,
    /// Streamable HTTP address instead of stdio.
    pub http: Option<SocketAddr>,
}

/// Serves until the client goes away (stdio: stdin closes) or, for HTTP, until the process
/// is told to stop. Every upstream process is closed before this returns.
pub async fn serve(aggregator: Aggregator, options: ServeOptions) -> Result<(), ServeError> {
    let shared = setup::Shared::build(aggregator, &options).await?;
    match options.http {
        None => {
            let shared_aggregator = shared.aggregator.clone();
            let server = RegistryServer::new(shared);
            let session = server.own_session();
            let running = server
                .serve(rmcp::transport::stdio_pipes())
                .await
                .map_err(|e| ServeError::Io(e.to_string()))?;
            let _ = running.waiting().await;
            session.close().await;
            shared_aggregator.shutdown().await;
            Ok(())
        }
        Some(addr) => http::serve_http(shared, addr).await,
    }
}
