//! All servers' tools under one namespace (`server__tool`), in two modes.
//!
//! - **Temporary** (the default, [`Aggregator::call_tool`]): a call spawns only the server it
//!   names, calls, and shuts it down: one process per call, nothing kept.
//! - **Persistent** ([`Aggregator::session`]): a [`Session`] holds connections open until it
//!   is closed (or dropped), so many calls pay for one spawn and handshake. Servers outside
//!   the session's set still work, through temporary calls.
//!
//! This is the public API everything above builds on: the CLI, `serve` and the Wasm plugin
//! host call only what is here, so a Rust embedder gets everything a guest gets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::join_all;
use rmcp::model::{
    CallToolResult, CompleteRequestParams, CompleteResult, GetPromptResult, Prompt,
    ReadResourceResult, Reference, Resource, ResourceTemplate, Tool,
};
use serde_json::{Map, Value};

use crate::client::{
    CallOptions, ClientError, ConnectHooks, ProgressSink, ServerConnection, ShutdownPolicy,
};
use crate::config::{Registry, ServerConfig, NAMESPACE_SEPARATOR};
use crate::manager::{ConnectionManager, ManagerError};

/// Errors of the aggregator.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AggregatorError {
    /// No server of this name in the registry.
    #[error("unknown server \"{0}\"")]
    UnknownServer(String),
    /// The tool name is not `server__tool`.
    #[error("tool name \"{0}\" is not namespaced; expected SERVER__TOOL")]
    BadToolName(String),
    /// The tool exists but the server's tool filter hides it.
    #[error("tool \"{tool}\" of server \"{server}\" is excluded by the registry's tool filter")]
    Filtered {
        /// Server name.
        server: String,
        /// Tool name (un-namespaced).
        tool: String,
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
}

impl From<ManagerError> for AggregatorError {
    fn from(e: ManagerError) -> Self {
        match e {
            ManagerError::NotInPool(s) => AggregatorError::UnknownServer(s),
            ManagerError::Closed => AggregatorError::SessionClosed,
            ManagerError::Client(c) => AggregatorError::Client(c),
        }
    }
}

/// A tool as the aggregator presents it.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespacedTool {
    /// `server__tool`.
    pub name: String,
    /// The server it belongs to.
    pub server: String,
    /// The tool as the server described it (its own, un-namespaced name).
    pub tool: Tool,
}

impl NamespacedTool {
    fn new(server: &str, tool: Tool) -> Self {
        Self {
            name: format!("{server}{NAMESPACE_SEPARATOR}{}", tool.name),
            server: server.to_owned(),
            tool,
        }
    }

    /// The description, prefixed with the server name so it stays visible to a model.
    pub fn description(&self) -> String {
        described(&self.server, self.tool.description.as_deref())
    }

    /// The input JSON schema.
    pub fn input_schema(&self) -> Value {
        Value::Object((*self.tool.input_schema).clone())
    }
}

/// A resource or resource template and the server that serves it. URIs are not namespaced:
/// they are already global names that clients hand back verbatim, so the session remembers
/// which server listed which URI (or template) and routes reads there.
#[derive(Debug, Clone, PartialEq)]
pub struct Served<T> {
    /// The server it belongs to.
    pub server: String,
    /// The resource or template as the server described it.
    pub item: T,
}

/// A prompt as the aggregator presents it: `server__prompt`, like tools.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespacedPrompt {
    /// `server__prompt`.
    pub name: String,
    /// The server it belongs to.
    pub server: String,
    /// The prompt as the server described it (its own, un-namespaced name).
    pub prompt: Prompt,
}

/// Whether `uri` is an instance of the RFC 6570 `template`: every `{...}` expression matches
/// one or more characters, the rest literally. Enough to route a read to the server whose
/// template produced the URI.
pub fn template_matches(template: &str, uri: &str) -> bool {
    match template.find('{') {
        None => template == uri,
        Some(open) => {
            let Some(close) = template[open..].find('}').map(|c| open + c) else {
                return template == uri;
            };
            let (literal, rest) = (&template[..open], &template[close + 1..]);
            let Some(tail) = uri.strip_prefix(literal) else {
                return false;
            };
            // Try every split point: the expression takes at least one character.
            tail.char_indices()
                .skip(1)
                .map(|(i, _)| i)
                .chain(std::iter::once(tail.len()))
                .filter(|&i| i > 0)
                .any(|i| template_matches(rest, &tail[i..]))
        }
    }
}

/// A description with the server's name in front (`[server] text`), so the origin of a
/// tool or prompt stays visible to a model.
pub fn described(server: &str, description: Option<&str>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!("[{server}] {d}"),
        _ => format!("[{server}]"),
    }
}

/// Splits `server__tool` on the first `__`.
pub fn split_tool_name(name: &str) -> Result<(&str, &str), AggregatorError> {
    match name.split_once(NAMESPACE_SEPARATOR) {
        Some((server, tool)) if !server.is_empty() && !tool.is_empty() => Ok((server, tool)),
        _ => Err(AggregatorError::BadToolName(name.to_owned())),
    }
}

/// Parses tool arguments given as JSON text: must be an object (or empty/`null` for none).
pub fn parse_arguments(text: &str) -> Result<Option<Map<String, Value>>, AggregatorError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(Value::Null) => Ok(None),
        Ok(other) => Err(AggregatorError::InvalidArguments(format!(
            "arguments must be a JSON object, got {}",
            match other {
                Value::Array(_) => "an array",
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                _ => "a boolean",
            }
        ))),
        Err(e) => Err(AggregatorError::InvalidArguments(format!(
            "arguments are not valid JSON: {e}"
        ))),
    }
}

struct CachedTools {
    /// Identity of the connection the list came from: (pid, list_changed generation).
    source: (Option<u32>, u64),
    tools: Vec<Tool>,
}

struct Inner {
    registry: Registry,
    cache: Mutex<HashMap<String, CachedTools>>,
    /// Temporary connections being closed after their call returned.
    closing: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
}

/// The registry's servers under one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Aggregator {
    inner: Arc<Inner>,
}

impl Aggregator {
    /// An aggregator over this registry.
    pub fn new(registry: Registry) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                cache: Mutex::new(HashMap::new()),
                closing: tokio::sync::Mutex::new(tokio::task::JoinSet::new()),
            }),
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    fn server_config(&self, server: &str) -> Result<&ServerConfig, AggregatorError> {
        self.inner
            .registry
            .server(server)
            .ok_or_else(|| AggregatorError::UnknownServer(server.to_owned()))
    }

    fn resolve(&self, name: &str) -> Result<(String, String), AggregatorError> {
        let (server, tool) = split_tool_name(name)?;
        let config = self.server_config(server)?;
        if !config.tools.permits(tool) {
            return Err(AggregatorError::Filtered {
                server: server.into(),
                tool: tool.into(),
            });
        }
        Ok((server.into(), tool.into()))
    }

    fn namespaced(&self, server: &str, tools: Vec<Tool>) -> Vec<NamespacedTool> {
        let filter = self
            .inner
            .registry
            .server(server)
            .map(|c| c.tools.clone())
            .unwrap_or_default();
        tools
            .into_iter()
            .filter(|t| filter.permits(&t.name))
            .map(|t| NamespacedTool::new(server, t))
            .collect()
    }

    /// Lists the tools of `servers` (all servers if empty) in temporary mode: each server is
    /// started, listed and shut down, concurrently. A server that fails is reported in the
    /// second list without failing the others.
    pub async fn list_tools(
        &self,
        servers: &[String],
    ) -> Result<(Vec<NamespacedTool>, Vec<(String, AggregatorError)>), AggregatorError> {
        let names: Vec<String> = if servers.is_empty() {
            self.inner.registry.servers().keys().cloned().collect()
        } else {
            for s in servers {
                self.server_config(s)?;
            }
            servers.to_vec()
        };
        let results = join_all(names.iter().map(|name| async move {
            let config = self.server_config(name)?;
            let conn = ServerConnection::connect(name, config).await?;
            let tools = conn.list_tools().await;
            conn.close_with(ShutdownPolicy::PROMPT).await;
            Ok::<_, AggregatorError>(tools?)
        }))
        .await;
        let mut tools = Vec::new();
        let mut failures = Vec::new();
        for (name, result) in names.into_iter().zip(results) {
            match result {
                Ok(list) => tools.extend(self.namespaced(&name, list)),
                Err(e) => failures.push((name, e)),
            }
        }
        Ok((tools, failures))
    }

    /// Calls `server__tool` in temporary mode: starts only that server, calls, shuts it down.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<CallToolResult, AggregatorError> {
        let (server, tool) = self.resolve(name)?;
        let started = Instant::now();
        let config = self.server_config(&server)?;
        let result = async {
            let conn = ServerConnection::connect(&server, config).await?;
            let result = conn.call_tool(&tool, arguments).await;
            let result =
                unknown_tool_as_not_found(&server, &tool, result, || conn.list_tools()).await;
            // The answer is here: hand it back now and shut the server down behind it, with
            // nothing left to wait for (a server that ignores its closed stdin gets SIGTERM
            // at once). [`Aggregator::shutdown`] waits for these closes.
            let mut closing = self.inner.closing.lock().await;
            while closing.try_join_next().is_some() {}
            closing.spawn(async move { conn.close_with(ShutdownPolicy::PROMPT).await });
            result
        }
        .await;
        log_call(&server, &tool, "temporary", started, &result);
        result
    }

    /// Waits until every temporary connection has finished closing (its process has exited
    /// or been killed). Call before exiting a process that made temporary calls.
    pub async fn shutdown(&self) {
        let mut closing = self.inner.closing.lock().await;
        while closing.join_next().await.is_some() {}
    }

    /// Opens a persistent session on `servers`: every connection is established
    /// (concurrently) before this returns. Close it with [`Session::close`]; dropping it
    /// also ends its processes, without waiting.
    pub async fn session(&self, servers: &[impl AsRef<str>]) -> Result<Session, AggregatorError> {
        let mut pool = Vec::new();
        for s in servers {
            let s = s.as_ref();
            let config = self.server_config(s)?;
            pool.push((s.to_owned(), config.clone()));
        }
        let manager = ConnectionManager::new(pool);
        if let Err(e) = manager.connect_all().await {
            manager.close().await;
            return Err(e.into());
        }
        Ok(Session {
            aggregator: self.clone(),
            manager,
            owners: Mutex::default(),
        })
    }

    /// A session on `servers` that connects each server on first use (and restarts it after
    /// a crash), reporting its servers' notifications to `hooks`: what a long-lived front end
    /// such as `serve` holds.
    pub fn lazy_session(
        &self,
        servers: &[impl AsRef<str>],
        hooks: ConnectHooks,
    ) -> Result<Session, AggregatorError> {
        for s in servers {
            self.server_config(s.as_ref())?;
        }
        Ok(self.lazy_session_of(servers, hooks))
    }

    /// Like [`Aggregator::lazy_session`] for servers already known to be in the registry
    /// (any that are not are left out).
    pub fn lazy_session_of(&self, servers: &[impl AsRef<str>], hooks: ConnectHooks) -> Session {
        let pool = servers.iter().filter_map(|s| {
            let s = s.as_ref();
            Some((s.to_owned(), self.inner.registry.server(s)?.clone()))
        });
        Session {
            aggregator: self.clone(),
            manager: ConnectionManager::with_hooks(pool, hooks),
            owners: Mutex::default(),
        }
    }

    /// Runs `body` inside a session on `servers` and closes the session afterwards, whatever
    /// `body` returned (the `async with` of the Python original).
    pub async fn with_session<T>(
        &self,
        servers: &[impl AsRef<str>],
        body: impl AsyncFnOnce(&Session) -> T,
    ) -> Result<T, AggregatorError> {
        let session = self.session(servers).await?;
        let out = body(&session).await;
        session.close().await;
        Ok(out)
    }

    async fn cached_tools(&self, conn: &ServerConnection) -> Result<Vec<Tool>, AggregatorError> {
        let source = (conn.pid(), conn.tools_generation());
        {
            let cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = cache.get(conn.name()) {
                if entry.source == source {
                    return Ok(entry.tools.clone());
                }
            }
        }
        let tools = conn.list_tools().await?;
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(
            conn.name().to_owned(),
            CachedTools {
                source,
                tools: tools.clone(),
            },
        );
        Ok(tools)
    }
}

/// A call's outcome, with a tool the server does not list reported as
/// [`ClientError::UnknownTool`]. Servers answer a call to a tool they lack in different ways
/// (JSON-RPC `-32602`, or a successful `isError` result saying "Unknown tool", as FastMCP on
/// `mcp` 1.x does); on any failure the server's list decides, so callers can rely on the
/// kind. `listed` is asked only when the call failed.
async fn unknown_tool_as_not_found<E, F>(
    server: &str,
    tool: &str,
    outcome: Result<CallToolResult, ClientError>,
    listed: impl FnOnce() -> F,
) -> Result<CallToolResult, AggregatorError>
where
    F: std::future::Future<Output = Result<Vec<Tool>, E>>,
{
    let message = match &outcome {
        Ok(r) if r.is_error == Some(true) => first_text(r),
        Err(
            ClientError::Protocol { message, .. } | ClientError::InvalidArguments { message, .. },
        ) => message.clone(),
        _ => return Ok(outcome?),
    };
    match listed().await {
        Ok(tools) if !tools.iter().any(|t| t.name == tool) => {
            Err(AggregatorError::Client(ClientError::UnknownTool {
                server: server.to_owned(),
                tool: tool.to_owned(),
                message,
            }))
        }
        _ => Ok(outcome?),
    }
}

fn first_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

fn served<T>(server: &str, items: Vec<T>) -> Vec<Served<T>> {
    items
        .into_iter()
        .map(|item| Served {
            server: server.to_owned(),
            item,
        })
        .collect()
}

fn log_call<T>(
    server: &str,
    tool: &str,
    mode: &str,
    started: Instant,
    result: &Result<T, AggregatorError>,
) {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(_) => {
            tracing::debug!(target: "mcp_registry::calls", server, tool, mode, duration_ms, outcome = "ok", "tool call")
        }
        Err(e) => {
            tracing::info!(target: "mcp_registry::calls", server, tool, mode, duration_ms, outcome = "error", error = %e, "tool call")
        }
    }
}

/// A persistent session: open connections to a set of servers until closed.
pub struct Session {
    aggregator: Aggregator,
    manager: ConnectionManager,
    owners: Mutex<ResourceOwners>,
}

/// Which server listed which resource URI and template, for routing reads.
#[derive(Default)]
struct ResourceOwners {
    uris: HashMap<String, String>,
    templates: Vec<(String, String)>,
}

impl ResourceOwners {
    fn find(&self, uri: &str) -> Option<String> {
        self.uris.get(uri).cloned().or_else(|| {
            self.templates
                .iter()
                .find(|(t, _)| t == uri || template_matches(t, uri))
                .map(|(_, server)| server.clone())
        })
    }
}

impl Session {
    /// The servers this session holds open.
    pub fn servers(&self) -> Vec<String> {
        self.manager.servers().map(str::to_owned).collect()
    }

    /// Lists the tools of the session's servers (concurrently, through the tool cache,
    /// which a `tools/list_changed` notification or a reconnect invalidates).
    pub async fn list_tools(&self) -> Result<Vec<NamespacedTool>, AggregatorError> {
        let results = join_all(self.manager.servers().map(|s| self.list_server_tools(s))).await;
        let mut all = Vec::new();
        for r in results {
            all.extend(r?);
        }
        Ok(all)
    }

    /// The tools of one of the session's servers (through the tool cache).
    pub async fn list_server_tools(
        &self,
        server: &str,
    ) -> Result<Vec<NamespacedTool>, AggregatorError> {
        let conn = self.manager.connection(server).await?;
        let tools = self.aggregator.cached_tools(&conn).await?;
        Ok(self.aggregator.namespaced(server, tools))
    }

    /// Calls `server__tool`: on the session's connection if the server is in the session,
    /// otherwise as a temporary call.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<CallToolResult, AggregatorError> {
        self.call(name, arguments, None).await
    }

    /// Like [`Session::call_tool`], sending the upstream's `notifications/progress` for this
    /// call to `progress` (servers outside the session are called without progress).
    pub async fn call_tool_with_progress(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        progress: ProgressSink,
    ) -> Result<CallToolResult, AggregatorError> {
        self.call(name, arguments, Some(progress)).await
    }

    async fn call(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        progress: Option<ProgressSink>,
    ) -> Result<CallToolResult, AggregatorError> {
        let (server, tool) = self.aggregator.resolve(name)?;
        if !self.manager.contains(&server) {
            return self.aggregator.call_tool(name, arguments).await;
        }
        let started = Instant::now();
        let result = async {
            let conn = self.manager.connection(&server).await?;
            let options = CallOptions {
                progress,
                ..CallOptions::default()
            };
            let result = conn.call_tool_with(&tool, arguments, options).await;
            let listed = || async {
                // The cached list first; a tool it lacks may be new, so ask again.
                let cached = self.aggregator.cached_tools(&conn).await?;
                if cached.iter().any(|t| t.name == tool.as_str()) {
                    return Ok(cached);
                }
                conn.list_tools().await.map_err(AggregatorError::from)
            };
            unknown_tool_as_not_found(&server, &tool, result, listed).await
        }
        .await;
        log_call(&server, &tool, "session", started, &result);
        result
    }

    /// The resources one of the session's servers lists (none if it has no resources).
    pub async fn list_server_resources(
        &self,
        server: &str,
    ) -> Result<Vec<Served<Resource>>, AggregatorError> {
        let conn = self.manager.connection(server).await?;
        let resources = conn.list_resources().await?;
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.uris.retain(|_, s| s != server);
        for r in &resources {
            // Two servers listing one URI: the first by name serves it, as `serve` lists it.
            let owner = owners
                .uris
                .entry(r.uri.clone())
                .or_insert_with(|| server.to_owned());
            if server < owner.as_str() {
                *owner = server.to_owned();
            }
        }
        Ok(served(server, resources))
    }

    /// The resource templates one of the session's servers lists.
    pub async fn list_server_resource_templates(
        &self,
        server: &str,
    ) -> Result<Vec<Served<ResourceTemplate>>, AggregatorError> {
        let conn = self.manager.connection(server).await?;
        let templates = conn.list_resource_templates().await?;
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        owners.templates.retain(|(_, s)| s != server);
        for t in &templates {
            owners
                .templates
                .push((t.uri_template.clone(), server.to_owned()));
        }
        // Overlapping templates: the first server by name wins, as for URIs.
        owners.templates.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(served(server, templates))
    }

    /// The server that serves `uri` (a resource URI, or a template for completions): the
    /// one that listed it, listing every server first if no listing has named it yet.
    pub async fn resource_server(&self, uri: &str) -> Result<String, AggregatorError> {
        let known = |s: &Self| s.owners.lock().unwrap_or_else(|p| p.into_inner()).find(uri);
        if let Some(server) = known(self) {
            return Ok(server);
        }
        join_all(self.manager.servers().map(|s| async move {
            let _ = self.list_server_resources(s).await;
            let _ = self.list_server_resource_templates(s).await;
        }))
        .await;
        known(self).ok_or_else(|| AggregatorError::UnknownResource(uri.to_owned()))
    }

    /// Reads a resource from the server that serves it.
    pub async fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, AggregatorError> {
        let server = self.resource_server(uri).await?;
        let conn = self.manager.connection(&server).await?;
        Ok(conn.read_resource(uri).await?)
    }

    /// Subscribes to a resource's updates on the server that serves it; they arrive as
    /// [`crate::client::ServerEvent::ResourceUpdated`] on the session's hooks.
    pub async fn subscribe(&self, uri: &str) -> Result<(), AggregatorError> {
        let server = self.resource_server(uri).await?;
        let conn = self.manager.connection(&server).await?;
        Ok(conn.subscribe(uri).await?)
    }

    /// Ends a subscription made with [`Session::subscribe`].
    pub async fn unsubscribe(&self, uri: &str) -> Result<(), AggregatorError> {
        let server = self.resource_server(uri).await?;
        let conn = self.manager.connection(&server).await?;
        Ok(conn.unsubscribe(uri).await?)
    }

    /// The prompts of one of the session's servers, as `server__prompt`.
    pub async fn list_server_prompts(
        &self,
        server: &str,
    ) -> Result<Vec<NamespacedPrompt>, AggregatorError> {
        let conn = self.manager.connection(server).await?;
        Ok(conn
            .list_prompts()
            .await?
            .into_iter()
            .map(|prompt| NamespacedPrompt {
                name: format!("{server}{NAMESPACE_SEPARATOR}{}", prompt.name),
                server: server.to_owned(),
                prompt,
            })
            .collect())
    }

    /// Gets `server__prompt` from a server of the session.
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<GetPromptResult, AggregatorError> {
        let (server, prompt) = split_tool_name(name)?;
        let conn = self.manager.connection(server).await?;
        Ok(conn.get_prompt(prompt, arguments).await?)
    }

    /// Argument completion for `server__prompt` or a resource template, asked of the server
    /// that owns it (under its own names).
    pub async fn complete(
        &self,
        mut params: CompleteRequestParams,
    ) -> Result<CompleteResult, AggregatorError> {
        let server = match &mut params.r#ref {
            Reference::Prompt(prompt) => {
                let (server, own) = split_tool_name(&prompt.name)?;
                let server = server.to_owned();
                prompt.name = own.to_owned();
                server
            }
            Reference::Resource(template) => self.resource_server(&template.uri).await?,
            _ => {
                return Err(AggregatorError::InvalidArguments(
                    "completion/complete: unsupported reference type".into(),
                ))
            }
        };
        let conn = self.manager.connection(&server).await?;
        Ok(conn.complete(params).await?)
    }

    /// Pids of the session's live server processes.
    pub async fn pids(&self) -> std::collections::BTreeMap<String, u32> {
        self.manager.pids().await
    }

    /// How many times `server` was restarted in this session.
    pub fn restarts(&self, server: &str) -> u64 {
        self.manager.restarts(server)
    }

    /// The session's connection to `server` (connecting if it died), for protocol details
    /// such as the negotiated version.
    pub async fn connection(&self, server: &str) -> Result<Arc<ServerConnection>, AggregatorError> {
        Ok(self.manager.connection(server).await?)
    }

    /// Whether the session was closed.
    pub fn is_closed(&self) -> bool {
        self.manager.is_closed()
    }

    /// Closes every connection and waits for the processes to exit.
    pub async fn close(&self) {
        self.manager.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::template_matches;

    #[test]
    fn uri_templates_route_their_instances() {
        assert!(template_matches(
            "test://template/{id}/data",
            "test://template/123/data"
        ));
        assert!(template_matches("file:///{path}", "file:///a/b.txt"));
        assert!(template_matches("db://{table}/{row}", "db://users/7"));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://template//data"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://other/1/data"
        ));
        assert!(!template_matches(
            "test://template/{id}/data",
            "test://template/1/meta"
        ));
        assert!(template_matches("test://static", "test://static"));
        assert!(!template_matches("test://static", "test://static/x"));
    }
}
