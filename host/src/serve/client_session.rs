//! [`RegistryServer`]: one client session of `serve`. It knows its tenant, picks the pool of
//! upstream connections that serves each server (the tenant's, the global one, or its own),
//! forwards upstream notifications to its client, and makes calls (tools and plugins).

use std::sync::{Arc, OnceLock};

use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value};

use super::ops::{CallLabels, OpenSession};
use super::relay::{forward, CallRelay, ClientRelay, ProgressRelay};
use super::setup::{PluginTool, Shared};
use super::tenant::Tenant;
use super::ForOurClient;
use crate::aggregator::{AggregatorError, ErrorKind, Session};
use crate::client::{CallOptions, ConnectHooks, ServerEvent, TraceContext};
use crate::config::Sharing;
use crate::names::ToolName;
use crate::plugin::{RunOptions, RunUsage};

/// One client session's MCP server.
#[derive(Clone)]
pub struct RegistryServer {
    pub(super) shared: Arc<Shared>,
    /// The tenant of this client session, fixed by its first request.
    tenant: Arc<OnceLock<Arc<Tenant>>>,
    /// Counts this session among its tenant's open ones (from its first request).
    open: Arc<OnceLock<OpenSession>>,
    /// Connections of its own, to `sharing: session` servers, made on first use.
    own: Arc<OnceLock<Arc<Session>>>,
    pub(super) client: Arc<ClientRelay>,
}

/// Whether a request belongs to a protocol session (stdio always; HTTP with
/// `Mcp-Session-Id`). 2026-07-28 requests have none.
pub(super) fn has_session(context: &RequestContext<RoleServer>) -> bool {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .is_none_or(|parts| parts.headers.contains_key("mcp-session-id"))
}

/// The caller's W3C trace context, from the request's `_meta`.
pub(super) fn trace_of(context: &RequestContext<RoleServer>) -> Option<TraceContext> {
    TraceContext::from_meta(&context.meta.0 .0)
}

/// Forwards `rx`'s notifications of the servers `tenant` sees to `client`, until the client
/// session ends.
fn spawn_forwarder(
    client: &Arc<ClientRelay>,
    tenant: Arc<Tenant>,
    mut rx: tokio::sync::broadcast::Receiver<ServerEvent>,
) {
    let forward_to = Arc::downgrade(client);
    let ended = client.ended();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = ended.cancelled() => break,
                event = rx.recv() => match event {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            };
            // A list change names no server to the client: always passed on (a reload
            // announces one for every server at once).
            let list_changed = matches!(
                event,
                ServerEvent::ToolsChanged(_)
                    | ServerEvent::PromptsChanged(_)
                    | ServerEvent::ResourcesChanged(_)
            );
            if !list_changed && !tenant.sees(event.server()) {
                continue;
            }
            let Some(client) = forward_to.upgrade() else {
                break;
            };
            let Some(peer) = client.peer() else { continue };
            forward(&peer, event).await;
        }
    });
}

impl RegistryServer {
    /// A client session's server; nothing is connected until it is used.
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            tenant: Arc::default(),
            open: Arc::default(),
            own: Arc::default(),
            client: Arc::new(ClientRelay::default()),
        }
    }

    /// The tenant of this request: the local one, or the one the HTTP front door let in. A
    /// client session belongs to the tenant of its first request; another's credentials
    /// cannot use it.
    pub(super) fn tenant(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<Arc<Tenant>, ErrorData> {
        let asking = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Arc<Tenant>>().cloned())
            .or_else(|| self.shared.tenants().local())
            .ok_or_else(|| ErrorData::invalid_request("unauthenticated request", None))?;
        if !has_session(context) {
            return Ok(asking);
        }
        let bound = self.tenant.get_or_init(|| {
            // The tenant's and the global pool's notifications reach this client.
            spawn_forwarder(&self.client, asking.clone(), asking.events.subscribe());
            let global = self.shared.tenants().global_events.subscribe();
            spawn_forwarder(&self.client, asking.clone(), global);
            let _ = self.open.set(self.shared.ops.session_opened(&asking.name));
            asking.clone()
        });
        // By name: a reload that changes the tenant's grants makes a new `Tenant`.
        if bound.name != asking.name {
            return Err(ErrorData::invalid_request(
                "this session belongs to another tenant",
                None,
            ));
        }
        Ok(asking)
    }

    /// The pool of upstream connections that serves `server` for this request.
    pub(super) fn pool(
        &self,
        tenant: &Arc<Tenant>,
        server: &str,
        context: &RequestContext<RoleServer>,
    ) -> Arc<Session> {
        self.pool_for(tenant, server, has_session(context))
    }

    /// The pool that serves `server` for a request with or without a protocol session.
    pub(super) fn pool_for(
        &self,
        tenant: &Arc<Tenant>,
        server: &str,
        with_session: bool,
    ) -> Arc<Session> {
        let tenants = self.shared.tenants();
        match tenants.sharing(server) {
            Sharing::Global => tenants.global.clone(),
            Sharing::Session if with_session => self.own_session(tenant),
            _ => tenant.pool.clone(),
        }
    }

    /// This client session's own connections (to `sharing: session` servers): upstream
    /// requests made outside any call go to this client too.
    pub(super) fn own_session(&self, tenant: &Arc<Tenant>) -> Arc<Session> {
        self.own
            .get_or_init(|| {
                let (tx, rx) = tokio::sync::broadcast::channel::<ServerEvent>(256);
                let fallback = CallRelay {
                    client: self.client.clone(),
                    request: None,
                };
                let hooks = ConnectHooks {
                    events: Some(tx),
                    relay: Some(Arc::new(fallback)),
                };
                let tenants = self.shared.tenants();
                let servers = tenants.per_session(tenant.servers());
                spawn_forwarder(&self.client, tenant.clone(), rx);
                let pool = Arc::new(tenant.aggregator.lazy_session_of(&servers, hooks));
                tenants.track_session_pool(tenant, &pool);
                pool
            })
            .clone()
    }

    pub(super) fn remember_peer(&self, context: &RequestContext<RoleServer>) {
        self.client.remember(context);
    }

    /// One listing of every upstream server the tenant sees, concurrently (the first listing
    /// also connects them); a server that fails is left out, not fatal.
    pub(super) async fn gather<T, F>(
        &self,
        tenant: &Arc<Tenant>,
        context: &RequestContext<RoleServer>,
        what: &str,
        list: impl Fn(Arc<Session>, String) -> F,
    ) -> Vec<T>
    where
        F: std::future::Future<Output = Result<Vec<T>, AggregatorError>>,
    {
        let servers = tenant.servers();
        let results = futures::future::join_all(
            servers
                .iter()
                .map(|s| list(self.pool(tenant, s, context), s.clone())),
        )
        .await;
        let mut all = Vec::new();
        for (server, result) in servers.iter().zip(results) {
            match result {
                Ok(items) => all.extend(items),
                Err(e) => {
                    tracing::warn!(server, error = %e, "cannot list {what}; leaving them out")
                }
            }
        }
        all
    }

    /// An alias's target, or the name itself.
    pub(super) fn unalias(&self, name: &str) -> String {
        self.shared
            .aggregator
            .registry()
            .aliases()
            .get(name)
            .map_or(name, String::as_str)
            .to_owned()
    }

    /// Calls an upstream tool for `tenant`: a tool it may not call is unknown, exactly as
    /// one that exists nowhere.
    pub(super) async fn call_upstream(
        &self,
        tenant: &Arc<Tenant>,
        name: &str,
        arguments: Option<Map<String, Value>>,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let unknown = || ErrorData::invalid_params(format!("unknown tool \"{name}\""), None);
        let name = ToolName::parse(name).map_err(|_| unknown())?;
        if !tenant.may_call(&name) || !self.shared.visible(name.server(), name.tool()) {
            return Err(unknown());
        }
        let relay = CallRelay {
            client: self.client.clone(),
            request: Some(context.id.clone()),
        };
        let mut options = CallOptions {
            relay: Some(Arc::new(relay)),
            trace: trace_of(context),
            ..CallOptions::default()
        };
        let progress = ProgressRelay::start(context).map(|(sink, relay)| {
            options.progress = Some(sink);
            relay
        });
        let pool = self.pool(tenant, name.server(), context);
        let started = std::time::Instant::now();
        let result = pool.call_tool_with(&name, arguments, options).await;
        if let Some(progress) = progress {
            progress.finish().await;
        }
        let outcome = match &result {
            Ok(r) if r.is_error == Some(true) => "tool-error",
            Ok(_) => "ok",
            Err(e) => e.kind().as_str(),
        };
        tracing::info!(
            target: "mcp_registry::calls",
            server = name.server(),
            tool = name.tool(),
            outcome,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "upstream call"
        );
        self.shared.ops.call(
            CallLabels {
                tenant: tenant.name.to_string(),
                server: name.server().to_owned(),
                tool: name.tool().to_owned(),
                outcome: outcome.to_owned(),
            },
            started.elapsed(),
        );
        match result {
            Ok(r) => Ok(r.for_our_client()),
            Err(e) => match e.kind() {
                ErrorKind::NotFound | ErrorKind::Denied => Err(unknown()),
                ErrorKind::Invalid => Err(ErrorData::invalid_params(e.to_string(), None)),
                ErrorKind::Limit => Err(limit_error(e.to_string())),
                // The server failed or timed out: a tool execution error the model can
                // read, as the spec recommends for failures during the call.
                _ => Ok(CallToolResult::error(vec![ContentBlock::text(
                    e.to_string(),
                )])),
            },
        }
    }

    /// Runs a plugin for `tenant`: under its policy, within the tenant's grants, its
    /// processes counted against the tenant's bounds.
    pub(super) async fn call_plugin(
        &self,
        tenant: &Arc<Tenant>,
        plugin: &PluginTool,
        arguments: Option<Map<String, Value>>,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let Some(host) = &self.shared.host else {
            return CallToolResult::error(vec![ContentBlock::text("no plugin host")]);
        };
        let input = Value::Object(arguments.unwrap_or_default()).to_string();
        let policy = plugin.policy.within(tenant.servers(), tenant.tool_globs());
        let usage = RunUsage::default();
        let mut options = RunOptions {
            aggregator: Some(tenant.aggregator.clone()),
            trace_context: trace_of(context),
            usage: Some(usage.clone()),
            ..RunOptions::default()
        };
        let progress = ProgressRelay::start(context).map(|(sink, relay)| {
            options.progress = Some(sink);
            relay
        });
        let outcome = host
            .run_with(&plugin.plugin, &input, &policy, options)
            .await;
        if let Some(progress) = progress {
            progress.finish().await;
        }
        let label = match &outcome {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        self.shared
            .ops
            .run(&tenant.name, plugin.plugin.name(), label, usage.fuel());
        match outcome {
            Ok(out) => match serde_json::from_str::<Value>(&out) {
                Ok(v) => {
                    let mut r = CallToolResult::success(vec![ContentBlock::text(out)]);
                    if v.is_object() {
                        r.structured_content = Some(v);
                    }
                    r
                }
                Err(_) => CallToolResult::success(vec![ContentBlock::text(out)]),
            },
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
        }
    }
}

/// A bound reached (processes, requests in flight, rate), as our client gets it: a
/// JSON-RPC error naming the bound, never a new process.
pub(super) fn limit_error(message: String) -> ErrorData {
    ErrorData::new(
        rmcp::model::ErrorCode(-32000),
        message.clone(),
        Some(serde_json::json!({"limit": message})),
    )
}
