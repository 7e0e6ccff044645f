//! Hostile guests. Each test runs one attack next to a well-behaved tenant in the same host
//! and checks: the attacker gets a clear error, the other tenant's calls and session keep
//! working, and afterwards no server process, `Store` or session is left.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::*;
use mcp_registry_host::config::Registry;
use mcp_registry_host::plugin::{PluginError, PluginHost, PluginPolicy, Preopen};
use mcp_registry_host::Aggregator;
use serde_json::{json, Value};

struct Host {
    host: PluginHost,
    pid_file: PathBuf,
    dir: tempfile::TempDir,
}

fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let servers = ["a", "b"].map(|n| {
        let mut cfg = test_server_config();
        cfg.env
            .insert("MCP_TEST_PID_FILE".into(), pid_file.display().to_string());
        cfg.call_timeout = Duration::from_secs(120);
        (n.to_string(), cfg)
    });
    let host = PluginHost::new(
        Aggregator::new(Registry::from_servers(servers)),
        Some(shared_cache().join("components")),
    )
    .unwrap();
    Host {
        host,
        pid_file,
        dir,
    }
}

impl Host {
    /// Runs the attack and, concurrently, a well-behaved tenant; returns the attack's outcome
    /// after checking the tenant succeeded and nothing leaked.
    async fn attack(&self, input: Value, policy: PluginPolicy) -> Result<Value, PluginError> {
        let hostile = self.host.load_file(&guest("hostile")).unwrap();
        let probe = self.host.load_file(&guest("probe")).unwrap();
        let input = input.to_string();
        let attack = self.host.run(&hostile, &input, &policy);
        let tenant = async {
            // Start the tenant while the attack is under way.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let started = Instant::now();
            let out = self
                .host
                .run(
                    &probe,
                    r#"{"op": "session_counter", "server": "a", "n": 3}"#,
                    &PluginPolicy::granting(["a", "b"]),
                )
                .await;
            (out, started.elapsed())
        };
        let (outcome, (tenant, tenant_time)) = tokio::join!(attack, tenant);
        let tenant: Value =
            serde_json::from_str(&tenant.expect("the well-behaved tenant failed")).unwrap();
        assert_eq!(
            tenant["counters"],
            json!(["1", "2", "3"]),
            "the other tenant's session was disturbed"
        );
        assert!(
            tenant_time < Duration::from_secs(30),
            "the other tenant was starved: {tenant_time:?}"
        );
        // Nothing left behind.
        let deadline = Instant::now() + Duration::from_secs(10);
        while (self.host.live_instances() != 0 || self.host.open_sessions() != 0)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(self.host.live_instances(), 0, "a Store was leaked");
        assert_eq!(self.host.open_sessions(), 0, "a session was leaked");
        for pid in pids_in(&self.pid_file) {
            assert!(gone(pid), "server process {pid} was leaked");
        }
        outcome.map(|s| serde_json::from_str(&s).expect("hostile output is JSON"))
    }
}

fn policy() -> PluginPolicy {
    PluginPolicy {
        deadline: Duration::from_secs(3),
        ..PluginPolicy::granting(["a", "b"])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_hits_the_deadline() {
    let h = host();
    let started = Instant::now();
    let e = h.attack(json!({"op": "loop"}), policy()).await.unwrap_err();
    assert!(matches!(e, PluginError::Deadline { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_runs_out_of_fuel() {
    let h = host();
    let p = PluginPolicy {
        fuel: Some(50_000_000),
        deadline: Duration::from_secs(60),
        ..PluginPolicy::granting(["a", "b"])
    };
    let e = h.attack(json!({"op": "loop"}), p).await.unwrap_err();
    match e {
        PluginError::Trap { message, .. } => assert!(message.contains("fuel"), "{message}"),
        other => panic!("expected an out-of-fuel trap, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_growth_stops_at_the_cap() {
    let h = host();
    let p = PluginPolicy {
        max_memory_bytes: 64 << 20,
        ..policy()
    };
    let e = h.attack(json!({"op": "memory"}), p).await.unwrap_err();
    match e {
        PluginError::Trap { message, .. } => assert!(message.contains("memory"), "{message}"),
        other => panic!("expected a memory trap, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_is_a_trap() {
    let h = host();
    let e = h
        .attack(json!({"op": "recursion"}), policy())
        .await
        .unwrap_err();
    assert!(matches!(e, PluginError::Trap { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_values_across_the_boundary_are_limited() {
    let h = host();
    let out = h
        .attack(json!({"op": "huge_arguments"}), policy())
        .await
        .unwrap();
    assert_eq!(out["huge"], "limit-exceeded");
    let out = h
        .attack(json!({"op": "huge_list"}), policy())
        .await
        .unwrap();
    assert_eq!(out["open"], "invalid-input");
    let p = PluginPolicy {
        max_result_bytes: 1 << 20,
        ..policy()
    };
    let out = h.attack(json!({"op": "huge_result"}), p).await.unwrap();
    assert_eq!(out["big"], "limit-exceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_sessions_in_a_loop_hits_max_sessions() {
    let h = host();
    let p = PluginPolicy {
        max_sessions: 5,
        ..policy()
    };
    let out = h.attack(json!({"op": "session_loop"}), p).await.unwrap();
    assert_eq!(out, json!({"opened": 5, "error": "limit-exceeded"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_calls_without_reading_hits_max_in_flight() {
    let h = host();
    let p = PluginPolicy {
        max_in_flight: 20,
        ..policy()
    };
    let out = h.attack(json!({"op": "call_flood"}), p).await.unwrap();
    assert_eq!(out, json!({"started": 20, "error": "limit-exceeded"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_count_is_bounded() {
    let h = host();
    let p = PluginPolicy {
        max_calls: 30,
        ..policy()
    };
    let out = h.attack(json!({"op": "call_count"}), p).await.unwrap();
    assert_eq!(out["made"], 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_its_server_crashing() {
    let h = host();
    let out = h
        .attack(json!({"op": "after_crash"}), policy())
        .await
        .unwrap();
    assert_eq!(out, json!({"crash": "server-failed", "again": "1"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_servers_and_tools_name_the_rule() {
    let h = host();
    let p = PluginPolicy {
        allowed_servers: vec!["a".into()],
        allowed_tools: Some(vec!["a__echo".into(), "a__c?unter".into()]),
        ..policy()
    };
    let out = h.attack(json!({"op": "denied"}), p).await.unwrap();
    assert_eq!(
        out,
        json!({"server": "denied", "temp_server": "denied", "tool": "denied", "allowed": "ok"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_object_arguments_are_invalid_input() {
    let h = host();
    let out = h
        .attack(json!({"op": "non_object_args"}), policy())
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"array": "invalid-input", "number": "invalid-input", "garbage": "invalid-input"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ambient_files_env_network_or_clock() {
    let h = host();
    let out = h.attack(json!({"op": "ambient"}), policy()).await.unwrap();
    assert_eq!(out["etc_passwd"], false);
    assert_eq!(out["escape"], false);
    assert_eq!(out["granted"], Value::Null);
    assert_eq!(out["list_root"], false);
    assert_eq!(out["env"], json!([]));
    assert_eq!(out["socket"], false);
    assert_eq!(out["wall_clock_secs"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_directory_env_and_clock_only() {
    let h = host();
    let data = h.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("granted.txt"), "hello").unwrap();
    std::fs::write(h.dir.path().join("secret.txt"), "secret").unwrap();
    let mut p = policy();
    p.preopens.push(Preopen {
        host: data.clone(),
        guest: "/data".into(),
        writable: false,
    });
    p.env.insert("GRANTED".into(), "yes".into());
    p.wall_clock = true;
    let out = h.attack(json!({"op": "ambient"}), p).await.unwrap();
    assert_eq!(out["granted"], 5);
    assert_eq!(out["escape"], false, "`..` escaped the preopen");
    assert_eq!(
        out["write_granted"], false,
        "a read-only preopen was written"
    );
    assert!(!data.join("new.txt").exists());
    assert_eq!(out["env"], json!([["GRANTED", "yes"]]));
    assert_eq!(out["socket"], false);
    assert!(out["wall_clock_secs"].as_u64().unwrap() > 1_700_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_flood_is_capped() {
    let h = host();
    let p = PluginPolicy {
        max_output_bytes: 64 << 10,
        ..policy()
    };
    match h.attack(json!({"op": "stdout_flood"}), p).await {
        Ok(out) => assert!(out["written"].as_u64().unwrap() <= 64 << 10, "{out}"),
        Err(PluginError::Trap { .. }) => {}
        Err(e) => panic!("unexpected {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_returning_while_holding_sessions() {
    let h = host();
    let probe = h.host.load_file(&guest("probe")).unwrap();
    let p = policy();
    let hold = h.host.run(&probe, r#"{"op": "hold", "server": "b"}"#, &p);
    let (e, _) = tokio::join!(hold, async {
        // While the holder spins, its session is counted.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(h.host.open_sessions(), 1);
    });
    assert!(matches!(e, Err(PluginError::Deadline { .. })), "{e:?}");
    assert_eq!(h.host.open_sessions(), 0);
    assert_eq!(h.host.live_instances(), 0);
    for pid in pids_in(&h.pid_file) {
        assert!(gone(pid));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_handles_trap_only_the_forger() {
    let h = host();
    // The well-behaved tenant holds session handle 1 in its own instance during the attack;
    // the forger's handle 1 means nothing in the forger's table.
    for handle in [0, 1, 2, 1000] {
        let e = h
            .attack(json!({"op": "forge", "handle": handle}), policy())
            .await
            .unwrap_err();
        assert!(
            matches!(e, PluginError::Trap { .. }),
            "handle {handle}: {e:?}"
        );
    }
}
