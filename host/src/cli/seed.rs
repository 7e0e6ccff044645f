//! Commands under the names the Python `mcp-registry` (the seed) gives them, for users
//! coming from it: `show-config-path`, `get`, `show`, `alias list|add|remove`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use serde_json::Value;

use super::print_json;
use crate::config::Registry;

/// `show-config-path`: where the registry file is (whether or not it exists yet).
pub(super) fn show_config_path(path: &Path) -> anyhow::Result<ExitCode> {
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `get NAME`: one server's entry, as written in the file.
pub(super) fn get(path: &Path, name: &str) -> anyhow::Result<ExitCode> {
    let registry = Registry::load(path)?;
    let Some(entry) = registry
        .document()
        .get("mcpServers")
        .and_then(|servers| servers.get(name))
    else {
        bail!("{}: no server named \"{name}\"", path.display());
    };
    print_json(entry)?;
    Ok(ExitCode::SUCCESS)
}

/// `show`: the whole registry file.
pub(super) fn show(path: &Path) -> anyhow::Result<ExitCode> {
    let registry = Registry::load_or_default(path)?;
    print_json(registry.document())?;
    Ok(ExitCode::SUCCESS)
}

/// What `alias` does.
#[derive(Debug, clap::Subcommand)]
pub enum AliasAction {
    /// List the aliases (ALIAS -> SERVER__TOOL).
    List,
    /// Add an alias: a plain tool name standing for SERVER__TOOL (--replace replaces one).
    Add {
        /// The plain name.
        alias: String,
        /// The tool it stands for.
        target: String,
        /// Replace an alias of the same name standing for another tool.
        #[arg(long)]
        replace: bool,
    },
    /// Remove an alias.
    Remove {
        /// The plain name.
        alias: String,
    },
}

/// `alias list | add ALIAS SERVER__TOOL | remove ALIAS`.
pub(super) fn alias(path: &Path, action: &AliasAction) -> anyhow::Result<ExitCode> {
    match action {
        AliasAction::List => {
            let registry = Registry::load_or_default(path)?;
            if registry.aliases().is_empty() {
                println!("no aliases in {}", path.display());
            }
            for (alias, target) in registry.aliases() {
                println!("{alias} -> {target}");
            }
        }
        AliasAction::Add {
            alias,
            target,
            replace,
        } => {
            let mut registry = Registry::load(path)?;
            let old = registry.aliases().get(alias).cloned().map(Value::String);
            let new = Value::String(target.clone());
            super::entries::refuse_replacing("alias", alias, old.as_ref(), &new, *replace)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            registry
                .set_alias(alias, target)
                .map_err(|m| anyhow::anyhow!("{}: alias \"{alias}\": {m}", path.display()))?;
            registry.save()?;
            println!("added alias \"{alias}\" -> {target} to {}", path.display());
        }
        AliasAction::Remove { alias } => {
            // A file that fails validation is read anyway: removing is how it gets repaired.
            let (mut registry, broken) = Registry::load_for_repair(path)?;
            if !registry.remove_alias(alias) {
                bail!("{}: no alias named \"{alias}\"", path.display());
            }
            registry.save()?;
            println!("removed alias \"{alias}\" from {}", path.display());
            super::entries::still_broken(&registry, broken);
        }
    }
    Ok(ExitCode::SUCCESS)
}
