//! The registry's `"audit"` setting: where the record of every run goes, and the key that
//! signs it. The log itself (the hash chain, the signatures, `audit verify`) is
//! `crate::audit`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::json::{self, Fields, JsonFileError};

/// Where runs are recorded and how the record is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The log file (JSON lines, appended).
    pub path: PathBuf,
    /// A PEM ECDSA P-256 private key (the kind plugins are signed with) that signs a
    /// checkpoint every `checkpoint_every` lines and when the process ends.
    pub key: Option<PathBuf>,
    /// Lines between signed checkpoints.
    pub checkpoint_every: u64,
    /// Whether lines hold the values (a run's input, each call's arguments and result) beside
    /// their digests, so a run can be replayed from its record (`audit extract`); off by
    /// default, since values carry whatever secrets passed through.
    pub values: bool,
}

/// Lines between signed checkpoints unless the setting says.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 100;

impl AuditSettings {
    /// Parses `"audit": "FILE"` or `{"file", "key", "checkpoint_every"}`; paths are relative
    /// to the registry's directory.
    pub(super) fn parse(
        top: &Fields<'_>,
        value: &Value,
        registry: &Path,
    ) -> Result<Self, JsonFileError> {
        let base = registry.parent().unwrap_or(Path::new("."));
        let (file, key, every, values) = match value {
            Value::String(_) => (value, None, None, None),
            Value::Object(obj) => {
                top.only("audit", obj, &["file", "key", "checkpoint_every", "values"])?;
                let file = obj.get("file").ok_or_else(|| {
                    top.err("audit.file", "missing; expected the log file's path")
                })?;
                (
                    file,
                    obj.get("key"),
                    obj.get("checkpoint_every"),
                    obj.get("values"),
                )
            }
            other => {
                return Err(top.err(
                    "audit",
                    format!(
                        "expected the log file's path or an object, found {}",
                        json::kind(other)
                    ),
                ))
            }
        };
        let path = base.join(top.string("audit.file", file)?);
        let key = key
            .map(|k| top.string("audit.key", k).map(|k| base.join(k)))
            .transpose()?;
        let checkpoint_every = every
            .map(|n| top.count("audit.checkpoint_every", n))
            .transpose()?
            .unwrap_or(DEFAULT_CHECKPOINT_EVERY);
        let values = values
            .map(|v| top.bool("audit.values", v))
            .transpose()?
            .unwrap_or(false);
        Ok(Self {
            path,
            key,
            checkpoint_every,
            values,
        })
    }
}
