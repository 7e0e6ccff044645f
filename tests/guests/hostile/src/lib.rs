//! Hostile test guest: each `op` attacks the host one way. The host must answer each with a
//! clear error for this guest only, and keep serving everyone else.

use std::hint::black_box;

use mcp_registry_guest::bindings::mcp_registry::plugin::registry;
use mcp_registry_guest::{call, call_raw, export_plugin, json, Error, Plugin, Session, Value};

struct Hostile;

fn kind<T>(r: Result<T, Error>) -> Value {
    match r {
        Ok(_) => json!("ok"),
        Err(e) => json!(e.kind()),
    }
}

fn err(e: Error) -> String {
    e.to_string()
}

fn recurse(depth: u64, pad: [u64; 16]) -> u64 {
    let pad = black_box(pad);
    if depth == u64::MAX {
        return pad[0];
    }
    recurse(depth + 1, pad).wrapping_add(pad[(depth % 16) as usize])
}

impl Plugin for Hostile {
    fn describe() -> Value {
        json!({"name": "hostile", "description": "attacks the host", "inputSchema": {"type": "object"}})
    }

    fn run(input: Value) -> Result<Value, String> {
        let server = input
            .get("server")
            .and_then(Value::as_str)
            .unwrap_or("a")
            .to_owned();
        match input.get("op").and_then(Value::as_str).unwrap_or("") {
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recursion" => Ok(json!(recurse(0, [1; 16]))),
            "huge_arguments" => {
                let session = Session::open(&[&server]).map_err(err)?;
                let big = format!("{{\"message\": \"{}\"}}", "x".repeat(8 << 20));
                Ok(json!({"huge": kind(session.call_raw(&format!("{server}__echo"), &big))}))
            }
            "huge_list" => {
                let names: Vec<String> = (0..200_000).map(|i| format!("server{i}")).collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                Ok(json!({"open": kind(Session::open(&refs))}))
            }
            "huge_result" => {
                let session = Session::open(&[&server]).map_err(err)?;
                Ok(
                    json!({"big": kind(session.call(&format!("{server}__big"), &json!({"bytes": 4_000_000})))}),
                )
            }
            "session_loop" => {
                let mut opened = 0;
                loop {
                    match Session::open(&[&server]) {
                        Ok(s) => {
                            std::mem::forget(s);
                            opened += 1;
                        }
                        Err(e) => return Ok(json!({"opened": opened, "error": e.kind()})),
                    }
                }
            }
            "call_flood" => {
                let session = Session::open(&[&server]).map_err(err)?;
                let mut pending = Vec::new();
                loop {
                    match session.start(&format!("{server}__sleep"), &json!({"ms": 60_000})) {
                        Ok(p) => pending.push(p),
                        Err(e) => return Ok(json!({"started": pending.len(), "error": e.kind()})),
                    }
                }
            }
            "call_count" => {
                let mut made = 0;
                loop {
                    match call("nosuch__x", &json!({})) {
                        Err(Error::LimitExceeded(_)) => return Ok(json!({"made": made})),
                        _ => made += 1,
                    }
                }
            }
            "after_crash" => {
                let session = Session::open(&[&server]).map_err(err)?;
                let crash = kind(session.call(&format!("{server}__crash"), &json!({})));
                let again = session
                    .call(&format!("{server}__counter"), &json!({}))
                    .map(|r| r.text());
                Ok(json!({"crash": crash, "again": again.map_err(err)?}))
            }
            "denied" => Ok(json!({
                "server": kind(Session::open(&["b"])),
                "temp_server": kind(call("b__echo", &json!({"message": "x"}))),
                "tool": kind(call(&format!("{server}__crash"), &json!({}))),
                "allowed": kind(call(&format!("{server}__echo"), &json!({"message": "x"}))),
            })),
            "non_object_args" => Ok(json!({
                "array": kind(call_raw(&format!("{server}__echo"), "[]")),
                "number": kind(call_raw(&format!("{server}__echo"), "42")),
                "garbage": kind(call_raw(&format!("{server}__echo"), "\u{0}\u{1}{")),
            })),
            "ambient" => {
                let read = |p: &str| {
                    std::fs::read_to_string(p)
                        .map(|s| s.len())
                        .map_err(|e| e.to_string())
                };
                let dirs = std::fs::read_dir("/")
                    .map(|d| d.count())
                    .map_err(|e| e.to_string());
                let socket = std::net::TcpStream::connect("127.0.0.1:9")
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                Ok(json!({
                    "etc_passwd": read("/etc/passwd").is_ok(),
                    "escape": read("/data/../../etc/passwd").is_ok(),
                    "granted": read("/data/granted.txt").ok(),
                    "write_granted": std::fs::write("/data/new.txt", "x").is_ok(),
                    "list_root": dirs.is_ok(),
                    "env": std::env::vars().collect::<Vec<_>>(),
                    "socket": socket.is_ok(),
                    "wall_clock_secs": now,
                }))
            }
            "stdout_flood" => {
                use std::io::Write;
                let line = "y".repeat(1023) + "\n";
                let mut written = 0usize;
                let mut out = std::io::stdout();
                for _ in 0..(16 << 10) {
                    if out.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                    written += line.len();
                }
                Ok(json!({"written": written}))
            }
            "forge" => {
                // A handle number this instance never received: the component model's
                // per-instance table must reject it (a trap for this guest only).
                let forged = unsafe {
                    registry::Session::from_handle(
                        input.get("handle").and_then(Value::as_u64).unwrap_or(1) as u32,
                    )
                };
                let r = forged.call_tool(&format!("{server}__counter"), "{}");
                std::mem::forget(forged);
                Ok(json!({"forged": r.is_ok()}))
            }
            other => Err(format!("unknown op {other:?}")),
        }
    }
}

export_plugin!(Hostile);
