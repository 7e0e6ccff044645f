//! `init --import [FILE]`: the servers of another MCP client's configuration (stdio ones, and
//! remote ones with their `type`, `url` and `headers`), added to the registry. Without FILE, every usual place is read: Claude Desktop
//! (`claude_desktop_config.json`), Claude Code (`.mcp.json` here), Cursor (`.cursor/mcp.json`
//! here and in the home directory) and VS Code (`.vscode/mcp.json` here, its `servers` key).
//! A server already in the registry is reported and kept as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use crate::config::Registry;

/// The usual places of other clients' configurations, with the client's name.
fn usual_places() -> Vec<(&'static str, PathBuf)> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    let mut places = Vec::new();
    if let Some(dir) = &config_home {
        places.push((
            "Claude Desktop",
            dir.join("Claude/claude_desktop_config.json"),
        ));
    }
    if let Some(home) = &home {
        places.push((
            "Claude Desktop",
            home.join("Library/Application Support/Claude/claude_desktop_config.json"),
        ));
        places.push(("Cursor", home.join(".cursor/mcp.json")));
    }
    places.push(("Claude Code", PathBuf::from(".mcp.json")));
    places.push(("Cursor", PathBuf::from(".cursor/mcp.json")));
    places.push(("VS Code", PathBuf::from(".vscode/mcp.json")));
    places
}

/// What one file held.
#[derive(Default)]
struct Imported {
    added: Vec<String>,
    kept: Vec<String>,
    skipped: Vec<String>,
}

/// Adds the stdio servers of `file` to `registry`.
fn import_file(registry: &mut Registry, file: &Path) -> anyhow::Result<Imported> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    let doc: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", file.display()))?;
    // Claude Desktop, Claude Code and Cursor: `mcpServers`; VS Code: `servers`.
    let servers = doc
        .get("mcpServers")
        .or_else(|| doc.get("servers"))
        .and_then(Value::as_object)
        .with_context(|| {
            format!(
                "{}: no \"mcpServers\" or \"servers\" object",
                file.display()
            )
        })?;
    let mut imported = Imported::default();
    for (name, entry) in servers {
        if registry.entry(name).is_some() {
            imported.kept.push(name.clone());
            continue;
        }
        let Some(command) = entry.get("command").and_then(Value::as_str) else {
            // A remote server: its `type`, `url` and `headers` as they are.
            let remote: serde_json::Map<String, Value> = entry
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| ["type", "url", "headers"].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            match registry.insert_entry(name, Value::Object(remote)) {
                Ok(()) => imported
                    .added
                    .push(disabled_as_there(registry, name, entry)),
                Err(e) => imported.skipped.push(format!("{name} ({e})")),
            }
            continue;
        };
        let args: Vec<String> = entry
            .get("args")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let env: BTreeMap<String, String> = entry
            .get("env")
            .and_then(Value::as_object)
            .map(|e| {
                e.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        match registry.insert_server(name, command, &args, &env) {
            Ok(()) => imported
                .added
                .push(disabled_as_there(registry, name, entry)),
            Err(e) => imported.skipped.push(format!("{name} ({e})")),
        }
    }
    Ok(imported)
}

/// `init --import [FILE]`.
/// Keeps an imported entry disabled if it was (Claude Code and others write
/// `"disabled": true`); the name as the report shows it.
fn disabled_as_there(registry: &mut Registry, name: &str, entry: &Value) -> String {
    if entry.get("disabled") == Some(&Value::Bool(true)) && registry.disable(name) {
        return format!("{name} (disabled)");
    }
    name.to_owned()
}

pub(super) fn init_import(path: &Path, file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut registry = Registry::load_or_default(path)?;
    let sources: Vec<(&str, PathBuf)> = match file {
        Some(f) => vec![("file", f.to_path_buf())],
        None => usual_places()
            .into_iter()
            .filter(|(_, p)| p.is_file())
            .collect(),
    };
    if sources.is_empty() {
        println!("no client configuration found at the usual places; give one: init --import FILE");
    }
    let mut added = 0;
    for (client, source) in &sources {
        let imported = import_file(&mut registry, source)?;
        added += imported.added.len();
        println!("{} ({client}):", source.display());
        for name in &imported.added {
            println!("  added {name}");
        }
        for name in &imported.kept {
            println!("  already present, kept: {name}");
        }
        for why in &imported.skipped {
            println!("  skipped: {why}");
        }
    }
    registry.save()?;
    println!("{added} server(s) added to {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `init` at a terminal, for a registry it just made: offers to import the configurations of
/// the clients found at the usual places.
pub(super) fn offer_import(path: &Path) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Ok(());
    }
    let found: Vec<(&str, PathBuf)> = usual_places()
        .into_iter()
        .filter(|(_, p)| p.is_file())
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    for (client, place) in &found {
        println!("found {client}'s servers in {}", place.display());
    }
    print!("import them into {}? [Y/n] ", path.display());
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim().to_lowercase().starts_with('n') {
        println!("not imported (later: mcp-registry init --import)");
        return Ok(());
    }
    init_import(path, None).map(|_| ())
}
