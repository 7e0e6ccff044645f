//! The `ServerHandler` our client talks to: every MCP request of a client session, scoped
//! to its tenant (a tenant sees only its own servers, tools, prompts, resources and plugins;
//! anything else is unknown, exactly as a name that exists nowhere).

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, Prompt,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig as ServerInfoConfig, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tracing::Instrument;

use super::calls::unknown_tool;
use super::client_session::RegistryServer;
use super::code_tools;
use super::input::{self, RunningCall};
use super::request::RequestScope;
use super::ForOurClient;
use crate::aggregator::{described, AggregatorError, ErrorKind, NamespacedPrompt, NamespacedTool};
use crate::names::ToolName;

/// An aggregator error on a resources/prompts/completion request, as the error our client
/// gets (of `server`, when one was asked).
fn request_error(scope: &RequestScope, e: AggregatorError, server: Option<&str>) -> ErrorData {
    if let AggregatorError::UnknownResource(uri) = &e {
        return ErrorData::resource_not_found(
            format!("no upstream server serves resource \"{uri}\""),
            Some(serde_json::json!({ "uri": uri })),
        );
    }
    let message = match server {
        Some(server) => scope.told(&e, server),
        None => e.to_string(),
    };
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::Denied | ErrorKind::Invalid => {
            ErrorData::invalid_params(message, None)
        }
        _ => ErrorData::internal_error(message, None),
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
                .enable_tasks()
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

    /// `subscriptions/listen` (2026-07-28): every kind the client asks for; what it then gets
    /// is what the tenant's servers announce.
    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(
        &self,
        subscription: rmcp::service::SubscriptionContext,
    ) -> Result<(), ErrorData> {
        let scope = self.scope(subscription.request_context())?;
        let _open = scope.admit_listen()?;
        scope.listen(&subscription).await;
        Ok(())
    }

    // Logging is deprecated for 2026-07-28 but still part of 2025-11-25, which clients use.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // The upstreams' messages below it are not forwarded, and a 2026-07-28 upstream is
        // asked for messages at it with each request of this client.
        tracing::debug!(level = ?request.level, "client set the log level");
        self.set_log_level(request.level);
        Ok(())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let scope = self.scope(&context)?;
        let resources = scope
            .gather("resources", |pool, s| async move {
                pool.list_server_resources(&s).await
            })
            .await;
        // Servers are listed in name order; a URI two servers list is the first one's (the
        // session routes it there too).
        let mut seen = std::collections::HashSet::new();
        let meta = resources.meta();
        let mut result = ListResourcesResult::with_all_items(
            resources
                .items
                .into_iter()
                .map(|r| r.item)
                .filter(|r| seen.insert(r.uri.clone()))
                .collect(),
        );
        result.meta = meta;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let scope = self.scope(&context)?;
        let templates = scope
            .gather("resource templates", |pool, s| async move {
                pool.list_server_resource_templates(&s).await
            })
            .await;
        let mut result = ListResourceTemplatesResult::with_all_items(
            templates.items.iter().map(|t| t.item.clone()).collect(),
        );
        result.meta = templates.meta();
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let scope = self.scope(&context)?;
        let _admitted = scope.admit()?;
        let (server, pool) = scope
            .resource_pool(&request.uri)
            .await
            .map_err(|e| request_error(&scope, e, None))?;
        scope.flow_gate_server(&server, &request.uri).await?;
        let read = pool.read_resource_from(&server, &request.uri).await;
        if read.is_ok() {
            // What it read joins the session's taint, as a tool's result does.
            scope.taken_in(&server, &request.uri);
        }
        read.map(|r| {
            let mut r = r.for_our_client();
            // The upstream's freshness holds through us; "public" does not: what one
            // tenant reads is not for a shared cache in front of every tenant.
            if r.cache_scope.is_some() {
                r.cache_scope = Some(rmcp::model::CacheScope::Private);
            }
            ReadResourceResponse::Complete(r)
        })
        .map_err(|e| request_error(&scope, e, Some(&server)))
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let scope = self.scope(&context)?;
        let _admitted = scope.admit()?;
        let (server, pool) = scope
            .resource_pool(&request.uri)
            .await
            .map_err(|e| request_error(&scope, e, None))?;
        scope.flow_gate_server(&server, &request.uri).await?;
        pool.subscribe_on(&server, &request.uri)
            .await
            .map_err(|e| request_error(&scope, e, Some(&server)))?;
        crate::locks::lock(&scope.subscriptions).insert(request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let scope = self.scope(&context)?;
        let _admitted = scope.admit()?;
        let (server, pool) = scope
            .resource_pool(&request.uri)
            .await
            .map_err(|e| request_error(&scope, e, None))?;
        crate::locks::lock(&scope.subscriptions).remove(&request.uri);
        pool.unsubscribe_on(&server, &request.uri)
            .await
            .map_err(|e| request_error(&scope, e, Some(&server)))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let scope = self.scope(&context)?;
        let gathered = scope
            .gather("prompts", |pool, s| async move {
                pool.list_server_prompts(&s).await
            })
            .await;
        let upstream: &[NamespacedPrompt] = &gathered.items;
        let mut prompts: Vec<Prompt> = Vec::new();
        for p in upstream {
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
        let mut result = ListPromptsResult::with_all_items(prompts);
        result.meta = gathered.meta();
        Ok(result)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let scope = self.scope(&context)?;
        let _admitted = scope.admit()?;
        let name = scope.unalias(&request.name);
        let unknown = || ErrorData::invalid_params(format!("unknown prompt \"{name}\""), None);
        let name = ToolName::parse(&name).map_err(|_| unknown())?;
        if !scope.tenant.sees(name.server()) {
            return Err(unknown());
        }
        scope.flow_gate_server(name.server(), name.tool()).await?;
        let got = scope
            .pool(name.server())
            .get_prompt(&name, request.arguments)
            .await;
        if got.is_ok() {
            scope.taken_in(name.server(), name.tool());
        }
        got.map(|r| GetPromptResponse::Complete(r.for_our_client()))
            .map_err(|e| request_error(&scope, e, Some(name.server())))
    }

    async fn complete(
        &self,
        mut request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let scope = self.scope(&context)?;
        let _admitted = scope.admit()?;
        let (server, pool) = match &mut request.r#ref {
            rmcp::model::Reference::Prompt(prompt) => {
                prompt.name = scope.unalias(&prompt.name);
                let unknown = || {
                    ErrorData::invalid_params(format!("unknown prompt \"{}\"", prompt.name), None)
                };
                let name = ToolName::parse(&prompt.name).map_err(|_| unknown())?;
                if !scope.tenant.sees(name.server()) {
                    return Err(unknown());
                }
                (name.server().to_owned(), scope.pool(name.server()))
            }
            rmcp::model::Reference::Resource(template) => scope
                .resource_pool(&template.uri)
                .await
                .map_err(|e| request_error(&scope, e, None))?,
            _ => return Err(ErrorData::invalid_params("unsupported reference", None)),
        };
        scope
            .flow_gate_server(&server, "completion/complete")
            .await?;
        pool.complete_on(&server, request)
            .await
            .map(ForOurClient::for_our_client)
            .map_err(|e| request_error(&scope, e, Some(&server)))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let scope = self.scope(&context)?;
        let mut tools: Vec<Tool> = Vec::new();
        if self.shared.code_mode.is_some() {
            // Code mode is granted per tenant; `--code-mode=only` shows nothing else to anyone.
            if scope.tenant.may_use_code_mode() {
                tools.extend(code_tools::tools());
            }
            if self.shared.code_mode_only {
                return Ok(ListToolsResult::with_all_items(tools));
            }
        }
        let gathered = scope.callable_tools().await;
        let upstream = &gathered.items;
        for t in upstream {
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
        tools.extend(
            self.shared
                .plugins
                .iter()
                .filter(|(name, _)| scope.tenant.may_run(name))
                .map(|(_, p)| p.tool.clone()),
        );
        let mut result = ListToolsResult::with_all_items(tools);
        result.meta = gathered.meta();
        Ok(result)
    }

    // `tasks/*` (2026-07-28 clients): the tasks of the caller's tenant ([`super::tasks`]).
    async fn get_task(
        &self,
        request: rmcp::model::GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetTaskResult, ErrorData> {
        let tenant = self.scope(&context)?.tenant.name.clone();
        let task = self.shared.tasks.get(&request.task_id, &tenant)?;
        Ok(rmcp::model::GetTaskResult::new(task))
    }

    async fn update_task(
        &self,
        request: rmcp::model::UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let tenant = self.scope(&context)?.tenant.name.clone();
        self.shared
            .tasks
            .update(&request.task_id, &tenant, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: rmcp::model::CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let tenant = self.scope(&context)?.tenant.name.clone();
        self.shared.tasks.cancel(&request.task_id, &tenant)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // The request's `_meta` (a `traceparent` among it), wherever rmcp left it.
        if let Some(meta) = request.meta {
            for (key, value) in meta.0 .0 {
                context.meta.0 .0.entry(key).or_insert(value);
            }
        }
        let scope = self.scope(&context)?;
        let name = request.name.to_string();
        let cancelled = || {
            tracing::info!(tool = %name, "cancelled by the client");
            Err(ErrorData::internal_error("cancelled", None))
        };
        let parked = &scope.shared.parked;
        // A 2026-07-28 client back with the answers to an upstream's questions: the call
        // it started goes on where it stopped.
        if let Some(state) = request
            .request_state
            .as_deref()
            .filter(|s| s.starts_with(input::STATE_PREFIX))
        {
            let mut call = parked.take(state, &scope.tenant.name)?;
            call.answer(request.input_responses.unwrap_or_default());
            return tokio::select! {
                response = call.drive(parked) => response,
                _ = context.ct.cancelled() => cancelled(),
            };
        }
        let admitted = scope.admit()?;
        let modern = context
            .protocol_version()
            .is_some_and(|v| !v.has_initialize());
        if modern {
            // An upstream's questions cannot be requests to this client: the call runs in a
            // task of its own, and its questions end this round as an input request.
            let (asker, questions) = RunningCall::asker(context.client_capabilities());
            let _ = scope.input.set(asker);
            let span = call_span(&scope, &name);
            let (task_scope, task_name) = (scope.clone(), name.clone());
            let call = async move {
                let _admitted = admitted;
                dispatch(&task_scope, &task_name, request.arguments).await
            };
            let call =
                RunningCall::start(call.instrument(span), questions, scope.tenant.name.clone());
            // A client that takes tasks gets one for a call that runs on (or asks it
            // something); any other gets input requests and the final result.
            let takes_tasks = context
                .client_capabilities()
                .is_some_and(|c| c.supports_tasks());
            return tokio::select! {
                response = async {
                    if takes_tasks {
                        scope.shared.tasks.call(call, scope.tenant.name.clone()).await
                    } else {
                        call.drive(parked).await
                    }
                } => response,
                _ = context.ct.cancelled() => cancelled(),
            };
        }
        let _admitted = admitted;
        let call = dispatch(&scope, &name, request.arguments).instrument(call_span(&scope, &name));
        // A `notifications/cancelled` from our client drops the call: an upstream request
        // is cancelled in turn (rmcp sends `notifications/cancelled` when its call future is
        // dropped), a plugin run's Store and sessions are torn down.
        tokio::select! {
            result = call => result.map(CallToolResponse::Complete),
            _ = context.ct.cancelled() => cancelled(),
        }
    }
}

/// What a `tools/call` names, called: code mode's tools, a plugin, or an upstream tool (or
/// alias of one).
async fn dispatch(
    scope: &Arc<RequestScope>,
    name: &str,
    arguments: Option<rmcp::model::JsonObject>,
) -> Result<rmcp::model::CallToolResult, ErrorData> {
    let shared = &scope.shared;
    if shared.code_mode.is_some() {
        let granted = scope.tenant.may_use_code_mode();
        match name {
            code_tools::SEARCH if granted => {
                return scope.code_search(arguments.unwrap_or_default()).await
            }
            code_tools::EXECUTE if granted => {
                return scope.code_execute(arguments.unwrap_or_default()).await
            }
            _ if shared.code_mode_only => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool \"{name}\" (code mode: call it from execute)"),
                    None,
                ))
            }
            _ => {}
        }
    }
    if let Some(plugin) = shared.plugins.get(name) {
        if scope.tenant.may_run(name) {
            return Ok(scope.call_plugin(plugin, arguments).await);
        }
        return Err(unknown_tool(name));
    }
    scope.call_upstream(&scope.unalias(name), arguments).await
}

/// The span of one `tools/call`: its log lines name the tenant, the tool and the caller's
/// trace id.
fn call_span(scope: &RequestScope, tool: &str) -> tracing::Span {
    let tenant = &*scope.tenant.name;
    let span = tracing::info_span!("call", tenant, tool, trace_id = tracing::field::Empty);
    if let Some(trace) = &scope.trace {
        span.record("trace_id", trace.trace_id());
        trace.adopt(&span);
    }
    span
}
