//! Operating `serve --http`: `/healthz`, `/readyz`, `/metrics` after real calls (and scraped
//! by a real Prometheus), W3C trace context carried to the upstream and into the log, and a
//! SIGTERM drain that lets a call in flight finish while new work is refused.

use std::process::Stdio;
use std::time::Duration;

use crate::support::*;
use serde_json::{json, Value};

/// `serve --http 127.0.0.1:0 ARGS` over a registry of one test server, `alpha`; its address
/// (with `--metrics`, then a space and the metrics address). Its stderr goes to `serve.log`
/// in the scratch directory.
async fn serve(s: &Scratch, extra: &[&str]) -> (tokio::process::Child, String) {
    serve_cached(s, &code_mode_cache(), extra).await
}

/// `serve` with the compile cache in `cache`.
async fn serve_cached(
    s: &Scratch,
    cache: &std::path::Path,
    extra: &[&str],
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let log = s.path("serve.log");
    let append = move |line: &str| append_line(&log, line);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .env("MCP_REGISTRY_CACHE_DIR", cache)
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
        append(&line);
        if let Some(url) = line.strip_prefix("mcp-registry: serving MCP on http://") {
            mcp = Some(url.trim().trim_end_matches("/mcp").to_owned());
        }
        if let Some(url) = line.strip_prefix("mcp-registry: serving metrics on http://") {
            metrics = Some(url.trim().trim_end_matches("/metrics").to_owned());
        }
        let ready = metrics.is_some() || !wants_metrics;
        if let (Some(addr), true) = (&mcp, ready) {
            let addr = addr.clone();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    append(&line);
                }
            });
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
    mcp_call(addr, key, tool, arguments, json!({})).await
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

/// With code mode, a replica is not ready while it compiles its engines (seconds of every
/// core on a first start; a balancer should send nothing meanwhile), though it is alive and
/// answers plain calls; once the engines are loaded (from the cache here) it is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_code_mode_engines() {
    let s = one_server();
    let (mut cold, addr) = serve_cached(&s, &s.path("cold-cache"), &["--code-mode"]).await;
    assert_eq!(
        http(&addr, "GET", "/readyz", &[], "").await,
        (503, "preparing code mode\n".to_owned())
    );
    assert_eq!(http(&addr, "GET", "/healthz", &[], "").await.0, 200);
    assert_eq!(
        call(&addr, "alpha__echo", json!({"message": "meanwhile"})).await,
        (200, "meanwhile".into())
    );
    cold.kill().await.unwrap();

    let (_warm, addr) = serve(&s, &["--code-mode"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last = http(&addr, "GET", "/readyz", &[], "").await;
    while last.0 != 200 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = http(&addr, "GET", "/readyz", &[], "").await;
    }
    assert_eq!(last, (200, "ready\n".to_owned()));
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

/// The trace id of `traceparent`.
fn trace_id(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_goes_on_to_the_upstream_and_into_the_log() {
    let s = one_server();
    let (_child, addr) = serve(&s, &["-v", "--code-mode"]).await;
    let ours = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let meta = json!({"traceparent": ours, "tracestate": "congo=t61rcWkgMzE"});
    // A plain call: the upstream request carries the same trace, with our own span as parent.
    let (status, upstream) =
        mcp_call(&addr, None, "alpha__traceparent", json!({}), meta.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(trace_id(&upstream), trace_id(ours), "{upstream:?}");
    assert_ne!(
        upstream, ours,
        "the parent id must be ours, not the caller's"
    );
    assert!(
        upstream.starts_with("00-") && upstream.ends_with("-01"),
        "{upstream}"
    );
    // A code-mode run: the calls its snippet makes carry it too.
    let code = "return await tools.alpha.traceparent({})";
    let (status, record) =
        mcp_call(&addr, None, "execute", json!({"code": code}), meta.clone()).await;
    assert_eq!(status, 200);
    let record: Value = serde_json::from_str(&record).unwrap();
    let from_snippet = record["value"]
        .as_str()
        .or(record["value"]["content"][0]["text"].as_str())
        .unwrap_or_else(|| panic!("{record}"));
    assert_eq!(trace_id(from_snippet), trace_id(ours), "{record}");
    // Without one, none is made up; a malformed one is not passed on.
    let (_, none) = call(&addr, "alpha__traceparent", json!({})).await;
    assert_eq!(none, "");
    let bad = json!({"traceparent": "00-xyz-00f067aa0ba902b7-01"});
    let (_, none) = mcp_call(&addr, None, "alpha__traceparent", json!({}), bad).await;
    assert_eq!(none, "");
    // The log lines of both calls name the trace.
    let log = std::fs::read_to_string(s.path("serve.log")).unwrap();
    let traced: Vec<&str> = log.lines().filter(|l| l.contains(trace_id(ours))).collect();
    assert!(
        traced.iter().any(|l| l.contains("upstream call")),
        "no traced upstream-call line in:\n{log}"
    );
    assert!(
        traced.iter().any(|l| l.contains("plugin")),
        "no traced plugin-run line in:\n{log}"
    );
}

/// Label values a series must have.
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// Prometheus's answer to an instant query: each series' labels and value.
async fn prometheus_query(addr: &str, query: &str) -> Vec<(Value, f64)> {
    if tokio::net::TcpStream::connect(addr).await.is_err() {
        return Vec::new(); // not listening yet
    }
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/v1/query?query={query}"),
        &[],
        "",
    )
    .await;
    if status != 200 {
        return Vec::new();
    }
    let answer: Value = serde_json::from_str(&body).unwrap_or_default();
    answer["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let value = r["value"][1].as_str().and_then(|v| v.parse().ok());
            (r["metric"].clone(), value.unwrap_or(f64::NAN))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_serve_and_answers_for_every_series() {
    use sha2::Digest;
    let Some(prometheus) = peer(
        std::path::PathBuf::from("/usr/bin/prometheus"),
        "Prometheus (Debian's prometheus package)",
    ) else {
        return;
    };
    let s = one_server();
    let key = "prom-test-key";
    let digest: String = sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tenants = s.path("tenants.json");
    let grant = json!({"keys": [format!("sha256:{digest}")], "servers": ["alpha"],
                       "code_mode": true});
    std::fs::write(&tenants, json!({"tenants": {"acme": grant}}).to_string()).unwrap();
    let tenants = tenants.display().to_string();
    let (_serve, both) = serve(
        &s,
        &[
            "--tenants",
            &tenants,
            "--metrics",
            "127.0.0.1:0",
            "--code-mode",
        ],
    )
    .await;
    let (addr, metrics_addr) = both.split_once(' ').unwrap();

    // The workload: calls (ok, tool error), code-mode runs (one stopped by its deadline), a
    // refused credential, and an open client session.
    for _ in 0..3 {
        let (status, text) = call_as(addr, Some(key), "alpha__echo", json!({"message": "m"})).await;
        assert_eq!((status, text.as_str()), (200, "m"));
    }
    let _ = call_as(addr, Some(key), "alpha__fail", json!({})).await;
    let ok = json!({"code": "return await tools.alpha.add({a: 1, b: 2})"});
    assert_eq!(call_as(addr, Some(key), "execute", ok).await.0, 200);
    let spin = json!({"code": "while (true) {}", "timeout_ms": 300});
    assert_eq!(call_as(addr, Some(key), "execute", spin).await.0, 200);
    assert_eq!(
        call_as(addr, Some("wrong"), "alpha__echo", json!({}))
            .await
            .0,
        401
    );
    let bearer = format!("Bearer {key}");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "ops-test", "version": "0"}}});
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("authorization", bearer.as_str()),
    ];
    let (status, head, _) = http_exchange(addr, "POST", "/mcp", &headers, &init.to_string()).await;
    assert_eq!(status, 200);
    let session = head
        .lines()
        .find_map(|l| l.strip_prefix("mcp-session-id:"))
        .expect("no session id")
        .trim()
        .to_owned();
    let mut in_session = headers.to_vec();
    in_session.push(("mcp-session-id", &session));
    in_session.push(("mcp-protocol-version", "2025-11-25"));
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    http_exchange(addr, "POST", "/mcp", &in_session, &initialized.to_string()).await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, _, _) = http_exchange(addr, "POST", "/mcp", &in_session, &list.to_string()).await;
    assert_eq!(status, 200);

    // Prometheus scrapes the metrics listener every second.
    let web = format!("127.0.0.1:{}", free_port());
    let config = s.path("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mcp-registry\n    \
             static_configs:\n      - targets: ['{metrics_addr}']\n"
        ),
    )
    .unwrap();
    let _prometheus = tokio::process::Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", s.path("tsdb").display()))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let value = |series: &[(Value, f64)], labels: &[(&str, &str)]| {
        series
            .iter()
            .find(|(m, _)| labels.iter().all(|(k, v)| m[*k] == *v))
            .map(|(_, v)| *v)
    };
    let wanted: [(&str, Labels, f64); 8] = [
        (
            "mcp_registry_tool_calls_total",
            vec![("tenant", "acme"), ("tool", "echo"), ("outcome", "ok")],
            3.0,
        ),
        (
            "mcp_registry_tool_calls_total",
            vec![("tool", "fail"), ("outcome", "tool-error")],
            1.0,
        ),
        (
            "mcp_registry_plugin_runs_total",
            vec![("plugin", "code-mode"), ("outcome", "ok")],
            1.0,
        ),
        (
            "mcp_registry_plugin_runs_total",
            vec![("plugin", "code-mode"), ("outcome", "deadline")],
            1.0,
        ),
        (
            "mcp_registry_refused_requests_total",
            vec![("reason", "auth")],
            1.0,
        ),
        (
            "mcp_registry_client_sessions",
            vec![("tenant", "acme")],
            1.0,
        ),
        (
            "mcp_registry_server_processes",
            vec![("server", "alpha")],
            1.0,
        ),
        (
            "mcp_registry_server_restarts",
            vec![("server", "alpha")],
            0.0,
        ),
    ];
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let mut missing = Vec::new();
    while std::time::Instant::now() < until {
        missing.clear();
        for (name, labels, expected) in &wanted {
            let series = prometheus_query(&web, name).await;
            if value(&series, labels) != Some(*expected) {
                missing.push(format!("{name}{labels:?} = {expected} (got {series:?})"));
            }
        }
        // Fuel is counted (a run uses millions); latency has its histogram.
        let fuel = prometheus_query(&web, "mcp_registry_plugin_fuel_total").await;
        if !value(&fuel, &[("plugin", "code-mode")]).is_some_and(|f| f > 1000.0) {
            missing.push(format!(
                "mcp_registry_plugin_fuel_total > 1000 (got {fuel:?})"
            ));
        }
        let latency = prometheus_query(&web, "mcp_registry_tool_call_seconds_count").await;
        if !value(&latency, &[("server", "alpha")]).is_some_and(|n| n >= 4.0) {
            missing.push(format!(
                "mcp_registry_tool_call_seconds_count >= 4 (got {latency:?})"
            ));
        }
        if missing.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("Prometheus never had:\n{}", missing.join("\n"));
}
