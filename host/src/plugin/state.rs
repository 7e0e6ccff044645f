//! The host side of the WIT interfaces: one [`PluginState`] per `Store`, the `session` and
//! `future-call-result` resources, and the policy checks every guest request passes through.
//!
//! Everything a guest can cause comes back as a WIT `error` value; nothing here traps on
//! guest input. Cleanup of sessions and calls is in Rust `Drop` so it also happens for
//! handles the guest leaked or left behind when it trapped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rmcp::model::CallToolResult;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::mcp_registry::plugin::{
    log as wit_log, progress as wit_progress, registry, types,
};
use super::policy::PluginPolicy;
use crate::aggregator::{
    parse_arguments, split_tool_name, Aggregator, AggregatorError, NamespacedTool, Session,
};
use crate::client::{ClientError, ProgressSink};

/// Gauges shared by every instance of one host, so an operator (and the tests) can see that
/// nothing is leaked: live instances (`Store`s) and open sessions.
#[derive(Debug, Default)]
pub struct Gauges {
    /// `Store`s alive.
    pub instances: AtomicUsize,
    /// Sessions open (across all instances).
    pub sessions: AtomicUsize,
}

/// A guest-opened session: the persistent connections of one `session` resource.
///
/// Rust `Drop` (not the WIT drop) is what guarantees cleanup: it runs for handles the guest
/// dropped, leaked, or left behind when it trapped.
pub struct SessionEntry {
    session: Arc<Session>,
    instance_sessions: Arc<AtomicUsize>,
    gauges: Arc<Gauges>,
}

impl Drop for SessionEntry {
    fn drop(&mut self) {
        self.instance_sessions.fetch_sub(1, Ordering::SeqCst);
        self.gauges.sessions.fetch_sub(1, Ordering::SeqCst);
        let session = self.session.clone();
        // Close gracefully in the background; if no runtime is left, the connections' own
        // Drop kills their process groups.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { session.close().await });
        }
    }
}

pub(super) type CallOutcome = Result<types::CallResult, types::Error>;

/// A call in flight, started by `start-call`. Dropping it aborts the call, which makes rmcp
/// send `notifications/cancelled` to the server.
pub struct CallEntry {
    task: Option<tokio::task::JoinHandle<CallOutcome>>,
    outcome: Option<CallOutcome>,
    taken: bool,
    in_flight: Arc<AtomicUsize>,
}

impl CallEntry {
    fn settle(&mut self, joined: Result<CallOutcome, tokio::task::JoinError>) {
        self.task = None;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.outcome =
            Some(joined.unwrap_or_else(|e| {
                Err(types::Error::ServerFailed(format!("call task failed: {e}")))
            }));
    }
}

impl Drop for CallEntry {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for CallEntry {
    async fn ready(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let joined = task.await;
            self.settle(joined);
        }
    }
}

/// Everything one plugin instance owns: the contents of its `Store`.
pub struct PluginState {
    pub(super) name: Arc<str>,
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub(super) aggregator: Aggregator,
    pub(super) policy: Arc<PluginPolicy>,
    pub(super) gauges: Arc<Gauges>,
    pub(super) open_sessions: Arc<AtomicUsize>,
    pub(super) in_flight: Arc<AtomicUsize>,
    pub(super) calls: usize,
    /// Where `progress.report` goes (a `serve` client's `tools/call`); the receiver keeps
    /// the values increasing.
    pub(super) progress: Option<ProgressSink>,
}

impl PluginState {
    pub(super) fn new(
        name: Arc<str>,
        wasi: WasiCtx,
        limits: StoreLimits,
        aggregator: Aggregator,
        policy: Arc<PluginPolicy>,
        gauges: Arc<Gauges>,
        progress: Option<ProgressSink>,
    ) -> Self {
        gauges.instances.fetch_add(1, Ordering::SeqCst);
        Self {
            name,
            wasi,
            table: ResourceTable::new(),
            limits,
            aggregator,
            policy,
            gauges,
            open_sessions: Arc::default(),
            in_flight: Arc::default(),
            calls: 0,
            progress,
        }
    }
}

impl Drop for PluginState {
    fn drop(&mut self) {
        self.gauges.instances.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn to_wit_error(e: AggregatorError) -> types::Error {
    let message = e.to_string();
    match e {
        AggregatorError::UnknownServer(_) | AggregatorError::UnknownResource(_) => {
            types::Error::NotFound(message)
        }
        AggregatorError::BadToolName(_) | AggregatorError::InvalidArguments(_) => {
            types::Error::InvalidInput(message)
        }
        AggregatorError::Filtered { .. } => types::Error::Denied(message),
        AggregatorError::SessionClosed => types::Error::InvalidInput(message),
        AggregatorError::Client(c) => match c {
            ClientError::UnknownTool { .. } => types::Error::NotFound(message),
            ClientError::InvalidArguments { .. } => types::Error::InvalidInput(message),
            ClientError::Timeout { .. } | ClientError::ConnectTimeout { .. } => {
                types::Error::Timeout(message)
            }
            ClientError::Spawn { .. }
            | ClientError::Handshake { .. }
            | ClientError::Transport { .. }
            | ClientError::Protocol { .. } => types::Error::ServerFailed(message),
        },
    }
}

fn to_wit_result(r: CallToolResult, max_bytes: usize) -> CallOutcome {
    let content = serde_json::to_string(&r.content).unwrap_or_else(|_| "[]".into());
    let structured_content = r.structured_content.as_ref().map(|v| v.to_string());
    let size = content.len() + structured_content.as_ref().map_or(0, String::len);
    if size > max_bytes {
        return Err(types::Error::LimitExceeded(format!(
            "the tool's result is {size} bytes, over the plugin's max_result_bytes ({max_bytes})"
        )));
    }
    Ok(types::CallResult {
        content,
        structured_content,
        is_error: r.is_error == Some(true),
    })
}

fn to_wit_tool(t: NamespacedTool) -> types::Tool {
    types::Tool {
        description: Some(t.description()),
        input_schema: t.input_schema().to_string(),
        name: t.name,
    }
}

/// A checked call request: name split, arguments parsed, counted against the limits.
struct CallRequest {
    name: String,
    server: String,
    tool: String,
    arguments: Option<serde_json::Map<String, serde_json::Value>>,
}

impl PluginState {
    fn denied(&self, rule: String) -> types::Error {
        tracing::info!(target: "mcp_registry::audit", plugin = %self.name, "denied: {rule}");
        types::Error::Denied(format!("plugin {}: {rule}", self.name))
    }

    fn limit(&self, message: String) -> types::Error {
        tracing::info!(target: "mcp_registry::audit", plugin = %self.name, "limit: {message}");
        types::Error::LimitExceeded(format!("plugin {}: {message}", self.name))
    }

    fn check_servers(&self, servers: &[String]) -> Result<(), types::Error> {
        let known = self.aggregator.registry().servers().len();
        if servers.len() > known {
            return Err(types::Error::InvalidInput(format!(
                "{} servers requested; the registry has {known}",
                servers.len()
            )));
        }
        for s in servers {
            self.policy
                .check_server(s)
                .map_err(|rule| self.denied(rule))?;
        }
        Ok(())
    }

    fn check_call(&mut self, name: String, arguments: &str) -> Result<CallRequest, types::Error> {
        let (server, tool) = split_tool_name(&name).map_err(to_wit_error)?;
        let (server, tool) = (server.to_owned(), tool.to_owned());
        self.policy
            .check_tool(&server, &name)
            .map_err(|rule| self.denied(rule))?;
        if arguments.len() > self.policy.max_argument_bytes {
            return Err(self.limit(format!(
                "arguments of {} bytes are over max_argument_bytes ({})",
                arguments.len(),
                self.policy.max_argument_bytes
            )));
        }
        if self.calls >= self.policy.max_calls {
            return Err(self.limit(format!(
                "more than max_calls ({}) tool calls in one run",
                self.policy.max_calls
            )));
        }
        let arguments = parse_arguments(arguments).map_err(to_wit_error)?;
        self.calls += 1;
        Ok(CallRequest {
            name,
            server,
            tool,
            arguments,
        })
    }

    /// The tools the policy lets this plugin see, in WIT form.
    fn visible_tools(&self, tools: Vec<NamespacedTool>) -> Vec<types::Tool> {
        tools
            .into_iter()
            .filter(|t| self.policy.check_tool(&t.server, &t.name).is_ok())
            .map(to_wit_tool)
            .collect()
    }

    fn allowed_servers(&self) -> Vec<String> {
        let all = self.aggregator.registry().servers().keys();
        all.filter(|s| self.policy.check_server(s).is_ok())
            .cloned()
            .collect()
    }

    fn session(&self, this: &Resource<SessionEntry>) -> Result<Arc<Session>, types::Error> {
        self.table
            .get(this)
            .map(|e| e.session.clone())
            .map_err(|e| types::Error::InvalidInput(format!("bad session handle: {e}")))
    }
}

fn audit(plugin: &str, req: &CallRequest, mode: &str, started: Instant, outcome: &CallOutcome) {
    let duration_ms = started.elapsed().as_secs_f64() * 1e3;
    let outcome = match outcome {
        Ok(r) if r.is_error => "tool-error",
        Ok(_) => "ok",
        Err(types::Error::NotFound(_)) => "not-found",
        Err(types::Error::Denied(_)) => "denied",
        Err(types::Error::InvalidInput(_)) => "invalid-input",
        Err(types::Error::ServerFailed(_)) => "server-failed",
        Err(types::Error::Timeout(_)) => "timeout",
        Err(types::Error::LimitExceeded(_)) => "limit-exceeded",
    };
    tracing::info!(
        target: "mcp_registry::audit",
        plugin,
        server = %req.server,
        tool = %req.tool,
        mode,
        duration_ms,
        outcome,
        "tool call"
    );
}

impl types::Host for PluginState {}

impl registry::Host for PluginState {
    async fn servers(&mut self) -> Vec<String> {
        self.allowed_servers()
    }

    async fn list_tools(&mut self, servers: Vec<String>) -> Result<Vec<types::Tool>, types::Error> {
        let servers = if servers.is_empty() {
            self.allowed_servers()
        } else {
            servers
        };
        self.check_servers(&servers)?;
        let (tools, failures) = self
            .aggregator
            .list_tools(&servers)
            .await
            .map_err(to_wit_error)?;
        if let Some((_, e)) = failures.into_iter().next() {
            return Err(to_wit_error(e));
        }
        Ok(self.visible_tools(tools))
    }

    async fn call_tool(
        &mut self,
        name: String,
        arguments: String,
    ) -> Result<types::CallResult, types::Error> {
        let req = self.check_call(name, &arguments)?;
        let started = Instant::now();
        let outcome = match self
            .aggregator
            .call_tool(&req.name, req.arguments.clone())
            .await
        {
            Ok(r) => to_wit_result(r, self.policy.max_result_bytes),
            Err(e) => Err(to_wit_error(e)),
        };
        audit(&self.name, &req, "temporary", started, &outcome);
        outcome
    }
}

impl registry::HostSession for PluginState {
    async fn open(&mut self, servers: Vec<String>) -> Result<Resource<SessionEntry>, types::Error> {
        self.check_servers(&servers)?;
        if self.open_sessions.load(Ordering::SeqCst) >= self.policy.max_sessions {
            return Err(self.limit(format!(
                "already {} sessions open (max_sessions)",
                self.policy.max_sessions
            )));
        }
        let started = Instant::now();
        let session = self
            .aggregator
            .session(&servers)
            .await
            .map_err(to_wit_error)?;
        tracing::info!(target: "mcp_registry::audit", plugin = %self.name, ?servers, duration_ms = started.elapsed().as_secs_f64() * 1e3, "session opened");
        self.open_sessions.fetch_add(1, Ordering::SeqCst);
        self.gauges.sessions.fetch_add(1, Ordering::SeqCst);
        let entry = SessionEntry {
            session: Arc::new(session),
            instance_sessions: self.open_sessions.clone(),
            gauges: self.gauges.clone(),
        };
        self.table
            .push(entry)
            .map_err(|e| types::Error::LimitExceeded(format!("resource table: {e}")))
    }

    async fn list_tools(
        &mut self,
        this: Resource<SessionEntry>,
    ) -> Result<Vec<types::Tool>, types::Error> {
        let session = self.session(&this)?;
        let tools = session.list_tools().await.map_err(to_wit_error)?;
        Ok(self.visible_tools(tools))
    }

    async fn call_tool(
        &mut self,
        this: Resource<SessionEntry>,
        name: String,
        arguments: String,
    ) -> Result<types::CallResult, types::Error> {
        let session = self.session(&this)?;
        let req = self.check_call(name, &arguments)?;
        let started = Instant::now();
        let outcome = match session.call_tool(&req.name, req.arguments.clone()).await {
            Ok(r) => to_wit_result(r, self.policy.max_result_bytes),
            Err(e) => Err(to_wit_error(e)),
        };
        audit(&self.name, &req, "session", started, &outcome);
        outcome
    }

    async fn start_call(
        &mut self,
        this: Resource<SessionEntry>,
        name: String,
        arguments: String,
    ) -> Result<Resource<CallEntry>, types::Error> {
        let session = self.session(&this)?;
        if self.in_flight.load(Ordering::SeqCst) >= self.policy.max_in_flight {
            return Err(self.limit(format!(
                "already {} calls in flight (max_in_flight)",
                self.policy.max_in_flight
            )));
        }
        let req = self.check_call(name, &arguments)?;
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let plugin = self.name.clone();
        let max_result_bytes = self.policy.max_result_bytes;
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let outcome = match session.call_tool(&req.name, req.arguments.clone()).await {
                Ok(r) => to_wit_result(r, max_result_bytes),
                // The guest dropped the session under this call: say so, whatever the
                // connection reported while it was being torn down.
                Err(_) if session.is_closed() => Err(types::Error::InvalidInput(
                    "the session was dropped while this call was in flight".into(),
                )),
                Err(e) => Err(to_wit_error(e)),
            };
            audit(&plugin, &req, "started", started, &outcome);
            outcome
        });
        let entry = CallEntry {
            task: Some(task),
            outcome: None,
            taken: false,
            in_flight: self.in_flight.clone(),
        };
        self.table
            .push(entry)
            .map_err(|e| types::Error::LimitExceeded(format!("resource table: {e}")))
    }

    async fn drop(&mut self, rep: Resource<SessionEntry>) -> wasmtime::Result<()> {
        // `__aexit__`: close and wait, so the guest continues with the servers gone.
        let entry = self.table.delete(rep)?;
        entry.session.close().await;
        Ok(())
    }
}

impl registry::HostFutureCallResult for PluginState {
    async fn subscribe(
        &mut self,
        this: Resource<CallEntry>,
    ) -> Resource<wasmtime_wasi::p2::DynPollable> {
        match wasmtime_wasi::p2::subscribe(&mut self.table, this) {
            Ok(p) => p,
            // Unreachable from guest input: wasmtime validated the handle before this call.
            Err(e) => panic!("subscribe on a live future-call-result failed: {e}"),
        }
    }

    async fn get(
        &mut self,
        this: Resource<CallEntry>,
    ) -> Option<Result<types::CallResult, types::Error>> {
        let entry = match self.table.get_mut(&this) {
            Ok(e) => e,
            Err(e) => {
                return Some(Err(types::Error::InvalidInput(format!(
                    "bad future handle: {e}"
                ))))
            }
        };
        if let Some(task) = entry.task.as_mut() {
            if !task.is_finished() {
                return None;
            }
            let joined = futures::FutureExt::now_or_never(task).unwrap_or_else(|| {
                Ok(Err(types::Error::ServerFailed(
                    "finished call lost its result".into(),
                )))
            });
            entry.settle(joined);
        }
        if entry.taken {
            return Some(Err(types::Error::InvalidInput(
                "the result of this call was already taken".into(),
            )));
        }
        entry.taken = true;
        entry.outcome.take()
    }

    async fn drop(&mut self, rep: Resource<CallEntry>) -> wasmtime::Result<()> {
        // Rust Drop aborts a running call.
        self.table.delete(rep)?;
        Ok(())
    }
}

/// Bounds what one guest-supplied text (a log line, a progress message) can cost the host.
fn bounded(message: String) -> String {
    const MAX: usize = 4096;
    if message.len() > MAX {
        format!(
            "{}... ({} bytes)",
            &message[..message.floor_char_boundary(MAX)],
            message.len()
        )
    } else {
        message
    }
}

impl wit_progress::Host for PluginState {
    async fn report(&mut self, progress: f64, total: Option<f64>, message: Option<String>) {
        if !progress.is_finite() {
            return;
        }
        let message = message.map(bounded);
        tracing::debug!(target: "mcp_registry::plugin", plugin = &*self.name, progress, ?total, ?message, "progress");
        if let Some(sink) = &self.progress {
            let mut p = rmcp::model::ProgressNotificationParam::new(
                rmcp::model::ProgressToken(rmcp::model::NumberOrString::Number(0)),
                progress,
            );
            p.total = total.filter(|t| t.is_finite());
            p.message = message;
            // Advisory: if the client cannot keep up, later reports are dropped.
            let _ = sink.try_send(p);
        }
    }
}

impl wit_log::Host for PluginState {
    async fn log(&mut self, level: wit_log::Level, message: String) {
        let plugin = &*self.name;
        let message = bounded(message);
        match level {
            wit_log::Level::Trace => {
                tracing::trace!(target: "mcp_registry::plugin", plugin, "{message}")
            }
            wit_log::Level::Debug => {
                tracing::debug!(target: "mcp_registry::plugin", plugin, "{message}")
            }
            wit_log::Level::Info => {
                tracing::info!(target: "mcp_registry::plugin", plugin, "{message}")
            }
            wit_log::Level::Warn => {
                tracing::warn!(target: "mcp_registry::plugin", plugin, "{message}")
            }
            wit_log::Level::Error => {
                tracing::error!(target: "mcp_registry::plugin", plugin, "{message}")
            }
        }
    }
}
