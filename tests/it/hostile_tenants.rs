//! The hostile tenant: `serve --http --tenants` tried as a tenant with nothing but a valid
//! API key would try it, each attack against the real binary while a bystander tenant's calls
//! must keep working. (Issue: "A hostile tenant gets nothing".)

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use super::tenants::{call, digest, http, request, text_of, Reply};
use crate::support::*;

const MALLORY: &str = "mallory-key-0b1e";
const ALICE: &str = "alice-key-77c2";
/// A secret in serve's own environment, as `${VAR}` would put one there for some server.
const HOST_SECRET: &str = "host-secret-5e7a";
/// A template with several expressions: matching a long URI against it by trying every
/// split point took minutes.
const TEMPLATE: &str = "file:///{a}/{b}/{c}/{d}/{e}/end";

/// Servers `a` (mallory's, with the extra template), `crashy` (mallory's), `b` (alice's) and
/// `g` (both's, one process for every tenant); mallory may use code mode and make 12 calls a
/// minute in at most 2 sessions; alice may not use code mode.
fn scratch() -> Scratch {
    let server = test_server().display().to_string();
    let s = Scratch::new(json!({
        "a": {"command": server, "env": {"MCP_TEST_EXTRA_TEMPLATE": TEMPLATE}},
        "crashy": {"command": server},
        "b": {"command": server},
        "g": {"command": server, "sharing": "global", "protocol": "legacy"},
    }));
    let tenants = json!({"tenants": {
        "mallory": {"keys": [digest(MALLORY)], "servers": ["a", "crashy", "g"], "code_mode": true,
                    "limits": {"calls_per_minute": 12, "sessions": 2}},
        "alice": {"keys": [digest(ALICE)], "servers": ["b", "g"]},
    }});
    std::fs::write(s.path("tenants.json"), tenants.to_string()).unwrap();
    s
}

/// Sets mallory's `limits.<field>` in the scratch's tenants file (`null`: none).
fn set_mallorys_limit(s: &Scratch, field: &str, value: Value) {
    let tenants = std::fs::read_to_string(s.path("tenants.json")).unwrap();
    let mut tenants: Value = serde_json::from_str(&tenants).unwrap();
    let limits = tenants["tenants"]["mallory"]["limits"]
        .as_object_mut()
        .unwrap();
    match value {
        Value::Null => limits.remove(field),
        value => limits.insert(field.into(), value),
    };
    std::fs::write(s.path("tenants.json"), tenants.to_string()).unwrap();
}

/// `serve --http --tenants --code-mode` on loopback, with `extra` arguments and
/// [`HOST_SECRET`] in its environment; the child and its address.
async fn serve(s: &Scratch, extra: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .env("MCP_REGISTRY_CACHE_DIR", code_mode_cache())
        .env("HOST_SECRET", HOST_SECRET)
        .arg("--config")
        .arg(&s.config)
        .args(["serve", "--http", "127.0.0.1:0", "--code-mode", "--tenants"])
        .arg(s.path("tenants.json"))
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = served_address(&mut child).await;
    (child, addr)
}

/// The bystander: its call works, whatever mallory is doing.
async fn alice_still_works(addr: &str) {
    let r = call(addr, Some(ALICE), "b__echo", json!({"message": "fine"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(text_of(&r), "fine", "{}", r.body);
}

/// An attack's answer, in time: a host that hangs on it fails here instead of hanging the
/// test run (a guard, not a measurement).
async fn answered<T>(what: &str, attack: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), attack)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in 120 s"))
}

/// Opens a 2025-11-25 session for `key`: its id (and the `initialize` reply).
pub(super) async fn open_session(addr: &str, key: &str) -> (Option<String>, Reply) {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "hostile", "version": "1"}}});
    let auth = ("authorization", format!("Bearer {key}"));
    let reply = http(addr, "POST", std::slice::from_ref(&auth), &init.to_string()).await;
    let id = reply.header("mcp-session-id");
    if let Some(id) = &id {
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let headers = [
            auth,
            ("mcp-session-id", id.clone()),
            ("mcp-protocol-version", "2025-11-25".into()),
        ];
        http(addr, "POST", &headers, &done.to_string()).await;
    }
    (id, reply)
}

/// A request of `method` on the session `id`, with `key`: the JSON-RPC answer.
pub(super) async fn session_request(
    addr: &str,
    key: &str,
    id: &str,
    method: &str,
    params: Value,
) -> Value {
    // A request id of its own: requests at once on one session must not share one.
    static ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(10);
    let n = ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let body = json!({"jsonrpc": "2.0", "id": n, "method": method, "params": params});
    let headers = [
        ("authorization", format!("Bearer {key}")),
        ("mcp-session-id", id.to_owned()),
        ("mcp-protocol-version", "2025-11-25".into()),
    ];
    http(addr, "POST", &headers, &body.to_string())
        .await
        .message()
}

/// `method` on the session `id`, with `key`: status and body.
async fn on_session(addr: &str, key: &str, id: &str, method: &str) -> (u16, String) {
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    let headers = [
        ("authorization", format!("Bearer {key}")),
        ("mcp-session-id", id.to_owned()),
        ("mcp-protocol-version", "2025-11-25".into()),
        ("last-event-id", "0".into()),
    ];
    let body = if method == "POST" {
        list.to_string()
    } else {
        String::new()
    };
    let reply = http(addr, method, &headers, &body).await;
    (reply.status, reply.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_sees_none_of_the_hosts_environment_but_what_it_is_given() {
    let s = scratch();
    let (_serve, addr) = serve(&s, &[]).await;
    let r = call(
        &addr,
        Some(MALLORY),
        "a__env",
        json!({"name": "HOST_SECRET"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        text_of(&r),
        "",
        "the host's secret reached a server: {}",
        r.body
    );
    // What every server gets still arrives.
    let r = call(&addr, Some(MALLORY), "a__env", json!({"name": "PATH"})).await;
    assert!(!text_of(&r).is_empty(), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_uri_against_a_template_is_answered_at_once() {
    let s = scratch();
    let (_serve, addr) = serve(&s, &[]).await;
    // Lists the templates first (so the read is routed by them), then reads a URI of 256 KiB
    // of '/' that no template matches, twice at once, beside the bystander.
    // A 2025-11-25 session: the URI travels in the body (a 2026-07-28 request would also
    // carry it in a header, which is bounded).
    let (session, _) = open_session(&addr, MALLORY).await;
    let session = session.expect("a session");
    let listed = session_request(
        &addr,
        MALLORY,
        &session,
        "resources/templates/list",
        json!({}),
    )
    .await;
    assert!(listed.to_string().contains("/end"), "{listed}");
    let uri = format!("file:///{}", "/".repeat(256 << 10));
    let read = || {
        session_request(
            &addr,
            MALLORY,
            &session,
            "resources/read",
            json!({"uri": uri}),
        )
    };
    let (first, second, ()) = answered("a long URI", async {
        tokio::join!(read(), read(), alice_still_works(&addr))
    })
    .await;
    for answer in [first, second] {
        let error = answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // No template of mallory's servers matches it: an unknown resource.
        let shown: String = answer.to_string().chars().take(300).collect();
        assert!(error.contains("resource"), "{shown}");
    }
    alice_still_works(&addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_session_reads_exactly_as_one_that_does_not_exist() {
    let s = scratch();
    let (_serve, addr) = serve(&s, &[]).await;
    let (alices, _) = open_session(&addr, ALICE).await;
    let alices = alices.expect("alice got a session");
    let nowhere = "0b9f3a52-8a1e-4d55-9f5e-3c1d2e4f6a7b";
    for method in ["POST", "GET", "DELETE"] {
        let theirs = on_session(&addr, MALLORY, &alices, method).await;
        let unknown = on_session(&addr, MALLORY, nowhere, method).await;
        assert_eq!(
            theirs, unknown,
            "{method}: another tenant's session is told apart"
        );
    }
    // Alice's session is untouched: her DELETE above was mallory's, refused as unknown.
    let (status, body) = on_session(&addr, ALICE, &alices, "POST").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("b__echo"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_per_tenant_are_capped() {
    let s = scratch();
    let (_serve, addr) = serve(&s, &[]).await;
    let (first, _) = open_session(&addr, MALLORY).await;
    let (second, _) = open_session(&addr, MALLORY).await;
    assert!(first.is_some() && second.is_some());
    let (third, reply) = open_session(&addr, MALLORY).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(third.is_none(), "a session past the bound was handed out");
    assert!(reply.body.contains("limits.sessions"), "{}", reply.body);
    // The bystander's sessions are its own.
    let (alices, _) = open_session(&addr, ALICE).await;
    assert!(alices.is_some());
    // Ending one makes room again.
    let (status, _) = on_session(&addr, MALLORY, &first.unwrap(), "DELETE").await;
    assert_eq!(status, 200);
    let (again, reply) = open_session(&addr, MALLORY).await;
    assert!(again.is_some(), "{}", reply.body);
}

/// Opens a 2026-07-28 `subscriptions/listen` stream of `key`'s and reads it until it is
/// refused, ends, or stays acknowledged for a second: the open connection (dropping it ends
/// the stream) and what was read.
async fn open_listen(addr: &str, key: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": true},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nauthorization: Bearer {key}\r\n\
         mcp-protocol-version: 2026-07-28\r\nmcp-method: subscriptions/listen\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // The acknowledgement comes first; a refusal follows it at once as the request's error.
    let mut heard = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        loop {
            let text = String::from_utf8_lossy(&heard).into_owned();
            if text.contains("\"error\"") {
                return;
            }
            let wait = if text.contains("acknowledged") {
                1
            } else {
                120
            };
            match tokio::time::timeout(Duration::from_secs(wait), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => heard.extend_from_slice(&buf[..n]),
                Err(_) if wait == 1 => return,
                Err(_) => panic!("subscriptions/listen: no answer in 120 s"),
            }
        }
    };
    reading.await;
    let heard = String::from_utf8_lossy(&heard).into_owned();
    (stream, heard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_streams_per_tenant_are_capped_as_sessions_are() {
    let s = scratch();
    let (_serve, addr) = serve(&s, &[]).await;
    // Mallory may hold two sessions, so two standing listen streams.
    let (first, heard) = open_listen(&addr, MALLORY).await;
    assert!(
        heard.contains("acknowledged") && !heard.contains("error"),
        "{heard}"
    );
    let (_second, heard) = open_listen(&addr, MALLORY).await;
    assert!(
        heard.contains("acknowledged") && !heard.contains("error"),
        "{heard}"
    );
    let (_third, heard) = open_listen(&addr, MALLORY).await;
    assert!(heard.contains("limits.sessions"), "{heard}");
    // The bystander's streams are its own.
    let (_alices, heard) = open_listen(&addr, ALICE).await;
    assert!(
        heard.contains("acknowledged") && !heard.contains("error"),
        "{heard}"
    );
    alice_still_works(&addr).await;
    // Closing one makes room again, once the host has seen it go (each try is a request
    // of her 12 a minute, 9 of which are left).
    drop(first);
    let mut again = String::new();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_stream, heard) = open_listen(&addr, MALLORY).await;
        again = heard;
        if !again.contains("error") {
            break;
        }
        assert!(again.contains("limits.sessions"), "{again}");
    }
    assert!(
        again.contains("acknowledged") && !again.contains("error"),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_tool_names_become_no_metric_labels() {
    // A tenant-less loopback `serve` shows /metrics on its own listener; the labels are made
    // the same way with tenants.
    let s = scratch();
    let mut child = s
        .cli(&["serve", "--http", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = served_address_blocking(&mut child);
    call(&addr, None, "a__echo", json!({"message": "x"})).await;
    for i in 0..20 {
        call(&addr, None, &format!("a__made_up_{i}"), json!({})).await;
    }
    let (_, _, metrics) = http_exchange(&addr, "GET", "/metrics", &[], "").await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(!metrics.contains("made_up"), "{metrics}");
    assert!(metrics.contains(r#"tool="unknown""#), "{metrics}");
    assert!(metrics.contains(r#"tool="echo""#), "{metrics}");
}

/// Like `served_address`, for a `std::process::Child`.
fn served_address_blocking(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("mcp-registry: serving MCP on http://") {
            std::thread::spawn(move || for _ in lines {});
            return url.trim().trim_end_matches("/mcp").to_owned();
        }
    }
    panic!("serve ended before it named its address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_inside_a_snippet_count_toward_the_tenants_rate() {
    let s = scratch();
    let (_serve, addr) = serve(&s, &[]).await;
    // A session opened first (while the rate has tokens: later, each of its requests would
    // wait at the door, and tokens come back meanwhile) takes one token of the 12 a minute.
    let (session, _) = open_session(&addr, MALLORY).await;
    // The execute itself is one more, so at most 10 of its 20 calls get in.
    let code = "const out = []; for (let i = 0; i < 20; i++) { \
                try { await tools.a.echo({message: 'x'}); out.push('ok'); } \
                catch (e) { out.push(e.kind); } } return out;";
    let r = call(&addr, Some(MALLORY), "execute", json!({"code": code})).await;
    let record = &r.message()["result"]["structuredContent"];
    let outcomes: Vec<&str> = record["value"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let ok = outcomes.iter().filter(|o| **o == "ok").count();
    assert!(
        ok <= 10,
        "{ok} calls got past a rate of 12 a minute: {outcomes:?}"
    );
    assert!(outcomes.contains(&"limit"), "{outcomes:?}");
    // The rate is spent: a resource read is limited too, and alice is not.
    let read = session_request(
        &addr,
        MALLORY,
        &session.expect("a session"),
        "resources/read",
        json!({"uri": "test://static-text"}),
    )
    .await;
    assert!(read.to_string().contains("calls_per_minute"), "{read}");
    alice_still_works(&addr).await;
}

/// A tenant past its rate that retries at once (or floods requests that are refused anyway)
/// is held at the front door, before its requests are read, until its next token is due: it
/// gets a few answers a second instead of all the host can give, and one still without a
/// token after its wait goes in only if it is small. Past 16 held at once, it is refused
/// there with a `Retry-After`. The bystander's calls go on throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_rate_a_tenant_waits_at_the_door() {
    let s = scratch();
    // Two calls a minute: no new token comes in the seconds this test takes.
    set_mallorys_limit(&s, "calls_per_minute", json!(2));
    let (_serve, addr) = serve(&s, &[]).await;
    // Mallory's two tokens, spent: a call, and a body serve cannot read (which the rate
    // does not count as a call, but which cost the host work).
    let r = call(&addr, Some(MALLORY), "a__echo", json!({"message": "x"})).await;
    assert_eq!(text_of(&r), "x", "{}", r.body);
    let auth = [
        ("authorization", format!("Bearer {MALLORY}")),
        ("mcp-protocol-version", "2026-07-28".to_owned()),
    ];
    assert_eq!(
        http(&addr, "POST", &auth, "{\"jsonrpc\": ").await.status,
        400
    );
    // Retrying at once for 3 s: each request is held 1 s (its next token is 30 s away).
    let start = std::time::Instant::now();
    let mut answers = 0;
    while start.elapsed() < Duration::from_secs(3) {
        let r = answered(
            "a retry",
            call(&addr, Some(MALLORY), "a__made_up", json!({})),
        )
        .await;
        assert!(r.body.contains("limits.calls_per_minute"), "{}", r.body);
        answers += 1;
    }
    assert!(
        (1..=4).contains(&answers),
        "{answers} answers in 3 s to a tenant past its rate (without the door: hundreds)"
    );
    // Still without a token after its wait, a large request is refused unread.
    let big = call(
        &addr,
        Some(MALLORY),
        "a__echo",
        json!({"message": "y".repeat(100_000)}),
    )
    .await;
    assert_eq!(big.status, 429, "{}", big.body);
    // 40 at once: 16 wait their turn, the rest are refused at the door.
    let flood = (0..40).map(|_| call(&addr, Some(MALLORY), "a__echo", json!({"message": "f"})));
    let (flood, _) = tokio::join!(futures::future::join_all(flood), alice_still_works(&addr));
    let at_door: Vec<_> = flood.iter().filter(|r| r.status == 429).collect();
    assert!(
        at_door.len() >= 24,
        "{} of 40 refused at the door",
        at_door.len()
    );
    for r in at_door {
        assert!(r.header("retry-after").is_some(), "{}", r.head);
        assert!(r.body.contains("limits.calls_per_minute"), "{}", r.body);
    }
    alice_still_works(&addr).await;
}

/// Mallory's requests whose bodies stop after a byte (of `length` declared), `n` of them,
/// each on a connection of its own; then `attempt` until the door refuses it. An attempt
/// that reaches the door before a stalled request does takes its place for a moment, and
/// that request is refused instead: it is sent again. The refusal, and the stalled
/// connections.
async fn refused_past_stalled<F: std::future::Future<Output = Reply>>(
    addr: &str,
    n: usize,
    length: usize,
    attempt: impl Fn() -> F,
) -> (Reply, Vec<tokio::net::TcpStream>) {
    use tokio::io::AsyncWriteExt;
    let mut stalled = Vec::new();
    for _ in 0..50 {
        while stalled.len() < n {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                 accept: application/json, text/event-stream\r\nauthorization: Bearer {MALLORY}\r\n\
                 mcp-protocol-version: 2026-07-28\r\ncontent-length: {length}\r\n\r\n{{"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            stalled.push(stream);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = attempt().await;
        if r.status == 429 {
            return (r, stalled);
        }
        let unanswered = |s: &tokio::net::TcpStream| matches!(s.try_read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        stalled.retain(unanswered);
    }
    panic!("{n} stalled requests and an attempt, never refused");
}

/// A tenant sends at most four bodies over 64 KiB (or of no stated length) at once: each is
/// held in memory whole while it arrives. Small requests go on meanwhile; a body whose
/// sender goes away gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sends_few_large_bodies_at_once() {
    let s = scratch();
    set_mallorys_limit(&s, "calls_per_minute", Value::Null);
    let (_serve, addr) = serve(&s, &[]).await;
    let large = || {
        call(
            &addr,
            Some(MALLORY),
            "a__echo",
            json!({"message": "y".repeat(100_000)}),
        )
    };
    let (refused, stalled) = refused_past_stalled(&addr, 4, 1 << 20, large).await;
    assert!(refused.body.contains("over 64 KiB"), "{}", refused.body);
    assert!(refused.header("retry-after").is_some(), "{}", refused.head);
    let small = call(&addr, Some(MALLORY), "a__echo", json!({"message": "small"})).await;
    assert_eq!(text_of(&small), "small", "{}", small.body);
    alice_still_works(&addr).await;
    drop(stalled);
    let mut r = large().await;
    for _ in 0..50 {
        if r.status == 200 {
            break;
        }
        // The host may not have seen the senders go yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = large().await;
    }
    assert_eq!(text_of(&r).len(), 100_000, "{}", r.status);
}

/// Each request a tenant has open holds a connection (while its body arrives, it runs, or
/// its stream is open): past its `limits.connections`, the next is refused at the door. A
/// body that stops arriving is cut off when its time is up (10 s, a second more for each
/// 16 KiB received), which gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_open_requests_are_capped_and_a_stalled_body_ends() {
    use tokio::io::AsyncReadExt;
    let s = scratch();
    set_mallorys_limit(&s, "calls_per_minute", Value::Null);
    set_mallorys_limit(&s, "connections", json!(3));
    let (_serve, addr) = serve(&s, &[]).await;
    // Past her bound on open requests, with three whose bodies stop after a byte: refused
    // at the door, with when to retry.
    let (refused, stalled) = refused_past_stalled(&addr, 3, 100, || {
        call(&addr, Some(MALLORY), "a__echo", json!({"message": "x"}))
    })
    .await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(
        refused.body.contains("limits.connections"),
        "{}",
        refused.body
    );
    assert!(refused.header("retry-after").is_some(), "{}", refused.head);
    alice_still_works(&addr).await;
    // Each stalled body is cut off in its time, with a 408 that says why; the connection
    // is closed.
    for mut stream in stalled {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer));
        assert!(
            read.await.is_ok(),
            "a stalled body still holds its connection after 60 s"
        );
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("not received in time"), "{answer}");
    }
    // Their places are given back.
    let r = call(&addr, Some(MALLORY), "a__echo", json!({"message": "back"})).await;
    assert_eq!(text_of(&r), "back", "{}", r.body);
}

/// A flood of connections (anyone can open them, faster than the header deadline closes
/// them) takes at most three quarters of serve's file descriptors: a tenant already
/// connected still gets its call, which starts an upstream (pipes) for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_connections_leaves_the_host_descriptors_to_work_with() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const FDS: u64 = 256;
    let s = scratch();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"));
    command
        .arg("--config")
        .arg(&s.config)
        .args(["serve", "--http", "127.0.0.1:0", "--tenants"])
        .arg(s.path("tenants.json"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: setrlimit(2) only, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: FDS,
                rlim_max: FDS,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let addr = served_address(&mut child).await;
    // Alice is connected before the flood.
    let mut alice = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let flood = (0..FDS + 64).map(|_| {
        let addr = addr.clone();
        async move {
            let connect = tokio::net::TcpStream::connect(addr);
            tokio::time::timeout(Duration::from_secs(2), connect).await
        }
    });
    let flood = futures::future::join_all(flood).await;
    let open = flood.iter().filter(|c| matches!(c, Ok(Ok(_)))).count();
    assert!(open as u64 > FDS, "only {open} connections made");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Her call starts server `b`: pipes, a process.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "b__echo", "arguments": {"message": "fine"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nauthorization: Bearer {ALICE}\r\n\
         mcp-protocol-version: 2026-07-28\r\nmcp-method: tools/call\r\nmcp-name: b__echo\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    alice.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    answered("a call during the flood", alice.read_to_end(&mut answer))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"text\":\"fine\""), "{answer}");
    drop(flood);
    alice_still_works(&addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_mode_is_a_grant_and_its_heavy_inputs_cost_the_host_nothing() {
    let s = scratch();
    let (_serve, addr) = serve(&s, &[]).await;
    // Alice was not granted code mode: she neither sees nor calls it.
    let listed = request(&addr, ALICE, "tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        !names.contains(&"execute") && !names.contains(&"search"),
        "{names:?}"
    );
    let r = call(&addr, Some(ALICE), "execute", json!({"code": "return 1"})).await;
    assert!(
        r.message()["error"].to_string().contains("unknown tool"),
        "{}",
        r.body
    );
    // A 3 MB query is refused, not ranked.
    let query = "word ".repeat(600_000);
    let r = answered(
        "a huge query",
        call(&addr, Some(MALLORY), "search", json!({"query": query})),
    )
    .await;
    assert!(
        r.message()["error"].to_string().contains("at most"),
        "{}",
        &r.body[..r.body.len().min(400)]
    );
    // 250 nested brackets: the snippet's problem, never serve's stack.
    let deep = format!("return {}1{};", "(".repeat(250), ")".repeat(250));
    let r = answered(
        "deep nesting",
        call(&addr, Some(MALLORY), "execute", json!({"code": deep})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    alice_still_works(&addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_tells_a_tenant_what_failed_not_how() {
    let s = scratch();
    let (_serve, addr) = serve(&s, &[]).await;
    let r = call(&addr, Some(MALLORY), "crashy__crash", json!({})).await;
    let text = text_of(&r);
    assert!(text.contains("crashy"), "{}", r.body);
    let command = test_server().display().to_string();
    for leak in [command.as_str(), "exit", "status", "stderr"] {
        assert!(!text.contains(leak), "{leak:?} told to a tenant: {text}");
    }
    alice_still_works(&addr).await;
}

#[test]
fn plugin_names_that_could_stand_for_another_tool_are_refused_at_start() {
    let s = scratch();
    let probe = guest("probe").display().to_string();
    let policy = s.path("plugins.json");
    for (name, expected) in [("a__echo", "__"), ("execute", "code-mode tool")] {
        std::fs::write(
            &policy,
            json!({"plugins": {name: {"component": probe}}}).to_string(),
        )
        .unwrap();
        let out = s
            .cli(&["serve", "--code-mode", "--plugins"])
            .arg(&policy)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        let place = format!("plugin \"{name}\"");
        assert!(
            err.contains("plugins.json") && err.contains(&place) && err.contains(expected),
            "{err}"
        );
    }
    // Two plugins under one name: both places named.
    let copy = s.path("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(&probe, copy.join("probe.wasm")).unwrap();
    let out = s
        .cli(&["serve", "--plugin", &probe, "--plugin"])
        .arg(copy.join("probe.wasm"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&probe) && err.contains("copy/probe.wasm"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_ingress_only_the_public_host_is_answered_and_named() {
    let s = scratch();
    let public = "http://mcp.example.test:8443/mcp";
    let (_serve, addr) = serve(&s, &["--public-url", public]).await;
    let post = |host: &'static str| {
        let addr = addr.clone();
        async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
            let headers = [
                ("host", host),
                ("content-type", "application/json"),
                ("accept", "application/json, text/event-stream"),
            ];
            http_exchange(&addr, "POST", "/mcp", &headers, &body).await
        }
    };
    // A Host we do not answer to (DNS rebinding, or a header injection): refused before
    // anything is said about us.
    let (status, head, _) = post("evil.test\"; x=\"").await;
    assert_eq!(status, 403, "{head}");
    let (status, _, _) = post("evil.test").await;
    assert_eq!(status, 403);
    // The public host: the challenge and the metadata name the public URL.
    let (status, head, _) = post("mcp.example.test:8443").await;
    assert_eq!(status, 401, "{head}");
    assert!(
        head.contains("resource_metadata=\"http://mcp.example.test:8443/.well-known/oauth-protected-resource\""),
        "{head}"
    );
    let (status, _, body) = http_exchange(
        &addr,
        "GET",
        "/.well-known/oauth-protected-resource",
        &[("host", "mcp.example.test:8443")],
        "",
    )
    .await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["resource"], public, "{doc}");
    // A non-loopback address needs the public URL.
    let out = s
        .cli(&["serve", "--http", "0.0.0.0:0", "--tenants"])
        .arg(s.path("tenants.json"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--public-url"));
}

/// A stateless 2026-07-28 request of `key`'s that declares the Tasks extension: the JSON-RPC
/// answer.
async fn with_tasks(addr: &str, key: &str, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities":
                                 {"extensions": {"io.modelcontextprotocol/tasks": {}}}});
    let name = params["name"]
        .as_str()
        .or(params["taskId"].as_str())
        .unwrap_or_default()
        .to_owned();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let headers = [
        ("mcp-protocol-version", "2026-07-28".to_string()),
        ("mcp-method", method.to_string()),
        ("mcp-name", name),
        ("authorization", format!("Bearer {key}")),
    ];
    http(addr, "POST", &headers, &body.to_string())
        .await
        .message()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_task_reads_exactly_as_one_that_does_not_exist() {
    let s = scratch();
    let (_serve, addr) = serve(&s, &[]).await;
    // Alice's slow call becomes a task of hers.
    let created = with_tasks(
        &addr,
        ALICE,
        "tools/call",
        json!({"name": "b__sleep", "arguments": {"ms": 3000}}),
    )
    .await;
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    let id = created["result"]["taskId"]
        .as_str()
        .expect("a task id")
        .to_owned();
    // Mallory, holding the id, gets what an id never given out gets, on every method.
    for (method, extra) in [
        ("tasks/get", json!({})),
        (
            "tasks/update",
            json!({"inputResponses": {"q0": {"action": "decline"}}}),
        ),
        ("tasks/cancel", json!({})),
    ] {
        let ask = |task: &str| {
            let mut params = extra.clone();
            params["taskId"] = json!(task);
            params
        };
        let stolen = with_tasks(&addr, MALLORY, method, ask(&id)).await;
        let unknown = with_tasks(&addr, MALLORY, method, ask("no-such-task")).await;
        let same = |v: &Value| {
            v["error"]
                .to_string()
                .replace(&id, "ID")
                .replace("no-such-task", "ID")
        };
        assert!(stolen.get("error").is_some(), "{method}: {stolen}");
        assert_eq!(same(&stolen), same(&unknown), "{method}");
    }
    // Her task ran on untouched (mallory's cancel did not reach it) and ends with its result.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let task = loop {
        let task = with_tasks(&addr, ALICE, "tasks/get", json!({"taskId": id})).await;
        let status = task["result"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if status != "working" {
            break task;
        }
        assert!(std::time::Instant::now() < deadline, "{task}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(task["result"]["status"], "completed", "{task}");
    alice_still_works(&addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_shared_server_says_during_one_tenants_call_reaches_no_other_tenant() {
    let s = scratch();
    let (_serve, addr) = serve(&s, &[]).await;
    // Alice's session: her first request binds it to her (its notifications start to flow),
    // then she listens on its stream for whatever the server sends her.
    let (alices, _) = open_session(&addr, ALICE).await;
    let alices = alices.expect("a session");
    session_request(&addr, ALICE, &alices, "tools/list", json!({})).await;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let listening = tokio::spawn(listen(addr.clone(), alices, stopped));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Mallory's call makes the shared server log three messages as it works.
    let r = call(&addr, Some(MALLORY), "g__test_tool_with_logging", json!({})).await;
    assert_eq!(text_of(&r), "logging done", "{}", r.body);
    // What was sent during the call has had time to arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(());
    let heard = listening.await.unwrap();
    assert!(heard.contains("200 OK"), "no stream: {heard}");
    assert!(
        !heard.contains("tool starting"),
        "alice heard mallory's call: {heard}"
    );
    alice_still_works(&addr).await;
}

/// What arrives on the standalone stream (GET) of session `id` until `stop`.
async fn listen(addr: String, id: String, stop: tokio::sync::oneshot::Receiver<()>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /mcp HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\
         authorization: Bearer {ALICE}\r\nmcp-session-id: {id}\r\n\
         mcp-protocol-version: 2025-11-25\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut heard = Vec::new();
    let reading = async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            heard.extend_from_slice(&buf[..n]);
        }
    };
    tokio::select! {
        _ = reading => {}
        _ = stop => {}
    }
    String::from_utf8_lossy(&heard).into_owned()
}

/// A small deterministic generator (xorshift), so a failing case can be replayed from its seed.
struct Fuzz(u64);

impl Fuzz {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.below(of.len())]
    }

    /// A JSON value of at most `depth` levels: the shapes parsers and handlers trip on.
    fn value(&mut self, depth: usize) -> Value {
        match self.below(if depth == 0 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => json!(self.next() as i64),
            2 => json!(f64::from_bits(self.next()).to_string()),
            3 => json!(self.pick(&[
                "",
                "a__b",
                "__",
                "test://template/1/data",
                "\u{0}",
                "é\u{202e}"
            ])),
            4 => json!("x".repeat(self.below(70_000))),
            5 => json!(true),
            6 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            7 => {
                let keys = [
                    "name",
                    "arguments",
                    "uri",
                    "code",
                    "query",
                    "_meta",
                    "cursor",
                    "ref",
                ];
                let mut object = serde_json::Map::new();
                for _ in 0..self.below(5) {
                    let key = self.pick(&keys).to_owned();
                    object.insert(key, self.value(depth - 1));
                }
                Value::Object(object)
            }
            // Nesting far deeper than any real request: a marker that `deepen` expands in
            // the text (a Value that deep would overflow this test's own stack).
            _ => json!(format!("{DEEP}{}", self.below(3000))),
        }
    }
}

/// Marks where [`deepen`] puts deep nesting.
const DEEP: &str = "@@deep:";

/// `text` with each `"@@deep:N"` replaced by N nested arrays.
fn deepen(text: String) -> String {
    let marker = format!("\"{DEEP}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(&marker) {
        out.push_str(&rest[..at]);
        let after = &rest[at + marker.len()..];
        let end = after.find('"').unwrap_or(after.len());
        let n: usize = after[..end].parse().unwrap_or(0);
        out.push_str(&"[".repeat(n));
        out.push('1');
        out.push_str(&"]".repeat(n));
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// The front door under a stream of malformed, oversized, deeply nested and plain wrong
/// requests from a tenant with a valid key: each gets an answer (any answer), `serve` stays
/// up, and the bystander's calls keep working. Bounded: 400 requests, seed fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_door_survives_whatever_a_tenant_sends() {
    let s = scratch();
    // What is tried here is the front door's reading of requests, not mallory's rate (past
    // it, each round would wait at the door): mallory gets no rate for this test.
    set_mallorys_limit(&s, "calls_per_minute", Value::Null);
    let (mut serve, addr) = serve(&s, &[]).await;
    let methods = [
        "tools/call",
        "tools/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "prompts/get",
        "completion/complete",
        "initialize",
        "logging/setLevel",
        "notifications/cancelled",
        "server/discover",
        "ping",
        "nope",
    ];
    let versions = ["2026-07-28", "2025-11-25", "1999-01-01", ""];
    let mut fuzz = Fuzz(0x5eed_cafe_f00d_d00d);
    for round in 0..400 {
        let method = fuzz.pick(&methods);
        let body = match fuzz.below(10) {
            0 => "{\"jsonrpc\": \"2.0\", \"id\": ".to_owned(),
            1 => "[".repeat(fuzz.below(100_000)),
            2 => format!(
                "[{}]",
                (0..fuzz.below(50))
                    .map(|_| "{}")
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => deepen(
                json!({"jsonrpc": "2.0", "id": fuzz.value(1), "method": method,
                       "params": fuzz.value(3)})
                .to_string(),
            ),
        };
        let mut headers = vec![
            ("authorization", format!("Bearer {MALLORY}")),
            ("mcp-protocol-version", fuzz.pick(&versions).to_owned()),
            ("mcp-method", method.to_owned()),
        ];
        if fuzz.below(3) == 0 {
            headers.push(("mcp-session-id", format!("{:x}", fuzz.next())));
        }
        if fuzz.below(3) == 0 {
            headers.push(("mcp-name", "x".repeat(fuzz.below(2000))));
        }
        let verb = fuzz.pick(&["POST", "POST", "POST", "GET", "DELETE"]);
        let answer = answered(
            &format!("fuzz round {round}"),
            try_http_exchange_at(&addr, verb, &headers, &body),
        )
        .await;
        assert!(answer.is_ok(), "round {round}: {answer:?}");
        if round % 50 == 0 {
            alice_still_works(&addr).await;
        }
    }
    alice_still_works(&addr).await;
    assert!(serve.try_wait().unwrap().is_none(), "serve died");
    // A body it cannot read is the client's mistake (400, with a JSON-RPC error saying
    // which), never a wrong media type (415).
    let headers = [
        ("authorization", format!("Bearer {MALLORY}")),
        ("mcp-protocol-version", "2026-07-28".to_owned()),
    ];
    for (body, code) in [
        ("[".repeat(100_000) + &"]".repeat(100_000), -32700),
        ("{\"jsonrpc\": \"2.0\", \"id\": ".to_owned(), -32700),
        ("[1, 2]".to_owned(), -32600),
    ] {
        let reply = http(&addr, "POST", &headers, &body).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.message()["error"]["code"], code, "{}", reply.body);
    }
}

/// [`try_http_exchange`] of `/mcp` with `headers` (owned values): status, or why none.
async fn try_http_exchange_at(
    addr: &str,
    method: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Result<u16, String> {
    let mut all = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
    try_http_exchange(addr, method, "/mcp", &all, body)
        .await
        .map(|(status, _, _)| status)
}
