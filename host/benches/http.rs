//! `serve --http` as its clients see it, side by side in one run: `curl` (one stateless
//! 2026-07-28 POST per process, timed by curl itself), Node's plain `fetch` (the same POST:
//! what the client runtime costs before any SDK work), the TypeScript SDK v1 client (a
//! 2025-11-25 HTTP session) and the v2 client pinned to 2026-07-28 (no session), one client
//! calling in a loop and 20 calling at once. Release build of the CLI; the upstream is the
//! workspace's test server. Writes `target/bench/http.txt`.
//!
//! Numbers only: nothing here asserts a threshold.

#[path = "common/mod.rs"]
mod common;
use common::{cargo_build, percentile, root};

use std::io::BufRead;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// One stateless `tools/call` POST by curl, `N` times; curl's own `time_total` of each.
fn curl(url: &str, n: usize) -> Vec<f64> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "s__echo", "arguments": {"message": "x"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    (0..n + 10)
        .filter_map(|i| {
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{time_total}"])
                .args(["-H", "content-type: application/json"])
                .args(["-H", "accept: application/json, text/event-stream"])
                .args(["-H", "mcp-protocol-version: 2026-07-28"])
                .args(["-H", "mcp-method: tools/call", "-H", "mcp-name: s__echo"])
                .args(["-d", &body, url])
                .output()
                .expect("run curl");
            let s: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
            (i >= 10).then_some(s * 1e6)
        })
        .collect()
}

fn node_client(
    node: &std::path::Path,
    mode: &str,
    url: &str,
    n: usize,
    clients: usize,
) -> (Vec<f64>, f64) {
    let out = Command::new(node)
        .arg(root().join("bench/http_client.mjs"))
        .args([mode, url, &n.to_string(), &clients.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .expect("run node");
    assert!(out.status.success(), "http_client.mjs {mode} failed");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON from http_client.mjs");
    let us = v["us"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    (us, v["wall_s"].as_f64().unwrap_or(f64::NAN))
}

fn main() {
    let node = root().join(".peers/node_modules/.bin/node");
    if !node.exists() {
        eprintln!(
            "note: {} missing; run scripts/install-peers.sh",
            node.display()
        );
        return;
    }
    let test_server = cargo_build(&["-p", "mcp-test-server"], "mcp-test-server");
    let cli = cargo_build(
        &["-p", "mcp-registry-host", "--bin", "mcp-registry"],
        "mcp-registry",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {"s": {"command": test_server.display().to_string()}}}).to_string(),
    )
    .unwrap();
    let mut serve = Command::new(&cli)
        .env("MCP_REGISTRY_CACHE_DIR", dir.path().join("cache"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "--http", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(serve.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("serve printed no address").unwrap();
        if let Some(url) = line.strip_prefix("mcp-registry: serving MCP on ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let n = 500;
    let mut report = format!(
        "{:<58} {:>9} {:>9} {:>10}\n",
        "client (tools/call s__echo through serve --http)", "p50 us", "p99 us", "calls/s"
    );
    let mut row = |label: &str, us: &[f64], calls_per_s: f64| {
        report.push_str(&format!(
            "{label:<58} {:>9.0} {:>9.0} {:>10.0}\n",
            percentile(us, 0.5),
            percentile(us, 0.99),
            calls_per_s
        ));
    };
    let curl_us = curl(&url, 200);
    row(
        "curl, one stateless 2026-07-28 POST (curl's time_total)",
        &curl_us,
        1e6 / percentile(&curl_us, 0.5),
    );
    let (us, wall) = node_client(&node, "fetch", &url, n, 1);
    row(
        "Node fetch, one stateless POST (no SDK), 1 client",
        &us,
        us.len() as f64 / wall,
    );
    for (mode, label) in [
        ("ts1", "TypeScript SDK v1, 2025-11-25 session"),
        (
            "ts2-2026",
            "TypeScript SDK v2, pinned 2026-07-28 (no session)",
        ),
    ] {
        let (us, wall) = node_client(&node, mode, &url, n, 1);
        row(&format!("{label}, 1 client"), &us, us.len() as f64 / wall);
        let (us, wall) = node_client(&node, mode, &url, n / 5, 20);
        row(
            &format!("{label}, 20 clients at once"),
            &us,
            us.len() as f64 / wall,
        );
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let _ = serve.wait();
    print!("{report}");
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("http.txt"), report).unwrap();
}
