//! `mcp-registry run`'s policy flags: the same options as a policy file entry. A limit left
//! out is the policy's own default ([`PluginPolicy::default`]), so the defaults live in one
//! place.

use anyhow::{bail, Context};

use crate::config::Registry;
use crate::plugin::{PluginPolicy, Preopen};

/// `mcp-registry run` flags: the same options as a policy file entry.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// Require the component to be signed by this public key (PEM, ECDSA P-256; repeatable:
    /// any one of them). Only an `oci://` component can be signed.
    #[arg(long = "signed-by", value_name = "KEY.pub")]
    signed_by: Vec<std::path::PathBuf>,
    /// A server the plugin may use (repeatable; default: none).
    #[arg(long = "allow-server", value_name = "NAME")]
    allow_server: Vec<String>,
    /// Grant what the plugin's `describe` requests (`requires`), as far as the registry has it.
    #[arg(long)]
    pub allow_requested: bool,
    /// A glob over SERVER__TOOL the plugin may call (repeatable; default: all tools).
    #[arg(long = "allow-tool", value_name = "GLOB")]
    allow_tool: Vec<String>,
    /// Grant a directory: HOST_DIR:GUEST_PATH, read-only; add `:rw` for read-write.
    #[arg(long = "dir", value_name = "HOST:GUEST[:rw]")]
    dir: Vec<String>,
    /// Grant an environment variable, as K=V (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Let the plugin see the real wall clock (default: frozen at the Unix epoch).
    #[arg(long)]
    wall_clock: bool,
    /// Give the plugin real randomness (default: a fixed sequence).
    #[arg(long)]
    random: bool,
    /// Wall-clock deadline of the run, in seconds (default 60).
    #[arg(long)]
    timeout: Option<f64>,
    /// Fuel (roughly, Wasm instructions) for the run (default: unlimited).
    #[arg(long)]
    fuel: Option<u64>,
    /// Maximum linear memory, in MiB (default 256).
    #[arg(long)]
    max_memory_mib: Option<usize>,
    /// Maximum sessions open at once (default 16).
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Maximum tool calls in one run (default 10000).
    #[arg(long)]
    max_calls: Option<usize>,
    /// Maximum calls in flight at once (default 64).
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Maximum bytes of one call's arguments (default 1 MiB).
    #[arg(long)]
    max_argument_bytes: Option<usize>,
    /// Maximum bytes of one call's result (default 16 MiB).
    #[arg(long)]
    max_result_bytes: Option<usize>,
    /// Maximum bytes of the plugin's stdout and of its stderr (default 1 MiB).
    #[arg(long)]
    max_output_bytes: Option<usize>,
}

impl PolicyArgs {
    /// The keys of `--signed-by`, read.
    pub fn trusted_keys(&self) -> Result<Vec<crate::oci::TrustedKey>, crate::oci::OciError> {
        self.signed_by
            .iter()
            .map(|p| crate::oci::TrustedKey::load(p))
            .collect()
    }

    /// Whether these flags grant anything to reach (a server or a tool).
    pub fn grants_anything(&self) -> bool {
        self.allow_requested || !self.allow_server.is_empty() || !self.allow_tool.is_empty()
    }

    /// The policy these flags give, checked against the registry at `path`.
    pub fn to_policy(
        &self,
        registry: &Registry,
        path: &std::path::Path,
    ) -> anyhow::Result<PluginPolicy> {
        for s in &self.allow_server {
            if registry.server(s).is_none() {
                bail!("--allow-server {s}: no such server in {}", path.display());
            }
        }
        let defaults = PluginPolicy::default();
        let deadline = match self.timeout {
            None => defaults.deadline,
            Some(t) if t > 0.0 && t.is_finite() => std::time::Duration::from_secs_f64(t),
            Some(_) => bail!("--timeout must be a positive number of seconds"),
        };
        let mut policy = PluginPolicy {
            allowed_servers: self.allow_server.clone(),
            allowed_tools: (!self.allow_tool.is_empty()).then(|| self.allow_tool.clone()),
            wall_clock: self.wall_clock,
            random: self.random,
            deadline,
            fuel: self.fuel,
            max_memory_bytes: self
                .max_memory_mib
                .map_or(defaults.max_memory_bytes, |m| m << 20),
            max_sessions: self.max_sessions.unwrap_or(defaults.max_sessions),
            max_calls: self.max_calls.unwrap_or(defaults.max_calls),
            max_in_flight: self.max_in_flight.unwrap_or(defaults.max_in_flight),
            max_argument_bytes: self
                .max_argument_bytes
                .unwrap_or(defaults.max_argument_bytes),
            max_result_bytes: self.max_result_bytes.unwrap_or(defaults.max_result_bytes),
            max_output_bytes: self.max_output_bytes.unwrap_or(defaults.max_output_bytes),
            ..defaults
        };
        for kv in &self.env {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--env {kv:?}: expected K=V"))?;
            policy.env.insert(k.to_owned(), v.to_owned());
        }
        for d in &self.dir {
            policy.preopens.push(preopen(d)?);
        }
        Ok(policy)
    }
}

fn preopen(d: &str) -> anyhow::Result<Preopen> {
    let (spec, writable) = match d.strip_suffix(":rw") {
        Some(rest) => (rest, true),
        None => (d.strip_suffix(":ro").unwrap_or(d), false),
    };
    let (host, guest) = spec
        .rsplit_once(':')
        .with_context(|| format!("--dir {d:?}: expected HOST_DIR:GUEST_PATH[:rw]"))?;
    if !std::path::Path::new(host).is_dir() {
        bail!("--dir {d:?}: {host} is not a directory");
    }
    Ok(Preopen {
        host: host.into(),
        guest: guest.into(),
        writable,
    })
}
