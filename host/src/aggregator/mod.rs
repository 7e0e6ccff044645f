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
use rmcp::model::{CallToolResult, Prompt, Tool};
use serde_json::{Map, Value};

use crate::client::{CallOptions, ClientError, ConnectHooks, ServerConnection, ShutdownPolicy};
use crate::config::{Pinning, Registry, ServerConfig};
use crate::locks::{lock, read, write};
use crate::manager::{take_permit, ConnectionManager, ProcessBudget};
use crate::names::{AsToolName, ToolName};

mod error;
mod pinned;
mod resources;
mod session;

pub use error::{AggregatorError, ErrorKind, Outcome};
pub use resources::{template_matches, Served};
pub use session::Session;

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
            name: ToolName::new(server, tool.name.as_ref()).to_string(),
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

/// A description with the server's name in front (`[server] text`), so the origin of a
/// tool or prompt stays visible to a model.
pub fn described(server: &str, description: Option<&str>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!("[{server}] {d}"),
        _ => format!("[{server}]"),
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
    /// Identity of the connection the list came from: (connection id, list_changed
    /// generation).
    source: (u64, u64),
    tools: Vec<Tool>,
    /// The list's drifted tools, as of a generation of the pins (see `pinned`).
    drifted: Option<(
        u64,
        Arc<std::collections::BTreeMap<String, crate::pins::Drift>>,
    )>,
}

struct Inner {
    /// Replaced whole on reload ([`Aggregator::replace_registry`]).
    registry: std::sync::RwLock<Arc<Registry>>,
    cache: Mutex<HashMap<String, CachedTools>>,
    /// The pins in force (none: tools are not pinned); first sights and approvals update
    /// them, a reload replaces them with the file's.
    pins: Mutex<Option<Pinning>>,
    /// Bumped whenever the pins change, so verdicts cached with a tool list are redone.
    pins_generation: std::sync::atomic::AtomicU64,
    /// Drifts already logged (`server__tool: why`), so each is said once, not per listing.
    drifts_logged: Mutex<std::collections::HashSet<String>>,
    /// Temporary connections being closed after their call returned.
    closing: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
}

/// The registry's servers under one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Aggregator {
    inner: Arc<Inner>,
    /// Bounds every process this aggregator starts draws from (none: unbounded).
    budgets: Arc<[Arc<ProcessBudget>]>,
    /// How a closed session ends its servers.
    session_shutdown: ShutdownPolicy,
}

impl Aggregator {
    /// An aggregator over this registry.
    pub fn new(registry: Registry) -> Self {
        Self {
            inner: Arc::new(Inner {
                pins: Mutex::new(registry.pinning().cloned()),
                drifts_logged: Mutex::default(),
                pins_generation: Default::default(),
                registry: std::sync::RwLock::new(Arc::new(registry)),
                cache: Mutex::new(HashMap::new()),
                closing: tokio::sync::Mutex::new(tokio::task::JoinSet::new()),
            }),
            budgets: Arc::new([]),
            session_shutdown: ShutdownPolicy::GRACEFUL,
        }
    }

    /// The same aggregator (registry, tool cache), every process it starts from here on
    /// holding a permit of each of `budgets` (a tenant's and the host's, say) while it lives.
    pub fn with_budgets(&self, budgets: Vec<Arc<ProcessBudget>>) -> Self {
        Self {
            budgets: budgets.into(),
            ..self.clone()
        }
    }

    /// The same aggregator, its sessions ending their servers with `policy` when closed
    /// (default [`ShutdownPolicy::GRACEFUL`], the spec's way). A one-shot command whose
    /// process ends with its sessions gives [`ShutdownPolicy::PROMPT`]: their calls have been
    /// answered, and a server that ignores its closed stdin (FastMCP on `mcp` 1.x) would
    /// otherwise hold the command up for a second.
    pub fn with_session_shutdown(&self, policy: ShutdownPolicy) -> Self {
        Self {
            session_shutdown: policy,
            ..self.clone()
        }
    }

    /// How this aggregator's sessions end their servers when closed.
    pub fn session_shutdown(&self) -> ShutdownPolicy {
        self.session_shutdown
    }

    /// The registry as it is now (a reload replaces it; this copy stays as it was).
    pub fn registry(&self) -> Arc<Registry> {
        read(&self.inner.registry).clone()
    }

    /// Replaces the registry (a reload): later connections use the new server
    /// configurations, and the cached tool lists of servers that changed or went are dropped.
    /// Connections already open are the caller's to reconfigure ([`Session::reconfigure`]).
    /// The pins are the new registry's (its pins file as read now); returns whether they
    /// differ from those in force (an approval: the listings change).
    pub fn replace_registry(&self, registry: Registry) -> bool {
        let old = self.registry();
        {
            let mut cache = lock(&self.inner.cache);
            cache.retain(|server, _| old.server(server) == registry.server(server));
        }
        let pins_changed = {
            let mut pins = lock(&self.inner.pins);
            let changed = pins.as_ref() != registry.pinning();
            if changed {
                *pins = registry.pinning().cloned();
                self.inner
                    .pins_generation
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            changed
        };
        *write(&self.inner.registry) = Arc::new(registry);
        pins_changed
    }

    fn server_config(&self, server: &str) -> Result<ServerConfig, AggregatorError> {
        self.registry()
            .server(server)
            .cloned()
            .ok_or_else(|| AggregatorError::UnknownServer(server.to_owned()))
    }

    /// Checks that `name`'s server is in the registry and its tool filter shows the tool.
    pub(crate) fn check_visible(&self, name: &ToolName) -> Result<ServerConfig, AggregatorError> {
        let config = self.server_config(name.server())?;
        if !config.tools.permits(name.tool()) {
            return Err(AggregatorError::Filtered {
                server: name.server().into(),
                tool: name.tool().into(),
            });
        }
        Ok(config)
    }

    pub(crate) fn namespaced(&self, server: &str, tools: Vec<Tool>) -> Vec<NamespacedTool> {
        let filter = self
            .registry()
            .server(server)
            .map(|c| c.tools.clone())
            .unwrap_or_default();
        let drifted = self.drifted(server, &tools);
        tools
            .into_iter()
            .filter(|t| filter.permits(&t.name) && !drifted.contains_key(t.name.as_ref()))
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
            self.registry().servers().keys().cloned().collect()
        } else {
            for s in servers {
                self.server_config(s)?;
            }
            servers.to_vec()
        };
        let results = join_all(names.iter().map(|name| async move {
            let config = self.server_config(name)?;
            let _permit =
                take_permit(&self.budgets).map_err(|l| AggregatorError::Limit(l.to_string()))?;
            let conn = ServerConnection::connect(name, &config).await?;
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
        name: impl AsToolName,
        arguments: Option<Map<String, Value>>,
    ) -> Result<CallToolResult, AggregatorError> {
        self.call_tool_with(name, arguments, CallOptions::default())
            .await
    }

    /// Like [`Aggregator::call_tool`], with a timeout of its own or the call's progress sent
    /// where [`CallOptions`] says.
    pub async fn call_tool_with(
        &self,
        name: impl AsToolName,
        arguments: Option<Map<String, Value>>,
        options: CallOptions,
    ) -> Result<CallToolResult, AggregatorError> {
        let name = name.as_tool_name()?;
        let config = self.check_visible(&name)?;
        let (server, tool) = (name.server(), name.tool());
        let started = Instant::now();
        let result = async {
            let permit =
                take_permit(&self.budgets).map_err(|l| AggregatorError::Limit(l.to_string()))?;
            let conn = ServerConnection::connect(server, &config).await?;
            if self.pins_on() {
                let listed = conn.list_tools().await;
                if let Err(e) = listed
                    .map_err(AggregatorError::from)
                    .and_then(|tools| self.check_pinned(&name, &tools))
                {
                    conn.close_with(ShutdownPolicy::PROMPT).await;
                    return Err(e);
                }
            }
            let result = conn.call_tool_with(tool, arguments, options).await;
            let result =
                unknown_tool_as_not_found(server, tool, result, || conn.list_tools()).await;
            // The answer is here: hand it back now and shut the server down behind it, with
            // nothing left to wait for (a server that ignores its closed stdin gets SIGTERM
            // at once). [`Aggregator::shutdown`] waits for these closes.
            let mut closing = self.inner.closing.lock().await;
            while closing.try_join_next().is_some() {}
            closing.spawn(async move {
                conn.close_with(ShutdownPolicy::PROMPT).await;
                drop(permit);
            });
            result
        }
        .await;
        log_call(server, tool, "temporary", started, &result);
        result
    }

    /// Waits until every temporary connection has finished closing (its process has exited
    /// or been killed). Call before exiting a process that made temporary calls, or hold a
    /// [`Aggregator::shutdown_guard`].
    pub async fn shutdown(&self) {
        let mut closing = self.inner.closing.lock().await;
        while closing.join_next().await.is_some() {}
    }

    /// A guard that [shuts down](Aggregator::shutdown) this aggregator's temporary
    /// connections when dropped: what a front end holds for the life of one command, so that
    /// every way out of it, an early error included, ends the servers it started.
    pub fn shutdown_guard(&self) -> ShutdownGuard {
        ShutdownGuard(self.clone())
    }

    /// Opens a persistent session on `servers`: every connection is established
    /// (concurrently) before this returns. Close it with [`Session::close`]; dropping it
    /// also ends its processes, without waiting.
    pub async fn session(&self, servers: &[impl AsRef<str>]) -> Result<Session, AggregatorError> {
        let mut pool = Vec::new();
        for s in servers {
            let s = s.as_ref();
            pool.push((s.to_owned(), self.server_config(s)?));
        }
        let manager =
            ConnectionManager::bounded(pool, ConnectHooks::default(), self.budgets.to_vec());
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
        let registry = self.registry();
        let pool = servers.iter().filter_map(|s| {
            let s = s.as_ref();
            Some((s.to_owned(), registry.server(s)?.clone()))
        });
        Session {
            aggregator: self.clone(),
            manager: ConnectionManager::bounded(pool, hooks, self.budgets.to_vec()),
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

    /// Whether `server`'s last tool list (from any connection) named `tool` (`None`: no list
    /// of it is cached): what a metric may name, since a name a caller made up must not
    /// become a label of its own.
    pub fn lists(&self, server: &str, tool: &str) -> Option<bool> {
        lock(&self.inner.cache)
            .get(server)
            .map(|entry| entry.tools.iter().any(|t| t.name == tool))
    }

    /// The information-flow labels every tool, resource and prompt of `server` has (its
    /// registry entry's own, without the per-tool ones).
    pub fn server_labels(&self, server: &str) -> crate::config::Labels {
        self.registry()
            .server(server)
            .map(|c| c.labels.server)
            .unwrap_or_default()
    }

    /// Whether a call of `name` from a plugin run or a snippet waits for the user's approval
    /// (its server's `"approval"` globs).
    pub fn needs_approval(&self, name: &ToolName) -> bool {
        self.registry().server(name.server()).is_some_and(|c| {
            c.approval
                .iter()
                .any(|glob| crate::names::glob_match(glob, name.tool()))
        })
    }

    /// The information-flow labels of `name`: its registry entry's, joined with what the
    /// server says of the tool once its list has been read (`openWorldHint`: its results
    /// are untrusted and it reaches outside). The server's word can only add labels.
    pub fn labels(&self, name: &ToolName) -> crate::config::Labels {
        let configured = self
            .registry()
            .server(name.server())
            .map(|c| c.labels.of(name.tool()))
            .unwrap_or_default();
        let open_world = lock(&self.inner.cache)
            .get(name.server())
            .is_some_and(|entry| {
                entry.tools.iter().any(|t| {
                    t.name == name.tool()
                        && t.annotations
                            .as_ref()
                            .and_then(|a| a.open_world_hint)
                            .unwrap_or(false)
                })
            });
        configured.join(crate::config::Labels {
            private: false,
            untrusted: open_world,
            egress: open_world,
        })
    }

    pub(crate) async fn cached_tools(
        &self,
        conn: &ServerConnection,
    ) -> Result<Vec<Tool>, AggregatorError> {
        let source = (conn.id(), conn.tools_generation());
        {
            let cache = lock(&self.inner.cache);
            if let Some(entry) = cache.get(conn.name()) {
                if entry.source == source {
                    return Ok(entry.tools.clone());
                }
            }
        }
        let tools = conn.list_tools().await?;
        let mut cache = lock(&self.inner.cache);
        cache.insert(
            conn.name().to_owned(),
            CachedTools {
                source,
                tools: tools.clone(),
                drifted: None,
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
pub(crate) async fn unknown_tool_as_not_found<E, F>(
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

pub(crate) fn log_call<T>(
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

/// Waits for an aggregator's temporary connections to finish closing when dropped (see
/// [`Aggregator::shutdown_guard`]).
///
/// Dropped inside a multi-threaded tokio runtime (every front end of this crate's), the drop
/// waits in place (`block_in_place`); elsewhere it can only start the shutdown and leave it
/// to the runtime.
#[must_use = "dropping the guard at once shuts the connections down at once"]
pub struct ShutdownGuard(Aggregator);

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        let aggregator = self.0.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        match runtime.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| runtime.block_on(aggregator.shutdown()))
            }
            _ => drop(runtime.spawn(async move { aggregator.shutdown().await })),
        }
    }
}
