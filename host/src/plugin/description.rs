//! What a plugin says about itself (its `describe` export), parsed once, here: the name,
//! description and input schema `serve` lists it under, and what it asks to reach
//! (`requires`), which a front end may grant with `--allow-requested` and compares with
//! what a policy grants.

use serde_json::{Map, Value};

use super::{PluginError, PluginPolicy};
use crate::config::Registry;

/// What a plugin asks to reach: `"requires": {"servers": [...], "tools": [...globs]}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requires {
    /// Servers it needs.
    pub servers: Vec<String>,
    /// Globs over `server__tool` it calls (empty: any tool of its servers).
    pub tools: Vec<String>,
}

impl Requires {
    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.tools.is_empty()
    }

    /// `servers alpha, beta; tools alpha__*`, or `nothing`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.servers.is_empty() {
            parts.push(format!("servers {}", self.servers.join(", ")));
        }
        if !self.tools.is_empty() {
            parts.push(format!("tools {}", self.tools.join(", ")));
        }
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join("; ")
        }
    }

    /// Grants what is asked, as far as `registry` has it (never more): the requested
    /// servers it has, and the requested tool globs. Returns the requested servers the
    /// registry lacks.
    pub fn grant(&self, registry: &Registry, policy: &mut PluginPolicy) -> Vec<String> {
        let (have, lack): (Vec<String>, Vec<String>) = self
            .servers
            .iter()
            .cloned()
            .partition(|s| registry.server(s).is_some());
        policy.allowed_servers = have;
        policy.allowed_tools = (!self.tools.is_empty()).then(|| self.tools.clone());
        lack
    }

    /// What `policy` leaves out of the request, in words (empty: all of it is granted).
    pub fn shortfall(&self, policy: &PluginPolicy) -> Vec<String> {
        let mut missing: Vec<String> = self
            .servers
            .iter()
            .filter(|s| !policy.allowed_servers.contains(s))
            .map(|s| format!("server {s}"))
            .collect();
        if let Some(globs) = &policy.allowed_tools {
            missing.extend(
                self.tools
                    .iter()
                    .filter(|t| !globs.contains(t))
                    .map(|t| format!("tools {t}")),
            );
        }
        missing
    }
}

/// One line for people: what a plugin requests, what its policy grants, and what it asked
/// for and did not get.
pub fn grant_report(plugin: &str, requires: &Requires, policy: &PluginPolicy) -> String {
    let mut line = format!(
        "plugin {plugin}: requests {}; granted {}",
        requires.summary(),
        grants_summary(policy)
    );
    let short = requires.shortfall(policy);
    if !short.is_empty() {
        line.push_str(&format!("; warning: not granted: {}", short.join(", ")));
    }
    line
}

/// The grants of a policy, in words: `servers alpha, beta; all their tools`, or `no server`.
pub fn grants_summary(policy: &PluginPolicy) -> String {
    if policy.allowed_servers.is_empty() {
        return "no server".into();
    }
    let tools = policy
        .allowed_tools
        .as_ref()
        .map_or("all their tools".to_owned(), |t| {
            format!("tools {}", t.join(", "))
        });
    format!("servers {}; {tools}", policy.allowed_servers.join(", "))
}

/// What a plugin says about itself (its `describe` export): parsed once, here.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginDescription {
    /// The name it gives itself, if any.
    pub name: Option<String>,
    /// What it does.
    pub description: String,
    /// The JSON schema of its input (`{"type": "object"}` if it gives none).
    pub input_schema: Map<String, Value>,
    /// What it asks to reach.
    pub requires: Requires,
    /// Everything it returned, as JSON.
    pub raw: Value,
}

impl PluginDescription {
    /// Parses `describe`'s JSON: `{"name"?, "description"?, "inputSchema"?}`.
    pub fn parse(plugin: &str, text: &str) -> Result<Self, PluginError> {
        let bad = |message: String| PluginError::Describe {
            name: plugin.to_owned(),
            message,
        };
        let raw: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let Value::Object(obj) = &raw else {
            return Err(bad("not a JSON object".into()));
        };
        let input_schema = match obj.get("inputSchema") {
            None => {
                let mut schema = Map::new();
                schema.insert("type".into(), Value::String("object".into()));
                schema
            }
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(bad("inputSchema is not an object".into())),
        };
        let requires = match obj.get("requires") {
            None => Requires::default(),
            Some(r) => requires(r).map_err(bad)?,
        };
        Ok(Self {
            requires,
            name: obj.get("name").and_then(Value::as_str).map(str::to_owned),
            description: obj
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            input_schema,
            raw,
        })
    }
}

/// Parses `"requires": {"servers": [...], "tools": [...]}`.
fn requires(value: &Value) -> Result<Requires, String> {
    let Value::Object(obj) = value else {
        return Err("requires must be an object {\"servers\": [...], \"tools\": [...]}".into());
    };
    let list = |key: &str| -> Result<Vec<String>, String> {
        match obj.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("requires.{key} must hold strings"))
                })
                .collect(),
            Some(_) => Err(format!("requires.{key} must be an array of strings")),
        }
    };
    if let Some(k) = obj.keys().find(|k| *k != "servers" && *k != "tools") {
        return Err(format!(
            "requires.{k}: unknown; expected \"servers\" or \"tools\""
        ));
    }
    Ok(Requires {
        servers: list("servers")?,
        tools: list("tools")?,
    })
}
