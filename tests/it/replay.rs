//! Record and replay (`run --record FILE`, `run --replay FILE`): a plugin's run against the
//! test server is recorded, then replayed with no server configured at all, bit for bit; a
//! run that asks for something the recording lacks fails with what was asked and recorded.

use crate::support::*;
use serde_json::{json, Value};

#[test]
fn a_recorded_run_replays_with_no_server_and_a_new_request_fails_with_a_diff() {
    let s = Scratch::new(json!({"alpha": {"command": test_server().display().to_string()}}));
    let probe = guest("probe");
    let probe = probe.to_str().unwrap();
    let recording = s.path("run.jsonl");
    let recording = recording.to_str().unwrap();
    let input = r#"{"op": "session_counter", "server": "alpha", "n": 3}"#;
    let run = |extra: &[&str]| {
        let mut args = vec!["run", probe, "--allow-server", "alpha"];
        args.extend_from_slice(extra);
        s.cli(&args).output().unwrap()
    };
    let live = run(&["--input", input, "--record", recording]);
    assert!(live.status.success(), "{live:?}");
    let out: Value = serde_json::from_slice(&live.stdout).unwrap();
    assert_eq!(out["counters"], json!(["1", "2", "3"]));
    // Every upstream call is in the recording, with the plugin's input and output.
    let lines: Vec<Value> = std::fs::read_to_string(recording)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds = |kind: &str| lines.iter().filter(|l| l["kind"] == kind).count();
    assert_eq!(kinds("tools/call"), 4, "{lines:?}");
    assert_eq!((kinds("input"), kinds("output")), (1, 1), "{lines:?}");

    // No server at all: the registry is emptied, and the test server's pid comes back from
    // the recording, as every counter does.
    std::fs::write(&s.config, r#"{"mcpServers": {}}"#).unwrap();
    let replayed = run(&["--replay", recording]);
    assert!(replayed.status.success(), "{replayed:?}");
    assert_eq!(
        String::from_utf8_lossy(&replayed.stdout),
        String::from_utf8_lossy(&live.stdout)
    );

    // A fourth counter call was never recorded: the run fails and says what differs.
    let more = r#"{"op": "session_counter", "server": "alpha", "n": 4}"#;
    let failed = run(&["--replay", recording, "--input", more]);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!stderr.contains("unknown tool"), "{stderr}");
    assert!(
        stderr.contains("not in the recording: alpha__counter {}")
            && stderr.contains("recorded calls of this tool: {} (used), {} (used), {} (used)"),
        "{stderr}"
    );
}

#[test]
fn test_runs_cases_live_and_replayed_and_reports_like_a_test_runner() {
    let s = Scratch::new(json!({"alpha": {"command": test_server().display().to_string()}}));
    let probe = guest("probe");
    let probe = probe.to_str().unwrap();
    let recording = s.path("three.jsonl");
    let input = json!({"op": "session_counter", "server": "alpha", "n": 3});
    let live = s
        .cli(&[
            "run",
            probe,
            "--allow-server",
            "alpha",
            "--input",
            &input.to_string(),
        ])
        .arg("--record")
        .arg(&recording)
        .output()
        .unwrap();
    assert!(live.status.success(), "{live:?}");
    let recorded: Value = serde_json::from_slice(&live.stdout).unwrap();
    let temp = json!({"op": "temp_counter", "server": "alpha", "n": 2});
    let cases = json!({"cases": [
        {"name": "live", "input": temp, "output": {"counters": ["1", "1"]}},
        {"name": "replayed", "input": input, "replay": "three.jsonl", "output": recorded},
        {"name": "wrong", "input": temp, "output": {"counters": ["1", "2"]}},
        {"name": "beyond the recording", "replay": "three.jsonl",
         "input": {"op": "session_counter", "server": "alpha", "n": 4},
         "error": "not in the recording"},
    ]});
    let file = s.path("cases.json");
    std::fs::write(&file, cases.to_string()).unwrap();
    let out = s
        .cli(&["test", probe, "--allow-server", "alpha", "--cases"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    for line in [
        "test live ... ok",
        "test replayed ... ok",
        "test wrong ... FAILED",
        "test beyond the recording ... ok",
        "at $.counters[1]: expected \"2\", got \"1\"",
        "test result: FAILED. 3 passed; 1 failed",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
    // A broken cases file names the case and the field.
    std::fs::write(&file, r#"{"cases": [{"name": "x", "input": {}}]}"#).unwrap();
    let out = s
        .cli(&["test", probe, "--cases"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("case \"x\": field \"output\""), "{stderr}");
}

#[test]
fn a_recording_keeps_the_plugins_progress_reports_in_order() {
    let s = Scratch::new(json!({}));
    let probe = guest("probe");
    let recording = s.path("progress.jsonl");
    let out = s
        .cli(&[
            "run",
            probe.to_str().unwrap(),
            "--input",
            r#"{"op": "progress"}"#,
        ])
        .arg("--record")
        .arg(&recording)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let progress: Vec<Value> = std::fs::read_to_string(&recording)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["kind"] == "progress")
        .map(|l| json!([l["progress"], l["total"], l["message"]]))
        .collect();
    // As the plugin reported them (what a client is sent is filtered later, per call).
    assert_eq!(
        progress,
        vec![
            json!([1.0, 3.0, "one"]),
            json!([2.0, 3.0, "two"]),
            json!([2.0, 3.0, "again"]),
            json!([1.5, 3.0, "back"]),
            json!([3.0, 3.0, "done"]),
        ]
    );
}
