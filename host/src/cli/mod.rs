//! The `mcp-registry` command line. Thin: parse, call the library, print.
//!
//! Output contract: results go to stdout (JSON where `--json` is given or the command's
//! result is JSON), logs go to stderr. Exit status 0 on success, 1 when a tool returned
//! `isError`, 2 on any other error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config;
use crate::Aggregator;

mod args;
mod audit;
mod auth;
mod cases;
mod commands;
mod edit;
mod entries;
mod exec;
mod import;
mod install;
mod logging;
mod pins;
mod policy_args;
mod prompt;
mod publish;
mod replay;
mod scaffold;
mod seed;
mod tenant_key;

pub use exec::ExecArgs;
pub use policy_args::PolicyArgs;

/// Registry and aggregator of MCP stdio servers, with a sandboxed Wasm plugin host.
#[derive(Debug, Parser)]
#[command(name = "mcp-registry", version, about)]
pub struct Cli {
    /// Registry file (default: $MCP_REGISTRY_CONFIG, else $XDG_CONFIG_HOME/mcp-registry/config.json).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug); for `list` and `list-tools`, more
    /// detail instead. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Logging on stderr: error, warn (the default), info, debug or trace; RUST_LOG
    /// overrides.
    #[arg(long, global = true, value_name = "LEVEL",
          value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty registry file if there is none; with --import, add the stdio servers
    /// of another client's configuration (Claude Desktop, Claude Code, Cursor, VS Code).
    Init {
        /// Import from FILE, or (without FILE) from every usual place.
        #[arg(long, value_name = "FILE", num_args = 0..=1)]
        #[allow(clippy::option_option)] // absent | --import | --import FILE
        import: Option<Option<PathBuf>>,
    },
    /// Put `mcp-registry serve` (this binary, this registry, by full paths) into an MCP
    /// client's configuration, keeping a backup: `install claude-desktop [-- --code-mode]`.
    Install {
        /// The client.
        #[arg(value_enum)]
        client: install::Client,
        /// The client's configuration file (default: where the client reads it).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The server's name in the client.
        #[arg(long, default_value = "mcp-registry")]
        name: String,
        /// Replace an entry of that name.
        #[arg(long)]
        replace: bool,
        /// More arguments for `serve` (after `--`): `--code-mode`, `-p PROJECT`, ...
        #[arg(last = true, value_name = "SERVE_ARGS")]
        serve_args: Vec<String>,
    },
    /// Add a server: `add NAME [-e K=V]... -- COMMAND [ARGS...]`, or a remote one: `add NAME
    /// --url URL [--transport sse] [-H "K: V"]...` (with no NAME, at a terminal: asks for
    /// each part); --replace replaces one of the same name.
    Add {
        /// Server name: letters, digits, '_' and '-', no "__".
        name: Option<String>,
        /// Environment variable for the server, as K=V (repeatable).
        #[arg(short = 'e', long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// The command and its arguments.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
        /// A remote server's endpoint, instead of a COMMAND.
        #[arg(long, value_name = "URL", conflicts_with_all = ["command", "env"])]
        url: Option<String>,
        /// With --url: "http" (streamable HTTP, the default) or "sse" (the older HTTP+SSE).
        #[arg(long, value_name = "TYPE", requires = "url", value_parser = ["http", "sse"])]
        transport: Option<String>,
        /// With --url: a header sent with every request, "K: V" (repeatable).
        #[arg(short = 'H', long = "header", value_name = "K: V", requires = "url")]
        header: Vec<String>,
        /// Also put the server in this project (made if new).
        #[arg(short, long, value_name = "PROJECT")]
        project: Option<String>,
        /// Replace a server of the same name (without it, a different entry is refused).
        #[arg(long)]
        replace: bool,
    },
    /// Remove a server (with -p: only from that project; the server stays).
    Remove {
        /// Server name.
        name: String,
        /// Take the server out of this project only.
        #[arg(short, long, value_name = "PROJECT")]
        project: Option<String>,
    },
    /// List the configured servers (with -v: connect to each and show its protocol version).
    List {
        /// Only this project's servers.
        #[arg(short, long, value_name = "PROJECT")]
        project: Option<String>,
    },
    /// List tools as SERVER__TOOL with their descriptions (temporary connections,
    /// concurrently); -v adds each tool's parameters, -vv its whole input schema.
    ListTools {
        /// Only these servers.
        #[arg(conflicts_with = "project")]
        servers: Vec<String>,
        /// Only this project's servers.
        #[arg(short, long, value_name = "PROJECT")]
        project: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Call SERVER__TOOL once (temporary connection) and print the result as JSON (also
    /// `test-tool`, the seed's name).
    #[command(visible_alias = "test-tool")]
    Call(args::CallArgs),
    /// Print where the registry file is.
    ShowConfigPath,
    /// Open the registry file in $VISUAL or $EDITOR; keeps FILE.bak and validates on save.
    Edit,
    /// Print one server's entry as written in the registry file.
    Get {
        /// Server name.
        name: String,
    },
    /// Print the whole registry file.
    Show,
    /// Aliases: plain tool names standing for SERVER__TOOL (listed and callable through
    /// `serve`, and by `call`).
    Alias {
        /// What to do.
        #[command(subcommand)]
        action: seed::AliasAction,
    },
    /// The audit log (the registry's `"audit"`): check it offline.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: audit::AuditAction,
    },
    /// Sign in to a remote server that takes OAuth (`"auth": "oauth"`): opens the
    /// authorization page in a browser (and prints its URL), waits for the redirect, keeps the
    /// tokens (mode 0600, under the data directory); --logout forgets them.
    Auth {
        /// Server name.
        server: String,
        /// Forget the server's tokens instead.
        #[arg(long)]
        logout: bool,
        /// Print the URL only (a headless machine, or a browser elsewhere).
        #[arg(long)]
        no_browser: bool,
        /// Sign in as this tenant (for `serve --tenants`, a tenant whose policy says
        /// `"oauth": "own"`), not as the operator.
        #[arg(long, value_name = "NAME")]
        tenant: Option<String>,
    },
    /// Pinned tool definitions (the registry's `"pins"`): list them, show what drifted,
    /// approve a tool as it is now.
    Pins {
        /// What to do.
        #[command(subcommand)]
        action: pins::PinsAction,
    },
    /// Run a plugin (a Wasm component) and print its JSON output; or, with --policy, run
    /// every plugin of a policy file concurrently, each as its own tenant.
    Run {
        /// The component: a `.wasm` file or oci://REGISTRY/REPO@sha256:DIGEST; omit with
        /// --policy.
        #[arg(required_unless_present = "policy")]
        plugin: Option<PathBuf>,
        /// Input as JSON text, or `-` to read it from stdin (default `{}`; with --replay, the
        /// recorded input).
        #[arg(long)]
        input: Option<String>,
        /// A policy file naming plugins, components, grants and limits.
        #[arg(long, value_name = "FILE", conflicts_with = "plugin")]
        policy: Option<PathBuf>,
        /// The plugin's grants and limits.
        #[command(flatten)]
        limits: PolicyArgs,
        /// Write every upstream request of the run with its answer, and the plugin's input,
        /// output and log lines, to FILE as JSON lines.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["policy", "replay"])]
        record: Option<PathBuf>,
        /// Answer the plugin's requests from a recording instead of the registry's servers:
        /// no server is started.
        #[arg(long, value_name = "FILE", conflicts_with = "policy")]
        replay: Option<PathBuf>,
    },
    /// Run a plugin's cases (`{"cases": [{"name", "input", "output"|"error", "replay"}]}`),
    /// live or replayed, reported like a test runner; exit code 1 if any case failed.
    Test {
        /// The component: a `.wasm` file or oci://REGISTRY/REPO@sha256:DIGEST.
        plugin: PathBuf,
        /// The cases file.
        #[arg(long, value_name = "FILE")]
        cases: PathBuf,
        /// Grants and limits beyond what the plugin requests.
        #[command(flatten)]
        limits: PolicyArgs,
    },
    /// One server of a recording, played back on stdio (what `run --replay` starts).
    #[command(hide = true)]
    ReplayServer {
        /// The recording.
        recording: PathBuf,
        /// The recorded server to play.
        server: String,
    },
    /// Run the registry as one MCP server (stdio, or streamable HTTP with --http): every
    /// selected server's tools as SERVER__TOOL, the registry's aliases, and plugins as tools.
    Serve(args::ServeArgs),
    /// Run a code-mode snippet (JavaScript or TypeScript, an async function body calling
    /// `await tools.SERVER.TOOL(args)`) and print its value, console and calls as JSON.
    Exec(ExecArgs),
    /// Print what code mode's `search` tool gives a model for QUERY: the best-matching tools
    /// as TypeScript declarations (or, with --names, their names), from every server (or
    /// those given with --server), listed over temporary connections.
    Search {
        /// What the tools should do, in a few words (empty: every tool).
        query: String,
        /// How many tools.
        #[arg(long, default_value_t = crate::codemode::search::DEFAULT_LIMIT)]
        limit: usize,
        /// Names and descriptions as JSON instead of declarations.
        #[arg(long)]
        names: bool,
        /// Python stubs instead of TypeScript declarations.
        #[arg(long, conflicts_with = "names")]
        python: bool,
        /// Only this server's tools (repeatable).
        #[arg(long, value_name = "NAME")]
        server: Vec<String>,
    },
    /// Make an API key for a tenant of `serve --http --tenants`: prints the key and the
    /// `sha256:...` line for the tenants file (which never holds the key itself).
    TenantKey {
        /// Print only the digest line of the key read from stdin instead.
        #[arg(long)]
        digest_of_stdin: bool,
    },
    /// Print a plugin's self-description (name, description, input schema) as JSON.
    Describe {
        /// The component: a `.wasm` file or oci://REGISTRY/REPO@sha256:DIGEST.
        plugin: PathBuf,
    },
    /// Publish a plugin component to an OCI registry, in the Wasm OCI artifact layout, and
    /// print its reference pinned by digest (what `run`, `serve --plugin` and policy files
    /// take).
    Push(publish::PushArgs),
    /// Create a plugin project (Rust, Python, JavaScript, C, Go or Zig) that builds with its language's
    /// tool and passes its own `mcp-registry test`, against this host's WIT.
    New(scaffold::NewArgs),
    /// Make a core Wasm module (from C, Go, Zig or any wasm32-wasi compiler) a plugin
    /// component: this host's WIT world embedded where the module has none, WASI preview 1
    /// adapted to preview 2.
    Componentize {
        /// The core module.
        module: PathBuf,
        /// Where to write the component.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Write a plugin's bindings in C (for C and Zig) or Go, from this host's WIT (or
    /// `--wit`'s), with wit-bindgen's generators.
    Bindings {
        /// The language.
        #[arg(value_enum)]
        language: crate::plugin::guest_bindings::BindingsLanguage,
        /// Where to write them.
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
        /// Another version of the contract: a `wit/` directory or a binary WIT package.
        #[arg(long, value_name = "PATH")]
        wit: Option<PathBuf>,
    },
    /// Print the plugin contract (this host's WIT, `mcp-registry:plugin`), or write it as a
    /// binary WIT package (`--out`), which `push` publishes for wkg, wit-bindgen and jco.
    Wit {
        /// Write the binary WIT package here instead of printing the text.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `serve --code-mode[=only]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CodeModeArg {
    /// Beside the plain tools.
    On,
    /// Instead of them.
    Only,
}

/// Runs the CLI with the process's arguments; returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `list -v` and `list-tools -v/-vv` are the seed's detail levels (states, parameters,
    // schemas), not logging.
    let verbose = match cli.command {
        Command::ListTools { .. } | Command::List { .. } => 0,
        _ => cli.verbose,
    };
    logging::init(verbose, cli.log_level.as_deref());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // A server is stopped by a signal as a matter of course; a one-shot command is
    // interrupted. `serve --http` handles its signals itself: it drains. `serve` reloads on
    // SIGHUP.
    let (stopped_code, drains, reloads) = match &cli.command {
        Command::Serve(args) => (Some(0), args.http.is_some(), true),
        _ => (None, false, false),
    };
    let outcome = runtime.block_on(async {
        if !drains {
            tokio::spawn(stop_on_signal(stopped_code, !reloads));
        }
        run(cli).await
    });
    // A signal that arrived while the command was ending decides the exit: the command's own
    // outcome (often an error its stopping servers caused) would otherwise race the signal
    // handler's exit. The servers are ended first, as the handler would have.
    if let Some(code) = stopped_by_signal() {
        runtime.block_on(crate::client::terminate_all(
            crate::client::ShutdownPolicy::PROMPT,
        ));
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        crate::audit::close_all();
        logging::finish();
        std::process::exit(code);
    }
    // Tasks still running end now, closing their spans, before the last spans are flushed.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    // The audit log's last lines get their signed checkpoint.
    crate::audit::close_all();
    logging::finish();
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", said_once(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes, each said once: a cause whose text the message already holds
/// (many errors quote their source) is not repeated.
fn said_once(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// The exit code a caught signal chose (-1: none yet).
static STOPPED_WITH: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

fn stopped_by_signal() -> Option<i32> {
    let code = STOPPED_WITH.load(std::sync::atomic::Ordering::SeqCst);
    (code >= 0).then_some(code)
}

/// Waits for SIGTERM, SIGINT or (with `hangup`) SIGHUP, then ends every server process this
/// host started and exits: with `stopped_code` if given, else 128 + the signal's number.
/// (SIGKILL cannot be caught; the process watchdog covers it.)
async fn stop_on_signal(stopped_code: Option<i32>, hangup: bool) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::terminate(), "SIGTERM", libc::SIGTERM),
        (SignalKind::interrupt(), "SIGINT", libc::SIGINT),
        (SignalKind::hangup(), "SIGHUP", libc::SIGHUP),
    ];
    let mut streams = Vec::new();
    for (kind, name, number) in kinds.into_iter().filter(|k| hangup || k.2 != libc::SIGHUP) {
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
    let code = stopped_code.unwrap_or(128 + number);
    STOPPED_WITH.store(code, std::sync::atomic::Ordering::SeqCst);
    crate::client::process::stop_spawning();
    crate::client::terminate_all(crate::client::ShutdownPolicy::PROMPT).await;
    crate::audit::close_all();
    std::process::exit(code);
}

/// The aggregator of a one-shot command (`run`, `exec`, `test`): its process ends with its
/// sessions, whose calls have all been answered by then, so they close their servers as a
/// temporary call does (see [`Aggregator::with_session_shutdown`]).
fn one_shot(registry: config::Registry) -> Aggregator {
    Aggregator::new(registry).with_session_shutdown(crate::client::ShutdownPolicy::PROMPT)
}

/// The servers of project `name` of the registry at `path`.
fn project_servers(path: &std::path::Path, name: &str) -> anyhow::Result<Vec<String>> {
    let registry = config::Registry::load(path)?;
    let servers = registry
        .project(name)
        .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
    Ok(servers)
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

/// `add`: a stdio server, a remote one (`--url`), or, with no NAME at a terminal, one asked for.
fn add_server(path: &std::path::Path, add: Command) -> anyhow::Result<ExitCode> {
    match add {
        Command::Add {
            name: Some(name),
            url: Some(url),
            transport,
            header,
            project,
            replace,
            ..
        } => {
            let transport = transport.as_deref().unwrap_or("http");
            let project = project.as_deref();
            entries::add_remote(path, &name, &url, transport, &header, project, replace)
        }
        Command::Add {
            name: Some(name),
            env,
            command,
            project,
            replace,
            ..
        } => entries::add(path, &name, &env, &command, project.as_deref(), replace),
        Command::Add {
            name: None,
            project,
            replace,
            ..
        } => {
            use std::io::IsTerminal;
            if !std::io::stdin().is_terminal() {
                anyhow::bail!("add needs NAME and -- COMMAND [ARGS...] (at a terminal it asks)");
            }
            let new = prompt::new_server()?;
            let project = project.as_deref();
            entries::add(path, &new.name, &new.env, &new.command, project, replace)
        }
        _ => unreachable!("only called with Command::Add"),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let path = config::default_path(cli.config.as_deref())?;
    let path = path.as_path();
    match cli.command {
        Command::Init { import: None } => {
            let new = !path.exists();
            let code = entries::init(path)?;
            if new {
                import::offer_import(path)?;
                exec::prepare_engine().await;
            }
            Ok(code)
        }
        Command::Init { import: Some(file) } => import::init_import(path, file.as_deref()),
        Command::Install {
            client,
            file,
            name,
            replace,
            serve_args,
        } => install::install(
            path,
            install::Install {
                client,
                file: file.as_deref(),
                name: &name,
                replace,
                serve_args: &serve_args,
            },
        ),
        add @ Command::Add { .. } => add_server(path, add),
        Command::Remove { name, project } => entries::remove(path, &name, project.as_deref()),
        Command::List { project } => {
            commands::list(path, cli.verbose > 0, project.as_deref()).await
        }
        Command::ListTools {
            servers,
            project,
            json,
        } => {
            let servers = match project {
                Some(p) => project_servers(path, &p)?,
                None => servers,
            };
            commands::list_tools(path, &servers, json, cli.verbose).await
        }
        Command::Call(args) => args.run(path).await,
        Command::ShowConfigPath => seed::show_config_path(path),
        Command::Edit => edit::edit(path),
        Command::Get { name } => seed::get(path, &name),
        Command::Show => seed::show(path),
        Command::Alias { action } => seed::alias(path, &action),
        Command::Auth {
            server,
            logout,
            no_browser,
            tenant,
        } => auth::auth(path, &server, logout, no_browser, tenant.as_deref()).await,
        Command::Pins { action } => pins::pins(path, &action).await,
        Command::Audit { action } => audit::audit(&action),
        Command::Run {
            plugin,
            input,
            policy: Some(policy_file),
            ..
        } => {
            let _ = (plugin, input);
            commands::run_policy(path, &policy_file).await
        }
        Command::Run {
            plugin,
            input,
            limits,
            record,
            replay,
            ..
        } => {
            let plugin = plugin.context("missing PLUGIN")?;
            let sources = replay::Sources { record, replay };
            replay::run(path, &plugin, input, &limits, &sources).await
        }
        Command::Test {
            plugin,
            cases,
            limits,
        } => cases::run_cases(path, &plugin, &cases, &limits).await,
        Command::ReplayServer { recording, server } => replay::serve(&recording, &server).await,
        Command::Serve(args) => args.run(path).await,
        Command::Exec(args) => exec::exec(path, &args).await,
        Command::TenantKey { digest_of_stdin } => tenant_key::tenant_key(digest_of_stdin),
        Command::Search {
            query,
            limit,
            names,
            python,
            server,
        } => {
            use crate::codemode::search::Detail;
            let detail = match (names, python) {
                (true, _) => Detail::Names,
                (_, true) => Detail::Python,
                _ => Detail::TypeScript,
            };
            exec::search(path, &query, limit.max(1), detail, &server).await
        }
        Command::Describe { plugin } => commands::describe(path, &plugin).await,
        Command::Push(args) => args.run().await,
        Command::New(args) => args.run(),
        Command::Componentize { module, output } => {
            let bytes = crate::plugin::componentize::componentize_file(&module, &output)?;
            eprintln!("wrote {} ({bytes} bytes)", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Wit { out } => commands::wit(out.as_deref()),
        Command::Bindings {
            language,
            out_dir,
            wit,
        } => {
            let files = crate::plugin::guest_bindings::generate_bindings(
                language,
                wit.as_deref(),
                &out_dir,
            )?;
            for file in files {
                eprintln!("wrote {}", file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
