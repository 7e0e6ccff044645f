//! `mcp-registry:plugin/log`: a guest's log lines, into the host's log under its name.

use crate::plugin::bindings::mcp_registry::plugin::log as wit_log;
use crate::plugin::state::PluginState;

/// Bounds what one guest-supplied text (a log line, a progress message) can cost the host.
pub(crate) fn bounded(message: String) -> String {
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

impl wit_log::Host for PluginState {
    async fn log(&mut self, level: wit_log::Level, message: String) {
        let plugin = &*self.name;
        let message = bounded(message);
        if crate::client::recording::recording() {
            crate::client::recording::note(serde_json::json!({
                "kind": "log", "plugin": plugin, "level": format!("{level:?}"), "message": &message,
            }));
        }
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
