//! Pinned tool definitions: the registry's `"pins"` policy and the pins file it points at.
//!
//! Why a file beside the registry, read with it: an approval (`mcp-registry pins approve`) is
//! a change to the configuration like any other, so `serve` picks it up through its reload
//! (the file is watched with the registry), and an operator can ship a pins file under version
//! control with a deployment. The hashing and the verdicts live in `crate::pins`; this module
//! only reads and writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json::{self, Fields, JsonFileError};

/// What happens to a tool whose definition no longer matches its pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinMode {
    /// Left out of listings and search, and a call to it refused (the default).
    Quarantine,
    /// Logged as a warning, and served as it is now.
    Warn,
}

/// The registry's `"pins"` policy, and the pins in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Pinning {
    /// What drift does.
    pub mode: PinMode,
    /// Whether a tool that appears on a server already pinned is pinned as it is (`true`,
    /// `"new_tools": "allow"`) or quarantined until approved (`false`, the default). Either
    /// way a tool that appears while another vanished (a rename) is quarantined.
    pub allow_new_tools: bool,
    /// The pins file.
    pub path: PathBuf,
    /// Its contents (empty when it does not exist yet).
    pub pinned: PinFile,
}

/// The pins file: per server, the hash of its set of tool names and each tool's pinned
/// definition with its hash.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinFile {
    /// The format's version (1).
    pub version: u32,
    /// Pins per server.
    #[serde(default)]
    pub servers: BTreeMap<String, ServerPins>,
}

/// One server's pins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPins {
    /// `sha256:` of the canonical JSON of its sorted tool names.
    pub names: String,
    /// Per tool name.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolPin>,
}

/// One tool's pin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPin {
    /// `sha256:` of the RFC 8785 canonical form of `definition`.
    pub sha256: String,
    /// What was pinned (name, title, description, inputSchema, outputSchema, annotations),
    /// kept so a drift can be shown as a diff.
    pub definition: Value,
}

/// The pins file's name when the policy does not give one.
pub const DEFAULT_PINS_FILE: &str = "pins.json";

impl Pinning {
    /// Parses the registry's `"pins"` field (`"quarantine"`, `"warn"`, or
    /// `{"mode", "new_tools", "file"}`) and reads the pins file it names (relative to the
    /// registry's directory).
    pub(super) fn parse(
        top: &Fields<'_>,
        value: &Value,
        registry: &Path,
    ) -> Result<Self, JsonFileError> {
        let (mode, new_tools, file) = match value {
            Value::String(_) => (Some(value), None, None),
            Value::Object(obj) => {
                top.only("pins", obj, &["mode", "new_tools", "file"])?;
                (obj.get("mode"), obj.get("new_tools"), obj.get("file"))
            }
            other => {
                return Err(top.err(
                    "pins",
                    format!(
                        "expected \"quarantine\", \"warn\" or an object, found {}",
                        json::kind(other)
                    ),
                ))
            }
        };
        let mode = match mode {
            None => PinMode::Quarantine,
            Some(v) => match top.string("pins.mode", v)?.as_str() {
                "quarantine" => PinMode::Quarantine,
                "warn" => PinMode::Warn,
                other => {
                    return Err(top.err(
                        "pins.mode",
                        format!("unknown \"{other}\"; expected \"quarantine\" or \"warn\""),
                    ))
                }
            },
        };
        let allow_new_tools = match new_tools {
            None => false,
            Some(v) => match top.string("pins.new_tools", v)?.as_str() {
                "allow" => true,
                "quarantine" => false,
                other => {
                    return Err(top.err(
                        "pins.new_tools",
                        format!("unknown \"{other}\"; expected \"allow\" or \"quarantine\""),
                    ))
                }
            },
        };
        let file = match file {
            None => PathBuf::from(DEFAULT_PINS_FILE),
            Some(v) => PathBuf::from(top.string("pins.file", v)?),
        };
        let path = registry.parent().unwrap_or(Path::new(".")).join(file);
        let pinned = PinFile::load(&path)?;
        Ok(Self {
            mode,
            allow_new_tools,
            path,
            pinned,
        })
    }

    /// Writes the pins to their file (atomically: a reader sees the old pins or the new).
    pub fn save(&self) -> std::io::Result<()> {
        write(&self.path, &self.pinned)
    }

    /// Writes `server`'s pins into the file as it is on disk now, leaving its other servers
    /// as they are there: an approval another process wrote a moment ago is kept.
    pub fn save_server(&self, server: &str) -> std::io::Result<()> {
        let mut on_disk = PinFile::load(&self.path).map_err(std::io::Error::other)?;
        match self.pinned.servers.get(server) {
            Some(pins) => on_disk.servers.insert(server.to_owned(), pins.clone()),
            None => on_disk.servers.remove(server),
        };
        write(&self.path, &on_disk)
    }
}

fn write(path: &Path, pins: &PinFile) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(pins).map_err(std::io::Error::other)?;
    text.push('\n');
    crate::files::write_atomic(path, text.as_bytes())
}

impl PinFile {
    /// Reads a pins file; one that does not exist is empty (nothing pinned yet).
    pub fn load(path: &Path) -> Result<Self, JsonFileError> {
        if !path.exists() {
            return Ok(Self {
                version: 1,
                servers: BTreeMap::new(),
            });
        }
        let value = json::read(path, "pins file")?;
        let file: PinFile = serde_json::from_value(value)
            .map_err(|e| Fields::top(path).err("(top level)", format!("not a pins file: {e}")))?;
        if file.version != 1 {
            return Err(Fields::top(path).err(
                "version",
                format!("unsupported pins file version {}; expected 1", file.version),
            ));
        }
        Ok(file)
    }
}
