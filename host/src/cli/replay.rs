//! `run --replay FILE`: a recording (`run --record`) played back. Each recorded server
//! becomes a stdio MCP server of this same binary (`mcp-registry replay-server FILE SERVER`),
//! so the plugin runs through the same host, aggregator and client as it did live, and no
//! real server is started anywhere.
//!
//! A request is answered with a recorded answer to the same tool and arguments, the n-th
//! such request of a connection with the n-th such answer; concurrent calls can come in any
//! order. A request the recording does not have fails, naming what was asked and what was
//! recorded for that tool.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Context;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig as ServerInfoConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServiceExt};
use serde_json::Value;

use crate::config::{Registry, ServerConfig};
use crate::locks::lock;

/// One recorded `tools/call`: the tool, its arguments, and the result or error.
struct RecordedCall {
    tool: String,
    arguments: Value,
    outcome: Result<CallToolResult, String>,
}

/// What a recording holds for one server.
#[derive(Default)]
struct RecordedServer {
    tools: Vec<Tool>,
    calls: Vec<RecordedCall>,
}

/// A recording, read and checked.
pub(super) struct Recording {
    servers: BTreeMap<String, RecordedServer>,
    /// The plugin's input in the recorded run.
    pub(super) input: Option<String>,
}

/// Reads a recording; a bad line is an error naming the file and the line.
pub(super) fn read(path: &Path) -> anyhow::Result<Recording> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the recording {}", path.display()))?;
    let mut recording = Recording {
        servers: BTreeMap::new(),
        input: None,
    };
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{}:{}", path.display(), i + 1);
        let entry: Value =
            serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        let server = entry["server"].as_str().unwrap_or_default().to_owned();
        match entry["kind"].as_str() {
            Some("input") => recording.input = Some(entry["value"].to_string()),
            Some("tools/list") => {
                let tools = serde_json::from_value(entry["tools"].clone())
                    .with_context(|| format!("{}: \"tools\" is not a tool list", at()))?;
                recording.servers.entry(server).or_default().tools = tools;
            }
            Some("tools/call") => {
                let outcome = match entry.get("error").and_then(Value::as_str) {
                    Some(error) => Err(error.to_owned()),
                    None => Ok(serde_json::from_value(entry["result"].clone())
                        .with_context(|| format!("{}: \"result\" is not a tool result", at()))?),
                };
                let call = RecordedCall {
                    tool: entry["tool"].as_str().unwrap_or_default().to_owned(),
                    arguments: entry["arguments"].clone(),
                    outcome,
                };
                recording
                    .servers
                    .entry(server)
                    .or_default()
                    .calls
                    .push(call);
            }
            // The plugin's output, logs: kept for people and diffs, not needed to replay.
            _ => {}
        }
    }
    Ok(recording)
}

/// The registry a replay runs against: every recorded server, played by `replay-server`.
pub(super) fn registry(path: &Path, recording: &Recording) -> anyhow::Result<Registry> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let file = std::path::absolute(path)?.display().to_string();
    Ok(Registry::from_servers(recording.servers.keys().map(
        |name| {
            let args = ["replay-server".to_owned(), file.clone(), name.clone()];
            (
                name.clone(),
                ServerConfig::new(exe.display().to_string(), args),
            )
        },
    )))
}

/// Where `run` takes its servers from and writes its traffic to: `--record`, `--replay`.
pub(super) struct Sources {
    /// `--record FILE`.
    pub(super) record: Option<std::path::PathBuf>,
    /// `--replay FILE`.
    pub(super) replay: Option<std::path::PathBuf>,
}

/// `run PLUGIN [--input JSON] [--record FILE | --replay FILE] [POLICY FLAGS]`: the registry's
/// servers or a recording's; the input given, else the recorded one, else `{}`.
pub(super) async fn run(
    path: &Path,
    plugin: &Path,
    input: Option<String>,
    limits: &super::policy_args::PolicyArgs,
    sources: &Sources,
) -> anyhow::Result<ExitCode> {
    let (registry, recorded_input) = match &sources.replay {
        Some(file) => {
            let recording = read(file)?;
            (registry(file, &recording)?, recording.input)
        }
        None => (Registry::load_or_default(path)?, None),
    };
    if let Some(file) = &sources.record {
        crate::client::recording::record_to(file)
            .with_context(|| format!("cannot record to {}", file.display()))?;
    }
    let input = input.or(recorded_input).unwrap_or_else(|| "{}".into());
    super::commands::run_plugin(path, registry, plugin, &input, limits).await
}

/// One recorded server, answering from the recording.
struct ReplayServer {
    name: String,
    tools: Vec<Tool>,
    /// The recorded calls, each with whether this connection has used it.
    calls: Mutex<Vec<(RecordedCall, bool)>>,
}

impl ServerHandler for ReplayServer {
    fn get_info(&self) -> ServerInfoConfig {
        ServerInfoConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let mut calls = lock(&self.calls);
        let unused = calls
            .iter_mut()
            .find(|(c, used)| !used && c.tool == request.name && c.arguments == arguments);
        if let Some((call, used)) = unused {
            *used = true;
            return match &call.outcome {
                Ok(result) => Ok(CallToolResponse::Complete(result.clone())),
                Err(error) => Err(ErrorData::internal_error(error.clone(), None)),
            };
        }
        let recorded: Vec<String> = calls
            .iter()
            .filter(|(c, _)| c.tool == request.name)
            .map(|(c, used)| format!("{}{}", c.arguments, if *used { " (used)" } else { "" }))
            .collect();
        let asked = format!("{}__{} {arguments}", self.name, request.name);
        let message = if recorded.is_empty() {
            format!("not in the recording: {asked}; the recording has no call of this tool")
        } else {
            format!(
                "not in the recording: {asked}; recorded calls of this tool: {}",
                recorded.join(", ")
            )
        };
        Err(ErrorData::internal_error(message, None))
    }
}

/// `replay-server FILE SERVER`: one recorded server on stdio, until stdin closes.
pub(super) async fn serve(path: &Path, server: &str) -> anyhow::Result<ExitCode> {
    let mut recording = read(path)?;
    let recorded = recording.servers.remove(server).with_context(|| {
        format!(
            "{}: no server \"{server}\" in the recording",
            path.display()
        )
    })?;
    // A run that never listed this server's tools still lists the ones it called, so a call
    // the recording lacks reads as that (not as an unknown tool).
    let tools = if recorded.tools.is_empty() {
        let mut names: Vec<&str> = recorded.calls.iter().map(|c| c.tool.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let open_schema = std::sync::Arc::new(
            serde_json::json!({"type": "object"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        names
            .into_iter()
            .map(|n| Tool::new(n.to_owned(), "recorded", open_schema.clone()))
            .collect()
    } else {
        recorded.tools
    };
    let replay = ReplayServer {
        name: server.to_owned(),
        tools,
        calls: Mutex::new(recorded.calls.into_iter().map(|c| (c, false)).collect()),
    };
    let service = replay.serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(ExitCode::SUCCESS)
}
