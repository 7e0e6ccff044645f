//! Pinned tool definitions at the aggregator: every listing and every call passes here, so
//! a drifted tool is left out and refused the same way for every front end (the CLI,
//! sessions, `serve`, plugins, code mode). The pins themselves are [`crate::pins`].

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rmcp::model::Tool;

use super::{Aggregator, AggregatorError};
use crate::client::ServerConnection;
use crate::config::PinMode;
use crate::locks::lock;
use crate::names::ToolName;

impl Aggregator {
    /// Whether tools are pinned (the registry has a `"pins"` policy).
    pub fn pins_on(&self) -> bool {
        lock(&self.inner.pins).is_some()
    }

    /// Checks `server`'s tools as listed now against the pins ([`crate::pins::check`]),
    /// saving what was pinned anew; the tools to leave out (none when pins are off or the
    /// policy only warns).
    pub(super) fn drifted(
        &self,
        server: &str,
        tools: &[Tool],
    ) -> BTreeMap<String, crate::pins::Drift> {
        let mut guard = lock(&self.inner.pins);
        let Some(pinning) = guard.as_mut() else {
            return BTreeMap::new();
        };
        let (drifted, changed) = crate::pins::check(pinning, server, tools);
        if changed {
            self.inner.pins_generation.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = pinning.save_server(server) {
                tracing::warn!(file = %pinning.path.display(), error = %e, "cannot write the pins file");
            }
        }
        let quarantine = pinning.mode == PinMode::Quarantine;
        let mut logged = lock(&self.inner.drifts_logged);
        for (tool, why) in &drifted {
            if !logged.insert(format!("{server}__{tool}: {why}")) {
                continue;
            }
            let action = if quarantine {
                "quarantined"
            } else {
                "served anyway (pins: warn)"
            };
            tracing::warn!(server, tool, "tool {server}__{tool} is {action}: {why}");
        }
        if quarantine {
            drifted
        } else {
            BTreeMap::new()
        }
    }

    /// Refuses a call to `name` if its definition in `tools` (its server's list now) has
    /// drifted from its pin. A tool the list lacks passes: the server answers for it.
    pub(crate) fn check_pinned(
        &self,
        name: &ToolName,
        tools: &[Tool],
    ) -> Result<(), AggregatorError> {
        let Some(tool) = tools.iter().find(|t| t.name == name.tool()) else {
            return Ok(());
        };
        {
            let guard = lock(&self.inner.pins);
            let Some(pinning) = guard.as_ref() else {
                return Ok(());
            };
            if crate::pins::matches(pinning, name.server(), tool) == Some(true) {
                return Ok(());
            }
        }
        match self.drifted(name.server(), tools).remove(name.tool()) {
            Some(why) => Err(AggregatorError::Quarantined {
                server: name.server().to_owned(),
                tool: name.tool().to_owned(),
                why: why.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses a call to `name` on `conn` if the tool drifted from its pin. The verdict is
    /// kept with the cached tool list until the list or the pins change, so a call pays a
    /// lookup, not a hash of every definition.
    pub(crate) async fn check_pinned_on(
        &self,
        conn: &ServerConnection,
        name: &ToolName,
    ) -> Result<(), AggregatorError> {
        if !self.pins_on() {
            return Ok(());
        }
        let source = (conn.id(), conn.tools_generation());
        let generation = self.inner.pins_generation.load(Ordering::SeqCst);
        let cached = lock(&self.inner.cache)
            .get(name.server())
            .filter(|entry| entry.source == source)
            .and_then(|entry| entry.drifted.clone())
            .filter(|(g, _)| *g == generation)
            .map(|(_, drifted)| drifted);
        let drifted = match cached {
            Some(drifted) => drifted,
            None => {
                let tools = self.cached_tools(conn).await?;
                let drifted = Arc::new(self.drifted(name.server(), &tools));
                let generation = self.inner.pins_generation.load(Ordering::SeqCst);
                if let Some(entry) = lock(&self.inner.cache).get_mut(name.server()) {
                    if entry.source == source {
                        entry.drifted = Some((generation, drifted.clone()));
                    }
                }
                drifted
            }
        };
        match drifted.get(name.tool()) {
            Some(why) => Err(AggregatorError::Quarantined {
                server: name.server().to_owned(),
                tool: name.tool().to_owned(),
                why: why.to_string(),
            }),
            None => Ok(()),
        }
    }
}
