//! One function per subcommand: parse what is left, call the library, print.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::policy_args::PolicyArgs;
use super::{one_shot, print_json};
use crate::aggregator::{parse_arguments, Aggregator};
use crate::client::{ConnectionState, ServerConnection};
use crate::config::Registry;
use crate::oci::{ComponentSource, TrustedKey};
use crate::plugin::{
    default_cache_dir, grant_report, load_policy_file, Plugin, PluginError, PluginHost,
    PluginPolicy, PluginSpec, Requires,
};
use crate::serve::ServeOptions;

/// Reads `text`, or all of stdin when it is `-`.
pub(super) fn text_or_stdin(text: &str, what: &str) -> anyhow::Result<String> {
    if text != "-" {
        return Ok(text.to_owned());
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .with_context(|| format!("reading {what} from stdin"))?;
    Ok(s)
}

/// `list`; with `-v`, each server's state after connecting to it.
pub(super) async fn list(
    path: &Path,
    verbose: bool,
    project: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let registry = Registry::load_or_default(path)?;
    let members = match project {
        Some(p) => Some(
            registry
                .project(p)
                .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?,
        ),
        None => None,
    };
    if registry.servers().is_empty() && registry.disabled().is_empty() {
        println!("no servers in {}", path.display());
    }
    let shown = registry
        .servers()
        .iter()
        .filter(|(name, _)| members.as_ref().is_none_or(|m| m.contains(name)));
    for (name, server) in shown {
        let mut line = format!("{name}: {}", server.target());
        if let Some(d) = &server.description {
            line.push_str(&format!("  # {d}"));
        }
        if verbose {
            line.push_str(&format!("\n    {}", status(name, server).await));
        }
        println!("{line}");
    }
    for name in registry.disabled() {
        if members.is_none() {
            println!("{name}: (disabled)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(name: &str, server: &crate::config::ServerConfig) -> String {
    match ServerConnection::connect(name, server).await {
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
    }
}

/// `list-tools [SERVER...] [--json]`.
pub(super) async fn list_tools(
    path: &Path,
    servers: &[String],
    as_json: bool,
    detail: u8,
) -> anyhow::Result<ExitCode> {
    let aggregator = Aggregator::new(Registry::load(path)?);
    let _upstreams = aggregator.shutdown_guard();
    let (tools, failures) = aggregator.list_tools(servers).await?;
    if as_json {
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
        print_json(&list)?;
    } else {
        for t in &tools {
            println!("{}\t{}", t.name, t.description());
            let schema = t.input_schema();
            match detail {
                0 => {}
                1 => {
                    let required = super::prompt::required(&schema);
                    for (name, p) in schema["properties"].as_object().into_iter().flatten() {
                        let kind = p["type"].as_str().unwrap_or("any");
                        let req = if required.contains(&name.as_str()) {
                            ", required"
                        } else {
                            ""
                        };
                        let desc = p["description"].as_str().unwrap_or("");
                        println!("{}", format!("    {name} ({kind}{req}) {desc}").trim_end());
                    }
                }
                _ => {
                    let pretty = serde_json::to_string_pretty(&schema).unwrap_or_default();
                    for line in pretty.lines() {
                        println!("    {line}");
                    }
                }
            }
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

/// `call SERVER__TOOL [JSON | -]`: one temporary call; the result first, the server's
/// shutdown after it.
pub(super) async fn call(
    path: &Path,
    tool: &str,
    arguments: Option<&str>,
    timeout: Option<std::time::Duration>,
) -> anyhow::Result<ExitCode> {
    let registry = Registry::load(path)?;
    // An alias stands for its tool here too.
    let tool = registry
        .aliases()
        .get(tool)
        .cloned()
        .unwrap_or_else(|| tool.to_owned());
    let aggregator = Aggregator::new(registry);
    let _upstreams = aggregator.shutdown_guard();
    let options = crate::client::CallOptions {
        timeout,
        ..Default::default()
    };
    // No arguments given, at a terminal: ask for each (one connection lists, then calls).
    let interactive = arguments.is_none() && std::io::stdin().is_terminal();
    let result = if interactive {
        call_asking(&aggregator, &tool, options).await
    } else {
        let text = text_or_stdin(arguments.unwrap_or(""), "arguments")?;
        let arguments = parse_arguments(&text)?;
        aggregator
            .call_tool_with(tool.as_str(), arguments, options)
            .await
            .map_err(anyhow::Error::from)
    };
    // `resultType` is the 2026-07-28 era's wire discriminator, not part of the result: the
    // output is the same whichever era the server speaks.
    let result = result.map(|mut r| {
        r.result_type = None;
        r
    });
    let printed = match &result {
        Ok(r) => print_json(r),
        Err(_) => Ok(()),
    };
    let result = result?;
    printed?;
    Ok(if result.is_error == Some(true) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Lists `tool`'s server, asks for each argument of its input schema, then calls it on the
/// same connection.
async fn call_asking(
    aggregator: &Aggregator,
    tool: &str,
    options: crate::client::CallOptions,
) -> anyhow::Result<rmcp::model::CallToolResult> {
    let name = crate::names::ToolName::parse(tool).map_err(|e| anyhow::anyhow!("{tool}: {e}"))?;
    let session = aggregator.session(&[name.server()]).await?;
    let asked = async {
        let tools = session.list_server_tools(name.server()).await?;
        let Some(found) = tools.iter().find(|t| t.name == tool) else {
            bail!(
                "server \"{}\" has no tool \"{}\"",
                name.server(),
                name.tool()
            );
        };
        let arguments = super::prompt::arguments(tool, &found.input_schema())?;
        Ok(session
            .call_tool_with(&name, Some(arguments), options)
            .await?)
    }
    .await;
    session.close().await;
    asked
}

/// `run PLUGIN.wasm [--input JSON|-] [POLICY FLAGS]`: the output first, the servers'
/// shutdown after it.
pub(super) async fn run_plugin(
    path: &Path,
    registry: Registry,
    plugin: &Path,
    input: &str,
    limits: &PolicyArgs,
) -> anyhow::Result<ExitCode> {
    use crate::client::recording;
    let host = PluginHost::new(one_shot(registry.clone()), default_cache_dir())?;
    let _upstreams = host.aggregator().shutdown_guard();
    let input = text_or_stdin(input, "input")?;
    let value = serde_json::from_str::<Value>(&input).context("--input is not valid JSON")?;
    recording::note(serde_json::json!({"kind": "input", "value": value}));
    let mut policy = limits.to_policy(&registry, path)?;
    let plugin = load_plugin(&host, plugin, &limits.trusted_keys()?).await?;
    let requires = host.describe(&plugin).await?.requires;
    // Nothing granted, someone at the terminal: ask once.
    let asked = !limits.allow_requested
        && !limits.grants_anything()
        && !requires.is_empty()
        && interactive();
    if limits.allow_requested || (asked && ask(plugin.name(), &requires)?) {
        grant_requested(&requires, &registry, path, &mut policy);
    }
    eprintln!("{}", grant_report(plugin.name(), &requires, &policy));
    let outcome = host.run(&plugin, &input, &policy).await;
    if let Ok(output) = &outcome {
        let value = serde_json::from_str::<Value>(output).ok();
        let recorded = value.clone().unwrap_or_else(|| output.as_str().into());
        recording::note(serde_json::json!({"kind": "output", "value": recorded}));
        match value {
            Some(v) => print_json(&v)?,
            None => println!("{output}"),
        }
    }
    match outcome {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(PluginError::Failed { name, message }) => {
            eprintln!("plugin {name} failed: {message}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// `run --policy FILE`: every plugin of a policy file, side by side, each as its own tenant.
pub(super) async fn run_policy(path: &Path, policy_file: &Path) -> anyhow::Result<ExitCode> {
    let registry = Registry::load_or_default(path)?;
    let host = PluginHost::new(one_shot(registry.clone()), default_cache_dir())?;
    let _upstreams = host.aggregator().shutdown_guard();
    let specs = load_policy_file(policy_file)?;
    for spec in &specs {
        for s in &spec.policy.allowed_servers {
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
        let plugin = host
            .load_source(&spec.name, &spec.component, &spec.signed_by)
            .await?;
        let requires = host.describe(&plugin).await?.requires;
        eprintln!("{}", grant_report(&spec.name, &requires, &spec.policy));
        runs.push((plugin, spec.input.to_string(), spec.policy.clone()));
    }
    let results = host.run_many(&runs).await;
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
    print_json(&Value::Object(report))?;
    Ok(code)
}

/// How `serve` faces its clients.
pub(super) struct Front {
    pub(super) http: Option<std::net::SocketAddr>,
    pub(super) public_url: Option<String>,
    pub(super) tenants: Option<PathBuf>,
    pub(super) insecure_no_auth: bool,
    pub(super) max_processes: usize,
    pub(super) idle_timeout: std::time::Duration,
    pub(super) list_wait: std::time::Duration,
    pub(super) code_mode: Option<crate::serve::CodeModeTools>,
    pub(super) drain_timeout: std::time::Duration,
    pub(super) metrics: Option<std::net::SocketAddr>,
    /// `-a ALIAS=SERVER__TOOL`.
    pub(super) aliases: Vec<(String, String)>,
    /// `-p PROJECT`.
    pub(super) project: Option<String>,
}

/// `serve [SERVER...] [--filter SPEC] [--plugins FILE | --plugin PATH... [--allow-requested]]
/// [--http ADDR [--tenants FILE]]`.
pub(super) async fn serve(
    path: &Path,
    servers: Vec<String>,
    filter: Option<String>,
    policy_file: Option<&Path>,
    plugin_files: &[PathBuf],
    allow_requested: bool,
    front: Front,
) -> anyhow::Result<ExitCode> {
    let mut registry = Registry::load(path)?;
    for (alias, target) in &front.aliases {
        registry
            .set_alias(alias, target)
            .map_err(|m| anyhow::anyhow!("--alias {alias}={target}: {m}"))?;
    }
    let mut plugins = match policy_file {
        Some(file) => load_policy_file(file)?,
        None => Vec::new(),
    };
    for p in plugin_files {
        let component = ComponentSource::from_arg(p)?;
        plugins.push(PluginSpec {
            name: component.default_name(),
            origin: format!("--plugin {}", p.display()),
            component,
            signed_by: Vec::new(),
            input: Value::Object(Default::default()),
            policy: PluginPolicy::default(),
        });
    }
    let tenants = front
        .tenants
        .as_deref()
        .map(crate::config::tenants::TenantsConfig::load)
        .transpose()?;
    let options = ServeOptions {
        servers,
        project: front.project.clone(),
        filter,
        plugins,
        allow_requested,
        http: front.http,
        public_url: front
            .public_url
            .as_deref()
            .map(crate::serve::PublicUrl::parse)
            .transpose()?,
        tenants,
        insecure_no_auth: front.insecure_no_auth,
        max_processes: front.max_processes,
        idle_timeout: front.idle_timeout,
        list_wait: front.list_wait,
        code_mode: front.code_mode,
        drain_timeout: front.drain_timeout,
        metrics: front.metrics,
        reload: Some(crate::serve::ReloadSources {
            registry: path.to_path_buf(),
            tenants: front.tenants.clone(),
            aliases: front.aliases.clone(),
        }),
    };
    crate::serve::serve(Aggregator::new(registry), options).await?;
    Ok(ExitCode::SUCCESS)
}

/// `describe PLUGIN.wasm`: what the plugin says about itself, as JSON.
pub(super) async fn describe(path: &Path, plugin: &Path) -> anyhow::Result<ExitCode> {
    let registry = Registry::load_or_default(path)?;
    let host = PluginHost::new(Aggregator::new(registry), default_cache_dir())?;
    let plugin = load_plugin(&host, plugin, &[]).await?;
    let description = host.describe(&plugin).await?;
    print_json(&description.raw)?;
    Ok(ExitCode::SUCCESS)
}

/// Loads the plugin a command names: a `.wasm` path or an `oci://` reference (pulled and
/// verified against its digest, and against `signed_by` when that is not empty).
pub(super) async fn load_plugin(
    host: &PluginHost,
    arg: &Path,
    signed_by: &[TrustedKey],
) -> Result<Plugin, PluginError> {
    let source = ComponentSource::from_arg(arg)?;
    host.load_source(&source.default_name(), &source, signed_by)
        .await
}

/// Grants what a plugin requests, as far as the registry has it; says what it lacks.
pub(super) fn grant_requested(
    requires: &Requires,
    registry: &Registry,
    path: &Path,
    policy: &mut PluginPolicy,
) {
    let explicit = std::mem::take(&mut policy.allowed_servers);
    let explicit_tools = policy.allowed_tools.take();
    for missing in requires.grant(registry, policy) {
        eprintln!(
            "warning: the plugin requests server \"{missing}\", which is not in {}; not granted",
            path.display()
        );
    }
    for s in explicit {
        if !policy.allowed_servers.contains(&s) {
            policy.allowed_servers.push(s);
        }
    }
    // An explicit --allow-tool is never widened by the request.
    policy.allowed_tools = match (explicit_tools, policy.allowed_tools.take()) {
        (Some(mut explicit), Some(requested)) => {
            explicit.extend(requested);
            Some(explicit)
        }
        (Some(explicit), None) => Some(explicit),
        (None, requested) => requested,
    };
}

/// Whether a person is at the terminal to answer a question.
fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks once whether to grant what the plugin requests (default: no).
fn ask(plugin: &str, requires: &Requires) -> anyhow::Result<bool> {
    use std::io::{BufRead, Write};
    let mut err = std::io::stderr().lock();
    write!(
        err,
        "plugin {plugin} requests {}. Nothing is granted yet. Grant this? [y/N] ",
        requires.summary()
    )?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// `wit [--out FILE]`: the plugin contract as text (every file, with its path), or as a
/// binary WIT package.
pub(super) fn wit(out: Option<&Path>) -> anyhow::Result<ExitCode> {
    use crate::plugin::componentize::{wit_package, wit_version, WIT_FILES};
    match out {
        Some(path) => {
            let package = wit_package()?;
            std::fs::write(path, &package)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote {} (mcp-registry:plugin@{}, {} bytes)",
                path.display(),
                wit_version(),
                package.len()
            );
        }
        None => {
            for (path, text) in WIT_FILES {
                println!("// {path}\n{text}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
