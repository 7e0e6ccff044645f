//! `mcp-registry exec FILE|-`: one code-mode snippet against the registry, as `serve
//! --code-mode`'s `execute` runs it, for people trying snippets and for tests.
//!
//! The person at the terminal is the client, and may use the whole registry (as with
//! `call`); `--server` narrows it. Connections open on first use, one per server, and close
//! when the snippet is done.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use super::print_json;
use crate::aggregator::{Aggregator, NamespacedTool};
use crate::client::ConnectHooks;
use crate::codemode::typescript::identifier;
use crate::codemode::{CodeMode, CodeModePolicy, Language, Names, Scope};
use crate::config::Registry;
use crate::plugin::{default_cache_dir, PluginHost, SessionRouter};

/// What `exec` was asked to do.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The snippet (JavaScript or TypeScript, an async function body; Python for a `.py`
    /// file), or `-` for stdin; with --replay, the recorded snippet unless given.
    #[arg(required_unless_present = "replay")]
    pub file: Option<String>,
    /// Run against a recording instead of the registry's servers (`audit extract` of a
    /// code-mode run): every call is answered from it, no server is started.
    #[arg(long, value_name = "RECORDING")]
    pub replay: Option<std::path::PathBuf>,
    /// The snippet's language: typescript (default; JavaScript is part of it), javascript
    /// or python (the default for a `.py` file).
    #[arg(long, value_name = "LANGUAGE", value_parser = parse_language)]
    pub language: Option<Language>,
    /// A server the snippet may use (repeatable; default: every server of the registry).
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,
    /// Deadline of the run, in seconds (default 30).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Let the snippet see the real wall clock (default: frozen at the Unix epoch).
    #[arg(long)]
    pub wall_clock: bool,
    /// Give the snippet real randomness (default: the same sequence every run).
    #[arg(long)]
    pub random: bool,
}

fn parse_language(name: &str) -> Result<Language, String> {
    Language::parse(name).ok_or_else(|| format!("one of {}", Language::NAMES.join(", ")))
}

/// Runs the snippet and prints its record (value or error, console, calls) as JSON.
/// Exit status 1 when the snippet failed.
pub(super) async fn exec(path: &Path, args: &ExecArgs) -> anyhow::Result<ExitCode> {
    let (registry, recorded) = match &args.replay {
        Some(file) => {
            let recording = super::replay::read(file)?;
            let registry = super::replay::registry(file, &recording)?;
            // A code-mode run's input is the engine's: the snippet (as the engine ran it,
            // types stripped) is its `code`.
            let input = recording
                .input
                .as_deref()
                .and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok());
            let code = input.as_ref().and_then(|i| {
                let language = i["language"].as_str().and_then(Language::parse);
                Some((i["code"].as_str()?.to_owned(), language))
            });
            (registry, code)
        }
        None => (Registry::load_or_default(path)?, None),
    };
    let (code, recorded_language) = match (args.file.as_deref(), recorded) {
        (Some("-"), _) => (super::commands::text_or_stdin("-", "the snippet")?, None),
        (Some(file), _) => (
            std::fs::read_to_string(file).with_context(|| format!("reading the snippet {file}"))?,
            None,
        ),
        (None, Some((code, language))) => (code, language),
        (None, None) => bail!("the recording holds no code-mode snippet; give one (FILE or -)"),
    };
    for s in &args.servers {
        if registry.server(s).is_none() {
            bail!("--server {s}: no such server in {}", path.display());
        }
    }
    let servers: Vec<String> = if args.servers.is_empty() {
        registry.servers().keys().cloned().collect()
    } else {
        args.servers.clone()
    };
    let mut policy = CodeModePolicy {
        wall_clock: args.wall_clock,
        random: args.random,
        ..CodeModePolicy::default()
    };
    if let Some(t) = args.timeout {
        if !(t > 0.0 && t.is_finite()) {
            bail!("--timeout must be a positive number of seconds");
        }
        policy.deadline = Duration::from_secs_f64(t);
    }
    let aggregator = super::one_shot(registry);
    let _upstreams = aggregator.shutdown_guard();
    let host = PluginHost::new(aggregator.clone(), default_cache_dir())?;
    let cache = default_cache_dir();
    if cache
        .as_deref()
        .is_some_and(crate::codemode::needs_preparing)
    {
        // Not in silence: the first use compiles the engine (`init` at a terminal does it).
        eprintln!("mcp-registry: preparing code mode for this machine (once; later runs reuse it)");
    }
    let engine = CodeMode::load(&host, cache.as_deref(), policy).await?;
    let session = Arc::new(aggregator.lazy_session_of(&servers, ConnectHooks::default()));
    let router: SessionRouter = {
        let session = session.clone();
        let servers = servers.clone();
        Arc::new(move |server: &str| servers.iter().any(|s| s == server).then(|| session.clone()))
    };
    // The identifiers `search` would show (`tools.everything.get_sum` for `get-sum`), for
    // the servers the snippet mentions: listing them all would start every server.
    let mentioned: Vec<&String> = servers
        .iter()
        .filter(|s| code.contains(&identifier(s)) || code.contains(s.as_str()))
        .collect();
    let listings =
        futures::future::join_all(mentioned.iter().map(|s| session.list_server_tools(s))).await;
    let tools: Vec<NamespacedTool> = listings.into_iter().flatten().flatten().collect();
    let scope = Scope {
        servers,
        ceiling: crate::access::Access::everything(),
        names: Names::new(&tools),
        sessions: Some(router),
        aggregator: Some(aggregator.clone()),
        trace_context: None,
        gate: None,
        cpu: None,
        // On the command line nobody is there to answer a server's questions.
        relay: None,
        log_level: None,
        taint: None,
        added_labels: None,
        principal: None,
        progress: None,
        budget: Default::default(),
    };
    let language =
        args.language
            .or(recorded_language)
            .unwrap_or_else(|| match args.file.as_deref() {
                Some(file) => Language::of_file(file),
                None => Language::default(),
            });
    if engine.needs_compiling(&host, language) {
        eprintln!(
            "mcp-registry: preparing Python code mode for this machine (once; later runs reuse it)"
        );
    }
    let execution = engine.execute(&host, &code, language, scope, None).await;
    print_json(&execution.to_json())?;
    session.close().await;
    Ok(if execution.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `search QUERY [--limit N] [--names | --python] [--server NAME]...`: what code mode's `search` answers,
/// for the registry's servers (a server that cannot be listed is named on stderr).
pub(super) async fn search(
    path: &Path,
    query: &str,
    limit: usize,
    detail: crate::codemode::search::Detail,
    servers: &[String],
) -> anyhow::Result<ExitCode> {
    let aggregator = Aggregator::new(Registry::load(path)?);
    let (tools, failures) = aggregator.list_tools(servers).await?;
    for (server, e) in &failures {
        eprintln!("warning: {server} left out: {e}");
    }
    let (text, _) = crate::codemode::search::answer(query, &tools, limit, detail);
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// At a terminal, after `init`: compiles the code-mode engines (JavaScript and Python) for
/// this machine into the cache now (many seconds, once), so that the first `exec` or `serve
/// --code-mode` answers at once.
pub(super) async fn prepare_engine() {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return;
    }
    let Some(cache) = default_cache_dir() else {
        return;
    };
    let started = std::time::Instant::now();
    let Ok(host) = PluginHost::new(Aggregator::new(Registry::default()), Some(cache.clone()))
    else {
        return;
    };
    println!("preparing code mode for this machine (once; it takes a while on a small machine)...");
    let loaded = match CodeMode::load(&host, Some(&cache), CodeModePolicy::default()).await {
        Ok(engine) => engine.prepare_python(&host).await,
        Err(e) => Err(e),
    };
    match loaded {
        Ok(()) => println!(
            "code mode is ready ({})",
            crate::client::human_duration(started.elapsed())
        ),
        Err(crate::codemode::CodeModeError::NotBuilt) => {}
        Err(e) => println!("code mode is not ready: {e}"),
    }
}
