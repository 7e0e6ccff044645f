//! [`PluginState`]: everything one plugin instance owns (the contents of its `Store`), and
//! the checks every guest request passes through on its way to the aggregator.
//!
//! Anything a guest can cause comes back as a WIT `error` value; nothing here traps on guest
//! input. The `Host` impls of the WIT interfaces are in `host/`, one file per interface.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use rmcp::model::CallToolResult;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::mcp_registry::plugin::types;
use super::limits::{MemoryBudget, RunLimiter};
use super::policy::PluginPolicy;
use super::resources::{
    CallOutcome, CallTrace, Counted, Gauges, SessionEntry, SessionRouter, TracedCall,
};
use crate::aggregator::{
    parse_arguments, Aggregator, AggregatorError, ErrorKind, NamespacedTool, Outcome, Session,
};
use crate::client::{CallOptions, ProgressSink, RequestRelay, TraceContext};
use crate::names::ToolName;

/// Everything one plugin instance owns: the contents of its `Store`.
pub struct PluginState {
    pub(super) name: Arc<str>,
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    /// Grows its memories and tables within `budget`.
    pub(super) limits: RunLimiter,
    /// Its memory bound, which results held for it count against too.
    pub(super) budget: Arc<MemoryBudget>,
    pub(super) aggregator: Aggregator,
    pub(super) policy: Arc<PluginPolicy>,
    pub(super) gauges: Arc<Gauges>,
    pub(super) open_sessions: Arc<AtomicUsize>,
    pub(super) in_flight: Arc<AtomicUsize>,
    pub(super) calls: usize,
    /// What the run's calls (and the client session it serves) have taken in.
    taint: crate::flow::SharedTaint,
    /// Labels its caller adds to the registry's.
    added_labels: Option<crate::flow::AddedLabels>,
    /// Bytes of log lines and progress reports the run has sent (bounded per run).
    pub(crate) relayed: usize,
    /// Where `progress.report` goes (a `serve` client's `tools/call`); the receiver keeps
    /// the values increasing.
    pub(super) progress: Option<ProgressSink>,
    /// The embedder's connections the run's sessions use, instead of their own.
    pub(super) router: Option<SessionRouter>,
    /// Where each call is recorded for the embedder, if anywhere.
    pub(super) trace: Option<CallTrace>,
    /// The trace of the request the run serves, carried on by its calls.
    pub(super) trace_context: Option<TraceContext>,
    /// Admits each call, if the embedder bounds them.
    gate: Option<super::CallGate>,
    /// Where the servers' questions during the run's calls go.
    relay: Option<Arc<dyn RequestRelay>>,
    /// The log level the run's calls ask for.
    #[allow(deprecated)] // logging: deprecated for 2026-07-28, still part of it
    log_level: Option<rmcp::model::LoggingLevel>,
    _instance: Counted,
}

impl PluginState {
    /// The state of one run: `options` as the embedder gave them, the host's `aggregator`
    /// where they name none.
    pub(super) fn new(
        name: Arc<str>,
        wasi: WasiCtx,
        aggregator: &Aggregator,
        policy: Arc<PluginPolicy>,
        gauges: Arc<Gauges>,
        options: super::RunOptions,
    ) -> Self {
        let instance = Counted::hold(&[&gauges.instances]);
        let budget = MemoryBudget::new(policy.max_memory_bytes);
        let limits = RunLimiter::new(budget.clone(), policy.max_table_elements);
        let super::RunOptions {
            progress,
            aggregator: own,
            sessions: router,
            trace,
            trace_context,
            usage: _,
            gate,
            relay,
            log_level,
            taint,
            added_labels,
            principal: _,
        } = options;
        Self {
            name,
            wasi,
            table: ResourceTable::new(),
            limits,
            budget,
            aggregator: own.unwrap_or_else(|| aggregator.clone()),
            policy,
            gauges,
            open_sessions: Arc::default(),
            in_flight: Arc::default(),
            calls: 0,
            taint: taint.unwrap_or_default(),
            added_labels,
            relayed: 0,
            progress,
            router,
            trace,
            trace_context,
            gate,
            relay,
            log_level,
            _instance: instance,
        }
    }
}

impl PluginState {
    /// Lets one more call of the run in past the embedder's bounds: the guard to hold while
    /// it runs, or `limit-exceeded`.
    pub(super) fn admit_call(&self) -> Result<Option<Box<dyn Send>>, types::Error> {
        match &self.gate {
            None => Ok(None),
            Some(gate) => gate().map(Some).map_err(types::Error::LimitExceeded),
        }
    }

    /// The options of every call the guest makes: the run's trace carried on, the servers'
    /// questions sent to the run's client, and, where that client asked for the run's
    /// progress, the call's upstream progress passed on as the run's.
    pub(super) fn call_options(&self, name: &ToolName) -> CallOptions {
        CallOptions {
            trace: self.trace_context.clone(),
            relay: self.relay.clone(),
            log_level: self.log_level,
            progress: self
                .progress
                .as_ref()
                .map(|run| upstream_progress(run.clone(), name.to_string())),
            ..CallOptions::default()
        }
    }
}

/// A sink for one call's upstream progress that passes each report on to the run's, its
/// message naming the tool (`server__tool: message`). Advisory like the run's own: a report
/// the client cannot take now is dropped, and the run's relay keeps the values increasing
/// (an inner call's that would go back is dropped there).
fn upstream_progress(run: ProgressSink, tool: String) -> ProgressSink {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<crate::client::Progress>(16);
    tokio::spawn(async move {
        while let Some(mut report) = rx.recv().await {
            report.message = Some(match report.message.take() {
                Some(m) => super::host::bounded(format!("{tool}: {m}")),
                None => tool.clone(),
            });
            let _ = run.try_send(report);
        }
    });
    tx
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// An aggregator error as a guest sees it: the WIT variant of its kind.
pub(super) fn to_wit_error(e: AggregatorError) -> types::Error {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::NotFound => types::Error::NotFound(message),
        ErrorKind::Denied => types::Error::Denied(message),
        ErrorKind::Invalid => types::Error::InvalidInput(message),
        ErrorKind::Timeout => types::Error::Timeout(message),
        ErrorKind::Limit => types::Error::LimitExceeded(message),
        ErrorKind::ServerFailed => types::Error::ServerFailed(message),
    }
}

pub(super) fn to_wit_result(r: CallToolResult, max_bytes: usize) -> CallOutcome {
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

/// A checked call request: name parsed, arguments parsed, counted against the limits.
pub(super) struct CallRequest {
    pub(super) name: ToolName,
    pub(super) arguments: Option<serde_json::Map<String, serde_json::Value>>,
}

impl PluginState {
    /// A call its server marks for approval (`"approval"`) waits here for the user of the
    /// run's caller, asked with the exact arguments (an elicitation, or a 2026-07-28 input
    /// request); declined, unanswered, or with nobody to ask (the command line), it is
    /// denied. The run's deadline still holds while it waits.
    pub(super) async fn approve(&mut self, req: &CallRequest) -> Result<(), types::Error> {
        if !self.aggregator.needs_approval(&req.name) {
            return Ok(());
        }
        let name = &req.name;
        let Some(relay) = self.relay.clone() else {
            return Err(self.denied(format!(
                "{name} needs the user's approval, and this run has nobody to ask"
            )));
        };
        let arguments =
            serde_json::to_string(&req.arguments.clone().unwrap_or_default()).unwrap_or_default();
        let params: Result<rmcp::model::ElicitRequestParams, _> = serde_json::from_value(
            serde_json::json!({
                "mode": "form",
                "message": format!("{} wants to call {name} with these arguments:\n{arguments}\n\nAllow this one call?", self.name),
                "requestedSchema": {"type": "object", "properties": {}},
            }),
        );
        let params =
            params.map_err(|e| self.denied(format!("{name}: cannot ask the user: {e}")))?;
        match relay.create_elicitation("mcp-registry", params).await {
            Ok(answer) if answer.action == rmcp::model::ElicitationAction::Accept => {
                tracing::info!(target: "mcp_registry::audit", plugin = %self.name, tool = %name, "approved by the user");
                Ok(())
            }
            Ok(_) => Err(self.denied(format!("the user declined the call of {name}"))),
            Err(e) => Err(self.denied(format!(
                "{name} needs the user's approval, and the user could not be asked: {}",
                e.message
            ))),
        }
    }

    pub(super) fn denied(&self, rule: String) -> types::Error {
        tracing::info!(target: "mcp_registry::audit", plugin = %self.name, "denied: {rule}");
        if self.policy.opaque_denials {
            return types::Error::Denied(rule);
        }
        types::Error::Denied(format!("plugin {}: {rule}", self.name))
    }

    pub(super) fn limit(&self, message: String) -> types::Error {
        tracing::info!(target: "mcp_registry::audit", plugin = %self.name, "limit: {message}");
        types::Error::LimitExceeded(format!("plugin {}: {message}", self.name))
    }

    pub(super) fn check_servers(&self, servers: &[String]) -> Result<(), types::Error> {
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

    pub(super) fn check_call(
        &mut self,
        name: &str,
        arguments: &str,
    ) -> Result<CallRequest, types::Error> {
        // Every attempt counts, denied or malformed ones too: a flood is bounded whatever
        // it floods with.
        self.policy
            .check_call_budget(self.calls, arguments.len())
            .map_err(|message| self.limit(message))?;
        self.calls += 1;
        let name = ToolName::parse(name).map_err(|e| to_wit_error(e.into()))?;
        self.policy
            .check_tool(&name)
            .map_err(|rule| self.denied(rule))?;
        let arguments = parse_arguments(arguments).map_err(to_wit_error)?;
        let mut labels = self.aggregator.labels(&name);
        if let Some(added) = &self.added_labels {
            labels = labels.join(crate::flow::added(added, &name));
        }
        {
            let mut taint = crate::locks::lock(&self.taint);
            if let Err(rule) = taint.check(&name, labels) {
                drop(taint);
                return Err(self.denied(rule));
            }
            taint.add(&name, labels);
        }
        Ok(CallRequest { name, arguments })
    }

    /// The tools the policy lets this plugin see, in WIT form.
    pub(super) fn visible_tools(&self, tools: Vec<NamespacedTool>) -> Vec<types::Tool> {
        tools
            .into_iter()
            .filter(|t| {
                self.policy
                    .check_tool(&ToolName::new(&t.server, t.tool.name.as_ref()))
                    .is_ok()
            })
            .map(to_wit_tool)
            .collect()
    }

    pub(super) fn allowed_servers(&self) -> Vec<String> {
        let registry = self.aggregator.registry();
        let all = registry.servers().keys();
        all.filter(|s| self.policy.check_server(s).is_ok())
            .cloned()
            .collect()
    }

    /// The session of handle `this` that serves `server`.
    pub(super) fn session(
        &self,
        this: &Resource<SessionEntry>,
        server: &str,
    ) -> Result<Arc<Session>, types::Error> {
        let entry = self
            .table
            .get(this)
            .map_err(|e| types::Error::InvalidInput(format!("bad session handle: {e}")))?;
        entry
            .session_for(server)
            .ok_or_else(|| types::Error::InvalidInput("the session is closed".into()))
    }

    /// Records a call that was refused before it started (denied, malformed, over a limit).
    pub(super) fn trace_refused(&self, name: &str, error: &types::Error) {
        if let Some(trace) = &self.trace {
            trace.record(TracedCall {
                tool: name.to_owned(),
                ms: 0.0,
                outcome: outcome_name(&Err(error.clone())),
                arguments: None,
                result: None,
                values: None,
            });
        }
    }
}

/// The kind of a WIT error: the inverse of [`to_wit_error`].
pub(super) fn kind_of(error: &types::Error) -> ErrorKind {
    match error {
        types::Error::NotFound(_) => ErrorKind::NotFound,
        types::Error::Denied(_) => ErrorKind::Denied,
        types::Error::InvalidInput(_) => ErrorKind::Invalid,
        types::Error::ServerFailed(_) => ErrorKind::ServerFailed,
        types::Error::Timeout(_) => ErrorKind::Timeout,
        types::Error::LimitExceeded(_) => ErrorKind::Limit,
    }
}

fn outcome_name(outcome: &CallOutcome) -> &'static str {
    match outcome {
        Ok(r) if r.is_error => Outcome::ToolError,
        Ok(_) => Outcome::Ok,
        Err(e) => Outcome::Failed(kind_of(e)),
    }
    .as_str()
}

/// A call's result as MCP has it (`content`, `structuredContent`, `isError`), from its WIT
/// form (which holds the JSON as text).
fn mcp_result(r: &types::CallResult) -> serde_json::Value {
    let parsed = |text: &str| {
        serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
    };
    let mut result = serde_json::Map::new();
    result.insert("content".into(), parsed(&r.content));
    if let Some(structured) = &r.structured_content {
        result.insert("structuredContent".into(), parsed(structured));
    }
    result.insert("isError".into(), r.is_error.into());
    serde_json::Value::Object(result)
}

/// One audit line per tool call, and its entry in the run's trace.
pub(super) fn audit(
    plugin: &str,
    req: &CallRequest,
    mode: &str,
    started: Instant,
    call_outcome: &CallOutcome,
    trace: Option<&CallTrace>,
) {
    let duration_ms = started.elapsed().as_secs_f64() * 1e3;
    let outcome = outcome_name(call_outcome);
    if let Some(trace) = trace {
        let (mut arguments, mut result, mut values) = (None, None, None);
        if trace.digests() {
            let arguments_value = req
                .arguments
                .clone()
                .map(serde_json::Value::Object)
                .unwrap_or_default();
            let result_value = call_outcome.as_ref().ok().map(mcp_result);
            arguments = Some(crate::digest::of_json(&arguments_value));
            result = result_value.as_ref().map(crate::digest::of_json);
            if trace.values() {
                values = Some((arguments_value, result_value));
            }
        }
        trace.record(TracedCall {
            tool: req.name.to_string(),
            ms: duration_ms,
            outcome,
            arguments,
            result,
            values,
        });
    }
    tracing::info!(
        target: "mcp_registry::audit",
        plugin,
        server = %req.name.server(),
        tool = %req.name.tool(),
        mode,
        duration_ms,
        outcome,
        "tool call"
    );
}
