//! The code-mode engine: runs a snippet of JavaScript (an async function body) written by a
//! model, as an ordinary orchestration plugin of this host.
//!
//! Why a plugin: a snippet is exactly the untrusted orchestration the host exists to sandbox,
//! so it gets the same grants, limits and persistent session as any plugin, and nothing more.
//! Why Boa: it is pure Rust, so building this component needs only the `wasm32-wasip2`
//! target (QuickJS would need a C cross toolchain on every machine that builds the host);
//! `../README.md` has the measurements behind the choice.
//!
//! One run: `run({"code", "names"?, "max_console_bytes"?})` evaluates the snippet, then
//! alternates between the JavaScript job queue and `wasi:io/poll` over the calls the snippet
//! started, until its promise settles. `await tools.s.t(args)` is `start-call` on a session;
//! `Promise.all` over many is many calls in flight at once. The result is JSON:
//! `{"value", "console"}` or `{"error": {"name", "message", "kind"?, "line"?, "column"?},
//! "console"}`: a snippet's failure is an answer for the model, not a failed run.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::Path;

use boa_engine::builtins::promise::PromiseState;
use boa_engine::object::builtins::JsPromise;
use boa_engine::{
    js_string, Context, JsArgs, JsError, JsObject, JsResult, JsString, JsValue, NativeFunction,
    Source,
};
use serde_json::{json, Map, Value};

wit_bindgen::generate!({
    path: ["../wit", "wit"],
    world: "mcp-registry:code-mode-engine/engine",
    generate_all,
});

use mcp_registry::plugin::registry::{self, FutureCallResult, Session};
use mcp_registry::plugin::types;

mod results;
use results::{error_json, tool_value};

/// The file name snippets are compiled under: error positions name it.
const SNIPPET: &str = "snippet.js";
/// What comes before the snippet on its first line (columns there are shifted by its length).
const HEAD: &str = "(async () => {";
/// Console output kept per run unless the input says otherwise.
const DEFAULT_CONSOLE_BYTES: usize = 64 << 10;
/// Calls in flight at once unless the input says otherwise (the host's policy is the bound).
const DEFAULT_IN_FLIGHT: usize = 32;

/// The JavaScript context and the prelude's hooks; built once (before the snapshot).
struct Engine {
    context: Context,
    hooks: JsObject,
}

/// What one run holds outside JavaScript.
#[derive(Default)]
struct Run {
    session: Option<Session>,
    calls: Vec<(u32, FutureCallResult)>,
    /// Calls the snippet made past `max_in_flight`: started as others finish.
    queued: VecDeque<(u32, String, String)>,
    max_in_flight: usize,
    /// Lines of the snippet as written (positions past it are the wrapper's).
    lines: u64,
    next_id: u32,
    console: Vec<Value>,
    console_bytes: usize,
    console_limit: usize,
    console_dropped: usize,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    static RUN: RefCell<Run> = RefCell::new(Run::default());
}

impl Engine {
    fn new() -> Result<Self, String> {
        let mut context = Context::default();
        let natives: [(JsString, usize, NativeFunction); 3] = [
            (
                js_string!("__mcpStart"),
                2,
                NativeFunction::from_fn_ptr(start_call),
            ),
            (
                js_string!("__mcpConsole"),
                2,
                NativeFunction::from_fn_ptr(console),
            ),
            (
                js_string!("__mcpProgress"),
                3,
                NativeFunction::from_fn_ptr(progress),
            ),
        ];
        for (name, length, body) in natives {
            context
                .register_global_builtin_callable(name, length, body)
                .map_err(|e| e.to_string())?;
        }
        let hooks = context
            .eval(Source::from_bytes(include_str!("prelude.js")))
            .map_err(|e| format!("the prelude failed: {e}"))?
            .as_object()
            .ok_or("the prelude returned no hooks")?;
        Ok(Self { context, hooks })
    }

    fn hook(&mut self, name: &str, args: &[JsValue]) -> JsResult<JsValue> {
        let f = self.hooks.get(JsString::from(name), &mut self.context)?;
        let f = f
            .as_callable()
            .ok_or_else(|| JsError::from_opaque(js_string!("hook is not callable").into()))?;
        f.call(&JsValue::undefined(), args, &mut self.context)
    }

    /// Evaluates the snippet and drives it to the end; the run's answer as JSON.
    fn run(&mut self, code: &str, names: &Value) -> Value {
        match JsValue::from_json(names, &mut self.context) {
            Ok(n) => {
                if let Err(e) = self.hook("names", &[n]) {
                    return json!({"error": self.describe(e)});
                }
            }
            Err(e) => return json!({"error": self.describe(e)}),
        }
        let source = format!("{HEAD}{code}\n}})()");
        let evaluated = self.context.eval(Source::from_reader(
            source.as_bytes(),
            Some(Path::new(SNIPPET)),
        ));
        let outcome = evaluated.and_then(|promise| self.drive(promise));
        match outcome.and_then(|v| v.to_json(&mut self.context)) {
            Ok(value) => json!({"value": value.unwrap_or(Value::Null)}),
            Err(e) => json!({"error": self.describe(e)}),
        }
    }

    /// Runs jobs and waits for started calls until the snippet's promise settles.
    fn drive(&mut self, promise: JsValue) -> JsResult<JsValue> {
        let promise = promise
            .as_promise()
            .ok_or_else(|| JsError::from_opaque(js_string!("the snippet did not run").into()))?;
        loop {
            self.context.run_jobs()?;
            if let Some(v) = settled(&promise)? {
                return Ok(v);
            }
            self.start_queued()?;
            let calls = RUN.with_borrow_mut(|r| std::mem::take(&mut r.calls));
            if calls.is_empty() {
                return Err(JsError::from_opaque(
                    js_string!("the snippet's promise can never settle: it awaits something that is not a tool call")
                        .into(),
                ));
            }
            let ready = {
                let pollables: Vec<_> = calls.iter().map(|(_, f)| f.subscribe()).collect();
                wasi::io::poll::poll(&pollables.iter().collect::<Vec<_>>())
            };
            let mut waiting = Vec::new();
            for (i, (id, call)) in calls.into_iter().enumerate() {
                if !ready.contains(&(i as u32)) {
                    waiting.push((id, call));
                    continue;
                }
                match call.get() {
                    Some(outcome) => {
                        let (ok, value) = match outcome {
                            Ok(result) => match tool_value(result) {
                                Ok(value) => (true, value),
                                Err(failure) => (false, failure),
                            },
                            Err(e) => (false, error_json(&e)),
                        };
                        let value = JsValue::from_json(&value, &mut self.context)?;
                        self.hook("settle", &[id.into(), ok.into(), value])?;
                    }
                    None => waiting.push((id, call)),
                }
            }
            // Calls started while settling were pushed meanwhile; keep both.
            RUN.with_borrow_mut(|r| {
                waiting.append(&mut r.calls);
                r.calls = waiting;
            });
        }
    }

    /// Starts queued calls while there is room in flight; one that cannot start rejects.
    fn start_queued(&mut self) -> JsResult<()> {
        loop {
            let next = RUN.with_borrow_mut(|r| {
                if r.calls.len() >= r.max_in_flight.max(1) {
                    return None;
                }
                let (id, name, arguments) = r.queued.pop_front()?;
                Some((id, begin(r, id, &name, &arguments)))
            });
            match next {
                None => return Ok(()),
                Some((_, Ok(()))) => {}
                Some((id, Err(e))) => {
                    let value = JsValue::from_json(&error_json(&e), &mut self.context)?;
                    self.hook("settle", &[id.into(), false.into(), value])?;
                }
            }
        }
    }

    /// An error as the model reads it: name, message, the tool error's kind, and where in
    /// the snippet (line and column as the model wrote them).
    fn describe(&mut self, e: JsError) -> Value {
        let context = &mut self.context;
        let Ok(value) = e.clone().into_opaque(context) else {
            // An engine limit (recursion, loop iterations): no JavaScript object to read.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first.split_once(": ").map_or(first, |(_, m)| m);
            let mut out = json!({"name": "RangeError", "kind": "limit", "message": message});
            if let Some((line, column)) = position_in(&text) {
                out["line"] = line.into();
                out["column"] = column.into();
            }
            return out;
        };
        let Some(object) = value.as_object() else {
            let message = value
                .to_string(context)
                .map(|s| s.to_std_string_escaped())
                .unwrap_or_default();
            return json!({"name": "Uncaught", "message": message});
        };
        let mut out = Map::new();
        for key in ["name", "message", "kind", "tool", "stack"] {
            if let Ok(v) = object.get(JsString::from(key), context) {
                if let Some(s) = v.as_string() {
                    out.insert(key.into(), Value::String(s.to_std_string_escaped()));
                }
            }
        }
        let message = out.get("message").and_then(Value::as_str).unwrap_or("");
        let position = out
            .get("stack")
            .and_then(Value::as_str)
            .and_then(position_in)
            .or_else(|| position_in(message));
        if let Some((line, column)) = position {
            out.insert("line".into(), line.into());
            out.insert("column".into(), column.into());
        }
        out.remove("stack");
        Value::Object(out)
    }
}

/// The value of a settled promise, its rejection as an error, or `None` while pending.
fn settled(promise: &JsPromise) -> JsResult<Option<JsValue>> {
    match promise.state() {
        PromiseState::Pending => Ok(None),
        PromiseState::Fulfilled(v) => Ok(Some(v)),
        PromiseState::Rejected(e) => Err(JsError::from_opaque(e)),
    }
}

/// The first `snippet.js:LINE:COL` (or `line L, col C`) in `text` that lies in the snippet
/// as written, in its own coordinates. (Boa names a frame by its last call, so a frame can
/// point into the wrapper; those are skipped rather than reported wrong.)
fn position_in(text: &str) -> Option<(u64, u64)> {
    let numbers = |s: &str, sep: &str| -> Option<(u64, u64)> {
        let (l, rest) = s.split_once(sep)?;
        let l: u64 = l.trim().parse().ok()?;
        let c: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some((l, c.parse().ok()?))
    };
    let lines = RUN.with_borrow(|r| r.lines).max(1);
    let head = HEAD.len() as u64;
    let in_snippet = |(line, column): (u64, u64)| match line {
        1 if column > head => Some((1, column - head)),
        1 => None,
        l if l <= lines => Some((l, column)),
        _ => None,
    };
    let marker = format!("{SNIPPET}:");
    let mut frames = text
        .match_indices(&marker)
        .filter_map(|(i, _)| numbers(&text[i + marker.len()..], ":").and_then(in_snippet));
    if let Some(found) = frames.next() {
        return Some(found);
    }
    let i = text.find("line ")?;
    numbers(&text[i + 5..], ", col").and_then(in_snippet)
}

/// Argument `i` of a native function, as a Rust string.
fn string_arg(args: &[JsValue], i: usize, context: &mut Context) -> JsResult<String> {
    Ok(args
        .get_or_undefined(i)
        .to_string(context)?
        .to_std_string_escaped())
}

/// `__mcpStart(name, argumentsJson)`: a call id, or `{kind, message}` if it could not start.
fn start_call(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let name = string_arg(args, 0, context)?;
    let arguments = string_arg(args, 1, context)?;
    let started = RUN.with_borrow_mut(|run| {
        let id = run.next_id;
        run.next_id += 1;
        if run.calls.len() >= run.max_in_flight.max(1) {
            run.queued.push_back((id, name, arguments));
        } else {
            begin(run, id, &name, &arguments)?;
        }
        Ok::<_, types::Error>(id)
    });
    match started {
        Ok(id) => Ok(id.into()),
        Err(e) => JsValue::from_json(&error_json(&e), context),
    }
}

/// Starts call `id` on the run's session (opened at the first call).
fn begin(run: &mut Run, id: u32, name: &str, arguments: &str) -> Result<(), types::Error> {
    if run.session.is_none() {
        run.session = Some(Session::open(&registry::servers())?);
    }
    if let Some(session) = &run.session {
        run.calls.push((id, session.start_call(name, arguments)?));
    }
    Ok(())
}

/// `__mcpConsole(level, text)`: kept up to the run's console budget, then counted.
fn console(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let level = string_arg(args, 0, context)?;
    let text = string_arg(args, 1, context)?;
    RUN.with_borrow_mut(|run| {
        if run.console_bytes + text.len() > run.console_limit {
            run.console_dropped += 1;
        } else {
            run.console_bytes += text.len();
            run.console.push(json!({"level": level, "text": text}));
        }
    });
    Ok(JsValue::undefined())
}

/// `__mcpProgress(done, total, message)`: the run's progress, to the client of `execute`.
fn progress(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let done = args.get_or_undefined(0).to_number(context)?;
    let total = match args.get_or_undefined(1) {
        v if v.is_null_or_undefined() => None,
        v => Some(v.to_number(context)?),
    };
    let message = match args.get_or_undefined(2) {
        v if v.is_null_or_undefined() => None,
        _ => Some(string_arg(args, 2, context)?),
    };
    mcp_registry::plugin::progress::report(done, total, message.as_deref());
    Ok(JsValue::undefined())
}

struct Component;

impl Guest for Component {
    fn describe() -> String {
        json!({
            "name": "code-mode",
            "description": "Runs a JavaScript snippet (an async function body) with `await tools.<server>.<tool>(args)` bound to the registry",
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
        let console_limit = input["max_console_bytes"]
            .as_u64()
            .map_or(DEFAULT_CONSOLE_BYTES, |n| n as usize);
        let max_in_flight = input["max_in_flight"]
            .as_u64()
            .map_or(DEFAULT_IN_FLIGHT, |n| n as usize);
        RUN.with_borrow_mut(|r| {
            r.console_limit = console_limit;
            r.max_in_flight = max_in_flight;
            r.lines = code.lines().count() as u64;
        });
        let mut answer = ENGINE.with_borrow_mut(|slot| {
            if slot.is_none() {
                *slot = Some(Engine::new()?);
            }
            let engine = slot.as_mut().ok_or("no engine")?;
            Ok::<_, String>(engine.run(code, &input["names"]))
        })?;
        let run = RUN.take();
        answer["console"] = Value::Array(run.console);
        if run.console_dropped > 0 {
            answer["console_dropped"] = run.console_dropped.into();
        }
        // Calls still in flight are cancelled and the session closed as `run` drops them.
        drop(run.calls);
        drop(run.queued);
        drop(run.session);
        Ok(answer.to_string())
    }

    fn wizer_initialize() {
        ENGINE.with_borrow_mut(|slot| {
            if slot.is_none() {
                *slot = Engine::new().ok();
            }
        });
    }
}

export!(Component);
