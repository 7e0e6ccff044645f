//! `pins list | diff | approve [SERVER[__TOOL]]`: what is pinned, what drifted (as a diff of
//! the definitions), and pinning a tool again as it is now. `serve` picks an approval up
//! without a restart: the pins file is watched with the registry.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use rmcp::model::Tool;

use crate::client::{ServerConnection, ShutdownPolicy};
use crate::config::{Pinning, Registry};
use crate::names::{ToolName, SEPARATOR};
use crate::pins::{self, Drift};

/// What `pins` does.
#[derive(Debug, clap::Subcommand)]
pub enum PinsAction {
    /// List the pins: each tool's hash, per server.
    List {
        /// A server, or one tool (SERVER__TOOL); default: all.
        target: Option<String>,
    },
    /// Start the servers, list their tools and show what no longer matches its pin, as a
    /// diff of the definitions (`-` pinned, `+` now). Exit status 1 if anything drifted.
    Diff {
        /// A server, or one tool (SERVER__TOOL); default: all.
        target: Option<String>,
    },
    /// Pin tools again as their servers describe them now: a whole server (pins of tools it
    /// no longer has are dropped), or one tool.
    Approve {
        /// A server, or one tool (SERVER__TOOL); default: all.
        target: Option<String>,
    },
}

/// `pins ...`.
pub(super) async fn pins(path: &Path, action: &PinsAction) -> anyhow::Result<ExitCode> {
    let registry = Registry::load(path)?;
    let Some(pinning) = registry.pinning() else {
        bail!(
            "{}: tools are not pinned; add \"pins\": \"quarantine\" (or \"warn\") to the registry to pin them",
            path.display()
        );
    };
    let mut pinning = pinning.clone();
    match action {
        PinsAction::List { target } => {
            let (servers, tool) = targets(&registry, &pinning, target.as_deref(), true)?;
            for server in servers {
                let Some(pins) = pinning.pinned.servers.get(&server) else {
                    println!("{server}: not pinned yet (pinned at first use)");
                    continue;
                };
                println!("{server}: tool names {}", pins.names);
                for (name, pin) in &pins.tools {
                    if tool.as_deref().is_none_or(|t| t == name) {
                        println!("  {server}{SEPARATOR}{name}\t{}", pin.sha256);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PinsAction::Diff { target } => {
            let (servers, tool) = targets(&registry, &pinning, target.as_deref(), false)?;
            let mut drifted = false;
            for server in servers {
                if !pinning.pinned.servers.contains_key(&server) {
                    println!("{server}: not pinned yet (pinned at first use)");
                    continue;
                }
                let tools = listed(&registry, &server).await?;
                drifted |= show_drift(&mut pinning, &server, tool.as_deref(), &tools);
            }
            if !drifted {
                println!("every tool matches its pin");
            }
            Ok(if drifted {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        PinsAction::Approve { target } => {
            let (servers, tool) = targets(&registry, &pinning, target.as_deref(), false)?;
            for server in servers {
                let tools = listed(&registry, &server).await?;
                if let Some(t) = &tool {
                    if !tools.iter().any(|x| x.name == t.as_str()) {
                        bail!("server \"{server}\" lists no tool \"{t}\"");
                    }
                }
                let approved = pins::approve(&mut pinning, &server, tool.as_deref(), &tools);
                if approved.is_empty() {
                    println!("{server}: unchanged");
                }
                for name in approved {
                    println!("approved {server}{SEPARATOR}{name}");
                }
            }
            pinning
                .save()
                .with_context(|| format!("writing {}", pinning.path.display()))?;
            println!("pins written to {}", pinning.path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The servers (and the one tool) a target names; `pinned_only`: without a target, only
/// the servers that have pins.
fn targets(
    registry: &Registry,
    pinning: &Pinning,
    target: Option<&str>,
    pinned_only: bool,
) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let Some(target) = target else {
        let servers = registry
            .servers()
            .keys()
            .filter(|s| !pinned_only || pinning.pinned.servers.contains_key(*s))
            .cloned()
            .collect();
        return Ok((servers, None));
    };
    let (server, tool) = if target.contains(SEPARATOR) {
        let name = ToolName::parse(target)?;
        (name.server().to_owned(), Some(name.tool().to_owned()))
    } else {
        (target.to_owned(), None)
    };
    if registry.server(&server).is_none() && !pinning.pinned.servers.contains_key(&server) {
        bail!("unknown server \"{server}\"");
    }
    Ok((vec![server], tool))
}

/// `server`'s tools as it lists them now (a temporary connection).
async fn listed(registry: &Registry, server: &str) -> anyhow::Result<Vec<Tool>> {
    let config = registry
        .server(server)
        .with_context(|| format!("server \"{server}\" is no longer in the registry"))?;
    let conn = ServerConnection::connect(server, config).await?;
    let tools = conn.list_tools().await;
    conn.close_with(ShutdownPolicy::PROMPT).await;
    Ok(tools?)
}

/// Prints what of `server`'s tools (or the one `tool`) drifted, with diffs; whether any did.
fn show_drift(pinning: &mut Pinning, server: &str, tool: Option<&str>, tools: &[Tool]) -> bool {
    let (drift, _) = pins::check(pinning, server, tools);
    let mut any = false;
    for (name, why) in drift.iter().filter(|(n, _)| tool.is_none_or(|t| t == *n)) {
        any = true;
        println!("{server}{SEPARATOR}{name}: {why}");
        let now = tools
            .iter()
            .find(|t| t.name == name.as_str())
            .map(pins::definition)
            .unwrap_or_default();
        let pinned = match why {
            Drift::Changed(_) => pinning
                .pinned
                .servers
                .get(server)
                .and_then(|p| p.tools.get(name))
                .map(|p| p.definition.clone())
                .unwrap_or_default(),
            Drift::New | Drift::Renamed(_) => serde_json::Value::Null,
        };
        for line in pins::diff(&pinned, &now) {
            println!("    {line}");
        }
    }
    if let Some(pins) = pinning.pinned.servers.get(server) {
        for name in pins.tools.keys() {
            if tool.is_none_or(|t| t == name) && !tools.iter().any(|t| t.name == name.as_str()) {
                any = true;
                println!("{server}{SEPARATOR}{name}: pinned, no longer listed");
            }
        }
    }
    any
}
