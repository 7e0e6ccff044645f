//! `${VAR}` and `${VAR:-default}` in a server's `command`, `args`, `env`, `cwd`, `url` and
//! `headers`, expanded from the host's environment when the server is started (not when the
//! file is read, so a reload or a changed environment takes effect on the next start, and the
//! file can be shared without its secrets). An unset variable without a default is an error
//! naming the server, the field and the variable, never its value.

use std::path::PathBuf;

use super::ServerConfig;

/// A variable that could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server \"{server}\": field \"{field}\": {message}")]
#[non_exhaustive]
pub struct ExpandError {
    /// The server.
    pub server: String,
    /// Where: `command`, `args[1]`, `env.TOKEN`, `cwd`.
    pub field: String,
    /// What is wrong (names the variable, never a value).
    pub message: String,
}

/// Expands `text` with `lookup`; the error message names the variable.
fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err("\"${\" without a closing \"}\"".into());
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "\"${{{inner}}}\" is not a variable (${{NAME}} or ${{NAME:-default}})"
            ));
        }
        match (lookup(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                "${{{name}}} is not set in the environment (give it a default: ${{{name}:-...}})"
            ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ServerConfig {
    /// This configuration with every `${VAR}` expanded from the process environment.
    pub fn expanded(&self, server: &str) -> Result<ServerConfig, ExpandError> {
        self.expanded_with(server, &|name| std::env::var(name).ok())
    }

    /// Like [`ServerConfig::expanded`], with variables from `lookup`.
    pub fn expanded_with(
        &self,
        server: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ServerConfig, ExpandError> {
        let fail = |field: String| {
            move |message| ExpandError {
                server: server.to_owned(),
                field,
                message,
            }
        };
        let mut out = self.clone();
        out.command = expand(&self.command, lookup).map_err(fail("command".into()))?;
        for (i, arg) in out.args.iter_mut().enumerate() {
            *arg = expand(arg, lookup).map_err(fail(format!("args[{i}]")))?;
        }
        for (key, value) in out.env.iter_mut() {
            *value = expand(value, lookup).map_err(fail(format!("env.{key}")))?;
        }
        if let Some(cwd) = &self.cwd {
            let text = cwd.to_string_lossy();
            out.cwd = Some(PathBuf::from(
                expand(&text, lookup).map_err(fail("cwd".into()))?,
            ));
        }
        if let (Some(remote), Some(out)) = (&self.remote, out.remote.as_mut()) {
            out.url = expand(&remote.url, lookup).map_err(fail("url".into()))?;
            // The expanded URL may hold a secret: the message does not repeat it.
            if super::remote::check_url(&out.url).is_err() {
                let message = "is not an http:// or https:// URL once its variables are expanded";
                return Err(fail("url".into())(message.into()));
            }
            for (name, value) in out.headers.iter_mut() {
                *value = expand(value, lookup).map_err(fail(format!("headers.{name}")))?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_owned())
    }

    #[test]
    fn expands_set_defaulted_and_refuses_unset() {
        assert_eq!(expand("Bearer ${TOKEN}", &env).unwrap(), "Bearer s3cret");
        assert_eq!(expand("${HOME_X:-/tmp}/a", &env).unwrap(), "/tmp/a");
        assert_eq!(expand("${TOKEN:-x}", &env).unwrap(), "s3cret");
        assert_eq!(expand("no vars, $PLAIN", &env).unwrap(), "no vars, $PLAIN");
        let err = expand("${MISSING}", &env).unwrap_err();
        assert!(err.contains("MISSING") && !err.contains("s3cret"), "{err}");
        assert!(expand("${TOKEN", &env).is_err());
        assert!(expand("${1BAD}", &env).is_err());
    }
}
