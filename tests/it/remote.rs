//! Remote servers (`"type": "http"` and `"type": "sse"`) against servers this project did not
//! write: npm `server-everything` in its `streamableHttp` and `sse` modes, and a FastMCP 4
//! server that refuses requests without a bearer token (`tests/peers/fastmcp_http_server.py`,
//! both transports). What a stdio server gets is checked for them too: temporary and
//! persistent connections, timeouts that cancel, list_changed, a server restarted under a
//! session, `${VAR}` in headers through the whole CLI, and clear errors that keep secrets out.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use mcp_registry_host::client::ClientError;
use mcp_registry_host::config::{ProtocolMode, Registry, RemoteTransport, ServerConfig};
use mcp_registry_host::{Aggregator, AggregatorError};
use serde_json::json;

/// The token the FastMCP server accepts.
const TOKEN: &str = "tok-5e1f-remote-test";

/// A server listening on a loopback port; killed when dropped.
struct Listening {
    child: Child,
    port: u16,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Listening {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The FastMCP server over `transport` (`http` or `sse`) on `port` (0: any).
fn fastmcp(transport: &str, port: u16) -> Option<Listening> {
    let python = peer(
        peers_dir().join("fastmcp-venv/bin/python"),
        "PyPI fastmcp 4.1.6",
    )?;
    let script = workspace_root().join("tests/peers/fastmcp_http_server.py");
    let mut child = Command::new(python)
        .arg(script)
        .args([transport, &port.to_string(), TOKEN])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the FastMCP server did not start: {line:?}"));
    Some(Listening { child, port })
}

/// npm server-everything in `mode` (`streamableHttp` or `sse`), once it accepts connections.
fn everything(mode: &str) -> Option<Listening> {
    let bin = peer(
        peers_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        "npm @modelcontextprotocol/server-everything",
    )?;
    let port = free_port();
    let child = Command::new("node")
        .arg(bin)
        .arg(mode)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Listening { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "server-everything {mode} never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(server)
}

/// A remote server config with the bearer token.
fn with_token(transport: RemoteTransport, url: String) -> ServerConfig {
    let mut cfg = ServerConfig::remote(transport, url);
    if let Some(remote) = cfg.remote.as_mut() {
        remote
            .headers
            .insert("Authorization".into(), format!("Bearer {TOKEN}"));
    }
    cfg
}

fn transports() -> [(RemoteTransport, &'static str, &'static str); 2] {
    [
        (RemoteTransport::StreamableHttp, "http", "/mcp"),
        (RemoteTransport::Sse, "sse", "/sse"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_streamable_http_and_sse() {
    for (transport, mode, path) in [
        (RemoteTransport::StreamableHttp, "streamableHttp", "/mcp"),
        (RemoteTransport::Sse, "sse", "/sse"),
    ] {
        let Some(server) = everything(mode) else {
            return;
        };
        let mut cfg = ServerConfig::remote(transport, server.url(path));
        cfg.call_timeout = Duration::from_secs(3);
        let agg = Aggregator::new(Registry::from_servers([("ev".to_string(), cfg)]));
        // Temporary: one connection for the call.
        let r = agg
            .call_tool("ev__get-sum", args(json!({"a": 2, "b": 3})))
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(text(&r).contains('5'), "{mode}: {r:?}");
        // Persistent.
        let session = agg.session(&["ev"]).await.unwrap();
        let tools = session.list_tools().await.unwrap();
        assert!(tools.iter().any(|t| t.name == "ev__echo"), "{mode}");
        for n in 0..3 {
            let r = session
                .call_tool("ev__echo", args(json!({"message": format!("remote {n}")})))
                .await
                .unwrap();
            assert!(text(&r).contains(&format!("remote {n}")), "{mode}: {r:?}");
        }
        // A long operation times out with our configured timeout; the session survives.
        let e = session
            .call_tool(
                "ev__trigger-long-running-operation",
                args(json!({"duration": 30, "steps": 3})),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, AggregatorError::Client(ClientError::Timeout { .. })),
            "{mode}: {e:?}"
        );
        let r = session
            .call_tool("ev__echo", args(json!({"message": "still here"})))
            .await
            .unwrap();
        assert!(text(&r).contains("still here"), "{mode}");
        assert!(
            session.pids().await.is_empty(),
            "a remote server has no pid"
        );
        session.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastmcp_behind_a_bearer_token_persistent_temporary_cancel_list_changed() {
    for (transport, kind, path) in transports() {
        let Some(server) = fastmcp(kind, 0) else {
            return;
        };
        let mut cfg = with_token(transport, server.url(path));
        cfg.call_timeout = Duration::from_secs(3);
        let agg = Aggregator::new(Registry::from_servers([("fm".to_string(), cfg)]));
        // Persistent: one MCP session counts on.
        let session = agg.session(&["fm"]).await.unwrap();
        for n in 1..=3 {
            let r = session.call_tool("fm__counter", None).await.unwrap();
            assert_eq!(text(&r), n.to_string(), "{kind}");
        }
        // Temporary: a new session each call.
        for _ in 0..2 {
            let r = agg.call_tool("fm__counter", None).await.unwrap();
            assert_eq!(text(&r), "1", "{kind}");
        }
        // A call that outlives its timeout fails alone, and the server is told to stop.
        let e = session
            .call_tool("fm__sleep", args(json!({"seconds": 30})))
            .await
            .unwrap_err();
        assert!(
            matches!(e, AggregatorError::Client(ClientError::Timeout { .. })),
            "{kind}: {e:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = session.call_tool("fm__stats", None).await.unwrap();
            if text(&r).contains("\"cancelled\":1") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{kind}: the server never saw the cancellation: {}",
                text(&r)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // list_changed: the new tool shows in the next listing.
        let before = session.list_tools().await.unwrap();
        assert!(!before.iter().any(|t| t.name == "fm__extra"), "{kind}");
        session.call_tool("fm__grow", None).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !session
            .list_tools()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "fm__extra")
        {
            assert!(
                Instant::now() < deadline,
                "{kind}: list_changed never arrived"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        session.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_eras_over_streamable_http() {
    let Some(server) = fastmcp("http", 0) else {
        return;
    };
    for (mode, expected) in [
        (ProtocolMode::Auto, "2025-11-25"),
        (ProtocolMode::Legacy, "2025-11-25"),
        (ProtocolMode::Modern, "2026-07-28"),
    ] {
        let mut cfg = with_token(RemoteTransport::StreamableHttp, server.url("/mcp"));
        cfg.protocol = mode;
        let agg = Aggregator::new(Registry::from_servers([("fm".to_string(), cfg)]));
        let session = agg.session(&["fm"]).await.unwrap();
        let conn = session
            .connection("fm")
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(
            conn.protocol_version().as_deref(),
            Some(expected),
            "{mode:?}"
        );
        let r = session
            .call_tool("fm__echo", args(json!({"message": "era"})))
            .await
            .unwrap();
        assert_eq!(text(&r), "era", "{mode:?}");
        session.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_goes_on_after_the_remote_server_restarts() {
    for (transport, kind, path) in transports() {
        let Some(server) = fastmcp(kind, 0) else {
            return;
        };
        let port = server.port;
        let cfg = with_token(transport, server.url(path));
        let agg = Aggregator::new(Registry::from_servers([("fm".to_string(), cfg)]));
        let session = agg.session(&["fm"]).await.unwrap();
        for n in 1..=2 {
            let r = session.call_tool("fm__counter", None).await.unwrap();
            assert_eq!(text(&r), n.to_string(), "{kind}");
        }
        drop(server);
        let _restarted = fastmcp(kind, port).unwrap();
        // The old session is gone with the old process: the next call opens a new one.
        let r = session
            .call_tool("fm__counter", None)
            .await
            .unwrap_or_else(|e| panic!("{kind}: no reconnect after the restart: {e}"));
        assert_eq!(text(&r), "1", "{kind}");
        let r = session.call_tool("fm__counter", None).await.unwrap();
        assert_eq!(text(&r), "2", "{kind}");
        session.close().await;
    }
}

#[test]
fn the_cli_expands_the_token_and_keeps_it_out_of_errors() {
    for (_, kind, path) in transports() {
        let Some(server) = fastmcp(kind, 0) else {
            return;
        };
        // Added the way a user would, the variable written as it is.
        let s = Scratch::new(json!({}));
        let url = server.url(path);
        let header = "Authorization: Bearer ${FM_TOKEN}";
        let added = s
            .cli(&[
                "add",
                "fm",
                "--url",
                &url,
                "--transport",
                kind,
                "-H",
                header,
            ])
            .output()
            .unwrap();
        assert!(added.status.success(), "{added:?}");
        let entry: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&s.config).unwrap()).unwrap();
        assert_eq!(
            entry["mcpServers"]["fm"],
            json!({"type": kind, "url": url, "headers": {"Authorization": "Bearer ${FM_TOKEN}"}})
        );
        let call = |token: Option<&str>| {
            let mut cmd = s.cli(&["call", "fm__echo", r#"{"message": "over the wire"}"#]);
            cmd.env_remove("FM_TOKEN");
            if let Some(token) = token {
                cmd.env("FM_TOKEN", token);
            }
            let out = cmd.output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.success(), stdout, stderr)
        };
        let (ok, stdout, stderr) = call(Some(TOKEN));
        assert!(
            ok && stdout.contains("over the wire"),
            "{kind}: {stdout} {stderr}"
        );
        // Unset: the error names the server, the field and the variable.
        let (ok, _, stderr) = call(None);
        assert!(!ok, "{kind}");
        for part in ["\"fm\"", "headers.Authorization", "FM_TOKEN"] {
            assert!(
                stderr.contains(part),
                "{kind}: {part} missing from: {stderr}"
            );
        }
        // A wrong token: refused, said plainly, and the token is not repeated.
        let wrong = "wrong-token-8d2a";
        let (ok, _, stderr) = call(Some(wrong));
        assert!(!ok, "{kind}");
        assert!(stderr.contains("fm"), "{kind}: {stderr}");
        assert!(stderr.contains("401"), "{kind}: {stderr}");
        assert!(
            !stderr.contains(wrong),
            "{kind}: the token leaked: {stderr}"
        );
        let listed = s.cli(&["list"]).output().unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(
            listed.contains(&format!("fm: {kind} {}", server.url(path))),
            "{listed}"
        );
    }
}

#[test]
fn a_remote_server_that_is_not_there_fails_fast_and_clearly() {
    let port = free_port();
    for (_, kind, path) in transports() {
        let s = Scratch::new(json!({"gone": {
            "type": kind,
            "url": format!("http://127.0.0.1:{port}{path}?key=secret-in-query"),
        }}));
        let started = Instant::now();
        let out = s.cli(&["call", "gone__x"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{kind}");
        assert!(started.elapsed() < Duration::from_secs(20), "{kind}");
        assert!(stderr.contains("\"gone\""), "{kind}: {stderr}");
        assert!(!stderr.contains("secret-in-query"), "{kind}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_relays_to_a_remote_server_over_one_upstream_session() {
    for (_, kind, path) in transports() {
        let Some(server) = fastmcp(kind, 0) else {
            return;
        };
        let s = Scratch::new(json!({"fm": {
            "type": kind,
            "url": server.url(path),
            "headers": {"Authorization": format!("Bearer {TOKEN}")}
        }}));
        let mut cmd = tokio::process::Command::from(s.cli(&[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--insecure-no-auth",
        ]));
        let mut child = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let addr = served_address(&mut child).await;
        // Stateless client calls, one upstream MCP session: the counter goes on.
        for n in 1..=3 {
            let (status, text) = mcp_call(&addr, None, "fm__counter", json!({}), json!({})).await;
            assert_eq!((status, text), (200, n.to_string()), "{kind}");
        }
        let (status, text) = mcp_call(
            &addr,
            None,
            "fm__echo",
            json!({"message": "via serve"}),
            json!({}),
        )
        .await;
        assert_eq!((status, text.as_str()), (200, "via serve"), "{kind}");
        let _ = child.kill().await;
    }
}

#[test]
fn a_wasm_guest_opens_a_session_on_a_remote_server() {
    let probe = guest("probe");
    for (_, kind, path) in transports() {
        let Some(server) = fastmcp(kind, 0) else {
            return;
        };
        let s = Scratch::new(json!({"fm": {
            "type": kind,
            "url": server.url(path),
            "headers": {"Authorization": format!("Bearer {TOKEN}")}
        }}));
        let run = |op: &str| {
            let input = json!({"op": op, "server": "fm"}).to_string();
            let probe = probe.to_str().unwrap();
            let out = s
                .cli(&["run", probe, "--allow-server", "fm", "--input", &input])
                .output()
                .unwrap();
            assert!(out.status.success(), "{kind} {op}: {out:?}");
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        };
        // A guest's session is one MCP session; its calls without one are one each.
        assert_eq!(
            run("session_counter")["counters"],
            json!(["1", "2", "3"]),
            "{kind}"
        );
        assert_eq!(
            run("temp_counter")["counters"],
            json!(["1", "1", "1"]),
            "{kind}"
        );
    }
}
