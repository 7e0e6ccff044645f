//! One validator for every JSON file the host reads (the registry, policy files): each
//! error names the file, the entry (`server "memory"`, `plugin "fanout"`) and the field.
//!
//! Validation is by hand over a `serde_json::Value` rather than `#[derive(Deserialize)]`
//! because serde's errors cannot say which entry and field of a user's file is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// A JSON file that could not be read, is not JSON, or holds a wrong value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonFileError {
    /// The file could not be read.
    #[error("{}: cannot read {what}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file is (`registry file`, `policy file`).
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{}:{line}:{column}: invalid JSON: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What serde_json reported.
        message: String,
    },
    /// The JSON is well formed but a value is wrong.
    #[error("{}: {location}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which entry and field.
        location: Location,
        /// What is wrong.
        message: String,
    },
}

/// Where in a file a value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The entry it is in, as (kind, name): `("server", "memory")`.
    pub entry: Option<(&'static str, String)>,
    /// The JSON path of the field, e.g. `args[2]` or `mcpServers`.
    pub field: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Some((kind, name)) => write!(f, "{kind} \"{name}\": field \"{}\"", self.field),
            None => write!(f, "field \"{}\"", self.field),
        }
    }
}

/// Reads `path` and parses it as JSON; `what` names the file in errors.
pub fn read(path: &Path, what: &'static str) -> Result<Value, JsonFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| JsonFileError::Read {
        path: path.to_path_buf(),
        what,
        source,
    })?;
    parse(&text, path)
}

/// Parses JSON text read from `path`.
pub fn parse(text: &str, path: &Path) -> Result<Value, JsonFileError> {
    serde_json::from_str(text).map_err(|e| JsonFileError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// What a JSON value is, for messages: `a number`, `an array`.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads the fields of one part of a file (the top level, or one entry), with errors that
/// say where.
#[derive(Clone, Copy)]
pub struct Fields<'a> {
    path: &'a Path,
    entry: Option<(&'static str, &'a str)>,
}

impl<'a> Fields<'a> {
    /// The top level of `path`.
    pub fn top(path: &'a Path) -> Self {
        Self { path, entry: None }
    }

    /// The entry `name` of kind `kind` (`server`, `plugin`) in `path`.
    pub fn entry(path: &'a Path, kind: &'static str, name: &'a str) -> Self {
        Self {
            path,
            entry: Some((kind, name)),
        }
    }

    /// Where these fields are, as an error names it: `FILE: plugin "NAME"`.
    pub fn place(&self) -> String {
        match &self.entry {
            Some((kind, name)) => format!("{}: {kind} \"{name}\"", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    /// An error at `field`.
    pub fn err(&self, field: impl Into<String>, message: impl Into<String>) -> JsonFileError {
        JsonFileError::Invalid {
            path: self.path.to_path_buf(),
            location: Location {
                entry: self.entry.map(|(k, n)| (k, n.to_owned())),
                field: field.into(),
            },
            message: message.into(),
        }
    }

    /// `v` as an object.
    pub fn object<'v>(
        &self,
        field: &str,
        v: &'v Value,
    ) -> Result<&'v Map<String, Value>, JsonFileError> {
        v.as_object()
            .ok_or_else(|| self.err(field, format!("expected an object, found {}", kind(v))))
    }

    /// Rejects any key of `obj` (at `field`) that is not in `allowed`: in a user's file an
    /// unknown key is almost always a typo that would otherwise be silently ignored.
    pub fn only(
        &self,
        field: &str,
        obj: &Map<String, Value>,
        allowed: &[&str],
    ) -> Result<(), JsonFileError> {
        match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(self.err(
                if field.is_empty() {
                    k.clone()
                } else {
                    format!("{field}.{k}")
                },
                format!("unknown field; expected one of: {}", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// `v` as a string.
    pub fn string(&self, field: &str, v: &Value) -> Result<String, JsonFileError> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.err(field, format!("expected a string, found {}", kind(v))))
    }

    /// `v` as an array of strings.
    pub fn strings(&self, field: &str, v: &Value) -> Result<Vec<String>, JsonFileError> {
        let items = v.as_array().ok_or_else(|| {
            self.err(
                field,
                format!("expected an array of strings, found {}", kind(v)),
            )
        })?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| self.string(&format!("{field}[{i}]"), item))
            .collect()
    }

    /// `v` as an object of strings.
    pub fn string_map(
        &self,
        field: &str,
        v: &Value,
    ) -> Result<BTreeMap<String, String>, JsonFileError> {
        let obj = v.as_object().ok_or_else(|| {
            self.err(
                field,
                format!("expected an object of strings, found {}", kind(v)),
            )
        })?;
        obj.iter()
            .map(|(k, val)| Ok((k.clone(), self.string(&format!("{field}.{k}"), val)?)))
            .collect()
    }

    /// `v` as `true` or `false`.
    pub fn bool(&self, field: &str, v: &Value) -> Result<bool, JsonFileError> {
        v.as_bool()
            .ok_or_else(|| self.err(field, format!("expected true or false, found {}", kind(v))))
    }

    /// `v` as a positive integer.
    pub fn count(&self, field: &str, v: &Value) -> Result<u64, JsonFileError> {
        v.as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| self.err(field, format!("expected a positive integer, found {v}")))
    }

    /// `v` as a positive integer that fits a `usize`.
    pub fn size(&self, field: &str, v: &Value) -> Result<usize, JsonFileError> {
        usize::try_from(self.count(field, v)?).map_err(|_| self.err(field, "too large"))
    }

    /// `v` as a positive number of seconds (under a year).
    pub fn seconds(&self, field: &str, v: &Value) -> Result<Duration, JsonFileError> {
        let secs = v.as_f64().ok_or_else(|| {
            self.err(
                field,
                format!("expected a number of seconds, found {}", kind(v)),
            )
        })?;
        if !(secs > 0.0 && secs.is_finite() && secs < 86_400.0 * 365.0) {
            return Err(self.err(
                field,
                format!("must be a positive number of seconds, got {secs}"),
            ));
        }
        Ok(Duration::from_secs_f64(secs))
    }
}
