//! `mcp-registry:plugin/progress`: a guest's progress reports, to whoever asked for the run's
//! progress (a `serve` client's `tools/call`), which keeps them increasing.

use super::log::bounded;
use crate::client::Progress;
use crate::plugin::bindings::mcp_registry::plugin::progress as wit_progress;
use crate::plugin::state::PluginState;

impl wit_progress::Host for PluginState {
    async fn report(&mut self, progress: f64, total: Option<f64>, message: Option<String>) {
        if !progress.is_finite() {
            return;
        }
        let message = message.map(bounded);
        if !self.relay_allowed(64 + message.as_ref().map_or(0, String::len)) {
            return;
        }
        tracing::debug!(target: "mcp_registry::plugin", plugin = &*self.name, progress, ?total, ?message, "progress");
        if crate::client::recording::recording() {
            crate::client::recording::note(serde_json::json!({
                "kind": "progress", "plugin": &*self.name, "progress": progress,
                "total": total.filter(|t| t.is_finite()), "message": &message,
            }));
        }
        if let Some(sink) = &self.progress {
            let report = Progress {
                progress,
                total: total.filter(|t| t.is_finite()),
                message,
            };
            // Advisory: if the client cannot keep up, later reports are dropped.
            let _ = sink.try_send(report);
        }
    }
}
