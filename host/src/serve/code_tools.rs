//! `serve --code-mode`: the `search` and `execute` tools, scoped to the asking tenant.
//!
//! `search` ranks the tools the tenant may call and shows them as TypeScript declarations
//! (or names); `execute` runs a snippet in a fresh engine instance whose calls go through
//! this client session's pools: the same connections as the tenant's plain calls, so a call
//! inside a snippet costs what a plain call costs. The identifiers a snippet uses are
//! computed from the tenant's whole tool list (not the query), so they are the same in
//! every `search` answer and in every `execute`.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock, Tool};
use rmcp::ErrorData;
use serde_json::{json, Map, Value};

use super::request::RequestScope;
use crate::codemode::search::{self, DEFAULT_LIMIT};
use crate::codemode::{Language, Names, Scope};
use crate::names::ToolName;

/// Name of the tool that finds tools.
pub(super) const SEARCH: &str = "search";
/// Name of the tool that runs a snippet.
pub(super) const EXECUTE: &str = "execute";
/// The longest query `search` ranks by: a few words say what a tool should do, and ranking
/// costs the host time for every word of the query against every tool.
const MAX_QUERY_BYTES: usize = 1024;

fn schema(value: Value) -> Arc<Map<String, Value>> {
    Arc::new(value.as_object().cloned().unwrap_or_default())
}

/// The two tools as our client lists them.
pub(super) fn tools() -> [Tool; 2] {
    [
        Tool::new(
            SEARCH,
            "Find the tools for a task. Returns TypeScript declarations (detail \"types\", the \
             default; Python stubs with language \"python\") or just names (detail \"names\") \
             of the best matches; call them from `execute` as \
             `await tools.<server>.<tool>(args)`.",
            schema(json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What the tools should do, in words."},
                    "detail": {"type": "string", "enum": ["names", "types"], "default": "types"},
                    "language": {"type": "string", "enum": Language::NAMES, "default": "typescript"},
                    "limit": {"type": "integer", "minimum": 1, "default": DEFAULT_LIMIT}
                },
                "required": ["query"]
            })),
        ),
        Tool::new(
            EXECUTE,
            "Run JavaScript (TypeScript syntax accepted): the body of an async function, with \
             `await tools.<server>.<tool>(args)` for the tools `search` shows. `return` a \
             value; it comes back as structuredContent with console output and every call \
             made. A failed call throws a ToolError with `kind` (not-found, denied, invalid, \
             timeout, server-failed, tool-error, limit) and `message`. Filter big results \
             in the snippet and return only what is needed. No files, network, or real clock. \
             With language \"python\": a Python module (a subset of Python 3: no classes \
             inheriting, no imports beyond asyncio, json, re, math and the like) whose last \
             expression is the answer; `await tools.<server>.<tool>(**args)`, \
             `asyncio.gather` for calls at once, `print` for the console; a failed call \
             raises ToolError, its message \"<kind>: <message>\".",
            schema(json!({
                "type": "object",
                "properties": {
                    "code": {"type": "string", "description": "An async function body (JavaScript, TypeScript) or a module (Python)."},
                    "language": {"type": "string", "enum": Language::NAMES, "default": "typescript"},
                    "timeout_ms": {"type": "integer", "minimum": 1, "description": "At most the server's deadline."}
                },
                "required": ["code"]
            })),
        ),
    ]
}

fn invalid(message: impl Into<String>) -> ErrorData {
    ErrorData::invalid_params(message.into(), None)
}

impl RequestScope {
    /// `search {query, detail?, language?, limit?}`.
    pub(super) async fn code_search(
        &self,
        arguments: Map<String, Value>,
    ) -> Result<CallToolResult, ErrorData> {
        let query = arguments
            .get("query")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("search: \"query\" (a string) is required"))?;
        if query.len() > MAX_QUERY_BYTES {
            return Err(invalid(format!(
                "search: \"query\" is {} bytes; at most {MAX_QUERY_BYTES}: say what the tools should do in a few words",
                query.len()
            )));
        }
        let limit = match arguments.get("limit") {
            None | Some(Value::Null) => DEFAULT_LIMIT,
            Some(v) => v
                .as_u64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| invalid("search: \"limit\" must be a positive integer"))?
                as usize,
        };
        let detail = arguments
            .get("detail")
            .and_then(Value::as_str)
            .unwrap_or("types");
        if detail != "types" && detail != "names" {
            return Err(invalid("search: \"detail\" must be \"names\" or \"types\""));
        }
        let detail = match (detail, arguments.get("language").and_then(Value::as_str)) {
            ("names", _) => search::Detail::Names,
            (_, None) => search::Detail::TypeScript,
            (_, Some(name)) => match Language::parse(name) {
                Some(Language::Python) => search::Detail::Python,
                Some(_) => search::Detail::TypeScript,
                None => {
                    return Err(invalid(format!(
                        "search: \"language\" must be one of {}",
                        Language::NAMES.join(", ")
                    )))
                }
            },
        };
        let gathered = self.callable_tools().await;
        let (text, mut structured) = search::answer(query, &gathered.items, limit, detail);
        let mut content = vec![ContentBlock::text(text)];
        // A model that is not told a server is missing takes its tools for absent for good.
        if !gathered.missing.is_empty() {
            let servers: Vec<String> = gathered
                .missing
                .iter()
                .map(|(server, why)| format!("{server} ({why})"))
                .collect();
            content.push(ContentBlock::text(format!(
                "Not searched, not available yet: {}. Search again later for their tools.",
                servers.join("; ")
            )));
            structured["unavailable"] = serde_json::to_value(&gathered.missing).unwrap_or_default();
        }
        // Tools flow control would refuse in this context now: a model that knows does not
        // write a snippet around them.
        let refused: Vec<String> = structured["tools"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .filter_map(|tool| {
                let name = ToolName::parse(tool["name"].as_str()?).ok()?;
                let labels = self.labels_of(&name);
                let rule = crate::locks::lock(&self.taint).check(&name, labels).err()?;
                tool["refused_now"] = Value::String(rule);
                Some(name.to_string())
            })
            .collect();
        if !refused.is_empty() {
            content.push(ContentBlock::text(format!(
                "Refused in this context now (flow control: it has read private data and \
                 untrusted content, and these send data out): {}.",
                refused.join(", ")
            )));
        }
        let mut result = CallToolResult::success(content);
        result.structured_content = Some(structured);
        result.meta = gathered.meta();
        Ok(result)
    }

    /// `execute {code, language?, timeout_ms?}`.
    pub(super) async fn code_execute(
        self: &Arc<Self>,
        arguments: Map<String, Value>,
    ) -> Result<CallToolResult, ErrorData> {
        let (Some(loading), Some(host)) = (&self.shared.code_mode, &self.shared.host) else {
            return Err(invalid("code mode is off"));
        };
        let code_mode = loading
            .engine()
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        let code = arguments
            .get("code")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("execute: \"code\" (a string) is required"))?;
        let language = match arguments.get("language") {
            None | Some(Value::Null) => Language::default(),
            Some(v) => v.as_str().and_then(Language::parse).ok_or_else(|| {
                invalid(format!(
                    "execute: \"language\" must be one of {}",
                    Language::NAMES.join(", ")
                ))
            })?,
        };
        let timeout = match arguments.get("timeout_ms") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Duration::from_millis(
                v.as_u64()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| invalid("execute: \"timeout_ms\" must be a positive integer"))?,
            )),
        };
        let tools = self.callable_tools().await.items;
        let tenant = &self.tenant;
        // Only what this client can list is callable: the tenant's grants, and `--filter`.
        let (progress, progress_relay) = self.progress_relay().unzip();
        let scope = Scope {
            progress,
            budget: tenant.code_budget(),
            servers: tenant.servers().to_vec(),
            ceiling: self.access(),
            taint: Some(self.taint.clone()),
            added_labels: Some(self.tenant.labels().clone()),
            names: Names::new(&tools),
            sessions: Some(self.router()),
            aggregator: Some(tenant.aggregator.clone()),
            trace_context: self.trace.clone(),
            gate: Some(self.call_gate()),
            cpu: Some(self.tenant.cpu.clone()),
            relay: Some(Arc::new(self.relay())),
            log_level: self.log_level,
            principal: Some(tenant.name.to_string()),
        };
        let execution = code_mode
            .execute(host, code, language, scope, timeout)
            .await;
        if let Some(relay) = progress_relay {
            relay.finish().await;
        }
        self.shared
            .ops
            .run(&tenant.name, "code-mode", execution.outcome, execution.fuel);
        let record = execution.to_json();
        let mut result = CallToolResult::success(vec![ContentBlock::text(record.to_string())]);
        result.structured_content = Some(record);
        result.is_error = Some(!execution.succeeded());
        Ok(result)
    }
}
