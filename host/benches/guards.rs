//! What the guards cost a plain call through `serve --http`, side by side in one run: the
//! same registry with nothing on, with flow-control labels, with pinned tool definitions,
//! with an audit log, and with all three (the audit log signed with a P-256 key). Two
//! keep-alive HTTP/1.1 connections call `echo` (stateless 2026-07-28 requests) for a fixed
//! time, each set-up in turn, twice over (interleaved, so drift in the machine hits them
//! all); reports calls/s, p50/p99 and `serve`'s CPU per call. Release build of the CLI; the
//! upstream is the workspace's test server. Writes `target/bench/guards.txt`.
//!
//! Numbers only: nothing here asserts a threshold.

#[path = "common/mod.rs"]
mod common;
use common::{call_loop, cargo_build, cpu_s, percentile, root};

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CONNECTIONS: usize = 2;
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
const ROUNDS: usize = 2;

/// `serve --http` killed (SIGTERM, then waited for) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn serve(cli: &Path, config: &Path) -> (Running, String) {
    let mut child = Command::new(cli)
        .arg("--config")
        .arg(config)
        .args(["serve", "--http", "127.0.0.1:0"])
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
    (Running(child), address.expect("serve printed no address"))
}

/// One measurement: latencies (µs), calls/s, serve's CPU per call (µs), failures.
fn measure(addr: &str, pid: u32) -> (Vec<f64>, f64, f64, usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let (warm, end) = (start + WARM_UP, start + WARM_UP + MEASURE);
    let mut before = 0.0;
    let results = runtime.block_on(async {
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| tokio::spawn(call_loop(addr.to_owned(), None, warm, end)))
            .collect();
        tokio::time::sleep_until(warm.into()).await;
        before = cpu_s(pid);
        futures::future::join_all(tasks).await
    });
    let cpu = cpu_s(pid) - before;
    let (mut latencies, mut failures) = (Vec::new(), 0);
    for r in results {
        let (l, f) = r.unwrap();
        latencies.extend(l);
        failures += f;
    }
    let n = latencies.len() as f64;
    (
        latencies,
        n / MEASURE.as_secs_f64(),
        cpu / n * 1e6,
        failures,
    )
}

fn main() {
    let cli = cargo_build(
        &["-p", "mcp-registry-host", "--bin", "mcp-registry"],
        "mcp-registry",
    );
    let server = cargo_build(&["-p", "mcp-test-server"], "mcp-test-server");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("audit.key");
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        std::fs::write(
            &key,
            secret.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
    }
    let entry = json!({"command": server.display().to_string()});
    let labelled = json!({"command": server.display().to_string(),
                          "labels": {"confidentiality": "private"}});
    let setups: Vec<(&str, Value)> = vec![
        ("nothing on", json!({"mcpServers": {"s": entry}})),
        (
            "labels (flow control)",
            json!({"mcpServers": {"s": labelled}}),
        ),
        (
            "pins",
            json!({"mcpServers": {"s": entry}, "pins": "quarantine"}),
        ),
        (
            "audit log",
            json!({"mcpServers": {"s": entry}, "audit": "audit-only.jsonl"}),
        ),
        (
            "labels + pins + signed audit log",
            json!({"mcpServers": {"s": labelled}, "pins": "quarantine",
                   "audit": {"file": "audit-all.jsonl", "key": key.display().to_string()}}),
        ),
    ];
    let mut rows: Vec<(Vec<f64>, f64, f64, usize)> = vec![(Vec::new(), 0.0, 0.0, 0); setups.len()];
    for _ in 0..ROUNDS {
        for (i, (name, registry)) in setups.iter().enumerate() {
            let config = dir.path().join(format!("registry-{i}.json"));
            std::fs::write(&config, registry.to_string()).unwrap();
            let (running, addr) = serve(&cli, &config);
            let (latencies, rate, cpu, failures) = measure(&addr, running.0.id());
            eprintln!("{name}: {rate:.0} calls/s");
            let row = &mut rows[i];
            row.0.extend(latencies);
            row.1 += rate / ROUNDS as f64;
            row.2 += cpu / ROUNDS as f64;
            row.3 += failures;
        }
    }
    let base_cpu = rows[0].2;
    let mut report = format!(
        "{:<36} {:>9} {:>9} {:>9} {:>12} {:>9} {:>9}\n",
        "serve --http, plain call",
        "calls/s",
        "p50 us",
        "p99 us",
        "CPU/call us",
        "CPU x",
        "failures"
    );
    for ((name, _), (latencies, rate, cpu, failures)) in setups.iter().zip(&rows) {
        report.push_str(&format!(
            "{name:<36} {rate:>9.0} {:>9.0} {:>9.0} {cpu:>12.0} {:>9.3} {failures:>9}\n",
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
            cpu / base_cpu,
        ));
    }
    print!("{report}");
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("guards.txt"), report).unwrap();
}
