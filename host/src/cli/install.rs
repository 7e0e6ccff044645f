//! `install CLIENT`: puts `mcp-registry serve` into an MCP client's configuration (Claude
//! Desktop, Claude Code, Cursor, VS Code), as FastMCP's `install` does.
//!
//! Why absolute paths in the entry: a client starts its servers with a filtered environment
//! (the SDKs pass `HOME`, `PATH` and a few more; Claude Desktop on macOS not even the user's
//! `PATH`), so neither `mcp-registry` on `PATH` nor `$MCP_REGISTRY_CONFIG` can be relied
//! on: the entry names this binary and the registry file by their full paths.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

/// The clients `install` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    /// Claude Desktop (`claude_desktop_config.json`).
    ClaudeDesktop,
    /// Claude Code, project scope (`.mcp.json` here).
    ClaudeCode,
    /// Cursor, for every project (`~/.cursor/mcp.json`).
    Cursor,
    /// VS Code, this workspace (`.vscode/mcp.json` here).
    Vscode,
}

impl Client {
    fn title(self) -> &'static str {
        match self {
            Client::ClaudeDesktop => "Claude Desktop",
            Client::ClaudeCode => "Claude Code",
            Client::Cursor => "Cursor",
            Client::Vscode => "VS Code",
        }
    }

    /// Where the client reads its servers from, by default.
    fn usual_file(self) -> anyhow::Result<PathBuf> {
        let home = || {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .context("$HOME is not set: give --file")
        };
        Ok(match self {
            Client::ClaudeDesktop if cfg!(target_os = "macos") => {
                home()?.join("Library/Application Support/Claude/claude_desktop_config.json")
            }
            Client::ClaudeDesktop => std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .map_or_else(|| home().map(|h| h.join(".config")), Ok)?
                .join("Claude/claude_desktop_config.json"),
            Client::ClaudeCode => PathBuf::from(".mcp.json"),
            Client::Cursor => home()?.join(".cursor/mcp.json"),
            Client::Vscode => PathBuf::from(".vscode/mcp.json"),
        })
    }

    /// The key of the client's server map (VS Code's differs).
    fn servers_key(self) -> &'static str {
        match self {
            Client::Vscode => "servers",
            _ => "mcpServers",
        }
    }

    /// The entry that starts `serve` for this client.
    fn entry(self, program: &Path, registry: &Path, serve_args: &[String]) -> Value {
        let mut args = vec![
            "--config".to_owned(),
            registry.display().to_string(),
            "serve".to_owned(),
        ];
        args.extend(serve_args.iter().cloned());
        let mut entry = json!({"command": program.display().to_string(), "args": args});
        if self == Client::Vscode {
            entry["type"] = json!("stdio");
        }
        entry
    }
}

/// What `install` was asked.
pub(super) struct Install<'a> {
    pub(super) client: Client,
    pub(super) file: Option<&'a Path>,
    pub(super) name: &'a str,
    pub(super) replace: bool,
    pub(super) serve_args: &'a [String],
}

/// `install CLIENT [--file FILE] [--name NAME] [--replace] [-- SERVE_ARGS...]`.
pub(super) fn install(registry: &Path, how: Install<'_>) -> anyhow::Result<ExitCode> {
    let file = match how.file {
        Some(f) => f.to_path_buf(),
        None => how.client.usual_file()?,
    };
    let program = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .context("cannot tell where this mcp-registry binary is")?;
    let registry = std::path::absolute(registry)
        .with_context(|| format!("{}: cannot make the path absolute", registry.display()))?;
    let entry = how.client.entry(&program, &registry, how.serve_args);

    let mut document = match std::fs::read_to_string(&file) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => bail!("{}: expected a JSON object", file.display()),
            Err(e) => bail!("{}: not valid JSON ({e}); not touched", file.display()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => bail!("{}: cannot read it: {e}", file.display()),
    };
    let key = how.client.servers_key();
    let servers = document
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(servers) = servers else {
        bail!(
            "{}: \"{key}\" is not an object; not touched",
            file.display()
        );
    };
    let old = servers.get(how.name).cloned();
    if old.as_ref() == Some(&entry) {
        println!(
            "{} already starts \"{}\" this way ({})",
            how.client.title(),
            how.name,
            file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    super::entries::refuse_replacing(
        &format!("{} server", how.client.title()),
        how.name,
        old.as_ref(),
        &entry,
        how.replace,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    servers.insert(how.name.to_owned(), entry);

    if file.exists() {
        let backup = free_backup(&file);
        std::fs::copy(&file, &backup)
            .with_context(|| format!("keeping the previous version as {}", backup.display()))?;
        println!("kept the previous version as {}", backup.display());
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(document))?;
    text.push('\n');
    crate::files::write_atomic(&file, text.as_bytes())
        .with_context(|| format!("{}: cannot write it", file.display()))?;
    println!(
        "{} server \"{}\" in {}: {} --config {} serve{}",
        if old.is_some() { "replaced" } else { "added" },
        how.name,
        file.display(),
        program.display(),
        registry.display(),
        how.serve_args
            .iter()
            .map(|a| format!(" {a}"))
            .collect::<String>()
    );
    if !registry.exists() {
        println!(
            "note: there is no registry at {} yet: `mcp-registry init` (or `init --import`) makes one",
            registry.display()
        );
    }
    println!(
        "restart {} (or reload its MCP servers) to pick it up",
        how.client.title()
    );
    Ok(ExitCode::SUCCESS)
}

/// Where the version of `file` about to be replaced is kept: `FILE.bak`, or, when an earlier
/// install kept one there, `FILE.bak.N` (the first free N): no backup replaces another.
fn free_backup(file: &Path) -> PathBuf {
    let first = super::edit::with_suffix(file, ".bak");
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| super::edit::with_suffix(&first, &format!(".{n}")))
        .find(|b| !b.exists())
        .unwrap_or(first)
}
