//! OTLP export (the `otlp` cargo feature): `serve --http` with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! sends its spans to a collector over OTLP/HTTP. Here the collector is a bare HTTP listener
//! that keeps what it is sent; the protobuf payload is checked for the caller's trace id, the
//! caller's span as a parent, and the span id our upstream request named as its parent (so a
//! backend links all three hops).
//!
//! The feature is on by default; built with `--no-default-features` this test skips with a
//! reason.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use serde_json::json;

/// Accepts OTLP/HTTP posts, answering 200; every body received.
async fn collector() -> (String, Arc<Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let received: Arc<Mutex<Vec<u8>>> = Arc::default();
    let keep = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    keep.lock()
                        .unwrap()
                        .extend_from_slice(&buf[end + 4..end + 4 + length]);
                    buf.drain(..end + 4 + length);
                    let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if stream.write_all(ok.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), received)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_go_to_the_collector_linked_to_the_caller_and_the_upstream() {
    if !cfg!(feature = "otlp") {
        assert!(
            !peers_required(),
            "CI=true but the tests were built without the `otlp` feature (it is a default feature)"
        );
        eprintln!("skipping: built without the `otlp` feature (it is a default feature)");
        return;
    }
    let (endpoint, received) = collector().await;
    let s = Scratch::new(json!({"alpha": {"command": test_server().display().to_string()}}));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .env("MCP_REGISTRY_CACHE_DIR", s.cache())
        .arg("--config")
        .arg(&s.config)
        .args(["serve", "--http", "127.0.0.1:0"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = served_address(&mut child).await;
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let (status, upstream) = mcp_call(
        &addr,
        None,
        "alpha__traceparent",
        json!({}),
        json!({ "traceparent": caller }),
    )
    .await;
    assert_eq!(status, 200);
    let upstream_parent = upstream.split('-').nth(2).unwrap().to_owned();
    // SIGTERM: the drain ends, and the spans still batched are flushed on the way out.
    // SAFETY: kill(2) on our own child.
    assert_eq!(
        unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) },
        0
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("serve did not exit")
        .unwrap();
    assert!(status.success(), "{status}");
    let body = received.lock().unwrap().clone();
    let has = |bytes: Vec<u8>| body.windows(bytes.len()).any(|w| w == bytes.as_slice());
    assert!(!body.is_empty(), "nothing was exported");
    assert!(has(b"mcp-registry".to_vec()), "no service name");
    assert!(
        has(hex("4bf92f3577b34da6a3ce929d0e0e4736")),
        "the caller's trace id"
    );
    assert!(
        has(hex("00f067aa0ba902b7")),
        "the caller's span as a parent"
    );
    assert!(
        has(hex(&upstream_parent)),
        "the upstream request's parent {upstream_parent} is not an exported span"
    );
}
