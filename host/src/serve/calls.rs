//! A `tools/call` of our client, once it is known what it names: an upstream tool or a
//! plugin, called for the request's tenant through the request's pools, counted, and
//! answered on our client's wire.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::ErrorData;
use serde_json::{Map, Value};

use super::ops::CallLabels;
use super::request::RequestScope;
use super::setup::PluginTool;
use super::tenant::Admission;
use super::ForOurClient;
use crate::access::Access;
use crate::aggregator::{AggregatorError, ErrorKind, Outcome};
use crate::client::CallOptions;
use crate::names::ToolName;
use crate::plugin::{CallGate, RunOptions, RunUsage};

/// A tool the caller may not call: unknown, exactly as one that exists nowhere.
pub(super) fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("unknown tool \"{name}\""), None)
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

impl RequestScope {
    /// Lets one more request of the tenant in (its rate and its requests in flight), or
    /// answers with the bound it meets: every request that makes an upstream work (a call,
    /// a resource read, a prompt, a completion) passes here.
    pub(super) fn admit(&self) -> Result<Admission, ErrorData> {
        self.tenant.admit().map_err(|e| {
            self.shared.ops.refuse("limit");
            limit_error(e)
        })
    }

    /// Lets one more `subscriptions/listen` stream of the tenant open, or answers with the
    /// bound it meets.
    pub(super) fn admit_listen(&self) -> Result<Admission, ErrorData> {
        self.tenant.admit_listen().map_err(|e| {
            self.shared.ops.refuse("limit");
            limit_error(e)
        })
    }

    /// What this client may see and call: its tenant's grants and `serve --filter`, the
    /// one decision ([`crate::access`]) its listings, calls, snippets and plugin runs all
    /// take.
    pub(super) fn access(&self) -> Access {
        self.tenant
            .access()
            .clone()
            .filters("serve --filter", self.shared.filter.clone())
    }

    /// The tenant's bounds for the calls inside a plugin run or a snippet: each call counts
    /// toward its rate and takes a place among its requests in flight, beside the request
    /// that started the run (which holds one of its own).
    pub(super) fn call_gate(&self) -> CallGate {
        let tenant = self.tenant.clone();
        Arc::new(move || {
            tenant
                .admit()
                .map(|admitted| Box::new(admitted) as Box<dyn Send>)
        })
    }

    /// What our client is told of `e`, an error of `server`: a tenant of a tenants file
    /// learns which server failed and how, never the server's stderr, exit status or
    /// command, which go to the operator's log instead.
    pub(super) fn told(&self, e: &AggregatorError, server: &str) -> String {
        if self.tenant.is_local() {
            return e.to_string();
        }
        let told = match e.kind() {
            ErrorKind::ServerFailed => {
                format!("server \"{server}\" failed (the operator's log has the details)")
            }
            ErrorKind::Timeout => format!("server \"{server}\" did not answer in time"),
            _ => return e.to_string(),
        };
        tracing::warn!(tenant = %self.tenant.name, server, error = %e, "upstream failure (the client was told less)");
        told
    }

    /// The information-flow labels of `name` for this client: the registry's, what the
    /// server says of it, and what its tenant adds.
    pub(super) fn labels_of(&self, name: &ToolName) -> crate::config::Labels {
        let labels = self.shared.aggregator.labels(name);
        labels.join(crate::flow::added(self.tenant.labels(), name))
    }

    /// The labels every tool, resource and prompt of `server` has for this client.
    pub(super) fn server_labels_of(&self, server: &str) -> crate::config::Labels {
        let labels = self.shared.aggregator.server_labels(server);
        labels.join(crate::flow::added_to_server(self.tenant.labels(), server))
    }

    /// Joins what `server` gave this session (a resource or prompt named `what`) into its
    /// information-flow taint, with the server's labels.
    pub(super) fn taken_in(&self, server: &str, what: &str) {
        let labels = self.server_labels_of(server);
        crate::locks::lock(&self.taint).add(&ToolName::new(server, what), labels);
    }

    /// Flow control before this session sends anything to `name` (a tool, or a server's
    /// resource, prompt or completion) labelled `labels`: `Err` is the refusal, already
    /// audited and counted, when the rule stops it and the user does not let it through.
    pub(super) async fn flow_gate(
        &self,
        name: &ToolName,
        labels: crate::config::Labels,
        arguments: Option<&Map<String, Value>>,
    ) -> Result<(), String> {
        let stopped = crate::locks::lock(&self.taint).check(name, labels).err();
        let Some(rule) = stopped else {
            return Ok(());
        };
        match self.approve(name, arguments, rule).await {
            Ok(()) => {
                tracing::info!(target: "mcp_registry::audit", tenant = %self.tenant.name, tool = %name, "approved by the user: a call flow control stopped");
                Ok(())
            }
            Err(refusal) => {
                tracing::info!(target: "mcp_registry::audit", tenant = %self.tenant.name, tool = %name, "denied: {refusal}");
                self.shared.ops.refuse("flow");
                Err(refusal)
            }
        }
    }

    /// [`Self::flow_gate`] for a request to `server` that is not a tool call (`what`: the
    /// resource's URI, the prompt's name), as a JSON-RPC error.
    pub(super) async fn flow_gate_server(&self, server: &str, what: &str) -> Result<(), ErrorData> {
        let labels = self.server_labels_of(server);
        self.flow_gate(&ToolName::new(server, what), labels, None)
            .await
            .map_err(|refusal| ErrorData::invalid_request(refusal, None))
    }

    /// Whether the user lets through the one call of `name` with `arguments` that flow
    /// control stopped by `rule`: asked (an elicitation, or an input request of a
    /// 2026-07-28 client) where the tenant's or the registry's `"flow"` says `"ask"`; `Err`
    /// is what the call's caller is told.
    async fn approve(
        &self,
        name: &ToolName,
        arguments: Option<&Map<String, Value>>,
        rule: String,
    ) -> Result<(), String> {
        let asks = self
            .tenant
            .flow_asks()
            .unwrap_or_else(|| self.shared.aggregator.registry().flow_asks());
        if !asks {
            return Err(rule);
        }
        let call =
            serde_json::to_string(&arguments.cloned().unwrap_or_default()).unwrap_or_default();
        let params: rmcp::model::ElicitRequestParams = serde_json::from_value(serde_json::json!({
            "mode": "form",
            "message": format!("mcp-registry stopped a call: {rule}.\n\nLet this one call \
                                through?\n{name} {call}"),
            "requestedSchema": {"type": "object", "properties": {}},
        }))
        .map_err(|e| format!("{rule}; the user could not be asked: {e}"))?;
        use crate::client::RequestRelay;
        match self
            .relay()
            .create_elicitation("mcp-registry", params)
            .await
        {
            Ok(answer) if answer.action == rmcp::model::ElicitationAction::Accept => Ok(()),
            Ok(_) => Err(format!("{rule}; the user declined to let it through")),
            Err(e) => Err(format!(
                "{rule}; the user could not be asked: {}",
                e.message
            )),
        }
    }

    /// Calls an upstream tool for the tenant: a tool it may not call is unknown, exactly as
    /// one that exists nowhere.
    pub(super) async fn call_upstream(
        &self,
        requested: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<CallToolResult, ErrorData> {
        let name = ToolName::parse(requested).map_err(|_| unknown_tool(requested))?;
        if !self.access().allows(&name) {
            return Err(unknown_tool(requested));
        }
        // Flow control: a session that has read private data and untrusted content sends
        // nothing out, unless its user lets this one call through; a refusal is the call's
        // result, for the model to read.
        // What the server says of the tool (`openWorldHint`) counts only once its list is
        // read: read it first if it is not.
        if self
            .shared
            .aggregator
            .lists(name.server(), name.tool())
            .is_none()
        {
            let _ = self
                .pool(name.server())
                .list_server_tools(name.server())
                .await;
        }
        let labels = self.labels_of(&name);
        let audited = self.audited(labels, arguments.as_ref());
        if let Err(refusal) = self.flow_gate(&name, labels, arguments.as_ref()).await {
            if let Some(audited) = audited {
                audited.append(self, &name, None, "denied-flow", 0.0);
            }
            return Ok(CallToolResult::error(vec![ContentBlock::text(refusal)]));
        }
        crate::locks::lock(&self.taint).add(&name, labels);
        let mut options = CallOptions {
            relay: Some(Arc::new(self.relay())),
            trace: self.trace.clone(),
            log_level: self.log_level,
            ..CallOptions::default()
        };
        let progress = self.progress_relay().map(|(sink, relay)| {
            options.progress = Some(sink);
            relay
        });
        let pool = self.pool(name.server());
        let logs = self.call_logs(name.server());
        let started = std::time::Instant::now();
        let result = pool.call_tool_with(&name, arguments, options).await;
        if let Some(progress) = progress {
            progress.finish().await;
        }
        if let Some(logs) = logs {
            logs.finish().await;
        }
        self.count_call(&name, &result, started, audited).await;
        match result {
            Ok(r) => Ok(r.for_our_client()),
            // Granted, but its definition drifted from its pin: said plainly, as a result the
            // model and its user read.
            Err(e @ AggregatorError::Quarantined { .. }) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(
                    e.to_string(),
                )]))
            }
            Err(e) => match e.kind() {
                ErrorKind::NotFound | ErrorKind::Denied => Err(unknown_tool(requested)),
                ErrorKind::Invalid => Err(ErrorData::invalid_params(e.to_string(), None)),
                ErrorKind::Limit => Err(limit_error(e.to_string())),
                // The server failed or timed out: a tool execution error the model can
                // read, as the spec recommends for failures during the call.
                _ => Ok(CallToolResult::error(vec![ContentBlock::text(
                    self.told(&e, name.server()),
                )])),
            },
        }
    }

    /// Says how an upstream call ended: the operator's log, the metrics (label values from
    /// configured names only) and, where calls are recorded, the audit log.
    async fn count_call(
        &self,
        name: &ToolName,
        result: &Result<CallToolResult, AggregatorError>,
        started: std::time::Instant,
        audited: Option<AuditedCall>,
    ) {
        let outcome = Outcome::of(result).as_str();
        tracing::info!(
            target: "mcp_registry::calls",
            server = name.server(),
            tool = name.tool(),
            outcome,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "upstream call"
        );
        // Label values come from configured names only: a tool the server does not list
        // (a caller can make up any number of names) is counted as `unknown`.
        let pool = self.pool(name.server());
        let listed = match self.shared.aggregator.lists(name.server(), name.tool()) {
            Some(listed) => listed,
            // No list of the server yet (a client that calls without listing): ask once;
            // from then on it is cached.
            None => pool
                .list_server_tools(name.server())
                .await
                .is_ok_and(|tools| tools.iter().any(|t| t.tool.name == name.tool())),
        };
        if let Some(audited) = audited {
            let ms = started.elapsed().as_secs_f64() * 1e3;
            audited.append(self, name, result.as_ref().ok(), outcome, ms);
        }
        let tool = if listed { name.tool() } else { "unknown" };
        self.shared.ops.call(
            CallLabels {
                tenant: self.tenant.name.to_string(),
                server: name.server().to_owned(),
                tool: tool.to_owned(),
                outcome: outcome.to_owned(),
            },
            started.elapsed(),
        );
    }

    /// The start of a call's audit line, if the registry names an audit log; one that
    /// cannot be opened is said in the operator's log (the call goes on: it is not the
    /// caller's fault).
    fn audited(
        &self,
        labels: crate::config::Labels,
        arguments: Option<&Map<String, Value>>,
    ) -> Option<AuditedCall> {
        let log =
            crate::audit::log_for(&self.shared.aggregator.registry()).unwrap_or_else(|e| {
                tracing::error!(error = %e, "the audit log cannot be opened; calls go unrecorded");
                None
            })?;
        let arguments = arguments.cloned().map(Value::Object).unwrap_or_default();
        Some(AuditedCall {
            labels,
            digest: crate::digest::of_json(&arguments),
            arguments: log.values().then_some(arguments),
            log,
        })
    }

    /// Runs a plugin for the tenant: under its policy, within the tenant's grants, its
    /// processes counted against the tenant's bounds.
    pub(super) async fn call_plugin(
        &self,
        plugin: &PluginTool,
        arguments: Option<Map<String, Value>>,
    ) -> CallToolResult {
        let Some(host) = &self.shared.host else {
            return CallToolResult::error(vec![ContentBlock::text("no plugin host")]);
        };
        let input = Value::Object(arguments.unwrap_or_default()).to_string();
        let tenant = &self.tenant;
        let policy = plugin.policy.within(&self.access());
        let usage = RunUsage::default();
        let mut options = RunOptions {
            aggregator: Some(tenant.aggregator.clone()),
            trace_context: self.trace.clone(),
            usage: Some(usage.clone()),
            gate: Some(self.call_gate()),
            relay: Some(Arc::new(self.relay())),
            log_level: self.log_level,
            taint: Some(self.taint.clone()),
            added_labels: Some(self.tenant.labels().clone()),
            principal: Some(tenant.name.to_string()),
            ..RunOptions::default()
        };
        let progress = self.progress_relay().map(|(sink, relay)| {
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

/// A plain call of a client session being recorded in the audit log.
struct AuditedCall {
    log: Arc<crate::audit::AuditLog>,
    labels: crate::config::Labels,
    /// The digest of its arguments.
    digest: String,
    /// The arguments themselves, where the log keeps values.
    arguments: Option<Value>,
}

impl AuditedCall {
    /// Appends the call's line: who, which tool with which labels, digests of its arguments
    /// and result, how it ended.
    fn append(
        self,
        scope: &RequestScope,
        name: &ToolName,
        result: Option<&CallToolResult>,
        outcome: &str,
        ms: f64,
    ) {
        let result = result.map(|r| serde_json::to_value(r).unwrap_or_default());
        let labels = [
            (self.labels.private, "private"),
            (self.labels.untrusted, "untrusted"),
            (self.labels.egress, "egress"),
        ];
        let labels: Vec<&str> = labels
            .into_iter()
            .filter_map(|(on, label)| on.then_some(label))
            .collect();
        let mut record = Map::new();
        record.insert("kind".into(), "call".into());
        record.insert("tenant".into(), scope.tenant.name.to_string().into());
        record.insert("tool".into(), name.to_string().into());
        record.insert("labels".into(), labels.into());
        record.insert("arguments".into(), self.digest.into());
        record.insert(
            "result".into(),
            result.as_ref().map(crate::digest::of_json).into(),
        );
        if let Some(arguments) = self.arguments {
            record.insert("arguments_value".into(), arguments);
            record.insert("result_value".into(), result.unwrap_or_default());
        }
        record.insert("outcome".into(), outcome.into());
        record.insert("us".into(), ((ms * 1000.0).round() as u64).into());
        if let Err(e) = self.log.append(record) {
            tracing::error!(error = %e, "the call could not be recorded in the audit log");
        }
    }
}
