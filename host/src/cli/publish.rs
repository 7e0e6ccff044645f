//! `mcp-registry push PLUGIN.wasm oci://REGISTRY/REPO[:TAG] [--sign-key KEY]`: the author's
//! end of OCI distribution (the pulling end is in every command that takes a component).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::oci::{ComponentStore, OciReference, SigningKey};

/// `push`'s arguments.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The component file (`.wasm`).
    plugin: PathBuf,
    /// Where: oci://REGISTRY/REPOSITORY[:TAG] (tag `latest` when none is named). Plain HTTP
    /// for a registry on localhost or a loopback address, HTTPS otherwise; credentials from
    /// MCP_REGISTRY_OCI_USERNAME and MCP_REGISTRY_OCI_PASSWORD, else ~/.docker/config.json.
    target: String,
    /// Sign the pushed digest with this private key (PEM, ECDSA P-256, unencrypted PKCS#8 or
    /// SEC1), as cosign does: a `sha256-HEX.sig` signature beside it.
    #[arg(long, value_name = "KEY")]
    sign_key: Option<PathBuf>,
}

impl PushArgs {
    /// Pushes, signs when asked, and prints the pinned reference on stdout.
    pub(super) async fn run(&self) -> anyhow::Result<ExitCode> {
        let target = OciReference::parse(&self.target)?;
        let key = self.sign_key.as_deref().map(SigningKey::load).transpose()?;
        let bytes = std::fs::read(&self.plugin)
            .with_context(|| format!("{}: cannot read the component", self.plugin.display()))?;
        let store = ComponentStore::new(crate::plugin::default_cache_dir());
        let pinned = store.push(bytes, &target, key.as_ref()).await?;
        if key.is_some() {
            eprintln!("signed {pinned}");
        }
        println!("{pinned}");
        Ok(ExitCode::SUCCESS)
    }
}
