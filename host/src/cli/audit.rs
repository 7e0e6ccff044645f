//! `audit verify FILE [--key PUB]`: checks an audit log offline (the hash chain, and with a
//! key every signed checkpoint) and names the first line that fails.

use std::path::Path;
use std::process::ExitCode;

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
}

/// `audit verify ...`.
pub(super) fn audit(action: &AuditAction) -> anyhow::Result<ExitCode> {
    let AuditAction::Verify { file, key } = action;
    let key = key.as_deref().map(TrustedKey::load).transpose()?;
    verify(file, key.as_ref())
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
