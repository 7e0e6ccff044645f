//! The same client behaviour against MCP servers this project did not write:
//! npm `@modelcontextprotocol/server-everything` (handshake era only) and a server written
//! with the Python `mcp` 2.x SDK (both eras). Peers come from `scripts/install-peers.sh`;
//! with `CI=true` they are mandatory, elsewhere a missing peer skips with a reason.

use std::time::Duration;

use crate::support::*;
use mcp_registry_host::client::{ClientError, ConnectionState, ServerConnection};
use mcp_registry_host::config::{ProtocolMode, Registry, ServerConfig};
use mcp_registry_host::{Aggregator, AggregatorError};
use serde_json::json;

fn everything() -> Option<ServerConfig> {
    let bin = peer(
        peers_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        "npm @modelcontextprotocol/server-everything",
    )?;
    let mut cfg = ServerConfig::new("node", [bin.display().to_string()]);
    cfg.roots = vec!["file:///tmp".into()];
    Some(cfg)
}

fn python_server(mode: ProtocolMode) -> Option<ServerConfig> {
    let python = peer(peers_dir().join("venv/bin/python"), "PyPI mcp (Python SDK)")?;
    let script = workspace_root().join("tests/peers/py_server.py");
    let mut cfg = ServerConfig::new(python.display().to_string(), [script.display().to_string()]);
    cfg.protocol = mode;
    Some(cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_handshake_era() {
    let Some(cfg) = everything() else { return };
    // Auto mode probes with server/discover, gets "method not found", falls back.
    let conn = ServerConnection::connect("everything", &cfg).await.unwrap();
    match conn.state() {
        ConnectionState::Ready {
            protocol_version, ..
        } => assert_eq!(protocol_version, "2025-11-25"),
        other => panic!("not ready: {other:?}"),
    }
    let tools = conn.list_tools().await.unwrap();
    assert!(
        tools.iter().any(|t| t.name == "echo"),
        "{:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    let r = conn
        .call_tool("echo", args(json!({"message": "interop"})))
        .await
        .unwrap();
    assert!(text(&r).contains("interop"), "{r:?}");
    let r = conn
        .call_tool("get-sum", args(json!({"a": 2, "b": 3})))
        .await
        .unwrap();
    assert!(text(&r).contains('5'), "{r:?}");
    conn.ping().await.unwrap();
    let pid = conn.pid().unwrap();
    conn.close().await;
    assert!(gone(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_through_the_aggregator() {
    let Some(mut cfg) = everything() else { return };
    cfg.call_timeout = Duration::from_secs(3);
    let agg = Aggregator::new(Registry::from_servers([("ev".to_string(), cfg)]));
    let session = agg.session(&["ev"]).await.unwrap();
    let tools = session.list_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "ev__echo"));
    // Unknown tools come back from this server as isError results: passed through as-is.
    let r = session.call_tool("ev__no-such-tool", None).await;
    match r {
        Ok(r) => assert_eq!(r.is_error, Some(true)),
        Err(AggregatorError::Client(ClientError::UnknownTool { .. })) => {}
        Err(e) => panic!("unexpected {e:?}"),
    }
    // A long operation times out with our configured timeout and the session survives.
    let e = session
        .call_tool(
            "ev__trigger-long-running-operation",
            args(json!({"duration": 30, "steps": 3})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, AggregatorError::Client(ClientError::Timeout { .. })),
        "{e:?}"
    );
    let r = session
        .call_tool("ev__echo", args(json!({"message": "still here"})))
        .await
        .unwrap();
    assert!(text(&r).contains("still here"));
    let pid = *session.pids().await.get("ev").unwrap();
    session.close().await;
    assert!(gone(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_server_in_both_eras() {
    for (mode, expected) in [
        (ProtocolMode::Legacy, "2025-11-25"),
        (ProtocolMode::Auto, "2026-07-28"),
    ] {
        let Some(cfg) = python_server(mode) else {
            return;
        };
        let agg = Aggregator::new(Registry::from_servers([("py".to_string(), cfg)]));
        let session = agg.session(&["py"]).await.unwrap();
        let conn = session.connection("py").await.unwrap();
        assert_eq!(
            conn.protocol_version().as_deref(),
            Some(expected),
            "mode {mode:?}"
        );
        let tools = session.list_tools().await.unwrap();
        assert!(tools.iter().any(|t| t.name == "py__echo"), "{mode:?}");
        for n in 1..=3 {
            assert_eq!(
                text(&session.call_tool("py__counter", None).await.unwrap()),
                n.to_string()
            );
        }
        let r = session
            .call_tool("py__echo", args(json!({"message": "snake"})))
            .await
            .unwrap();
        assert_eq!(text(&r), "snake");
        let pid = *session.pids().await.get("py").unwrap();
        session.close().await;
        assert!(gone(pid), "python server outlived the session ({mode:?})");
        // Temporary mode: a fresh process each time.
        assert_eq!(
            text(&agg.call_tool("py__counter", None).await.unwrap()),
            "1"
        );
    }
}
