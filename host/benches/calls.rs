//! Side-by-side latency of one tool call through each layer, against the bundled test server.
//!
//! Run with `cargo bench -p mcp-registry-host --bench calls` (release build). Compares, in one
//! run: a raw rmcp client, the aggregator's persistent session, the aggregator's temporary
//! call, a bare spawn+handshake, a call from a Wasm guest session, plugin instantiation, and
//! `mcp-registry run` of a trivial plugin with a warm compile cache. Numbers only; no
//! thresholds are asserted anywhere.

#[path = "common/mod.rs"]
mod common;
use common::cargo_build;

use std::process::Command;
use std::time::{Duration, Instant};

use mcp_registry_host::config::{Registry, ServerConfig};
use mcp_registry_host::plugin::{PluginHost, PluginPolicy};
use mcp_registry_host::{Aggregator, ServerConnection};
use rmcp::model::CallToolRequestParams;
use rmcp::ServiceExt;
use serde_json::json;

struct Stats {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Stats {
    fn pct(&self, p: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        s[((s.len() - 1) as f64 * p).round() as usize]
    }
    fn mean(&self) -> Duration {
        self.samples.iter().sum::<Duration>() / self.samples.len() as u32
    }
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = cargo_build(&["-p", "mcp-test-server"], "mcp-test-server");
    let cli = cargo_build(
        &["-p", "mcp-registry-host", "--bin", "mcp-registry"],
        "mcp-registry",
    );
    let probe = cargo_build(&["--target", "wasm32-wasip2", "-p", "probe"], "probe.wasm");
    let cfg = ServerConfig::new(server.display().to_string(), Vec::<String>::new());
    let registry = Registry::from_servers([("a".to_string(), cfg.clone())]);
    let agg = Aggregator::new(registry);
    let args = json!({"message": "x"}).as_object().cloned();
    const N: usize = 2000;
    let mut results = Vec::new();

    // 1. Raw rmcp client over the child's stdio.
    {
        let transport =
            rmcp::transport::TokioChildProcess::new(tokio::process::Command::new(&server)).unwrap();
        let client = ().serve(transport).await.unwrap();
        let mut samples = Vec::with_capacity(N);
        for i in 0..N + 100 {
            let mut p = CallToolRequestParams::new("echo");
            p.arguments = args.clone();
            let t = Instant::now();
            client.call_tool(p).await.unwrap();
            if i >= 100 {
                samples.push(t.elapsed());
            }
        }
        client.cancel().await.unwrap();
        results.push(Stats {
            name: "raw rmcp client call",
            samples,
        });
    }
    // 2. Aggregator persistent session.
    {
        let session = agg.session(&["a"]).await.unwrap();
        let mut samples = Vec::with_capacity(N);
        for i in 0..N + 100 {
            let t = Instant::now();
            session.call_tool("a__echo", args.clone()).await.unwrap();
            if i >= 100 {
                samples.push(t.elapsed());
            }
        }
        session.close().await;
        results.push(Stats {
            name: "aggregator session call",
            samples,
        });
    }
    // 3. Spawn + handshake + close alone, and a temporary call (spawn, handshake, call, close).
    {
        let mut spawn = Vec::new();
        let mut temp = Vec::new();
        for _ in 0..100 {
            let t = Instant::now();
            let c = ServerConnection::connect("a", &cfg).await.unwrap();
            c.close().await;
            spawn.push(t.elapsed());
            let t = Instant::now();
            agg.call_tool("a__echo", args.clone()).await.unwrap();
            temp.push(t.elapsed());
        }
        results.push(Stats {
            name: "server spawn+handshake+close",
            samples: spawn,
        });
        results.push(Stats {
            name: "aggregator temporary call",
            samples: temp,
        });
    }
    // 4. Guest session call, timed inside the guest around each call (the monotonic clock is
    // real; only the wall clock is frozen).
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::new(agg.clone(), Some(cache.path().to_path_buf())).unwrap();
    let plugin = host.load_file(&probe).unwrap();
    {
        let input = json!({"op": "latencies", "server": "a", "n": N, "warmup": 100}).to_string();
        let out = host
            .run(&plugin, &input, &PluginPolicy::granting(["a"]))
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let samples = v["ns"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n.as_u64())
            .map(Duration::from_nanos)
            .collect();
        results.push(Stats {
            name: "guest session call",
            samples,
        });
    }
    // 5. Instantiation + trivial run (no servers).
    {
        let policy = PluginPolicy::granting(["a"]);
        let mut samples = Vec::new();
        for i in 0..600 {
            let t = Instant::now();
            host.run(&plugin, r#"{"op": "noop"}"#, &policy)
                .await
                .unwrap();
            if i >= 100 {
                samples.push(t.elapsed());
            }
        }
        results.push(Stats {
            name: "plugin instantiate+run (noop)",
            samples,
        });
    }
    // 6. `mcp-registry run` of a trivial plugin, warm compile cache (process wall time).
    {
        let mut samples = Vec::new();
        for i in 0..21 {
            let t = Instant::now();
            let out = Command::new(&cli)
                .env("MCP_REGISTRY_CACHE_DIR", cache.path())
                .args(["--config", "/nonexistent-registry.json", "run"])
                .arg(&probe)
                .args(["--input", r#"{"op": "noop"}"#])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            if i > 0 {
                samples.push(t.elapsed());
            }
        }
        results.push(Stats {
            name: "`mcp-registry run` noop, warm cache",
            samples,
        });
    }

    println!(
        "\n{:<40} {:>12} {:>12} {:>12} {:>8}",
        "what", "mean us", "p50 us", "p99 us", "n"
    );
    for s in &results {
        println!(
            "{:<40} {:>12} {:>12} {:>12} {:>8}",
            s.name,
            us(s.mean()),
            us(s.pct(0.5)),
            us(s.pct(0.99)),
            s.samples.len()
        );
    }
    let p50 = |name: &str| {
        results
            .iter()
            .find(|s| s.name.starts_with(name))
            .unwrap()
            .pct(0.5)
            .as_secs_f64()
    };
    println!("\nratios (p50):");
    println!(
        "  aggregator session / raw rmcp       = {:.2}",
        p50("aggregator session") / p50("raw rmcp")
    );
    println!(
        "  guest session / aggregator session  = {:.2}",
        p50("guest session") / p50("aggregator session")
    );
    println!(
        "  temporary call - spawn+handshake    = {:.2} ms",
        (p50("aggregator temporary") - p50("server spawn")) * 1e3
    );
}
