//! The compatibility matrix: MCP servers and clients this project did not write, through
//! every path a user takes, and `docs/compatibility.md` written from what the run saw.
//!
//! - Servers (rows) through `call` (the CLI, a temporary connection), a guest session (a Wasm
//!   plugin run by the CLI), and `serve` on stdio and streamable HTTP (driven by the Python
//!   `mcp` 2.3 client).
//! - Clients (rows) of `serve` on stdio and HTTP, in front of a 2025-11-25 upstream (npm
//!   `server-memory`) and a 2026-07-28 one (the workspace's test server): each lists tools,
//!   calls both upstreams, calls a counter three times (one upstream process, whatever the
//!   client's era) and an unknown tool (a JSON-RPC error).
//! - Input requests (elicitation, sampling) of a 2025-11-25 and a 2026-07-28 upstream through
//!   `serve`, answered by Python and TypeScript SDK clients of both eras on both transports,
//!   and the same clients' progress notifications, cancelled calls and tool-list changes;
//!   log messages through `serve` at the level the client of either era asked for; tasks
//!   through `serve` with the Tasks extension's own TypeScript client.
//!
//! Peers are pinned and installed by `scripts/install-peers.sh`; with `CI=true` every one is
//! mandatory. The doc is regenerated when it differs; under CI a stale doc fails the test, so
//! the committed one is always what a run saw.

use std::fmt::Write as _;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::*;
use serde_json::{json, Value};

/// One cell of the matrix.
#[derive(Debug, Clone)]
enum Cell {
    Pass(String),
    Fail(String),
    NotApplicable(String),
}

impl Cell {
    fn is_pass(&self) -> bool {
        matches!(self, Cell::Pass(_))
    }

    fn markdown(&self) -> String {
        match self {
            Cell::Pass(note) if note.is_empty() => "pass".into(),
            Cell::Pass(note) => format!("pass ({note})"),
            Cell::Fail(_) => "**FAIL**".into(),
            Cell::NotApplicable(why) => format!("n/a ({why})"),
        }
    }
}

struct Table {
    title: String,
    intro: String,
    columns: Vec<String>,
    rows: Vec<(String, Vec<Cell>)>,
}

impl Table {
    fn markdown(&self) -> String {
        let mut md = format!("## {}\n\n{}\n\n| |", self.title, self.intro);
        for c in &self.columns {
            write!(md, " {c} |").unwrap();
        }
        md.push_str("\n|---|");
        md.push_str(&"---|".repeat(self.columns.len()));
        md.push('\n');
        for (row, cells) in &self.rows {
            write!(md, "| {row} |").unwrap();
            for cell in cells {
                write!(md, " {} |", cell.markdown()).unwrap();
            }
            md.push('\n');
        }
        md
    }

    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (row, cells) in &self.rows {
            for (column, cell) in self.columns.iter().zip(cells) {
                if let Cell::Fail(why) = cell {
                    out.push(format!("{row} / {column}: {why}"));
                }
            }
        }
        out
    }
}

/// Every peer the matrix needs, or the name of the first one missing.
struct Peers {
    node: PathBuf,
    npm: PathBuf,
    python2: PathBuf,
    python1: PathBuf,
    time_server: PathBuf,
    inspector: PathBuf,
}

impl Peers {
    fn find() -> Option<Peers> {
        let dir = peers_dir();
        let npm = dir.join("node_modules/@modelcontextprotocol");
        Some(Peers {
            node: peer(dir.join("node_modules/.bin/node"), "Node 22 (npm node@22)")?,
            python2: peer(dir.join("venv/bin/python"), "PyPI mcp 2.3.0 (venv)")?,
            python1: peer(
                dir.join("venv-mcp1/bin/python"),
                "PyPI mcp 1.6.0 (venv-mcp1)",
            )?,
            time_server: peer(dir.join("venv/bin/mcp-server-time"), "PyPI mcp-server-time")?,
            inspector: peer(
                npm.join("inspector/clients/launcher/build/index.js"),
                "npm @modelcontextprotocol/inspector",
            )?,
            npm: peer(npm.join("server-memory/dist/index.js"), "npm server-memory")
                .and_then(|_| {
                    peer(
                        npm.join("server-filesystem/dist/index.js"),
                        "npm server-filesystem",
                    )
                })
                .and_then(|_| {
                    peer(
                        npm.join("sdk/package.json"),
                        "npm @modelcontextprotocol/sdk",
                    )
                })
                .and_then(|_| {
                    peer(
                        npm.join("client/package.json"),
                        "npm @modelcontextprotocol/client",
                    )
                })
                .map(|_| npm)?,
        })
    }

    fn npm_server(&self, package: &str, args: &[&str]) -> Value {
        let mut argv = vec![self
            .npm
            .join(package)
            .join("dist/index.js")
            .display()
            .to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        json!({"command": self.node.display().to_string(), "args": argv})
    }

    fn npm_version(&self, package: &str) -> String {
        let text = std::fs::read_to_string(self.npm.join(package).join("package.json"))
            .unwrap_or_default();
        serde_json::from_str::<Value>(&text).unwrap_or_default()["version"]
            .as_str()
            .unwrap_or("?")
            .to_owned()
    }

    fn pypi_version(python: &Path, package: &str) -> String {
        let out = Command::new(python)
            .args([
                "-c",
                &format!("import importlib.metadata as m; print(m.version('{package}'))"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// What the matrix needs of a scratch registry beyond the CLI.
trait ServeFrom {
    fn serve_argv(&self) -> Vec<String>;
    fn serve_http(&self) -> (std::process::Child, String);
}

impl ServeFrom for Scratch {
    /// The command line that starts `serve` on stdio, for clients that spawn it.
    fn serve_argv(&self) -> Vec<String> {
        vec![
            env!("CARGO_BIN_EXE_mcp-registry").into(),
            "--config".into(),
            self.config.display().to_string(),
            "serve".into(),
            // Interop, not start-up time: under a loaded CI machine a Node server can take
            // longer than the default 5 s to list, and these clients list once.
            "--list-wait".into(),
            "30".into(),
        ]
    }

    /// `serve --http` on a free loopback port; the child and its URL.
    fn serve_http(&self) -> (std::process::Child, String) {
        let mut child = self
            .cli(&["serve", "--http", "127.0.0.1:0", "--list-wait", "30"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("serve --http exited before it printed its address")
                .unwrap();
            if let Some(url) = line.strip_prefix("mcp-registry: serving MCP on ") {
                break url.trim().to_owned();
            }
        };
        // Keep draining stderr so serve never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (child, url)
    }
}

fn stop(mut child: std::process::Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

/// A server row: its registry entry, a tool to call, its arguments, and what the result
/// must contain.
struct ServerCase {
    name: &'static str,
    label: String,
    entry: Value,
    tool: &'static str,
    arguments: Value,
    expect: String,
}

fn check_text(text: &str, expect: &str) -> Cell {
    if text.contains(expect) {
        Cell::Pass(String::new())
    } else {
        Cell::Fail(format!("expected {expect:?} in {text:?}"))
    }
}

fn via_call(s: &Scratch, case: &ServerCase) -> Cell {
    let out = s
        .cli(&[
            "call",
            &format!("{}__{}", case.name, case.tool),
            &case.arguments.to_string(),
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        return Cell::Fail(format!(
            "exit {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    check_text(&String::from_utf8_lossy(&out.stdout), &case.expect)
}

fn via_guest(s: &Scratch, probe: &Path, case: &ServerCase) -> Cell {
    let input = json!({"op": "session_call", "server": case.name, "tool": case.tool,
                       "arguments": case.arguments})
    .to_string();
    let out = s
        .cli(&[
            "run",
            probe.to_str().unwrap(),
            "--input",
            &input,
            "--allow-server",
            case.name,
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        return Cell::Fail(format!(
            "exit {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    match v["result"]["text"].as_str() {
        Some(text) if v["result"]["is_error"] == false => check_text(text, &case.expect),
        _ => Cell::Fail(format!("guest saw {v}")),
    }
}

/// Runs a client driver script (the `serve` it may spawn keeps its cache in `s`); its JSON
/// report.
fn drive(s: &Scratch, program: &Path, script: &str, args: &[&str]) -> Value {
    drive_with(s, program, script, args, &[])
}

/// [`drive`] with more environment for the driver.
fn drive_with(
    s: &Scratch,
    program: &Path,
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Value {
    let out = Command::new(program)
        .env("MCP_REGISTRY_CACHE_DIR", s.cache())
        .envs(env.iter().copied())
        .arg(workspace_root().join("tests/peers").join(script))
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        json!({"fatal": format!("no JSON report; stderr: {}", String::from_utf8_lossy(&out.stderr))})
    });
    report
}

/// `serve` on one transport, driven by the Python 2.3 client (legacy mode) calling every
/// server's tool; one cell per server.
fn via_serve(
    peers: &Peers,
    s: &Scratch,
    transport: &str,
    target: &str,
    cases: &[ServerCase],
) -> Vec<Cell> {
    let calls: Vec<Value> = cases
        .iter()
        .map(|c| json!([format!("{}__{}", c.name, c.tool), c.arguments]))
        .collect();
    let report = drive(
        s,
        &peers.python2,
        "compat_client.py",
        &["legacy", transport, target, &Value::from(calls).to_string()],
    );
    cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let call = &report["calls"][i];
            if let Some(fatal) = report.get("fatal") {
                return Cell::Fail(fatal.to_string());
            }
            if let Some(info) = call.get("server_info").filter(|i| *i != "mcp-registry") {
                return Cell::Fail(format!("the result carries the upstream's identity {info}"));
            }
            match call["text"].as_str() {
                Some(text) if call["ok"] == true => check_text(text, &case.expect),
                _ => Cell::Fail(format!("{call}")),
            }
        })
        .collect()
}

fn servers_table(peers: &Peers, probe: &Path) -> Table {
    let files = tempfile::tempdir().unwrap();
    let files_dir = files.path().display().to_string();
    let memory_file = files.path().join("memory.jsonl").display().to_string();
    let mut memory = peers.npm_server("server-memory", &[]);
    memory["env"] = json!({"MEMORY_FILE_PATH": memory_file});
    let py = |python: &Path, script: &str| {
        json!({"command": python.display().to_string(),
               "args": [workspace_root().join("tests/peers").join(script).display().to_string()]})
    };
    let echo = || json!({"message": "compat"});
    let cases = vec![
        ServerCase {
            name: "everything",
            label: format!(
                "npm server-everything {}",
                peers.npm_version("server-everything")
            ),
            entry: peers.npm_server("server-everything", &[]),
            tool: "echo",
            arguments: echo(),
            expect: "compat".into(),
        },
        ServerCase {
            name: "memory",
            label: format!("npm server-memory {}", peers.npm_version("server-memory")),
            entry: memory,
            tool: "read_graph",
            arguments: json!({}),
            expect: "entities".into(),
        },
        ServerCase {
            name: "filesystem",
            label: format!(
                "npm server-filesystem {}",
                peers.npm_version("server-filesystem")
            ),
            entry: peers.npm_server("server-filesystem", &[&files_dir]),
            tool: "list_allowed_directories",
            arguments: json!({}),
            expect: files_dir.clone(),
        },
        ServerCase {
            name: "time",
            label: format!(
                "PyPI mcp-server-time {}",
                Peers::pypi_version(&peers.python2, "mcp-server-time")
            ),
            entry: json!({"command": peers.time_server.display().to_string()}),
            tool: "get_current_time",
            arguments: json!({"timezone": "UTC"}),
            expect: "UTC".into(),
        },
        ServerCase {
            name: "fastmcp1",
            label: format!(
                "FastMCP on PyPI mcp {}",
                Peers::pypi_version(&peers.python1, "mcp")
            ),
            entry: py(&peers.python1, "fastmcp1_server.py"),
            tool: "echo",
            arguments: echo(),
            expect: "compat".into(),
        },
        ServerCase {
            name: "mcpserver2",
            label: format!(
                "MCPServer on PyPI mcp {}",
                Peers::pypi_version(&peers.python2, "mcp")
            ),
            entry: py(&peers.python2, "py_server.py"),
            tool: "echo",
            arguments: echo(),
            expect: "compat".into(),
        },
    ];
    let servers: serde_json::Map<String, Value> = cases
        .iter()
        .map(|c| (c.name.to_string(), c.entry.clone()))
        .collect();
    let s = Scratch::new(Value::Object(servers));
    // Every row's CLI cells, and `serve` on stdio and HTTP, at once: each spawns processes of
    // its own, and most of their time is spent waiting for them.
    let (mut rows, stdio, http) = std::thread::scope(|scope| {
        let rows: Vec<_> = cases
            .iter()
            .map(|case| {
                let s = &s;
                scope.spawn(move || {
                    (
                        case.label.clone(),
                        vec![via_call(s, case), via_guest(s, probe, case)],
                    )
                })
            })
            .collect();
        let stdio = scope.spawn(|| {
            let argv = serde_json::to_string(&s.serve_argv()).unwrap();
            via_serve(peers, &s, "stdio", &argv, &cases)
        });
        let http = scope.spawn(|| {
            let (child, url) = s.serve_http();
            let cells = via_serve(peers, &s, "http", &url, &cases);
            stop(child);
            cells
        });
        let rows: Vec<(String, Vec<Cell>)> = rows.into_iter().map(|r| r.join().unwrap()).collect();
        (rows, stdio.join().unwrap(), http.join().unwrap())
    });
    for ((_, cells), (a, b)) in rows.iter_mut().zip(stdio.into_iter().zip(http)) {
        cells.push(a);
        cells.push(b);
    }
    Table {
        title: "Servers".into(),
        intro: "Each server's tool called through the CLI (`call`, a temporary connection), a \
                guest session (a Wasm plugin under `run`), and `serve` on stdio and on \
                streamable HTTP (driven by the Python `mcp` 2.3 client). Every server is \
                configured with the defaults (`\"protocol\": \"auto\"`)."
            .into(),
        columns: ["call", "guest session", "serve (stdio)", "serve (HTTP)"]
            .map(String::from)
            .to_vec(),
        rows,
    }
}

/// Judges a client driver's report (see `tests/peers/compat_client.py`).
fn judge_client(report: &Value) -> Cell {
    if let Some(why) = report.get("unsupported") {
        return Cell::NotApplicable(why.as_str().unwrap_or("unsupported").to_owned());
    }
    let mut problems = Vec::new();
    for key in ["fatal", "timeout"] {
        if let Some(v) = report.get(key) {
            problems.push(format!("{key}: {v}"));
        }
    }
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for tool in ["memory__read_graph", "modern__echo"] {
        if !tools.contains(&tool) {
            problems.push(format!("{tool} not listed"));
        }
    }
    let graph = &report["memory_read_graph"];
    if graph["ok"] != true || !graph["text"].as_str().unwrap_or("").contains("entities") {
        problems.push(format!("memory__read_graph: {graph}"));
    }
    let echo = &report["echo"];
    if echo["ok"] != true || echo["text"] != "compat" {
        problems.push(format!("modern__echo: {echo}"));
    }
    // Three calls, one upstream process: consecutive counts (the stateless HTTP pool is
    // shared, so it need not start at 1).
    let counts: Vec<i64> = report["counter"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    if counts.len() != 3 || counts.windows(2).any(|w| w[1] != w[0] + 1) {
        problems.push(format!("modern__counter: {}", report["counter"]));
    }
    if report["unknown_tool"]["kind"] != "jsonrpc-error" {
        problems.push(format!("unknown tool: {}", report["unknown_tool"]));
    }
    if problems.is_empty() {
        Cell::Pass(
            report["protocol_version"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    } else {
        Cell::Fail(problems.join("; "))
    }
}

/// The inspector CLI: `tools/call` of both upstreams.
fn via_inspector(peers: &Peers, s: &Scratch, target: &[String]) -> Cell {
    let home = tempfile::tempdir().unwrap();
    let call = |tool: &str, args: &[&str]| {
        let mut cmd = Command::new(&peers.node);
        cmd.arg(&peers.inspector)
            .env("HOME", home.path())
            .env("MCP_REGISTRY_CACHE_DIR", s.cache())
            .args(["--cli", "-q", "--format", "json"]);
        let is_url = target.len() == 1;
        if is_url {
            cmd.arg(&target[0]);
        }
        cmd.args(["--method", "tools/call", "--tool-name", tool])
            .args(args);
        if !is_url {
            cmd.arg("--").args(target);
        }
        let out = cmd.output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (
            out.status,
            v,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mut problems = Vec::new();
    let (status, v, err) = call("modern__echo", &["--tool-arg", "message=inspected"]);
    if !status.success() || v["result"]["content"][0]["text"] != "inspected" {
        problems.push(format!("modern__echo: {status} {v} {err}"));
    }
    let (status, v, err) = call("memory__read_graph", &[]);
    let text = v["result"]["content"][0]["text"].as_str().unwrap_or("");
    if !status.success() || !text.contains("entities") {
        problems.push(format!("memory__read_graph: {status} {v} {err}"));
    }
    if problems.is_empty() {
        Cell::Pass(String::new())
    } else {
        Cell::Fail(problems.join("; "))
    }
}

fn clients_table(peers: &Peers) -> Table {
    let files = tempfile::tempdir().unwrap();
    let mut memory = peers.npm_server("server-memory", &[]);
    memory["env"] =
        json!({"MEMORY_FILE_PATH": files.path().join("memory.jsonl").display().to_string()});
    let s = Scratch::new(json!({
        "memory": memory,
        "modern": {"command": test_server().display().to_string()},
    }));
    let argv = serde_json::to_string(&s.serve_argv()).unwrap();

    let py2 = Peers::pypi_version(&peers.python2, "mcp");
    let py1 = Peers::pypi_version(&peers.python1, "mcp");
    let ts1 = peers.npm_version("sdk");
    let ts2 = peers.npm_version("client");
    let node = peers.node.as_path();
    let clients: Vec<(String, &Path, &str, &str)> = vec![
        (
            format!("Python mcp {py1} `ClientSession`"),
            &peers.python1,
            "compat_client.py",
            "mcp1",
        ),
        (
            format!("Python mcp {py2} `Client(mode=\"legacy\")`"),
            &peers.python2,
            "compat_client.py",
            "legacy",
        ),
        (
            format!("Python mcp {py2} `Client(mode=\"auto\")`"),
            &peers.python2,
            "compat_client.py",
            "auto",
        ),
        (
            format!("Python mcp {py2} `Client(mode=\"2026-07-28\")`"),
            &peers.python2,
            "compat_client.py",
            "2026-07-28",
        ),
        (
            format!("TypeScript SDK v1 (`@modelcontextprotocol/sdk` {ts1})"),
            node,
            "compat_client.mjs",
            "ts1",
        ),
        (
            format!("TypeScript SDK v2 (`@modelcontextprotocol/client` {ts2}), default"),
            node,
            "compat_client.mjs",
            "ts2-legacy",
        ),
        (
            format!("TypeScript SDK v2 {ts2}, `versionNegotiation: auto`"),
            node,
            "compat_client.mjs",
            "ts2-auto",
        ),
        (
            format!("TypeScript SDK v2 {ts2}, pinned to 2026-07-28"),
            node,
            "compat_client.mjs",
            "ts2-2026",
        ),
    ];
    // Each client at once, each with a `serve` of its own on both transports (one HTTP
    // `serve` for all would share one counter among them).
    let rows = std::thread::scope(|scope| {
        let (s, argv) = (&s, &argv);
        let mut rows: Vec<_> = clients
            .into_iter()
            .map(|(label, program, script, mode)| {
                scope.spawn(move || {
                    let stdio = judge_client(&drive(s, program, script, &[mode, "stdio", argv]));
                    let (child, url) = s.serve_http();
                    let http = judge_client(&drive(s, program, script, &[mode, "http", &url]));
                    stop(child);
                    (label, vec![stdio, http])
                })
            })
            .collect();
        rows.push(scope.spawn(move || {
            let (child, url) = s.serve_http();
            let cells = vec![
                via_inspector(peers, s, &s.serve_argv()),
                via_inspector(peers, s, std::slice::from_ref(&url)),
            ];
            stop(child);
            (
                format!("Inspector CLI {}", peers.npm_version("inspector")),
                cells,
            )
        }));
        rows.into_iter().map(|r| r.join().unwrap()).collect()
    });
    Table {
        title: "Clients of `serve`".into(),
        intro: "Each client in front of a 2025-11-25 upstream (npm `server-memory`) and a \
                2026-07-28 one (the workspace's test server): it lists tools, calls both, calls \
                a counter three times (consecutive counts: one upstream process) and an unknown \
                tool (a JSON-RPC error). The version in a cell is the one the client negotiated \
                with `serve`. The inspector CLI calls both upstreams."
            .into(),
        columns: vec!["stdio".into(), "streamable HTTP".into()],
        rows,
    }
}

/// A registry of the test server twice: `legacy` opened with 2025-11-25, `modern` with
/// 2026-07-28 (the probe finds it).
fn both_eras() -> Scratch {
    Scratch::new(json!({
        "legacy": {"command": test_server().display().to_string(), "protocol": "legacy"},
        "modern": {"command": test_server().display().to_string()},
    }))
}

/// Each client (row label, program, driver script, mode) makes `calls` through `serve` on stdio
/// and on streamable HTTP, all clients at once, each with a `serve` of its own; `judge` turns
/// one transport's report into its cells.
fn both_transports(
    s: &Scratch,
    clients: Vec<(String, &Path, &str, &str)>,
    calls: &str,
    env: &[(&str, &str)],
    judge: &(dyn Fn(&Value) -> Vec<Cell> + Sync),
) -> Vec<(String, Vec<Cell>)> {
    let argv = serde_json::to_string(&s.serve_argv()).unwrap();
    std::thread::scope(|scope| {
        let argv = &argv;
        let rows: Vec<_> = clients
            .into_iter()
            .map(|(label, program, script, mode)| {
                scope.spawn(move || {
                    let args = [mode, "stdio", argv.as_str(), calls];
                    let mut cells = judge(&drive_with(s, program, script, &args, env));
                    let (child, url) = s.serve_http();
                    let args = [mode, "http", url.as_str(), calls];
                    cells.extend(judge(&drive_with(s, program, script, &args, env)));
                    stop(child);
                    (label, cells)
                })
            })
            .collect();
        rows.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

/// What an upstream does during a call besides answering it, through `serve`, for clients of
/// both eras on both transports, in front of upstreams of both eras; one run, two tables:
/// - the questions it asks its client (elicitation, sampling): asked with a request in
///   2025-11-25, with an input request in 2026-07-28; both must reach a client of either era
///   and come back with its answer;
/// - its progress notifications, and a call its client gives up (the upstream must hear of it);
/// - a change of its tool list, which the client must hear of (on its `subscriptions/listen`
///   in 2026-07-28, as a notification in 2025-11-25) and see in its next `tools/list`.
fn interactive_tables(peers: &Peers) -> [Table; 3] {
    let s = both_eras();
    let py2 = Peers::pypi_version(&peers.python2, "mcp");
    let calls = json!([
        ["legacy__test_elicitation", {"message": "who asks"}],
        ["modern__test_elicitation", {"message": "who asks"}],
        ["legacy__test_sampling", {"prompt": "a question"}],
        ["modern__test_sampling", {"prompt": "a question"}],
        ["legacy__test_tool_with_progress", {}],
        ["modern__test_tool_with_progress", {}],
        ["legacy__sleep", {"ms": 30000}, "cancel"],
        ["modern__sleep", {"ms": 30000}, "cancel"],
        ["legacy__cancelled", {}],
        ["modern__cancelled", {}],
    ])
    .to_string();
    let expected = [
        r#"User response: action=accept, content={"email":"a@example.org","username":"who asks"}"#,
        r#"User response: action=accept, content={"email":"a@example.org","username":"who asks"}"#,
        "LLM response: echo of a question",
        "LLM response: echo of a question",
        "progress done",
        "progress done",
        "cancelled",
        "cancelled",
        "1",
        "1",
    ];
    // Per upstream era (legacy, modern): one input cell, then one progress-and-cancel cell.
    let judge = |report: &Value| -> Vec<Cell> {
        let calls = &report["calls"];
        let cell = |i: usize| match report.get("fatal").or(report.get("timeout")) {
            Some(fatal) => Cell::Fail(fatal.to_string()),
            None => match calls[i]["text"].as_str() {
                Some(text) if calls[i]["ok"] == true => check_text(text, expected[i]),
                _ => Cell::Fail(calls[i].to_string()),
            },
        };
        let all = |indices: &[usize], note: String| match indices
            .iter()
            .map(|i| cell(*i))
            .find(|c| !matches!(c, Cell::Pass(_)))
        {
            Some(failed) => failed,
            None => Cell::Pass(note),
        };
        let version = report["protocol_version"].as_str().unwrap_or("").to_owned();
        let input =
            [(0, 2), (1, 3)].map(|(elicit, sample)| all(&[elicit, sample], version.clone()));
        let features = [(4, 6, 8), (5, 7, 9)].map(|(progress, cancel, heard)| {
            let notes = calls[progress]["progress"].as_u64().unwrap_or(0);
            if notes == 0 && cell(progress).is_pass() {
                return Cell::Fail(format!("no progress notification: {}", calls[progress]));
            }
            all(&[progress, cancel, heard], version.clone())
        });
        let changes = ["legacy", "modern"].map(|server| {
            let change = &report["changes"][server];
            match report.get("fatal").or(report.get("timeout")) {
                Some(fatal) => Cell::Fail(fatal.to_string()),
                None if change["ok"] == true => Cell::Pass(version.clone()),
                None => Cell::Fail(change.to_string()),
            }
        });
        input.into_iter().chain(features).chain(changes).collect()
    };
    let ts2 = peers.npm_version("client");
    let clients: Vec<(String, &Path, &str, &str)> = vec![
        (
            format!("Python mcp {py2} `Client(mode=\"legacy\")`"),
            &peers.python2,
            "compat_client.py",
            "legacy",
        ),
        (
            format!("Python mcp {py2} `Client(mode=\"2026-07-28\")`"),
            &peers.python2,
            "compat_client.py",
            "2026-07-28",
        ),
        (
            format!("TypeScript SDK v2 {ts2}, default"),
            &peers.node,
            "compat_client.mjs",
            "ts2-legacy",
        ),
        (
            format!("TypeScript SDK v2 {ts2}, pinned to 2026-07-28"),
            &peers.node,
            "compat_client.mjs",
            "ts2-2026",
        ),
    ];
    // Cells come per transport as [input, progress and cancellation, list changes], each for
    // a legacy and a modern upstream: each table takes its part of both transports.
    let changes = [("MCP_COMPAT_CHANGES", r#"["legacy", "modern"]"#)];
    let rows = both_transports(&s, clients, &calls, &changes, &judge);
    let part = |offset: usize| -> Vec<(String, Vec<Cell>)> {
        rows.iter()
            .map(|(label, cells)| {
                let picked = [offset, offset + 1, offset + 6, offset + 7];
                (
                    label.clone(),
                    picked.iter().map(|i| cells[*i].clone()).collect(),
                )
            })
            .collect()
    };
    let columns = || {
        vec![
            "stdio, 2025-11-25 upstream".into(),
            "stdio, 2026-07-28 upstream".into(),
            "HTTP, 2025-11-25 upstream".into(),
            "HTTP, 2026-07-28 upstream".into(),
        ]
    };
    [
        Table {
            title: "Input requests through `serve`".into(),
            intro: "An upstream's tool asks its client for input during a call: elicitation (a \
                    form) and sampling (an LLM completion); a cell passes when both answers, made \
                    by the client in front of `serve`, come back in the tool's result. A 2025-11-25 \
                    upstream asks with a request of its own, a 2026-07-28 one answers the call with \
                    an input request (SEP-2322); `serve` passes each to its client in the client's \
                    era. The version in a cell is the one the client negotiated with `serve`."
                .into(),
            columns: columns(),
            rows: part(0),
        },
        Table {
            title: "Progress and cancellation through `serve`".into(),
            intro: "An upstream's tool reports progress (0, 50, 100 of 100) while it works, and a \
                    30 s call is given up by its client after 1.5 s (an abort signal in \
                    TypeScript, a cancel scope in Python); a cell passes when the client got \
                    the progress notifications and the tool's result, and the upstream saw its \
                    call cancelled. The version in a cell is the one the client negotiated with \
                    `serve`."
                .into(),
            columns: columns(),
            rows: part(2),
        },
        Table {
            title: "Tool-list changes through `serve`".into(),
            intro: "An upstream adds a tool and announces it (a notification in 2025-11-25, an \
                    event on each `subscriptions/listen` in 2026-07-28); a cell passes when the \
                    client in front of `serve` hears of the change (a 2026-07-28 client on a \
                    listen of its own, a 2025-11-25 client as a notification) and its next \
                    `tools/list` has the new tool. The version in a cell is the one the client \
                    negotiated with `serve`."
                .into(),
            columns: columns(),
            rows: part(4),
        },
    ]
}

/// Log messages of an upstream's tool through `serve`, at the level the client asked for:
/// a 2025-11-25 client sets it for its session, a 2026-07-28 client asks with each request (and
/// a 2026-07-28 upstream sends messages only to requests that ask).
fn logs_table(peers: &Peers) -> Table {
    let s = both_eras();
    let py2 = Peers::pypi_version(&peers.python2, "mcp");
    let ts2 = peers.npm_version("client");
    let calls = json!([
        ["legacy__test_tool_with_logging", {}],
        ["modern__test_tool_with_logging", {}],
    ])
    .to_string();
    let judge = |report: &Value| -> Vec<Cell> {
        let loggers: Vec<&str> = report["logs"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        ["legacy", "modern"]
            .into_iter()
            .enumerate()
            .map(|(i, server)| {
                if let Some(fatal) = report.get("fatal").or(report.get("timeout")) {
                    return Cell::Fail(fatal.to_string());
                }
                let call = &report["calls"][i];
                let heard = loggers.iter().filter(|l| **l == server).count();
                if call["ok"] != true || heard != 3 {
                    return Cell::Fail(format!("{server}: {call}, {heard} of 3 log messages"));
                }
                Cell::Pass(report["protocol_version"].as_str().unwrap_or("").into())
            })
            .collect()
    };
    let clients = vec![
        (
            format!("Python mcp {py2} `Client(mode=\"legacy\")`"),
            peers.python2.as_path(),
            "compat_client.py",
            "legacy",
        ),
        (
            format!("Python mcp {py2} `Client(mode=\"2026-07-28\")`"),
            peers.python2.as_path(),
            "compat_client.py",
            "2026-07-28",
        ),
        (
            format!("TypeScript SDK v2 {ts2}, default"),
            peers.node.as_path(),
            "compat_client.mjs",
            "ts2-legacy",
        ),
        (
            format!("TypeScript SDK v2 {ts2}, pinned to 2026-07-28"),
            peers.node.as_path(),
            "compat_client.mjs",
            "ts2-2026",
        ),
    ];
    let rows = both_transports(&s, clients, &calls, &[("MCP_COMPAT_LOGS", "1")], &judge);
    Table {
        title: "Log messages through `serve`".into(),
        intro: "An upstream's tool sends three log messages while it works; a cell passes when \
                all three reach the client in front of `serve`, which asked for `info`: a \
                2025-11-25 client with `logging/setLevel`, a 2026-07-28 client in each request's \
                `_meta` (a 2026-07-28 upstream sends messages only to requests that ask). The \
                version in a cell is the one the client negotiated with `serve`."
            .into(),
        columns: vec![
            "stdio, 2025-11-25 upstream".into(),
            "stdio, 2026-07-28 upstream".into(),
            "HTTP, 2025-11-25 upstream".into(),
            "HTTP, 2026-07-28 upstream".into(),
        ],
        rows,
    }
}

/// Tasks (the 2026-07-28 extension, SEP-2663) through `serve` over HTTP, driven by the
/// extension's own TypeScript client: a slow call becomes a task that ends with its result, an
/// upstream's question is answered through the task, a cancelled task cancels its upstream
/// call. A 2025-11-25 client is offered no tasks and gets plain results.
fn tasks_table(peers: &Peers) -> Table {
    let s = both_eras();
    let servers = json!(["legacy", "modern"]).to_string();
    let step_ok = |step: &Value, task: bool| step["ok"] == true && step["task"] == task;
    let judge = |report: &Value, modern: bool| -> Vec<Cell> {
        ["legacy", "modern"]
            .into_iter()
            .map(|server| {
                if let Some(fatal) = report.get("fatal").or(report.get("timeout")) {
                    return Cell::Fail(fatal.to_string());
                }
                let r = &report["servers"][server];
                let slow = step_ok(&r["slow"], modern)
                    && r["slow"]["text"]
                        .as_str()
                        .is_some_and(|t| t.parse::<u32>().is_ok());
                let input = step_ok(&r["input"], modern)
                    && r["input"]["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("action=accept") && t.contains("in a task"));
                let cancel = !modern
                    || (step_ok(&r["cancel"], true)
                        && r["cancel"]["text"]
                            .as_str()
                            .is_some_and(|t| t.contains("cancelled"))
                        && r["upstream_cancelled"]["text"] == "1");
                match (slow && input && cancel, modern) {
                    (false, _) => Cell::Fail(format!("{server}: {r}")),
                    (true, true) => Cell::Pass("task: result, input, cancel".into()),
                    (true, false) => Cell::Pass("no tasks offered: plain results".into()),
                }
            })
            .collect()
    };
    let ts2 = peers.npm_version("client");
    let tasks = peers.npm_version("ext-tasks");
    let rows = std::thread::scope(|scope| {
        let rows: Vec<_> = [
            ("ts2-2026", "pinned to 2026-07-28", true),
            ("ts2-legacy", "default (2025-11-25)", false),
        ]
        .into_iter()
        .map(|(mode, what, modern)| {
            let (s, servers, judge) = (&s, &servers, &judge);
            let label = format!("TypeScript ext-tasks {tasks} on SDK v2 {ts2}, {what}");
            scope.spawn(move || {
                let (child, url) = s.serve_http();
                let report = drive(s, &peers.node, "tasks_client.mjs", &[mode, &url, servers]);
                stop(child);
                (label, judge(&report, modern))
            })
        })
        .collect();
        rows.into_iter().map(|r| r.join().unwrap()).collect()
    });
    Table {
        title: "Tasks through `serve`".into(),
        intro: "A client that declares the Tasks extension (2026-07-28, SEP-2663) gets a task for \
                a call still running after a second or asking its client something: the cell \
                passes when a 2.5 s call ends as a task with its result, an upstream's \
                elicitation is answered through the task (`tasks/update`), and `tasks/cancel` \
                ends the task and cancels the upstream call. Over streamable HTTP, with the \
                extension's own client (`rawDispatch` is a plain POST)."
            .into(),
        columns: vec![
            "HTTP, 2025-11-25 upstream".into(),
            "HTTP, 2026-07-28 upstream".into(),
        ],
        rows,
    }
}

#[test]
fn compatibility_matrix() {
    let Some(peers) = Peers::find() else { return };
    let probe = guest("probe");
    let tables = std::thread::scope(|scope| {
        let servers = scope.spawn(|| servers_table(&peers, &probe));
        let interactive = scope.spawn(|| interactive_tables(&peers));
        let logs = scope.spawn(|| logs_table(&peers));
        let tasks = scope.spawn(|| tasks_table(&peers));
        let clients = clients_table(&peers);
        let [input, progress, changes] = interactive.join().unwrap();
        [
            servers.join().unwrap(),
            clients,
            input,
            logs.join().unwrap(),
            progress,
            changes,
            tasks.join().unwrap(),
        ]
    });
    let mut doc = String::from(
        "# Compatibility\n\nWritten by `tests/it/compat.rs` from what its last run saw (pass or \
         fail per cell, nothing by hand); `scripts/test.sh` runs it, and CI fails if this file \
         is not what the run saw. Peers are pinned in `scripts/install-peers.sh` and \
         `tests/peers/requirements*.txt`.\n\n",
    );
    for table in &tables {
        doc.push_str(&table.markdown());
        doc.push('\n');
    }
    let failures: Vec<String> = tables.iter().flat_map(Table::failures).collect();
    assert!(
        failures.is_empty(),
        "compatibility failures:\n{}",
        failures.join("\n")
    );
    let path = workspace_root().join("docs/compatibility.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != doc {
        std::fs::write(&path, &doc).unwrap();
        assert!(
            !peers_required(),
            "docs/compatibility.md is not what this run saw; it was rewritten: commit it"
        );
        eprintln!("docs/compatibility.md rewritten from this run");
    }
}
