//! `tenant-key`: a new API key for a tenant of `serve --http --tenants`, and the
//! `sha256:...` line its tenants file holds (the file never holds the key itself).

use std::process::ExitCode;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// `tenant-key [--digest-of -]`: prints a new random key and its digest line; with
/// `--digest-of -`, the digest line of the key read from stdin.
pub(super) fn tenant_key(digest_of_stdin: bool) -> anyhow::Result<ExitCode> {
    let key = if digest_of_stdin {
        let text = super::commands::text_or_stdin("-", "the key")?;
        let key = text.trim_end_matches(['\n', '\r']).to_owned();
        anyhow::ensure!(!key.is_empty(), "the key on stdin is empty");
        key
    } else {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).context("no randomness from the system")?;
        let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        println!("key (give it to the tenant; it is not stored anywhere): {key}");
        key
    };
    let digest: String = Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest_of_stdin {
        println!("sha256:{digest}");
    } else {
        println!("for the tenant's \"keys\" in the tenants file: \"sha256:{digest}\"");
    }
    Ok(ExitCode::SUCCESS)
}
