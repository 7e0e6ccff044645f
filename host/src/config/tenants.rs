//! The tenants file of `serve --http --tenants FILE`: who may call, with which credentials,
//! reaching which servers, tools and plugins, within which limits.
//!
//! ```json
//! {"tenants": {
//!    "acme": {
//!      "keys": ["sha256:<hex digest of the API key>"],
//!      "servers": ["memory", "time"],
//!      "tools": ["memory__*", "time__get_current_time"],
//!      "plugins": ["fanout"],
//!      "code_mode": {"max_calls": 50, "max_ms": 10000, "max_memory_mib": 32},
//!      "limits": {"processes": 8, "in_flight": 32, "calls_per_minute": 600, "sessions": 16,
//!                 "connections": 64}
//!    }},
//!  "jwt": {"issuer": "https://idp.example", "audience": "https://mcp.example/mcp",
//!          "jwks_file": "jwks.json", "tenant_claim": "tenant"}}
//! ```
//!
//! API keys are kept as SHA-256 digests only, so the file holds no secret; a request's key is
//! hashed and compared in constant time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::json::{self, Fields, JsonFileError};
use super::Registry;

/// One tenant: an identity with its grants and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantConfig {
    /// SHA-256 digests of its API keys.
    pub keys: Vec<[u8; 32]>,
    /// Servers it may use.
    pub servers: Vec<String>,
    /// Globs over `server__tool` it may call (`None`: every tool of its servers).
    pub tools: Option<Vec<String>>,
    /// Plugins (of the `--plugins` policy file) it may run.
    pub plugins: Vec<String>,
    /// Whether it may use code mode's `search` and `execute` (with `serve --code-mode`).
    pub code_mode: bool,
    /// What one of its snippets may use (`"code_mode": {...}`), within the host's bounds.
    pub code_budget: CodeBudget,
    /// Whether its calls to OAuth servers use its own sign-in (`"oauth": "own"`, made with
    /// `mcp-registry auth SERVER --tenant NAME`) rather than the operator's (`"operator"`, the
    /// default).
    pub own_sign_in: bool,
    /// Whether a call flow control stops is put to its user (`"flow": "ask"`) rather than
    /// refused (the default).
    pub flow_asks: bool,
    /// Labels it adds to servers' (by server name): a tenant may only tighten the registry's.
    pub labels: BTreeMap<String, super::ServerLabels>,
    /// Its bounds.
    pub limits: TenantLimits,
}

/// What one code-mode snippet of a tenant may use (`None`: the host's bound). The tenant's
/// policy, not the snippet's arguments: `execute`'s `timeout_ms` may only shorten `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CodeBudget {
    /// Tool calls per snippet.
    pub max_calls: Option<usize>,
    /// Milliseconds per snippet.
    pub max_ms: Option<u64>,
    /// Bytes of engine memory per snippet.
    pub max_memory: Option<usize>,
}

/// A tenant's bounds (`None`: only the host's own bounds apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TenantLimits {
    /// Server processes alive at once.
    pub processes: Option<usize>,
    /// Requests in flight at once.
    pub in_flight: Option<usize>,
    /// Tool calls per minute (a token bucket).
    pub calls_per_minute: Option<u32>,
    /// Client sessions (`Mcp-Session-Id`) open at once, and as many `subscriptions/listen`
    /// streams (`None`: [`DEFAULT_SESSIONS`]).
    pub sessions: Option<usize>,
    /// HTTP requests open at once, each holding a connection while its body arrives, it
    /// runs, or its stream is open (`None`: [`default_connections`] of its sessions).
    pub connections: Option<usize>,
}

/// The largest `processes`, `in_flight` or `sessions` bound a tenant may be given.
const MAX_BOUND: usize = 1 << 20;

/// Client sessions a tenant may hold open at once unless its limits say otherwise.
pub const DEFAULT_SESSIONS: usize = 64;

/// Requests a tenant with a bound of `sessions` may hold open at once unless its limits say
/// otherwise: each session's stream and `subscriptions/listen` stream, and 128 more.
pub fn default_connections(sessions: usize) -> usize {
    (2 * sessions + 128).min(MAX_BOUND)
}

/// How JWT bearer tokens are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The `iss` a token must carry.
    pub issuer: String,
    /// The `aud` a token must carry.
    pub audience: String,
    /// The JWK set of the issuer's public keys.
    pub jwks_file: PathBuf,
    /// The claim that names the tenant.
    pub tenant_claim: String,
}

/// A parsed tenants file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantsConfig {
    /// The file.
    pub path: PathBuf,
    /// Tenants by name.
    pub tenants: BTreeMap<String, TenantConfig>,
    /// JWT checking, if tokens are accepted.
    pub jwt: Option<JwtConfig>,
}

const TENANT_FIELDS: &[&str] = &[
    "keys",
    "servers",
    "tools",
    "plugins",
    "code_mode",
    "oauth",
    "flow",
    "labels",
    "limits",
];
const LIMIT_FIELDS: &[&str] = &[
    "processes",
    "in_flight",
    "calls_per_minute",
    "sessions",
    "connections",
];
const JWT_FIELDS: &[&str] = &["issuer", "audience", "jwks_file", "tenant_claim"];

impl TenantsConfig {
    /// Reads and validates a tenants file.
    pub fn load(path: &Path) -> Result<Self, JsonFileError> {
        Self::from_json(&json::read(path, "tenants file")?, path)
    }

    /// Parses tenants-file text read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, JsonFileError> {
        Self::from_json(&json::parse(text, path)?, path)
    }

    fn from_json(doc: &Value, path: &Path) -> Result<Self, JsonFileError> {
        let top = Fields::top(path);
        let obj = top.object("(top level)", doc)?;
        top.only("", obj, &["tenants", "jwt"])?;
        let tenants_obj = obj.get("tenants").ok_or_else(|| {
            top.err(
                "tenants",
                "missing; expected {\"tenants\": {\"NAME\": {...}}}",
            )
        })?;
        let mut tenants = BTreeMap::new();
        let mut owners: BTreeMap<[u8; 32], String> = BTreeMap::new();
        for (name, entry) in top.object("tenants", tenants_obj)? {
            let v = Fields::entry(path, "tenant", name);
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(v.err("(name)", "tenant names use letters, digits, '-' and '_'"));
            }
            let tenant = tenant(&v, entry)?;
            for (i, key) in tenant.keys.iter().enumerate() {
                if let Some(other) = owners.insert(*key, name.clone()) {
                    return Err(v.err(
                        format!("keys[{i}]"),
                        format!("the same key as tenant \"{other}\""),
                    ));
                }
            }
            tenants.insert(name.clone(), tenant);
        }
        let jwt = match obj.get("jwt") {
            None => None,
            Some(j) => Some(jwt(&top, j, path)?),
        };
        Ok(Self {
            path: path.to_path_buf(),
            tenants,
            jwt,
        })
    }

    /// Checks the servers and plugins each tenant names against what `serve` has: an error
    /// names the file, the tenant and the field.
    pub fn check(&self, registry: &Registry, plugins: &[String]) -> Result<(), JsonFileError> {
        for (name, tenant) in &self.tenants {
            let v = Fields::entry(&self.path, "tenant", name);
            for (i, s) in tenant.servers.iter().enumerate() {
                if registry.server(s).is_none() {
                    return Err(v.err(
                        format!("servers[{i}]"),
                        format!("no server \"{s}\" in the registry"),
                    ));
                }
            }
            if let Some(s) = tenant.labels.keys().find(|s| !tenant.servers.contains(s)) {
                return Err(v.err(
                    format!("labels.{s}"),
                    format!("\"{s}\" is not among the tenant's servers"),
                ));
            }
            for (i, p) in tenant.plugins.iter().enumerate() {
                if !plugins.contains(p) {
                    return Err(v.err(
                        format!("plugins[{i}]"),
                        format!("no plugin \"{p}\" in the --plugins policy file"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn tenant(v: &Fields<'_>, entry: &Value) -> Result<TenantConfig, JsonFileError> {
    let obj = v.object("(entry)", entry)?;
    v.only("", obj, TENANT_FIELDS)?;
    let mut keys = Vec::new();
    if let Some(k) = obj.get("keys") {
        for (i, key) in v.strings("keys", k)?.iter().enumerate() {
            keys.push(key_digest(key).map_err(|m| v.err(format!("keys[{i}]"), m))?);
        }
    }
    let list = |key: &str| -> Result<Vec<String>, JsonFileError> {
        obj.get(key).map_or(Ok(Vec::new()), |x| v.strings(key, x))
    };
    // A bound past any real use is a mistake (and past a semaphore's permits, a panic).
    let bound = |field: &str, n: &Value| -> Result<usize, JsonFileError> {
        let n = v.size(field, n)?;
        if n > MAX_BOUND {
            return Err(v.err(field, format!("too large (at most {MAX_BOUND})")));
        }
        Ok(n)
    };
    let mut limits = TenantLimits::default();
    if let Some(l) = obj.get("limits") {
        let l = v.object("limits", l)?;
        v.only("limits", l, LIMIT_FIELDS)?;
        if let Some(n) = l.get("processes") {
            limits.processes = Some(bound("limits.processes", n)?);
        }
        if let Some(n) = l.get("in_flight") {
            limits.in_flight = Some(bound("limits.in_flight", n)?);
        }
        if let Some(n) = l.get("calls_per_minute") {
            let n = u32::try_from(v.count("limits.calls_per_minute", n)?)
                .map_err(|_| v.err("limits.calls_per_minute", "too large"))?;
            limits.calls_per_minute = Some(n);
        }
        if let Some(n) = l.get("sessions") {
            limits.sessions = Some(bound("limits.sessions", n)?);
        }
        if let Some(n) = l.get("connections") {
            limits.connections = Some(bound("limits.connections", n)?);
        }
    }
    let mut code_budget = CodeBudget::default();
    let code_mode = match obj.get("code_mode") {
        None => false,
        Some(Value::Object(budget)) => {
            for (key, n) in budget {
                let field = format!("code_mode.{key}");
                let n = v.size(&field, n)?;
                match key.as_str() {
                    "max_calls" => code_budget.max_calls = Some(n),
                    "max_ms" => code_budget.max_ms = Some(n as u64),
                    "max_memory_mib" => {
                        let bytes = n.checked_mul(1 << 20);
                        code_budget.max_memory = Some(bytes.ok_or_else(|| v.err(&field, "too large"))?);
                    }
                    _ => {
                        return Err(v.err(
                            &field,
                            "unknown: a code-mode budget has max_calls, max_ms and max_memory_mib",
                        ))
                    }
                }
            }
            true
        }
        Some(c) => c.as_bool().ok_or_else(|| {
            v.err(
                "code_mode",
                format!(
                    "expected true, false or a budget ({{\"max_calls\", \"max_ms\", \"max_memory_mib\"}}), found {}",
                    json::kind(c)
                ),
            )
        })?,
    };
    Ok(TenantConfig {
        keys,
        servers: list("servers")?,
        tools: obj
            .get("tools")
            .map(|t| v.strings("tools", t))
            .transpose()?,
        plugins: list("plugins")?,
        code_mode,
        code_budget,
        own_sign_in: match obj.get("oauth") {
            None => false,
            Some(o) => match v.string("oauth", o)?.as_str() {
                "own" => true,
                "operator" => false,
                other => {
                    return Err(v.err(
                        "oauth",
                        format!("unknown \"{other}\"; expected \"operator\" (the operator's sign-in, the default) or \"own\" (the tenant's: `mcp-registry auth SERVER --tenant NAME`)"),
                    ))
                }
            },
        },
        flow_asks: match obj.get("flow") {
            None => false,
            Some(flow) => super::flow_asks(v, flow)?,
        },
        labels: match obj.get("labels") {
            None => BTreeMap::new(),
            Some(l) => {
                let mut labels = BTreeMap::new();
                for (server, value) in v.object("labels", l)? {
                    let field = format!("labels.{server}");
                    labels.insert(server.clone(), super::labels::parse(v, &field, value)?);
                }
                labels
            }
        },
        limits,
    })
}

/// `sha256:<64 hex digits>` as bytes.
fn key_digest(text: &str) -> Result<[u8; 32], String> {
    let hex = text.strip_prefix("sha256:").ok_or(
        "expected \"sha256:<hex digest of the key>\" (the key itself never goes in the file)",
    )?;
    if hex.len() != 64 {
        return Err(format!(
            "a SHA-256 digest is 64 hex digits, this has {}",
            hex.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| "not hex digits".to_owned())?;
    }
    Ok(out)
}

fn jwt(top: &Fields<'_>, j: &Value, path: &Path) -> Result<JwtConfig, JsonFileError> {
    let obj = top.object("jwt", j)?;
    top.only("jwt", obj, JWT_FIELDS)?;
    let field = |key: &str| -> Result<String, JsonFileError> {
        let f = format!("jwt.{key}");
        let value = obj.get(key).ok_or_else(|| top.err(&f, "missing"))?;
        top.string(&f, value)
    };
    let base = path.parent().unwrap_or(Path::new("."));
    Ok(JwtConfig {
        issuer: field("issuer")?,
        audience: field("audience")?,
        jwks_file: base.join(field("jwks_file")?),
        tenant_claim: obj
            .get("tenant_claim")
            .map(|c| top.string("jwt.tenant_claim", c))
            .transpose()?
            .unwrap_or_else(|| "tenant".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TenantsConfig, String> {
        TenantsConfig::parse(text, Path::new("/etc/tenants.json")).map_err(|e| e.to_string())
    }

    const KEY: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn a_whole_file() {
        let t = parse(&format!(
            r#"{{"tenants": {{"acme": {{"keys": ["{KEY}"], "servers": ["m"], "tools": ["m__*"],
                "plugins": ["p"], "limits": {{"processes": 8, "in_flight": 32, "calls_per_minute": 600}}}}}},
                "jwt": {{"issuer": "https://idp", "audience": "https://mcp", "jwks_file": "jwks.json"}}}}"#
        ))
        .unwrap();
        let acme = &t.tenants["acme"];
        assert_eq!(acme.keys[0][0], 0x2c);
        assert_eq!(acme.limits.processes, Some(8));
        assert_eq!(acme.tools.as_deref(), Some(&["m__*".to_string()][..]));
        let jwt = t.jwt.unwrap();
        assert_eq!(jwt.jwks_file, Path::new("/etc/jwks.json"));
        assert_eq!(jwt.tenant_claim, "tenant");
    }

    #[test]
    fn errors_name_the_file_the_tenant_and_the_field() {
        let e = parse(r#"{"tenants": {"acme": {"keys": ["plain-secret"]}}}"#).unwrap_err();
        assert!(
            e.contains("tenants.json") && e.contains("tenant \"acme\"") && e.contains("keys[0]"),
            "{e}"
        );
        let e = parse(r#"{"tenants": {"acme": {"limits": {"processes": 0}}}}"#).unwrap_err();
        assert!(e.contains("limits.processes"), "{e}");
        let e = parse(r#"{"tenants": {"acme": {"server": []}}}"#).unwrap_err();
        assert!(
            e.contains("\"server\"") && e.contains("unknown field"),
            "{e}"
        );
        let twice =
            format!(r#"{{"tenants": {{"a": {{"keys": ["{KEY}"]}}, "b": {{"keys": ["{KEY}"]}}}}}}"#);
        assert!(parse(&twice)
            .unwrap_err()
            .contains("the same key as tenant \"a\""));
        let e = parse(r#"{"tenants": {}, "jwt": {"issuer": "x"}}"#).unwrap_err();
        assert!(e.contains("jwt.audience") && e.contains("missing"), "{e}");
        let e = parse(r#"{"tenants": {"acme": {"oauth": "mine"}}}"#).unwrap_err();
        assert!(e.contains("\"oauth\"") && e.contains("\"own\""), "{e}");
        let own = parse(r#"{"tenants": {"acme": {"oauth": "own"}, "beta": {}}}"#).unwrap();
        assert!(own.tenants["acme"].own_sign_in && !own.tenants["beta"].own_sign_in);
    }
}
