//! `mcp-registry serve`: the registry as one MCP server.
//!
//! Our client sees every selected server's tools and prompts as `server__name`, the
//! registry's aliases, every plugin as a tool of its own, and the servers' resources under
//! their own URIs. Upstream connections are persistent for the life of the front end
//! (connected lazily, restarted after a crash), tool lists are cached, and upstream
//! notifications (list changes, resource updates, progress, logs) are forwarded to our
//! client; upstream sampling and elicitation requests are relayed to it (see `ClientRelay`).
//!
//! Why one [`Session`] per front-end session: a client session (stdio, or HTTP with
//! `Mcp-Session-Id`) gets upstream processes of its own, so server-side state (a counter, a
//! memory graph) is not shared with other sessions. Requests without a protocol session
//! (2026-07-28 clients over HTTP have none) share one pool: the alternative, a pool per
//! request, spawns every server for every request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientResult, CompleteRequestParams,
    CompleteResult, ContentBlock, GetExtensions, GetPromptRequestParams, GetPromptResponse,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, Prompt, ReadResourceRequestParams,
    ReadResourceResponse, RequestId, ResourceUpdatedNotificationParam, ServerCapabilities,
    ServerConfig as ServerInfoConfig, ServerRequest, SubscribeRequestParams, Tool,
    UnsubscribeRequestParams,
};
use rmcp::service::{OriginatingRequestId, RequestContext};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, ServiceError, ServiceExt};
use serde_json::{Map, Value};

use crate::aggregator::{
    described, split_tool_name, Aggregator, AggregatorError, NamespacedPrompt, NamespacedTool,
    Session,
};
use crate::client::{ClientError, ConnectHooks, ProgressSink, RequestRelay, ServerEvent};
use crate::config::{ToolFilter, NAMESPACE_SEPARATOR};
use crate::plugin::{Plugin, PluginError, PluginHost, PluginPolicy};

/// Errors of the front end (set-up only; per-request errors go back to the client).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A `--filter` spec could not be parsed.
    #[error("--filter {spec:?}: {message}")]
    Filter {
        /// The spec.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// A server named on the command line or in a filter is not in the registry.
    #[error(transparent)]
    Aggregator(#[from] AggregatorError),
    /// A plugin could not be loaded or described.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A plugin's `describe` did not return the expected JSON.
    #[error("plugin {name}: describe() must return {{\"name\", \"description\", \"inputSchema\"}}: {message}")]
    Describe {
        /// Plugin file name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The transport failed.
    #[error("serve: {0}")]
    Io(String),
}

/// Parses the seed's `--filter` syntax: `server[:tool,tool|:-tool,-tool];server...`.
/// `'memory:get,set;github'` exposes `get` and `set` of `memory` and all of `github`;
/// `'memory:-delete'` exposes everything of `memory` but `delete`. Servers not named are hidden.
pub fn parse_filter(spec: &str) -> Result<BTreeMap<String, ToolFilter>, ServeError> {
    let err = |message: String| ServeError::Filter {
        spec: spec.to_owned(),
        message,
    };
    let mut out = BTreeMap::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (server, tools) = match part.split_once(':') {
            Some((s, t)) => (s.trim(), Some(t)),
            None => (part, None),
        };
        if server.is_empty() {
            return Err(err(format!("\"{part}\" has no server name")));
        }
        let filter = match tools {
            None => ToolFilter::All,
            Some(t) => {
                let names: Vec<&str> = t
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .collect();
                if names.is_empty() {
                    return Err(err(format!("server \"{server}\" has an empty tool list")));
                }
                let denied = names.iter().filter(|n| n.starts_with('-')).count();
                if denied == names.len() {
                    ToolFilter::Deny(names.iter().map(|n| n[1..].to_owned()).collect())
                } else if denied == 0 {
                    ToolFilter::Allow(names.iter().map(|n| n.to_string()).collect())
                } else {
                    return Err(err(format!(
                        "server \"{server}\" mixes allowed and -denied tools"
                    )));
                }
            }
        };
        out.insert(server.to_owned(), filter);
    }
    Ok(out)
}

/// A plugin exposed as a tool.
struct PluginTool {
    tool: Tool,
    plugin: Plugin,
    policy: PluginPolicy,
}

/// What every front-end session shares.
struct Shared {
    aggregator: Aggregator,
    servers: Vec<String>,
    filter: BTreeMap<String, ToolFilter>,
    host: Option<Arc<PluginHost>>,
    plugins: BTreeMap<String, PluginTool>,
    /// On HTTP, the upstream connections of requests that come without a protocol session
    /// (the 2026-07-28 era has none): one pool for all of them, never a process per request.
    stateless: Option<Arc<Session>>,
}

impl Shared {
    fn visible(&self, server: &str, tool: &str) -> bool {
        self.filter.get(server).is_none_or(|f| f.permits(tool))
    }
}

/// What to serve.
pub struct ServeOptions {
    /// Servers to expose (empty: all, or those named by the filter).
    pub servers: Vec<String>,
    /// `--filter` spec.
    pub filter: Option<String>,
    /// Plugins to expose as tools, with their policies.
    pub plugins: Vec<(String, std::path::PathBuf, PluginPolicy)>,
    /// Streamable HTTP address instead of stdio.
    pub http: Option<SocketAddr>,
}

/// One front-end session's MCP server.
#[derive(Clone)]
pub struct RegistryServer {
    shared: Arc<Shared>,
    /// This front-end session's own upstream connections, made on its first request that
    /// has a protocol session (stdio, or HTTP with `Mcp-Session-Id`).
    own: Arc<std::sync::OnceLock<Arc<Session>>>,
    client: Arc<ClientRelay>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Our client, as upstream servers reach it: their notifications are forwarded to it, and
/// their sampling and elicitation requests are relayed to it.
///
/// Why the calls in flight: on streamable HTTP a server-to-client request must travel on
/// the SSE stream of the client's request that caused it (a client may have no standalone
/// stream at all). An upstream request does not say which call it belongs to, so it is
/// tied to the latest call our client has in flight on that upstream server (exactly right
/// when there is one). On stdio the tie is harmless: there is only one stream.
#[derive(Default)]
struct ClientRelay {
    peer: Mutex<Option<Peer<RoleServer>>>,
    calls: Mutex<Vec<(String, RequestId)>>,
}

/// Registers one of our client's calls as in flight on `server` until dropped.
struct InFlight<'a> {
    relay: &'a ClientRelay,
    id: RequestId,
}

impl ClientRelay {
    fn peer(&self) -> Option<Peer<RoleServer>> {
        lock(&self.peer).clone()
    }

    fn remember(&self, context: &RequestContext<RoleServer>) {
        let mut peer = lock(&self.peer);
        if peer.is_none() {
            *peer = Some(context.peer.clone());
        }
    }

    fn in_flight(&self, server: &str, id: RequestId) -> InFlight<'_> {
        lock(&self.calls).push((server.to_owned(), id.clone()));
        InFlight { relay: self, id }
    }

    /// Sends an upstream server's request to our client on the stream of the call that
    /// caused it.
    async fn relay(
        &self,
        server: &str,
        mut request: ServerRequest,
        declared: impl Fn(&rmcp::model::ClientCapabilities) -> bool,
        what: &str,
    ) -> Result<ClientResult, ErrorData> {
        let peer = self.peer().ok_or_else(|| {
            ErrorData::internal_error(format!("{what}: no client is connected"), None)
        })?;
        if peer
            .peer_info()
            .is_some_and(|info| !declared(&info.capabilities))
        {
            return Err(ErrorData::invalid_request(
                format!("{what}: the client of mcp-registry serve does not support it"),
                None,
            ));
        }
        let originating = lock(&self.calls)
            .iter()
            .rev()
            .find(|(s, _)| s == server)
            .map(|(_, id)| id.clone());
        if let Some(id) = originating {
            request.extensions_mut().insert(OriginatingRequestId(id));
        }
        // A task of its own: inside the upstream connection's handler rmcp would stamp the
        // *upstream* request's id over the marker set above.
        let sent = tokio::spawn(async move { peer.send_request(request).await })
            .await
            .map_err(|e| ErrorData::internal_error(format!("{what}: {e}"), None))?;
        sent.map_err(|e| match e {
            ServiceError::McpError(data) => data,
            other => ErrorData::internal_error(
                format!("{what}: relaying to the client failed: {other}"),
                None,
            ),
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut calls = lock(&self.relay.calls);
        if let Some(i) = calls.iter().rposition(|(_, id)| *id == self.id) {
            calls.remove(i);
        }
    }
}

#[async_trait::async_trait]
#[allow(deprecated)] // sampling: deprecated for 2026-07-28, part of 2025-11-25
impl RequestRelay for ClientRelay {
    async fn create_message(
        &self,
        server: &str,
        params: rmcp::model::CreateMessageRequestParams,
    ) -> Result<rmcp::model::CreateMessageResult, ErrorData> {
        let request = ServerRequest::CreateMessageRequest(rmcp::model::Request::new(params));
        match self
            .relay(server, request, |c| c.sampling.is_some(), "sampling")
            .await?
        {
            ClientResult::CreateMessageResult(r) => Ok(*r),
            other => Err(unexpected("sampling/createMessage", &other)),
        }
    }

    async fn create_elicitation(
        &self,
        server: &str,
        params: rmcp::model::ElicitRequestParams,
    ) -> Result<rmcp::model::ElicitResult, ErrorData> {
        let request = ServerRequest::ElicitRequest(rmcp::model::Request::new(params));
        match self
            .relay(server, request, |c| c.elicitation.is_some(), "elicitation")
            .await?
        {
            ClientResult::ElicitResult(r) => Ok(r),
            other => Err(unexpected("elicitation/create", &other)),
        }
    }
}

fn unexpected(method: &str, answer: &ClientResult) -> ErrorData {
    ErrorData::internal_error(
        format!("{method}: the client answered with an unexpected result: {answer:?}"),
        None,
    )
}

impl RegistryServer {
    /// A front-end session's server; nothing is connected until it is used.
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            own: Arc::default(),
            client: Arc::new(ClientRelay::default()),
        }
    }

    /// The upstream connections that serve this request: the shared stateless pool for an
    /// HTTP request without a protocol session, else this front-end session's own.
    fn session(&self, context: &RequestContext<RoleServer>) -> Arc<Session> {
        if let Some(pool) = &self.shared.stateless {
            let has_session = context
                .extensions
                .get::<axum::http::request::Parts>()
                .is_some_and(|parts| parts.headers.contains_key("mcp-session-id"));
            if !has_session {
                return pool.clone();
            }
        }
        self.own_session()
    }

    /// This front-end session's own upstream connections, created on first use: upstream
    /// notifications are forwarded to our client, upstream sampling and elicitation
    /// requests relayed to it.
    fn own_session(&self) -> Arc<Session> {
        self.own
            .get_or_init(|| {
                let (tx, mut rx) = tokio::sync::broadcast::channel::<ServerEvent>(256);
                let hooks = ConnectHooks {
                    events: Some(tx),
                    relay: Some(self.client.clone()),
                };
                let session = Arc::new(
                    self.shared
                        .aggregator
                        .lazy_session_of(&self.shared.servers, hooks),
                );
                // The task ends when the session (and with it the channel's sender) is dropped.
                let forward_to = Arc::downgrade(&self.client);
                tokio::spawn(async move {
                    loop {
                        let event = match rx.recv().await {
                            Ok(event) => event,
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        };
                        let Some(client) = forward_to.upgrade() else {
                            break;
                        };
                        let Some(peer) = client.peer() else { continue };
                        forward(&peer, event).await;
                    }
                });
                session
            })
            .clone()
    }

    fn remember_peer(&self, context: &RequestContext<RoleServer>) {
        self.client.remember(context);
    }

    /// One listing of every upstream server, concurrently (the first listing also connects
    /// them); a server that fails is left out, not fatal.
    async fn gather<'a, T, F>(&'a self, what: &str, list: impl Fn(&'a str) -> F) -> Vec<T>
    where
        F: std::future::Future<Output = Result<Vec<T>, AggregatorError>>,
    {
        let servers = &self.shared.servers;
        let results = futures::future::join_all(servers.iter().map(|s| list(s))).await;
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

    /// Every visible upstream tool.
    async fn upstream_tools(&self, session: &Session) -> Vec<NamespacedTool> {
        let mut tools = self.gather("tools", |s| session.list_server_tools(s)).await;
        tools.retain(|t| self.shared.visible(&t.server, &t.tool.name));
        tools
    }

    /// Every upstream prompt.
    async fn upstream_prompts(&self, session: &Session) -> Vec<NamespacedPrompt> {
        self.gather("prompts", |s| session.list_server_prompts(s))
            .await
    }

    /// An alias's target, or the name itself.
    fn unalias<'a>(&'a self, name: &'a str) -> &'a str {
        self.shared
            .aggregator
            .registry()
            .aliases()
            .get(name)
            .map_or(name, String::as_str)
    }

    async fn call_upstream(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let (server, tool) =
            split_tool_name(name).map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        if !self.shared.servers.iter().any(|s| s == server) || !self.shared.visible(server, tool) {
            return Err(ErrorData::invalid_params(
                format!("unknown tool \"{name}\""),
                None,
            ));
        }
        let _in_flight = self.client.in_flight(server, context.id.clone());
        let session = self.session(context);
        let result = match ProgressRelay::start(context) {
            None => session.call_tool(name, arguments).await,
            Some((sink, relay)) => {
                let result = session.call_tool_with_progress(name, arguments, sink).await;
                relay.finish().await;
                result
            }
        };
        match result {
            Ok(r) => Ok(r.for_our_client()),
            Err(
                AggregatorError::Client(ClientError::UnknownTool { .. })
                | AggregatorError::UnknownServer(_),
            ) => Err(ErrorData::invalid_params(
                format!("unknown tool \"{name}\""),
                None,
            )),
            Err(AggregatorError::BadToolName(m) | AggregatorError::InvalidArguments(m)) => {
                Err(ErrorData::invalid_params(m, None))
            }
            // The server failed, timed out or is filtered: a tool execution error the model
            // can read, as the spec recommends for failures during the call.
            Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(
                e.to_string(),
            )])),
        }
    }

    async fn call_plugin(
        &self,
        plugin: &PluginTool,
        arguments: Option<Map<String, Value>>,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let Some(host) = &self.shared.host else {
            return CallToolResult::error(vec![ContentBlock::text("no plugin host")]);
        };
        let input = Value::Object(arguments.unwrap_or_default()).to_string();
        let outcome = match ProgressRelay::start(context) {
            None => host.run(&plugin.plugin, &input, &plugin.policy).await,
            Some((sink, relay)) => {
                let outcome = host
                    .run_with_progress(&plugin.plugin, &input, &plugin.policy, sink)
                    .await;
                relay.finish().await;
                outcome
            }
        };
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

/// Sends the progress of one of our client's requests (an upstream call's, a plugin run's) to
/// our client under the client's own token, increasing.
struct ProgressRelay(tokio::task::JoinHandle<()>);

/// How many progress notifications may wait for our client before more are dropped.
const PROGRESS_BACKLOG: usize = 64;

impl ProgressRelay {
    /// A sink and its relay, if the client asked for progress (a `progressToken`).
    fn start(context: &RequestContext<RoleServer>) -> Option<(ProgressSink, ProgressRelay)> {
        let token = context.meta.get_progress_token()?;
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<ProgressNotificationParam>(PROGRESS_BACKLOG);
        let peer = context.peer.clone();
        let relay = tokio::spawn(async move {
            // The spec wants progress to increase, so a value that does not (NaN included) is
            // dropped: a plugin may report anything, and rmcp runs each incoming
            // notification's handler in a task of its own, so an upstream's progress can
            // arrive here out of order.
            let mut last = f64::NEG_INFINITY;
            while let Some(mut p) = rx.recv().await {
                if p.progress.is_nan() || p.progress <= last {
                    continue;
                }
                last = p.progress;
                p.progress_token = token.clone();
                let _ = peer.notify_progress(p).await;
            }
        });
        Some((tx, ProgressRelay(relay)))
    }

    /// Waits until everything sent before the sink was dropped reached our client.
    async fn finish(self) {
        let _ = self.0.await;
    }
}

/// An upstream's result as our client must get it: in our client's protocol era, not the
/// upstream's, and under our identity. A 2026-07-28 client requires `resultType`, which a
/// 2025-11-25 upstream never sends (rmcp removes it again for a legacy client); the
/// upstream's own protocol metadata (`io.modelcontextprotocol/serverInfo`, ...) describes the
/// upstream, not the server our client talks to, so it stays behind.
trait ForOurClient {
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

/// An aggregator error on a resources/prompts/completion request, as the error our client
/// gets.
fn request_error(e: AggregatorError) -> ErrorData {
    match e {
        AggregatorError::UnknownResource(uri) => ErrorData::resource_not_found(
            format!("no upstream server serves resource \"{uri}\""),
            Some(serde_json::json!({ "uri": uri })),
        ),
        AggregatorError::UnknownServer(_)
        | AggregatorError::BadToolName(_)
        | AggregatorError::InvalidArguments(_)
        | AggregatorError::Filtered { .. }
        | AggregatorError::Client(ClientError::InvalidArguments { .. })
        | AggregatorError::Client(ClientError::UnknownTool { .. }) => {
            ErrorData::invalid_params(e.to_string(), None)
        }
        other => ErrorData::internal_error(other.to_string(), None),
    }
}

/// Forwards one upstream notification to our client.
async fn forward(peer: &Peer<RoleServer>, event: ServerEvent) {
    let _ = match event {
        ServerEvent::ToolsChanged(server) => {
            tracing::debug!(server, "forwarding tools/list_changed");
            peer.notify_tool_list_changed().await
        }
        ServerEvent::ResourcesChanged(_) => peer.notify_resource_list_changed().await,
        ServerEvent::PromptsChanged(_) => peer.notify_prompt_list_changed().await,
        ServerEvent::ResourceUpdated { uri, .. } => {
            peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                .await
        }
        #[allow(deprecated)] // logging: part of 2025-11-25
        ServerEvent::Log {
            server,
            mut message,
        } => {
            // Keep the origin visible: logger "server" or "server/logger".
            message.logger = Some(match message.logger.take() {
                Some(l) => format!("{server}/{l}"),
                None => server,
            });
            peer.notify_logging_message(message).await
        }
    };
}

fn alias_tool(alias: &str, target: &NamespacedTool) -> Tool {
    let mut tool = target.tool.clone();
    tool.name = alias.to_owned().into();
    tool.description = Some(format!("alias of {}: {}", target.name, target.description()).into());
    tool
}

impl ServerHandler for RegistryServer {
    fn get_info(&self) -> ServerInfoConfig {
        ServerInfoConfig::new(
            ServerCapabilities::builder()
                .enable_completions()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(rmcp::model::Implementation::new(
            "mcp-registry",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "Tools and prompts of several MCP servers, named SERVER__NAME, plus aliases, plugin \
             tools, and the servers' resources under their own URIs."
                .to_string(),
        )
    }

    // Logging is deprecated for 2026-07-28 but still part of 2025-11-25, which clients use.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // We send no log notifications of our own yet; accept the level as the spec asks.
        tracing::debug!(level = ?request.level, "client set the log level");
        Ok(())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.remember_peer(&context);
        let session = self.session(&context);
        let resources = self
            .gather("resources", |s| session.list_server_resources(s))
            .await;
        // Servers are listed in name order; a URI two servers list is the first one's (the
        // session routes it there too).
        let mut seen = std::collections::HashSet::new();
        Ok(ListResourcesResult::with_all_items(
            resources
                .into_iter()
                .map(|r| r.item)
                .filter(|r| seen.insert(r.uri.clone()))
                .collect(),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        self.remember_peer(&context);
        let session = self.session(&context);
        let templates = self
            .gather("resource templates", |s| {
                session.list_server_resource_templates(s)
            })
            .await;
        Ok(ListResourceTemplatesResult::with_all_items(
            templates.into_iter().map(|t| t.item).collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.remember_peer(&context);
        self.session(&context)
            .read_resource(&request.uri)
            .await
            .map(|r| ReadResourceResponse::Complete(r.for_our_client()))
            .map_err(request_error)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.remember_peer(&context);
        self.session(&context)
            .subscribe(&request.uri)
            .await
            .map_err(request_error)
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.remember_peer(&context);
        self.session(&context)
            .unsubscribe(&request.uri)
            .await
            .map_err(request_error)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        self.remember_peer(&context);
        let upstream = self.upstream_prompts(&self.session(&context)).await;
        let mut prompts: Vec<Prompt> = Vec::new();
        for p in &upstream {
            let mut prompt = p.prompt.clone();
            prompt.name = p.name.clone();
            prompt.description = Some(described(&p.server, p.prompt.description.as_deref()));
            prompts.push(prompt);
        }
        for (alias, target) in self.shared.aggregator.registry().aliases() {
            if let Some(p) = upstream.iter().find(|p| &p.name == target) {
                let mut prompt = p.prompt.clone();
                prompt.name = alias.clone();
                prompt.description = Some(format!(
                    "alias of {}: {}",
                    p.name,
                    described(&p.server, p.prompt.description.as_deref())
                ));
                prompts.push(prompt);
            }
        }
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.remember_peer(&context);
        self.session(&context)
            .get_prompt(self.unalias(&request.name), request.arguments)
            .await
            .map(|r| GetPromptResponse::Complete(r.for_our_client()))
            .map_err(request_error)
    }

    async fn complete(
        &self,
        mut request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.remember_peer(&context);
        if let rmcp::model::Reference::Prompt(prompt) = &mut request.r#ref {
            prompt.name = self.unalias(&prompt.name).to_owned();
        }
        self.session(&context)
            .complete(request)
            .await
            .map(ForOurClient::for_our_client)
            .map_err(request_error)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.remember_peer(&context);
        let upstream = self.upstream_tools(&self.session(&context)).await;
        let mut tools: Vec<Tool> = Vec::new();
        for t in &upstream {
            let mut tool = t.tool.clone();
            tool.name = t.name.clone().into();
            tool.description = Some(t.description().into());
            tools.push(tool);
        }
        for (alias, target) in self.shared.aggregator.registry().aliases() {
            if let Some(t) = upstream.iter().find(|t| &t.name == target) {
                tools.push(alias_tool(alias, t));
            }
        }
        tools.extend(self.shared.plugins.values().map(|p| p.tool.clone()));
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.remember_peer(&context);
        let name = request.name.to_string();
        let arguments = request.arguments;
        let call = async {
            if let Some(plugin) = self.shared.plugins.get(&name) {
                return Ok(self.call_plugin(plugin, arguments, &context).await);
            }
            let target = match self.shared.aggregator.registry().aliases().get(&name) {
                Some(target) => target.clone(),
                None if name.contains(NAMESPACE_SEPARATOR) => name.clone(),
                None => {
                    return Err(ErrorData::invalid_params(
                        format!("unknown tool \"{name}\""),
                        None,
                    ))
                }
            };
            self.call_upstream(&target, arguments, &context).await
        };
        // A `notifications/cancelled` from our client drops the call: an upstream request
        // is cancelled in turn (rmcp sends `notifications/cancelled` when its call future is
        // dropped), a plugin run's Store and sessions are torn down.
        tokio::select! {
            result = call => result.map(CallToolResponse::Complete),
            _ = context.ct.cancelled() => {
                tracing::info!(tool = %name, "cancelled by the client");
                Err(ErrorData::internal_error("cancelled", None))
            }
        }
    }
}

async fn build_shared(
    aggregator: Aggregator,
    options: &ServeOptions,
) -> Result<Arc<Shared>, ServeError> {
    let filter = match &options.filter {
        Some(spec) => parse_filter(spec)?,
        None => BTreeMap::new(),
    };
    let mut servers: Vec<String> = if !options.servers.is_empty() {
        options.servers.clone()
    } else if !filter.is_empty() {
        filter.keys().cloned().collect()
    } else {
        aggregator.registry().servers().keys().cloned().collect()
    };
    servers.sort();
    servers.dedup();
    for s in servers.iter().chain(filter.keys()) {
        if aggregator.registry().server(s).is_none() {
            return Err(AggregatorError::UnknownServer(s.clone()).into());
        }
    }
    let mut plugins = BTreeMap::new();
    let host = if options.plugins.is_empty() {
        None
    } else {
        let host = Arc::new(PluginHost::new(
            aggregator.clone(),
            crate::plugin::default_cache_dir(),
        )?);
        for (name, path, policy) in &options.plugins {
            let plugin = host.load_file_as(name, path)?;
            let text = host.describe(&plugin).await?;
            let describe_err = |message: String| ServeError::Describe {
                name: name.clone(),
                message,
            };
            let d: Value = serde_json::from_str(&text).map_err(|e| describe_err(e.to_string()))?;
            let tool_name = d["name"].as_str().unwrap_or(name).to_owned();
            let description = d["description"].as_str().unwrap_or("").to_owned();
            let schema = match d.get("inputSchema") {
                Some(Value::Object(m)) => m.clone(),
                None => serde_json::json!({"type": "object"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                Some(_) => return Err(describe_err("inputSchema is not an object".into())),
            };
            let tool = Tool::new(
                tool_name.clone(),
                format!("[plugin] {description}"),
                Arc::new(schema),
            );
            plugins.insert(
                tool_name,
                PluginTool {
                    tool,
                    plugin,
                    policy: policy.clone(),
                },
            );
        }
        Some(host)
    };
    let stateless = options
        .http
        .map(|_| Arc::new(aggregator.lazy_session_of(&servers, ConnectHooks::default())));
    Ok(Arc::new(Shared {
        aggregator,
        servers,
        filter,
        host,
        plugins,
        stateless,
    }))
}

/// Serves until the client goes away (stdio: stdin closes) or, for HTTP, until Ctrl-C.
/// Every upstream process is closed before this returns.
pub async fn serve(aggregator: Aggregator, options: ServeOptions) -> Result<(), ServeError> {
    let shared = build_shared(aggregator, &options).await?;
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
        Some(addr) => serve_http(shared, addr).await,
    }
}

async fn serve_http(shared: Arc<Shared>, addr: SocketAddr) -> Result<(), ServeError> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };

    let ct = tokio_util::sync::CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default();
    config.cancellation_token = ct.child_token();
    if !addr.ip().is_loopback() {
        config.allowed_hosts.push(addr.ip().to_string());
    }
    let factory_shared = shared.clone();
    let sessions = Arc::new(LocalSessionManager::default());
    let service = StreamableHttpService::new(
        move || Ok(RegistryServer::new(factory_shared.clone())),
        sessions.clone(),
        config,
    );
    let router =
        axum::Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn(move |request, next| {
                session_delete_status(sessions.clone(), request, next)
            }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Io(format!("bind {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Io(e.to_string()))?;
    // Responses (SSE above all) are written in several pieces; with Nagle's algorithm on,
    // a client that delays its ACKs (Node's fetch does) waits ~40 ms for each of them.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // Tests and scripts read the bound address (useful with port 0) from stderr.
    eprintln!("mcp-registry: serving MCP on http://{local}/mcp");
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            ct.cancel();
        })
        .await
        .map_err(|e| ServeError::Io(e.to_string()));
    if let Some(pool) = &shared.stateless {
        pool.close().await;
    }
    shared.aggregator.shutdown().await;
    served
}

/// rmcp answers a session's `DELETE` with 202 and accepts one for a session that is gone;
/// clients expect 200 (the Python SDK logs 202 as a failed termination) and 404 for a
/// session that does not exist.
async fn session_delete_status(
    sessions: Arc<rmcp::transport::streamable_http_server::session::local::LocalSessionManager>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use rmcp::transport::streamable_http_server::session::SessionManager;
    if request.method() != axum::http::Method::DELETE {
        return next.run(request).await;
    }
    let id = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(Arc::<str>::from);
    if let Some(id) = &id {
        if !sessions.has_session(id).await.unwrap_or(true) {
            let mut gone =
                axum::response::Response::new(axum::body::Body::from("session not found"));
            *gone.status_mut() = axum::http::StatusCode::NOT_FOUND;
            return gone;
        }
    }
    let mut response = next.run(request).await;
    if response.status() == axum::http::StatusCode::ACCEPTED {
        *response.status_mut() = axum::http::StatusCode::OK;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_specs() {
        let f = parse_filter("memory:get,set;github").unwrap();
        assert_eq!(
            f["memory"],
            ToolFilter::Allow(vec!["get".into(), "set".into()])
        );
        assert_eq!(f["github"], ToolFilter::All);
        let f = parse_filter("memory:-delete").unwrap();
        assert_eq!(f["memory"], ToolFilter::Deny(vec!["delete".into()]));
        assert!(parse_filter("memory:get,-set").is_err());
        assert!(parse_filter(":x").is_err());
        assert!(parse_filter("m:").is_err());
    }
}
