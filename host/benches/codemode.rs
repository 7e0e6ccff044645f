//! Code mode side by side in one run: `serve --code-mode` against FastMCP 4.1.6's `CodeMode`
//! (Python snippets in Monty, over `create_proxy`, its defaults), both over the same registry
//! file and upstreams, both driven by the Python `mcp` 2.3 client over stdio
//! (`bench/codemode_client.py`); the same work as plain calls through `serve`; the size of
//! the tool list a model reads (bytes, and o200k tokens) plain and in code mode; in process,
//! a fresh engine instance running `return 1` (and Python's `1`); resident memory with 50
//! snippets at once in each language; Python snippets through `serve` beside JavaScript's.
//! Release build. Writes `target/bench/codemode.txt`. Numbers only: nothing asserts a
//! threshold.

#[path = "common/mod.rs"]
mod common;
use common::{cargo_build, percentile, root};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_registry_host::client::ConnectHooks;
use mcp_registry_host::codemode::{CodeMode, CodeModePolicy, Language, Scope};
use mcp_registry_host::config::{Registry, ServerConfig};
use mcp_registry_host::plugin::{PluginHost, SessionRouter};
use mcp_registry_host::Aggregator;
use serde_json::{json, Value};

/// Runs the Python driver against `command` with `cases`.
fn drive(python: &Path, command: &[String], cases: Value, cache: &Path) -> Value {
    let spec = json!({"command": command, "cases": cases});
    let out = Command::new(python)
        .arg(root().join("bench/codemode_client.py"))
        .arg(spec.to_string())
        .env("MCP_REGISTRY_CACHE_DIR", cache)
        .stderr(Stdio::inherit())
        .output()
        .expect("run bench/codemode_client.py");
    assert!(out.status.success(), "codemode_client.py failed");
    serde_json::from_slice(&out.stdout).expect("driver output is JSON")
}

fn tokens(text: &str) -> usize {
    static BPE: std::sync::OnceLock<tiktoken_rs::CoreBPE> = std::sync::OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().expect("o200k tokenizer"))
        .encode_ordinary(text)
        .len()
}

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// In process: engine load (cold and cached), `return 1` in a fresh instance, and memory
/// with 50 snippets waiting on a tool call at once.
fn in_process(server: &Path, cache: &Path, report: &mut String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let registry = Registry::from_servers([(
            "alpha".to_owned(),
            ServerConfig::new(server.display().to_string(), Vec::<String>::new()),
        )]);
        let aggregator = Aggregator::new(registry);
        let host = PluginHost::new(aggregator.clone(), Some(cache.to_owned())).unwrap();
        let t = Instant::now();
        let engine = CodeMode::load(&host, Some(cache), CodeModePolicy::default()).await.unwrap();
        let cold = t.elapsed();
        let t = Instant::now();
        let _again = CodeMode::load(&host, Some(cache), CodeModePolicy::default()).await.unwrap();
        let cached = t.elapsed();
        let mut ms = Vec::new();
        for i in 0..1050 {
            let t = Instant::now();
            let run = engine.execute(&host, "return 1", Language::TypeScript, Scope::default(), None).await;
            if i >= 50 {
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            assert!(run.succeeded(), "{:?}", run.error);
        }
        let _ = writeln!(
            report,
            "engine load: {:.0} ms cold (pre-initialise + compile, once per engine build), {:.1} ms from the cache",
            cold.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3
        );
        let _ = writeln!(
            report,
            "in process, `return 1` in a fresh instance (store + instantiate + run, no MCP): p50 {:.3} ms  p99 {:.3} ms  (1000 runs)",
            percentile(&ms, 0.5),
            percentile(&ms, 0.99)
        );
        let t = Instant::now();
        let first = engine.execute(&host, "1", Language::Python, Scope::default(), None).await;
        assert!(first.succeeded(), "{:?}", first.error);
        let python_load = t.elapsed();
        let mut ms = Vec::new();
        for i in 0..1050 {
            let t = Instant::now();
            let run = engine.execute(&host, "1", Language::Python, Scope::default(), None).await;
            if i >= 50 {
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            assert!(run.succeeded(), "{:?}", run.error);
        }
        let _ = writeln!(
            report,
            "Python engine load at its first snippet: {:.0} ms (compiled once, then from the cache); in process, Python `1` in a fresh instance: p50 {:.3} ms  p99 {:.3} ms  (1000 runs)",
            python_load.as_secs_f64() * 1e3,
            percentile(&ms, 0.5),
            percentile(&ms, 0.99)
        );
        // 50 snippets at once, each awaiting a 1.5 s call on one shared connection.
        let session = Arc::new(aggregator.lazy_session_of(&["alpha"], ConnectHooks::default()));
        let router: SessionRouter = {
            let session = session.clone();
            Arc::new(move |s: &str| (s == "alpha").then(|| session.clone()))
        };
        let scope = Scope {
            servers: vec!["alpha".into()],
            sessions: Some(router),
            ..Scope::default()
        };
        for (language, warm_code, code) in [
            (
                Language::TypeScript,
                "return await tools.alpha.echo({message: 'x'})",
                "const r = await tools.alpha.sleep({ms: 1500}); return typeof r;",
            ),
            (
                Language::Python,
                "await tools.alpha.echo(message='x')",
                "r = await tools.alpha.sleep(ms=1500)\ntype(r).__name__",
            ),
        ] {
            let warm = engine
                .execute(&host, warm_code, language, scope.clone(), None)
                .await;
            assert!(warm.succeeded(), "{:?}", warm.error);
            let before = rss_kib();
            let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
            let sampler = {
                let peak = peak.clone();
                tokio::spawn(async move {
                    loop {
                        peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            };
            let runs = futures::future::join_all(
                (0..50).map(|_| engine.execute(&host, code, language, scope.clone(), None)),
            )
            .await;
            sampler.abort();
            let ok = runs.iter().filter(|r| r.succeeded()).count();
            let grown = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(before);
            let _ = writeln!(
                report,
                "{language:?}: 50 snippets at once, each awaiting a 1.5 s call: resident memory +{:.1} MiB over the idle host = {:.2} MiB per run ({ok}/50 succeeded)",
                grown as f64 / 1024.0,
                grown as f64 / 1024.0 / 50.0
            );
        }
        session.close().await;
        aggregator.shutdown().await;
    });
}

fn ms_row(report: &mut String, label: &str, case: &Value) {
    let ms: Vec<f64> = case["ms"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let error = case["error"]
        .as_str()
        .map(|e| format!("  error: {}", e.replace('\n', " ")))
        .unwrap_or_default();
    let _ = writeln!(
        report,
        "{label:<58} {:>10.2} {:>10.2} {:>4}{error}",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.len()
    );
}

fn main() {
    let server = cargo_build(&["-p", "mcp-test-server"], "mcp-test-server");
    let cli = cargo_build(
        &["-p", "mcp-registry-host", "--bin", "mcp-registry"],
        "mcp-registry",
    );
    let peers = root().join(".peers");
    let python = peers.join("venv/bin/python");
    let fastmcp = peers.join("fastmcp-venv/bin/python");
    let node = peers.join("node_modules/.bin/node");
    let npm = peers.join("node_modules/@modelcontextprotocol");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mut report = String::new();

    in_process(&server, &cache, &mut report);
    eprint!("{report}");

    // The tool list a model reads: the whole registry plainly, and code mode's two tools.
    let mut big: Vec<(String, Value)> = Vec::new();
    if node.exists() && python.exists() {
        let node = node.display().to_string();
        let js = |p: &str| npm.join(p).join("dist/index.js").display().to_string();
        big.push((
            "everything".into(),
            json!({"command": node, "args": [js("server-everything")]}),
        ));
        big.push((
            "memory".into(),
            json!({"command": node, "args": [js("server-memory")],
            "env": {"MEMORY_FILE_PATH": dir.path().join("memory.json")}}),
        ));
        big.push((
            "filesystem".into(),
            json!({"command": node, "args": [js("server-filesystem"), dir.path()]}),
        ));
        big.push((
            "time".into(),
            json!({"command": peers.join("venv/bin/mcp-server-time")}),
        ));
    }
    let write_registry = |name: &str, servers: &[(String, Value)]| -> PathBuf {
        let path = dir.path().join(name);
        let map: serde_json::Map<String, Value> = servers.iter().cloned().collect();
        std::fs::write(&path, json!({"mcpServers": map}).to_string()).unwrap();
        path
    };
    let cli_s = cli.display().to_string();
    let serve = |registry: &Path, extra: &[&str]| -> Vec<String> {
        let mut argv = vec![
            cli_s.clone(),
            "--config".into(),
            registry.display().to_string(),
            "serve".into(),
        ];
        argv.extend(extra.iter().map(|s| s.to_string()));
        argv
    };
    let fastmcp_argv = |registry: &Path| -> Vec<String> {
        vec![
            fastmcp.display().to_string(),
            root()
                .join("bench/fastmcp_codemode.py")
                .display()
                .to_string(),
            registry.display().to_string(),
        ]
    };
    let have_fastmcp = fastmcp.exists() && root().join("bench/fastmcp_codemode.py").exists();
    if !big.is_empty() {
        let registry = write_registry("big.json", &big);
        let _ = writeln!(report, "\ntool list a model reads (registry: server-everything, server-memory, server-filesystem, mcp-server-time)");
        let _ = writeln!(
            report,
            "{:<58} {:>10} {:>10} {:>6}",
            "listing", "bytes", "o200k tok", "tools"
        );
        let mut rows = vec![
            ("serve, plain tools".to_owned(), serve(&registry, &[])),
            (
                "serve --code-mode=only (search, execute)".to_owned(),
                serve(&registry, &["--code-mode=only"]),
            ),
        ];
        if have_fastmcp {
            rows.push(("FastMCP 4.1.6 CodeMode".to_owned(), fastmcp_argv(&registry)));
        }
        for (label, argv) in rows {
            let listed = drive(&python, &argv, json!([]), &cache);
            let text = listed["tools"].to_string();
            let _ = writeln!(
                report,
                "{label:<58} {:>10} {:>10} {:>6}",
                text.len(),
                tokens(&text),
                listed["tools"].as_array().map_or(0, Vec::len)
            );
        }
        // A `search` answer for one task, as the model would then read it.
        let found = drive(
            &python,
            &serve(&registry, &["--code-mode=only"]),
            json!([{"name": "search", "tool": "search", "arguments": {"query": "read a file"}, "n": 1}]),
            &cache,
        );
        let _ = found;
    }

    // Latency: the same registry of two test servers under both.
    let small = write_registry(
        "small.json",
        &[
            ("alpha".into(), json!({"command": server})),
            ("beta".into(), json!({"command": server})),
        ],
    );
    let twenty = "let n = 0; for (let i = 0; i < 20; i++) { n += (await tools.alpha.echo({message: 'x'})).length; } return n;";
    let py_twenty =
        "n = 0\nfor i in range(20):\n    n += len(await tools.alpha.echo(message='x'))\nn";
    let ours_cases = json!([
        {"name": "plain", "tool": "alpha__echo", "arguments": {"message": "x"}, "n": 300, "warmup": 20},
        {"name": "return1", "tool": "execute", "arguments": {"code": "return 1"}, "n": 300, "warmup": 20},
        {"name": "one", "tool": "execute", "arguments": {"code": "return await tools.alpha.echo({message: 'x'})"}, "n": 200, "warmup": 10},
        {"name": "twenty", "tool": "execute", "arguments": {"code": twenty}, "n": 30, "warmup": 3},
        {"name": "gather", "tool": "execute", "arguments": {"code": "await Promise.all([1,2,3,4,5].map(() => tools.alpha.sleep({ms: 300}))); return 5;"}, "n": 5, "warmup": 1},
        {"name": "py_return1", "tool": "execute", "arguments": {"code": "1", "language": "python"}, "n": 300, "warmup": 20},
        {"name": "py_one", "tool": "execute", "arguments": {"code": "await tools.alpha.echo(message='x')", "language": "python"}, "n": 200, "warmup": 10},
        {"name": "py_twenty", "tool": "execute", "arguments": {"code": py_twenty, "language": "python"}, "n": 30, "warmup": 3},
        {"name": "runaway", "tool": "execute", "arguments": {"code": "while (true) {}"}, "n": 1},
        {"name": "after", "tool": "execute", "arguments": {"code": "return 1"}, "n": 50},
    ]);
    let ours = drive(
        &python,
        &serve(&small, &["--code-mode"]),
        ours_cases,
        &cache,
    );
    let _ = writeln!(
        report,
        "\nthrough serve over stdio, Python mcp 2.3 client (upstreams: two workspace test servers)"
    );
    let _ = writeln!(
        report,
        "{:<58} {:>10} {:>10} {:>4}",
        "case", "p50 ms", "p99 ms", "n"
    );
    let c = &ours["cases"];
    ms_row(&mut report, "serve: plain call alpha__echo", &c["plain"]);
    ms_row(
        &mut report,
        "serve --code-mode: execute `return 1`",
        &c["return1"],
    );
    ms_row(&mut report, "serve --code-mode: execute, 1 call", &c["one"]);
    ms_row(
        &mut report,
        "serve --code-mode: execute, 20 sequential calls",
        &c["twenty"],
    );
    ms_row(
        &mut report,
        "serve --code-mode: execute, 5 x 300 ms sleeps in Promise.all",
        &c["gather"],
    );
    ms_row(
        &mut report,
        "serve --code-mode: Python execute `1`",
        &c["py_return1"],
    );
    ms_row(
        &mut report,
        "serve --code-mode: Python execute, 1 call",
        &c["py_one"],
    );
    ms_row(
        &mut report,
        "serve --code-mode: Python execute, 20 sequential calls",
        &c["py_twenty"],
    );
    ms_row(
        &mut report,
        "serve --code-mode: runaway `while (true) {}` (30 s deadline)",
        &c["runaway"],
    );
    ms_row(
        &mut report,
        "serve --code-mode: `return 1` right after the runaway",
        &c["after"],
    );
    let p = |case: &str| {
        percentile(
            &c[case]["ms"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_f64)
                .collect::<Vec<_>>(),
            0.5,
        )
    };
    let plain = p("plain");
    let per_call_one = p("one") - p("return1");
    let per_call_twenty = (p("twenty") - p("return1")) / 20.0;
    let _ = writeln!(
        report,
        "a call inside a snippet costs {:.2} ms (1 call) / {:.2} ms (each of 20) over `return 1`: {:.2}x / {:.2}x a plain call through serve ({plain:.2} ms)",
        per_call_one,
        per_call_twenty,
        per_call_one / plain,
        per_call_twenty / plain
    );
    let py_one = p("py_one") - p("py_return1");
    let py_twenty = (p("py_twenty") - p("py_return1")) / 20.0;
    let _ = writeln!(
        report,
        "a call inside a Python snippet costs {:.2} ms (1 call) / {:.2} ms (each of 20) over `1`: {:.2}x / {:.2}x a plain call (goal: at most 2x)",
        py_one,
        py_twenty,
        py_one / plain,
        py_twenty / plain
    );
    eprint!("{report}");

    if have_fastmcp {
        let cases = fastmcp_cases();
        let theirs = drive(&python, &fastmcp_argv(&small), cases, &cache);
        let t = &theirs["cases"];
        let _ = writeln!(report, "\nFastMCP 4.1.6 CodeMode over create_proxy (its defaults), same client, same registry file");
        ms_row(&mut report, "FastMCP: execute `return 1`", &t["return1"]);
        ms_row(&mut report, "FastMCP: execute, 1 call", &t["one"]);
        ms_row(
            &mut report,
            "FastMCP: execute, 20 sequential calls",
            &t["twenty"],
        );
        ms_row(
            &mut report,
            "FastMCP: execute, 5 x 300 ms sleeps concurrently",
            &t["gather"],
        );
        ms_row(
            &mut report,
            "FastMCP: runaway `while True: pass`",
            &t["runaway"],
        );
        ms_row(
            &mut report,
            "FastMCP: `return 1` right after the runaway",
            &t["after"],
        );
        let theirs_p50 = percentile(
            &t["return1"]["ms"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect::<Vec<_>>())
                .unwrap_or_default(),
            0.5,
        );
        let _ = writeln!(
            report,
            "execute `return 1` p50: serve {:.2} ms vs FastMCP {:.2} ms ({:.2}x)",
            p("return1"),
            theirs_p50,
            p("return1") / theirs_p50
        );
        let _ = writeln!(
            report,
            "Python execute `1` p50 (both Monty): serve {:.2} ms vs FastMCP {:.2} ms ({:.2}x; goal: at most 0.5x)",
            p("py_return1"),
            theirs_p50,
            p("py_return1") / theirs_p50
        );
    } else {
        let _ = writeln!(report, "\nFastMCP 4.1.6 not installed (.peers/fastmcp-venv): its rows are skipped (scripts/bench.sh installs it)");
    }
    print!("{report}");
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("codemode.txt"), &report).unwrap();
}

/// FastMCP's snippets for the same cases (Python, run by Monty; `call_tool` is its one
/// binding, and the proxy names a mounted server's tools `server_tool`). Fewer samples: each
/// call there starts fresh upstream processes.
fn fastmcp_cases() -> Value {
    let twenty = "n = 0\nfor i in range(20):\n    n += len(await call_tool(\"alpha_echo\", {\"message\": \"x\"}))\nreturn n";
    json!([
        {"name": "return1", "tool": "execute", "arguments": {"code": "return 1"}, "n": 100, "warmup": 5},
        {"name": "one", "tool": "execute", "arguments": {"code": "return await call_tool(\"alpha_echo\", {\"message\": \"x\"})"}, "n": 10, "warmup": 1},
        {"name": "twenty", "tool": "execute", "arguments": {"code": twenty}, "n": 3},
        {"name": "gather", "tool": "execute", "arguments": {"code": "import asyncio\nawait asyncio.gather(*[call_tool(\"alpha_sleep\", {\"ms\": 300}) for _ in range(5)])\nreturn 5"}, "n": 3},
        {"name": "runaway", "tool": "execute", "arguments": {"code": "while True:\n    pass"}, "n": 1},
        {"name": "after", "tool": "execute", "arguments": {"code": "return 1"}, "n": 20},
    ])
}
