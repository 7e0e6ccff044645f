//! One server entry of a registry file, checked field by field: the stdio fields
//! (`command`, `args`, `env`, `cwd`) or the remote ones (`remote.rs`), then what every
//! server has (timeouts, tool filter, labels, approval, roots, era, sharing).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::json::{kind, Fields, JsonFileError};
use super::{remote, ProtocolMode, ServerConfig, Sharing, ToolFilter};

/// Every field a server entry may have; any other is refused (a typo, most likely).
const SERVER_FIELDS: &[&str] = &[
    "type",
    "url",
    "headers",
    "auth",
    "command",
    "args",
    "env",
    "inherit_env",
    "cwd",
    "description",
    "timeouts",
    "tools",
    "labels",
    "approval",
    "roots",
    "protocol",
    "sharing",
    "disabled",
];

/// Checks one server entry; `base_dir` resolves a relative `cwd`.
pub(super) fn parse_server(
    v: &Fields<'_>,
    entry: &Value,
    base_dir: &Path,
) -> Result<ServerConfig, JsonFileError> {
    let obj = v.object("(entry)", entry)?;
    v.only("", obj, SERVER_FIELDS)?;
    let mut config = match remote::transport(v, obj)? {
        Some(transport) => remote::parse(v, obj, transport)?,
        None => stdio(v, obj, base_dir)?,
    };
    if let Some(d) = obj.get("description") {
        config.description = Some(v.string("description", d)?);
    }
    if let Some(t) = obj.get("timeouts") {
        timeouts(v, t, &mut config)?;
    }
    if let Some(t) = obj.get("tools") {
        config.tools = tool_filter(v, t)?;
    }
    if let Some(l) = obj.get("labels") {
        config.labels = super::labels::parse(v, "labels", l)?;
    }
    if let Some(a) = obj.get("approval") {
        config.approval = v.strings("approval", a)?;
    }
    if let Some(r) = obj.get("roots") {
        config.roots = v.strings("roots", r)?;
    }
    if let Some(p) = obj.get("protocol") {
        config.protocol = protocol(v, p)?;
    }
    if let Some(d) = obj.get("disabled") {
        // Checked here; the registry keeps a disabled entry out of its servers.
        v.bool("disabled", d)?;
    }
    if let Some(p) = obj.get("sharing") {
        config.sharing = match v.string("sharing", p)?.as_str() {
            "tenant" => Sharing::Tenant,
            "global" => Sharing::Global,
            "session" => Sharing::Session,
            other => {
                let expected = "expected \"tenant\", \"global\" or \"session\"";
                let message = format!("unknown sharing \"{other}\"; {expected}");
                return Err(v.err("sharing", message));
            }
        };
    }
    Ok(config)
}

/// The fields of a stdio server: `command`, `args`, `env`, `cwd`.
fn stdio(
    v: &Fields<'_>,
    obj: &Map<String, Value>,
    base_dir: &Path,
) -> Result<ServerConfig, JsonFileError> {
    if let Some(field) = ["url", "headers", "auth"]
        .into_iter()
        .find(|f| obj.contains_key(*f))
    {
        let message = "only for a remote server (\"type\": \"http\" or \"sse\")";
        return Err(v.err(field, message));
    }
    let command = match obj.get("command") {
        None => {
            return Err(v.err(
                "command",
                "missing; every server needs a command to run (or a \"url\" for a remote one)",
            ))
        }
        Some(c) => v.string("command", c)?,
    };
    if command.trim().is_empty() {
        return Err(v.err("command", "must not be empty"));
    }
    let mut config = ServerConfig::new(command, Vec::<String>::new());
    if let Some(args) = obj.get("args") {
        config.args = v.strings("args", args)?;
    }
    if let Some(env) = obj.get("env") {
        config.env = v.string_map("env", env)?;
        if let Some(key) = config
            .env
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            return Err(v.err(format!("env.{key}"), "invalid environment variable name"));
        }
    }
    if let Some(names) = obj.get("inherit_env") {
        config.inherit_env = v.strings("inherit_env", names)?;
        if let Some((i, _)) = config
            .inherit_env
            .iter()
            .enumerate()
            .find(|(_, k)| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            return Err(v.err(
                format!("inherit_env[{i}]"),
                "invalid environment variable name",
            ));
        }
    }
    if let Some(cwd) = obj.get("cwd") {
        let cwd = PathBuf::from(v.string("cwd", cwd)?);
        // `${HOME}/work` is absolute once expanded (at start-up): left as written.
        let variable_first = cwd.to_string_lossy().starts_with('$');
        config.cwd = Some(if cwd.is_relative() && !variable_first {
            base_dir.join(cwd)
        } else {
            cwd
        });
    } else if is_relative_path(&config.command) {
        // A relative path (not a bare name looked up in PATH) with no `cwd` is the file's, as
        // a relative `cwd` is: the same registry works from any directory. With a `cwd`, the
        // process starts there and the path is relative to it, as it always was.
        config.command = base_dir.join(&config.command).display().to_string();
    }
    Ok(config)
}

fn timeouts(v: &Fields<'_>, t: &Value, config: &mut ServerConfig) -> Result<(), JsonFileError> {
    for (key, value) in v.object("timeouts", t)? {
        match key.as_str() {
            "connect" => config.connect_timeout = v.seconds("timeouts.connect", value)?,
            "call" => config.call_timeout = v.seconds("timeouts.call", value)?,
            other => {
                return Err(v.err(
                    format!("timeouts.{other}"),
                    "unknown field; expected \"connect\" or \"call\" (seconds)",
                ))
            }
        }
    }
    Ok(())
}

fn tool_filter(v: &Fields<'_>, t: &Value) -> Result<ToolFilter, JsonFileError> {
    let t = t.as_object().ok_or_else(|| {
        v.err(
            "tools",
            format!(
                "expected {{\"allow\": [...]}} or {{\"deny\": [...]}}, found {}",
                kind(t)
            ),
        )
    })?;
    Ok(match (t.get("allow"), t.get("deny"), t.len()) {
        (Some(a), None, 1) => ToolFilter::Allow(v.strings("tools.allow", a)?),
        (None, Some(d), 1) => ToolFilter::Deny(v.strings("tools.deny", d)?),
        _ => {
            return Err(v.err(
                "tools",
                "expected exactly one of {\"allow\": [...]} or {\"deny\": [...]}",
            ))
        }
    })
}

fn protocol(v: &Fields<'_>, p: &Value) -> Result<ProtocolMode, JsonFileError> {
    Ok(match v.string("protocol", p)?.as_str() {
        "auto" => ProtocolMode::Auto,
        "legacy" | "2025-11-25" => ProtocolMode::Legacy,
        "2026-07-28" => ProtocolMode::Modern,
        other => {
            return Err(v.err(
                "protocol",
                format!(
                    "unknown protocol \"{other}\"; expected \"auto\", \"legacy\" or \"2026-07-28\""
                ),
            ))
        }
    })
}

/// `target/debug/server` or `./run.sh`, not `npx` or `/usr/bin/x` or `${HOME}/bin/x`.
fn is_relative_path(command: &str) -> bool {
    command.contains('/') && !command.starts_with('$') && Path::new(command).is_relative()
}
