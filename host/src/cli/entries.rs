//! The commands that change the registry's entries: `init`, `add`, `remove`. Each refuses
//! to lose what the user has (an entry replaced only with `--replace`, a removal that takes
//! what would dangle with it) and can repair a file that fails validation.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::config::Registry;

/// `init`: an empty registry, unless there is one.
pub(super) fn init(path: &Path) -> anyhow::Result<ExitCode> {
    if path.exists() {
        Registry::load(path)?;
        println!("registry already exists: {}", path.display());
    } else {
        Registry::load_or_default(path)?.save()?;
        println!("created {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `add NAME [--env K=V]... -- COMMAND [ARGS...]`.
pub(super) fn add(
    path: &Path,
    name: &str,
    env: &[String],
    command: &[String],
    project: Option<&str>,
    replace: bool,
) -> anyhow::Result<ExitCode> {
    let mut registry = Registry::load_or_default(path)?;
    let old = registry.entry(name).cloned();
    let mut env_map = BTreeMap::new();
    for kv in env {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--env {kv:?}: expected K=V");
        };
        env_map.insert(k.to_owned(), v.to_owned());
    }
    let (program, args) = command
        .split_first()
        .context("missing COMMAND after -- (or --url URL for a remote server)")?;
    registry
        .insert_server(name, program, args, &env_map)
        .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
    save_added(path, registry, name, project, old, replace)
}

/// `add NAME --url URL [--transport http|sse] [-H "K: V"]...`.
pub(super) fn add_remote(
    path: &Path,
    name: &str,
    url: &str,
    transport: &str,
    headers: &[String],
    project: Option<&str>,
    replace: bool,
) -> anyhow::Result<ExitCode> {
    let mut registry = Registry::load_or_default(path)?;
    let old = registry.entry(name).cloned();
    let mut header_map = serde_json::Map::new();
    for h in headers {
        let Some((k, v)) = h.split_once(':') else {
            bail!("--header {h:?}: expected \"NAME: VALUE\"");
        };
        header_map.insert(k.trim().to_owned(), v.trim().into());
    }
    let mut entry = serde_json::json!({"type": transport, "url": url});
    if !header_map.is_empty() {
        entry["headers"] = header_map.into();
    }
    registry
        .insert_entry(name, entry)
        .map_err(|m| anyhow::anyhow!("{}: server \"{name}\": {m}", path.display()))?;
    save_added(path, registry, name, project, old, replace)
}

/// Puts a just-added server in `project` (if any), writes the file and says so; refuses to
/// replace an `old` entry that differs unless `replace`.
fn save_added(
    path: &Path,
    mut registry: Registry,
    name: &str,
    project: Option<&str>,
    old: Option<serde_json::Value>,
    replace: bool,
) -> anyhow::Result<ExitCode> {
    let new = registry.entry(name).cloned().unwrap_or_default();
    refuse_replacing("server", name, old.as_ref(), &new, replace)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let verb = match &old {
        None => "added",
        Some(old) if *old == new => "kept (unchanged)",
        Some(_) => "replaced",
    };
    if let Some(project) = project {
        registry
            .add_to_project(project, name)
            .map_err(|m| anyhow::anyhow!("{}: project \"{project}\": {m}", path.display()))?;
    }
    registry.save()?;
    match project {
        Some(p) => println!(
            "{verb} server \"{name}\" in {} (project {p})",
            path.display()
        ),
        None => println!("{verb} server \"{name}\" in {}", path.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// `remove NAME`.
pub(super) fn remove(path: &Path, name: &str, project: Option<&str>) -> anyhow::Result<ExitCode> {
    // A file that fails validation is read anyway: removing is how it gets repaired.
    let (mut registry, broken) = Registry::load_for_repair(path)?;
    if let Some(project) = project {
        if broken.is_none() {
            registry
                .project(project)
                .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
        }
        if !registry.remove_from_project(project, name) {
            bail!(
                "{}: project \"{project}\" has no server \"{name}\"",
                path.display()
            );
        }
        registry.save()?;
        println!("removed server \"{name}\" from project {project} (it stays in the registry)");
        still_broken(&registry, broken);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(aliases) = registry.remove_server(name) else {
        bail!("{}: no server named \"{name}\"", path.display());
    };
    registry.save()?;
    println!("removed server \"{name}\" from {}", path.display());
    for alias in aliases {
        println!("removed alias \"{alias}\" (it stood for a tool of \"{name}\")");
    }
    still_broken(&registry, broken);
    Ok(ExitCode::SUCCESS)
}

/// After a repair of a file that failed validation: what is still wrong, if anything.
pub(super) fn still_broken(registry: &Registry, broken: Option<crate::config::ConfigError>) {
    if broken.is_some() {
        match registry.check() {
            Ok(()) => println!("the registry is valid again"),
            Err(e) => eprintln!("warning: the registry is still invalid: {e}"),
        }
    }
}

/// Refuses to replace an existing entry unless asked to, saying which of its fields would
/// change (not their values: an entry's `env` and `headers` hold secrets).
pub(super) fn refuse_replacing(
    what: &str,
    name: &str,
    old: Option<&serde_json::Value>,
    new: &serde_json::Value,
    replace: bool,
) -> anyhow::Result<()> {
    let Some(old) = old.filter(|old| !replace && *old != new) else {
        return Ok(());
    };
    let changed = match (old.as_object(), new.as_object()) {
        (Some(old), Some(new)) => {
            let mut fields: Vec<&str> = old
                .keys()
                .chain(new.keys())
                .filter(|k| old.get(*k) != new.get(*k))
                .map(String::as_str)
                .collect();
            fields.sort();
            fields.dedup();
            fields.join(", ")
        }
        _ => "its target".to_owned(),
    };
    bail!("{what} \"{name}\" already exists; --replace replaces it (changing {changed})")
}
