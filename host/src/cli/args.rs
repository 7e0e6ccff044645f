//! The arguments of `call` and `serve`, and turning them into the library's options: kept
//! apart from the command list so that each command's parsing stays short and in one place.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{commands, project_servers, CodeModeArg};

/// `call SERVER__TOOL|ALIAS [JSON | - | -i JSON | -f FILE] [-t SECS]` (also `test-tool`).
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// The namespaced tool (or an alias).
    pub tool: String,
    /// Arguments as a JSON object, or `-` to read them from stdin.
    #[arg(conflicts_with_all = ["input", "input_file"])]
    pub arguments: Option<String>,
    /// Arguments as a JSON object (the seed's `-i`).
    #[arg(short, long, value_name = "JSON", conflicts_with = "input_file")]
    pub input: Option<String>,
    /// Read the arguments from this JSON file (the seed's `-f`).
    #[arg(short = 'f', long, value_name = "FILE")]
    pub input_file: Option<PathBuf>,
    /// Give up on the call after this many seconds (default: the server's call timeout).
    #[arg(short, long, value_name = "SECS")]
    pub timeout: Option<f64>,
}

impl CallArgs {
    /// Runs the call.
    pub(super) async fn run(self, path: &Path) -> anyhow::Result<ExitCode> {
        let arguments = match (&self.input_file, self.input) {
            (Some(file), _) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("--input-file {}: {e}", file.display()))?,
            ),
            (None, Some(json)) => Some(json),
            (None, None) => self.arguments,
        };
        let timeout = match self.timeout {
            Some(t) if !(t > 0.0 && t.is_finite()) => {
                anyhow::bail!("--timeout must be a positive number of seconds")
            }
            t => t.map(std::time::Duration::from_secs_f64),
        };
        commands::call(path, &self.tool, arguments.as_deref(), timeout).await
    }
}

/// `serve`: what to expose, and how.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Servers to expose (default: all, or those the filter names).
    pub servers: Vec<String>,
    /// Tool filter, e.g. 'memory:read_graph,search_*;github' or 'memory:-delete_*' (tools
    /// without their server, globs * and ?).
    #[arg(short, long)]
    pub filter: Option<String>,
    /// Expose this project's servers.
    #[arg(short, long, value_name = "PROJECT", conflicts_with = "servers")]
    pub project: Option<String>,
    /// An alias for this run, beside the registry's (repeatable; the seed's `-a`).
    #[arg(short = 'a', long = "alias", value_name = "ALIAS=SERVER__TOOL")]
    pub aliases: Vec<String>,
    /// Expose every plugin of this policy file as a tool, under its policy.
    #[arg(long, value_name = "POLICY_FILE", conflicts_with = "plugin")]
    pub plugins: Option<PathBuf>,
    /// Expose this plugin component as a tool (repeatable), under the default policy
    /// (no server granted).
    #[arg(long, value_name = "PATH")]
    pub plugin: Vec<PathBuf>,
    /// Grant each `--plugin` what its `describe` requests, as far as the registry has it.
    #[arg(long, requires = "plugin")]
    pub allow_requested: bool,
    /// Serve streamable HTTP on this address (e.g. 127.0.0.1:8080 or localhost:8080)
    /// instead of stdio.
    #[arg(long, value_name = "ADDR", value_parser = socket_address)]
    pub http: Option<std::net::SocketAddr>,
    /// Tenants (HTTP): who may call, with which API keys or JWTs, reaching what.
    #[arg(long, value_name = "FILE", requires = "http")]
    pub tenants: Option<PathBuf>,
    /// HTTP: the URL clients reach `serve` at (behind an ingress: `https://mcp.example/mcp`).
    /// Requests must name its host; the OAuth protected-resource metadata names it. Needed
    /// for a non-loopback --http address.
    #[arg(
        long,
        value_name = "URL",
        requires = "http",
        env = "MCP_REGISTRY_PUBLIC_URL"
    )]
    pub public_url: Option<String>,
    /// Serve a non-loopback address without --tenants (anyone who reaches it gets all).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Server processes alive at once, for the whole host (default: 64 per core).
    #[arg(long, value_name = "N")]
    pub max_processes: Option<usize>,
    /// Close upstream connections and HTTP client sessions unused this long (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub idle_timeout: u64,
    /// How long a listing waits for servers still starting (seconds): the others answer
    /// at once, and the late ones are announced with `list_changed` when they are up.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub list_wait: f64,
    /// Code mode: offer `search` and `execute` (run a snippet that calls the tools) beside
    /// the plain tools; `--code-mode=only` lists just those two.
    #[arg(long, value_name = "only", num_args = 0..=1, require_equals = true,
          default_missing_value = "on", value_enum)]
    pub code_mode: Option<CodeModeArg>,
    /// HTTP: on SIGTERM/SIGINT/SIGHUP, wait this long for requests in flight (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 30.0, requires = "http")]
    pub drain_timeout: f64,
    /// HTTP: also serve /metrics, /healthz and /readyz on this address (with --tenants,
    /// the only place /metrics is served).
    #[arg(long, value_name = "ADDR", requires = "http", value_parser = socket_address)]
    pub metrics: Option<std::net::SocketAddr>,
}

impl ServeArgs {
    /// Serves until stopped.
    pub(super) async fn run(self, path: &Path) -> anyhow::Result<ExitCode> {
        let list_wait = std::time::Duration::try_from_secs_f64(self.list_wait)
            .ok()
            .filter(|w| !w.is_zero() && w.as_secs() <= 3600)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--list-wait must be a number of seconds, more than 0 and at most 3600"
                )
            })?;
        let drain_timeout = std::time::Duration::try_from_secs_f64(self.drain_timeout)
            .ok()
            .filter(|d| d.as_secs() <= 86_400)
            .ok_or_else(|| {
                anyhow::anyhow!("--drain-timeout must be a number of seconds, 0 to 86400")
            })?;
        // The project must exist now (the error names the file); a reload reads its
        // members again.
        if let Some(p) = &self.project {
            project_servers(path, p)?;
        }
        let servers = self.servers;
        let mut aliases = Vec::new();
        for a in &self.aliases {
            let Some((alias, target)) = a.split_once('=') else {
                anyhow::bail!("--alias {a:?}: expected ALIAS=SERVER__TOOL");
            };
            aliases.push((alias.to_owned(), target.to_owned()));
        }
        let front = commands::Front {
            http: self.http,
            public_url: self.public_url,
            tenants: self.tenants,
            insecure_no_auth: self.insecure_no_auth,
            max_processes: self
                .max_processes
                .unwrap_or_else(crate::serve::default_max_processes),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout.max(1)),
            list_wait,
            drain_timeout,
            metrics: self.metrics,
            project: self.project,
            aliases,
            code_mode: self.code_mode.map(|m| match m {
                CodeModeArg::On => crate::serve::CodeModeTools::Alongside,
                CodeModeArg::Only => crate::serve::CodeModeTools::Only,
            }),
        };
        commands::serve(
            path,
            servers,
            self.filter,
            self.plugins.as_deref(),
            &self.plugin,
            self.allow_requested,
            front,
        )
        .await
    }
}

/// An address to listen on: `IP:PORT`, or `HOST:PORT` with a name this machine resolves
/// (`localhost:8080`; an IPv4 address is preferred when the name has both).
fn socket_address(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let addrs: Vec<std::net::SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("expected HOST:PORT such as 127.0.0.1:8080 ({e})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{text} resolves to no address"))
}
