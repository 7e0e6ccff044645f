//! Code-mode budgets per tenant: a tenants file's `"code_mode": {"max_calls", "max_ms",
//! "max_memory_mib"}` bounds each of that tenant's snippets (an argument cannot raise them),
//! every result says what the run could use and used, and `/metrics` counts each budget a
//! tenant ran out of.

use serde_json::{json, Value};

use super::tenants::{call, digest};
use crate::support::*;

const TIGHT: &str = "tight-tenant-key";
const ROOMY: &str = "roomy-tenant-key";

/// `execute` as `key`'s tenant; the run's record.
async fn execute(addr: &str, key: &str, arguments: Value) -> Value {
    let r = call(addr, Some(key), "execute", arguments).await;
    let record = r.message()["result"]["structuredContent"].clone();
    assert!(record.is_object(), "{}", r.body);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_code_mode_budget_bounds_its_snippets_and_is_counted() {
    let s = Scratch::new(json!({"a": {"command": test_server().display().to_string()}}));
    std::fs::write(
        s.path("tenants.json"),
        json!({"tenants": {
            "tight": {"keys": [digest(TIGHT)], "servers": ["a"],
                      "code_mode": {"max_calls": 3, "max_ms": 2000, "max_memory_mib": 16}},
            "roomy": {"keys": [digest(ROOMY)], "servers": ["a"], "code_mode": true}}})
        .to_string(),
    )
    .unwrap();
    let tenants = s.path("tenants.json");
    let metrics = format!("127.0.0.1:{}", free_port());
    let (_child, addr) = serve_http(
        &s.config,
        &code_mode_cache(),
        &[
            "--code-mode",
            "--tenants",
            tenants.to_str().unwrap(),
            "--metrics",
            &metrics,
        ],
    )
    .await;

    let ten_calls =
        "for (let i = 0; i < 10; i++) await tools.a.echo({message: 'x'}); return 'done';";
    // The roomy tenant has the host's bounds; the tight one stops at its third call.
    let roomy = execute(&addr, ROOMY, json!({"code": ten_calls})).await;
    assert_eq!(roomy["value"], "done", "{roomy}");
    assert_eq!(roomy["budget"]["max_calls"], 200, "{roomy}");
    assert_eq!(roomy["budget"]["used"]["calls"], 10, "{roomy}");
    let tight = execute(&addr, TIGHT, json!({"code": ten_calls})).await;
    assert_eq!(tight["error"]["kind"], "limit", "{tight}");
    assert_eq!(tight["budget"]["max_calls"], 3, "{tight}");
    assert_eq!(tight["budget"]["used"]["calls"], 3, "{tight}");
    // A Python snippet is bounded the same way.
    let python = execute(
        &addr,
        TIGHT,
        json!({"code": "for i in range(10):\n    await tools.a.echo(message='x')", "language": "python"}),
    )
    .await;
    assert_eq!(python["error"]["kind"], "limit", "{python}");

    // timeout_ms may shorten the tenant's 2 s, never lengthen it.
    let spin = execute(
        &addr,
        TIGHT,
        json!({"code": "while (true) {}", "timeout_ms": 60000}),
    )
    .await;
    assert_eq!(spin["error"]["kind"], "timeout", "{spin}");
    assert_eq!(spin["budget"]["max_ms"], 2000, "{spin}");
    assert!(spin["ms"].as_f64().unwrap() < 20_000.0, "{spin}");

    // 16 MiB of engine memory, not the host's 64.
    let bomb = execute(
        &addr,
        TIGHT,
        json!({"code": "const keep = []; for (;;) keep.push('y'.repeat(1 << 20) + keep.length);"}),
    )
    .await;
    assert_eq!(bomb["error"]["kind"], "limit", "{bomb}");
    assert!(
        bomb["error"]["message"]
            .as_str()
            .unwrap()
            .contains("16 MiB"),
        "{bomb}"
    );
    assert_eq!(bomb["budget"]["max_memory_bytes"], 16 << 20, "{bomb}");
    let fine = execute(&addr, TIGHT, json!({"code": "return 1;"})).await;
    let used = fine["budget"]["used"]["memory_bytes"].as_u64().unwrap();
    assert!(used > 0 && used <= 16 << 20, "{fine}");

    // Each budget run out, counted per tenant.
    let (_, _, text) = http_exchange(&metrics, "GET", "/metrics", &[], "").await;
    for outcome in ["calls", "deadline", "memory"] {
        assert!(
            text.lines().any(|l| l.contains("plugin_runs")
                && l.contains(r#"tenant="tight""#)
                && l.contains(&format!(r#"outcome="{outcome}""#))),
            "{outcome}: {text}"
        );
    }
    assert!(
        !text.lines().any(|l| l.contains("plugin_runs")
            && l.contains(r#"tenant="roomy""#)
            && l.contains(r#"outcome="calls""#)),
        "{text}"
    );
}

#[test]
fn a_bad_code_mode_budget_names_its_field() {
    let s = Scratch::new(json!({"a": {"command": test_server().display().to_string()}}));
    std::fs::write(
        s.path("tenants.json"),
        json!({"tenants": {"t": {"keys": [digest(TIGHT)], "servers": ["a"],
            "code_mode": {"max_calls": 0}}}})
        .to_string(),
    )
    .unwrap();
    let out = s
        .cli(&[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--tenants",
            s.path("tenants.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("code_mode.max_calls"), "{stderr}");
    assert!(stderr.contains("tenants.json"), "{stderr}");
}
