//! Code mode in Python (`exec --language python`, `execute` with `"language": "python"`):
//! snippets run on the Monty engine, a second component beside the JavaScript one, against
//! real test server processes. The cases mirror the JavaScript ones: chained and concurrent
//! calls, errors a snippet catches by kind, and the hostile snippets, each ending as that
//! snippet's error. (The SDK clients drive Python through `serve` in `codemode.rs`.)

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::codemode::{exec, exec_child, failure, test_servers};
use crate::support::*;

const PY: [&str; 2] = ["--language", "python"];

#[test]
fn a_python_snippet_calls_tools_chained_and_concurrently() {
    let s = test_servers();
    let (record, ok) = exec(
        &s,
        "import asyncio\n\
         a = await tools.alpha.echo(message='one')\n\
         x, y = await asyncio.gather(tools.alpha.counter(), tools.beta.counter())\n\
         again = await tools.alpha.counter({})\n\
         print('got', a, x, y)\n\
         {'a': a, 'x': x, 'y': y, 'again': again}",
        &PY,
    );
    assert!(ok, "{record}");
    // One process per server for the run: alpha's counter goes on from 1 to 2.
    assert_eq!(
        record["value"],
        json!({"a": "one", "x": 1, "y": 1, "again": 2})
    );
    assert_eq!(
        record["console"],
        json!([{"level": "log", "text": "got one 1 1"}])
    );
    let calls = record["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 4, "{record}");
    assert!(calls.iter().all(|c| c["outcome"] == "ok"), "{record}");

    // Five 400 ms sleeps gathered overlap upstream.
    let (record, ok) = exec(
        &s,
        "import asyncio\n\
         pids = await asyncio.gather(*[tools.alpha.sleep(ms=400) for _ in range(5)])\n\
         {'count': len(pids), 'most': await tools.alpha.most_sleeping()}",
        &PY,
    );
    assert!(ok, "{record}");
    assert_eq!(record["value"]["count"], 5);
    // The test server counts the sleeps it had in progress at once (the run's one process).
    assert_eq!(
        record["value"]["most"], 5,
        "the calls did not overlap: {record}"
    );
}

#[test]
fn python_tool_errors_are_catchable_by_kind_and_an_uncaught_one_names_its_line() {
    let s = test_servers();
    let (record, ok) = exec(
        &s,
        r#"
out = {}
for k, call in [('fail', lambda: tools.alpha.fail(message='upstream words')),
                ('missing', lambda: tools.alpha.nope()),
                ('invalid', lambda: tools.alpha.echo(1, 2)),
                ('crash', lambda: tools.alpha.crash())]:
    try:
        await call()
        out[k] = 'no error'
    except ToolError as e:
        out[k] = str(e)
out
"#,
        &PY,
    );
    assert!(ok, "{record}");
    let v = &record["value"];
    let kind = |k: &str| v[k].as_str().unwrap().split(':').next().unwrap().to_owned();
    assert_eq!(kind("fail"), "tool-error", "{v}");
    assert!(
        v["fail"].as_str().unwrap().contains("upstream words"),
        "{v}"
    );
    assert_eq!(kind("missing"), "not-found", "{v}");
    assert_eq!(kind("invalid"), "invalid", "{v}");
    assert_eq!(kind("crash"), "server-failed", "{v}");

    let e = failure(&s, "x = 1\n\nawait tools.alpha.fail(message='no')\n", &PY);
    assert_eq!(e["name"], "ToolError", "{e}");
    assert_eq!(e["kind"], "tool-error", "{e}");
    assert_eq!(e["line"], 3, "{e}");
    // Python's own errors keep their names and lines.
    let e = failure(&s, "a = 1\nb = a / 0\n", &PY);
    assert_eq!(e["name"], "ZeroDivisionError", "{e}");
    assert_eq!(e["line"], 2, "{e}");
    let e = failure(&s, "for i in range(3):\n  print(i\n", &PY);
    assert_eq!(e["name"], "SyntaxError", "{e}");
}

#[test]
fn hostile_python_snippets_end_as_their_own_error() {
    let s = test_servers();
    let cases: [(&str, String, &[&str], &str); 6] = [
        (
            "runaway loop",
            "while True:\n    pass".into(),
            &["--timeout", "2"],
            "timeout",
        ),
        (
            "memory bomb",
            "x = []\nwhile True:\n    x.append('x' * 1000000)".into(),
            &[],
            "limit",
        ),
        (
            "deep recursion",
            "def f(n):\n    return f(n + 1)\nf(0)".into(),
            &[],
            "limit",
        ),
        ("huge answer", "'x' * 3000000".into(), &[], "limit"),
        (
            "call flood",
            "for i in range(1000):\n    await tools.alpha.echo(message='x')".into(),
            &[],
            "limit",
        ),
        (
            "deep nesting",
            format!("x = {}1{}", "(".repeat(30_000), ")".repeat(30_000)),
            &[],
            "",
        ),
    ];
    for (what, code, extra, kind) in cases {
        let args: Vec<&str> = PY.iter().chain(extra).copied().collect();
        let e = failure(&s, &code, &args);
        if kind.is_empty() {
            assert_eq!(e["name"], "SyntaxError", "{what}: {e}");
        } else {
            assert_eq!(e["kind"], kind, "{what}: {e}");
        }
    }
    // No files, environment or clock: the sandbox answers with an error, not the host's.
    let e = failure(&s, "import os\nos.getenv('HOME')", &PY);
    assert_eq!(e["name"], "PermissionError", "{e}");
    let e = failure(&s, "open('/etc/passwd').read()", &PY);
    assert_eq!(e["name"], "PermissionError", "{e}");
    // A bystander after all of them: a plain snippet still runs.
    let (record, ok) = exec(&s, "await tools.alpha.echo(message='still here')", &PY);
    assert!(ok, "{record}");
    assert_eq!(record["value"], "still here");
}

#[test]
fn search_shows_python_stubs_that_a_snippet_calls_as_written() {
    let s = test_servers();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .arg("--config")
        .arg(&s.config)
        .args(["search", "add two numbers", "--python", "--limit", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stubs = String::from_utf8_lossy(&out.stdout);
    assert!(
        stubs.contains("async def add(self, *, a: float, b: float) -> Any:"),
        "{stubs}"
    );
    let (record, ok) = exec(&s, "await tools.alpha.add(a=2, b=3)", &PY);
    assert!(ok, "{record}");
    assert_eq!(record["value"], 5);
}

/// A call its server marks `"approval"` pauses the snippet and asks the client's user with
/// the exact arguments (the Python `mcp` SDK's elicitation callback, in both eras): accepted,
/// the call proceeds; declined, the snippet gets a `ToolError` of kind `denied`.
#[test]
fn a_call_marked_for_approval_waits_for_the_user_in_both_eras() {
    let Some(python) = peer(peers_dir().join("venv/bin/python"), "PyPI mcp 2.3.0 (venv)") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("posted.jsonl");
    let s = Scratch::new(json!({
        "out": {"command": test_server().display().to_string(),
                "env": {"MCP_TEST_POST_FILE": file.display().to_string()},
                "approval": ["post"]},
    }));
    let serve = json!([
        env!("CARGO_BIN_EXE_mcp-registry"),
        "--config",
        s.config,
        "serve",
        "--code-mode=only"
    ]);
    for mode in ["legacy", "2026-07-28"] {
        for answer in ["accept", "decline"] {
            let body = format!("{mode} {answer}");
            let code = format!(
                "r = 'posted'\n\
                 await tools.out.echo(message='no approval needed')\n\
                 try:\n    await tools.out.post(to='someone@example.com', body='{body}')\n\
                 except ToolError as e:\n    r = str(e)\n\
                 r"
            );
            let calls = json!([["execute", {"code": code, "language": "python"}]]);
            let out = std::process::Command::new(&python)
                .env("MCP_REGISTRY_CACHE_DIR", code_mode_cache())
                .env("MCP_COMPAT_ELICIT", answer)
                .arg(workspace_root().join("tests/peers/compat_client.py"))
                .args([mode, "stdio", &serve.to_string(), &calls.to_string()])
                .stderr(std::process::Stdio::piped())
                .output()
                .unwrap();
            let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{mode}: no JSON ({e}): {out:?}"));
            let asked = report["asked"].to_string();
            // Asked once, for the marked tool only, with its exact arguments.
            assert_eq!(
                report["asked"].as_array().map(Vec::len),
                Some(1),
                "{report}"
            );
            assert!(
                asked.contains("out__post") && asked.contains(&body),
                "{mode} {answer}: {report}"
            );
            let result = report["calls"][0]["text"].to_string();
            let posted = std::fs::read_to_string(&file).unwrap_or_default();
            if answer == "accept" {
                assert!(
                    result.contains(r#"\"value\":\"posted\""#),
                    "{mode}: {report}"
                );
                assert!(posted.contains(&body), "{mode}: {posted}");
            } else {
                assert!(
                    result.contains("denied: the user declined the call of out__post"),
                    "{mode}: {report}"
                );
                assert!(!posted.contains(&body), "{mode}: {posted}");
            }
        }
    }
}

#[test]
fn a_python_snippet_leaves_no_server_process_behind_a_crash_or_a_signal() {
    let server = test_server().display().to_string();
    let scratch = tempfile::tempdir().unwrap();
    let pid_file = scratch.path().join("pids");
    let s = Scratch::new(json!({
        "alpha": {"command": server, "env": {"MCP_TEST_PID_FILE": pid_file.display().to_string()}},
    }));
    // The server crashes under the call: the snippet gets a server-failed ToolError it can
    // catch, and the run goes on (a new process for the next call).
    let (record, ok) = exec(
        &s,
        "try:\n    await tools.alpha.crash()\nexcept ToolError as e:\n    kind = str(e).split(':')[0]\n[kind, await tools.alpha.echo(message='after')]",
        &PY,
    );
    assert!(ok, "{record}");
    assert_eq!(
        record["value"],
        json!(["server-failed", "after"]),
        "{record}"
    );
    for pid in pids_in(&pid_file) {
        assert!(gone(pid), "server process {pid} outlived its run");
    }
    // exec ended by a signal while a call is in flight: the server goes with it.
    for signal in ["-TERM", "-INT", "-KILL"] {
        std::fs::write(&pid_file, "").unwrap();
        let mut child = exec_child(&s, "await tools.alpha.sleep(ms=60000)", &PY);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while pids_in(&pid_file).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "{signal}: the server never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let _ = child.wait();
        for pid in pids_in(&pid_file) {
            assert!(gone(pid), "{signal}: server process {pid} outlived exec");
        }
    }
}

/// The first Python snippet on a machine waits seconds for its engine to compile: `exec`
/// says so on stderr instead of sitting silent, and only then (the next run reads the
/// compiled engine from the cache).
#[test]
fn the_first_python_exec_says_it_is_preparing_and_the_next_does_not() {
    use std::io::Write;
    use std::process::Stdio;
    // A cache of its own, cold (Scratch::cli points MCP_REGISTRY_CACHE_DIR into the scratch).
    let s = Scratch::new(json!({}));
    let run = || {
        let mut child = s
            .cli(&["exec", "--language", "python", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"6 * 7").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("42"),
            "{out:?}"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run();
    assert!(
        first.contains("preparing Python code mode for this machine"),
        "{first}"
    );
    let second = run();
    assert!(!second.contains("preparing"), "{second}");
}
