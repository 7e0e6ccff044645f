//! Interop proven by tools this project did not write, against `mcp-registry serve`:
//! the official `@modelcontextprotocol/conformance` server scenarios (over streamable HTTP)
//! and the `@modelcontextprotocol/inspector` CLI (over stdio). Both need Node >= 22, which
//! `scripts/install-peers.sh` installs from the npm registry under `.peers/`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::*;
use serde_json::{json, Value};

/// Node 22 and one npm tool, both installed under `.peers/`.
fn node_tool(name: &str) -> Option<(PathBuf, PathBuf)> {
    let bin = peers_dir().join("node_modules/.bin");
    let node = peer(bin.join("node"), "Node 22")?;
    Some((node, peer(bin.join(name), name)?))
}

/// The test server's conformance tools and prompts under the names the suite asks for.
const ALIASED: &[&str] = &[
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_error_handling",
    "test_tool_with_progress",
    "test_tool_with_logging",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "test_simple_prompt",
    "test_prompt_with_arguments",
    "test_prompt_with_embedded_resource",
    "test_prompt_with_image",
];

fn registry(dir: &std::path::Path) -> PathBuf {
    let aliases: serde_json::Map<String, Value> = ALIASED
        .iter()
        .map(|t| (t.to_string(), json!(format!("conf__{t}"))))
        .collect();
    let path = dir.join("config.json");
    // "legacy": the suite's sampling and elicitation scenarios need an upstream that may send
    // requests to its client, which 2026-07-28 forbids (MRTR replaces them).
    std::fs::write(
        &path,
        json!({"mcpServers": {"conf": {"command": test_server().display().to_string(), "protocol": "legacy"}},
               "aliases": aliases})
        .to_string(),
    )
    .unwrap();
    path
}

/// The suite's server scenarios at conformance 0.1.16; every one must pass (the report is
/// checked to name each, so a renamed or dropped scenario fails the test too).
const SCENARIOS: &[&str] = &[
    "server-initialize",
    "logging-set-level",
    "ping",
    "completion-complete",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-with-logging",
    "tools-call-error",
    "tools-call-with-progress",
    "tools-call-sampling",
    "tools-call-elicitation",
    "elicitation-sep1034-defaults",
    "server-sse-multiple-streams",
    "elicitation-sep1330-enums",
    "resources-list",
    "resources-read-text",
    "resources-read-binary",
    "resources-templates-read",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-list",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
    "dns-rebinding-protection",
];

#[test]
fn conformance_server_scenarios_against_serve_http() {
    let Some((node, conformance)) = node_tool("conformance") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = registry(dir.path());
    let mut serve = Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--http",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(serve.stderr.take().unwrap());
    let mut url = None;
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(rest) = line.trim().strip_prefix("mcp-registry: serving MCP on ") {
            url = Some(rest.to_owned());
            break;
        }
        line.clear();
    }
    let url = url.expect("serve --http did not report its address");
    // Keep draining serve's stderr so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});
    let out = Command::new(&node)
        .arg(&conformance)
        .args(["server", "--url", &url])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let summary: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.contains("=== SUMMARY ==="))
        .collect();
    println!("{}", summary.join("\n"));
    let failed: Vec<&&str> = summary.iter().filter(|l| l.starts_with('✗')).collect();
    assert!(failed.is_empty(), "failed scenarios: {failed:?}\n{report}");
    for scenario in SCENARIOS {
        let line = summary
            .iter()
            .find(|l| l.contains(&format!(" {scenario}:")))
            .unwrap_or_else(|| panic!("scenario {scenario} missing from the report:\n{report}"));
        assert!(
            line.contains(", 0 failed") && line.starts_with('✓'),
            "scenario {scenario} failed: {line}\n{report}"
        );
    }
}

#[test]
fn inspector_cli_lists_and_calls_through_serve() {
    let Some((node, _)) = node_tool("mcp-inspector") else {
        return;
    };
    let inspector = peers_dir().join("node_modules/@modelcontextprotocol/inspector");
    let dir = tempfile::tempdir().unwrap();
    let config = registry(dir.path());
    let run = |args: &[&str], tool_error: bool| {
        let out = Command::new(&node)
            .arg(peers_dir().join("node_modules/.bin/mcp-inspector"))
            .arg("--cli")
            .args(["-e", &format!("MCP_REGISTRY_CONFIG={}", config.display())])
            .args(args)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_mcp-registry"))
            .arg("serve")
            .env("HOME", dir.path())
            .current_dir(&inspector)
            .output()
            .unwrap();
        // The inspector exits non-zero when a tool returns isError, and says so on stderr.
        assert_eq!(
            out.status.success(),
            !tool_error,
            "inspector {args:?}: {out:?}"
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("inspector printed non-JSON ({e}): {out:?}"))
    };
    let list = run(&["--method", "tools/list"], false);
    let names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"conf__echo") && names.contains(&"test_simple_text"),
        "{names:?}"
    );
    let call = run(
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "conf__echo",
            "--tool-arg",
            "message=inspected",
        ],
        false,
    );
    assert_eq!(call["content"][0]["text"], "inspected");
    let call = run(
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "conf__fail",
            "--tool-arg",
            "message=nope",
        ],
        true,
    );
    assert_eq!(call["isError"], true);
    assert_eq!(call["content"][0]["text"], "nope");
}
