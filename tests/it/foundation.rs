//! Client, connection manager and aggregator against real test-server processes.

use std::time::{Duration, Instant};

use crate::support::*;
use mcp_registry_host::aggregator::{parse_arguments, AggregatorError};
use mcp_registry_host::client::{ClientError, ConnectionState, ServerConnection};
use mcp_registry_host::config::{ProtocolMode, Registry, ToolFilter};
use mcp_registry_host::Aggregator;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_calls_each_get_a_fresh_process_that_exits() {
    let agg = Aggregator::new(registry(&["a"]));
    let mut pids = Vec::new();
    for _ in 0..3 {
        let r = agg.call_tool("a__counter", None).await.unwrap();
        assert_eq!(text(&r), "1", "a temporary call must hit a fresh process");
        let pid: u32 = text(&agg.call_tool("a__pid", None).await.unwrap())
            .parse()
            .unwrap();
        pids.push(pid);
    }
    pids.dedup();
    assert_eq!(pids.len(), 3, "each temporary call spawns its own process");
    for pid in pids {
        assert!(
            gone(pid),
            "server process {pid} outlived its temporary call"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_calls_share_one_process_and_close_ends_it() {
    let agg = Aggregator::new(registry(&["a", "b"]));
    let session = agg.session(&["a", "b"]).await.unwrap();
    for expected in 1..=3 {
        let r = session.call_tool("a__counter", None).await.unwrap();
        assert_eq!(text(&r), expected.to_string());
    }
    // `b` has its own process and its own count.
    assert_eq!(
        text(&session.call_tool("b__counter", None).await.unwrap()),
        "1"
    );
    let pids = session.pids().await;
    assert_eq!(pids.len(), 2);
    session.close().await;
    for pid in pids.values() {
        assert!(!alive(*pid), "server {pid} still alive right after close()");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_session_without_close_still_ends_its_processes() {
    let agg = Aggregator::new(registry(&["a"]));
    let session = agg.session(&["a"]).await.unwrap();
    let pid = *session.pids().await.get("a").unwrap();
    drop(session);
    assert!(gone(pid), "server {pid} outlived its dropped session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_session_closes_after_the_body() {
    let agg = Aggregator::new(registry(&["a"]));
    let pid = agg
        .with_session(&["a"], async |s| {
            s.call_tool("a__counter", None).await.unwrap();
            let r = s.call_tool("a__counter", None).await.unwrap();
            assert_eq!(text(&r), "2");
            text(&s.call_tool("a__pid", None).await.unwrap())
                .parse::<u32>()
                .unwrap()
        })
        .await
        .unwrap();
    assert!(!alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_outside_the_session_fall_back_to_temporary_calls() {
    let agg = Aggregator::new(registry(&["a", "b"]));
    let session = agg.session(&["a"]).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            text(&session.call_tool("b__counter", None).await.unwrap()),
            "1"
        );
    }
    assert_eq!(session.pids().await.len(), 1);
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_calls_share_one_spawn() {
    let agg = Aggregator::new(registry(&["a"]));
    let session = agg.session(&["a"]).await.unwrap();
    let calls = (0..100).map(|_| session.call_tool("a__pid", None));
    let results = futures::future::join_all(calls).await;
    let mut pids: Vec<String> = results.into_iter().map(|r| text(&r.unwrap())).collect();
    pids.dedup();
    assert_eq!(
        pids.len(),
        1,
        "all 100 calls must be answered by one process"
    );
    assert_eq!(
        text(&session.call_tool("a__counter", None).await.unwrap()),
        "1"
    );
    assert_eq!(session.restarts("a"), 0);
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_single_flight_connect_spawns_once() {
    // The manager connects on first use; 20 first uses at once must spawn one process.
    let mgr = mcp_registry_host::manager::ConnectionManager::new([(
        "a".to_string(),
        test_server_config(),
    )]);
    let calls = (0..20).map(|_| mgr.call_tool("a", "pid", None));
    let mut pids: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| text(&r.unwrap()))
        .collect();
    pids.dedup();
    assert_eq!(pids.len(), 1);
    mgr.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_server_fails_the_call_and_is_restarted() {
    let agg = Aggregator::new(registry(&["a"]));
    let session = agg.session(&["a"]).await.unwrap();
    let first_pid = *session.pids().await.get("a").unwrap();
    session.call_tool("a__counter", None).await.unwrap();
    let err = session.call_tool("a__crash", None).await.unwrap_err();
    assert!(
        matches!(err, AggregatorError::Client(ClientError::Transport { .. })),
        "crash must be a transport error, got {err:?}"
    );
    assert!(
        err.to_string().contains("\"a\""),
        "error names the server: {err}"
    );
    // The next call restarts the server: a new process, a fresh counter.
    let r = session.call_tool("a__counter", None).await.unwrap();
    assert_eq!(text(&r), "1");
    let second_pid = *session.pids().await.get("a").unwrap();
    assert_ne!(first_pid, second_pid);
    assert_eq!(session.restarts("a"), 1);
    assert!(gone(first_pid));
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_tool_times_out_while_other_servers_answer() {
    let mut slow = test_server_config();
    slow.call_timeout = Duration::from_secs(2);
    let reg = Registry::from_servers([
        ("slow".to_string(), slow),
        ("fast".to_string(), test_server_config()),
    ]);
    let agg = Aggregator::new(reg);
    let session = agg.session(&["slow", "fast"]).await.unwrap();
    let started = Instant::now();
    let hung = async {
        let result = session
            .call_tool("slow__sleep", args(json!({"ms": 30_000})))
            .await;
        (result, started.elapsed())
    };
    let others = async {
        let mut answered = 0;
        for _ in 0..5 {
            session
                .call_tool("fast__echo", args(json!({"message": "hi"})))
                .await
                .unwrap();
            answered += 1;
        }
        (answered, started.elapsed())
    };
    let ((hung, hung_done), (answered, others_done)) = tokio::join!(hung, others);
    // A sleep of 30 s that ends in a timeout error: the call's timeout was applied.
    let err = hung.unwrap_err();
    assert!(
        matches!(err, AggregatorError::Client(ClientError::Timeout { .. })),
        "expected a timeout, got {err:?}"
    );
    assert_eq!(answered, 5);
    assert!(
        others_done < hung_done,
        "other server waited for the hung one ({others_done:?}, the hung call {hung_done:?})"
    );
    // The slow server itself is still usable for other calls after the cancellation.
    assert_eq!(
        text(&session.call_tool("slow__counter", None).await.unwrap()),
        "1"
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_errors_pass_through_with_the_servers_content() {
    let agg = Aggregator::new(registry(&["a"]));
    let r = agg
        .call_tool("a__fail", args(json!({"message": "boom 42"})))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(text(&r), "boom 42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tools_bad_arguments_and_unknown_servers_are_distinct() {
    let agg = Aggregator::new(registry(&["a"]));
    let session = agg.session(&["a"]).await.unwrap();
    let e = session.call_tool("a__nope", None).await.unwrap_err();
    assert!(
        matches!(e, AggregatorError::Client(ClientError::UnknownTool { .. })),
        "{e:?}"
    );
    // rmcp servers report argument validation as a tool error (isError), which must pass
    // through with the server's own message; a JSON-RPC -32602 would be InvalidArguments.
    match session
        .call_tool("a__echo", args(json!({"message": 5})))
        .await
    {
        Ok(r) => {
            assert_eq!(r.is_error, Some(true));
            assert!(text(&r).contains("invalid type"), "{r:?}");
        }
        Err(e) => assert!(
            matches!(
                e,
                AggregatorError::Client(ClientError::InvalidArguments { .. })
            ),
            "{e:?}"
        ),
    }
    let e = session.call_tool("zzz__echo", None).await.unwrap_err();
    assert!(matches!(e, AggregatorError::UnknownServer(_)), "{e:?}");
    let e = session.call_tool("echo", None).await.unwrap_err();
    assert!(matches!(e, AggregatorError::BadToolName(_)), "{e:?}");
    assert!(matches!(
        parse_arguments("[1]"),
        Err(AggregatorError::InvalidArguments(_))
    ));
    assert!(matches!(
        parse_arguments("{"),
        Err(AggregatorError::InvalidArguments(_))
    ));
    // The session is unharmed by all of that.
    assert_eq!(
        text(&session.call_tool("a__counter", None).await.unwrap()),
        "1"
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_names_split_on_the_first_separator() {
    let agg = Aggregator::new(registry(&["a"]));
    // "a__x__y" is tool "x__y" on server "a", which the server does not have.
    let e = agg.call_tool("a__x__y", None).await.unwrap_err();
    match e {
        AggregatorError::Client(ClientError::UnknownTool { server, tool, .. }) => {
            assert_eq!((server.as_str(), tool.as_str()), ("a", "x__y"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_namespaced_paginated_and_filtered() {
    let mut paged = test_server_config();
    paged.env.insert("MCP_TEST_PAGE_SIZE".into(), "2".into());
    let mut filtered = test_server_config();
    filtered.tools = ToolFilter::Allow(vec!["echo".into(), "counter".into()]);
    let mut denied = test_server_config();
    denied.tools = ToolFilter::Deny(vec!["crash".into()]);
    let reg = Registry::from_servers([
        ("paged".to_string(), paged),
        ("filtered".to_string(), filtered),
        ("denied".to_string(), denied),
    ]);
    let agg = Aggregator::new(reg);
    let (tools, failures) = agg.list_tools(&[]).await.unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    for t in [
        "echo",
        "add",
        "counter",
        "pid",
        "sleep",
        "fail",
        "crash",
        "big",
        "enable_extra",
    ] {
        assert!(
            names.contains(&format!("paged__{t}").as_str()),
            "paging lost {t}: {names:?}"
        );
    }
    let filtered_names: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("filtered__"))
        .collect();
    assert_eq!(filtered_names.len(), 2, "{filtered_names:?}");
    assert!(!names.contains(&"denied__crash"));
    assert!(names.contains(&"denied__echo"));
    let echo = tools.iter().find(|t| t.name == "paged__echo").unwrap();
    assert!(
        echo.description().starts_with("[paged]"),
        "{}",
        echo.description()
    );
    assert_eq!(echo.input_schema()["type"], "object");
    let e = agg.call_tool("denied__crash", None).await.unwrap_err();
    assert!(matches!(e, AggregatorError::Filtered { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_invalidates_the_session_tool_cache() {
    let agg = Aggregator::new(registry(&["a"]));
    let session = agg.session(&["a"]).await.unwrap();
    let before = session.list_tools().await.unwrap();
    assert!(!before.iter().any(|t| t.name == "a__extra"));
    session.call_tool("a__enable_extra", None).await.unwrap();
    // The notification travels on its own; wait for it to be processed (generously: this
    // test failed once in a loaded local run with 5 s, cause not seen).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let after = session.list_tools().await.unwrap();
        if after.iter().any(|t| t.name == "a__extra") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "list_changed never invalidated the cache"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        text(&session.call_tool("a__extra", None).await.unwrap()),
        "extra called"
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_cwd_and_slow_start_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_server_config();
    cfg.env
        .insert("GREETING".into(), "hello from config".into());
    cfg.env
        .insert("MCP_TEST_STARTUP_DELAY_MS".into(), "300".into());
    cfg.cwd = Some(dir.path().to_path_buf());
    let agg = Aggregator::new(Registry::from_servers([("a".to_string(), cfg)]));
    let session = agg.session(&["a"]).await.unwrap();
    let r = session
        .call_tool("a__env", args(json!({"name": "GREETING"})))
        .await
        .unwrap();
    assert_eq!(text(&r), "hello from config");
    let r = session.call_tool("a__cwd", None).await.unwrap();
    assert_eq!(
        std::fs::canonicalize(text(&r)).unwrap(),
        std::fs::canonicalize(dir.path()).unwrap()
    );
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_and_missing_program_are_clear_errors() {
    let mut slow = test_server_config();
    slow.env
        .insert("MCP_TEST_STARTUP_DELAY_MS".into(), "5000".into());
    slow.connect_timeout = Duration::from_millis(300);
    let e = ServerConnection::connect("slow", &slow).await.unwrap_err();
    assert!(matches!(e, ClientError::ConnectTimeout { .. }), "{e:?}");
    let missing =
        mcp_registry_host::ServerConfig::new("/nonexistent/mcp-server", Vec::<String>::new());
    let e = ServerConnection::connect("missing", &missing)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Spawn { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/mcp-server"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_protocol_eras_are_negotiated_and_recorded() {
    for (mode, expected) in [
        (ProtocolMode::Legacy, "2025-11-25"),
        (ProtocolMode::Modern, "2026-07-28"),
        (ProtocolMode::Auto, "2026-07-28"),
    ] {
        let mut cfg = test_server_config();
        cfg.protocol = mode;
        let conn = ServerConnection::connect("a", &cfg).await.unwrap();
        match conn.state() {
            ConnectionState::Ready {
                protocol_version,
                server_name,
                ..
            } => {
                assert_eq!(protocol_version, expected, "mode {mode:?}");
                assert_eq!(server_name.as_deref(), Some("mcp-test-server"));
            }
            other => panic!("not ready: {other:?}"),
        }
        let r = conn
            .call_tool("echo", args(json!({"message": "era"})))
            .await
            .unwrap();
        assert_eq!(text(&r), "era");
        let pid = conn.pid().unwrap();
        conn.close().await;
        assert_eq!(conn.state(), ConnectionState::Closed);
        assert!(!alive(pid));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_results_arrive_whole() {
    let agg = Aggregator::new(registry(&["a"]));
    let r = agg
        .call_tool("a__big", args(json!({"bytes": 2_000_000})))
        .await
        .unwrap();
    assert_eq!(text(&r).len(), 2_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_falls_back_for_servers_that_die_on_the_probe_and_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("methods");
    let script = workspace_root().join("tests/peers/strict_legacy_server.py");
    let mut cfg = mcp_registry_host::ServerConfig::new(python3(), [script.display().to_string()]);
    cfg.env
        .insert("STRICT_LOG".into(), log.display().to_string());
    let conn = ServerConnection::connect("strict", &cfg).await.unwrap();
    assert_eq!(conn.protocol_version().as_deref(), Some("2024-11-05"));
    let r = conn
        .call_tool("echo", args(json!({"message": "old"})))
        .await
        .unwrap();
    assert_eq!(text(&r), "old");
    conn.close().await;
    // The probe killed the first process; the second was started with initialize.
    let methods = std::fs::read_to_string(&log).unwrap();
    assert!(
        methods.starts_with("server/discover\ninitialize\n"),
        "{methods}"
    );
    // The answer is remembered for this process: the next connection skips the probe.
    std::fs::write(&log, "").unwrap();
    let conn = ServerConnection::connect("strict", &cfg).await.unwrap();
    conn.close().await;
    let methods = std::fs::read_to_string(&log).unwrap();
    assert!(methods.starts_with("initialize\n"), "{methods}");
}
