//! Names in the aggregated namespace: `server__tool` (and `server__prompt`).
//!
//! One type, [`ToolName`], owns the separator rule. A name is parsed once, where it enters
//! (a guest's call, a client's request, an alias in the registry file), and passed down
//! parsed; every layer below reads its two halves instead of splitting text again.

use std::borrow::Cow;
use std::fmt;

/// Separator between server and tool in a namespaced name (`server__tool`).
pub const SEPARATOR: &str = "__";

/// A name that is not `SERVER__NAME`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("name \"{0}\" is not namespaced; expected SERVER__NAME")]
#[non_exhaustive]
pub struct NameError(pub String);

/// A namespaced tool (or prompt) name: the registry server and the server's own name for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ToolName {
    server: String,
    tool: String,
}

impl ToolName {
    /// The name of `server`'s `tool`.
    pub fn new(server: impl Into<String>, tool: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            tool: tool.into(),
        }
    }

    /// Parses `server__tool`, splitting on the first separator (a tool's own name may
    /// contain `__`; a server's may not). Both halves must be non-empty.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        match name.split_once(SEPARATOR) {
            Some((server, tool)) if !server.is_empty() && !tool.is_empty() => {
                Ok(Self::new(server, tool))
            }
            _ => Err(NameError(name.to_owned())),
        }
    }

    /// The registry server.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The server's own name for the tool.
    pub fn tool(&self) -> &str {
        &self.tool
    }
}

impl fmt::Display for ToolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{SEPARATOR}{}", self.server, self.tool)
    }
}

impl std::str::FromStr for ToolName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Something that names a tool: a [`ToolName`] already parsed, or text to parse. Lets the
/// public API take either (`session.call_tool("a__echo", ..)`) while the layers inside pass
/// the parsed name down.
pub trait AsToolName {
    /// The parsed name (borrowed when it already is one).
    fn as_tool_name(&self) -> Result<Cow<'_, ToolName>, NameError>;
}

impl AsToolName for ToolName {
    fn as_tool_name(&self) -> Result<Cow<'_, ToolName>, NameError> {
        Ok(Cow::Borrowed(self))
    }
}

impl AsToolName for &ToolName {
    fn as_tool_name(&self) -> Result<Cow<'_, ToolName>, NameError> {
        Ok(Cow::Borrowed(*self))
    }
}

impl AsToolName for str {
    fn as_tool_name(&self) -> Result<Cow<'_, ToolName>, NameError> {
        ToolName::parse(self).map(Cow::Owned)
    }
}

impl AsToolName for &str {
    fn as_tool_name(&self) -> Result<Cow<'_, ToolName>, NameError> {
        ToolName::parse(self).map(Cow::Owned)
    }
}

impl AsToolName for String {
    fn as_tool_name(&self) -> Result<Cow<'_, ToolName>, NameError> {
        ToolName::parse(self).map(Cow::Owned)
    }
}

impl AsToolName for &String {
    fn as_tool_name(&self) -> Result<Cow<'_, ToolName>, NameError> {
        ToolName::parse(self).map(Cow::Owned)
    }
}

/// Checks a server name: non-empty, `[A-Za-z0-9_-]` only, and no `__` (the separator, so
/// that the first `__` of a namespaced name always ends the server's part).
pub fn validate_server_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("server name must not be empty".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "server name \"{name}\" contains {bad:?}; use only letters, digits, '_' and '-'"
        ));
    }
    if name.contains(SEPARATOR) {
        return Err(format!(
            "server name \"{name}\" contains \"{SEPARATOR}\", the namespace separator"
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_the_first_separator() {
        let n = ToolName::parse("mem__get__all").unwrap();
        assert_eq!((n.server(), n.tool()), ("mem", "get__all"));
        assert_eq!(n.to_string(), "mem__get__all");
        assert_eq!("a__b".parse::<ToolName>().unwrap(), ToolName::new("a", "b"));
    }

    #[test]
    fn both_halves_are_required() {
        for bad in ["echo", "__echo", "mem__", "", "__"] {
            assert_eq!(ToolName::parse(bad), Err(NameError(bad.into())), "{bad:?}");
        }
    }

    #[test]
    fn server_names_cannot_hold_the_separator() {
        assert!(validate_server_name("my-server_1").is_ok());
        assert!(validate_server_name("a__b")
            .unwrap_err()
            .contains("separator"));
        assert!(validate_server_name("a b").unwrap_err().contains("' '"));
        assert!(validate_server_name("").is_err());
    }
}
