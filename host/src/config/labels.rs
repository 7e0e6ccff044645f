//! A server entry's `labels`: what its tools' results are and what its tools do, for
//! information-flow control (docs/security.md).
//!
//! ```json
//! "labels": {"confidentiality": "private", "integrity": "untrusted", "egress": false,
//!            "tools": {"send_*": {"egress": true}}}
//! ```
//!
//! Unlabelled is public, trusted and without egress. A tool's labels are its server's joined
//! with those of every `tools` glob its name matches: a glob can only add to them, never
//! take away, so a rule written for the server holds for each of its tools.

use std::collections::BTreeMap;

use serde_json::Value;

use super::json::{Fields, JsonFileError};
use crate::names::glob_match;

/// The labels of one tool: what its results are, and whether it sends data out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Labels {
    /// Its results are private data (confidentiality `private`).
    pub private: bool,
    /// Its results are untrusted content: text anyone could have written (integrity
    /// `untrusted`).
    pub untrusted: bool,
    /// It can send data outside (a post, a mail, a push, a fetch of a URL it is given).
    pub egress: bool,
}

impl Labels {
    /// Both sets together: private if either is, and so on.
    pub fn join(self, other: Labels) -> Labels {
        Labels {
            private: self.private || other.private,
            untrusted: self.untrusted || other.untrusted,
            egress: self.egress || other.egress,
        }
    }
}

/// A server entry's labels: the server's own, and per-tool globs that add to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerLabels {
    /// Every tool of the server has these.
    pub server: Labels,
    /// Tools whose name matches a glob have its labels too.
    pub tools: BTreeMap<String, Labels>,
}

impl ServerLabels {
    /// These and `other`'s together (a tenant's added to the registry's).
    pub fn join(&self, other: &ServerLabels) -> ServerLabels {
        let mut tools = self.tools.clone();
        for (glob, labels) in &other.tools {
            let joined = tools.get(glob).map_or(*labels, |l| l.join(*labels));
            tools.insert(glob.clone(), joined);
        }
        ServerLabels {
            server: self.server.join(other.server),
            tools,
        }
    }

    /// The labels of the server's tool `tool` (its own name).
    pub fn of(&self, tool: &str) -> Labels {
        self.tools
            .iter()
            .filter(|(glob, _)| glob_match(glob, tool))
            .fold(self.server, |labels, (_, more)| labels.join(*more))
    }
}

const LABEL_FIELDS: &[&str] = &["confidentiality", "integrity", "egress"];

/// Checks one server's labels at `field` (a registry entry's `labels`, or a tenant's
/// `labels.SERVER`).
pub(super) fn parse(
    v: &Fields<'_>,
    field: &str,
    value: &Value,
) -> Result<ServerLabels, JsonFileError> {
    let obj = v.object(field, value)?;
    let mut fields: Vec<&str> = LABEL_FIELDS.to_vec();
    fields.push("tools");
    v.only(field, obj, &fields)?;
    let server = labels(v, field, value)?;
    let mut tools = BTreeMap::new();
    if let Some(t) = obj.get("tools") {
        for (glob, value) in v.object(&format!("{field}.tools"), t)? {
            let field = format!("{field}.tools.{glob}");
            let tool = v.object(&field, value)?;
            v.only(&field, tool, LABEL_FIELDS)?;
            tools.insert(glob.clone(), labels(v, &field, value)?);
        }
    }
    Ok(ServerLabels { server, tools })
}

/// The three labels of one object (`field` names it in errors).
fn labels(v: &Fields<'_>, field: &str, value: &Value) -> Result<Labels, JsonFileError> {
    let mut labels = Labels::default();
    let Some(obj) = value.as_object() else {
        return Ok(labels);
    };
    if let Some(c) = obj.get("confidentiality") {
        let f = format!("{field}.confidentiality");
        labels.private = match v.string(&f, c)?.as_str() {
            "private" => true,
            "public" => false,
            other => {
                let message = format!("unknown \"{other}\"; expected \"public\" or \"private\"");
                return Err(v.err(f, message));
            }
        };
    }
    if let Some(i) = obj.get("integrity") {
        let f = format!("{field}.integrity");
        labels.untrusted = match v.string(&f, i)?.as_str() {
            "untrusted" => true,
            "trusted" => false,
            other => {
                let message = format!("unknown \"{other}\"; expected \"trusted\" or \"untrusted\"");
                return Err(v.err(f, message));
            }
        };
    }
    if let Some(e) = obj.get("egress") {
        labels.egress = v.bool(&format!("{field}.egress"), e)?;
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tools_labels_add_to_its_servers() {
        let labels = ServerLabels {
            server: Labels {
                private: true,
                ..Labels::default()
            },
            tools: BTreeMap::from([(
                "send_*".to_owned(),
                Labels {
                    egress: true,
                    ..Labels::default()
                },
            )]),
        };
        assert_eq!(
            labels.of("send_mail"),
            Labels {
                private: true,
                untrusted: false,
                egress: true
            }
        );
        assert!(!labels.of("read_mail").egress);
        assert!(labels.of("read_mail").private);
    }
}
