//! Reloading `serve`'s configuration without a restart: on SIGHUP, and when the registry,
//! tenants or pins file changes on disk (read every second and compared).
//!
//! Why whole files and a diff: a reload reads and checks both files completely before
//! anything changes, so a broken file is rejected whole (the log line names the file, the
//! server or tenant, and the field) and the configuration in force stays. Then only what
//! changed is touched: servers and tenants that are the same keep their connections and
//! client sessions; added ones appear, removed ones are closed, changed ones reconnect on
//! first use; client sessions are told the lists changed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::setup::Shared;
use crate::config::tenants::TenantsConfig;
use crate::config::Registry;

/// Where `serve`'s configuration comes from, so it can be read again.
#[derive(Debug, Clone)]
pub struct ReloadSources {
    /// The registry file.
    pub registry: PathBuf,
    /// The tenants file (`--tenants`), if any.
    pub tenants: Option<PathBuf>,
    /// Aliases given on the command line (`serve -a`), kept across reloads.
    pub aliases: Vec<(String, String)>,
}

/// How often the files are read for changes.
const WATCH_EVERY: Duration = Duration::from_secs(1);

impl Shared {
    /// Reads both files again and puts them in force; a summary of what changed, or why the
    /// new configuration was rejected (the old one then stays, untouched).
    pub(super) async fn reload(&self, sources: &ReloadSources) -> Result<String, String> {
        let mut registry = Registry::load(&sources.registry).map_err(|e| e.to_string())?;
        for (alias, target) in &sources.aliases {
            registry
                .set_alias(alias, target)
                .map_err(|m| format!("--alias {alias}={target}: {m}"))?;
        }
        let config = sources
            .tenants
            .as_deref()
            .map(TenantsConfig::load)
            .transpose()
            .map_err(|e| e.to_string())?;
        let servers = self
            .exposed(&registry)
            .map_err(|e| format!("{}: {e}", sources.registry.display()))?;
        // (A `serve -p` follows its project's members as the file has them now.)
        if let Some(config) = &config {
            config
                .check(&registry, &self.plugin_names())
                .map_err(|e| e.to_string())?;
        }
        let _one_at_a_time = self.reloading.lock().await;
        let before = self.aggregator.registry();
        let previous = self.tenants();
        let next = previous.reloaded(&self.aggregator, &registry, &servers, config.as_ref())?;
        let mut changed_servers = Vec::new();
        for name in before.servers().keys().chain(registry.servers().keys()) {
            let (old, new) = (before.server(name), registry.server(name));
            if old != new && !changed_servers.contains(name) {
                let what = match (old, new) {
                    (None, _) => "+",
                    (_, None) => "-",
                    _ => "~",
                };
                changed_servers.push(format!("{what}{name}"));
            }
        }
        let changed_tenants = next.changes_from(&previous);
        let aliases_changed = before.aliases() != registry.aliases();
        let pins_changed = self.aggregator.replace_registry(registry);
        let next = Arc::new(next);
        self.replace_tenants(next.clone());
        next.reconfigure_pools(&previous).await;
        if !changed_servers.is_empty()
            || !changed_tenants.is_empty()
            || aliases_changed
            || pins_changed
        {
            next.announce_lists_changed();
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "unchanged".to_owned()
            } else {
                v.join(" ")
            }
        };
        Ok(format!(
            "servers {}; tenants {}{}",
            list(&changed_servers),
            list(&changed_tenants),
            if pins_changed { "; pins changed" } else { "" }
        ))
    }
}

/// Reloads and says how it went on stderr (stdout is the MCP stream on stdio), whatever the
/// log level: a rejected file is something to fix.
pub(super) async fn reload_and_report(shared: &Shared, sources: &ReloadSources, why: &str) {
    match shared.reload(sources).await {
        Ok(summary) => eprintln!("mcp-registry: reloaded ({why}): {summary}"),
        Err(e) => eprintln!(
            "mcp-registry: reload rejected ({why}): {e}; the configuration in force is unchanged"
        ),
    }
}

/// The files' contents (the pins file too, where the registry has one), to notice a change.
fn contents(sources: &ReloadSources, shared: &Shared) -> Vec<Option<Vec<u8>>> {
    let pins = shared
        .aggregator
        .registry()
        .pinning()
        .map(|p| p.path.clone());
    std::iter::once(&sources.registry)
        .chain(sources.tenants.as_ref())
        .chain(pins.as_ref())
        .map(|p| std::fs::read(p).ok())
        .collect()
}

/// Reloads on SIGHUP and whenever a file's contents change, for the life of `shared`.
pub(super) fn watch(shared: &Arc<Shared>, sources: ReloadSources) {
    let weak = Arc::downgrade(shared);
    let files = sources.clone();
    let mut seen = contents(&files, shared);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let Some(shared) = weak.upgrade() else { break };
            let now = contents(&files, &shared);
            if now != seen {
                seen = now;
                reload_and_report(&shared, &files, "a file changed").await;
            }
        }
    });
    let weak = Arc::downgrade(shared);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by editing the files");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            let Some(shared) = weak.upgrade() else { break };
            reload_and_report(&shared, &sources, "SIGHUP").await;
        }
    });
}
