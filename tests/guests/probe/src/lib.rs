//! Test guest: does what the input's `op` says, so one component covers many host tests.

use mcp_registry_guest::{
    call, call_raw, export_plugin, join_all, json, Error, Plugin, Session, Value,
};

struct Probe;

fn s(input: &Value, key: &str) -> String {
    input
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or("a")
        .to_owned()
}

fn n(input: &Value, key: &str, default: u64) -> u64 {
    input.get(key).and_then(Value::as_u64).unwrap_or(default)
}

fn err(e: Error) -> String {
    e.to_string()
}

fn kind<T>(r: Result<T, Error>) -> Value {
    match r {
        Ok(_) => json!("ok"),
        Err(e) => json!(e.kind()),
    }
}

impl Plugin for Probe {
    fn describe() -> Value {
        json!({"name": "probe", "description": "host test probe", "inputSchema": {"type": "object"}})
    }

    fn run(input: Value) -> Result<Value, String> {
        let server = s(&input, "server");
        match input.get("op").and_then(Value::as_str).unwrap_or("") {
            "session_counter" => {
                let session = Session::open(&[&server]).map_err(err)?;
                let mut counters = Vec::new();
                for _ in 0..n(&input, "n", 3) {
                    counters.push(
                        session
                            .call(&format!("{server}__counter"), &json!({}))
                            .map_err(err)?
                            .text(),
                    );
                }
                let pid = session
                    .call(&format!("{server}__pid"), &json!({}))
                    .map_err(err)?
                    .text();
                Ok(json!({"counters": counters, "pid": pid}))
            }
            "temp_counter" => {
                let mut counters = Vec::new();
                for _ in 0..n(&input, "n", 3) {
                    counters.push(
                        call(&format!("{server}__counter"), &json!({}))
                            .map_err(err)?
                            .text(),
                    );
                }
                Ok(json!({"counters": counters}))
            }
            "leak" => {
                let session = Session::open(&[&server]).map_err(err)?;
                let pid = session
                    .call(&format!("{server}__pid"), &json!({}))
                    .map_err(err)?
                    .text();
                std::mem::forget(session);
                Ok(json!({"pid": pid}))
            }
            "trap" => {
                let session = Session::open(&[&server]).map_err(err)?;
                session
                    .call(&format!("{server}__counter"), &json!({}))
                    .map_err(err)?;
                panic!("probe traps on purpose while holding a session");
            }
            "hold" => {
                let _session = Session::open(&[&server]).map_err(err)?;
                #[allow(clippy::empty_loop)]
                loop {}
            }
            "sleep_concurrent" => {
                let session = Session::open(&[&server]).map_err(err)?;
                let ms = n(&input, "ms", 500);
                let calls = (0..n(&input, "n", 4))
                    .map(|_| session.start(&format!("{server}__sleep"), &json!({"ms": ms})))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?;
                let ok = join_all(calls).into_iter().filter(|r| r.is_ok()).count();
                let most = session
                    .call(&format!("{server}__most_sleeping"), &json!({}))
                    .map(|r| r.text())
                    .map_err(err)?;
                Ok(json!({"ok": ok, "most_at_once": most}))
            }
            "errors" => {
                let session = Session::open(&[&server]).map_err(err)?;
                let echo = format!("{server}__echo");
                Ok(json!({
                    "array_args": kind(session.call_raw(&echo, "[1, 2]")),
                    "bad_json_args": kind(session.call_raw(&echo, "{not json")),
                    "unknown_tool": kind(session.call(&format!("{server}__nope"), &json!({}))),
                    "unknown_server": kind(call("nosuch__echo", &json!({}))),
                    "unknown_server_session": kind(Session::open(&["nosuch"])),
                    "bad_name": kind(session.call("echo", &json!({}))),
                    "temp_array_args": kind(call_raw(&echo, "3")),
                    "tool_error": session.call(&format!("{server}__fail"), &json!({"message": "m"})).map(|r| r.is_error).map_err(err)?,
                    "still_works": session.call(&echo, &json!({"message": "ok"})).map(|r| r.text()).map_err(err)?,
                }))
            }
            "cancel" => {
                let session = Session::open(&[&server]).map_err(err)?;
                let pending = session
                    .start(&format!("{server}__sleep"), &json!({"ms": 30_000}))
                    .map_err(err)?;
                // Let the request reach the server, then drop it: the host must cancel it.
                session
                    .call(&format!("{server}__sleep"), &json!({"ms": 100}))
                    .map_err(err)?;
                drop(pending);
                for _ in 0..250 {
                    let n = session
                        .call(&format!("{server}__cancelled"), &json!({}))
                        .map_err(err)?
                        .text();
                    if n != "0" {
                        return Ok(json!({"cancelled": n}));
                    }
                    session
                        .call(&format!("{server}__sleep"), &json!({"ms": 20}))
                        .map_err(err)?;
                }
                Ok(json!({"cancelled": "0"}))
            }
            "drop_session_with_calls_in_flight" => {
                let session = Session::open(&[&server]).map_err(err)?;
                let pending = session
                    .start(&format!("{server}__sleep"), &json!({"ms": 30_000}))
                    .map_err(err)?;
                drop(session);
                Ok(json!({"outcome": kind(pending.wait())}))
            }
            "bench" => {
                let session = Session::open(&[&server]).map_err(err)?;
                let echo = format!("{server}__echo");
                let args = json!({"message": "x"});
                for _ in 0..n(&input, "n", 0) {
                    session.call(&echo, &args).map_err(err)?;
                }
                Ok(json!({}))
            }
            "noop" => Ok(json!({})),
            "calls" => {
                // Each of `calls` ({tool, arguments}) in order, with temporary calls: its
                // text, or its error by kind and message.
                let calls = input.get("calls").and_then(Value::as_array).cloned();
                let outcomes: Vec<Value> = calls
                    .unwrap_or_default()
                    .iter()
                    .map(|c| {
                        let tool = c.get("tool").and_then(Value::as_str).unwrap_or_default();
                        let arguments = c.get("arguments").cloned().unwrap_or(json!({}));
                        match call(tool, &arguments) {
                            Ok(r) => json!({"text": r.text()}),
                            Err(e) => json!({"error": e.kind(), "message": e.message()}),
                        }
                    })
                    .collect();
                Ok(json!({"calls": outcomes}))
            }
            "grants" => {
                // What this plugin may reach: the servers it sees, and how a listing, a
                // session and a call naming `server` fare (error kind and message).
                let outcome = |r: Result<(), Error>| match r {
                    Ok(()) => json!({"kind": "ok"}),
                    Err(e) => json!({"kind": e.kind(), "message": e.message()}),
                };
                Ok(json!({
                    "servers": mcp_registry_guest::servers(),
                    "list": outcome(mcp_registry_guest::list_tools(&[&server]).map(|_| ())),
                    "session": outcome(Session::open(&[&server]).map(|_| ())),
                    "call": outcome(call(&format!("{server}__echo"), &json!({"message": "x"})).map(|_| ())),
                }))
            }
            "session_call" => {
                // One session on `server`: its tool list, then `tool` with `arguments`; an
                // error is reported by kind, not failed, so a test sees which kind it was.
                let session = Session::open(&[&server]).map_err(err)?;
                let tools: Vec<String> = session
                    .list_tools()
                    .map_err(err)?
                    .into_iter()
                    .map(|t| t.name)
                    .collect();
                let name = format!("{server}__{}", s(&input, "tool"));
                let arguments = input.get("arguments").cloned().unwrap_or(json!({}));
                let result = match session.call(&name, &arguments) {
                    Ok(r) => json!({"text": r.text(), "is_error": r.is_error}),
                    Err(e) => json!({"error": e.kind(), "message": e.message()}),
                };
                Ok(json!({"tools": tools, "result": result}))
            }
            "progress" => {
                // 2 repeats and 1.5 goes back: the host must drop both.
                for (p, m) in [
                    (1.0, "one"),
                    (2.0, "two"),
                    (2.0, "again"),
                    (1.5, "back"),
                    (3.0, "done"),
                ] {
                    mcp_registry_guest::report_progress(p, Some(3.0), Some(m));
                }
                Ok(json!({"reported": 5}))
            }
            "concurrent_total" => {
                // n calls started at once on one session; the total time of the batch.
                let session = Session::open(&[&server]).map_err(err)?;
                let echo = format!("{server}__echo");
                let args = json!({"message": "x"});
                let mut totals = Vec::new();
                for _ in 0..n(&input, "batches", 1) {
                    let t = std::time::Instant::now();
                    let calls = (0..n(&input, "n", 10))
                        .map(|_| session.start(&echo, &args))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(err)?;
                    for r in join_all(calls) {
                        r.map_err(err)?;
                    }
                    totals.push(t.elapsed().as_micros() as u64);
                }
                Ok(json!({"totals_us": totals}))
            }
            "latencies" => {
                // One tenant of the multi-tenant benchmark: a session, n timed calls, drop.
                let session = Session::open(&[&server]).map_err(err)?;
                let echo = format!("{server}__echo");
                let args = json!({"message": "x"});
                let mut us = Vec::new();
                let warmup = n(&input, "warmup", 0);
                for i in 0..n(&input, "n", 10) + warmup {
                    let t = std::time::Instant::now();
                    session.call(&echo, &args).map_err(err)?;
                    if i >= warmup {
                        us.push(t.elapsed().as_nanos() as u64);
                    }
                }
                Ok(json!({"ns": us}))
            }
            "fail" => Err("the probe was asked to fail".into()),
            other => Err(format!("unknown op {other:?}")),
        }
    }
}

export_plugin!(Probe);
