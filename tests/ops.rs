//! Operating `serve --http`: `/healthz`, `/readyz`, `/metrics` after real calls, and a
//! SIGTERM drain that lets a call in flight finish while new work is refused.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// `serve --http 127.0.0.1:0 ARGS` over a registry of one test server, `alpha`; its address
/// (with `--metrics`, then a space and the metrics address).
async fn serve(s: &Scratch, extra: &[&str]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .env("MCP_REGISTRY_CACHE_DIR", s.cache())
        .arg("--config")
        .arg(&s.config)
        .args(["serve", "--http", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut mcp, mut metrics) = (None, None);
    let wants_metrics = extra.contains(&"--metrics");
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(url) = line.strip_prefix("mcp-registry: serving MCP on http://") {
            mcp = Some(url.trim().trim_end_matches("/mcp").to_owned());
        }
        if let Some(url) = line.strip_prefix("mcp-registry: serving metrics on http://") {
            metrics = Some(url.trim().trim_end_matches("/metrics").to_owned());
        }
        let ready = metrics.is_some() || !wants_metrics;
        if let (Some(addr), true) = (&mcp, ready) {
            let addr = addr.clone();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (
                child,
                metrics.map_or(addr.clone(), |m| format!("{addr} {m}")),
            );
        }
    }
    panic!("serve --http printed no address");
}

/// One HTTP/1.1 request; the status and the body.
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (status, _, body) = http_exchange(addr, method, path, headers, body).await;
    (status, body)
}

/// A stateless 2026-07-28 `tools/call`; the status and the result's first text.
async fn call(addr: &str, tool: &str, arguments: Value) -> (u16, String) {
    call_as(addr, None, tool, arguments).await
}

/// `call` with `Authorization: Bearer KEY`.
async fn call_as(addr: &str, key: Option<&str>, tool: &str, arguments: Value) -> (u16, String) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let bearer = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool),
    ];
    if let Some(b) = &bearer {
        headers.push(("authorization", b));
    }
    let (status, body) = http(addr, "POST", "/mcp", &headers, &body.to_string()).await;
    let message: Value = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:").or(l.starts_with('{').then_some(l)))
        .find_map(|t| serde_json::from_str(t.trim()).ok())
        .unwrap_or_default();
    let text = message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, text)
}

fn one_server() -> Scratch {
    Scratch::new(json!({"alpha": {"command": test_server().display().to_string()}}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_of_real_calls() {
    let s = one_server();
    let (_child, addr) = serve(&s, &[]).await;
    assert_eq!(http(&addr, "GET", "/healthz", &[], "").await.0, 200);
    assert_eq!(http(&addr, "GET", "/readyz", &[], "").await.0, 200);
    for _ in 0..2 {
        assert_eq!(
            call(&addr, "alpha__echo", json!({"message": "m"})).await,
            (200, "m".into())
        );
    }
    let (status, _) = call(&addr, "alpha__fail", json!({"message": "no"})).await;
    assert_eq!(status, 200);
    let (status, metrics) = http(&addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    for line in [
        r#"mcp_registry_tool_calls_total{tenant="local",server="alpha",tool="echo",outcome="ok"} 2"#,
        r#"mcp_registry_tool_calls_total{tenant="local",server="alpha",tool="fail",outcome="tool-error"} 1"#,
        r#"mcp_registry_tool_call_seconds_count{server="alpha"} 3"#,
        r#"mcp_registry_server_processes{server="alpha"} 1"#,
        r#"mcp_registry_server_restarts{server="alpha"} 0"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in:\n{metrics}"
        );
    }
    // A crash is a restart on the next use.
    let _ = call(&addr, "alpha__crash", json!({})).await;
    assert_eq!(
        call(&addr, "alpha__echo", json!({"message": "again"}))
            .await
            .1,
        "again"
    );
    let metrics = http(&addr, "GET", "/metrics", &[], "").await.1;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"mcp_registry_server_restarts{server="alpha"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_calls_in_flight_then_exits_cleanly() {
    let s = one_server();
    let (mut child, addr) = serve(&s, &["--drain-timeout", "20"]).await;
    let slow = {
        let addr = addr.clone();
        tokio::spawn(async move { call(&addr, "alpha__sleep", json!({"ms": 2000})).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().unwrap() as i32;
    // SAFETY: kill(2) on the child's own pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        http(&addr, "GET", "/readyz", &[], "").await.0,
        503,
        "draining is not ready"
    );
    assert_eq!(
        http(&addr, "GET", "/healthz", &[], "").await.0,
        200,
        "draining is alive"
    );
    assert_eq!(
        call(&addr, "alpha__echo", json!({"message": "late"}))
            .await
            .0,
        503
    );
    // The call in flight finishes with its result: the upstream's pid.
    let (status, text) = slow.await.unwrap();
    assert_eq!(status, 200);
    let upstream: u32 = text
        .parse()
        .unwrap_or_else(|_| panic!("no pid in {text:?}"));
    let exit = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("serve did not exit after draining")
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    assert!(gone(upstream), "the upstream outlived serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tenants_metrics_are_only_on_their_own_listener() {
    use sha2::Digest;
    let s = one_server();
    let key = "ops-test-key";
    let digest: String = sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tenants = s.path("tenants.json");
    std::fs::write(
        &tenants,
        json!({"tenants": {"acme": {"keys": [format!("sha256:{digest}")], "servers": ["alpha"]}}})
            .to_string(),
    )
    .unwrap();
    let tenants = tenants.display().to_string();
    let (_child, both) = serve(&s, &["--tenants", &tenants, "--metrics", "127.0.0.1:0"]).await;
    let (addr, metrics_addr) = both.split_once(' ').unwrap();
    assert_eq!(
        call_as(addr, Some(key), "alpha__echo", json!({"message": "m"})).await,
        (200, "m".into())
    );
    assert_eq!(
        call_as(addr, Some("wrong"), "alpha__echo", json!({"message": "m"}))
            .await
            .0,
        401
    );
    // The public listener answers the probes but does not show the metrics (they name tenants).
    assert_eq!(http(addr, "GET", "/healthz", &[], "").await.0, 200);
    assert_ne!(http(addr, "GET", "/metrics", &[], "").await.0, 200);
    let (status, metrics) = http(metrics_addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"mcp_registry_tool_calls_total{tenant="acme",server="alpha",tool="echo",outcome="ok"} 1"#),
        "{metrics}"
    );
    // The wrong key, and the credential-less `/metrics` on the public listener.
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"mcp_registry_refused_requests_total{reason="auth"} 2"#),
        "{metrics}"
    );
    assert_eq!(http(metrics_addr, "GET", "/readyz", &[], "").await.0, 200);
}
