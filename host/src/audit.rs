//! A verifiable record of every run: an append-only log of JSON lines, hash-chained and
//! optionally signed.
//!
//! Why a chain and checkpoints: an operator must be able to show afterwards what a snippet or
//! plugin did with which data, and a log anyone with write access can quietly edit shows
//! nothing. Each line carries its number (`seq`), the hash of the line before it (`prev`) and
//! its own hash (`hash`, over the line's RFC 8785 canonical form without `hash`): an edited
//! byte, a deleted line or a reordered pair breaks the chain at a line `audit verify` names.
//! Rewriting the whole chain from some line on is caught by the checkpoints: every N lines and
//! when the process ends, a line whose `signature` (ECDSA P-256, the keys plugins are signed
//! with) covers the hash of everything before it.
//!
//! Lines hold digests (`sha256:...`) of inputs, arguments and results, not the values:
//! secrets that pass through a run stay out of the log.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::config::{AuditSettings, Registry};
use crate::digest;
use crate::locks::lock;
use crate::oci::{SigningKey, TrustedKey};

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log could not be read or written.
    #[error("audit log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The signing key could not be read.
    #[error("audit log {path}: its key: {message}")]
    Key {
        /// The log file.
        path: PathBuf,
        /// What is wrong with the key.
        message: String,
    },
    /// The file's last line is not an audit line: the chain cannot go on from it.
    #[error("audit log {path}: {why}")]
    NotALog {
        /// The log file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A line breaks the chain or its signature.
    #[error("{path}: line {line}: {why}")]
    Broken {
        /// The log file.
        path: PathBuf,
        /// The first line that does not verify (1-based).
        line: u64,
        /// Why.
        why: String,
    },
}

/// The hash a chain starts from.
const GENESIS: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// An audit log open for appending: one per file per process ([`log_for`]), and across
/// processes one writer at a time (an exclusive lock of the file), each going on from the
/// file's last line, so a `serve` and an `exec` sharing a registry extend one chain.
pub struct AuditLog {
    path: PathBuf,
    key: Option<SigningKey>,
    checkpoint_every: u64,
    values: bool,
    chain: Mutex<Chain>,
}

struct Chain {
    file: std::fs::File,
    /// The last line's number and hash, as of `end`.
    seq: u64,
    head: String,
    /// The file's length after our last line: if it is longer now, another process appended
    /// (a `serve` and an `exec` share one registry) and the chain goes on from its line.
    end: u64,
    /// Lines since the last checkpoint.
    unsigned: u64,
}

static OPEN: Mutex<Option<HashMap<PathBuf, Arc<AuditLog>>>> = Mutex::new(None);

/// The audit log the registry's `"audit"` setting names (opened once per process), or `None`
/// when runs are not recorded.
pub fn log_for(registry: &Registry) -> Result<Option<Arc<AuditLog>>, AuditError> {
    let Some(settings) = registry.audit() else {
        return Ok(None);
    };
    let mut open = lock(&OPEN);
    let open = open.get_or_insert_with(HashMap::new);
    if let Some(log) = open.get(&settings.path) {
        return Ok(Some(log.clone()));
    }
    let log = Arc::new(AuditLog::open(settings)?);
    open.insert(settings.path.clone(), log.clone());
    Ok(Some(log))
}

/// Signs a checkpoint in every open log that has lines since its last one: call when the
/// process is about to end.
pub fn close_all() {
    let logs: Vec<Arc<AuditLog>> = lock(&OPEN)
        .as_ref()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    for log in logs {
        if let Err(e) = log.checkpoint() {
            tracing::warn!(error = %e, "cannot sign the audit log's last checkpoint");
        }
    }
}

impl AuditLog {
    fn open(settings: &AuditSettings) -> Result<Self, AuditError> {
        let path = settings.path.clone();
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        let key = settings
            .key
            .as_deref()
            .map(SigningKey::load)
            .transpose()
            .map_err(|e| AuditError::Key {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        Ok(Self {
            path,
            key,
            checkpoint_every: settings.checkpoint_every,
            values: settings.values,
            chain: Mutex::new(Chain {
                file,
                seq: 0,
                head: GENESIS.into(),
                end: 0,
                unsigned: 0,
            }),
        })
    }

    /// Whether lines hold values beside digests (the setting's `values`).
    pub fn values(&self) -> bool {
        self.values
    }

    /// Appends `record` (an object: what happened) as the chain's next line, and a signed
    /// checkpoint after it when one is due.
    pub fn append(&self, record: Map<String, Value>) -> Result<(), AuditError> {
        let mut chain = lock(&self.chain);
        self.write_line(&mut chain, record)?;
        if self.key.is_some() && chain.unsigned >= self.checkpoint_every {
            self.write_checkpoint(&mut chain)?;
        }
        Ok(())
    }

    /// Signs a checkpoint now if any line since the last one is unsigned (and there is a key).
    pub fn checkpoint(&self) -> Result<(), AuditError> {
        let mut chain = lock(&self.chain);
        if self.key.is_some() && chain.unsigned > 0 {
            self.write_checkpoint(&mut chain)?;
        }
        Ok(())
    }

    fn write_checkpoint(&self, chain: &mut Chain) -> Result<(), AuditError> {
        let mut record = Map::new();
        record.insert("kind".into(), "checkpoint".into());
        self.write_line(chain, record)?;
        chain.unsigned = 0;
        Ok(())
    }

    /// Appends one line under an exclusive lock of the file (`flock`), going on from the
    /// file's last line, whoever wrote it.
    fn write_line(
        &self,
        chain: &mut Chain,
        mut record: Map<String, Value>,
    ) -> Result<(), AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let _locked = FileLock::exclusive(&chain.file).map_err(io)?;
        let len = chain.file.metadata().map_err(io)?.len();
        if len != chain.end {
            (chain.seq, chain.head) = last_line(&self.path, &chain.file, len)?;
        }
        let seq = chain.seq + 1;
        // A checkpoint signs the hash of everything before it, as it is in the file now.
        if record.get("kind").and_then(Value::as_str) == Some("checkpoint") {
            if let Some(key) = &self.key {
                let signature = key.sign_bytes(chain.head.as_bytes());
                record.insert("signature".into(), signature.into());
            }
        }
        record.insert("seq".into(), seq.into());
        record.insert("prev".into(), chain.head.clone().into());
        record.insert(
            "time".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        record.remove("hash");
        let (hash, mut line) = hashed_line(record);
        line.push(b'\n');
        (&chain.file).write_all(&line).map_err(io)?;
        chain.end = len + line.len() as u64;
        chain.seq = seq;
        chain.head = hash;
        chain.unsigned += 1;
        Ok(())
    }
}

/// The line of `record`: its canonical form with `"hash"` (the digest of the canonical form
/// without it) in its sorted place; and that hash. The record is serialised once, in two
/// halves around where `"hash"` goes: the canonical form of an object is its members in key
/// order, each serialised on its own, so the halves joined are the whole (our keys are ASCII,
/// whose byte order is RFC 8785's UTF-16 order).
fn hashed_line(record: Map<String, Value>) -> (String, Vec<u8>) {
    let (mut before, mut after) = (Map::new(), Map::new());
    for (key, value) in record {
        if key.as_str() < "hash" {
            before.insert(key, value);
        } else {
            after.insert(key, value);
        }
    }
    let before = digest::canonical(&Value::Object(before));
    let after = digest::canonical(&Value::Object(after));
    // The members of each half, without the braces.
    let inner = |bytes: &[u8]| bytes[1..bytes.len() - 1].to_vec();
    let (before, after) = (inner(&before), inner(&after));
    let join = |middle: &[u8]| {
        let mut out = Vec::with_capacity(before.len() + middle.len() + after.len() + 4);
        out.push(b'{');
        for part in [&before[..], middle, &after[..]] {
            if part.is_empty() {
                continue;
            }
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(part);
        }
        out.push(b'}');
        out
    };
    let hash = digest::of_bytes(&join(&[]));
    let line = join(format!("\"hash\":\"{hash}\"").as_bytes());
    (hash, line)
}

/// The `seq` and `hash` of the last line of `file` (`len` bytes long), read backwards from
/// its end; 0 and the genesis hash for an empty file.
fn last_line(path: &Path, file: &std::fs::File, len: u64) -> Result<(u64, String), AuditError> {
    use std::os::unix::fs::FileExt;
    const CHUNK: u64 = 64 * 1024;
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    // The bytes after the last newline but one (the file ends with a newline).
    let mut tail: Vec<u8> = Vec::new();
    let mut at = len;
    let line = loop {
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if let Some(i) = body.iter().rposition(|b| *b == b'\n') {
            break body[i + 1..].to_vec();
        }
        if at == 0 {
            break body.to_vec();
        }
        let start = at.saturating_sub(CHUNK);
        let mut chunk = vec![0; (at - start) as usize];
        file.read_exact_at(&mut chunk, start).map_err(io)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        at = start;
    };
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok((0, GENESIS.into()));
    }
    let value: Value = serde_json::from_slice(&line).unwrap_or_default();
    match (value["seq"].as_u64(), value["hash"].as_str()) {
        (Some(seq), Some(hash)) => Ok((seq, hash.to_owned())),
        _ => Err(AuditError::NotALog {
            path: path.to_path_buf(),
            why: "the last line is not an audit line, so the chain cannot go on from it; check \
                  the file with `mcp-registry audit verify` and move it aside"
                .into(),
        }),
    }
}

/// An exclusive `flock` of a file, released when dropped: one writer at a time across
/// processes.
struct FileLock<'a>(&'a std::fs::File);

impl<'a> FileLock<'a> {
    fn exclusive(file: &'a std::fs::File) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock(2) on a descriptor we own for the life of the guard.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// What a verified log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Lines checked.
    pub lines: u64,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// Lines after the last signed checkpoint (covered by the chain, not yet by a signature).
    pub unsigned_tail: u64,
}

/// Checks a log offline: every line's hash, its place in the chain and, with `key`, every
/// checkpoint's signature. The first line that fails is named.
pub fn verify(path: &Path, key: Option<&TrustedKey>) -> Result<Verified, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let broken = |line: u64, why: String| AuditError::Broken {
        path: path.to_path_buf(),
        line,
        why,
    };
    let (mut head, mut seq) = (GENESIS.to_owned(), 0u64);
    let mut verified = Verified {
        lines: 0,
        checkpoints: 0,
        unsigned_tail: 0,
    };
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let number = index as u64 + 1;
        let line = line.map_err(io)?;
        let Ok(Value::Object(mut record)) = serde_json::from_str::<Value>(&line) else {
            return Err(broken(number, "not a JSON object".into()));
        };
        let Some(Value::String(hash)) = record.remove("hash") else {
            return Err(broken(number, "has no hash".into()));
        };
        if digest::of_json(&Value::Object(record.clone())) != hash {
            return Err(broken(
                number,
                "its hash does not match its content (the line was edited)".into(),
            ));
        }
        if record.get("seq").and_then(Value::as_u64) != Some(seq + 1) {
            return Err(broken(
                number,
                format!(
                    "is number {} where {} was expected (a line deleted, inserted or reordered)",
                    record.get("seq").unwrap_or(&Value::Null),
                    seq + 1
                ),
            ));
        }
        if record.get("prev").and_then(Value::as_str) != Some(head.as_str()) {
            return Err(broken(
                number,
                "does not follow the line before it (its prev is not that line's hash)".into(),
            ));
        }
        if record.get("kind").and_then(Value::as_str) == Some("checkpoint") {
            if let Some(key) = key {
                let signature = record
                    .get("signature")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !key.verifies(head.as_bytes(), signature) {
                    return Err(broken(
                        number,
                        format!(
                            "the checkpoint's signature does not verify with {}",
                            key.path.display()
                        ),
                    ));
                }
                verified.checkpoints += 1;
                verified.unsigned_tail = 0;
            }
        } else {
            verified.unsigned_tail += 1;
        }
        seq += 1;
        head = hash;
        verified.lines += 1;
    }
    if key.is_some() && verified.checkpoints == 0 && verified.lines > 0 {
        return Err(broken(
            verified.lines,
            "no signed checkpoint in the log; it was written without a key".into(),
        ));
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_its_record_with_its_hash_in_canonical_form() {
        for record in [
            serde_json::json!({"kind": "call", "args": {"z": 1, "a": [1.5, "é"]}, "seq": 3,
                               "prev": "p", "zeta": null, "hasher": 1, "has": 2}),
            serde_json::json!({"kind": "checkpoint"}),
            serde_json::json!({"a": 1}),
            serde_json::json!({}),
        ] {
            let Value::Object(map) = record else {
                unreachable!("an object")
            };
            let (hash, line) = hashed_line(map.clone());
            assert_eq!(hash, digest::of_json(&Value::Object(map.clone())));
            let mut with = map;
            with.insert("hash".into(), hash.into());
            assert_eq!(line, digest::canonical(&Value::Object(with)));
        }
    }
}
