//! Helpers shared by the bench binaries: locating the repository and building the release
//! artifacts a bench runs (test server, CLI, guest components) through cargo.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::json;

use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `cargo build --release ARGS` and the path of the artifact whose name ends with `wanted`.
pub fn cargo_build(args: &[&str], wanted: &str) -> PathBuf {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args(["build", "--release", "--quiet", "--message-format=json"])
        .args(args)
        .output()
        .expect("cargo build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if let Some(exe) = msg["executable"].as_str().filter(|e| e.ends_with(wanted)) {
            return PathBuf::from(exe);
        }
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(wanted)) {
                return PathBuf::from(f);
            }
        }
    }
    panic!("cargo reported no artifact named {wanted}");
}

/// The `q` quantile (0..=1) of `samples` (NaN for none).
pub fn percentile(samples: &[f64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() - 1) as f64 * q).round() as usize]
}

/// CPU seconds (user + system) a process has used so far; its children not counted.
pub fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14 and stime 15.
    let rest: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        rest.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(14) + ticks(15)) / hz
}

/// One keep-alive HTTP/1.1 connection calling `s__echo` (stateless 2026-07-28 requests, with
/// `authorization` if given) until `end`; the latencies (µs) of calls that started after
/// `warm`, and how many failed.
pub async fn call_loop(
    addr: String,
    authorization: Option<String>,
    warm: Instant,
    end: Instant,
) -> (Vec<f64>, usize) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "s__echo", "arguments": {"message": "hi"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let (mut latencies, mut failures) = (Vec::new(), 0);
    'connect: while Instant::now() < end {
        let Ok(stream) = tokio::net::TcpStream::connect(&addr).await else {
            failures += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let io = hyper_util::rt::TokioIo::new(stream);
        let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(io).await else {
            failures += 1;
            continue;
        };
        tokio::spawn(conn);
        while Instant::now() < end {
            let mut request = hyper::Request::post("/mcp")
                .header("host", &addr)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", "s__echo");
            if let Some(authorization) = &authorization {
                request = request.header("authorization", authorization);
            }
            let request = request
                .body(Full::new(Bytes::from(body.clone())))
                .expect("a valid request");
            let started = Instant::now();
            let Ok(response) = sender.send_request(request).await else {
                failures += 1;
                continue 'connect;
            };
            let ok = response.status() == 200;
            let Ok(answer) = response.into_body().collect().await else {
                failures += 1;
                continue 'connect;
            };
            let answer = answer.to_bytes();
            let elapsed = started.elapsed();
            if !ok || !answer.windows(4).any(|w| w == b"\"hi\"") {
                failures += 1;
            } else if started >= warm {
                latencies.push(elapsed.as_secs_f64() * 1e6);
            }
        }
    }
    (latencies, failures)
}
