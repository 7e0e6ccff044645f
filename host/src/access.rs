//! One access decision: may a principal see or call a tool?
//!
//! Four rules decide it, written by different people in different files: a registry entry's
//! `tools` (the operator, for everyone), `serve --filter` (the operator, for one serve), a
//! tenant's `servers` and `tools` (the tenants file) and a plugin's `servers` and `tools` (its
//! policy). A principal gets what every rule over it allows.
//!
//! The registry's rule is the aggregator's: a tool its entry hides exists for nobody, so it
//! is dropped where tools are listed and refused where they are called, beneath every
//! principal. The others are [`Access`], the rules over one principal, which every front end
//! asks: serve's listings and calls, code mode's `search` and `execute`, plugin runs (a
//! plugin's policy is its own grants within its caller's [`Access`]), the CLI. So a tool is
//! never listed where it cannot be called, nor callable where it is not listed, and the answer
//! is the same through every door. Tools are named by globs (`*`, `?`) everywhere, matched by
//! [`glob_match`], and filters are [`ToolFilter`]s, the registry's type.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::config::ToolFilter;
use crate::names::{glob_match, ToolName};

/// The rules over one principal; it may see and call what all of them allow. The default
/// has no rule: everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    /// Only these servers (a tenant's or a plugin's grant).
    Servers {
        whose: Arc<str>,
        servers: Arc<[String]>,
    },
    /// Only tools whose `server__tool` matches one of these globs.
    Tools {
        whose: Arc<str>,
        globs: Arc<[String]>,
    },
    /// Per server, which of its tools (by its own name) show; a server not named is not
    /// bounded by this rule (the registry names every server; `serve --filter` exposes only
    /// the servers it names).
    Filters {
        whose: Arc<str>,
        filters: Arc<BTreeMap<String, ToolFilter>>,
    },
}

/// Why a rule refused a server or a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denied {
    /// The server is not among those granted.
    Server {
        /// The server asked for.
        server: String,
        /// Whose grant it is ("tenant \"acme\"", "this plugin").
        whose: String,
        /// What the grant has.
        granted: Vec<String>,
    },
    /// The tool matches none of the granted globs.
    Tool {
        /// The tool asked for.
        name: ToolName,
        /// Whose globs they are.
        whose: String,
        /// The globs.
        globs: Vec<String>,
    },
    /// A tool filter hides the tool.
    Filtered {
        /// The tool asked for.
        name: ToolName,
        /// Whose filter it is ("the registry", "serve --filter").
        whose: String,
    },
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::Server {
                server,
                whose,
                granted,
            } => {
                let granted = if granted.is_empty() {
                    "no server is granted".to_owned()
                } else {
                    format!("granted: {}", granted.join(", "))
                };
                write!(
                    f,
                    "server \"{server}\" is not granted to {whose} ({granted})"
                )
            }
            Denied::Tool { name, whose, globs } => write!(
                f,
                "tool \"{name}\" matches none of the tool patterns of {whose} ({})",
                globs.join(", ")
            ),
            Denied::Filtered { name, whose } => {
                write!(f, "tool \"{name}\" is hidden by {whose}'s tool filter")
            }
        }
    }
}

impl std::error::Error for Denied {}

impl Access {
    /// No rule: every server and tool.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Bounded to `servers` too, as `whose` grant.
    pub fn servers(mut self, whose: &str, servers: &[String]) -> Self {
        self.rules.push(Rule::Servers {
            whose: whose.into(),
            servers: servers.into(),
        });
        self
    }

    /// Bounded to the tools matching `globs` too (`None`: no such rule), as `whose` grant.
    pub fn tools(mut self, whose: &str, globs: Option<&[String]>) -> Self {
        if let Some(globs) = globs {
            self.rules.push(Rule::Tools {
                whose: whose.into(),
                globs: globs.into(),
            });
        }
        self
    }

    /// Bounded by per-server tool filters too (none: no such rule), `whose` they are.
    pub fn filters(mut self, whose: &str, filters: Arc<BTreeMap<String, ToolFilter>>) -> Self {
        if !filters.is_empty() {
            self.rules.push(Rule::Filters {
                whose: whose.into(),
                filters,
            });
        }
        self
    }

    /// Bounded by `other`'s rules as well as its own.
    pub fn within(mut self, other: &Access) -> Self {
        self.rules.extend(other.rules.iter().cloned());
        self
    }

    /// Whether it has no rule at all.
    pub fn is_everything(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether the principal may use `server` at all (some of its tools, its prompts and
    /// resources); `Err` is the first rule that refuses it.
    pub fn check_server(&self, server: &str) -> Result<(), Denied> {
        for rule in &self.rules {
            if let Rule::Servers { whose, servers } = rule {
                if !servers.iter().any(|s| s == server) {
                    return Err(Denied::Server {
                        server: server.to_owned(),
                        whose: whose.to_string(),
                        granted: servers.to_vec(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the principal may see and call `name`; `Err` is the first rule that refuses
    /// it (servers first, so a server not granted is named as such).
    pub fn check(&self, name: &ToolName) -> Result<(), Denied> {
        self.check_server(name.server())?;
        let mut full = None;
        for rule in &self.rules {
            match rule {
                Rule::Servers { .. } => {}
                Rule::Tools { whose, globs } => {
                    let full = full.get_or_insert_with(|| name.to_string());
                    if !globs.iter().any(|g| glob_match(g, full)) {
                        return Err(Denied::Tool {
                            name: name.clone(),
                            whose: whose.to_string(),
                            globs: globs.to_vec(),
                        });
                    }
                }
                Rule::Filters { whose, filters } => {
                    if !filters
                        .get(name.server())
                        .is_none_or(|f| f.permits(name.tool()))
                    {
                        return Err(Denied::Filtered {
                            name: name.clone(),
                            whose: whose.to_string(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the principal may see and call `name`.
    pub fn allows(&self, name: &ToolName) -> bool {
        self.check(name).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ToolName {
        ToolName::parse(s).unwrap()
    }

    #[test]
    fn every_rule_must_allow_and_the_first_refusal_is_named() {
        let filters = Arc::new(BTreeMap::from([(
            "fs".to_owned(),
            ToolFilter::Deny(vec!["write_*".into()]),
        )]));
        let tenant = Access::everything()
            .servers("tenant \"acme\"", &["fs".into(), "time".into()])
            .tools(
                "tenant \"acme\"",
                Some(&["fs__*".into(), "time__now".into()]),
            )
            .filters("serve --filter", filters);
        let plugin = Access::everything()
            .servers("this plugin", &["fs".into()])
            .within(&tenant);
        assert!(tenant.allows(&name("fs__read_file")));
        assert!(tenant.allows(&name("time__now")));
        assert!(!tenant.allows(&name("time__zone")));
        assert_eq!(
            tenant.check(&name("fs__write_file")),
            Err(Denied::Filtered {
                name: name("fs__write_file"),
                whose: "serve --filter".into()
            })
        );
        let refused = plugin.check(&name("time__now")).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "server \"time\" is not granted to this plugin (granted: fs)"
        );
        assert!(plugin.allows(&name("fs__read_file")));
        assert!(Access::everything().allows(&name("any__thing")));
        assert!(Access::everything()
            .tools("x", None)
            .filters("y", Arc::default())
            .is_everything());
    }
}
