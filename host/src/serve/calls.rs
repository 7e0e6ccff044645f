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
use super::ForOurClient;
use crate::aggregator::ErrorKind;
use crate::client::CallOptions;
use crate::names::ToolName;
use crate::plugin::{RunOptions, RunUsage};

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
    /// Calls an upstream tool for the tenant: a tool it may not call is unknown, exactly as
    /// one that exists nowhere.
    pub(super) async fn call_upstream(
        &self,
        requested: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<CallToolResult, ErrorData> {
        let name = ToolName::parse(requested).map_err(|_| unknown_tool(requested))?;
        if !self.tenant.may_call(&name) || !self.shared.visible(name.server(), name.tool()) {
            return Err(unknown_tool(requested));
        }
        let mut options = CallOptions {
            relay: Some(Arc::new(self.relay())),
            trace: self.trace.clone(),
            ..CallOptions::default()
        };
        let progress = self.progress_relay().map(|(sink, relay)| {
            options.progress = Some(sink);
            relay
        });
        let pool = self.pool(name.server());
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
                tenant: self.tenant.name.to_string(),
                server: name.server().to_owned(),
                tool: name.tool().to_owned(),
                outcome: outcome.to_owned(),
            },
            started.elapsed(),
        );
        match result {
            Ok(r) => Ok(r.for_our_client()),
            Err(e) => match e.kind() {
                ErrorKind::NotFound | ErrorKind::Denied => Err(unknown_tool(requested)),
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
        let policy = plugin.policy.within(tenant.servers(), tenant.tool_globs());
        let usage = RunUsage::default();
        let mut options = RunOptions {
            aggregator: Some(tenant.aggregator.clone()),
            trace_context: self.trace.clone(),
            usage: Some(usage.clone()),
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
