//! The same fan-out plugin written in Rust, Python, JavaScript, C, Go and Zig, side by side: component
//! size, compile time (cold), load time from the compile cache, instantiate + `describe`,
//! and the cost of one round of calls from a session (two concurrent `counter` calls).
//!
//! `cargo bench -p mcp-registry-host --bench languages` after `scripts/install-peers.sh`
//! and `scripts/build-guests.sh` (guests missing from target/guests are skipped).

#[path = "common/mod.rs"]
mod common;
use common::{cargo_build, root};

use std::time::{Duration, Instant};

use mcp_registry_host::config::{Registry, ServerConfig};
use mcp_registry_host::plugin::{PluginHost, PluginPolicy};
use mcp_registry_host::Aggregator;
use serde_json::json;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = cargo_build(&["-p", "mcp-test-server"], "mcp-test-server");
    let rust = cargo_build(
        &["--target", "wasm32-wasip2", "-p", "fanout"],
        "fanout.wasm",
    );
    let guests = [
        ("rust", rust),
        ("python", root().join("target/guests/python-fanout.wasm")),
        ("javascript", root().join("target/guests/js-fanout.wasm")),
        ("c", root().join("target/guests/c-fanout.wasm")),
        ("go", root().join("target/guests/go-fanout.wasm")),
        ("zig", root().join("target/guests/zig-fanout.wasm")),
    ];
    let registry = Registry::from_servers(["alpha", "beta"].map(|n| {
        (
            n.to_string(),
            ServerConfig::new(server.display().to_string(), Vec::<String>::new()),
        )
    }));
    let agg = Aggregator::new(registry);
    println!(
        "{:<11} {:>10} {:>12} {:>12} {:>16} {:>16}",
        "guest", "size MiB", "compile ms", "cached ms", "instantiate+describe ms", "call round us"
    );
    for (name, path) in guests {
        if !path.exists() {
            println!(
                "{name:<11} (not built: {}; run scripts/build-guests.sh)",
                path.display()
            );
            continue;
        }
        let size = std::fs::metadata(&path).unwrap().len() as f64 / (1 << 20) as f64;
        let cache = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let host = PluginHost::new(agg.clone(), Some(cache.path().to_path_buf())).unwrap();
        host.load_file(&path).unwrap();
        let compile = t.elapsed();
        // A fresh host reads the artifact the first one cached: what a second process pays.
        let mut cached = Vec::new();
        let mut last = None;
        for _ in 0..5 {
            let t = Instant::now();
            let host = PluginHost::new(agg.clone(), Some(cache.path().to_path_buf())).unwrap();
            let plugin = host.load_file(&path).unwrap();
            cached.push(t.elapsed());
            last = Some((host, plugin));
        }
        let (host, plugin) = last.unwrap();
        let mut describe = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            host.describe(&plugin).await.unwrap();
            describe.push(t.elapsed());
        }
        let policy = PluginPolicy::granting(["alpha", "beta"]);
        let mut rounds = Vec::new();
        for _ in 0..5 {
            let run = |r: u64| {
                let input = json!({"servers": ["alpha", "beta"], "rounds": r}).to_string();
                let host = &host;
                let plugin = &plugin;
                let policy = &policy;
                async move {
                    let t = Instant::now();
                    host.run(plugin, &input, policy).await.unwrap();
                    t.elapsed()
                }
            };
            let base = run(1).await;
            let full = run(101).await;
            rounds.push(full.saturating_sub(base) / 100);
        }
        println!(
            "{:<11} {:>10.2} {:>12} {:>12} {:>16} {:>16.1}",
            name,
            size,
            ms(compile),
            ms(median(cached)),
            ms(median(describe)),
            median(rounds).as_secs_f64() * 1e6
        );
    }
}
