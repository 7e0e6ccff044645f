//! The audit log: every code-mode run appends a hash-chained line (digests, not values) and
//! a signed checkpoint when the process ends; `audit verify` checks it offline and names the
//! first line an edit, a deletion, a reordering or a wrong key breaks.

use std::process::Stdio;

use serde_json::{json, Value};

use super::distribution::key_pair;
use crate::support::*;

const SECRET: &str = "the-launch-code-is-0000";

fn exec(s: &Scratch, code: &str) {
    exec_in(s, code, "typescript");
}

fn exec_in(s: &Scratch, code: &str, language: &str) {
    use std::io::Write;
    let mut child = s
        .cli(&["exec", "--language", language, "-"])
        .env("MCP_REGISTRY_CACHE_DIR", code_mode_cache())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(code.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn verify(
    s: &Scratch,
    log: &std::path::Path,
    key: Option<&std::path::Path>,
) -> (Option<i32>, String) {
    let mut args = vec![
        "audit".to_owned(),
        "verify".into(),
        log.display().to_string(),
    ];
    if let Some(key) = key {
        args.extend(["--key".into(), key.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.cli(&args).output().unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_runs_record_verifies_and_each_tampering_names_its_line() {
    let s = Scratch::new(json!({"t": {"command": test_server().display().to_string()}}));
    let (private, public) = key_pair(&s, "audit");
    let (_, other) = key_pair(&s, "other");
    let mut registry: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.config).unwrap()).unwrap();
    registry["audit"] = json!({"file": "audit.jsonl", "key": private.display().to_string()});
    std::fs::write(&s.config, registry.to_string()).unwrap();
    let log = s.path("audit.jsonl");

    let snippet = format!("return (await tools.t.echo({{message: '{SECRET}'}}))");
    exec(&s, &snippet);
    exec(&s, "return (await tools.t.add({a: 1, b: 2}))");

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(SECRET), "a value reached the log: {text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Each process: its run, then the checkpoint signed as it ended; one chain across both.
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["run", "checkpoint", "run", "checkpoint"], "{text}");
    let run = &lines[0];
    assert_eq!(run["plugin"], "code-mode", "{run}");
    assert_eq!(run["outcome"], "ok", "{run}");
    assert_eq!(run["calls"][0]["tool"], "t__echo", "{run}");
    assert_eq!(run["calls"][0]["outcome"], "ok", "{run}");
    for digest in [
        &run["input"],
        &run["calls"][0]["arguments"],
        &run["calls"][0]["result"],
    ] {
        assert!(
            digest.as_str().is_some_and(|d| d.starts_with("sha256:")),
            "{run}"
        );
    }
    assert_eq!(lines[2]["seq"], 3, "{text}");
    assert_eq!(lines[2]["prev"], lines[1]["hash"], "{text}");

    let (code, said) = verify(&s, &log, Some(&public));
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("4 lines verify, 2 signed checkpoints"),
        "{said}"
    );
    let (code, said) = verify(&s, &log, None);
    assert_eq!(code, Some(0), "{said}");

    let (code, said) = verify(&s, &log, Some(&other));
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("line 2: the checkpoint's signature does not verify"),
        "{said}"
    );

    let raw: Vec<&str> = text.lines().collect();
    let tampered = |name: &str, lines: Vec<String>| {
        let path = s.path(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        verify(&s, &path, Some(&public))
    };
    let owned = |v: &[&str]| v.iter().map(|l| l.to_string()).collect::<Vec<_>>();

    // One edited byte: the call's outcome.
    let mut edited = owned(&raw);
    edited[2] = edited[2].replacen("\"outcome\":\"ok\"", "\"outcome\":\"ko\"", 1);
    assert_ne!(edited[2], raw[2]);
    let (code, said) = tampered("edited.jsonl", edited);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("line 3: its hash does not match its content"),
        "{said}"
    );

    let mut deleted = owned(&raw);
    deleted.remove(1);
    let (code, said) = tampered("deleted.jsonl", deleted);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("line 2: is number 3 where 2 was expected"),
        "{said}"
    );

    let mut reordered = owned(&raw);
    reordered.swap(0, 1);
    let (code, said) = tampered("reordered.jsonl", reordered);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("line 1: is number 2 where 1 was expected"),
        "{said}"
    );
}

/// With `"values": true` a plugin run's line holds its input and each call's arguments and
/// result, and `audit extract` turns it into a recording that `run --replay` plays back with
/// no server at all, to the same output.
#[test]
fn a_run_recorded_with_values_replays_from_the_log_alone() {
    let s = Scratch::new(json!({"alpha": {"command": test_server().display().to_string()}}));
    let mut registry: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.config).unwrap()).unwrap();
    registry["audit"] = json!({"file": "audit.jsonl", "values": true});
    std::fs::write(&s.config, registry.to_string()).unwrap();
    let probe = guest("probe");
    let probe = probe.to_str().unwrap();
    let input = r#"{"op": "session_counter", "server": "alpha", "n": 3}"#;
    let live = s
        .cli(&["run", probe, "--allow-server", "alpha", "--input", input])
        .output()
        .unwrap();
    assert!(live.status.success(), "{live:?}");
    let log = std::fs::read_to_string(s.path("audit.jsonl")).unwrap();
    let run: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(run["input_value"], input, "{run}");
    assert_eq!(
        run["calls"][0]["result_value"]["content"][0]["text"], "1",
        "{run}"
    );

    let out = s
        .cli(&[
            "audit",
            "extract",
            s.path("audit.jsonl").to_str().unwrap(),
            "--seq",
            "1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let recording = s.path("run.jsonl");
    std::fs::write(&recording, &out.stdout).unwrap();
    std::fs::write(&s.config, r#"{"mcpServers": {}}"#).unwrap();
    let replayed = s
        .cli(&["run", probe, "--allow-server", "alpha", "--replay"])
        .arg(&recording)
        .output()
        .unwrap();
    assert!(replayed.status.success(), "{replayed:?}");
    assert_eq!(
        String::from_utf8_lossy(&replayed.stdout),
        String::from_utf8_lossy(&live.stdout)
    );

    // A log of digests only says why it cannot be replayed.
    let digests = Scratch::new(json!({"alpha": {"command": test_server().display().to_string()}}));
    let mut registry: Value =
        serde_json::from_str(&std::fs::read_to_string(&digests.config).unwrap()).unwrap();
    registry["audit"] = json!("audit.jsonl");
    std::fs::write(&digests.config, registry.to_string()).unwrap();
    let live = digests
        .cli(&["run", probe, "--allow-server", "alpha", "--input", input])
        .output()
        .unwrap();
    assert!(live.status.success(), "{live:?}");
    let log = digests.path("audit.jsonl");
    let out = digests
        .cli(&["audit", "extract", log.to_str().unwrap(), "--seq", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds digests only"),
        "{out:?}"
    );
}

/// A code-mode snippet's line (values kept) replays with `exec --replay`: the snippet and
/// every answer come from the log, no server is started.
#[test]
fn a_snippet_recorded_with_values_replays_with_exec() {
    replays_from_the_log(
        "typescript",
        "const a = await tools.alpha.counter({}); const b = await tools.alpha.pid({});\n\
         return [a, b]",
    );
    // A Python snippet's record says so: the replay runs it on the Python engine.
    replays_from_the_log(
        "python",
        "a = await tools.alpha.counter()\nb = await tools.alpha.pid()\n[a, b]",
    );
}

fn replays_from_the_log(language: &str, snippet: &str) {
    let s = Scratch::new(json!({"alpha": {"command": test_server().display().to_string()}}));
    let mut registry: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.config).unwrap()).unwrap();
    registry["audit"] = json!({"file": "audit.jsonl", "values": true});
    std::fs::write(&s.config, registry.to_string()).unwrap();
    exec_in(&s, snippet, language);
    let log = s.path("audit.jsonl");
    let run: Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let live = &run["calls"];
    assert_eq!(live.as_array().map(Vec::len), Some(2), "{run}");

    let out = s
        .cli(&["audit", "extract", log.to_str().unwrap(), "--seq", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let recording = s.path("snippet.jsonl");
    std::fs::write(&recording, &out.stdout).unwrap();
    std::fs::write(&s.config, r#"{"mcpServers": {}}"#).unwrap();
    let replayed = s
        .cli(&["exec", "--replay", recording.to_str().unwrap()])
        .env("MCP_REGISTRY_CACHE_DIR", code_mode_cache())
        .output()
        .unwrap();
    assert!(replayed.status.success(), "{replayed:?}");
    let record: Value = serde_json::from_slice(&replayed.stdout).unwrap();
    // The recorded pid comes back: the process that answered live, not one started now.
    // (Code mode reads a number's text as the number.)
    let pid = live[1]["result_value"]["content"][0]["text"]
        .as_str()
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or_default();
    assert_eq!(record["value"], json!([1, pid]), "{record}");
}
