//! The Wasm plugin host with real guest components and real server processes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use mcp_registry_host::plugin::{PluginError, PluginHost, PluginPolicy};
use mcp_registry_host::Aggregator;
use serde_json::{json, Value};

/// A registry of test servers that record their pids in a file, and a host over it.
struct Fixture {
    host: PluginHost,
    pid_file: PathBuf,
    servers: Vec<String>,
    _dir: tempfile::TempDir,
}

fn fixture(names: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let host = PluginHost::new(
        Aggregator::new(pid_recording_registry(names, &pid_file)),
        Some(shared_cache().join("components")),
    )
    .unwrap();
    Fixture {
        host,
        pid_file,
        servers: names.iter().map(|n| n.to_string()).collect(),
        _dir: dir,
    }
}

impl Fixture {
    async fn run(&self, guest_name: &str, input: Value) -> Result<Value, PluginError> {
        // Every server of the fixture granted.
        self.run_with(guest_name, input, &PluginPolicy::granting(&self.servers))
            .await
    }

    async fn run_with(
        &self,
        guest_name: &str,
        input: Value,
        policy: &PluginPolicy,
    ) -> Result<Value, PluginError> {
        let plugin = self.host.load_file(&guest(guest_name)).unwrap();
        let out = self.host.run(&plugin, &input.to_string(), policy).await?;
        Ok(serde_json::from_str(&out).expect("plugin output is JSON"))
    }

    /// Every server process any run started is gone.
    fn assert_no_server_left(&self) {
        let pids = pids_in(&self.pid_file);
        assert!(!pids.is_empty(), "no server was started at all");
        for pid in pids {
            assert!(gone(pid), "server process {pid} outlived the plugin run");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_session_is_persistent_and_closed_after_the_run() {
    let f = fixture(&["a"]);
    let out = f
        .run(
            "probe",
            json!({"op": "session_counter", "server": "a", "n": 3}),
        )
        .await
        .unwrap();
    assert_eq!(out["counters"], json!(["1", "2", "3"]));
    f.assert_no_server_left();
    assert_eq!(
        pids_in(&f.pid_file).len(),
        1,
        "a session spawns its server once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_temporary_calls_get_a_fresh_process_each() {
    let f = fixture(&["a"]);
    let out = f
        .run(
            "probe",
            json!({"op": "temp_counter", "server": "a", "n": 3}),
        )
        .await
        .unwrap();
    assert_eq!(out["counters"], json!(["1", "1", "1"]));
    assert_eq!(pids_in(&f.pid_file).len(), 3);
    f.assert_no_server_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_session_is_closed_when_the_instance_goes() {
    let f = fixture(&["a"]);
    let out = f
        .run("probe", json!({"op": "leak", "server": "a"}))
        .await
        .unwrap();
    let pid: u32 = out["pid"].as_str().unwrap().parse().unwrap();
    assert!(gone(pid), "leaked session's server {pid} survived the run");
    f.assert_no_server_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_still_closes_every_session() {
    let f = fixture(&["a"]);
    let e = f
        .run("probe", json!({"op": "trap", "server": "a"}))
        .await
        .unwrap_err();
    assert!(matches!(e, PluginError::Trap { .. }), "{e:?}");
    f.assert_no_server_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_past_its_deadline_is_stopped_and_cleaned_up() {
    let f = fixture(&["a"]);
    let policy = PluginPolicy {
        deadline: Duration::from_millis(1500),
        ..PluginPolicy::granting(["a", "b"])
    };
    // Without the deadline `hold` never returns: the guard only keeps a broken build from
    // hanging the test run.
    let e = tokio::time::timeout(
        Duration::from_secs(300),
        f.run_with("probe", json!({"op": "hold", "server": "a"}), &policy),
    )
    .await
    .expect("the deadline was not enforced")
    .unwrap_err();
    assert!(
        matches!(e, PluginError::Trap { .. } | PluginError::Deadline { .. }),
        "{e:?}"
    );
    f.assert_no_server_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_calls_run_concurrently() {
    let f = fixture(&["a"]);
    let out = f
        .run(
            "probe",
            json!({"op": "sleep_concurrent", "server": "a", "n": 4, "ms": 1500}),
        )
        .await
        .unwrap();
    assert_eq!(out["ok"], 4);
    // The server saw more than one of them sleeping at once (one after another: one).
    let most: u32 = out["most_at_once"].as_str().unwrap().parse().unwrap();
    assert!(most >= 2, "calls ran one after another: {out}");
    f.assert_no_server_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_reach_the_guest_as_the_right_variant() {
    let f = fixture(&["a"]);
    let out = f
        .run("probe", json!({"op": "errors", "server": "a"}))
        .await
        .unwrap();
    assert_eq!(out["array_args"], "invalid-input");
    assert_eq!(out["bad_json_args"], "invalid-input");
    assert_eq!(out["temp_array_args"], "invalid-input");
    assert_eq!(out["unknown_tool"], "not-found");
    // A server the plugin is not granted is denied, whether it exists or not: the answer
    // tells a plugin nothing about the registry it may not see.
    assert_eq!(out["unknown_server"], "denied");
    assert_eq!(out["unknown_server_session"], "denied");
    assert_eq!(out["bad_name"], "invalid-input");
    assert_eq!(out["tool_error"], true);
    assert_eq!(out["still_works"], "ok");
    f.assert_no_server_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_future_cancels_its_call_on_the_server() {
    let f = fixture(&["a"]);
    let out = f
        .run("probe", json!({"op": "cancel", "server": "a"}))
        .await
        .unwrap();
    assert_eq!(
        out["cancelled"], "1",
        "the server never saw notifications/cancelled"
    );
    f.assert_no_server_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_session_fails_its_calls_in_flight() {
    let f = fixture(&["a"]);
    let out = f
        .run(
            "probe",
            json!({"op": "drop_session_with_calls_in_flight", "server": "a"}),
        )
        .await
        .unwrap();
    assert_eq!(out["outcome"], "invalid-input");
    f.assert_no_server_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_denies_servers_outside_the_allow_list() {
    let f = fixture(&["a", "b"]);
    let policy = PluginPolicy {
        allowed_servers: vec!["a".into()],
        ..PluginPolicy::granting(["a", "b"])
    };
    let e = f
        .run_with(
            "probe",
            json!({"op": "session_counter", "server": "b"}),
            &policy,
        )
        .await
        .unwrap_err();
    match e {
        PluginError::Failed { message, .. } => assert!(message.starts_with("denied:"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        pids_in(&f.pid_file).is_empty(),
        "a denied server must not even be started"
    );
    let out = f
        .run_with(
            "probe",
            json!({"op": "session_counter", "server": "a", "n": 1}),
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(out["counters"], json!(["1"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_run() {
    let f = fixture(&["alpha", "beta"]);
    let out = f
        .run("fanout", json!({"servers": ["alpha", "beta"], "rounds": 3}))
        .await
        .unwrap();
    assert_eq!(out["counters"]["alpha"], json!([1, 2, 3]));
    assert_eq!(out["counters"]["beta"], json!([1, 2, 3]));
    assert_eq!(out["echoes"], json!(["hello from wasm", "hello from wasm"]));
    let out = f
        .run("temporary", json!({"server": "alpha", "calls": 3}))
        .await
        .unwrap();
    assert_eq!(out["counters"], json!([1, 1, 1]));
    assert!(out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "alpha__echo"));
    f.assert_no_server_left();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_a_plugin_error() {
    let f = fixture(&["a"]);
    let plugin = f.host.load_file(&guest("fanout")).unwrap();
    let d: Value = f.host.describe(&plugin).await.unwrap().raw;
    assert_eq!(d["name"], "fanout");
    assert_eq!(d["inputSchema"]["type"], "object");
    let e = f.run("probe", json!({"op": "fail"})).await.unwrap_err();
    assert!(matches!(e, PluginError::Failed { .. }), "{e:?}");
    let e = f
        .host
        .load("junk", b"not wasm")
        .err()
        .expect("junk must not load");
    assert!(matches!(e, PluginError::Invalid { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let agg = Aggregator::new(registry(&["a"]));
    let host = PluginHost::new(agg.clone(), Some(cache.clone())).unwrap();
    host.load_file(&guest("temporary")).unwrap();
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let modified = entries[0].metadata().unwrap().modified().unwrap();
    // A second host (a second process, in effect) reads the artifact instead of compiling.
    let host2 = PluginHost::new(agg, Some(cache.clone())).unwrap();
    let plugin = host2.load_file(&guest("temporary")).unwrap();
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    assert_eq!(
        entries[0].metadata().unwrap().modified().unwrap(),
        modified,
        "the cache entry was rewritten"
    );
    let out = host2
        .run(
            &plugin,
            r#"{"server": "a", "calls": 1}"#,
            &PluginPolicy::granting(["a", "b"]),
        )
        .await
        .unwrap();
    assert!(out.contains("\"counters\":[1]"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_plugin_runs_keep_their_own_processes() {
    let f = Arc::new(fixture(&["a"]));
    let runs = (0..4).map(|_| {
        let f = f.clone();
        tokio::spawn(async move {
            f.run(
                "probe",
                json!({"op": "session_counter", "server": "a", "n": 3}),
            )
            .await
        })
    });
    let outs = futures::future::join_all(runs).await;
    let mut pids = Vec::new();
    for out in outs {
        let out = out.unwrap().unwrap();
        assert_eq!(
            out["counters"],
            json!(["1", "2", "3"]),
            "server state leaked between plugins"
        );
        pids.push(out["pid"].as_str().unwrap().to_owned());
    }
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 4, "two plugins shared a server process");
    f.assert_no_server_left();
}

#[test]
fn cli_run_prints_output_and_maps_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {"alpha": {"command": test_server().display().to_string()},
                               "beta": {"command": test_server().display().to_string()}}})
        .to_string(),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
            .env("MCP_REGISTRY_CACHE_DIR", dir.path().join("cache"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let fanout = guest("fanout");
    let o = run(&["run", fanout.to_str().unwrap(), "--allow-requested"]);
    assert!(o.status.success(), "{o:?}");
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["counters"]["alpha"], json!([1, 2, 3]));
    let probe = guest("probe");
    let o = run(&[
        "run",
        probe.to_str().unwrap(),
        "--input",
        r#"{"op": "fail"}"#,
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let o = run(&[
        "run",
        fanout.to_str().unwrap(),
        "--allow-server",
        "alpha",
        "--input",
        r#"{"servers": ["beta"]}"#,
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("denied"),
        "{o:?}"
    );
    let o = run(&["run", config.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = run(&["describe", fanout.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");

    // A policy file: two tenants side by side, one of them hostile.
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        json!({"plugins": {
            "good": {"component": fanout, "input": {"servers": ["alpha", "beta"]}, "servers": ["alpha", "beta"]},
            "spinner": {"component": guest("hostile"), "input": {"op": "loop"}, "limits": {"deadline_secs": 1}}
        }})
        .to_string(),
    )
    .unwrap();
    let o = run(&["run", "--policy", policy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["good"]["ok"]["counters"]["beta"],
        json!([1, 2, 3]),
        "{report}"
    );
    assert!(
        report["spinner"]["error"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{report}"
    );
    std::fs::write(
        &policy,
        r#"{"plugins": {"x": {"component": "x.wasm", "limits": {"fuel": -1}}}}"#,
    )
    .unwrap();
    let o = run(&["run", "--policy", policy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("policy.json") && err.contains("\"x\"") && err.contains("limits.fuel"),
        "{err}"
    );
    // Flags carry the same grants: a read-only directory and an env var.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("granted.txt"), "abc").unwrap();
    let hostile = guest("hostile");
    let o = run(&[
        "run",
        hostile.to_str().unwrap(),
        "--input",
        r#"{"op": "ambient"}"#,
        "--dir",
        &format!("{}:/data", data.display()),
        "--env",
        "K=V",
    ]);
    assert!(o.status.success(), "{o:?}");
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["granted"], 3);
    assert_eq!(out["env"], json!([["K", "V"]]));
    assert_eq!(out["write_granted"], false);
}
