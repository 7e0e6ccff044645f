//! Many tenants at once: N concurrent plugin instances in one host process, each opening a
//! session to the test server, making 10 calls and dropping it. Reports throughput, call
//! latency percentiles and the host's peak RSS, with wasmtime's pooling allocator off and on.
//!
//! `cargo bench -p mcp-registry-host --bench tenants [-- N]` (default N = 200). Each allocator
//! mode runs in a fresh child process so peak RSS is measured per mode.

#[path = "common/mod.rs"]
mod common;
use common::cargo_build;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use mcp_registry_host::config::{Registry, ServerConfig};
use mcp_registry_host::plugin::{HostOptions, PluginHost, PluginPolicy};
use mcp_registry_host::Aggregator;
use serde_json::{json, Value};

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn child(pooling: bool, n: usize, server: &str, probe: &str) {
    let registry = Registry::from_servers([(
        "a".to_string(),
        ServerConfig::new(server, Vec::<String>::new()),
    )]);
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::with_options(
        Aggregator::new(registry),
        HostOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            pooling,
        },
    )
    .unwrap();
    let plugin = host.load_file(Path::new(probe)).unwrap();
    let policy = PluginPolicy::granting(["a"]);
    // Warm up once (first instantiation, first spawn).
    host.run(
        &plugin,
        r#"{"op": "latencies", "server": "a", "n": 1}"#,
        &policy,
    )
    .await
    .unwrap();
    let rss_before = status_kib("VmRSS:");
    let input = json!({"op": "latencies", "server": "a", "n": 10}).to_string();
    let t = Instant::now();
    let runs = (0..n).map(|_| host.run(&plugin, &input, &policy));
    let results = futures::future::join_all(runs).await;
    let elapsed = t.elapsed();
    let mut us: Vec<u64> = Vec::new();
    let mut failures = 0;
    for r in results {
        match r {
            Ok(out) => {
                let v: Value = serde_json::from_str(&out).unwrap();
                us.extend(
                    v["ns"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(Value::as_u64)
                        .map(|ns| ns / 1000),
                );
            }
            Err(e) => {
                failures += 1;
                eprintln!("run failed: {e}");
            }
        }
    }
    us.sort();
    let pct = |p: f64| {
        us.get(((us.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let peak = status_kib("VmHWM:");
    println!(
        "{}",
        json!({
            "pooling": pooling, "instances": n, "failures": failures, "calls": us.len(),
            "seconds": elapsed.as_secs_f64(),
            "calls_per_sec": us.len() as f64 / elapsed.as_secs_f64(),
            "p50_us": pct(0.5), "p99_us": pct(0.99),
            "rss_before_kib": rss_before, "peak_rss_kib": peak,
            "peak_minus_before_per_instance_kib": (peak.saturating_sub(rss_before)) as f64 / n as f64,
        })
    );
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    if let Ok(mode) = std::env::var("TENANTS_BENCH_CHILD") {
        let server = std::env::var("TENANTS_BENCH_SERVER").unwrap();
        let probe = std::env::var("TENANTS_BENCH_PROBE").unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(child(mode == "pooling", n, &server, &probe));
        return;
    }
    let server = cargo_build(&["-p", "mcp-test-server"], "mcp-test-server");
    let probe = cargo_build(&["--target", "wasm32-wasip2", "-p", "probe"], "probe.wasm");
    println!("{n} concurrent plugin instances, each: session + 10 echo calls + drop");
    println!(
        "{:<10} {:>9} {:>10} {:>9} {:>9} {:>12} {:>16} {:>9}",
        "allocator",
        "seconds",
        "calls/s",
        "p50 us",
        "p99 us",
        "peak RSS MiB",
        "KiB/instance",
        "failures"
    );
    for mode in ["on-demand", "pooling"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .arg(n.to_string())
            .env("TENANTS_BENCH_CHILD", mode)
            .env("TENANTS_BENCH_SERVER", &server)
            .env("TENANTS_BENCH_PROBE", &probe)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(v) = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
        else {
            eprintln!(
                "{mode} child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        };
        println!(
            "{:<10} {:>9.2} {:>10.0} {:>9} {:>9} {:>12.1} {:>16.1} {:>9}",
            mode,
            v["seconds"].as_f64().unwrap_or(0.0),
            v["calls_per_sec"].as_f64().unwrap_or(0.0),
            v["p50_us"],
            v["p99_us"],
            v["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            v["peak_minus_before_per_instance_kib"]
                .as_f64()
                .unwrap_or(0.0),
            v["failures"]
        );
    }
}
