//! [`RegistryServer`]: one front-end session's MCP server, the `ServerHandler` our client
//! talks to. It picks the upstream connections that serve a request, lists and calls
//! through them, and runs plugins exposed as tools.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    ContentBlock, GetPromptRequestParams, GetPromptResponse, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    Prompt, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig as ServerInfoConfig, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value};

use super::relay::{forward, CallRelay, ClientRelay, ProgressRelay};
use super::setup::{PluginTool, Shared};
use crate::aggregator::{
    described, AggregatorError, ErrorKind, NamespacedPrompt, NamespacedTool, Session,
};
use crate::client::{CallOptions, ConnectHooks, ServerEvent};
use crate::names::ToolName;
use crate::plugin::RunOptions;

/// One front-end session's MCP server.
#[derive(Clone)]
pub struct RegistryServer {
    shared: Arc<Shared>,
    /// This front-end session's own upstream connections, made on its first request that
    /// has a protocol session (stdio, or HTTP with `Mcp-Session-Id`).
    own: Arc<std::sync::OnceLock<Arc<Session>>>,
    client: Arc<ClientRelay>,
}

impl RegistryServer {
    /// A front-end session's server; nothing is connected until it is used.
    pub(super) fn new(shared: Arc<Shared>) -> Self {
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
    pub(super) fn own_session(&self) -> Arc<Session> {
        self.own
            .get_or_init(|| {
                let (tx, mut rx) = tokio::sync::broadcast::channel::<ServerEvent>(256);
                // Requests an upstream makes outside any call of ours go to our client too.
                let fallback = CallRelay {
                    client: self.client.clone(),
                    request: None,
                };
                let hooks = ConnectHooks {
                    events: Some(tx),
                    relay: Some(Arc::new(fallback)),
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
        let unknown = || ErrorData::invalid_params(format!("unknown tool \"{name}\""), None);
        let name = ToolName::parse(name).map_err(|_| unknown())?;
        if !self.shared.serves(name.server()) || !self.shared.visible(name.server(), name.tool()) {
            return Err(unknown());
        }
        let session = self.session(context);
        let relay = CallRelay {
            client: self.client.clone(),
            request: Some(context.id.clone()),
        };
        let mut options = CallOptions {
            relay: Some(Arc::new(relay)),
            ..CallOptions::default()
        };
        let progress = ProgressRelay::start(context).map(|(sink, relay)| {
            options.progress = Some(sink);
            relay
        });
        let result = session.call_tool_with(&name, arguments, options).await;
        if let Some(progress) = progress {
            progress.finish().await;
        }
        match result {
            Ok(r) => Ok(r.for_our_client()),
            Err(e) => match e.kind() {
                // No oracle: a tool that is not there and one this client may not use read
                // the same.
                ErrorKind::NotFound | ErrorKind::Denied => Err(unknown()),
                ErrorKind::Invalid => Err(ErrorData::invalid_params(e.to_string(), None)),
                // The server failed, timed out or hit a bound: a tool execution error the
                // model can read, as the spec recommends for failures during the call.
                _ => Ok(CallToolResult::error(vec![ContentBlock::text(
                    e.to_string(),
                )])),
            },
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
        let mut options = RunOptions::default();
        let progress = ProgressRelay::start(context).map(|(sink, relay)| {
            options.progress = Some(sink);
            relay
        });
        let outcome = host
            .run_with(&plugin.plugin, &input, &plugin.policy, options)
            .await;
        if let Some(progress) = progress {
            progress.finish().await;
        }
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
    if let AggregatorError::UnknownResource(uri) = &e {
        return ErrorData::resource_not_found(
            format!("no upstream server serves resource \"{uri}\""),
            Some(serde_json::json!({ "uri": uri })),
        );
    }
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::Denied | ErrorKind::Invalid => {
            ErrorData::invalid_params(e.to_string(), None)
        }
        _ => ErrorData::internal_error(e.to_string(), None),
    }
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
            let target = self.unalias(&name);
            self.call_upstream(target, arguments, &context).await
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
