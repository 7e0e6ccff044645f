//! What one plugin may do, and how much: grants (servers, tools, directories, env, clock,
//! random) and limits (time, fuel, memory, sessions, calls, bytes).
//!
//! Defaults are safe: no grants beyond the registry's servers, every resource bounded. A
//! policy file names several plugins with their components, so `mcp-registry run --policy`
//! can run them side by side as tenants; it is validated like the registry file, with errors
//! naming the file, the plugin and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

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
    /// Servers the plugin may use; `None` means every server in the registry.
    pub allowed_servers: Option<Vec<String>>,
    /// Glob patterns (`*`, `?`) over `server__tool` the plugin may call; `None` means all
    /// tools of its allowed servers.
    pub allowed_tools: Option<Vec<String>>,
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
}

impl Default for PluginPolicy {
    fn default() -> Self {
        Self {
            allowed_servers: None,
            allowed_tools: None,
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
        }
    }
}

/// Matches `name` against a glob with `*` (any run) and `?` (any one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl PluginPolicy {
    /// Whether the policy lets the plugin use `server`; `Err` says which rule forbids it.
    pub fn check_server(&self, server: &str) -> Result<(), String> {
        match &self.allowed_servers {
            Some(allowed) if !allowed.iter().any(|s| s == server) => Err(format!(
                "server \"{server}\" is not in the plugin's allowed servers ({})",
                allowed.join(", ")
            )),
            _ => Ok(()),
        }
    }

    /// Whether the policy lets the plugin call `server__tool`.
    pub fn check_tool(&self, server: &str, name: &str) -> Result<(), String> {
        self.check_server(server)?;
        match &self.allowed_tools {
            Some(globs) if !globs.iter().any(|g| glob_match(g, name)) => Err(format!(
                "tool \"{name}\" matches none of the plugin's allowed tool patterns ({})",
                globs.join(", ")
            )),
            _ => Ok(()),
        }
    }
}

/// A plugin entry of a policy file.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The plugin's name (its key in the file).
    pub name: String,
    /// Path of its component.
    pub component: PathBuf,
    /// Its input (default `{}`).
    pub input: Value,
    /// Its policy.
    pub policy: PluginPolicy,
}

/// An error in a policy file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{}: cannot read policy file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not JSON.
    #[error("{}:{line}:{column}: invalid JSON: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// serde_json's message.
        message: String,
    },
    /// A value is wrong.
    #[error("{}: {}field \"{field}\": {message}", path.display(), plugin.as_ref().map(|p| format!("plugin \"{p}\": ")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The plugin entry, if inside one.
        plugin: Option<String>,
        /// The field path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

struct V<'a> {
    path: &'a Path,
    plugin: Option<&'a str>,
}

impl V<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            path: self.path.to_path_buf(),
            plugin: self.plugin.map(str::to_owned),
            field: field.to_owned(),
            message: message.into(),
        }
    }
    fn object<'v>(&self, field: &str, v: &'v Value) -> Result<&'v Map<String, Value>, PolicyError> {
        v.as_object()
            .ok_or_else(|| self.err(field, "expected an object"))
    }
    fn string(&self, field: &str, v: &Value) -> Result<String, PolicyError> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.err(field, "expected a string"))
    }
    fn strings(&self, field: &str, v: &Value) -> Result<Vec<String>, PolicyError> {
        let a = v
            .as_array()
            .ok_or_else(|| self.err(field, "expected an array of strings"))?;
        a.iter()
            .enumerate()
            .map(|(i, s)| self.string(&format!("{field}[{i}]"), s))
            .collect()
    }
    fn bool(&self, field: &str, v: &Value) -> Result<bool, PolicyError> {
        v.as_bool()
            .ok_or_else(|| self.err(field, "expected true or false"))
    }
    fn count(&self, field: &str, v: &Value) -> Result<u64, PolicyError> {
        v.as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| self.err(field, "expected a positive integer"))
    }
    fn keys(
        &self,
        field: &str,
        obj: &Map<String, Value>,
        allowed: &[&str],
    ) -> Result<(), PolicyError> {
        match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(self.err(
                &format!("{field}{}{k}", if field.is_empty() { "" } else { "." }),
                format!("unknown field; expected one of: {}", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }
}

const PLUGIN_FIELDS: &[&str] = &["component", "input", "servers", "tools", "grants", "limits"];
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
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_policy_file(&text, path)
}

/// Parses policy-file text (see [`load_policy_file`]).
pub fn parse_policy_file(text: &str, path: &Path) -> Result<Vec<PluginSpec>, PolicyError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| PolicyError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let top = V { path, plugin: None };
    let obj = top.object("(top level)", &doc)?;
    top.keys("", obj, &["plugins"])?;
    let plugins = obj
        .get("plugins")
        .ok_or_else(|| top.err("plugins", "missing"))?;
    let plugins = top.object("plugins", plugins)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut specs = Vec::new();
    for (name, entry) in plugins {
        let v = V {
            path,
            plugin: Some(name),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(v.err("(name)", "plugin names use letters, digits, '-' and '_'"));
        }
        let e = v.object("(entry)", entry)?;
        v.keys("", e, PLUGIN_FIELDS)?;
        let component = match e.get("component") {
            Some(c) => base.join(v.string("component", c)?),
            None => return Err(v.err("component", "missing; the path of the plugin's .wasm")),
        };
        let mut policy = PluginPolicy::default();
        if let Some(s) = e.get("servers") {
            policy.allowed_servers = Some(v.strings("servers", s)?);
        }
        if let Some(t) = e.get("tools") {
            policy.allowed_tools = Some(v.strings("tools", t)?);
        }
        if let Some(g) = e.get("grants") {
            let g = v.object("grants", g)?;
            v.keys("grants", g, GRANT_FIELDS)?;
            if let Some(dirs) = g.get("dirs") {
                let dirs = dirs
                    .as_array()
                    .ok_or_else(|| v.err("grants.dirs", "expected an array"))?;
                for (i, d) in dirs.iter().enumerate() {
                    let f = format!("grants.dirs[{i}]");
                    let d = v.object(&f, d)?;
                    v.keys(&f, d, &["host", "guest", "write"])?;
                    let host = base.join(
                        v.string(&format!("{f}.host"), d.get("host").unwrap_or(&Value::Null))?,
                    );
                    if !host.is_dir() {
                        return Err(v.err(
                            &format!("{f}.host"),
                            format!("{} is not a directory", host.display()),
                        ));
                    }
                    let guest = v.string(
                        &format!("{f}.guest"),
                        d.get("guest").unwrap_or(&Value::Null),
                    )?;
                    let writable = match d.get("write") {
                        Some(w) => v.bool(&format!("{f}.write"), w)?,
                        None => false,
                    };
                    policy.preopens.push(Preopen {
                        host,
                        guest,
                        writable,
                    });
                }
            }
            if let Some(env) = g.get("env") {
                let env = v.object("grants.env", env)?;
                for (k, val) in env {
                    policy
                        .env
                        .insert(k.clone(), v.string(&format!("grants.env.{k}"), val)?);
                }
            }
            if let Some(c) = g.get("wall_clock") {
                policy.wall_clock = v.bool("grants.wall_clock", c)?;
            }
            if let Some(r) = g.get("random") {
                policy.random = v.bool("grants.random", r)?;
            }
        }
        if let Some(l) = e.get("limits") {
            let l = v.object("limits", l)?;
            v.keys("limits", l, LIMIT_FIELDS)?;
            for (k, val) in l {
                let f = format!("limits.{k}");
                match k.as_str() {
                    "deadline_secs" => {
                        let secs = val
                            .as_f64()
                            .filter(|s| *s > 0.0 && s.is_finite() && *s < 86_400.0 * 365.0)
                            .ok_or_else(|| v.err(&f, "expected a positive number of seconds"))?;
                        policy.deadline = Duration::from_secs_f64(secs);
                    }
                    "fuel" => policy.fuel = Some(v.count(&f, val)?),
                    other => {
                        let n = usize::try_from(v.count(&f, val)?)
                            .map_err(|_| v.err(&f, "too large"))?;
                        match other {
                            "memory_bytes" => policy.max_memory_bytes = n,
                            "table_elements" => policy.max_table_elements = n,
                            "sessions" => policy.max_sessions = n,
                            "calls" => policy.max_calls = n,
                            "in_flight" => policy.max_in_flight = n,
                            "argument_bytes" => policy.max_argument_bytes = n,
                            "result_bytes" => policy.max_result_bytes = n,
                            _ => policy.max_output_bytes = n,
                        }
                    }
                }
            }
        }
        specs.push(PluginSpec {
            name: name.clone(),
            component,
            input: e
                .get("input")
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new())),
            policy,
        });
    }
    Ok(specs)
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
        assert_eq!(ok[0].component, Path::new("/tmp/a.wasm"));
    }
}
