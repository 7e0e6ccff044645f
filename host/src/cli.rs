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
use crate::plugin::{default_cache_dir, PluginError, PluginHost, PluginPolicy};

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
    /// Run a plugin (a Wasm component) and print its JSON output.
    Run {
        /// The component file (`.wasm`).
        plugin: PathBuf,
        /// Input as JSON text, or `-` to read it from stdin.
        #[arg(long, default_value = "{}")]
        input: String,
        /// A server the plugin may use (repeatable; default: every server in the registry).
        #[arg(long = "allow-server", value_name = "NAME")]
        allow_server: Vec<String>,
        /// Wall-clock deadline of the run, in seconds.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Print a plugin's self-description (name, description, input schema) as JSON.
    Describe {
        /// The component file (`.wasm`).
        plugin: PathBuf,
    },
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
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
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
            let result = aggregator.call_tool(&tool, arguments).await?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(if result.is_error == Some(true) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Run {
            plugin,
            input,
            allow_server,
            timeout,
        } => {
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
            if !(timeout > 0.0 && timeout.is_finite()) {
                bail!("--timeout must be a positive number of seconds");
            }
            let registry = Registry::load_or_default(&path)?;
            for s in &allow_server {
                if registry.server(s).is_none() {
                    bail!("--allow-server {s}: no such server in {}", path.display());
                }
            }
            let host = PluginHost::new(Aggregator::new(registry), default_cache_dir())?;
            let plugin = host.load_file(&plugin)?;
            let policy = PluginPolicy {
                allowed_servers: (!allow_server.is_empty()).then_some(allow_server),
                deadline: std::time::Duration::from_secs_f64(timeout),
                ..PluginPolicy::default()
            };
            match host.run(&plugin, &input, &policy).await {
                Ok(output) => {
                    match serde_json::from_str::<Value>(&output) {
                        Ok(v) => println!("{}", serde_json::to_string_pretty(&v)?),
                        Err(_) => println!("{output}"),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(PluginError::Failed { name, message }) => {
                    eprintln!("plugin {name} failed: {message}");
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            }
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
