//! Write mcp-registry orchestration plugins in Rust.
//!
//! A plugin is a Wasm component (`wasm32-wasip2`) implementing the `orchestrator` world of
//! `wit/orchestrator.wit`. This crate wraps the generated bindings in an idiomatic API:
//! [`Session`] closes its connections on `Drop` (the WIT resource *is* the context manager),
//! values are [`serde_json::Value`]s, errors are one [`Error`] enum, and [`join_all`] waits
//! for many concurrent calls at once.
//!
//! ```ignore
//! use mcp_registry_guest::{export_plugin, json, Plugin, Session, Value};
//!
//! struct FanOut;
//!
//! impl Plugin for FanOut {
//!     fn describe() -> Value {
//!         json!({"name": "fan-out", "description": "calls two servers", "inputSchema": {"type": "object"}})
//!     }
//!     fn run(_input: Value) -> Result<Value, String> {
//!         let session = Session::open(&["alpha", "beta"]).map_err(|e| e.to_string())?;
//!         let calls = vec![
//!             session.start("alpha__echo", &json!({"message": "a"})).map_err(|e| e.to_string())?,
//!             session.start("beta__echo", &json!({"message": "b"})).map_err(|e| e.to_string())?,
//!         ];
//!         let texts: Vec<String> = mcp_registry_guest::join_all(calls)
//!             .into_iter()
//!             .map(|r| r.map(|r| r.text()).unwrap_or_else(|e| e.to_string()))
//!             .collect();
//!         Ok(json!({"texts": texts}))
//!         // `session` is dropped here: both server processes are closed.
//!     }
//! }
//!
//! export_plugin!(FanOut);
//! ```

use std::fmt;

pub use serde_json::{self, json, Value};

/// The raw wit-bindgen bindings of the `orchestrator` world.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "orchestrator",
        pub_export_macro: true,
        export_macro_name: "export_orchestrator",
        default_bindings_module: "mcp_registry_guest::bindings",
        generate_all,
    });
}

use bindings::mcp_registry::plugin::{log as wit_log, registry, types};

/// Why a request failed; mirrors the WIT `error` variant, plus local JSON errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No such server or tool.
    NotFound(String),
    /// The plugin's policy forbids it.
    Denied(String),
    /// Bad arguments or name.
    InvalidInput(String),
    /// The server could not start, crashed, or failed.
    ServerFailed(String),
    /// The server did not answer in time.
    Timeout(String),
    /// A policy limit was reached.
    LimitExceeded(String),
    /// The host sent JSON this SDK could not parse (a host bug).
    Json(String),
}

impl Error {
    /// The variant's name, as in the WIT (`not-found`, `denied`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not-found",
            Error::Denied(_) => "denied",
            Error::InvalidInput(_) => "invalid-input",
            Error::ServerFailed(_) => "server-failed",
            Error::Timeout(_) => "timeout",
            Error::LimitExceeded(_) => "limit-exceeded",
            Error::Json(_) => "json",
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Error::NotFound(m)
            | Error::Denied(m)
            | Error::InvalidInput(m)
            | Error::ServerFailed(m)
            | Error::Timeout(m)
            | Error::LimitExceeded(m)
            | Error::Json(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for Error {}

impl From<types::Error> for Error {
    fn from(e: types::Error) -> Self {
        match e {
            types::Error::NotFound(m) => Error::NotFound(m),
            types::Error::Denied(m) => Error::Denied(m),
            types::Error::InvalidInput(m) => Error::InvalidInput(m),
            types::Error::ServerFailed(m) => Error::ServerFailed(m),
            types::Error::Timeout(m) => Error::Timeout(m),
            types::Error::LimitExceeded(m) => Error::LimitExceeded(m),
        }
    }
}

/// A tool's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// The MCP `content` array.
    pub content: Value,
    /// The MCP `structuredContent`, if any.
    pub structured: Option<Value>,
    /// Whether the tool reported an error (its own content explains it).
    pub is_error: bool,
}

impl CallResult {
    /// The text of every text content block, joined by newlines.
    pub fn text(&self) -> String {
        self.content
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}

impl TryFrom<types::CallResult> for CallResult {
    type Error = Error;
    fn try_from(r: types::CallResult) -> Result<Self, Error> {
        let content = serde_json::from_str(&r.content).map_err(|e| Error::Json(e.to_string()))?;
        let structured = match r.structured_content {
            Some(s) => Some(serde_json::from_str(&s).map_err(|e| Error::Json(e.to_string()))?),
            None => None,
        };
        Ok(Self {
            content,
            structured,
            is_error: r.is_error,
        })
    }
}

/// A tool as listed by the host (`server__tool`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Namespaced name.
    pub name: String,
    /// Description (with the server name).
    pub description: Option<String>,
    /// Input JSON schema.
    pub input_schema: Value,
}

fn tools(list: Vec<types::Tool>) -> Result<Vec<Tool>, Error> {
    list.into_iter()
        .map(|t| {
            Ok(Tool {
                input_schema: serde_json::from_str(&t.input_schema)
                    .map_err(|e| Error::Json(e.to_string()))?,
                name: t.name,
                description: t.description,
            })
        })
        .collect()
}

fn call_result(r: Result<types::CallResult, types::Error>) -> Result<CallResult, Error> {
    CallResult::try_from(r?)
}

/// The servers this plugin may use.
pub fn servers() -> Vec<String> {
    registry::servers()
}

/// Temporary mode: lists tools of `servers` (all allowed servers if empty).
pub fn list_tools(servers: &[&str]) -> Result<Vec<Tool>, Error> {
    let servers: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
    tools(registry::list_tools(&servers)?)
}

/// Temporary mode: one call, one server process started and stopped for it.
pub fn call(name: &str, arguments: &Value) -> Result<CallResult, Error> {
    call_result(registry::call_tool(name, &arguments.to_string()))
}

/// Like [`call`] with arguments as raw JSON text (passed to the host unchecked).
pub fn call_raw(name: &str, arguments: &str) -> Result<CallResult, Error> {
    call_result(registry::call_tool(name, arguments))
}

/// Persistent connections to a set of servers; closed when dropped.
pub struct Session {
    inner: registry::Session,
}

impl Session {
    /// Connects to every server in `servers` (concurrently, on the host) before returning.
    pub fn open(servers: &[&str]) -> Result<Session, Error> {
        let servers: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
        Ok(Session {
            inner: registry::Session::open(&servers)?,
        })
    }

    /// The tools of the session's servers.
    pub fn list_tools(&self) -> Result<Vec<Tool>, Error> {
        tools(self.inner.list_tools()?)
    }

    /// Calls a tool and waits for the answer.
    pub fn call(&self, name: &str, arguments: &Value) -> Result<CallResult, Error> {
        call_result(self.inner.call_tool(name, &arguments.to_string()))
    }

    /// Like [`Session::call`] with arguments as raw JSON text (passed to the host unchecked).
    pub fn call_raw(&self, name: &str, arguments: &str) -> Result<CallResult, Error> {
        call_result(self.inner.call_tool(name, arguments))
    }

    /// Starts a call and returns at once; the host runs it concurrently with others.
    pub fn start(&self, name: &str, arguments: &Value) -> Result<PendingCall, Error> {
        Ok(PendingCall {
            inner: self.inner.start_call(name, &arguments.to_string())?,
        })
    }

    /// Closes the session now (the same as dropping it).
    pub fn close(self) {}
}

/// A call in flight. Dropping it before it finished cancels the call.
pub struct PendingCall {
    inner: registry::FutureCallResult,
}

impl PendingCall {
    /// Blocks until the call finishes and returns its outcome.
    pub fn wait(self) -> Result<CallResult, Error> {
        loop {
            if let Some(r) = self.inner.get() {
                return call_result(r);
            }
            self.inner.subscribe().block();
        }
    }

    /// The outcome if the call has finished, without blocking.
    pub fn try_get(&self) -> Option<Result<CallResult, Error>> {
        self.inner.get().map(call_result)
    }
}

/// Waits for all calls (concurrently: the host runs them in parallel) and returns their
/// outcomes in order.
pub fn join_all(calls: Vec<PendingCall>) -> Vec<Result<CallResult, Error>> {
    let mut outcomes: Vec<Option<Result<CallResult, Error>>> = calls.iter().map(|_| None).collect();
    loop {
        let mut waiting = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            if outcomes[i].is_none() {
                match call.try_get() {
                    Some(r) => outcomes[i] = Some(r),
                    None => waiting.push(i),
                }
            }
        }
        if waiting.is_empty() {
            break;
        }
        let pollables: Vec<_> = waiting
            .iter()
            .map(|&i| calls[i].inner.subscribe())
            .collect();
        let refs: Vec<&bindings::wasi::io::poll::Pollable> = pollables.iter().collect();
        bindings::wasi::io::poll::poll(&refs);
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(Error::Json("lost outcome".into()))))
        .collect()
}

/// Log levels of the host log.
pub use wit_log::Level;

/// Writes to the host's log, tagged with this plugin's name.
pub fn log(level: Level, message: &str) {
    wit_log::log(level, message);
}

/// Reports how far the run is: `progress` must grow from one report to the next, `total` if
/// known. Under `mcp-registry serve` it reaches the client as the `tools/call`'s
/// `notifications/progress` (when the client asked for progress); elsewhere the host logs it.
/// Needs a host of plugin API 0.1.1 or later.
pub fn report_progress(progress: f64, total: Option<f64>, message: Option<&str>) {
    bindings::mcp_registry::plugin::progress::report(progress, total, message);
}

/// What a plugin says about itself: the value its `describe` returns. The host grants a
/// plugin no server until it is told to; `requires` says what this one needs, which
/// `mcp-registry run --allow-requested` grants (and `run`/`serve` print).
///
/// ```ignore
/// Description::new("fanout", "Call several servers at once")
///     .input_schema(json!({"type": "object"}))
///     .requires_servers(&["alpha", "beta"])
///     .requires_tools(&["*__counter"])
///     .into()
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    name: String,
    description: String,
    input_schema: Value,
    servers: Vec<String>,
    tools: Vec<String>,
}

impl Description {
    /// A plugin called `name` that does what `description` says, with an object input.
    pub fn new(name: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            input_schema: json!({"type": "object"}),
            servers: Vec::new(),
            tools: Vec::new(),
        }
    }

    /// The JSON schema of the input.
    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = schema;
        self
    }

    /// Servers the plugin needs.
    pub fn requires_servers(mut self, servers: &[&str]) -> Self {
        self.servers = servers.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Globs over `server__tool` the plugin calls (without: any tool of its servers).
    pub fn requires_tools(mut self, tools: &[&str]) -> Self {
        self.tools = tools.iter().map(|s| s.to_string()).collect();
        self
    }
}

impl From<Description> for Value {
    fn from(d: Description) -> Value {
        let mut v = json!({
            "name": d.name,
            "description": d.description,
            "inputSchema": d.input_schema,
        });
        if !d.servers.is_empty() || !d.tools.is_empty() {
            v["requires"] = json!({"servers": d.servers, "tools": d.tools});
        }
        v
    }
}

/// What a plugin implements; export it with [`export_plugin!`].
pub trait Plugin {
    /// `{"name": ..., "description": ..., "inputSchema": {...}, "requires": {...}}`; build
    /// it with [`Description`].
    fn describe() -> Value;
    /// JSON in, JSON out.
    fn run(input: Value) -> Result<Value, String>;
}

#[doc(hidden)]
pub fn __run<P: Plugin>(input: String) -> Result<String, String> {
    let input = if input.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&input).map_err(|e| format!("input is not valid JSON: {e}"))?
    };
    P::run(input).map(|v| v.to_string())
}

/// Exports a [`Plugin`] implementation as the component's `describe` and `run`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        struct __McpRegistryPluginExport;
        impl $crate::bindings::Guest for __McpRegistryPluginExport {
            fn describe() -> String {
                <$plugin as $crate::Plugin>::describe().to_string()
            }
            fn run(input: String) -> Result<String, String> {
                $crate::__run::<$plugin>(input)
            }
        }
        $crate::bindings::export_orchestrator!(__McpRegistryPluginExport with_types_in $crate::bindings);
    };
}
