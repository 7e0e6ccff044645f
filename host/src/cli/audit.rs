//! `audit verify FILE [--key PUB]`: checks an audit log offline (the hash chain, and with a
//! key every signed checkpoint) and names the first line that fails. `audit extract FILE
//! --seq N`: one recorded run (from a log that keeps values) as a recording that `run
//! --replay` plays back with no server at all.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::names::ToolName;
use crate::oci::TrustedKey;

/// What `audit` does.
#[derive(Debug, clap::Subcommand)]
pub enum AuditAction {
    /// Check a log: every line's hash and place in the chain, and with --key every
    /// checkpoint's signature. Exit status 1 names the first line that fails.
    Verify {
        /// The log (the registry's `"audit"` file).
        file: std::path::PathBuf,
        /// The PEM ECDSA P-256 public key of the key the log was signed with.
        #[arg(long, value_name = "PUB")]
        key: Option<std::path::PathBuf>,
    },
    /// Print the run of line SEQ (of a log written with `"values": true`) as a recording
    /// for `run PLUGIN --replay FILE`; the chain is checked first.
    Extract {
        /// The log.
        file: std::path::PathBuf,
        /// The run's line number (`seq`).
        #[arg(long)]
        seq: u64,
    },
}

/// `audit verify ...`.
pub(super) fn audit(action: &AuditAction) -> anyhow::Result<ExitCode> {
    match action {
        AuditAction::Verify { file, key } => {
            let key = key.as_deref().map(TrustedKey::load).transpose()?;
            verify(file, key.as_ref())
        }
        AuditAction::Extract { file, seq } => {
            for line in extract(file, *seq)? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The recording lines (`client::recording`'s format) of the run at `seq`.
fn extract(file: &Path, seq: u64) -> anyhow::Result<Vec<Value>> {
    crate::audit::verify(file, None)?;
    let text = std::fs::read_to_string(file)?;
    let at = || format!("{}: line {seq}", file.display());
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["seq"].as_u64() == Some(seq))
        .with_context(|| format!("{}: no line {seq}", file.display()))?;
    if line["kind"] != "run" {
        bail!("{} is a {}, not a run", at(), line["kind"]);
    }
    let Some(input) = line["input_value"].as_str() else {
        bail!(
            "{} holds digests only; runs can be replayed from a log written with \"values\": true",
            at()
        );
    };
    let input: Value =
        serde_json::from_str(input).unwrap_or_else(|_| Value::String(input.to_owned()));
    let mut recording = vec![json!({"kind": "input", "value": input})];
    for call in line["calls"].as_array().into_iter().flatten() {
        let Some(name) = call["tool"].as_str().and_then(|t| ToolName::parse(t).ok()) else {
            continue;
        };
        let mut entry = json!({"kind": "tools/call", "server": name.server(),
                               "tool": name.tool(), "arguments": call["arguments_value"]});
        match (&call["result_value"], call["outcome"].as_str()) {
            (Value::Object(_), _) => entry["result"] = call["result_value"].clone(),
            // Failed at the server: the replay fails the same way. Anything else (a denial,
            // a limit) the host decides again on replay, without asking a server.
            (_, Some(outcome @ ("server-failed" | "timeout"))) => {
                entry["error"] = format!("recorded: the call ended {outcome}").into()
            }
            _ => continue,
        }
        recording.push(entry);
    }
    Ok(recording)
}

fn verify(file: &Path, key: Option<&TrustedKey>) -> anyhow::Result<ExitCode> {
    match crate::audit::verify(file, key) {
        Ok(v) => {
            println!(
                "{}: {} lines verify{}",
                file.display(),
                v.lines,
                if key.is_some() {
                    format!(", {} signed checkpoints", v.checkpoints)
                } else {
                    " (the chain only; give --key to check the signatures)".into()
                }
            );
            if key.is_some() && v.unsigned_tail > 0 {
                println!(
                    "note: the last {} lines follow the last signed checkpoint (one is signed \
                     every `checkpoint_every` lines and when the process ends)",
                    v.unsigned_tail
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ crate::audit::AuditError::Broken { .. }) => {
            println!("{e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}
