//! Side by side, in one run on one machine: the seed (Python mcp-registry 0.9.2), raw MCP
//! clients (rmcp, Python `mcp` ClientSession), this project's modes, and the pipe floor, on
//! three servers (the Rust test server, a Python FastMCP echo server, and the test server
//! with a 300 ms start-up). Writes `target/bench/results.json`; `scripts/bench.sh` turns it
//! into BENCHMARKS.md and a plot.
//!
//! Run through `scripts/bench.sh` (it installs the seed's virtualenv first). Numbers only:
//! nothing here asserts a threshold.

#[path = "common/mod.rs"]
mod common;
use common::{cargo_build, root};

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_registry_host::config::{Registry, ServerConfig};
use mcp_registry_host::plugin::{Plugin, PluginHost, PluginPolicy};
use mcp_registry_host::Aggregator;
use rmcp::model::CallToolRequestParams;
use rmcp::ServiceExt;
use serde_json::{json, Value};

/// One benchmarked server.
struct Server {
    label: &'static str,
    command: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Calls for persistent modes / temporary modes.
    n: usize,
    n_temp: usize,
}

impl Server {
    /// The registry entry of this server as both CLIs read it (the seed's shape: `type`,
    /// non-empty `args`).
    fn seed_entry(&self, pid_file: &Path) -> Value {
        let mut entry = self.json(pid_file);
        entry.as_object_mut().map(|e| e.remove("name"));
        entry["type"] = json!("stdio");
        if self.args.is_empty() {
            entry["args"] = json!(["-"]);
        }
        entry
    }

    fn config(&self, pid_file: &Path) -> ServerConfig {
        let mut c = ServerConfig::new(self.command.clone(), self.args.clone());
        c.env.extend(self.env.iter().cloned());
        c.env
            .insert("MCP_TEST_PID_FILE".into(), pid_file.display().to_string());
        c
    }
    fn json(&self, pid_file: &Path) -> Value {
        let mut env: serde_json::Map<String, Value> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        env.insert(
            "MCP_TEST_PID_FILE".into(),
            json!(pid_file.display().to_string()),
        );
        json!({"name": "s", "command": self.command, "args": self.args, "env": env})
    }
}

/// Runs a command to its end with its output discarded; its wall time in µs.
fn whole_process(cmd: &mut Command) -> f64 {
    let t = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the CLI");
    let us = t.elapsed().as_secs_f64() * 1e6;
    assert!(status.success(), "{cmd:?} failed: {status}");
    us
}

struct Row {
    server: &'static str,
    mode: &'static str,
    us: Vec<f64>,
    spawns_per_call: Option<f64>,
}

fn pids(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn python_driver(python: &Path, mode: &str, n: usize, server: &Value, tool: &str) -> Vec<f64> {
    let out = Command::new(python)
        .arg(root().join("bench/drivers.py"))
        .args([mode, &n.to_string(), &server.to_string(), tool])
        .stderr(Stdio::inherit())
        .output()
        .expect("run the Python driver");
    assert!(out.status.success(), "driver {mode} failed");
    let v: Value = serde_json::from_slice(&out.stdout).expect("driver prints JSON");
    v["us"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect()
}

fn pipe_floor(n: usize) -> Vec<f64> {
    let mut cat = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = cat.stdin.take().unwrap();
    let mut stdout = BufReader::new(cat.stdout.take().unwrap());
    let line = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"message": "x"}}})
    .to_string()
        + "\n";
    let mut buf = String::new();
    let mut out = Vec::new();
    for i in 0..n + 100 {
        let t = Instant::now();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        buf.clear();
        stdout.read_line(&mut buf).unwrap();
        if i >= 100 {
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(stdin);
    let _ = cat.wait();
    out
}

/// The same round trip through tokio's async pipes (what an async stdio client pays for the
/// reactor and a task wake-up, before any JSON-RPC work).
async fn pipe_floor_async(n: usize) -> Vec<f64> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut cat = tokio::process::Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = cat.stdin.take().unwrap();
    let mut stdout = tokio::io::BufReader::new(cat.stdout.take().unwrap());
    let line = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"message": "x"}}})
    .to_string()
        + "\n";
    let mut buf = String::new();
    let mut out = Vec::new();
    for i in 0..n + 100 {
        let t = Instant::now();
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        buf.clear();
        stdout.read_line(&mut buf).await.unwrap();
        if i >= 100 {
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    out
}

/// Runs the probe plugin with `input` and returns the numbers under `key` of its output, each
/// divided by `divisor` (to µs per call).
async fn guest_samples(
    host: &PluginHost,
    plugin: &Plugin,
    input: Value,
    key: &str,
    divisor: f64,
) -> Vec<f64> {
    let out = host
        .run(plugin, &input.to_string(), &PluginPolicy::granting(["s"]))
        .await
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .map(|x| x / divisor)
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let test_server = cargo_build(&["-p", "mcp-test-server"], "mcp-test-server");
    let cli = cargo_build(
        &["-p", "mcp-registry-host", "--bin", "mcp-registry"],
        "mcp-registry",
    );
    let probe = cargo_build(&["--target", "wasm32-wasip2", "-p", "probe"], "probe.wasm");
    let seed_python = root().join(".peers/seed-venv/bin/python");
    let have_seed = seed_python.exists();
    if !have_seed {
        eprintln!(
            "note: {} missing; Python modes skipped (run scripts/bench.sh)",
            seed_python.display()
        );
    }
    let servers = [
        Server {
            label: "rust-test-server",
            command: test_server.display().to_string(),
            args: vec![],
            env: vec![],
            n: 1000,
            n_temp: 30,
        },
        Server {
            label: "python-fastmcp-echo",
            command: seed_python.display().to_string(),
            args: vec![root().join("bench/py_echo_server.py").display().to_string()],
            env: vec![],
            n: 300,
            n_temp: 10,
        },
        Server {
            label: "slow-start-300ms",
            command: test_server.display().to_string(),
            args: vec![],
            env: vec![("MCP_TEST_STARTUP_DELAY_MS".into(), "300".into())],
            n: 300,
            n_temp: 5,
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut rows: Vec<Row> = Vec::new();
    rows.push(Row {
        server: "(none)",
        mode: "pipe floor (cat, blocking I/O)",
        us: pipe_floor(2000),
        spawns_per_call: None,
    });
    rows.push(Row {
        server: "(none)",
        mode: "pipe floor (cat, tokio async I/O)",
        us: pipe_floor_async(2000).await,
        spawns_per_call: None,
    });

    for server in &servers {
        if server.label == "python-fastmcp-echo" && !have_seed {
            continue;
        }
        eprintln!("== {}", server.label);
        let pid_file = dir.path().join(format!("{}.pids", server.label));
        let cfg = server.config(&pid_file);
        let registry = Registry::from_servers([("s".to_string(), cfg.clone())]);
        let agg = Aggregator::new(registry);
        let args = json!({"message": "x"}).as_object().cloned();
        let mut measure = |mode: &'static str, calls: usize, f: &mut dyn FnMut() -> Vec<f64>| {
            let before = pids(&pid_file);
            let us = f();
            let spawned = pids(&pid_file) - before;
            rows.push(Row {
                server: server.label,
                mode,
                us,
                spawns_per_call: Some(spawned as f64 / calls.max(1) as f64),
            });
        };

        // Seed and Python client (subprocesses).
        if have_seed {
            let sj = server.json(&pid_file);
            measure("seed temporary", server.n_temp, &mut || {
                python_driver(
                    &seed_python,
                    "seed-temporary",
                    server.n_temp,
                    &sj,
                    "s__echo",
                )
            });
            measure("seed persistent", server.n, &mut || {
                python_driver(&seed_python, "seed-persistent", server.n, &sj, "s__echo")
            });
            measure("python mcp ClientSession", server.n, &mut || {
                python_driver(&seed_python, "py-client", server.n, &sj, "echo")
            });
        }
        // Whole CLI processes, as a user runs them, with the default configuration: ours
        // (`call`, with the era cache warm, and on first contact with an empty cache) and
        // the seed's (`test-tool`).
        {
            let config = dir.path().join(format!("{}.cli.json", server.label));
            std::fs::write(
                &config,
                json!({"mcpServers": {"s": server.seed_entry(&pid_file)}}).to_string(),
            )
            .unwrap();
            let cache = dir.path().join(format!("{}.cache", server.label));
            let ours = |cache: &Path| {
                let mut cmd = Command::new(&cli);
                cmd.env("MCP_REGISTRY_CACHE_DIR", cache)
                    .arg("--config")
                    .arg(&config)
                    .args(["call", "s__echo", r#"{"message": "x"}"#]);
                cmd
            };
            whole_process(&mut ours(&cache)); // the era is found out and remembered
            measure("ours: CLI call, whole process", server.n_temp, &mut || {
                (0..server.n_temp)
                    .map(|_| whole_process(&mut ours(&cache)))
                    .collect()
            });
            measure(
                "ours: CLI call, first contact, whole process",
                server.n_temp,
                &mut || {
                    (0..server.n_temp)
                        .map(|i| {
                            whole_process(&mut ours(&cache.with_extension(format!("fresh{i}"))))
                        })
                        .collect()
                },
            );
            if have_seed {
                let seed_cli = root().join(".peers/seed-venv/bin/mcp-registry");
                measure(
                    "seed CLI test-tool, whole process",
                    server.n_temp,
                    &mut || {
                        (0..server.n_temp)
                            .map(|_| {
                                whole_process(
                                    Command::new(&seed_cli)
                                        .env("MCP_REGISTRY_CONFIG", &config)
                                        .args([
                                            "test-tool",
                                            "s__echo",
                                            "--input",
                                            r#"{"message": "x"}"#,
                                        ])
                                        .arg("--non-interactive"),
                                )
                            })
                            .collect()
                    },
                );
            }
        }
        // Raw rmcp client.
        let raw = {
            let mut cmd = tokio::process::Command::new(&server.command);
            cmd.args(&server.args)
                .envs(server.env.iter().cloned())
                .env("MCP_TEST_PID_FILE", &pid_file);
            let transport = rmcp::transport::TokioChildProcess::new(cmd).unwrap();
            let client = ().serve(transport).await.unwrap();
            let mut us = Vec::new();
            for i in 0..server.n + 10 {
                let mut p = CallToolRequestParams::new("echo");
                p.arguments = args.clone();
                let t = Instant::now();
                client.call_tool(p).await.unwrap();
                if i >= 10 {
                    us.push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
            client.cancel().await.unwrap();
            us
        };
        rows.push(Row {
            server: server.label,
            mode: "raw rmcp client",
            us: raw,
            spawns_per_call: Some(0.0),
        });
        // Aggregator temporary.
        let before = pids(&pid_file);
        let mut us = Vec::new();
        for _ in 0..server.n_temp {
            let t = Instant::now();
            agg.call_tool("s__echo", args.clone()).await.unwrap();
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let spawned = pids(&pid_file) - before;
        rows.push(Row {
            server: server.label,
            mode: "ours: temporary call",
            us,
            spawns_per_call: Some(spawned as f64 / server.n_temp as f64),
        });
        // Aggregator session.
        let session = agg.session(&["s"]).await.unwrap();
        let mut us = Vec::new();
        for i in 0..server.n + 10 {
            let t = Instant::now();
            session.call_tool("s__echo", args.clone()).await.unwrap();
            if i >= 10 {
                us.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        session.close().await;
        rows.push(Row {
            server: server.label,
            mode: "ours: session call (Rust API)",
            us,
            spawns_per_call: Some(0.0),
        });
        // Guest session, measured inside the guest.
        let host = PluginHost::new(agg.clone(), Some(dir.path().join("cache"))).unwrap();
        let plugin = host.load_file(&probe).unwrap();
        let us = guest_samples(
            &host,
            &plugin,
            json!({"op": "latencies", "server": "s", "n": server.n, "warmup": 10}),
            "ns",
            1000.0,
        )
        .await;
        rows.push(Row {
            server: server.label,
            mode: "ours: guest (Wasm) session call",
            us,
            spawns_per_call: Some(0.0),
        });
        // Guest fan-out: batches of 10 concurrent calls; per-call cost = batch time / 10.
        let batches = (server.n / 10).max(5);
        let us = guest_samples(
            &host,
            &plugin,
            json!({"op": "concurrent_total", "server": "s", "n": 10, "batches": batches}),
            "totals_us",
            10.0,
        )
        .await;
        rows.push(Row {
            server: server.label,
            mode: "ours: guest fan-out (10 concurrent, per call)",
            us,
            spawns_per_call: Some(0.0),
        });
        // serve, driven by the Python mcp client.
        if have_seed {
            let config = dir.path().join(format!("{}.json", server.label));
            let mut env: serde_json::Map<String, Value> = server
                .env
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            env.insert(
                "MCP_TEST_PID_FILE".into(),
                json!(pid_file.display().to_string()),
            );
            std::fs::write(
                &config,
                json!({"mcpServers": {"s": {"command": server.command, "args": server.args, "env": env}}})
                .to_string(),
            )
            .unwrap();
            let sj = json!({"name": "serve", "command": cli.display().to_string(),
                            "args": ["--config", config.display().to_string(), "serve"]});
            let us = python_driver(&seed_python, "py-client", server.n, &sj, "s__echo");
            rows.push(Row {
                server: server.label,
                mode: "ours: serve (Python client)",
                us,
                spawns_per_call: None,
            });
        }
        drop(host);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Report.
    let stats = |us: &[f64]| {
        let mut s = us.to_vec();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let p = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
        (p(0.5), p(0.99), s.len())
    };
    // Ratios are to the async floor: every MCP client measured here is async.
    let floor = stats(&rows[1].us).0;
    let mut results = Vec::new();
    println!(
        "\n{:<20} {:<46} {:>11} {:>11} {:>10} {:>9} {:>9} {:>8}",
        "server", "mode", "p50 us", "p99 us", "calls/s", "vs seed", "vs floor", "spawns"
    );
    for row in &rows {
        let (p50, p99, n) = stats(&row.us);
        let seed_mode = if row.mode.contains("CLI") {
            "seed CLI test-tool, whole process"
        } else if row.mode.contains("temporary") {
            "seed temporary"
        } else {
            "seed persistent"
        };
        let seed = rows
            .iter()
            .find(|r| r.server == row.server && r.mode == seed_mode)
            .map(|r| stats(&r.us).0);
        let vs_seed = seed.map(|s| s / p50);
        println!(
            "{:<20} {:<46} {:>11.1} {:>11.1} {:>10.0} {:>9} {:>9.1} {:>8}",
            row.server,
            row.mode,
            p50,
            p99,
            1e6 / p50,
            vs_seed
                .map(|v| format!("{v:.1}x"))
                .unwrap_or_else(|| "-".into()),
            p50 / floor,
            row.spawns_per_call
                .map(|s| format!("{s:.1}"))
                .unwrap_or_else(|| "-".into())
        );
        results.push(json!({
            "server": row.server, "mode": row.mode, "p50_us": p50, "p99_us": p99, "n": n,
            "calls_per_sec": 1e6 / p50, "speedup_vs_seed": vs_seed, "ratio_to_floor": p50 / floor,
            "spawns_per_call": row.spawns_per_call,
        }));
    }
    let out_dir = root().join("target/bench");
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();
    println!("\nwrote {}", out_dir.join("results.json").display());
}
