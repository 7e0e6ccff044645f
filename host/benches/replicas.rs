//! Scale-out on this machine, side by side in one run: `serve --http --tenants` alone, then
//! 1, 2 and 3 replicas behind HAProxy configured by `deploy/haproxy.cfg` (tenant affinity,
//! `/readyz` checks). 30 tenants x 2 keep-alive HTTP/1.1 connections call `echo` (stateless
//! 2026-07-28 requests) for a fixed time; reports calls/s, p50/p99, and the CPU each part
//! spent per call (replicas, HAProxy, the load generator), since they all share the
//! machine's cores. Writes `target/bench/replicas.txt`.
//!
//! The load generator is a lean Rust client (hyper), not an SDK: the SDK clients are measured
//! by the `http` and `multitenant` benches; here they would take the cores the replicas need.
//! Needs Debian's `haproxy` (`scripts/install-peers.sh` installs it). Numbers only.

#[path = "common/mod.rs"]
mod common;
#[path = "../../tests/it/support/haproxy.rs"]
mod haproxy;
use common::{call_loop, cargo_build, cpu_s, percentile, root};

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

const TENANTS: usize = 30;
const CONNECTIONS_PER_TENANT: usize = 2;
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);

/// A child process killed (SIGTERM, then waited for) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn key(i: usize) -> String {
    format!("replicas-bench-key-{i}")
}

/// A replica and the address it listens on.
fn replica(cli: &Path, config: &Path, tenants: &Path) -> (Running, String) {
    let mut child = Command::new(cli)
        .arg("--config")
        .arg(config)
        .args(["serve", "--http", "127.0.0.1:0", "--tenants"])
        .arg(tenants)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let address = lines.by_ref().find_map(|line| {
        let line = line.ok()?;
        let url = line.strip_prefix("mcp-registry: serving MCP on http://")?;
        Some(url.trim().trim_end_matches("/mcp").to_owned())
    });
    std::thread::spawn(move || for _ in lines {});
    let running = Running(child);
    (running, address.expect("serve printed no address"))
}

fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// One row: the load through `front`, and the CPU the replicas and HAProxy spent on it.
fn measure(label: &str, front: &str, replicas: &[u32], haproxy: Option<u32>) -> String {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cpu = |pids: &[u32]| pids.iter().map(|p| cpu_s(*p)).sum::<f64>();
    let own = std::process::id();
    let start = Instant::now();
    let (warm, end) = (start + WARM_UP, start + WARM_UP + MEASURE);
    let mut before = (0.0, 0.0, 0.0);
    let results = runtime.block_on(async {
        let tasks: Vec<_> = (0..TENANTS * CONNECTIONS_PER_TENANT)
            .map(|c| {
                tokio::spawn(call_loop(
                    front.to_owned(),
                    Some(format!("Bearer {}", key(c % TENANTS))),
                    warm,
                    end,
                ))
            })
            .collect();
        tokio::time::sleep_until(warm.into()).await;
        before = (cpu(replicas), haproxy.map_or(0.0, cpu_s), cpu_s(own));
        futures::future::join_all(tasks).await
    });
    let after = (cpu(replicas), haproxy.map_or(0.0, cpu_s), cpu_s(own));
    let mut latencies = Vec::new();
    let mut failures = 0;
    for r in results {
        let (l, f) = r.unwrap();
        latencies.extend(l);
        failures += f;
    }
    let n = latencies.len() as f64;
    let per_call = |a: f64, b: f64| (a - b) / n * 1e6;
    format!(
        "{label:<32} {:>9.0} {:>9.0} {:>9.0} {:>12.0} {:>12.0} {:>12.0} {:>9}",
        n / MEASURE.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        per_call(after.0, before.0),
        if haproxy.is_some() {
            per_call(after.1, before.1)
        } else {
            f64::NAN
        },
        per_call(after.2, before.2),
        failures
    )
}

fn main() {
    let haproxy_bin = Path::new("/usr/sbin/haproxy");
    if !haproxy_bin.exists() {
        eprintln!("skipping: HAProxy is not installed (scripts/install-peers.sh installs it)");
        return;
    }
    let cli = cargo_build(
        &["-p", "mcp-registry-host", "--bin", "mcp-registry"],
        "mcp-registry",
    );
    let server = cargo_build(&["-p", "mcp-test-server"], "mcp-test-server");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("registry.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {"s": {"command": server.display().to_string()}}}).to_string(),
    )
    .unwrap();
    let tenants: serde_json::Map<String, serde_json::Value> = (0..TENANTS)
        .map(|i| {
            let digest: String = Sha256::digest(key(i).as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let grant = json!({"keys": [format!("sha256:{digest}")], "servers": ["s"]});
            (format!("t{i}"), grant)
        })
        .collect();
    let tenants_file = dir.path().join("tenants.json");
    std::fs::write(&tenants_file, json!({ "tenants": tenants }).to_string()).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = vec![
        format!(
            "{TENANTS} tenants x {CONNECTIONS_PER_TENANT} keep-alive HTTP/1.1 connections calling echo for {} s \
             (after {} s of warm-up), {cores} cores shared by everything below",
            MEASURE.as_secs(),
            WARM_UP.as_secs()
        ),
        "(CPU/call: CPU time each part used during the measured seconds, per completed call)"
            .to_owned(),
        format!(
            "{:<32} {:>9} {:>9} {:>9} {:>12} {:>12} {:>12} {:>9}",
            "set-up", "calls/s", "p50 us", "p99 us", "replicas us", "HAProxy us", "client us", "failures"
        ),
    ];
    {
        let (one, addr) = replica(&cli, &config, &tenants_file);
        out.push(measure("1 replica, no HAProxy", &addr, &[one.0.id()], None));
    }
    for n in 1..=3 {
        let started: Vec<(Running, String)> = (0..n)
            .map(|_| replica(&cli, &config, &tenants_file))
            .collect();
        let addrs: Vec<String> = started.iter().map(|(_, a)| a.clone()).collect();
        let front = free_addr();
        let cfg = dir.path().join(format!("haproxy-{n}.cfg"));
        std::fs::write(&cfg, haproxy::haproxy_config(&root(), &front, &addrs)).unwrap();
        let proxy = Running(
            Command::new(haproxy_bin)
                .arg("-db")
                .arg("-f")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start haproxy"),
        );
        // Every replica in rotation (rise 2 x 200 ms).
        std::thread::sleep(Duration::from_millis(1500));
        let pids: Vec<u32> = started.iter().map(|(r, _)| r.0.id()).collect();
        let label = format!(
            "{n} replica{} behind HAProxy",
            if n == 1 { "" } else { "s" }
        );
        out.push(measure(&label, &front, &pids, Some(proxy.0.id())));
    }
    let text = out.join("\n");
    println!("{text}");
    let bench = root().join("target/bench");
    let _ = std::fs::create_dir_all(&bench);
    std::fs::write(bench.join("replicas.txt"), text + "\n").unwrap();
}
