//! Deny by default: a plugin reaches no MCP server until it is granted one, it says what it
//! needs (`requires` in its `describe`), and `run` and `serve` show the request beside the
//! grant.

use std::process::{Output, Stdio};

use crate::support::*;
use serde_json::{json, Value};

fn two_servers() -> Scratch {
    let server = || json!({"command": test_server().display().to_string()});
    Scratch::new(json!({"a": server(), "b": server()}))
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "stdout is not JSON: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The probe guest reporting what it may reach of `server`, run with `grants`.
fn probe_grants(s: &Scratch, server: &str, grants: &[&str]) -> Output {
    let probe = guest("probe");
    let input = json!({"op": "grants", "server": server}).to_string();
    let mut args = vec!["run", probe.to_str().unwrap(), "--input", &input];
    args.extend_from_slice(grants);
    s.cli(&args).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn without_a_grant_a_plugin_reaches_no_server() {
    let s = two_servers();
    let out = probe_grants(&s, "a", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = stdout_json(&out);
    assert_eq!(v["servers"], json!([]), "{v}");
    for what in ["list", "session", "call"] {
        assert_eq!(v[what]["kind"], "denied", "{what}: {v}");
        let message = v[what]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("--allow-server a"),
            "{what}: the message must name the flag: {message}"
        );
    }
    assert!(
        stderr(&out).contains("plugin probe: requests nothing; granted no server"),
        "{}",
        stderr(&out)
    );

    // A plugin that needs a server fails, and says how to grant it.
    let fanout = guest("fanout");
    let out = s
        .cli(&[
            "run",
            fanout.to_str().unwrap(),
            "--input",
            r#"{"servers": ["a"]}"#,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--allow-server a"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_partial_grant_gets_exactly_that() {
    let s = two_servers();
    let out = probe_grants(&s, "a", &["--allow-server", "a"]);
    let v = stdout_json(&out);
    assert_eq!(v["servers"], json!(["a"]), "{v}");
    for what in ["list", "session", "call"] {
        assert_eq!(v[what]["kind"], "ok", "{what}: {v}");
    }
    let out = probe_grants(&s, "b", &["--allow-server", "a"]);
    let v = stdout_json(&out);
    for what in ["list", "session", "call"] {
        assert_eq!(v[what]["kind"], "denied", "{what}: {v}");
    }
    // A tool glob narrows the granted server further.
    let out = probe_grants(
        &s,
        "a",
        &["--allow-server", "a", "--allow-tool", "a__counter"],
    );
    let v = stdout_json(&out);
    assert_eq!(v["session"]["kind"], "ok", "{v}");
    assert_eq!(v["call"]["kind"], "denied", "a__echo is not granted: {v}");
}

#[test]
fn allow_requested_grants_what_the_plugin_declares_and_no_more_than_the_registry_has() {
    // fanout requests alpha and beta; this registry has only alpha.
    let s = Scratch::new(json!({"alpha": {"command": test_server().display().to_string()}}));
    let fanout = guest("fanout");
    let described = s
        .cli(&["describe", fanout.to_str().unwrap()])
        .output()
        .unwrap();
    let d = stdout_json(&described);
    assert_eq!(d["requires"]["servers"], json!(["alpha", "beta"]), "{d}");

    let out = s
        .cli(&[
            "run",
            fanout.to_str().unwrap(),
            "--allow-requested",
            "--input",
            r#"{"servers": ["alpha"], "rounds": 2}"#,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["counters"]["alpha"], json!([1, 2]));
    let err = stderr(&out);
    assert!(
        err.contains("requests server \"beta\", which is not in"),
        "{err}"
    );
    assert!(
        err.contains("granted servers alpha; tools *__counter, *__echo"),
        "{err}"
    );
}

#[test]
fn a_policy_file_that_grants_less_than_requested_warns() {
    let s = Scratch::new(json!({
        "alpha": {"command": test_server().display().to_string()},
        "beta": {"command": test_server().display().to_string()},
    }));
    let policy = s.path("policy.json");
    std::fs::write(
        &policy,
        json!({"plugins": {"fan": {
            "component": guest("fanout").display().to_string(),
            "input": {"servers": ["alpha"], "rounds": 1},
            "servers": ["alpha"],
        }}})
        .to_string(),
    )
    .unwrap();
    let out = s
        .cli(&["run", "--policy", policy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("plugin fan: requests servers alpha, beta"),
        "{err}"
    );
    assert!(err.contains("not granted: server beta"), "{err}");
}

/// `run` under a pseudo-terminal, answering its question with `answer`.
fn run_in_a_terminal(s: &Scratch, answer: &str) -> Option<Value> {
    let python = which("python3")?;
    let fanout = guest("fanout");
    let out = std::process::Command::new(python)
        .arg(workspace_root().join("tests/peers/pty_run.py"))
        .args(["[y/N]", answer, env!("CARGO_BIN_EXE_mcp-registry")])
        .arg("--config")
        .arg(&s.config)
        .args([
            "run",
            fanout.to_str().unwrap(),
            "--input",
            r#"{"servers": ["alpha"], "rounds": 1}"#,
        ])
        .env("MCP_REGISTRY_CACHE_DIR", s.cache())
        .output()
        .unwrap();
    Some(serde_json::from_slice(&out.stdout).expect("pty_run.py prints JSON"))
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

#[test]
fn on_a_terminal_run_asks_once() {
    let s = Scratch::new(json!({"alpha": {"command": test_server().display().to_string()}}));
    let Some(yes) = run_in_a_terminal(&s, "y") else {
        assert!(
            !peers_required(),
            "python3 is needed for the pseudo-terminal"
        );
        eprintln!("skipping: no python3 for the pseudo-terminal");
        return;
    };
    let output = yes["output"].as_str().unwrap_or_default();
    assert_eq!(yes["answered"], true, "no question was asked: {output}");
    assert!(
        output.contains("plugin fanout requests servers alpha, beta"),
        "{output}"
    );
    assert_eq!(yes["status"], 0, "{output}");
    assert!(output.contains("\"counters\""), "{output}");

    let no = run_in_a_terminal(&s, "n").unwrap();
    let output = no["output"].as_str().unwrap_or_default();
    assert_eq!(no["answered"], true, "{output}");
    assert_eq!(no["status"], 1, "refused: the plugin is denied: {output}");
    assert!(output.contains("denied"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_lists_an_ungranted_plugin_and_denies_its_calls() {
    let s = two_servers();
    let probe = guest("probe");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .env("MCP_REGISTRY_CACHE_DIR", s.cache())
        .arg("--config")
        .arg(&s.config)
        .args(["serve", "--plugin", probe.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (stdout, stdin) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    let client = rmcp::ServiceExt::serve((), (stdout, stdin)).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert!(
        tools.iter().any(|t| t.name == "probe"),
        "the plugin is listed"
    );
    let mut call = rmcp::model::CallToolRequestParams::new("probe");
    call.arguments = args(json!({"op": "grants", "server": "a"}));
    let r = client.call_tool(call).await.unwrap();
    let v: Value = serde_json::from_str(&text(&r)).unwrap();
    assert_eq!(v["session"]["kind"], "denied", "{v}");
    assert_eq!(v["call"]["kind"], "denied", "{v}");
    drop(client);
    let out = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plugin probe: requests nothing; granted no server"),
        "{err}"
    );
}
