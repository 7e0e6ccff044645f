//! Many tenants over HTTP, side by side in one run: 50 tenants x 4 TypeScript SDK clients
//! calling `echo` through `serve --http --tenants` (each with its tenant's API key), the same
//! clients through FastMCP 4.1.6's proxy (`create_proxy` over the same registry file, no
//! tenants), and the same clients calling the test server directly over stdio (one server
//! process each). Reports calls/s, p50/p99 per call, the front end's peak RSS, and the server
//! processes alive at the end; then one quiet tenant's p99 alone, while a tenant floods, and
//! while a hostile tenant sends the worst request of each kind (a long URI against a
//! template, a 3 MB search query, deeply nested code, made-up tool names, a session flood).
//! Writes `target/bench/multitenant.txt`; `-- hostile` prints only the hostile-tenant rows.
//!
//! Needs `.peers/fastmcp-venv` (`scripts/bench.sh` installs `fastmcp==4.1.6` there); without
//! it the FastMCP row is skipped. Numbers only: nothing here asserts a threshold.

#[path = "common/mod.rs"]
mod common;
use common::{cargo_build, cpu_s, percentile, root};

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const TENANTS: usize = 50;
const CLIENTS_PER_TENANT: usize = 4;
const CALLS_PER_CLIENT: usize = 100;
const FLOOD_KEY: &str = "bench-flood-key";
const FLOOD_CLIENTS: usize = 100;
const HOSTILE_KEY: &str = "bench-hostile-key";
const HOSTILE_CLIENTS: usize = 4;

/// The Node driver: `clients` TypeScript SDK clients making `calls` calls each.
fn driver(mode: &str, target: &str, calls: usize, clients: usize) -> Command {
    let mut cmd = Command::new(root().join(".peers/node_modules/.bin/node"));
    cmd.arg(root().join("bench/http_client.mjs")).args([
        mode,
        target,
        &calls.to_string(),
        &clients.to_string(),
    ]);
    cmd
}

/// Runs the Node driver for every tenant's clients; per-call µs and the wall time of all
/// timed calls.
fn drive(mode: &str, target: &str, tool: &str, tokens: &[String]) -> (Vec<f64>, f64) {
    drive_clients(
        mode,
        target,
        tool,
        tokens,
        TENANTS * CLIENTS_PER_TENANT,
        CALLS_PER_CLIENT,
    )
}

fn drive_clients(
    mode: &str,
    target: &str,
    tool: &str,
    tokens: &[String],
    clients: usize,
    calls: usize,
) -> (Vec<f64>, f64) {
    let out = driver(mode, target, calls, clients)
        .env("MCP_TOOL", tool)
        .env("MCP_AUTH_TOKENS", tokens.join(","))
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

/// `(current, peak)` resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn alive_servers(pid_file: &Path) -> usize {
    std::fs::read_to_string(pid_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    !s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(false)
        })
        .count()
}

/// A front end under measurement; SIGTERM and reaped when dropped, so a failed run
/// leaves no server holding the port for the next one.
struct FrontEnd(std::process::Child);

impl Drop for FrontEnd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Starts a front end and waits until it prints `ready` on stderr (its stdout, access logs
/// included, goes nowhere). Panics if it exits first, e.g. because the port is taken.
fn start(mut cmd: Command, ready: &str) -> FrontEnd {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the front end");
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        if line.contains(ready) {
            std::thread::spawn(move || for _ in lines {});
            return FrontEnd(child);
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let _ = child.wait();
    panic!("front end exited before printing {ready:?}:\n{seen}");
}

/// One quiet tenant (4 clients) timed alone, then again while the `flood` tenant's
/// FLOOD_CLIENTS clients call as fast as they can (most of their calls refused by its limits).
fn flood_report(quiet_key: &str) -> String {
    const URL: &str = "http://127.0.0.1:18931/mcp";
    let quiet = || drive_clients("ts1", URL, "s__echo", &[quiet_key.to_string()], 4, 200);
    let (alone, _) = quiet();
    let mut flood = driver("ts1", URL, 1_000_000, FLOOD_CLIENTS)
        .env("MCP_TOOL", "s__echo")
        .env("MCP_AUTH_TOKENS", FLOOD_KEY)
        .env("MCP_IGNORE_ERRORS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the flooding tenant");
    std::thread::sleep(Duration::from_secs(3));
    let (flooded, _) = quiet();
    let _ = flood.kill();
    let _ = flood.wait();
    let (a, f) = (percentile(&alone, 0.99), percentile(&flooded, 0.99));
    format!(
        "\nOne tenant flooding ({FLOOD_CLIENTS} clients; limits in_flight 8, 600 calls/min) while another's 4 clients call:\n\
         {:<44} {:>9} {:>9}\n{:<44} {:>9.0} {:>9.0}\n{:<44} {:>9.0} {:>9.0}\n\
         quiet tenant's p99 while flooded: {:.2}x alone (same machine: the flooding client's own CPU counts)\n",
        "quiet tenant", "p50 us", "p99 us",
        "alone", percentile(&alone, 0.5), a,
        "while another tenant floods", percentile(&flooded, 0.5), f,
        f / a
    )
}

/// Waits until `GET /readyz` answers 200: on a fresh cache serve compiles the code-mode
/// engines first, seconds of both cores that would otherwise be measured as latency.
fn wait_ready(addr: &str) {
    use std::io::{Read, Write};
    for _ in 0..1200 {
        if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
            let _ = write!(
                stream,
                "GET /readyz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
            );
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("serve at {addr} never became ready");
}

/// One raw HTTP/1.1 exchange (connection closed after): whatever comes back is read and
/// dropped. The hostile tenant's requests need no client library.
fn raw_post(addr: &str, headers: &[(&str, &str)], body: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    let mut request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    Some(response)
}

/// The hostile tenant's worst requests, one kind per name: each is sent over and over by
/// HOSTILE_CLIENTS clients while the quiet tenant's clients call.
fn attack(kind: &str, addr: &str, key: &str, stop: &std::sync::atomic::AtomicBool) {
    use std::sync::atomic::Ordering;
    let bearer = format!("Bearer {key}");
    let modern = |method: &'static str, name: String| {
        vec![
            ("authorization", bearer.clone()),
            ("mcp-protocol-version", "2026-07-28".to_owned()),
            ("mcp-method", method.to_owned()),
            ("mcp-name", name),
        ]
    };
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    // A 2025-11-25 session carries the long URI in its body.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "hostile", "version": "1"}}})
    .to_string();
    let session = raw_post(addr, &[("authorization", &bearer)], &init)
        .and_then(|r| {
            r.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("mcp-session-id:")
                    .map(|v| v.trim().to_owned())
            })
        })
        .unwrap_or_default();
    // Each request is built once: the attacker's own CPU (it shares this machine's 2 cores)
    // is not what is measured. Made-up tool names change per request, so those are built
    // each time (small bodies).
    let fixed: Option<(Vec<(&str, String)>, String)> = match kind {
        "long URI" => Some((
            vec![
                ("authorization", bearer.clone()),
                ("mcp-session-id", session.clone()),
                ("mcp-protocol-version", "2025-11-25".to_owned()),
            ],
            json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read",
                   "params": {"uri": format!("file:///{}", "/".repeat(256 << 10))}})
            .to_string(),
        )),
        "3 MB search query" => Some((
            modern("tools/call", "search".into()),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "search", "arguments": {"query": "word ".repeat(600_000)}, "_meta": meta}})
            .to_string(),
        )),
        "250 nested brackets" => Some((
            modern("tools/call", "execute".into()),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "execute", "_meta": meta, "arguments": {
                    "code": format!("return {}1{};", "(".repeat(250), ")".repeat(250))}}})
            .to_string(),
        )),
        "made-up tool names" => None,
        _ => Some((vec![("authorization", bearer.clone())], init.clone())),
    };
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let (headers, body) = match &fixed {
            Some((headers, body)) => (headers.clone(), std::borrow::Cow::Borrowed(body.as_str())),
            None => {
                let name = format!("s__made_up_{n}");
                let body = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {
                    "name": name, "arguments": {}, "_meta": meta}})
                .to_string();
                (modern("tools/call", name), std::borrow::Cow::Owned(body))
            }
        };
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let _ = raw_post(addr, &headers, &body);
    }
}

/// The quiet tenant's p99 alone, then while the hostile tenant sends each worst request.
fn hostile_report(quiet_key: &str) -> String {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const ADDR: &str = "127.0.0.1:18931";
    const URL: &str = "http://127.0.0.1:18931/mcp";
    let quiet = || drive_clients("ts1", URL, "s__echo", &[quiet_key.to_string()], 4, 200);
    let (alone, _) = quiet();
    let a = percentile(&alone, 0.99);
    let mut report = format!(
        "\nA hostile tenant ({HOSTILE_CLIENTS} clients, the worst request of each kind) while another's 4 clients call:\n\
         {:<44} {:>9} {:>9} {:>9}\n{:<44} {:>9.0} {:>9.0} {:>9}\n",
        "quiet tenant", "p50 us", "p99 us", "p99 x",
        "alone", percentile(&alone, 0.5), a, "1.00"
    );
    for kind in [
        "long URI",
        "3 MB search query",
        "250 nested brackets",
        "made-up tool names",
        "session flood",
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let attackers: Vec<_> = (0..HOSTILE_CLIENTS)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || attack(kind, ADDR, HOSTILE_KEY, &stop))
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        let (under, _) = quiet();
        stop.store(true, Ordering::SeqCst);
        for a in attackers {
            let _ = a.join();
        }
        let p99 = percentile(&under, 0.99);
        report.push_str(&format!(
            "{:<44} {:>9.0} {:>9.0} {:>9.2}\n",
            format!("while: {kind}"),
            percentile(&under, 0.5),
            p99,
            p99 / a
        ));
    }
    report
}

fn main() {
    if !root().join(".peers/node_modules/.bin/node").exists() {
        eprintln!("note: .peers missing; run scripts/install-peers.sh");
        return;
    }
    let test_server = cargo_build(&["-p", "mcp-test-server"], "mcp-test-server");
    let cli = cargo_build(
        &["-p", "mcp-registry-host", "--bin", "mcp-registry"],
        "mcp-registry",
    );
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let registry = dir.path().join("registry.json");
    std::fs::write(
        &registry,
        json!({"mcpServers": {"s": {"command": test_server.display().to_string(), "args": ["-"],
                                    "env": {"MCP_TEST_PID_FILE": pid_file.display().to_string()}}}})
        .to_string(),
    )
    .unwrap();
    let keys: Vec<String> = (0..TENANTS).map(|i| format!("bench-key-{i}")).collect();
    let digest = |key: &str| {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    };
    let mut tenants: serde_json::Map<String, Value> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            (
                format!("t{i}"),
                json!({"keys": [digest(key)], "servers": ["s"]}),
            )
        })
        .collect();
    // The flooding tenant, with the limits an operator would give a tenant it does not trust.
    tenants.insert(
        "flood".into(),
        json!({"keys": [digest(FLOOD_KEY)], "servers": ["s"],
               "limits": {"processes": 2, "in_flight": 8, "calls_per_minute": 600}}),
    );
    // The hostile tenant: code mode granted (its worst requests need it), the same limits.
    tenants.insert(
        "hostile".into(),
        json!({"keys": [digest(HOSTILE_KEY)], "servers": ["s"], "code_mode": true,
               "limits": {"processes": 2, "in_flight": 8, "calls_per_minute": 600}}),
    );
    let tenants_file = dir.path().join("tenants.json");
    std::fs::write(&tenants_file, json!({"tenants": tenants}).to_string()).unwrap();

    let mut report = format!(
        "{TENANTS} tenants x {CLIENTS_PER_TENANT} TypeScript SDK clients (v1, HTTP), {CALLS_PER_CLIENT} calls each\n\
         (CPU/call: the front end's own CPU time over the run, warm-up included, per timed call;\n\
         the clients share the same 2 cores, so calls/s is bounded by them too)\n\
         {:<44} {:>9} {:>9} {:>9} {:>12} {:>14} {:>10}\n",
        "front end", "calls/s", "p50 us", "p99 us", "CPU/call us", "RSS/peak MiB", "processes"
    );
    let mut row =
        |label: &str, us: &[f64], wall: f64, cpu: f64, rss: (f64, f64), processes: usize| {
            report.push_str(&format!(
                "{label:<44} {:>9.0} {:>9.0} {:>9.0} {:>12.0} {:>6.1}/{:<7.1} {:>10}\n",
                us.len() as f64 / wall,
                percentile(us, 0.5),
                percentile(us, 0.99),
                cpu * 1e6 / us.len() as f64,
                rss.0,
                rss.1,
                processes
            ));
        };

    // mcp-registry serve --http --tenants: as a user runs it (no code mode) for the tenants'
    // calls and the flood; with code mode, which the hostile tenant's worst requests need, for
    // the hostile rows. Measured once ready (with code mode, once its engines are compiled).
    let serve = |code_mode: bool| {
        let mut cmd = Command::new(&cli);
        cmd.env("MCP_REGISTRY_CACHE_DIR", dir.path().join("cache"))
            .arg("--config")
            .arg(&registry)
            .args(["serve", "--http", "127.0.0.1:18931", "--tenants"])
            .arg(&tenants_file);
        if code_mode {
            cmd.arg("--code-mode");
        }
        let serve = start(cmd, "serving MCP on");
        wait_ready("127.0.0.1:18931");
        serve
    };
    if std::env::args().any(|a| a == "hostile") {
        // `cargo bench --bench multitenant -- hostile`: only the hostile-tenant rows, printed.
        let _serve = serve(true);
        print!("{}", hostile_report(&keys[1]));
        return;
    }
    let plain = serve(false);
    let cpu = cpu_s(plain.0.id());
    let (us, wall) = drive("ts1", "http://127.0.0.1:18931/mcp", "s__echo", &keys);
    let (rss, cpu) = (rss_mib(plain.0.id()), cpu_s(plain.0.id()) - cpu);
    let processes = alive_servers(&pid_file);
    row(
        "mcp-registry serve --http --tenants",
        &us,
        wall,
        cpu,
        rss,
        processes,
    );
    let flood = flood_report(&keys[0]);
    drop(plain);
    std::thread::sleep(Duration::from_millis(500));
    let with_code_mode = serve(true);
    let hostile = hostile_report(&keys[1]);
    drop(with_code_mode);
    std::thread::sleep(Duration::from_millis(500));

    // FastMCP 4.1.6's proxy over the same registry file.
    let fastmcp = root().join(".peers/fastmcp-venv/bin/python");
    if fastmcp.exists() {
        std::fs::write(&pid_file, "").unwrap();
        let mut cmd = Command::new(&fastmcp);
        cmd.arg(root().join("bench/fastmcp_proxy.py"))
            .arg(&registry)
            .arg("18932");
        let proxy = start(cmd, "Uvicorn running");
        let cpu = cpu_s(proxy.0.id());
        let (us, wall) = drive("ts1", "http://127.0.0.1:18932/mcp", "echo", &[]);
        let (rss, cpu) = (rss_mib(proxy.0.id()), cpu_s(proxy.0.id()) - cpu);
        let processes = alive_servers(&pid_file);
        row(
            "FastMCP 4.1.6 create_proxy (no tenants)",
            &us,
            wall,
            cpu,
            rss,
            processes,
        );
        drop(proxy);
    } else {
        eprintln!("note: .peers/fastmcp-venv missing; the FastMCP row is skipped (scripts/bench.sh installs it)");
    }

    // Direct: every client its own test server over stdio, no front end.
    std::fs::write(&pid_file, "").unwrap();
    // Inherited by the driver and, through it, by every server it starts.
    std::env::set_var("MCP_TEST_PID_FILE", &pid_file);
    let (us, wall) = drive("ts1-stdio", &test_server.display().to_string(), "echo", &[]);
    let none = (f64::NAN, f64::NAN);
    let processes = TENANTS * CLIENTS_PER_TENANT;
    row(
        "direct (each client its own server, stdio)",
        &us,
        wall,
        f64::NAN,
        none,
        processes,
    );

    report.push_str(&flood);
    report.push_str(&hostile);
    print!("{report}");
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("multitenant.txt"), report).unwrap();
}
