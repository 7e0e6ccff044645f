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

/// What one run may send through `log` and `progress` in all (each progress report counts
/// its message and 64 bytes): a guest that logs in a loop costs the host's log, the operator's
/// disk and a client's stream no more than this.
pub(crate) const RELAYED_BYTES_PER_RUN: usize = 1 << 20;

impl PluginState {
    /// Takes `bytes` of the run's log and progress allowance; once it is spent, says so once
    /// in the host's log and refuses the rest.
    pub(crate) fn relay_allowed(&mut self, bytes: usize) -> bool {
        if self.relayed.saturating_add(bytes) <= RELAYED_BYTES_PER_RUN {
            self.relayed += bytes;
            return true;
        }
        if self.relayed <= RELAYED_BYTES_PER_RUN {
            // Past the allowance for good: one notice, then silence.
            self.relayed = RELAYED_BYTES_PER_RUN + 1;
            tracing::warn!(
                target: "mcp_registry::plugin",
                plugin = &*self.name,
                "log and progress truncated: the run sent more than {RELAYED_BYTES_PER_RUN} bytes; the rest is dropped"
            );
        }
        false
    }
}

impl wit_log::Host for PluginState {
    async fn log(&mut self, level: wit_log::Level, message: String) {
        let message = bounded(message);
        if !self.relay_allowed(message.len()) {
            return;
        }
        let plugin = &*self.name;
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
