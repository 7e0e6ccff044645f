//! Record and replay (`run --record FILE`, `run --replay FILE`): a plugin's run against the
//! test server is recorded, then replayed with no server configured at all, bit for bit; a
//! run that asks for something the recording lacks fails with what was asked and recorded.

mod support;

use serde_json::{json, Value};
use support::*;

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
    assert!(
        stderr.contains("not in the recording: alpha__counter {}")
            && stderr.contains("recorded calls of this tool: {} (used), {} (used), {} (used)"),
        "{stderr}"
    );
}
