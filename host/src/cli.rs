//! The `mcp-registry` command line. Thin: parse, call the library, print.
//!
//! Output contract: results go to stdout (JSON where `--json` is given or the command's
//! result is JSON), logs go to stderr. Exit status 0 on success, 1 when a tool returned
//! `isError`, 2 on any other error.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::aggregator::{parse_arguments, Aggregator};
use crate::client::{ConnectionState, ServerConnection};
use crate::config::{self, Registry};
use crate::plugin::{
    default_cache_dir, load_policy_file, PluginError, PluginHost, PluginPolicy, Preopen,
};
use crate::serve::ServeOptions;

/// Registry and aggregator of MCP stdio servers, with a sandboxed Wasm plugin host.
#[derive(Debug, Parser)]
#[command(name = "mcp-registry", version, about)]
pub struct Cli {
    /// Registry file (default: $MCP_REGISTRY_CONFIG, else $XDG_CONFIG_HOME/mcp-registry/config.json).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty registry file if there is none.
    Init,
    /// Add (or replace) a server: `add NAME [--env K=V]... -- COMMAND [ARGS...]`.
    Add {
        /// Server name: letters, digits, '_' and '-', no "__".
        name: String,
        /// Environment variable for the server, as K=V (repeatable).
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Remove a server.
    Remove {
        /// Server name.
        name: String,
    },
    /// List the configured servers (with -v: connect to each and show its protocol version).
    List,
    /// List tools as SERVER__TOOL (temporary connections, concurrently).
    ListTools {
        /// Only these servers.
        servers: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Call SERVER__TOOL once (temporary connection) and print the result as JSON.
    Call {
        /// The namespaced tool.
        tool: String,
        /// Arguments as a JSON object, or `-` to read them from stdin.
        arguments: Option<String>,
    },
    /// Run a plugin (a Wasm component) and print its JSON output; or, with --policy, run
    /// every plugin of a policy file concurrently, each as its own tenant.
    Run {
        /// The component file (`.wasm`); omit with --policy.
        #[arg(required_unless_present = "policy")]
        plugin: Option<PathBuf>,
        /// Input as JSON text, or `-` to read it from stdin.
        #[arg(long, default_value = "{}")]
        input: String,
        /// A policy file naming plugins, components, grants and limits.
        #[arg(long, value_name = "FILE", conflicts_with = "plugin")]
        policy: Option<PathBuf>,
        /// The plugin's grants and limits.
        #[command(flatten)]
        limits: PolicyArgs,
    },
    /// Run the registry as one MCP server (stdio, or streamable HTTP with --http): every
    /// selected server's tools as SERVER__TOOL, the registry's aliases, and plugins as tools.
    Serve {
        /// Servers to expose (default: all, or those the filter names).
        servers: Vec<String>,
        /// Tool filter, e.g. 'memory:get,set;github' or 'memory:-delete'.
        #[arg(long)]
        filter: Option<String>,
        /// Expose every plugin of this policy file as a tool, under its policy.
        #[arg(long, value_name = "POLICY_FILE", conflicts_with = "plugin")]
        plugins: Option<PathBuf>,
        /// Expose this plugin component as a tool (repeatable), under the default policy.
        #[arg(long, value_name = "PATH")]
        plugin: Vec<PathBuf>,
        /// Serve streamable HTTP on this address (e.g. 127.0.0.1:8080) instead of stdio.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
    },
    /// Print a plugin's self-description (name, description, input schema) as JSON.
    Describe {
        /// The component file (`.wasm`).
        plugin: PathBuf,
    },
}

/// `mcp-registry run` flags: the same options as a policy file entry.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// A server the plugin may use (repeatable; default: every server in the registry).
    #[arg(long = "allow-server", value_name = "NAME")]
    allow_server: Vec<String>,
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
    /// Wall-clock deadline of the run, in seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Fuel (roughly, Wasm instructions) for the run (default: unlimited).
    #[arg(long)]
    fuel: Option<u64>,
    /// Maximum linear memory, in MiB.
    #[arg(long, default_value_t = 256)]
    max_memory_mib: usize,
    /// Maximum sessions open at once.
    #[arg(long, default_value_t = 16)]
    max_sessions: usize,
    /// Maximum tool calls in one run.
    #[arg(long, default_value_t = 10_000)]
    max_calls: usize,
    /// Maximum calls in flight at once.
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
    /// Maximum bytes of one call's arguments.
    #[arg(long, default_value_t = 1 << 20)]
    max_argument_bytes: usize,
    /// Maximum bytes of one call's result.
    #[arg(long, default_value_t = 16 << 20)]
    max_result_bytes: usize,
    /// Maximum bytes of the plugin's stdout and of its stderr.
    #[arg(long, default_value_t = 1 << 20)]
    max_output_bytes: usize,
}

impl PolicyArgs {
    fn to_policy(
        &self,
        registry: &Registry,
        path: &std::path::Path,
    ) -> anyhow::Result<PluginPolicy> {
        for s in &self.allow_server {
            if registry.server(s).is_none() {
                bail!("--allow-server {s}: no such server in {}", path.display());
            }
        }
        if !(self.timeout > 0.0 && self.timeout.is_finite()) {
            bail!("--timeout must be a positive number of seconds");
        }
        let mut policy = PluginPolicy {
            allowed_servers: (!self.allow_server.is_empty()).then(|| self.allow_server.clone()),
            allowed_tools: (!self.allow_tool.is_empty()).then(|| self.allow_tool.clone()),
            wall_clock: self.wall_clock,
            random: self.random,
            deadline: std::time::Duration::from_secs_f64(self.timeout),
            fuel: self.fuel,
            max_memory_bytes: self.max_memory_mib << 20,
            max_sessions: self.max_sessions,
            max_calls: self.max_calls,
            max_in_flight: self.max_in_flight,
            max_argument_bytes: self.max_argument_bytes,
            max_result_bytes: self.max_result_bytes,
            max_output_bytes: self.max_output_bytes,
            ..PluginPolicy::default()
        };
        for kv in &self.env {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--env {kv:?}: expected K=V"))?;
            policy.env.insert(k.to_owned(), v.to_owned());
        }
        for d in &self.dir {
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
            policy.preopens.push(Preopen {
                host: host.into(),
                guest: guest.into(),
                writable,
            });
        }
        Ok(policy)
    }
}

/// Runs the CLI with the process's arguments; returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // A server is stopped by a signal as a matter of course; a one-shot command is
    // interrupted.
    let stopped_code = match cli.command {
        Command::Serve { .. } => Some(0),
        _ => None,
    };
    let outcome = runtime.block_on(async {
        tokio::spawn(stop_on_signal(stopped_code));
        run(cli).await
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Waits for SIGTERM, SIGINT or SIGHUP, then ends every server process this host started
/// and exits: with `stopped_code` if given, else 128 + the signal's number. (SIGKILL cannot
/// be caught; the process watchdog covers it.)
async fn stop_on_signal(stopped_code: Option<i32>) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::terminate(), "SIGTERM", libc::SIGTERM),
        (SignalKind::interrupt(), "SIGINT", libc::SIGINT),
        (SignalKind::hangup(), "SIGHUP", libc::SIGHUP),
    ];
    let mut streams = Vec::new();
    for (kind, name, number) in kinds {
        match signal(kind) {
            Ok(stream) => streams.push((stream, name, number)),
            Err(e) => tracing::warn!(signal = name, error = %e, "cannot listen for the signal"),
        }
    }
    if streams.is_empty() {
        return std::future::pending().await;
    }
    let waits = streams.iter_mut().map(|(stream, name, number)| {
        Box::pin(async move {
            stream.recv().await;
            (*name, *number)
        })
    });
    let ((name, number), _, _) = futures::future::select_all(waits).await;
    tracing::info!(signal = name, "stopping");
    crate::client::process::stop_spawning();
    crate::client::terminate_all(crate::client::ShutdownPolicy::PROMPT).await;
    std::process::exit(stopped_code.unwrap_or(128 + number));
}

/// Prints `value` as pretty JSON on stdout and flushes, so it is seen before any shutdown.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn init_logging(verbose: u8) {
    // rmcp warns about every slow server exit; ours already says what matters.
    let default = match verbose {
        0 => "warn,rmcp=error",
        1 => "info,rmcp=warn",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let path = config::default_path(cli.config.as_deref())?;
    match cli.command {
        Command::Init => {
            if path.exists() {
                Registry::load(&path)?;
                println!("registry already exists: {}", path.display());
            } else {
                Registry::load_or_default(&path)?.save()?;
                println!("created {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Add { name, env, command } => {
            let mut registry = Registry::load_or_default(&path)?;
            let mut env_map = BTreeMap::new();
            for kv in env {
                let Some((k, v)) = kv.split_once('=') else {
                    bail!("--env {kv:?}: expected K=V");
                };
                env_map.insert(k.to_owned(), v.to_owned());
            }
            let (program, args) = command.split_first().context("missing COMMAND after --")?;
            registry
                .insert_server(&name, program, args, &env_map)
                .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
            registry.save()?;
            println!("added server \"{name}\" to {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Remove { name } => {
            let mut registry = Registry::load(&path)?;
            if !registry.remove_server(&name) {
                bail!("{}: no server named \"{name}\"", path.display());
            }
            registry.save()?;
            println!("removed server \"{name}\" from {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            let registry = Registry::load_or_default(&path)?;
            if registry.servers().is_empty() {
                println!("no servers in {}", path.display());
            }
            for (name, server) in registry.servers() {
                let mut line = format!("{name}: {} {}", server.command, server.args.join(" "));
                if let Some(d) = &server.description {
                    line.push_str(&format!("  # {d}"));
                }
                if cli.verbose > 0 {
                    let status = match ServerConnection::connect(name, server).await {
                        Ok(conn) => {
                            let state = conn.state();
                            conn.close().await;
                            match state {
                                ConnectionState::Ready {
                                    protocol_version,
                                    server_name,
                                    server_version,
                                } => format!(
                                    "ready, protocol {protocol_version}, server {} {}",
                                    server_name.unwrap_or_default(),
                                    server_version.unwrap_or_default()
                                ),
                                other => format!("{other:?}"),
                            }
                        }
                        Err(e) => format!("failed: {e}"),
                    };
                    line.push_str(&format!("\n    {status}"));
                }
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ListTools { servers, json } => {
            let aggregator = Aggregator::new(Registry::load(&path)?);
            let (tools, failures) = aggregator.list_tools(&servers).await?;
            if json {
                let list: Vec<Value> = tools
                    .iter()
                    .map(|t| {
                        json!({
                            "name": t.name,
                            "server": t.server,
                            "description": t.description(),
                            "inputSchema": t.input_schema(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for t in &tools {
                    println!("{}\t{}", t.name, t.description());
                }
            }
            for (server, e) in &failures {
                eprintln!("error: server \"{server}\": {e}");
            }
            Ok(if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Call { tool, arguments } => {
            let text = match arguments.as_deref() {
                Some("-") => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("reading arguments from stdin")?;
                    s
                }
                Some(s) => s.to_owned(),
                None => String::new(),
            };
            let arguments = parse_arguments(&text)?;
            let aggregator = Aggregator::new(Registry::load(&path)?);
            let result = aggregator.call_tool(&tool, arguments).await;
            // The result first, the server's shutdown after it.
            // `resultType` is the 2026-07-28 era's wire discriminator, not part of the result:
            // the output is the same whichever era the server speaks.
            let result = result.map(|mut r| {
                r.result_type = None;
                r
            });
            let printed = match &result {
                Ok(r) => print_json(r),
                Err(_) => Ok(()),
            };
            aggregator.shutdown().await;
            let result = result?;
            printed?;
            Ok(if result.is_error == Some(true) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Run {
            plugin,
            input,
            policy: policy_file,
            limits,
        } => {
            let registry = Registry::load_or_default(&path)?;
            let host = PluginHost::new(Aggregator::new(registry.clone()), default_cache_dir())?;
            let Some(policy_file) = policy_file else {
                let plugin = plugin.context("missing PLUGIN")?;
                let input = if input == "-" {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("reading input from stdin")?;
                    s
                } else {
                    input
                };
                serde_json::from_str::<Value>(&input).context("--input is not valid JSON")?;
                let policy = limits.to_policy(&registry, &path)?;
                let plugin = host.load_file(&plugin)?;
                let outcome = host.run(&plugin, &input, &policy).await;
                // The output first, the servers' shutdown after it.
                if let Ok(output) = &outcome {
                    match serde_json::from_str::<Value>(output) {
                        Ok(v) => print_json(&v)?,
                        Err(_) => println!("{output}"),
                    }
                }
                host.aggregator().shutdown().await;
                return match outcome {
                    Ok(_) => Ok(ExitCode::SUCCESS),
                    Err(PluginError::Failed { name, message }) => {
                        eprintln!("plugin {name} failed: {message}");
                        Ok(ExitCode::from(1))
                    }
                    Err(e) => Err(e.into()),
                };
            };
            let specs = load_policy_file(&policy_file)?;
            for spec in &specs {
                for s in spec.policy.allowed_servers.iter().flatten() {
                    if registry.server(s).is_none() {
                        bail!(
                            "{}: plugin \"{}\": field \"servers\": no server \"{s}\" in {}",
                            policy_file.display(),
                            spec.name,
                            path.display()
                        );
                    }
                }
            }
            let mut runs = Vec::new();
            for spec in &specs {
                let plugin = host.load_file_as(&spec.name, &spec.component)?;
                runs.push((plugin, spec.input.to_string(), spec.policy.clone()));
            }
            let results = host.run_many(&runs).await;
            host.aggregator().shutdown().await;
            let mut report = serde_json::Map::new();
            let mut code = ExitCode::SUCCESS;
            for (spec, result) in specs.iter().zip(results) {
                let entry = match result {
                    Ok(out) => {
                        json!({"ok": serde_json::from_str::<Value>(&out).unwrap_or(Value::String(out))})
                    }
                    Err(e) => {
                        code = ExitCode::from(1);
                        json!({"error": e.to_string()})
                    }
                };
                report.insert(spec.name.clone(), entry);
            }
            println!("{}", serde_json::to_string_pretty(&Value::Object(report))?);
            Ok(code)
        }
        Command::Serve {
            servers,
            filter,
            plugins,
            plugin,
            http,
        } => {
            let registry = Registry::load(&path)?;
            let mut loaded = Vec::new();
            if let Some(file) = plugins {
                for spec in load_policy_file(&file)? {
                    loaded.push((spec.name, spec.component, spec.policy));
                }
            }
            for p in plugin {
                let name = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "plugin".into());
                loaded.push((name, p, PluginPolicy::default()));
            }
            let options = ServeOptions {
                servers,
                filter,
                plugins: loaded,
                http,
            };
            crate::serve::serve(Aggregator::new(registry), options).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Describe { plugin } => {
            let registry = Registry::load_or_default(&path)?;
            let host = PluginHost::new(Aggregator::new(registry), default_cache_dir())?;
            let plugin = host.load_file(&plugin)?;
            let text = host.describe(&plugin).await?;
            let v: Value =
                serde_json::from_str(&text).context("the plugin's describe() is not JSON")?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
