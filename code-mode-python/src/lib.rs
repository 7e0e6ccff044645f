//! The Python code-mode engine: runs a snippet of Python written by a model, as an ordinary
//! orchestration plugin of this host (the JavaScript engine's twin, `../code-mode-engine`).
//!
//! Why Monty: it is pydantic's Python interpreter in pure Rust (Ruff's parser, its own
//! bytecode VM), the one FastMCP's CodeMode runs, so building it needs only the
//! `wasm32-wasip2` target; and it never runs a Python step the host did not see coming: a
//! call out of the sandbox suspends the interpreter and hands the host a value to answer.
//! Here the sandbox is the Wasm instance: a fresh one per snippet, under the host's deadline,
//! memory and call limits, so nothing Monty does can reach past them.
//!
//! One run: `run({"code", "names"?, "max_console_bytes"?, "max_in_flight"?})` compiles the
//! snippet and drives it: `tools` is a host object whose attributes are the servers, whose
//! methods are the tools, so `await tools.s.t(x=1)` is a `start-call` on the run's session
//! (the call starts when made; `asyncio.gather` over many is many calls in flight), and the
//! interpreter is resumed with results as calls finish (`wasi:io/poll`). The snippet's value
//! is its last expression. The answer is the JavaScript engine's JSON: `{"value",
//! "console"}` or `{"error": {"name", "message", "kind"?, "tool"?, "line"?, "column"?},
//! "console"}`.
//!
//! A failed call raises `ToolError` (Monty has no user-defined exception classes, so it is
//! `RuntimeError` under that name, its message `"<kind>: <message>"`), catchable like any
//! exception; uncaught, the run's error carries the kind and the snippet's line.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};

use monty::{FunctionCall, MontyRun, NameLookup, RunProgress};
use monty_types::{
    CompileOptions, DictPairs, ExcType, ExtFunctionResult, MontyClassInstance, MontyClassType,
    MontyException, MontyObject, MontyUuid, NameLookupResult, PrintWriter, ResourceLimits,
    ResourceTracker,
};
use serde_json::{json, Map, Value};

wit_bindgen::generate!({
    path: ["../wit", "../code-mode-engine/wit"],
    world: "mcp-registry:code-mode-engine/engine",
    generate_all,
});

use mcp_registry::plugin::registry::{self, FutureCallResult, Session};
use mcp_registry::plugin::{progress as wit_progress, types};

// The JavaScript engine's: what a snippet gets of a call, the same in both languages.
#[path = "../../code-mode-engine/src/results.rs"]
mod results;
use results::{error_json, tool_value};

/// The file name snippets are compiled under: tracebacks name it.
const SNIPPET: &str = "snippet.py";
/// Console output kept per run unless the input says otherwise.
const DEFAULT_CONSOLE_BYTES: usize = 64 << 10;
/// Calls in flight at once unless the input says otherwise (the host's policy is the bound).
const DEFAULT_IN_FLIGHT: usize = 32;
/// Python frames deep a snippet may go (the interpreter's own bound, well inside the
/// engine's stack).
const MAX_RECURSION: usize = 200;
/// The line put before the snippet (so the snippet's lines are one further down): Monty has
/// no user-defined exception classes, and a type passed in as a value is not one `except`
/// takes, so `ToolError` is bound in Python itself.
const HEAD: &str = "ToolError = RuntimeError\n";
/// The `tools` object's identity; servers are numbered after it.
const TOOLS_ID: u128 = 1;
/// The kinds a failed call's `ToolError` may carry (the host's error variants).
const KINDS: [&str; 7] = [
    "not-found",
    "denied",
    "invalid",
    "server-failed",
    "timeout",
    "limit",
    "tool-error",
];

/// What one run holds while the interpreter is suspended.
#[derive(Default)]
struct Run {
    session: Option<Session>,
    /// Calls in flight: the interpreter's call id, the tool.
    calls: Vec<(u32, String, FutureCallResult)>,
    /// Calls made past `max_in_flight`: started as others finish.
    queued: VecDeque<(u32, String, String)>,
    /// Calls that could not start: answered at the next resolution.
    failed: Vec<(u32, Value)>,
    max_in_flight: usize,
    /// `{server id: {tool id: "server__tool"}}`, as `search` showed them.
    names: Map<String, Value>,
    /// Server objects handed out, by their identity: the server id.
    servers: HashMap<u128, String>,
    /// Messages of the `ToolError`s raised, so an uncaught one is reported as one.
    raised: HashSet<String>,
    console: String,
    console_limit: usize,
}

thread_local! {
    static RUN: RefCell<Run> = RefCell::new(Run::default());
}

/// A host object the snippet sees: attribute reads and method calls on it suspend to us.
fn host_object(class: &str, id: u128) -> MontyObject {
    MontyObject::ClassInstance(Box::new(MontyClassInstance {
        class_type: MontyClassType {
            name: class.to_owned(),
            id: MontyUuid::from_u128(id),
            host_defined: true,
            is_dataclass: false,
            attrs: DictPairs::default(),
        },
        instance_id: MontyUuid::from_u128(id),
        attrs: DictPairs::default(),
    }))
}

/// The number a host object was made with.
fn id_of(id: MontyUuid) -> u128 {
    u128::from_be_bytes(*id.as_bytes())
}

/// Drives the snippet from start to end; its answer as JSON.
fn run_snippet(code: &str) -> Value {
    let runner = match MontyRun::new(
        format!("{HEAD}{code}"),
        SNIPPET,
        vec!["tools".into(), "progress".into()],
        CompileOptions::default(),
    ) {
        Ok(r) => r,
        Err(e) => return json!({"error": describe(&e)}),
    };
    let inputs = vec![
        host_object("Tools", TOOLS_ID),
        MontyObject::Function {
            name: "progress".into(),
            docstring: Some("progress(done, total=None, message=None): report progress".into()),
        },
    ];
    let limits = ResourceLimits {
        max_recursion_depth: MAX_RECURSION,
        max_suspensions: usize::MAX,
        ..ResourceLimits::default()
    };
    let mut console = String::new();
    let limit = RUN.with_borrow(|r| r.console_limit);
    let mut progress = runner.start(
        inputs,
        ResourceTracker::new(limits),
        PrintWriter::CollectString(&mut console, Some(limit)),
    );
    let outcome = loop {
        let print = PrintWriter::CollectString(&mut console, Some(limit));
        progress = match progress {
            Err(e) => break Err(e),
            Ok(RunProgress::Complete(value)) => break Ok(value),
            Ok(RunProgress::FunctionCall(call)) => function_call(call, print),
            Ok(RunProgress::NameLookup(lookup)) => name_lookup(lookup, print),
            Ok(RunProgress::OsCall(call)) => {
                let refused = MontyException::new(
                    ExcType::PermissionError,
                    Some(
                        "a snippet has no files, environment or clock of its own: call a tool"
                            .into(),
                    ),
                );
                call.resume(ExtFunctionResult::Error(refused), print)
            }
            Ok(RunProgress::ResolveFutures(waiting)) => {
                let results = resolve(waiting.pending_call_ids());
                match results {
                    Ok(results) => waiting.resume(results, print),
                    Err(e) => waiting.abort(e, print),
                }
            }
        };
    };
    RUN.with_borrow_mut(|r| r.console = console);
    match outcome {
        Ok(value) => json!({"value": to_json(value)}),
        Err(e) => json!({"error": describe(&e)}),
    }
}

/// `tools.<server>` (a server object), `tools.<server>.<tool>` read as a value (a function
/// to call later); anything else is undefined.
fn name_lookup(lookup: NameLookup, print: PrintWriter<'_>) -> Result<RunProgress, MontyException> {
    let answer = match lookup.object_id().map(id_of) {
        Some(TOOLS_ID) => {
            let id = RUN.with_borrow_mut(|r| {
                let next = TOOLS_ID + 1 + r.servers.len() as u128;
                let existing = r.servers.iter().find(|(_, s)| **s == lookup.name);
                match existing {
                    Some((id, _)) => *id,
                    None => {
                        r.servers.insert(next, lookup.name.clone());
                        next
                    }
                }
            });
            NameLookupResult::Value(host_object("Server", id))
        }
        Some(server) => match RUN.with_borrow(|r| r.servers.get(&server).cloned()) {
            Some(server) => NameLookupResult::Value(MontyObject::Function {
                name: tool_name(&server, &lookup.name),
                docstring: None,
            }),
            None => NameLookupResult::Undefined,
        },
        None => NameLookupResult::Undefined,
    };
    lookup.resume(answer, print)
}

/// The registry name of `tools.<server>.<tool>`: as `search` named it, or as written.
fn tool_name(server: &str, tool: &str) -> String {
    RUN.with_borrow(|r| {
        r.names
            .get(server)
            .and_then(|tools| tools.get(tool))
            .and_then(Value::as_str)
            .map_or_else(|| format!("{server}__{tool}"), str::to_owned)
    })
}

/// A call out of the snippet: a tool (started, answered later) or `progress(...)`.
fn function_call(
    call: FunctionCall,
    print: PrintWriter<'_>,
) -> Result<RunProgress, MontyException> {
    let tool = match call.object_id.map(id_of) {
        Some(TOOLS_ID) => {
            let e = MontyException::new(
                ExcType::AttributeError,
                Some(format!(
                    "tools.{}() is not a tool: call tools.<server>.<tool>(...)",
                    call.function_name
                )),
            );
            return call.resume(ExtFunctionResult::Error(e), print);
        }
        Some(server) => match RUN.with_borrow(|r| r.servers.get(&server).cloned()) {
            Some(server) => tool_name(&server, &call.function_name),
            None => {
                let e = MontyException::new(ExcType::AttributeError, Some("unknown object".into()));
                return call.resume(ExtFunctionResult::Error(e), print);
            }
        },
        None if call.function_name == "progress" => {
            report_progress(&call.args, &call.kwargs);
            return call.resume(MontyObject::None, print);
        }
        None => call.function_name.clone(),
    };
    let arguments = match arguments(&call.args, &call.kwargs) {
        Ok(a) => a,
        Err(message) => {
            let e = tool_error(&json!({"kind": "invalid", "message": message}), &tool);
            return call.resume(ExtFunctionResult::Error(e), print);
        }
    };
    let id = call.call_id;
    RUN.with_borrow_mut(|run| {
        if run.calls.len() >= run.max_in_flight.max(1) {
            run.queued.push_back((id, tool, arguments));
        } else if let Err(e) = begin(run, id, &tool, &arguments) {
            let mut failure = error_json(&e);
            failure["tool"] = tool.into();
            run.failed.push((id, failure));
        }
    });
    call.resume_pending(print)
}

/// `progress(done, total=None, message=None)`, as the plugin's `progress.report`.
fn report_progress(args: &[MontyObject], kwargs: &[(MontyObject, MontyObject)]) {
    let named = |key: &str| {
        kwargs
            .iter()
            .find(|(k, _)| matches!(k, MontyObject::String(s) if s == key))
            .map(|(_, v)| v)
    };
    let number = |v: Option<&MontyObject>| match v {
        Some(MontyObject::Int(n)) => Some(*n as f64),
        Some(MontyObject::Float(f)) => Some(*f),
        _ => None,
    };
    let done = number(args.first().or_else(|| named("done"))).unwrap_or(0.0);
    let total = number(args.get(1).or_else(|| named("total")));
    let message = match args.get(2).or_else(|| named("message")) {
        Some(MontyObject::String(s)) => Some(s.clone()),
        Some(MontyObject::None) | None => None,
        Some(other) => Some(other.to_string()),
    };
    wit_progress::report(done, total, message.as_deref());
}

/// A call's arguments as a JSON object: keywords (`t(a=1)`), or one dict (`t({"a": 1})`).
fn arguments(
    args: &[MontyObject],
    kwargs: &[(MontyObject, MontyObject)],
) -> Result<String, String> {
    let object = match (args, kwargs) {
        ([], kw) => {
            let pairs = kw.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            to_json(MontyObject::Dict(pairs))
        }
        ([one @ MontyObject::Dict(_)], []) => to_json(one.clone()),
        _ => return Err(
            "a tool takes keyword arguments (tools.s.t(a=1)) or one dict (tools.s.t({\"a\": 1}))"
                .into(),
        ),
    };
    Ok(object.to_string())
}

/// Starts call `id` on the run's session (opened at the first call).
fn begin(run: &mut Run, id: u32, name: &str, arguments: &str) -> Result<(), types::Error> {
    if run.session.is_none() {
        run.session = Some(Session::open(&registry::servers())?);
    }
    if let Some(session) = &run.session {
        let call = session.start_call(name, arguments)?;
        run.calls.push((id, name.to_owned(), call));
    }
    Ok(())
}

/// Waits until at least one call the snippet awaits has finished; their results.
fn resolve(pending: &[u32]) -> Result<Vec<(u32, ExtFunctionResult)>, MontyException> {
    loop {
        let mut done = Vec::new();
        let failed = RUN.with_borrow_mut(|r| std::mem::take(&mut r.failed));
        for (id, failure) in failed {
            let tool = failure["tool"].as_str().unwrap_or("").to_owned();
            done.push((id, ExtFunctionResult::Error(tool_error(&failure, &tool))));
        }
        start_queued();
        let calls = RUN.with_borrow_mut(|r| std::mem::take(&mut r.calls));
        if calls.is_empty() && done.is_empty() {
            return Err(MontyException::new(
                ExcType::RuntimeError,
                Some(format!(
                    "the snippet awaits something that can never finish (calls {pending:?})"
                )),
            ));
        }
        let ready: Vec<u32> = if done.is_empty() && !calls.is_empty() {
            let pollables: Vec<_> = calls.iter().map(|(_, _, f)| f.subscribe()).collect();
            wasi::io::poll::poll(&pollables.iter().collect::<Vec<_>>())
        } else {
            Vec::new()
        };
        let mut waiting = Vec::new();
        for (i, (id, tool, call)) in calls.into_iter().enumerate() {
            if !ready.contains(&(i as u32)) {
                waiting.push((id, tool, call));
                continue;
            }
            match call.get() {
                Some(Ok(result)) => done.push((id, answer(result, &tool))),
                Some(Err(e)) => {
                    let failure = tool_error(&error_json(&e), &tool);
                    done.push((id, ExtFunctionResult::Error(failure)));
                }
                None => waiting.push((id, tool, call)),
            }
        }
        RUN.with_borrow_mut(|r| {
            waiting.append(&mut r.calls);
            r.calls = waiting;
        });
        if !done.is_empty() {
            return Ok(done);
        }
    }
}

/// Starts queued calls while there is room in flight.
fn start_queued() {
    RUN.with_borrow_mut(|r| {
        while r.calls.len() < r.max_in_flight.max(1) {
            let Some((id, name, arguments)) = r.queued.pop_front() else {
                return;
            };
            if let Err(e) = begin(r, id, &name, &arguments) {
                let mut failure = error_json(&e);
                failure["tool"] = name.into();
                r.failed.push((id, failure));
            }
        }
    });
}

/// A tool's answer as the snippet's value (see `results::tool_value`); a failure raises
/// `ToolError`.
fn answer(result: types::CallResult, tool: &str) -> ExtFunctionResult {
    match tool_value(result) {
        Ok(value) => ExtFunctionResult::Return(from_json(&value)),
        Err(failure) => ExtFunctionResult::Error(tool_error(&failure, tool)),
    }
}

/// `{kind, message}` raised as `ToolError`: `RuntimeError("<kind>: <message>")`.
fn tool_error(failure: &Value, tool: &str) -> MontyException {
    let kind = failure["kind"].as_str().unwrap_or("tool-error");
    let message = failure["message"].as_str().unwrap_or("");
    let text = if tool.is_empty() || message.contains(tool) {
        format!("{kind}: {message}")
    } else {
        format!("{kind}: {tool}: {message}")
    };
    RUN.with_borrow_mut(|r| r.raised.insert(text.clone()));
    MontyException::new(ExcType::RuntimeError, Some(text))
}

/// An exception as the model reads it: its type, message, the `ToolError`'s kind, and the
/// innermost line of the snippet it came through.
fn describe(e: &MontyException) -> Value {
    let message = e.message().unwrap_or_default().to_owned();
    let mut out = Map::new();
    let raised = RUN.with_borrow(|r| r.raised.contains(&message));
    match message.split_once(": ") {
        Some((kind, _)) if raised && KINDS.contains(&kind) => {
            out.insert("name".into(), "ToolError".into());
            out.insert("kind".into(), kind.into());
        }
        _ => {
            let name = e.exc_type().to_string();
            if matches!(e.exc_type(), ExcType::RecursionError | ExcType::MemoryError) {
                out.insert("kind".into(), "limit".into());
            }
            out.insert("name".into(), name.into());
        }
    }
    out.insert("message".into(), message.into());
    if let Some(frame) = e.traceback().iter().rev().find(|f| f.filename == SNIPPET) {
        out.insert("line".into(), frame.start.line.saturating_sub(1).into());
        out.insert("column".into(), frame.start.column.into());
    }
    Value::Object(out)
}

/// JSON as a Python value (objects become dicts, integers past `i64` floats).
fn from_json(value: &Value) -> MontyObject {
    match value {
        Value::Null => MontyObject::None,
        Value::Bool(b) => MontyObject::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => MontyObject::Int(i),
            None => MontyObject::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => MontyObject::String(s.clone()),
        Value::Array(items) => MontyObject::List(items.iter().map(from_json).collect()),
        Value::Object(map) => MontyObject::Dict(
            map.iter()
                .map(|(k, v)| (MontyObject::String(k.clone()), from_json(v)))
                .collect(),
        ),
    }
}

/// A Python value as JSON: what JSON has kept, the rest as its `repr`.
fn to_json(value: MontyObject) -> Value {
    match value {
        MontyObject::None => Value::Null,
        MontyObject::Bool(b) => Value::Bool(b),
        MontyObject::Int(i) => i.into(),
        MontyObject::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        MontyObject::String(s) => Value::String(s),
        MontyObject::List(items)
        | MontyObject::Tuple(items)
        | MontyObject::Set(items)
        | MontyObject::FrozenSet(items) => Value::Array(items.into_iter().map(to_json).collect()),
        MontyObject::NamedTuple {
            field_names,
            values,
            ..
        } => Value::Object(
            field_names
                .into_iter()
                .zip(values)
                .map(|(k, v)| (k, to_json(v)))
                .collect(),
        ),
        MontyObject::Dict(pairs) => Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        MontyObject::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        other => Value::String(other.to_string()),
    }
}

struct Component;

impl Guest for Component {
    fn describe() -> String {
        json!({
            "name": "code-mode-python",
            "description": "Runs a Python snippet (its last expression is the answer) with `await tools.<server>.<tool>(**args)` bound to the registry",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "names": {"type": "object"},
                    "max_console_bytes": {"type": "integer"},
                    "max_in_flight": {"type": "integer"}
                },
                "required": ["code"]
            }
        })
        .to_string()
    }

    fn run(input: String) -> Result<String, String> {
        let input: Value =
            serde_json::from_str(&input).map_err(|e| format!("the input is not JSON: {e}"))?;
        let code = input["code"]
            .as_str()
            .ok_or("the input has no \"code\" string")?;
        RUN.with_borrow_mut(|r| {
            r.console_limit = input["max_console_bytes"]
                .as_u64()
                .map_or(DEFAULT_CONSOLE_BYTES, |n| n as usize);
            r.max_in_flight = input["max_in_flight"]
                .as_u64()
                .map_or(DEFAULT_IN_FLIGHT, |n| n as usize);
            r.names = input["names"].as_object().cloned().unwrap_or_default();
        });
        let mut answer = run_snippet(code);
        let run = RUN.take();
        let console: Vec<Value> = run
            .console
            .lines()
            .map(|line| json!({"level": "log", "text": line}))
            .collect();
        answer["console"] = Value::Array(console);
        // Calls still in flight are cancelled and the session closed as `run` drops them.
        drop(run.calls);
        drop(run.session);
        Ok(answer.to_string())
    }

    /// Nothing to build ahead: Monty starts in microseconds. (The export keeps one engine
    /// world, and one loading path in the host, for both languages.)
    fn wizer_initialize() {}
}

export!(Component);
