//! `mcp-registry serve`: the registry as one MCP server.
//!
//! Our client sees every selected server's tools and prompts as `server__name`, the
//! registry's aliases, every plugin as a tool of its own, and the servers' resources under
//! their own URIs. Upstream connections are persistent for the life of the front end
//! (connected lazily, restarted after a crash, closed when idle), tool lists are cached, and
//! upstream notifications (list changes, resource updates, progress, logs) are forwarded to
//! our client; upstream sampling and elicitation requests are relayed to it.
//!
//! Why pools belong to tenants, not to client sessions: a tenant is an identity, and all of
//! its client sessions (and the session-less requests of 2026-07-28 clients) share one pool of
//! upstream processes, so server-side state (a counter, a memory graph) is the tenant's and a
//! client that reconnects finds it again; a server marked `sharing: session` gets a pool per
//! client session instead, and `sharing: global` one pool for every tenant (`tenant`).
//! Without `--tenants` everything belongs to one local tenant.
//!
//! A request's way in, file by file: `http` (the front door: body bounds, authentication to
//! a tenant, the tenants snapshot it was let in under) -> `client_session` (the client
//! session's tenant, fixed by its first request; its own pool) -> `request` (one
//! [`RequestScope`](request::RequestScope) per request: tenant, snapshot, protocol session,
//! trace, and the pool of each server chosen once) -> `handler` (each MCP method, on the
//! scope) -> `calls` / `code_tools` (a tool, a plugin run, code mode's `search` and
//! `execute`) -> the pool's [`Session`](crate::Session), a connection, the upstream. What
//! comes back travels through `relay`. `setup` holds what every client session shares, `ops`
//! the metrics and draining, `reload` the configuration's reloading.

use std::net::SocketAddr;
use std::time::Duration;

use rmcp::model::{CallToolResult, CompleteResult};
use rmcp::ServiceExt;

use crate::aggregator::{Aggregator, AggregatorError};
use crate::config::tenants::TenantsConfig;
use crate::config::{FilterSpecError, JsonFileError};
use crate::plugin::PluginError;

mod auth;
mod calls;
mod client_session;
mod code_tools;
mod door;
mod handler;
mod http;
mod input;
mod ops;
mod rate;
mod receive;
mod relay;
mod reload;
mod request;
mod sessions;
mod setup;
mod stall;
mod tasks;
mod tenant;

pub use client_session::RegistryServer;
pub use http::PublicUrl;
pub use reload::ReloadSources;

/// Whether `serve` lists the plain tools beside `search` and `execute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeModeTools {
    /// `search` and `execute` beside every plain tool.
    Alongside,
    /// Only `search` and `execute`.
    Only,
}

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
    /// The code-mode engine could not be loaded.
    #[error(transparent)]
    CodeMode(#[from] crate::codemode::CodeModeError),
    /// The tenants file is wrong (it names the file, the tenant and the field).
    #[error(transparent)]
    Tenants(#[from] JsonFileError),
    /// The set-up cannot be served safely, or at all.
    #[error("serve: {0}")]
    Setup(String),
    /// The transport failed.
    #[error("serve: {0}")]
    Io(String),
}

/// What to serve.
pub struct ServeOptions {
    /// Servers to expose (empty: all, or those named by the filter).
    pub servers: Vec<String>,
    /// Expose this project's servers (read again on reload) instead.
    pub project: Option<String>,
    /// `--filter` spec.
    pub filter: Option<String>,
    /// Plugins to expose as tools, with their policies.
    pub plugins: Vec<crate::plugin::PluginSpec>,
    /// Grant each plugin what its `describe` requests (as far as the registry has it), on
    /// top of its policy.
    pub allow_requested: bool,
    /// Streamable HTTP address instead of stdio.
    pub http: Option<SocketAddr>,
    /// The URL clients reach the HTTP front end at (needed for a non-loopback address).
    pub public_url: Option<PublicUrl>,
    /// Tenants (HTTP): who may call, with what credentials, reaching what.
    pub tenants: Option<TenantsConfig>,
    /// Serve a non-loopback address without `tenants` (anyone who reaches the port gets
    /// everything).
    pub insecure_no_auth: bool,
    /// Server processes alive at once, for the whole host.
    pub max_processes: usize,
    /// Close an upstream connection (and the HTTP session of a client) unused this long.
    pub idle_timeout: Duration,
    /// How long a listing waits for servers that are still connecting; those that miss it
    /// are left out, named in the result's `_meta`, and announced by `list_changed` when
    /// they come up.
    pub list_wait: Duration,
    /// Offer `search` and `execute` (code mode), beside the plain tools or instead of them.
    pub code_mode: Option<CodeModeTools>,
    /// HTTP: how long a drain (SIGTERM, SIGINT) waits for requests in flight.
    pub drain_timeout: Duration,
    /// HTTP: serve `/metrics`, `/healthz` and `/readyz` on this address too (with tenants,
    /// the only place `/metrics` is served: it names them).
    pub metrics: Option<SocketAddr>,
    /// Where the registry and tenants files are: read again on SIGHUP and when they change
    /// (`None`: no reloading).
    pub reload: Option<ReloadSources>,
}

/// The default drain timeout.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The default bound on server processes: 64 per core.
pub fn default_max_processes() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 64
}

/// The default [`ServeOptions::list_wait`].
pub const DEFAULT_LIST_WAIT: Duration = Duration::from_secs(5);

/// The default idle timeout of upstream connections and HTTP client sessions.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Serves until the client goes away (stdio: stdin closes) or, for HTTP, until the process
/// is told to stop (SIGTERM or SIGINT: then it drains). SIGHUP, or a change to the files of
/// [`ServeOptions::reload`], reloads the configuration. Every upstream process is closed
/// before this returns.
pub async fn serve(aggregator: Aggregator, options: ServeOptions) -> Result<(), ServeError> {
    if let Some(addr) = options.http {
        if !addr.ip().is_loopback() && options.tenants.is_none() && !options.insecure_no_auth {
            return Err(ServeError::Setup(format!(
                "refusing to serve {addr} without --tenants: anyone who reaches it would get \
                 every server and plugin; give --tenants FILE, or --insecure-no-auth to do it anyway"
            )));
        }
        if !addr.ip().is_loopback() && options.public_url.is_none() {
            return Err(ServeError::Setup(format!(
                "serving {addr} needs --public-url URL, the address clients reach it at \
                 (https://mcp.example/mcp behind an ingress): requests must name its host \
                 (a defence against DNS rebinding), and the OAuth metadata names it"
            )));
        }
    }
    if options.http.is_none() && options.tenants.is_some() {
        return Err(ServeError::Setup(
            "--tenants needs --http: a stdio client is the one local user".into(),
        ));
    }
    let _upstreams = aggregator.shutdown_guard();
    let shared = setup::Shared::build(aggregator, &options).await?;
    shared.reap_idle(options.idle_timeout);
    shared.check_filter_at_start();
    if let Some(sources) = &options.reload {
        reload::watch(&shared, sources.clone());
    }
    match options.http {
        None => {
            let server = RegistryServer::new(shared.clone());
            let running = server
                .serve(rmcp::transport::stdio_pipes())
                .await
                .map_err(|e| ServeError::Io(e.to_string()))?;
            let _ = running.waiting().await;
            shared.close().await;
            Ok(())
        }
        Some(addr) => http::serve_http(shared, addr, &options).await,
    }
}

/// An upstream's result as our client must get it: in our client's protocol era, not the
/// upstream's, and under our identity. A 2026-07-28 client requires `resultType`, which a
/// 2025-11-25 upstream never sends (rmcp removes it again for a legacy client); the
/// upstream's own protocol metadata (`io.modelcontextprotocol/serverInfo`, ...) describes the
/// upstream, not the server our client talks to, so it stays behind.
pub(crate) trait ForOurClient {
    /// The result as our client must get it.
    fn for_our_client(self) -> Self;
}

macro_rules! for_our_client {
    ($($result:ty),*) => {$(
        impl ForOurClient for $result {
            fn for_our_client(mut self) -> Self {
                self.result_type = Some(rmcp::model::ResultType::COMPLETE);
                if let Some(meta) = self.meta.as_mut() {
                    meta.0.retain(|key, _| !key.starts_with("io.modelcontextprotocol/"));
                    if meta.0.is_empty() {
                        self.meta = None;
                    }
                }
                self
            }
        }
    )*};
}

for_our_client!(
    CallToolResult,
    rmcp::model::ReadResourceResult,
    rmcp::model::GetPromptResult,
    CompleteResult
);
