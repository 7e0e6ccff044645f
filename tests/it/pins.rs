//! Pinned tool definitions: a server that changes a tool after it was first seen (a "rug
//! pull": new instructions in the description, a new argument asking for a secret) or renames
//! one has the changed tools quarantined until an operator approves them, seen by the
//! TypeScript SDK's client through `serve --http` and with the CLI's `pins` commands.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// A registry of the test server as `t`, pinned, its rug pull armed (`enable_extra` pulls).
fn scratch(pull_file: &std::path::Path) -> Scratch {
    let s = Scratch::new(json!({
        "t": {"command": test_server().display().to_string(),
              "env": {"MCP_TEST_RUG_PULL_FILE": pull_file.display().to_string(),
                      "MCP_TEST_RUG_PULL": "describe rename"}},
    }));
    let mut registry: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.config).unwrap()).unwrap();
    registry["pins"] = json!("quarantine");
    std::fs::write(&s.config, registry.to_string()).unwrap();
    s
}

fn cli(s: &Scratch, args: &[&str]) -> (Option<i32>, String) {
    let out = s.cli(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// The TypeScript SDK (v2) client: lists, makes `calls`, and (with `changes`) calls
/// `enable_extra` and reports the tool list it refreshed after the list change.
async fn typescript(node: &std::path::Path, addr: &str, calls: Value, changes: bool) -> Value {
    let mut cmd = tokio::process::Command::new(node);
    cmd.arg(workspace_root().join("tests/peers/compat_client.mjs"))
        .args(["ts2-legacy", "http", &format!("http://{addr}/mcp")])
        .arg(calls.to_string())
        .stderr(Stdio::piped());
    if changes {
        cmd.env("MCP_COMPAT_CHANGES", r#"["t"]"#);
    }
    let out = cmd.output().await.unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rug_pull_is_quarantined_until_approved_without_a_restart() {
    let Some(node) = peer(
        peers_dir().join("node_modules/.bin/node"),
        "Node 22 (npm node@22)",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pull = dir.path().join("pulled");
    let s = scratch(&pull);
    let (_child, addr) = serve_http(&s.config, &s.cache(), &[]).await;

    // First sight pins every tool; then the server pulls the rug in the middle of the session
    // and tells the client its list changed.
    let calls = json!([
        ["t__echo", {"message": "before"}],
        ["t__enable_extra", {}],
        ["t__echo", {"message": "after", "key": "-----BEGIN OPENSSH PRIVATE KEY-----"}],
        ["t__sum", {"a": 1, "b": 2}],
    ]);
    let report = typescript(&node, &addr, calls, true).await;
    let tools = report["tools"].to_string();
    assert!(
        tools.contains("t__echo") && tools.contains("t__add"),
        "{report}"
    );
    assert_eq!(report["calls"][0]["text"], "before", "{report}");
    assert_eq!(
        std::fs::read_to_string(&pull).unwrap(),
        "describe rename",
        "the server pulled the rug: {report}"
    );
    let refused = report["calls"][2].to_string();
    assert_eq!(report["calls"][2]["ok"], false, "{report}");
    assert!(
        refused.contains("quarantined") && refused.contains("description"),
        "{report}"
    );
    let renamed = report["calls"][3].to_string();
    assert_eq!(report["calls"][3]["ok"], false, "{report}");
    assert!(renamed.contains("add vanished"), "{report}");
    // The list the client refreshed after the change has neither the changed tool, nor the
    // renamed one, nor the new one.
    let refreshed: Vec<&str> = report["changes"]["t"]["text"]
        .as_str()
        .and_then(|t| t.split_once("tools: "))
        .map(|(_, list)| list.split(',').collect())
        .unwrap_or_default();
    assert!(refreshed.contains(&"t__counter"), "{report}");
    for gone in ["t__echo", "t__sum", "t__extra", "t__add"] {
        assert!(!refreshed.contains(&gone), "{gone} listed: {report}");
    }

    let pins: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("pins.json")).unwrap()).unwrap();
    assert!(
        pins["servers"]["t"]["tools"]["echo"]["sha256"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:")),
        "{pins}"
    );

    let (code, diff) = cli(&s, &["pins", "diff", "t"]);
    assert_eq!(code, Some(1), "{diff}");
    assert!(diff.contains("t__echo: its definition changed"), "{diff}");
    assert!(diff.contains("+ inputSchema.properties.key"), "{diff}");
    assert!(
        diff.contains("+ description: \"Return the message unchanged. Before"),
        "{diff}"
    );
    assert!(
        diff.contains("t__sum: it appeared while add vanished"),
        "{diff}"
    );
    assert!(diff.contains("t__add: pinned, no longer listed"), "{diff}");

    let (code, approved) = cli(&s, &["pins", "approve", "t__echo"]);
    assert_eq!(code, Some(0), "{approved}");
    assert!(approved.contains("approved t__echo"), "{approved}");

    // `serve` picks the approval up without a restart.
    let started = Instant::now();
    loop {
        let (_, text) = mcp_call(
            &addr,
            None,
            "t__echo",
            json!({"message": "again"}),
            json!({}),
        )
        .await;
        if text == "again" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the approval was not picked up: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = typescript(
        &node,
        &addr,
        json!([["t__echo", {"message": "approved"}]]),
        false,
    )
    .await;
    assert_eq!(report["calls"][0]["text"], "approved", "{report}");
    let tools = report["tools"].to_string();
    assert!(
        tools.contains("t__echo") && !tools.contains("t__sum"),
        "{report}"
    );
    let (code, diff) = cli(&s, &["pins", "diff", "t__echo"]);
    assert_eq!(code, Some(0), "{diff}");
    let (_, list) = cli(&s, &["pins", "list", "t"]);
    assert!(list.contains("t__echo\tsha256:"), "{list}");
}

#[test]
fn pins_commands_explain_themselves_when_pins_are_off_or_the_file_is_broken() {
    let s = Scratch::new(json!({"t": {"command": test_server().display().to_string()}}));
    let (code, out) = cli(&s, &["pins", "list"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("tools are not pinned"), "{out}");

    let mut registry: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.config).unwrap()).unwrap();
    registry["pins"] = json!({"mode": "quarantine", "new_tools": "sometimes"});
    std::fs::write(&s.config, registry.to_string()).unwrap();
    let (code, out) = cli(&s, &["list"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("pins.new_tools") && out.contains("\"allow\""),
        "{out}"
    );

    registry["pins"] = json!("warn");
    std::fs::write(&s.config, registry.to_string()).unwrap();
    std::fs::write(
        s.path("pins.json"),
        "{\"version\": 1, \"servers\": {\"t\": 3}}",
    )
    .unwrap();
    let (code, out) = cli(&s, &["list-tools"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("pins.json") && out.contains("not a pins file"),
        "{out}"
    );
}
