//! One access decision: the same grants, listed and called through every front end of
//! `serve` (plain tools, code mode's `search` and `execute`, a plugin run), give the same
//! answer. Each of the four rules hides something: the registry's `tools` (`b__counter`),
//! `serve --filter` (`a__add`), and the tenant's tool globs (every tool of `b` but `echo`,
//! `add` and `counter`); the plugin's own grants name both servers.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::tenants::{call, digest, request, text_of};
use crate::support::*;

const KEY: &str = "access-tenant-key";

/// Tools asked for through every front end: some callable, some hidden by each rule.
const ASKED: [&str; 6] = [
    "a__echo",
    "a__add",
    "b__echo",
    "b__add",
    "b__counter",
    "b__pid",
];

fn arguments(tool: &str) -> Value {
    match tool.split_once("__").map(|(_, t)| t) {
        Some("echo") => json!({"message": "x"}),
        Some("add") => json!({"a": 1, "b": 2}),
        _ => json!({}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_grants_give_the_same_answer_through_every_front_end() {
    let server = test_server().display().to_string();
    let s = Scratch::new(json!({
        "a": {"command": server},
        "b": {"command": server, "tools": {"deny": ["counter"]}},
    }));
    std::fs::write(
        s.path("plugins.json"),
        json!({"plugins": {"probe": {"component": guest("probe").display().to_string(),
                                     "servers": ["a", "b"]}}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        s.path("tenants.json"),
        json!({"tenants": {"t": {"keys": [digest(KEY)], "servers": ["a", "b"],
            "tools": ["a__*", "b__echo", "b__add", "b__counter"],
            "plugins": ["probe"], "code_mode": true}}})
        .to_string(),
    )
    .unwrap();
    let (tenants, plugins) = (s.path("tenants.json"), s.path("plugins.json"));
    let (_child, addr) = serve_http(
        &s.config,
        &code_mode_cache(),
        &[
            "--code-mode",
            "--filter",
            "a:-add;b",
            "--tenants",
            tenants.to_str().unwrap(),
            "--plugins",
            plugins.to_str().unwrap(),
        ],
    )
    .await;

    // What the tenant is shown: each rule has hidden its tool.
    let listed = request(&addr, KEY, "tools/list", json!({})).await;
    let shown: BTreeSet<String> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .filter(|n| n.contains("__"))
        .map(str::to_owned)
        .collect();
    for (tool, visible) in [
        ("a__echo", true),
        ("a__add", false),
        ("b__echo", true),
        ("b__add", true),
        ("b__counter", false),
        ("b__pid", false),
    ] {
        assert_eq!(shown.contains(tool), visible, "{tool}: {shown:?}");
    }

    // Plain calls: what is shown is callable, and nothing else.
    for tool in ASKED {
        let r = call(&addr, Some(KEY), tool, arguments(tool)).await;
        let refused = r.message()["error"].to_string().contains("unknown tool");
        assert_eq!(
            !refused,
            shown.contains(tool),
            "tools/call {tool}: {}",
            r.body
        );
    }

    // Code mode's search shows the same tools.
    let r = call(
        &addr,
        Some(KEY),
        "search",
        json!({"query": "", "limit": 100}),
    )
    .await;
    let searched: BTreeSet<String> = r.message()["result"]["structuredContent"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .map(str::to_owned)
        .collect();
    assert_eq!(searched, shown, "search against tools/list");

    // A snippet may call the same tools, and is refused the others.
    let calls: Vec<String> = ASKED
        .iter()
        .map(|tool| {
            let (server, name) = tool.split_once("__").unwrap();
            format!(
                "try {{ await tools['{server}']['{name}']({}); out['{tool}'] = 'ok'; }} \
                 catch (e) {{ out['{tool}'] = e.kind === 'denied' || /not available/.test(e.message) \
                 ? 'refused' : 'reached: ' + e.message; }}",
                arguments(tool)
            )
        })
        .collect();
    let code = format!("const out = {{}};\n{}\nreturn out;", calls.join("\n"));
    let r = call(&addr, Some(KEY), "execute", json!({"code": code})).await;
    let record = &r.message()["result"]["structuredContent"];
    for tool in ASKED {
        let outcome = record["value"][tool].as_str().unwrap_or_default();
        assert_eq!(
            outcome != "refused",
            shown.contains(tool),
            "execute {tool}: {outcome} ({record})"
        );
    }

    // A plugin run for the tenant: its session lists the same tools, and calls fare alike.
    for tool in ASKED {
        let (server, name) = tool.split_once("__").unwrap();
        let input = json!({"op": "session_call", "server": server, "tool": name,
                           "arguments": arguments(tool)});
        let r = call(&addr, Some(KEY), "probe", input).await;
        let v: Value = serde_json::from_str(&text_of(&r))
            .unwrap_or_else(|e| panic!("probe {tool} ({e}): {}", r.body));
        let listed: BTreeSet<String> = v["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("probe {tool}: {v}"))
            .iter()
            .filter_map(|t| t.as_str())
            .map(str::to_owned)
            .collect();
        let expected: BTreeSet<String> = shown
            .iter()
            .filter(|n| n.starts_with(&format!("{server}__")))
            .cloned()
            .collect();
        assert_eq!(listed, expected, "the plugin's session on {server}");
        let refused = v["result"]["error"] == "denied";
        assert_eq!(!refused, shown.contains(tool), "probe calls {tool}: {v}");
    }
}
