//! What one plugin may do, and how much: grants (servers, tools, directories, env, clock,
//! random) and limits (time, fuel, memory, sessions, calls, bytes).
//!
//! Defaults are safe: nothing is granted, not even a server of the registry (MCP servers are
//! capabilities too: a plugin with the registry's filesystem or shell server would reach
//! around the Wasm sandbox), and every resource is bounded. A
//! policy file names several plugins with their components, so `mcp-registry run --policy`
//! can run them side by side as tenants; it is validated like the registry file, with errors
//! naming the file, the plugin and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::access::{Access, Denied};
use crate::config::json::{self, Fields, JsonFileError};
use crate::names::ToolName;
use crate::oci::{ComponentSource, TrustedKey};

/// A host directory made visible to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// Directory on the host.
    pub host: PathBuf,
    /// Path the guest sees it at (e.g. `/data`).
    pub guest: String,
    /// Whether the guest may write (default: read-only).
    pub writable: bool,
}

/// What a plugin may reach and how much it may use.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginPolicy {
    /// Servers the plugin may use (none by default).
    pub allowed_servers: Vec<String>,
    /// Glob patterns (`*`, `?`) over `server__tool` the plugin may call; `None` means all
    /// tools of its allowed servers.
    pub allowed_tools: Option<Vec<String>>,
    /// What the plugin's caller may use, whatever `allowed_servers` and `allowed_tools` say:
    /// a tenant's grants and `serve --filter` for a plugin run through serve (default: no
    /// bound).
    pub ceiling: Access,
    /// Directories granted to the guest (none by default).
    pub preopens: Vec<Preopen>,
    /// Environment variables granted to the guest (none by default).
    pub env: BTreeMap<String, String>,
    /// Whether the guest sees the real wall clock (default: frozen at the Unix epoch).
    pub wall_clock: bool,
    /// Whether the guest gets real randomness (default: a fixed, deterministic sequence).
    pub random: bool,
    /// Wall-clock deadline of one run.
    pub deadline: Duration,
    /// Fuel (roughly, Wasm instructions) for one run; `None`: unlimited.
    pub fuel: Option<u64>,
    /// Maximum linear memory of the instance, in bytes.
    pub max_memory_bytes: usize,
    /// Maximum elements of any table.
    pub max_table_elements: usize,
    /// Maximum sessions open at once.
    pub max_sessions: usize,
    /// Maximum tool calls (temporary, session and started) in one run.
    pub max_calls: usize,
    /// Maximum calls in flight at once (started and not yet finished).
    pub max_in_flight: usize,
    /// Maximum bytes of one call's arguments.
    pub max_argument_bytes: usize,
    /// Maximum bytes of one call's result handed to the guest.
    pub max_result_bytes: usize,
    /// Maximum bytes the guest may write to stdout and to stderr (each).
    pub max_output_bytes: usize,
    /// Refuse without saying what is granted or how to grant it: a server that is not
    /// granted reads exactly like one that does not exist. For guests whose author is not
    /// the operator (code mode's model-written snippets).
    pub opaque_denials: bool,
}

impl Default for PluginPolicy {
    fn default() -> Self {
        Self {
            allowed_servers: Vec::new(),
            allowed_tools: None,
            ceiling: Access::everything(),
            preopens: Vec::new(),
            env: BTreeMap::new(),
            wall_clock: false,
            random: false,
            deadline: Duration::from_secs(60),
            fuel: None,
            max_memory_bytes: 256 << 20,
            max_table_elements: 100_000,
            max_sessions: 16,
            max_calls: 10_000,
            max_in_flight: 64,
            max_argument_bytes: 1 << 20,
            max_result_bytes: 16 << 20,
            max_output_bytes: 1 << 20,
            opaque_denials: false,
        }
    }
}

pub use crate::names::glob_match;

/// Whose grants a plugin's own are, in refusals.
const PLUGIN: &str = "this plugin";

impl PluginPolicy {
    /// Its own grants (servers and tools) within its ceiling: the one access decision
    /// ([`crate::access`]) for this plugin.
    pub fn access(&self) -> Access {
        Access::everything()
            .servers(PLUGIN, &self.allowed_servers)
            .tools(PLUGIN, self.allowed_tools.as_deref())
            .within(&self.ceiling)
    }

    /// Whether the policy lets the plugin use `server`; `Err` says which rule forbids it.
    pub fn check_server(&self, server: &str) -> Result<(), String> {
        self.access()
            .check_server(server)
            .map_err(|denied| self.told(denied))
    }

    /// This policy within what its caller may use (a tenant's grants, `serve --filter`),
    /// besides any ceiling it already had.
    pub fn within(&self, ceiling: &Access) -> Self {
        let mut policy = self.clone();
        policy
            .allowed_servers
            .retain(|s| ceiling.check_server(s).is_ok());
        policy.ceiling = self.ceiling.clone().within(ceiling);
        policy
    }

    /// A policy granting `servers` and nothing else beyond the defaults.
    pub fn granting(servers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            allowed_servers: servers.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Whether the policy lets the plugin call `name`.
    pub fn check_tool(&self, name: &ToolName) -> Result<(), String> {
        self.access()
            .check(name)
            .map_err(|denied| self.told(denied))
    }

    /// What the guest is told of a refusal: with opaque denials, exactly what a name that
    /// exists nowhere gets; otherwise the rule, and for the plugin's own grants how to
    /// widen them.
    fn told(&self, denied: Denied) -> String {
        match (&denied, self.opaque_denials) {
            (Denied::Server { server, .. }, true) => format!(
                "server \"{server}\" is not available (no such server, or not one this client may use)"
            ),
            (Denied::Tool { name, .. } | Denied::Filtered { name, .. }, true) => format!(
                "tool \"{name}\" is not available (no such tool, or not one this client may use)"
            ),
            (Denied::Server { server, whose, .. }, false) if whose == PLUGIN => format!(
                "{denied}; grant it with --allow-server {server} (or --allow-requested, or a \
                 policy file's \"servers\")"
            ),
            _ => denied.to_string(),
        }
    }

    /// Whether one more call, with arguments of `argument_bytes`, fits after `calls` calls.
    pub fn check_call_budget(&self, calls: usize, argument_bytes: usize) -> Result<(), String> {
        if argument_bytes > self.max_argument_bytes {
            return Err(format!(
                "arguments of {argument_bytes} bytes are over max_argument_bytes ({})",
                self.max_argument_bytes
            ));
        }
        if calls >= self.max_calls {
            return Err(format!(
                "more than max_calls ({}) tool calls in one run",
                self.max_calls
            ));
        }
        Ok(())
    }

    /// Whether another session may open while `open` are.
    pub fn check_sessions(&self, open: usize) -> Result<(), String> {
        if open >= self.max_sessions {
            return Err(format!(
                "already {open} sessions open (max_sessions {})",
                self.max_sessions
            ));
        }
        Ok(())
    }

    /// Whether another call may start while `in_flight` are running.
    pub fn check_in_flight(&self, in_flight: usize) -> Result<(), String> {
        if in_flight >= self.max_in_flight {
            return Err(format!(
                "already {in_flight} calls in flight (max_in_flight {})",
                self.max_in_flight
            ));
        }
        Ok(())
    }
}

/// A plugin entry of a policy file.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The plugin's name (its key in the file): the name it is served and granted under.
    pub name: String,
    /// Where that name was given, for errors: `FILE: plugin "NAME"`, or `--plugin PATH`.
    pub origin: String,
    /// Where its component comes from: a path (relative to the policy file) or
    /// `oci://REGISTRY/REPO@sha256:DIGEST`.
    pub component: ComponentSource,
    /// Public keys one of which must have signed the component (`signed_by`; empty: no
    /// signature required).
    pub signed_by: Vec<TrustedKey>,
    /// Its input (default `{}`).
    pub input: Value,
    /// Its policy.
    pub policy: PluginPolicy,
}

/// An error in a policy file (it names the file, the plugin and the field).
pub type PolicyError = JsonFileError;

const PLUGIN_FIELDS: &[&str] = &[
    "component",
    "signed_by",
    "input",
    "servers",
    "tools",
    "grants",
    "limits",
];
const GRANT_FIELDS: &[&str] = &["dirs", "env", "wall_clock", "random"];
const LIMIT_FIELDS: &[&str] = &[
    "deadline_secs",
    "fuel",
    "memory_bytes",
    "table_elements",
    "sessions",
    "calls",
    "in_flight",
    "argument_bytes",
    "result_bytes",
    "output_bytes",
];

/// Reads a policy file: `{"plugins": {"NAME": {"component": "x.wasm", ...}}}`. Relative paths
/// (components, granted directories) are relative to the file.
pub fn load_policy_file(path: &Path) -> Result<Vec<PluginSpec>, PolicyError> {
    from_json(&json::read(path, "policy file")?, path)
}

/// Parses policy-file text (see [`load_policy_file`]).
pub fn parse_policy_file(text: &str, path: &Path) -> Result<Vec<PluginSpec>, PolicyError> {
    from_json(&json::parse(text, path)?, path)
}

fn from_json(doc: &Value, path: &Path) -> Result<Vec<PluginSpec>, PolicyError> {
    let top = Fields::top(path);
    let obj = top.object("(top level)", doc)?;
    top.only("", obj, &["plugins"])?;
    let plugins = obj
        .get("plugins")
        .ok_or_else(|| top.err("plugins", "missing"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    top.object("plugins", plugins)?
        .iter()
        .map(|(name, entry)| plugin_spec(Fields::entry(path, "plugin", name), name, entry, base))
        .collect()
}

fn plugin_spec(
    v: Fields<'_>,
    name: &str,
    entry: &Value,
    base: &Path,
) -> Result<PluginSpec, PolicyError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(v.err("(name)", "plugin names use letters, digits, '-' and '_'"));
    }
    let e = v.object("(entry)", entry)?;
    v.only("", e, PLUGIN_FIELDS)?;
    let component = match e.get("component") {
        Some(c) => ComponentSource::parse(&v.string("component", c)?, base)
            .map_err(|e| v.err("component", e.to_string()))?,
        None => {
            return Err(v.err(
                "component",
                "missing; the path of the plugin's .wasm, or oci://REGISTRY/REPO@sha256:DIGEST",
            ))
        }
    };
    let signed_by = match e.get("signed_by") {
        Some(keys) => v
            .strings("signed_by", keys)?
            .iter()
            .map(|k| TrustedKey::load(&base.join(k)).map_err(|e| v.err("signed_by", e.to_string())))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let mut policy = PluginPolicy::default();
    if let Some(s) = e.get("servers") {
        policy.allowed_servers = v.strings("servers", s)?;
    }
    if let Some(t) = e.get("tools") {
        policy.allowed_tools = Some(v.strings("tools", t)?);
    }
    if let Some(g) = e.get("grants") {
        grants(&v, g, base, &mut policy)?;
    }
    if let Some(l) = e.get("limits") {
        limits(&v, l, &mut policy)?;
    }
    Ok(PluginSpec {
        name: name.to_owned(),
        origin: v.place(),
        component,
        signed_by,
        input: e
            .get("input")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
        policy,
    })
}

fn grants(
    v: &Fields<'_>,
    g: &Value,
    base: &Path,
    policy: &mut PluginPolicy,
) -> Result<(), PolicyError> {
    let g = v.object("grants", g)?;
    v.only("grants", g, GRANT_FIELDS)?;
    if let Some(dirs) = g.get("dirs") {
        let dirs = dirs
            .as_array()
            .ok_or_else(|| v.err("grants.dirs", "expected an array"))?;
        for (i, d) in dirs.iter().enumerate() {
            policy
                .preopens
                .push(preopen(v, &format!("grants.dirs[{i}]"), d, base)?);
        }
    }
    if let Some(env) = g.get("env") {
        policy.env = v.string_map("grants.env", env)?;
    }
    if let Some(c) = g.get("wall_clock") {
        policy.wall_clock = v.bool("grants.wall_clock", c)?;
    }
    if let Some(r) = g.get("random") {
        policy.random = v.bool("grants.random", r)?;
    }
    Ok(())
}

fn preopen(v: &Fields<'_>, f: &str, d: &Value, base: &Path) -> Result<Preopen, PolicyError> {
    let d = v.object(f, d)?;
    v.only(f, d, &["host", "guest", "write"])?;
    let field = |k: &str| format!("{f}.{k}");
    let host = base.join(v.string(&field("host"), d.get("host").unwrap_or(&Value::Null))?);
    if !host.is_dir() {
        return Err(v.err(
            field("host"),
            format!("{} is not a directory", host.display()),
        ));
    }
    let guest = v.string(&field("guest"), d.get("guest").unwrap_or(&Value::Null))?;
    let writable = match d.get("write") {
        Some(w) => v.bool(&field("write"), w)?,
        None => false,
    };
    Ok(Preopen {
        host,
        guest,
        writable,
    })
}

fn limits(v: &Fields<'_>, l: &Value, policy: &mut PluginPolicy) -> Result<(), PolicyError> {
    let l = v.object("limits", l)?;
    v.only("limits", l, LIMIT_FIELDS)?;
    for (k, val) in l {
        let f = format!("limits.{k}");
        match k.as_str() {
            "deadline_secs" => policy.deadline = v.seconds(&f, val)?,
            "fuel" => policy.fuel = Some(v.count(&f, val)?),
            "memory_bytes" => policy.max_memory_bytes = v.size(&f, val)?,
            "table_elements" => policy.max_table_elements = v.size(&f, val)?,
            "sessions" => policy.max_sessions = v.size(&f, val)?,
            "calls" => policy.max_calls = v.size(&f, val)?,
            "in_flight" => policy.max_in_flight = v.size(&f, val)?,
            "argument_bytes" => policy.max_argument_bytes = v.size(&f, val)?,
            "result_bytes" => policy.max_result_bytes = v.size(&f, val)?,
            "output_bytes" => policy.max_output_bytes = v.size(&f, val)?,
            // `only` above rejected every other key.
            other => return Err(v.err(f, format!("unknown limit \"{other}\""))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("a__*", "a__echo"));
        assert!(glob_match("*__echo", "b__echo"));
        assert!(glob_match("a__e?ho", "a__echo"));
        assert!(!glob_match("a__*", "b__echo"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a", "ab"));
        assert!(glob_match("a*b*c", "axxbyyc"));
    }

    #[test]
    fn policy_file_errors_name_plugin_and_field() {
        let p = Path::new("/tmp/pol.json");
        let e = parse_policy_file(
            r#"{"plugins": {"x": {"component": "a.wasm", "limits": {"sessions": 0}}}}"#,
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("pol.json") && e.contains("plugin \"x\"") && e.contains("limits.sessions"),
            "{e}"
        );
        let e = parse_policy_file(
            r#"{"plugins": {"x": {"component": "a.wasm", "grant": {}}}}"#,
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("\"grant\"") && e.contains("unknown field"),
            "{e}"
        );
        let e = parse_policy_file(r#"{"plugins": {"x": {}}}"#, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("component"), "{e}");
        let ok = parse_policy_file(
            r#"{"plugins": {"x": {"component": "a.wasm", "servers": ["s"], "tools": ["s__*"],
                "grants": {"env": {"K": "V"}, "wall_clock": true}, "limits": {"deadline_secs": 2.5, "calls": 5}}}}"#,
            p,
        )
        .unwrap();
        assert_eq!(ok[0].policy.max_calls, 5);
        assert_eq!(
            ok[0].component,
            crate::oci::ComponentSource::File("/tmp/a.wasm".into())
        );
    }
}
