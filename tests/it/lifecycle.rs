//! The lives of server processes as a user meets them through the CLI: first contact with
//! legacy servers, start-up failures that say what happened, unknown tools, and no server
//! outliving the host, whatever ends it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{json, Value};

fn strict_server(mode: &str, log: &Path, pids: &Path) -> Value {
    json!({
        "command": python3(),
        "args": [workspace_root().join("tests/peers/strict_legacy_server.py").display().to_string()],
        "env": {"STRICT_MODE": mode, "STRICT_LOG": log.display().to_string(),
                "STRICT_PIDS": pids.display().to_string()},
    })
}

fn methods(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn first_contact_with_a_silent_legacy_server_costs_one_process_and_is_remembered() {
    // A legacy server that never answers an unknown request before `initialize` (it does
    // answer `ping`, as the 2025-11-25 lifecycle allows): the probe must not wait out a
    // timeout, must not start a second process, and must not run again next time.
    let log = tempfile::NamedTempFile::new().unwrap();
    let pids = tempfile::NamedTempFile::new().unwrap();
    let s = Scratch::new(json!({"old": strict_server("silent", log.path(), pids.path())}));
    let out = s
        .cli(&["call", "old__echo", r#"{"message": "first"}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("first"));
    assert_eq!(
        methods(log.path())[..4],
        [
            "server/discover",
            "ping",
            "initialize",
            "notifications/initialized"
        ],
        "one process: probe, ping, then initialize on the same connection"
    );
    assert_eq!(
        pids_in(pids.path()).len(),
        1,
        "the probe started one process"
    );

    // A second CLI process knows the era from the cache: no probe at all.
    std::fs::write(log.path(), "").unwrap();
    let out = s
        .cli(&["call", "old__echo", r#"{"message": "second"}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(methods(log.path())[0], "initialize");
    let eras = std::fs::read_to_string(s.path("cache/eras-2.json")).unwrap();
    assert!(eras.contains("\"legacy\""), "{eras}");
    for pid in pids_in(pids.path()) {
        assert!(gone(pid), "server {pid} outlived the CLI");
    }
}

#[test]
fn a_legacy_server_that_drops_the_probe_is_started_again_once() {
    // Python `mcp` 1.6 servers drop their connection on `server/discover`: the first contact
    // costs a second process, and only the first.
    let log = tempfile::NamedTempFile::new().unwrap();
    let pids = tempfile::NamedTempFile::new().unwrap();
    let s = Scratch::new(json!({"old": strict_server("exit", log.path(), pids.path())}));
    for round in 1..=2 {
        let out = s
            .cli(&["call", "old__echo", r#"{"message": "x"}"#])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert_eq!(pids_in(pids.path()).len(), round + 1, "round {round}");
    }
}

#[test]
fn fastmcp_on_mcp_1x_with_the_default_config() {
    // The issue's case: a FastMCP server on `mcp` 1.x, `"protocol"` left at its default.
    let Some(python) = peer(
        peers_dir().join("venv-mcp1/bin/python"),
        "PyPI mcp 1.6.0 (venv-mcp1)",
    ) else {
        return;
    };
    let pids = tempfile::NamedTempFile::new().unwrap();
    let s = Scratch::new(json!({"fast": {
        "command": python.display().to_string(),
        "args": [workspace_root().join("tests/peers/fastmcp1_server.py").display().to_string()],
        "env": {"MCP_TEST_PID_FILE": pids.path().display().to_string()},
    }}));
    for round in 1..=3 {
        let out = s
            .cli(&["call", "fast__echo", r#"{"message": "hello"}"#])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert!(stdout_of(&out).contains("hello"));
        // Two processes on first contact (it drops the probe), then one per call. (On a
        // loaded machine its start can outlast the probe's 3 s, and the first process is
        // stopped before it writes its pid: then one.)
        let started = pids_in(pids.path()).len();
        assert!(
            started == round + 1 || started == round,
            "round {round}: {started} processes"
        );
    }
    // It does not exit when its stdin closes; it must be gone anyway.
    for pid in pids_in(pids.path()) {
        assert!(gone(pid), "FastMCP server {pid} outlived the CLI");
    }
    // An unknown tool is not-found, though this server answers it with an isError result.
    let out = s.cli(&["call", "fast__nope", "{}"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout_of(&out));
    assert!(
        stderr_of(&out).contains("unknown tool \"nope\""),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn start_up_failures_say_what_happened() {
    let s = Scratch::new(json!({
        "boom": {"command": "sh", "args": ["-c", "echo boom >&2; exit 3"]},
        "segv": {"command": "sh", "args": ["-c", "echo dying >&2; kill -SEGV $$"]},
        "banner": {"command": "sh", "args": ["-c", "echo 'Server ready!'; sleep 600"],
                   "timeouts": {"connect": 1}},
    }));
    let run = |server: &str| {
        let out = s
            .cli(&["call", &format!("{server}__x"), "{}"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        stderr_of(&out)
    };
    let boom = run("boom");
    for needle in ["server \"boom\"", "exited with status 3", "boom"] {
        assert!(boom.contains(needle), "{needle:?} not in: {boom}");
    }
    let segv = run("segv");
    for needle in ["signal 11 (SIGSEGV)", "dying"] {
        assert!(segv.contains(needle), "{needle:?} not in: {segv}");
    }
    let banner = run("banner");
    for needle in ["no handshake within 1 s", "\"Server ready!\""] {
        assert!(banner.contains(needle), "{needle:?} not in: {banner}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_the_server_does_not_list_is_not_found_for_guests_and_serve_clients() {
    // This server answers a call to a tool it lacks with a successful isError result.
    let log = tempfile::NamedTempFile::new().unwrap();
    let pids = tempfile::NamedTempFile::new().unwrap();
    let s = Scratch::new(json!({"old": strict_server("silent", log.path(), pids.path())}));

    let probe = guest("probe");
    let input = json!({"op": "session_call", "server": "old", "tool": "nope"}).to_string();
    let out = s
        .cli(&[
            "run",
            probe.to_str().unwrap(),
            "--input",
            &input,
            "--allow-server",
            "old",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"]["error"], "not-found", "{v}");

    // Through serve, the client gets the JSON-RPC error for an unknown tool (-32602).
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .env("MCP_REGISTRY_CACHE_DIR", s.cache())
        .arg("--config")
        .arg(&s.config)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (stdout, stdin) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let client = rmcp::ServiceExt::serve((), (stdout, stdin)).await.unwrap();
    let e = client
        .call_tool(rmcp::model::CallToolRequestParams::new("old__nope"))
        .await
        .unwrap_err();
    match e {
        rmcp::ServiceError::McpError(data) => {
            assert_eq!(
                data.code,
                rmcp::model::ErrorCode::INVALID_PARAMS,
                "{data:?}"
            )
        }
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
}

/// A registry whose one server ignores both a closed stdin and SIGTERM: only SIGKILL ends it.
fn stubborn(pids: &Path) -> Scratch {
    Scratch::new(json!({"t": {
        "command": test_server().display().to_string(),
        "env": {"MCP_TEST_IGNORE_EOF": "1", "MCP_TEST_IGNORE_SIGTERM": "1",
                "MCP_TEST_PID_FILE": pids.display().to_string()},
    }}))
}

/// Waits until `file` names a pid (the server started).
fn started(file: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = pids_in(file).first() {
            return *pid;
        }
        assert!(Instant::now() < deadline, "the server never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How the host is ended.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Signal(i32),
    StdinClosed,
}

/// Starts `args` (a command that starts the stubborn server and keeps it busy), ends the
/// host with `ending` once the server runs, and checks the host's exit and that the server
/// is gone.
fn host_ending(args: &[&str], stdin_lines: &[Value], ending: Ending, expected: Option<i32>) {
    let pids = tempfile::NamedTempFile::new().unwrap();
    let s = stubborn(pids.path());
    let mut child = s
        .cli(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take();
    if let Some(stdin) = stdin.as_mut() {
        use std::io::Write;
        for line in stdin_lines {
            writeln!(stdin, "{line}").unwrap();
        }
        stdin.flush().unwrap();
    }
    let server = started(pids.path());
    match ending {
        Ending::Signal(signal) => {
            // SAFETY: kill(2) on the child we spawned.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
        Ending::StdinClosed => drop(stdin.take()),
    }
    let status = child.wait().unwrap();
    let what = format!("{args:?} ended by {ending:?}");
    match expected {
        Some(code) => assert_eq!(status.code(), Some(code), "{what}: {status}"),
        None => {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{what}: {status}");
        }
    }
    if !gone(server) {
        // What there is to know about a survivor: its state, parent and group, and what the
        // host said (a watchdog that could not start says so there).
        let stat = std::fs::read_to_string(format!("/proc/{server}/stat")).unwrap_or_default();
        let mut said = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            use std::io::Read;
            let _ = stderr.read_to_string(&mut said);
        }
        panic!("{what}: server {server} outlived the host\nstat: {stat}\nhost stderr: {said}");
    }
}

const SIGNALS: [(i32, Option<i32>); 4] = [
    (libc::SIGTERM, Some(128 + libc::SIGTERM)),
    (libc::SIGINT, Some(128 + libc::SIGINT)),
    (libc::SIGHUP, Some(128 + libc::SIGHUP)),
    (libc::SIGKILL, None),
];

#[test]
fn no_server_outlives_call_whatever_ends_it() {
    for (signal, code) in SIGNALS {
        host_ending(
            &["call", "t__sleep", r#"{"ms": 600000}"#],
            &[],
            Ending::Signal(signal),
            code,
        );
    }
}

#[test]
fn no_server_outlives_run_whatever_ends_it() {
    let probe = guest("probe");
    let input = json!({"op": "hold", "server": "t"}).to_string();
    let args = [
        "run",
        probe.to_str().unwrap(),
        "--input",
        &input,
        "--allow-server",
        "t",
        "--timeout",
        "600",
    ];
    for (signal, code) in SIGNALS {
        host_ending(&args, &[], Ending::Signal(signal), code);
    }
}

#[test]
fn no_server_outlives_serve_whatever_ends_it() {
    // A client that starts a long call on the upstream, then goes away.
    let lines = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "t__sleep", "arguments": {"ms": 600000}}}),
    ];
    // A server asked to stop exits 0. (SIGHUP does not stop `serve`: it reloads, see
    // tests/it/reload.rs.)
    for (signal, code) in SIGNALS.into_iter().filter(|(s, _)| *s != libc::SIGHUP) {
        let code = code.map(|_| 0);
        host_ending(&["serve"], &lines, Ending::Signal(signal), code);
    }
    host_ending(&["serve"], &lines, Ending::StdinClosed, Some(0));
}
