//! Code mode: the model writes the orchestration, and it runs as a sandboxed guest.
//!
//! Instead of every tool, a client sees two: `search` (which tools fit a query, as
//! TypeScript declarations) and `execute` (run a snippet that calls them). A snippet is the
//! most untrusted orchestration there is, so it runs as exactly what this host already
//! sandboxes: a plugin. The engine (`code-mode-engine/`, Boa built as a component and
//! embedded in this binary) is pre-initialised once with wasmtime-wizer and cached, so each
//! `execute` is a fresh instance of a ready JavaScript runtime: nothing survives between
//! runs. Its policy grants the servers and tools the client (tenant) may use and nothing
//! else: no files, network or env; a frozen clock and fixed randomness unless granted; a
//! deadline, memory, calls in flight, calls and output bounded.
//!
//! Calls go through the embedder's connections when it has them ([`Scope::sessions`]:
//! `serve`'s pools), so a call inside a snippet costs what a plain call costs, and
//! `Promise.all` over calls is that many calls in flight upstream.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::aggregator::Aggregator;
use crate::client::TraceContext;
use crate::plugin::{
    CallGate, CallTrace, Plugin, PluginError, PluginHost, PluginPolicy, RunOptions, RunUsage,
    SessionRouter, TracedCall, TrapKind,
};

pub mod python;
pub mod search;
#[cfg(feature = "code-mode")]
mod strip;
pub mod typescript;

pub use search::rank;
#[cfg(feature = "code-mode")]
pub use strip::{strip_types, Stripped};

pub use typescript::{declarations, Names};

/// A snippet ready for the engine (see `strip.rs`, built with the `code-mode` feature).
#[cfg(not(feature = "code-mode"))]
pub struct Stripped {
    /// The code as written.
    pub code: String,
    /// Never known without the feature.
    pub syntax_error: Option<(usize, usize, String)>,
}

/// Without the `code-mode` feature there is no engine, so no snippet ever gets here.
#[cfg(not(feature = "code-mode"))]
pub async fn strip_types(body: &str) -> Stripped {
    Stripped {
        code: body.to_owned(),
        syntax_error: None,
    }
}

/// What the engine wraps a snippet in (the host uses the same to parse TypeScript).
#[cfg(feature = "code-mode")]
pub(crate) const SNIPPET_HEAD: &str = "(async () => {";
#[cfg(feature = "code-mode")]
pub(crate) const SNIPPET_TAIL: &str = "\n})()";

/// The engine component, built by `build.rs` from `code-mode-engine/`.
#[cfg(feature = "code-mode")]
static ENGINE_WASM: Option<&[u8]> = Some(include_bytes!(env!("CODE_MODE_ENGINE")));
/// A build without the `code-mode` feature (as the demo's) has no engine.
#[cfg(not(feature = "code-mode"))]
static ENGINE_WASM: Option<&[u8]> = None;

/// The Python engine component (Monty), built by `build.rs` from `code-mode-python/`.
#[cfg(feature = "code-mode")]
static PYTHON_WASM: Option<&[u8]> = Some(include_bytes!(env!("CODE_MODE_PYTHON")));
#[cfg(not(feature = "code-mode"))]
static PYTHON_WASM: Option<&[u8]> = None;

/// The language a snippet is written in, and so the engine that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// TypeScript (types stripped by the host) on the JavaScript engine.
    #[default]
    TypeScript,
    /// JavaScript on the JavaScript engine.
    JavaScript,
    /// Python on the Python engine: Monty's subset of Python 3, its last expression the
    /// answer, `await` at the top level.
    Python,
}

impl Language {
    /// Every language by the name `execute` takes.
    pub const NAMES: [&'static str; 3] = ["typescript", "javascript", "python"];

    /// The language called `name` (as `execute`'s `language` argument names it).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "typescript" | "ts" => Some(Self::TypeScript),
            "javascript" | "js" => Some(Self::JavaScript),
            "python" | "py" => Some(Self::Python),
            _ => None,
        }
    }

    /// Its name, as `execute` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::TypeScript => "typescript",
            Self::JavaScript => "javascript",
            Self::Python => "python",
        }
    }

    /// The language a snippet file's name says (`.py` is Python; anything else TypeScript,
    /// which JavaScript is a part of).
    pub fn of_file(name: &str) -> Self {
        if name.ends_with(".py") {
            Self::Python
        } else {
            Self::TypeScript
        }
    }
}

/// Errors setting code mode up (a snippet's own failures are [`Execution`]s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodeModeError {
    /// The engine could not be pre-initialised, compiled or loaded.
    #[error("code mode: the engine could not be loaded: {0}")]
    Engine(#[from] PluginError),
    /// This binary was built without the `code-mode` feature.
    #[error("code mode is not in this build of mcp-registry (built without the `code-mode` feature, as scripts/demo.sh does): build it with `cargo build`")]
    NotBuilt,
}

/// What one `execute` may use. Servers and tools come from the [`Scope`].
#[derive(Debug, Clone, PartialEq)]
pub struct CodeModePolicy {
    /// Longest a run may take; a snippet's own `timeout_ms` may only shorten it.
    pub deadline: Duration,
    /// Linear memory of the engine instance.
    pub max_memory_bytes: usize,
    /// Tool calls per run (every attempt counts).
    pub max_calls: usize,
    /// Tool calls in flight at once.
    pub max_in_flight: usize,
    /// Bytes of one tool result handed to the snippet (it may filter a big one down).
    pub max_result_bytes: usize,
    /// Bytes of the run's answer (its value and console together).
    pub max_output_bytes: usize,
    /// Fuel per run (`None`: the deadline alone bounds computing).
    pub fuel: Option<u64>,
    /// Whether `Date` sees the real clock (default: frozen at the Unix epoch).
    pub wall_clock: bool,
    /// Whether `Math.random` is really random (default: the same sequence every run).
    pub random: bool,
}

impl Default for CodeModePolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            max_memory_bytes: 64 << 20,
            max_calls: 200,
            max_in_flight: 32,
            max_result_bytes: 8 << 20,
            max_output_bytes: 1 << 20,
            fuel: None,
            wall_clock: false,
            random: false,
        }
    }
}

/// Whom one `execute` runs for: what it may reach, and through which connections.
#[derive(Clone, Default)]
pub struct Scope {
    /// Servers it may call.
    pub servers: Vec<String>,
    /// What its caller may see and call (a tenant's grants, `serve --filter`); the snippet
    /// gets no more.
    pub ceiling: crate::access::Access,
    /// Identifiers of the tools it sees (as `search` showed them).
    pub names: Names,
    /// Connections to use (`serve`'s pools); `None`: the run opens its own.
    pub sessions: Option<SessionRouter>,
    /// The aggregator its own connections go through (a tenant's, for its bounds).
    pub aggregator: Option<Aggregator>,
    /// The trace of the request the snippet serves, carried on by its calls.
    pub trace_context: Option<TraceContext>,
    /// Admits each call the snippet makes (a tenant's bounds), if anything bounds them.
    pub gate: Option<CallGate>,
    /// Turns at the host's CPU-heavy steps (stripping types) the caller may take at once (a
    /// tenant's), if bounded.
    pub cpu: Option<Arc<tokio::sync::Semaphore>>,
    /// Where the servers' questions during the snippet's calls go: the client of `execute`.
    pub relay: Option<Arc<dyn crate::client::RequestRelay>>,
    /// The least severe log message the client of `execute` wants from the calls.
    #[allow(deprecated)] // logging: deprecated for 2026-07-28, still part of it
    pub log_level: Option<rmcp::model::LoggingLevel>,
    /// The information-flow taint of the client of `execute` (its session's), which the
    /// snippet shares; `None`: one of its own.
    pub taint: Option<crate::flow::SharedTaint>,
    /// Labels the client of `execute` adds to the registry's (its tenant's).
    pub added_labels: Option<crate::flow::AddedLabels>,
    /// Who the snippet runs for (a tenant's name), as the audit log records it.
    pub principal: Option<String>,
    /// Where the snippet's `progress(...)` reports go: the client of `execute`.
    pub progress: Option<crate::client::ProgressSink>,
    /// What its caller's policy lets one snippet use (a tenant's), within the host's.
    pub budget: crate::config::tenants::CodeBudget,
}

/// What a snippet did: its value or its error, what it logged, and every call it made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Execution {
    /// The snippet's `return` value (`null` for none); absent when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Why it failed: `name`, `message`, and where known `kind` (a tool error's variant or
    /// the limit hit), `tool`, `line` and `column` (in the snippet as written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// `console` output, `{level, text}` each.
    pub console: Vec<Value>,
    /// Every tool call: tool, milliseconds, outcome.
    pub calls: Vec<TracedCall>,
    /// Milliseconds the run took.
    pub ms: f64,
    /// What the run could use and what it used: `max_calls`, `max_ms`, `max_memory_bytes`,
    /// and `used` (`calls`, `ms`, `memory_bytes`).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub budget: Value,
    /// Fuel the run consumed (for metrics; not part of the record a model reads).
    #[serde(skip)]
    pub fuel: u64,
    /// How the run ended, as metrics count a plugin run ([`PluginError::outcome`]): `ok`,
    /// `failed` (the snippet threw or answered too much), or the bound that stopped it.
    #[serde(skip)]
    pub outcome: &'static str,
}

impl Execution {
    fn failed(error: Value, calls: Vec<TracedCall>, started: Instant) -> Self {
        Self {
            value: None,
            error: Some(error),
            console: Vec::new(),
            calls,
            ms: started.elapsed().as_secs_f64() * 1e3,
            budget: Value::Null,
            fuel: 0,
            outcome: "failed",
        }
    }

    /// Whether the snippet ran to its `return`.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }

    /// The whole record as JSON (what `execute` returns as `structuredContent`).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The loaded engines and their policy.
pub struct CodeMode {
    engine: Plugin,
    /// Loaded at the first Python snippet (most users never send one).
    python: tokio::sync::OnceCell<Plugin>,
    policy: CodeModePolicy,
}

impl CodeMode {
    /// Loads the engine into `host`: pre-initialised and compiled once, then read from
    /// `cache_dir` (where the host caches components) by later processes.
    pub async fn load(
        host: &PluginHost,
        cache_dir: Option<&Path>,
        policy: CodeModePolicy,
    ) -> Result<Self, CodeModeError> {
        let wasm = ENGINE_WASM.ok_or(CodeModeError::NotBuilt)?;
        let snapshot = match cache_dir {
            Some(dir) => cached_snapshot(host, wasm, dir).await?,
            None => host.pre_initialize("code-mode", wasm).await?,
        };
        let engine = host.load("code-mode", &snapshot)?;
        Ok(Self {
            engine,
            python: tokio::sync::OnceCell::new(),
            policy,
        })
    }

    /// Loads the Python engine now (compiled once, then read from the host's component
    /// cache), so that the first Python snippet does not wait for it. Seconds of synchronous
    /// work on a fresh machine: for a blocking thread, not an async worker.
    pub async fn prepare_python(&self, host: &PluginHost) -> Result<(), CodeModeError> {
        self.engine_for(host, Language::Python).await.map(|_| ())
    }

    /// Whether a `language` snippet waits for its engine to be compiled first (the Python
    /// engine, on a machine that never ran one: seconds).
    pub fn needs_compiling(&self, host: &PluginHost, language: Language) -> bool {
        language == Language::Python
            && self.python.get().is_none()
            && PYTHON_WASM.is_some_and(|wasm| !host.is_compiled(wasm))
    }

    /// The engine for `language` (the Python one loaded at its first use unless prepared:
    /// compiled once, then read from the host's component cache; concurrent first uses wait
    /// for one load).
    async fn engine_for(
        &self,
        host: &PluginHost,
        language: Language,
    ) -> Result<&Plugin, CodeModeError> {
        if language != Language::Python {
            return Ok(&self.engine);
        }
        let wasm = PYTHON_WASM.ok_or(CodeModeError::NotBuilt)?;
        Ok(self
            .python
            .get_or_try_init(|| async { host.load("code-mode-python", wasm) })
            .await?)
    }

    /// The policy every run gets.
    pub fn policy(&self) -> &CodeModePolicy {
        &self.policy
    }

    /// Runs `code` (JavaScript or TypeScript: an async function body; Python: a module whose
    /// last expression is the answer) in a fresh instance.
    pub async fn execute(
        &self,
        host: &PluginHost,
        code: &str,
        language: Language,
        scope: Scope,
        timeout: Option<Duration>,
    ) -> Execution {
        let started = Instant::now();
        let engine = match self.engine_for(host, language).await {
            Ok(engine) => engine,
            Err(e) => {
                let error = json!({"name": "EngineError", "message": e.to_string()});
                return Execution::failed(error, Vec::new(), started);
            }
        };
        let Stripped { code, syntax_error } = match language {
            Language::Python => Stripped {
                code: code.to_owned(),
                syntax_error: None,
            },
            Language::TypeScript | Language::JavaScript => {
                let _turn = match &scope.cpu {
                    Some(turns) => turns.clone().acquire_owned().await.ok(),
                    None => None,
                };
                strip_types(code).await
            }
        };
        let budget = scope.budget;
        let limits = &CodeModePolicy {
            deadline: budget.max_ms.map_or(self.policy.deadline, |ms| {
                Duration::from_millis(ms).min(self.policy.deadline)
            }),
            max_calls: budget
                .max_calls
                .map_or(self.policy.max_calls, |n| n.min(self.policy.max_calls)),
            max_memory_bytes: budget.max_memory.map_or(self.policy.max_memory_bytes, |n| {
                n.min(self.policy.max_memory_bytes)
            }),
            ..self.policy.clone()
        };
        let deadline = timeout.map_or(limits.deadline, |t| t.min(limits.deadline));
        let policy = PluginPolicy {
            allowed_servers: scope.servers,
            ceiling: scope.ceiling,
            deadline,
            fuel: limits.fuel,
            wall_clock: limits.wall_clock,
            random: limits.random,
            max_memory_bytes: limits.max_memory_bytes,
            max_sessions: 4,
            max_calls: limits.max_calls,
            max_in_flight: limits.max_in_flight,
            max_result_bytes: limits.max_result_bytes,
            max_output_bytes: 64 << 10,
            opaque_denials: true,
            ..PluginPolicy::default()
        };
        // The language is the engines' to ignore: it is there for a replay of the record.
        let input = json!({
            "code": code,
            "language": language.name(),
            "names": scope.names.to_engine(),
            "max_console_bytes": limits.max_output_bytes / 2,
            "max_in_flight": limits.max_in_flight,
        })
        .to_string();
        let trace = CallTrace::default();
        let usage = RunUsage::default();
        let options = RunOptions {
            aggregator: scope.aggregator,
            sessions: scope.sessions,
            trace: Some(trace.clone()),
            progress: scope.progress,
            trace_context: scope.trace_context,
            usage: Some(usage.clone()),
            gate: scope.gate,
            relay: scope.relay,
            log_level: scope.log_level,
            taint: scope.taint,
            added_labels: scope.added_labels,
            principal: scope.principal,
        };
        let outcome = host.run_with(engine, &input, &policy, options).await;
        let execution = match outcome {
            Ok(out) => {
                let mut execution = self.answer(&out, trace.calls(), started);
                // Code neither parser takes: swc's error says where the mistake is; the
                // engine's names the first type annotation it met. (Only a failure before
                // anything ran: a later SyntaxError is the snippet's own, `JSON.parse`'s.)
                let nothing_ran = execution.calls.is_empty() && execution.console.is_empty();
                if let (Some(error), Some((line, column, message)), true) =
                    (execution.error.as_mut(), syntax_error, nothing_ran)
                {
                    if error["name"] == "SyntaxError" {
                        *error = json!({
                            "name": "SyntaxError",
                            "message": format!("{message} at line {line}, col {column}"),
                            "line": line,
                            "column": column,
                        });
                    }
                }
                execution
            }
            Err(e) => Execution {
                outcome: e.outcome(),
                ..Execution::failed(run_error(&e, &policy), trace.calls(), started)
            },
        };
        let budget = json!({
            "max_calls": limits.max_calls,
            "max_ms": deadline.as_millis() as u64,
            "max_memory_bytes": limits.max_memory_bytes,
            "used": {
                // Every attempt counts; one refused at the limit is not a call made.
                "calls": execution.calls.len().min(limits.max_calls),
                "ms": execution.ms.round() as u64,
                "memory_bytes": usage.memory_bytes(),
            },
        });
        Execution {
            fuel: usage.fuel(),
            budget,
            outcome: exhausted(&execution, &policy).unwrap_or(execution.outcome),
            ..execution
        }
    }

    /// The engine's answer (`{value | error, console}` as JSON text) as an [`Execution`].
    fn answer(&self, out: &str, calls: Vec<TracedCall>, started: Instant) -> Execution {
        let limit = self.policy.max_output_bytes;
        if out.len() > limit {
            let error = json!({"name": "LimitExceeded", "kind": "limit", "message": format!(
                "the snippet's answer is {} bytes, over the limit of {limit} bytes: return less (filter or summarise it in the snippet)",
                out.len())});
            return Execution::failed(error, calls, started);
        }
        let mut answer: Value = serde_json::from_str(out).unwrap_or_else(|e| {
            json!({"error": {"name": "EngineError", "message": format!("the engine's answer is not JSON: {e}")}})
        });
        let console = match answer["console"].take() {
            Value::Array(lines) => lines,
            _ => Vec::new(),
        };
        let error = answer.get_mut("error").map(Value::take);
        Execution {
            outcome: if error.is_none() { "ok" } else { "failed" },
            value: if error.is_none() {
                Some(answer["value"].take())
            } else {
                None
            },
            error,
            console,
            calls,
            ms: started.elapsed().as_secs_f64() * 1e3,
            budget: Value::Null,
            fuel: 0,
        }
    }
}

/// The budget a run ran out of, as metrics count it (`calls`, `memory`, `deadline`), if one:
/// a call refused at the call limit counts even if the snippet caught its `ToolError`.
fn exhausted(execution: &Execution, policy: &PluginPolicy) -> Option<&'static str> {
    match execution.outcome {
        "deadline" | "memory" => return Some(execution.outcome),
        _ => {}
    }
    (execution.calls.len() > policy.max_calls).then_some("calls")
}

/// A run that did not come back with an answer, as the model should read it.
fn run_error(e: &PluginError, policy: &PluginPolicy) -> Value {
    tracing::debug!(error = %e, "the code-mode run did not answer");
    match e {
        PluginError::Deadline { deadline, .. } => json!({
            "name": "TimeoutError", "kind": "timeout",
            "message": format!("the snippet ran past its deadline ({} ms) and was stopped", deadline.as_millis()),
        }),
        PluginError::Trap { message, kind, .. } => match kind {
            // The engine's own (Rust) stack lives in its linear memory: overflowing it is an
            // access below address 0.
            TrapKind::Stack | TrapKind::OutOfBounds => {
                json!({"name": "RangeError", "kind": "limit", "message": "the snippet overflowed the stack (nesting or recursion too deep)"})
            }
            TrapKind::Memory => {
                json!({"name": "LimitExceeded", "kind": "limit", "message": format!(
                "the snippet used more than its {} MiB of memory and was stopped", policy.max_memory_bytes >> 20)})
            }
            TrapKind::Fuel => {
                json!({"name": "LimitExceeded", "kind": "limit", "message": "the snippet used all its fuel and was stopped"})
            }
            _ => {
                let first = message.lines().next().unwrap_or("").trim();
                json!({"name": "EngineError", "message": format!("the engine stopped: {first}")})
            }
        },
        other => json!({"name": "EngineError", "message": other.to_string()}),
    }
}

/// The pre-initialised engine, from `dir` or made and written there (atomically: several
/// processes may start at once).
/// Where the engine's pre-initialised snapshot is kept in `dir`.
fn snapshot_path(wasm: &[u8], dir: &Path) -> PathBuf {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(wasm)
        .chain_update(env!("CARGO_PKG_VERSION"))
        .finalize()
        .into();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("code-mode-engine-{hex}.wasm"))
}

/// Whether loading the engine from `cache_dir` will compile it first (nothing there yet from
/// `init` or an earlier use); false in a build without an engine.
pub fn needs_preparing(cache_dir: &Path) -> bool {
    ENGINE_WASM.is_some_and(|wasm| !snapshot_path(wasm, cache_dir).is_file())
}

async fn cached_snapshot(
    host: &PluginHost,
    wasm: &[u8],
    dir: &Path,
) -> Result<Vec<u8>, CodeModeError> {
    let path = snapshot_path(wasm, dir);
    if let Ok(bytes) = std::fs::read(&path) {
        return Ok(bytes);
    }
    let snapshot = host.pre_initialize("code-mode", wasm).await?;
    if crate::files::write_atomic(&path, &snapshot).is_ok() {
        // Snapshots of other engine builds are dead weight (8 MB each): remove them.
        let current = path.file_name();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let stale = name.to_string_lossy().starts_with("code-mode-engine-")
                && name.to_string_lossy().ends_with(".wasm")
                && Some(name.as_os_str()) != current;
            if stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(snapshot)
}
