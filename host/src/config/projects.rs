//! Projects: named subsets of the registry's servers, kept in the registry file as
//! `"projects": {"web": ["memory", "github"]}` (the seed keeps the same mapping in a second
//! file). `-p NAME` on `add`, `remove`, `list`, `list-tools` and `serve` works within one.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::json::{Fields, JsonFileError};
use super::Registry;

/// Reads `projects` from the document: each a list of servers of this registry.
pub(super) fn parse_projects(
    top: &Fields,
    document: &Map<String, Value>,
    known: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, Vec<String>>, JsonFileError> {
    let mut projects = BTreeMap::new();
    let Some(value) = document.get("projects") else {
        return Ok(projects);
    };
    let object = top.object("projects", value)?;
    for (name, members) in object {
        let field = format!("projects.{name}");
        let members = top.strings(&field, members)?;
        if let Some(unknown) = members.iter().find(|m| !known(m)) {
            return Err(top.err(
                &field,
                format!("\"{unknown}\" is not a server of this registry"),
            ));
        }
        projects.insert(name.clone(), members);
    }
    Ok(projects)
}

impl Registry {
    /// Every project: its name and servers.
    pub fn projects(&self) -> &BTreeMap<String, Vec<String>> {
        &self.projects
    }

    /// The servers of project `name`.
    pub fn project(&self, name: &str) -> Result<Vec<String>, String> {
        let Some(members) = self.projects.get(name) else {
            let known: Vec<&str> = self.projects.keys().map(String::as_str).collect();
            return Err(format!(
                "no project named \"{name}\" (projects: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ));
        };
        // A disabled member is left out until it is enabled again.
        Ok(members
            .iter()
            .filter(|m| !self.disabled.contains(*m))
            .cloned()
            .collect())
    }

    /// Puts `server` in project `name` (made if new), written on [`Registry::save`].
    pub fn add_to_project(&mut self, name: &str, server: &str) -> Result<(), String> {
        if !self.servers.contains_key(server) {
            return Err(format!("\"{server}\" is not a server of this registry"));
        }
        let members = self.projects.entry(name.to_owned()).or_default();
        if !members.iter().any(|m| m == server) {
            members.push(server.to_owned());
        }
        self.write_projects();
        Ok(())
    }

    /// Takes `server` out of project `name` (the server stays in the registry); whether it
    /// was there.
    pub fn remove_from_project(&mut self, name: &str, server: &str) -> bool {
        let Some(members) = self.projects.get_mut(name) else {
            // A file being repaired has no parsed projects: the project as written is edited
            // (a member naming a server that is gone is what made it fail).
            return match self
                .document
                .get_mut("projects")
                .and_then(|p| p.get_mut(name))
            {
                Some(Value::Array(list)) => {
                    let before = list.len();
                    list.retain(|m| m.as_str() != Some(server));
                    list.len() != before
                }
                _ => false,
            };
        };
        let before = members.len();
        members.retain(|m| m != server);
        let removed = members.len() != before;
        self.write_projects();
        removed
    }

    /// Takes a removed server out of every project (in the file as written, too: a file
    /// being repaired has no parsed projects).
    pub(super) fn forget_in_projects(&mut self, server: &str) {
        for members in self.projects.values_mut() {
            members.retain(|m| m != server);
        }
        if let Some(Value::Object(projects)) = self.document.get_mut("projects") {
            for members in projects.values_mut() {
                if let Value::Array(list) = members {
                    list.retain(|m| m.as_str() != Some(server));
                }
            }
        }
    }

    fn write_projects(&mut self) {
        let projects: Map<String, Value> = self
            .projects
            .iter()
            .map(|(name, members)| (name.clone(), Value::from(members.clone())))
            .collect();
        self.document
            .insert("projects".into(), Value::Object(projects));
    }
}
