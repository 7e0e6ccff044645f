//! The registry file: which MCP servers exist and how to start them.
//!
//! The file has the ecosystem's shape (`{"mcpServers": {"NAME": {...}}}`), so one file can be
//! shared with other MCP clients. That is why top-level keys we do not know are *kept* on
//! write, while unknown keys inside a server entry are *rejected*: there, an unknown key is
//! almost always a typo (`"arg"` for `"args"`) that would otherwise be silently ignored.
//!
//! Every error names the file, the server and the field (the validator in [`json`] is shared
//! with the other JSON files the host reads).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::names::{validate_server_name, ToolName, SEPARATOR};

mod audit;
mod edits;
mod entry;
mod expand;
mod filter;
pub mod json;
mod labels;
mod paths;
mod pins;
mod projects;
mod remote;
pub mod tenants;

pub use audit::{AuditSettings, DEFAULT_CHECKPOINT_EVERY};
use entry::parse_server;
pub use expand::ExpandError;
pub use filter::{parse_filter, FilterSpecError, ToolFilter};
use json::{kind, Fields};
pub use json::{JsonFileError, Location};
pub use labels::{Labels, ServerLabels};
pub use paths::{cache_dir, data_dir, default_path, CACHE_ENV, CONFIG_ENV, DATA_ENV};
pub use pins::{PinFile, PinMode, Pinning, ServerPins, ToolPin, DEFAULT_PINS_FILE};

/// Default time allowed to spawn a server and finish the MCP handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time allowed for one tool call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// An error in reading, validating or writing a registry file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read, is not JSON, or holds a wrong value.
    #[error(transparent)]
    File(#[from] JsonFileError),
    /// The file could not be written.
    #[error("{}: cannot write registry file: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// There is no registry file at the path in force.
    #[error(
        "no registry file at {}: create it with `mcp-registry init` (`init --import` takes the \
         servers of Claude Desktop, Claude Code, Cursor or VS Code), or name another with \
         --config FILE or ${CONFIG_ENV} (an MCP client that starts mcp-registry passes few \
         environment variables: give --config in its arguments)",
        path.display()
    )]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// No registry path could be determined (no `--config`, `$MCP_REGISTRY_CONFIG`,
    /// `$XDG_CONFIG_HOME` or `$HOME`).
    #[error("cannot locate the registry file: set --config or ${CONFIG_ENV}")]
    NoPath,
}

/// Who shares one process of a server under `serve --http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// Every client session of one tenant shares it (the default).
    #[default]
    Tenant,
    /// Every tenant shares it: a stateless server.
    Global,
    /// Each client session has its own (state that must not leak between sessions).
    Session,
}

/// Which protocol era to speak to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolMode {
    /// Probe with `server/discover` (2026-07-28), fall back to `initialize` (the spec's
    /// stdio back-compatibility rule).
    #[default]
    Auto,
    /// Only the `initialize` handshake (2025-11-25 and earlier).
    Legacy,
    /// Only `server/discover` (2026-07-28).
    Modern,
}

/// Which HTTP transport a remote server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteTransport {
    /// Streamable HTTP (`"type": "http"`, also written `"streamable-http"`).
    StreamableHttp,
    /// The older HTTP+SSE transport of the 2024-11-05 spec (`"type": "sse"`).
    Sse,
}

impl RemoteTransport {
    /// The `type` this transport is written as in a registry file.
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteTransport::StreamableHttp => "http",
            RemoteTransport::Sse => "sse",
        }
    }
}

/// A server reached over the network instead of started as a process: the shape Claude
/// Code, VS Code and Cursor use (`type`, `url`, `headers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteServer {
    /// Which transport it speaks.
    pub transport: RemoteTransport,
    /// Its endpoint, `http://` or `https://`.
    pub url: String,
    /// Headers sent with every request (`Authorization`, API keys).
    pub headers: BTreeMap<String, String>,
    /// Whether it needs an OAuth sign-in (`"auth": "oauth"`), and how.
    pub oauth: Option<OAuthSettings>,
}

/// A remote server's OAuth sign-in (`"auth": "oauth"`, or `{"type": "oauth", "client_id",
/// "scopes"}`): what `mcp-registry auth SERVER` asks for. The tokens themselves are never in
/// the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthSettings {
    /// A client ID registered with the authorization server beforehand (else the server's
    /// client ID metadata documents or dynamic registration).
    pub client_id: Option<String>,
    /// The scopes to ask for (else those the server advertises).
    pub scopes: Vec<String>,
}

/// What a stdio server gets of our environment without asking, as the official MCP SDKs
/// pass it: enough to find programs and a home directory. The rest (the secrets `${VAR}`
/// puts in our environment for *other* servers among them) it gets only by name, in its
/// `inherit_env`.
pub const INHERITED_ENV: &[&str] = &["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"];

/// How to reach one MCP server (a stdio process, or a remote one), and how to treat it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Program to run (empty for a remote server).
    pub command: String,
    /// Its arguments (may be empty).
    pub args: Vec<String>,
    /// Its environment variables (besides [`INHERITED_ENV`] and `inherit_env`).
    pub env: BTreeMap<String, String>,
    /// Names of our own environment variables it also gets (`"inherit_env"`); nothing else
    /// of our environment reaches it but [`INHERITED_ENV`].
    pub inherit_env: Vec<String>,
    /// Working directory; the registry's own directory if relative.
    pub cwd: Option<PathBuf>,
    /// Free text shown in `list` and in tool descriptions.
    pub description: Option<String>,
    /// Time allowed to spawn and finish the handshake.
    pub connect_timeout: Duration,
    /// Time allowed for one tool call.
    pub call_timeout: Duration,
    /// Which tools are visible.
    pub tools: ToolFilter,
    /// What its tools' results are and what its tools do, for information-flow control.
    pub labels: ServerLabels,
    /// Globs over its tool names whose calls from a plugin run or a code-mode snippet wait for
    /// the user's approval (`"approval"`).
    pub approval: Vec<String>,
    /// Roots answered to `roots/list` (file URIs).
    pub roots: Vec<String>,
    /// Which protocol era to speak.
    pub protocol: ProtocolMode,
    /// Who shares one of its processes under `serve --http`.
    pub sharing: Sharing,
    /// Set for a remote server (`"type": "http"` or `"sse"`): reached at a URL, not started.
    pub remote: Option<RemoteServer>,
}

impl ServerConfig {
    /// A server started as `command args...`, with default settings.
    pub fn new(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            command: command.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
            inherit_env: Vec::new(),
            cwd: None,
            description: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            tools: ToolFilter::All,
            labels: ServerLabels::default(),
            approval: Vec::new(),
            roots: Vec::new(),
            protocol: ProtocolMode::Auto,
            sharing: Sharing::Tenant,
            remote: None,
        }
    }

    /// A remote server at `url`, with default settings and no headers.
    pub fn remote(transport: RemoteTransport, url: impl Into<String>) -> Self {
        let mut config = Self::new(String::new(), Vec::<String>::new());
        config.remote = Some(RemoteServer {
            transport,
            url: url.into(),
            headers: BTreeMap::new(),
            oauth: None,
        });
        config
    }

    /// What runs or answers for this server, for listings: `COMMAND ARGS...`, or
    /// `TYPE URL` for a remote one.
    pub fn target(&self) -> String {
        match &self.remote {
            Some(r) => format!("{} {}", r.transport.as_str(), shown_url(&r.url)),
            None if self.args.is_empty() => self.command.clone(),
            None => format!("{} {}", self.command, self.args.join(" ")),
        }
    }
}

/// A URL as listings show it: without its query, fragment or credentials, where tokens
/// are often put.
fn shown_url(url: &str) -> String {
    let base = url.split(['?', '#']).next().unwrap_or(url);
    match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => base.to_owned(),
    }
}

/// A parsed registry: its servers, plus the whole JSON document so writes keep what we
/// do not model.
#[derive(Debug, Clone)]
pub struct Registry {
    path: Option<PathBuf>,
    servers: BTreeMap<String, ServerConfig>,
    aliases: BTreeMap<String, String>,
    projects: BTreeMap<String, Vec<String>>,
    /// Entries marked `"disabled": true`: kept in the file, left out of [`Registry::servers`].
    disabled: std::collections::BTreeSet<String>,
    /// The `"pins"` policy and the pins file's contents (none: tools are not pinned).
    pinning: Option<Pinning>,
    /// Where runs are recorded (`"audit"`), if anywhere.
    audit: Option<AuditSettings>,
    document: Map<String, Value>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut document = Map::new();
        document.insert("mcpServers".into(), Value::Object(Map::new()));
        Self {
            path: None,
            servers: BTreeMap::new(),
            aliases: BTreeMap::new(),
            projects: BTreeMap::new(),
            disabled: Default::default(),
            pinning: None,
            audit: None,
            document,
        }
    }
}

impl Registry {
    /// Reads and validates the registry at `path`. A missing file is an error; use
    /// [`Registry::load_or_default`] where an absent registry means "no servers".
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Ok(Self::from_json(read_registry(path)?, path)?)
    }

    /// Like [`Registry::load`], but a file that does not exist gives an empty registry
    /// bound to `path`.
    pub fn load_or_default(path: &Path) -> Result<Self, ConfigError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                path: Some(path.to_path_buf()),
                ..Self::default()
            }),
            _ => Self::load(path),
        }
    }

    /// Parses registry JSON text; `path` is used in error messages and for relative `cwd`s.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Ok(Self::from_json(json::parse(text, path)?, path)?)
    }

    fn from_json(value: Value, path: &Path) -> Result<Self, JsonFileError> {
        let top = Fields::top(path);
        let Value::Object(document) = value else {
            return Err(top.err(
                "(top level)",
                format!("expected an object, found {}", kind(&value)),
            ));
        };
        let servers_value = document.get("mcpServers").ok_or_else(|| {
            top.err(
                "mcpServers",
                "missing; expected {\"mcpServers\": {\"NAME\": {\"command\": ...}}}",
            )
        })?;
        let servers_obj = servers_value.as_object().ok_or_else(|| {
            top.err(
                "mcpServers",
                format!("expected an object, found {}", kind(servers_value)),
            )
        })?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let mut servers = BTreeMap::new();
        let mut disabled = std::collections::BTreeSet::new();
        for (name, entry) in servers_obj {
            let v = Fields::entry(path, "server", name);
            validate_server_name(name).map_err(|m| v.err("(name)", m))?;
            let config = parse_server(&v, entry, base_dir)?;
            if entry.get("disabled") == Some(&Value::Bool(true)) {
                disabled.insert(name.clone());
            } else {
                servers.insert(name.clone(), config);
            }
        }
        // Aliases and projects may name a disabled server: they come back with it.
        let known = |s: &str| servers.contains_key(s) || disabled.contains(s);
        let mut aliases = BTreeMap::new();
        if let Some(a) = document.get("aliases") {
            for (alias, target) in top.string_map("aliases", a)? {
                let field = format!("aliases.{alias}");
                check_alias(&alias, &target, &known).map_err(|m| top.err(&field, m))?;
                aliases.insert(alias, target);
            }
        }
        let projects = projects::parse_projects(&top, &document, &known)?;
        if let Some(flow) = document.get("flow") {
            flow_asks(&top, flow)?;
        }
        let pinning = document
            .get("pins")
            .map(|p| Pinning::parse(&top, p, path))
            .transpose()?;
        let audit = document
            .get("audit")
            .map(|a| AuditSettings::parse(&top, a, path))
            .transpose()?;
        Ok(Self {
            path: Some(path.to_path_buf()),
            servers,
            aliases,
            projects,
            disabled,
            pinning,
            audit,
            document,
        })
    }

    /// Whether, when flow control would refuse a call of a client session, the user is asked
    /// instead (`"flow": "ask"`; the default, `"refuse"`, refuses). For `serve` without
    /// `--tenants`; a tenants file says it per tenant.
    pub fn flow_asks(&self) -> bool {
        self.document.get("flow").and_then(Value::as_str) == Some("ask")
    }

    /// The `"pins"` policy with the pins in force, if tools are pinned.
    pub fn pinning(&self) -> Option<&Pinning> {
        self.pinning.as_ref()
    }

    /// Where runs are recorded (the `"audit"` setting), if anywhere.
    pub fn audit(&self) -> Option<&AuditSettings> {
        self.audit.as_ref()
    }

    /// The servers marked `"disabled": true`.
    pub fn disabled(&self) -> &std::collections::BTreeSet<String> {
        &self.disabled
    }

    /// The entry of server `name` as written in the file (enabled, disabled, or invalid).
    pub fn entry(&self, name: &str) -> Option<&Value> {
        self.document.get("mcpServers")?.get(name)
    }

    /// Builds a registry in memory (for embedders and tests).
    pub fn from_servers(servers: impl IntoIterator<Item = (String, ServerConfig)>) -> Self {
        let mut registry = Self::default();
        for (name, config) in servers {
            registry.servers.insert(name, config);
        }
        registry
    }

    /// The file this registry was read from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// All servers, by name.
    pub fn servers(&self) -> &BTreeMap<String, ServerConfig> {
        &self.servers
    }

    /// Aliases: plain tool names standing for `server__tool`.
    pub fn aliases(&self) -> &BTreeMap<String, String> {
        &self.aliases
    }

    /// Adds an alias (in memory; for embedders and tests).
    pub fn insert_alias(&mut self, alias: &str, target: &str) {
        self.aliases.insert(alias.to_owned(), target.to_owned());
    }

    /// The registry as written in its file (with what we do not model).
    pub fn document(&self) -> &Map<String, Value> {
        &self.document
    }

    /// One server's configuration.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.get(name)
    }

    fn servers_object(&mut self) -> &mut Map<String, Value> {
        self.document_object("mcpServers")
    }

    /// The object at `key` of the document, made one if it is not.
    fn document_object(&mut self, key: &str) -> &mut Map<String, Value> {
        let slot = self
            .document
            .entry(key)
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(map) => map,
            _ => unreachable!("just made an object"),
        }
    }

    /// Writes the registry atomically ([`crate::files::write_atomic`]: a reader never sees
    /// half of it, and the file keeps its mode and owner), keeping every key of the original
    /// document that we do not model.
    pub fn save(&self) -> Result<(), ConfigError> {
        let path = self.path.as_deref().ok_or(ConfigError::NoPath)?;
        let write_err = |source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut text = serde_json::to_string_pretty(&Value::Object(self.document.clone()))
            .map_err(|e| write_err(std::io::Error::other(e)))?;
        text.push('\n');
        crate::files::write_atomic(path, text.as_bytes()).map_err(write_err)
    }
}

/// A `"flow"` field (the registry's or a tenant's): whether to ask the user (`"ask"`) or
/// refuse (`"refuse"`) a call flow control stops.
pub(crate) fn flow_asks(v: &Fields<'_>, flow: &Value) -> Result<bool, JsonFileError> {
    match v.string("flow", flow)?.as_str() {
        "ask" => Ok(true),
        "refuse" => Ok(false),
        other => Err(v.err(
            "flow",
            format!("unknown \"{other}\"; expected \"refuse\" or \"ask\""),
        )),
    }
}

/// The registry file's JSON; a missing file says where it was looked for and what to do.
fn read_registry(path: &Path) -> Result<Value, ConfigError> {
    json::read(path, "registry file").map_err(|e| match e {
        JsonFileError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            ConfigError::Missing {
                path: path.to_path_buf(),
            }
        }
        other => other.into(),
    })
}

/// Checks an alias: a plain tool name standing for `SERVER__TOOL` of one of `servers`.
fn check_alias(alias: &str, target: &str, known: &dyn Fn(&str) -> bool) -> Result<(), String> {
    if alias.is_empty() || alias.contains(SEPARATOR) {
        return Err("an alias is a plain tool name: non-empty, without \"__\"".into());
    }
    match ToolName::parse(target) {
        Ok(name) if known(name.server()) => Ok(()),
        _ => Err(format!(
            "target \"{target}\" must be SERVER__TOOL with a server of this registry"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_show_urls_without_secrets() {
        assert_eq!(
            shown_url("https://user:pw@mcp.example.com:8443/mcp?token=s3cret#x"),
            "https://mcp.example.com:8443/mcp"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:9/sse"),
            "http://127.0.0.1:9/sse"
        );
        assert_eq!(shown_url("https://h.example?key=1"), "https://h.example");
    }

    fn parse(text: &str) -> Result<Registry, ConfigError> {
        Registry::parse(text, Path::new("/etc/reg.json"))
    }

    #[test]
    fn accepts_the_ecosystem_shape_and_empty_args() {
        let r = parse(
            r#"{"mcpServers": {"a-1": {"type": "stdio", "command": "x", "args": []}}, "other": 1}"#,
        )
        .unwrap();
        assert_eq!(r.server("a-1").unwrap().command, "x");
        assert!(r.server("a-1").unwrap().args.is_empty());
    }

    #[test]
    fn relative_cwd_is_resolved_against_the_file() {
        let r = parse(r#"{"mcpServers": {"a": {"command": "x", "cwd": "sub"}}}"#).unwrap();
        assert_eq!(
            r.server("a").unwrap().cwd.as_deref(),
            Some(Path::new("/etc/sub"))
        );
    }
}
