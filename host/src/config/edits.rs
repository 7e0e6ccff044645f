//! Changes to a registry, written to its file on [`Registry::save`]: servers and aliases
//! added, replaced, disabled and removed, and the lenient read of a file being repaired.
//! Every change is made to the parsed registry and to the JSON document alike, so that a
//! write keeps what we do not model.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::entry::parse_server;
use super::json::{Fields, JsonFileError};
use super::{check_alias, read_registry, ConfigError, Registry, ServerConfig};
use crate::names::validate_server_name;
use crate::names::SEPARATOR;

impl Registry {
    /// Reads the registry at `path` for a command that repairs it (`remove`, `alias remove`):
    /// a file that is JSON but fails validation is read as far as it can be, so that the
    /// command can take out what is wrong. The error it failed with comes beside it.
    pub fn load_for_repair(path: &Path) -> Result<(Self, Option<ConfigError>), ConfigError> {
        let value = read_registry(path)?;
        match Self::from_json(value.clone(), path) {
            Ok(registry) => Ok((registry, None)),
            Err(e) => {
                let Value::Object(document) = value else {
                    return Err(e.into());
                };
                let registry = Self {
                    path: Some(path.to_path_buf()),
                    document,
                    ..Self::default()
                };
                Ok((registry, Some(e.into())))
            }
        }
    }

    /// Whether the file at this registry's path would load as it is now (after a repair).
    pub fn check(&self) -> Result<(), ConfigError> {
        let path = self.path.clone().unwrap_or_default();
        Self::from_json(Value::Object(self.document.clone()), &path)
            .map(|_| ())
            .map_err(Into::into)
    }

    /// Marks server `name` `"disabled": true`: kept in the file, left out of
    /// [`Registry::servers`]. Whether there was such a server.
    pub fn disable(&mut self, name: &str) -> bool {
        let Some(Value::Object(entry)) = self.servers_object().get_mut(name) else {
            return false;
        };
        entry.insert("disabled".into(), Value::Bool(true));
        self.servers.remove(name);
        self.disabled.insert(name.to_owned());
        true
    }

    /// Adds (or replaces) an alias, written to the file on [`Registry::save`]: `alias` a
    /// plain tool name, `target` a `SERVER__TOOL` of one of this registry's servers.
    pub fn set_alias(&mut self, alias: &str, target: &str) -> Result<(), String> {
        check_alias(alias, target, &|s| {
            self.servers.contains_key(s) || self.disabled.contains(s)
        })?;
        self.aliases.insert(alias.to_owned(), target.to_owned());
        self.document_object("aliases")
            .insert(alias.to_owned(), Value::String(target.to_owned()));
        Ok(())
    }

    /// Removes an alias; returns whether it existed.
    pub fn remove_alias(&mut self, alias: &str) -> bool {
        self.aliases.remove(alias);
        self.document_object("aliases").remove(alias).is_some()
    }

    /// Adds (or replaces) a server entry, written as `command`, `args` and `env`.
    pub fn insert_server(
        &mut self,
        name: &str,
        command: &str,
        args: &[String],
        env: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        validate_server_name(name)?;
        if command.trim().is_empty() {
            return Err("command must not be empty".into());
        }
        let mut entry = Map::new();
        entry.insert("command".into(), Value::String(command.into()));
        entry.insert("args".into(), Value::from(args.to_vec()));
        if !env.is_empty() {
            let env_obj: Map<String, Value> = env
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            entry.insert("env".into(), Value::Object(env_obj));
        }
        let mut config = ServerConfig::new(command, args.iter().cloned());
        config.env = env.clone();
        self.servers_object()
            .insert(name.into(), Value::Object(entry));
        self.servers.insert(name.into(), config);
        Ok(())
    }

    /// Adds (or replaces) a server from its JSON entry, as a registry file would hold it,
    /// after checking it the way a loaded file is checked.
    pub fn insert_entry(&mut self, name: &str, entry: Value) -> Result<(), String> {
        validate_server_name(name)?;
        let path = self.path.clone().unwrap_or_default();
        let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let config = parse_server(&Fields::entry(&path, "server", name), &entry, &base_dir)
            .map_err(|e| match e {
                JsonFileError::Invalid {
                    location, message, ..
                } => format!("field \"{}\": {message}", location.field),
                other => other.to_string(),
            })?;
        self.servers_object().insert(name.into(), entry);
        self.servers.insert(name.into(), config);
        Ok(())
    }

    /// Removes a server (enabled, disabled or invalid) with what would dangle without it:
    /// its place in projects and the aliases of its tools, which it returns; `None` if there
    /// is no such server.
    pub fn remove_server(&mut self, name: &str) -> Option<Vec<String>> {
        self.servers_object().remove(name)?;
        self.forget_in_projects(name);
        self.servers.remove(name);
        self.disabled.remove(name);
        let prefix = format!("{name}{SEPARATOR}");
        let dangling: Vec<String> = match self.document.get("aliases") {
            Some(Value::Object(aliases)) => aliases
                .iter()
                .filter(|(_, target)| target.as_str().is_some_and(|t| t.starts_with(&prefix)))
                .map(|(alias, _)| alias.clone())
                .collect(),
            _ => Vec::new(),
        };
        for alias in &dangling {
            self.remove_alias(alias);
        }
        Some(dangling)
    }
}
