//! Which of a server's tools are visible: a registry entry's `tools` and `serve --filter`.
//!
//! Tool names here are globs (`*` any run, `?` any one character), with the same meaning as
//! in tenant and plugin policies ([`crate::names::glob_match`]): one syntax wherever a rule
//! names tools.

use std::collections::BTreeMap;

use crate::names::glob_match;

/// Which of a server's tools are visible through the aggregator.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolFilter {
    /// Every tool.
    #[default]
    All,
    /// Only these tools.
    Allow(Vec<String>),
    /// Every tool except these.
    Deny(Vec<String>),
}

impl ToolFilter {
    /// Whether the server's tool `tool` (un-namespaced) passes the filter.
    pub fn permits(&self, tool: &str) -> bool {
        match self {
            ToolFilter::All => true,
            ToolFilter::Allow(globs) => globs.iter().any(|g| glob_match(g, tool)),
            ToolFilter::Deny(globs) => !globs.iter().any(|g| glob_match(g, tool)),
        }
    }

    /// The rules of this filter that match none of `tools` (a rule that hides or shows
    /// nothing is most likely a mistake, and a deny rule that denies nothing a trap).
    pub fn unmatched<'a>(&'a self, tools: &[&str]) -> Vec<&'a str> {
        let rules = match self {
            ToolFilter::All => return Vec::new(),
            ToolFilter::Allow(globs) | ToolFilter::Deny(globs) => globs,
        };
        rules
            .iter()
            .filter(|g| !tools.iter().any(|t| glob_match(g, t)))
            .map(String::as_str)
            .collect()
    }
}

/// A filter spec that cannot be parsed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("--filter {spec:?}: {message}")]
#[non_exhaustive]
pub struct FilterSpecError {
    /// The spec.
    pub spec: String,
    /// What is wrong.
    pub message: String,
}

/// Parses the seed's `--filter` syntax: `server[:tool,tool|:-tool,-tool];server...`, each
/// tool a glob. `'memory:get,set;github'` exposes `get` and `set` of `memory` and all of
/// `github`; `'memory:-delete_*'` exposes everything of `memory` but the tools whose names
/// start with `delete_`. Servers not named are hidden.
pub fn parse_filter(spec: &str) -> Result<BTreeMap<String, ToolFilter>, FilterSpecError> {
    let err = |message: String| FilterSpecError {
        spec: spec.to_owned(),
        message,
    };
    let mut out = BTreeMap::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (server, tools) = match part.split_once(':') {
            Some((s, t)) => (s.trim(), Some(t)),
            None => (part, None),
        };
        if server.is_empty() {
            return Err(err(format!("\"{part}\" has no server name")));
        }
        let filter = match tools {
            None => ToolFilter::All,
            Some(t) => {
                let names: Vec<&str> = t
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .collect();
                if names.is_empty() {
                    return Err(err(format!("server \"{server}\" has an empty tool list")));
                }
                let denied = names.iter().filter(|n| n.starts_with('-')).count();
                if denied == names.len() {
                    ToolFilter::Deny(names.iter().map(|n| n[1..].to_owned()).collect())
                } else if denied == 0 {
                    ToolFilter::Allow(names.iter().map(|n| n.to_string()).collect())
                } else {
                    return Err(err(format!(
                        "server \"{server}\" mixes allowed and -denied tools"
                    )));
                }
            }
        };
        out.insert(server.to_owned(), filter);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_permit_what_they_say() {
        assert!(ToolFilter::Allow(vec!["a".into()]).permits("a"));
        assert!(!ToolFilter::Allow(vec!["a".into()]).permits("b"));
        assert!(!ToolFilter::Deny(vec!["a".into()]).permits("a"));
        assert!(ToolFilter::All.permits("z"));
        let deny = ToolFilter::Deny(vec!["delete_*".into()]);
        assert!(!deny.permits("delete_entities") && deny.permits("read_graph"));
        assert_eq!(deny.unmatched(&["read_graph"]), ["delete_*"]);
        assert!(deny.unmatched(&["delete_relations"]).is_empty());
    }

    #[test]
    fn filter_specs() {
        let f = parse_filter("memory:get,set;github").unwrap();
        assert_eq!(
            f["memory"],
            ToolFilter::Allow(vec!["get".into(), "set".into()])
        );
        assert_eq!(f["github"], ToolFilter::All);
        let f = parse_filter("memory:-delete").unwrap();
        assert_eq!(f["memory"], ToolFilter::Deny(vec!["delete".into()]));
        assert!(parse_filter("memory:get,-set").is_err());
        assert!(parse_filter(":x").is_err());
        assert!(parse_filter("m:").is_err());
    }
}
