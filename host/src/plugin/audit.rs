//! A run as the audit log records it. Where the registry names an audit log, every call of
//! the run is traced with the digests of its arguments and result, and the run is appended
//! when it ends: who it was for, what it was given (a digest), each call, how it ended.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{CallTrace, PluginError, RunOptions, TracedCall};
use crate::aggregator::Aggregator;
use crate::audit::AuditLog;

/// A run being recorded.
pub(super) struct RunAudit {
    log: Arc<AuditLog>,
    trace: CallTrace,
    principal: Option<String>,
}

impl RunAudit {
    /// Starts recording the run `options` describe if its registry names an audit log (the
    /// run's own aggregator's, else `host`'s); the run's trace then digests its calls.
    pub(super) fn start(
        host: &Aggregator,
        options: &mut RunOptions,
    ) -> Result<Option<Self>, PluginError> {
        let aggregator = options.aggregator.as_ref().unwrap_or(host);
        let Some(log) = crate::audit::log_for(&aggregator.registry())
            .map_err(|e| PluginError::Engine(e.to_string()))?
        else {
            return Ok(None);
        };
        let trace = options.trace.get_or_insert_with(CallTrace::default).clone();
        trace.digest_calls();
        if log.values() {
            trace.keep_values();
        }
        Ok(Some(Self {
            log,
            trace,
            principal: options.principal.clone(),
        }))
    }

    /// Appends the run's line; a log that cannot be written is said in the operator's log.
    pub(super) fn finish(self, plugin: &str, input: &str, outcome: &str, ms: f64, fuel: u64) {
        let mut record = run_record(
            plugin,
            self.principal.as_deref(),
            input,
            &self.trace.calls(),
            outcome,
            ms,
            fuel,
        );
        if self.log.values() {
            record.insert("input_value".into(), input.into());
        }
        if let Err(e) = self.log.append(record) {
            tracing::error!(error = %e, "the run could not be recorded in the audit log");
        }
    }
}

/// Whole microseconds: a line holds no fractional number, so its canonical form is cheap.
fn micros(ms: f64) -> u64 {
    (ms * 1000.0).round() as u64
}

fn run_record(
    plugin: &str,
    principal: Option<&str>,
    input: &str,
    calls: &[TracedCall],
    outcome: &str,
    ms: f64,
    fuel: u64,
) -> Map<String, Value> {
    let calls: Vec<Value> = calls
        .iter()
        .map(|c| {
            let mut call = json!({
                "tool": c.tool,
                "arguments": c.arguments,
                "result": c.result,
                "outcome": c.outcome,
                "us": micros(c.ms),
            });
            if let (Some((arguments, result)), Some(call)) = (&c.values, call.as_object_mut()) {
                call.insert("arguments_value".into(), arguments.clone());
                call.insert("result_value".into(), result.clone().unwrap_or_default());
            }
            call
        })
        .collect();
    let mut record = Map::new();
    record.insert("kind".into(), "run".into());
    record.insert("plugin".into(), plugin.into());
    record.insert("tenant".into(), principal.into());
    record.insert(
        "input".into(),
        crate::digest::of_bytes(input.as_bytes()).into(),
    );
    record.insert("calls".into(), calls.into());
    record.insert("outcome".into(), outcome.into());
    record.insert("us".into(), micros(ms).into());
    record.insert("fuel".into(), fuel.into());
    record
}
