//! Code mode (`mcp-registry exec`, `serve --code-mode`): snippets a model writes, run as
//! sandboxed guests against real server processes.
//!
//! Hostile snippets run through `exec` (one process each, like a model's worst tries);
//! real servers (npm `server-everything`, `server-memory`, `server-filesystem`) are driven
//! through `exec`; the TypeScript and Python SDK clients drive `serve --code-mode` over
//! stdio: `search`, then `execute`, a runaway snippet beside a good one, in JavaScript and
//! in Python (`codemode_python.rs` has Python's own cases), with progress.
//!
//! The engine snapshot and its compiled form are cached in one directory for the whole test
//! binary (`support::code_mode_cache`, made once), as a user's cache would be.

use std::process::{Command, Stdio};

use crate::support::*;
use serde_json::{json, Value};

/// A registry of two test servers, `alpha` and `beta`.
pub(crate) fn test_servers() -> Scratch {
    let server = test_server().display().to_string();
    Scratch::new(json!({
        "alpha": {"command": server},
        "beta": {"command": server},
    }))
}

/// `exec ARGS -` running `code` (the engines compiled once for the whole test process), its
/// output piped.
pub(crate) fn exec_child(s: &Scratch, code: &str, args: &[&str]) -> std::process::Child {
    use std::io::Write;
    let mut child = s
        .cli(&["exec"])
        .args(args)
        .arg("-")
        .env("MCP_REGISTRY_CACHE_DIR", code_mode_cache())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(code.as_bytes())
        .unwrap();
    child
}

/// `exec` of `code` with `args`; its JSON record and whether it exited 0.
pub(crate) fn exec(s: &Scratch, code: &str, args: &[&str]) -> (Value, bool) {
    let out = exec_child(s, code, args).wait_with_output().unwrap();
    let record: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "exec printed no JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (record, out.status.success())
}

/// The error of a failed run (and checks it failed).
pub(crate) fn failure(s: &Scratch, code: &str, args: &[&str]) -> Value {
    let (record, ok) = exec(s, code, args);
    assert!(!ok, "{code} should fail: {record}");
    assert!(record.get("value").is_none(), "{record}");
    record["error"].clone()
}

/// The value of a successful run.
pub(crate) fn value(s: &Scratch, code: &str) -> Value {
    let (record, ok) = exec(s, code, &[]);
    assert!(ok, "{code} failed: {record}");
    record["value"].clone()
}

#[test]
fn a_snippet_calls_tools_chained_and_concurrently_with_a_trace() {
    let s = test_servers();
    let (record, ok) = exec(
        &s,
        "const a = await tools.alpha.echo({message: 'one'});\n\
         const [x, y] = await Promise.all([tools.alpha.counter({}), tools.beta.counter({})]);\n\
         const again = await tools.alpha.counter({});\n\
         console.log('got', a, x, y);\n\
         return {a, x, y, again};",
        &[],
    );
    assert!(ok, "{record}");
    // One process per server for the run: alpha's counter goes on from 1 to 2.
    assert_eq!(
        record["value"],
        json!({"a": "one", "x": 1, "y": 1, "again": 2})
    );
    assert_eq!(
        record["console"],
        json!([{"level": "log", "text": "got one 1 1"}])
    );
    let calls: Vec<&str> = record["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tool"].as_str().unwrap())
        .collect();
    assert_eq!(calls.len(), 4, "{record}");
    assert!(calls.contains(&"beta__counter"));
    assert!(record["calls"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["outcome"] == "ok" && c["ms"].as_f64().is_some()));
}

#[test]
fn concurrent_calls_overlap_upstream() {
    let s = test_servers();
    let (record, ok) = exec(
        &s,
        "const pids = await Promise.all([1,2,3,4,5].map(() => tools.alpha.sleep({ms: 400})));\n\
         return {count: pids.length, most: await tools.alpha.most_sleeping()};",
        &[],
    );
    assert!(ok, "{record}");
    assert_eq!(record["value"]["count"], 5);
    // The test server counts the sleeps it had in progress at once (the run's one process).
    assert_eq!(
        record["value"]["most"], 5,
        "the calls did not overlap: {record}"
    );
}

#[test]
fn tool_errors_are_exceptions_with_their_kind() {
    let s = test_servers();
    let v = value(
        &s,
        "const out = {};\n\
         for (const [k, f] of [['fail', () => tools.alpha.fail({message: 'upstream words'})],\n\
                               ['missing', () => tools.alpha.nope({})],\n\
                               ['invalid', () => tools.alpha.echo(undefined)],\n\
                               ['crash', () => tools.alpha.crash({})]]) {\n\
           try { await f(); out[k] = 'no error'; }\n\
           catch (e) { out[k] = [e.name, e.kind, e.tool, e instanceof Error]; }\n\
         }\n\
         return out;",
    );
    assert_eq!(
        v["fail"],
        json!(["ToolError", "tool-error", "alpha__fail", true])
    );
    assert_eq!(v["missing"][1], "not-found", "{v}");
    assert_eq!(v["crash"][1], "server-failed", "{v}");
    // `echo` without its `message`: the server refuses the arguments.
    assert_eq!(v["invalid"][0], "ToolError", "{v}");
}

#[test]
fn typescript_syntax_is_accepted() {
    let s = test_servers();
    let v = value(
        &s,
        "interface Echo { message: string }\n\
         enum Color { Red, Green }\n\
         const args: Echo = { message: 'typed' };\n\
         const out = (await tools.alpha.echo(args)) as string;\n\
         function twice<T>(x: T): T[] { return [x, x]; }\n\
         return { out, green: Color.Green, pair: twice<number>(2) };",
    );
    assert_eq!(v, json!({"out": "typed", "green": 1, "pair": [2, 2]}));
}

#[test]
fn a_syntax_error_names_line_and_column() {
    let s = test_servers();
    let e = failure(&s, "const a = 1;\nconst b = (;\nreturn a;", &[]);
    assert_eq!(e["name"], "SyntaxError", "{e}");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(2), Some(12)),
        "{e}"
    );
    let e = failure(&s, "const a = 1;\n\n  throw new Error('mine');", &[]);
    assert_eq!(e["message"], "mine");
    assert_eq!(e["line"], 3, "{e}");
    // In TypeScript too: the mistake on line 3, not the first annotation on line 1 (where
    // the engine stops when the types could not be stripped); message and fields agree.
    let e = failure(
        &s,
        "const a: number = 1;\nconst b: string = 'x';\nconst c = a + ;\nreturn c;",
        &[],
    );
    assert_eq!(e["name"], "SyntaxError", "{e}");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(3), Some(15)),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .ends_with("at line 3, col 15"),
        "{e}"
    );
}

#[test]
fn a_runaway_loop_is_stopped_by_the_deadline() {
    let s = test_servers();
    let e = failure(&s, "while (true) {}", &["--timeout", "2"]);
    assert_eq!(
        (e["name"].as_str(), e["kind"].as_str()),
        (Some("TimeoutError"), Some("timeout")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("2000 ms"), "{e}");
}

#[test]
fn memory_bombs_hit_the_memory_limit() {
    let s = test_servers();
    for code in [
        "return 'x'.repeat(100 * 1024 * 1024);",
        "const keep = []; for (;;) keep.push('y'.repeat(1 << 20) + keep.length);",
    ] {
        let e = failure(&s, code, &[]);
        assert_eq!(e["kind"], "limit", "{code}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains("MiB of memory"),
            "{code}: {e}"
        );
    }
}

#[test]
fn deep_recursion_is_a_range_error() {
    let s = test_servers();
    let e = failure(
        &s,
        "function f(n) { return f(n + 1) + 1; }\nreturn f(0);",
        &[],
    );
    assert_eq!(e["name"], "RangeError", "{e}");
    assert!(e["message"].as_str().unwrap().contains("recursi"), "{e}");
}

#[test]
fn a_call_flood_stops_at_the_call_limit() {
    let s = test_servers();
    // Past the in-flight bound calls wait their turn; past the run's call budget they fail.
    let v = value(
        &s,
        "const r = await Promise.all(Array.from({length: 100}, (_, i) => tools.alpha.echo({message: `m${i}`})));\n\
         return r.length;",
    );
    assert_eq!(v, 100);
    let e = failure(
        &s,
        "await Promise.all(Array.from({length: 5000}, () => tools.alpha.echo({message: 'x'})));",
        &[],
    );
    assert_eq!(e["kind"], "limit", "{e}");
    assert!(e["message"].as_str().unwrap().contains("max_calls"), "{e}");
}

#[test]
fn the_sandbox_has_no_host_and_is_deterministic() {
    let s = test_servers();
    let code = "return {\n\
          globals: [typeof process, typeof require, typeof fetch, typeof Deno, typeof XMLHttpRequest],\n\
          evaluated: eval('1 + 1'),\n\
          made: new Function('return typeof process')(),\n\
          now: Date.now(),\n\
          random: [Math.random(), Math.random()],\n\
        };";
    let first = value(&s, code);
    assert_eq!(
        first["globals"],
        json!([
            "undefined",
            "undefined",
            "undefined",
            "undefined",
            "undefined"
        ])
    );
    assert_eq!(
        (first["evaluated"].as_i64(), first["made"].as_str()),
        (Some(2), Some("undefined"))
    );
    assert_eq!(
        first["now"], 0,
        "the clock is frozen at the epoch by default"
    );
    assert_eq!(
        value(&s, code),
        first,
        "two runs see the same clock and randomness"
    );
    // Granted, randomness differs per run (a snapshot must not freeze it).
    let random = |s: &Scratch| exec(s, "return Math.random()", &["--random"]).0["value"].clone();
    assert_ne!(random(&s), random(&s));
}

#[test]
fn a_server_not_granted_reads_like_one_that_does_not_exist() {
    let s = test_servers();
    let outcome = |server: &str| {
        let code = format!(
            "try {{ await tools.{server}.echo({{message: 'x'}}); }} catch (e) {{ return [e.kind, e.message]; }}"
        );
        exec(&s, &code, &["--server", "alpha"]).0["value"].clone()
    };
    let beta = outcome("beta");
    let nowhere = outcome("nowhere");
    assert_eq!(beta[0], "denied", "{beta}");
    assert_eq!(nowhere[0], "denied", "{nowhere}");
    assert_eq!(
        beta[1].as_str().unwrap().replace("beta", "X"),
        nowhere[1].as_str().unwrap().replace("nowhere", "X")
    );
}

#[test]
fn prototype_pollution_does_not_reach_the_next_run() {
    let s = test_servers();
    let v = value(
        &s,
        "Object.prototype.polluted = 'yes'; Array.prototype.map = null; JSON.parse = () => 1; return 'done';",
    );
    assert_eq!(v, "done");
    let v = value(
        &s,
        "return [({}).polluted ?? 'clean', typeof [].map, JSON.parse('2')];",
    );
    assert_eq!(v, json!(["clean", "function", 2]));
}

/// A registry of npm servers (everything, memory, filesystem over `dir`), or `None` to skip.
fn npm_servers(dir: &std::path::Path) -> Option<Scratch> {
    let peers = peers_dir();
    let node = peer(
        peers.join("node_modules/.bin/node"),
        "Node 22 (npm node@22)",
    )?;
    let npm = peers.join("node_modules/@modelcontextprotocol");
    let server = |package: &str| -> Option<String> {
        peer(npm.join(package).join("dist/index.js"), package).map(|p| p.display().to_string())
    };
    let node = node.display().to_string();
    Some(Scratch::new(json!({
        "everything": {"command": node, "args": [server("server-everything")?]},
        "memory": {"command": node, "args": [server("server-memory")?],
                   "env": {"MEMORY_FILE_PATH": dir.join("memory.json").display().to_string()}},
        "filesystem": {"command": node, "args": [server("server-filesystem")?, dir.display().to_string()]},
    })))
}

#[test]
fn real_servers_through_a_snippet() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..40 {
        std::fs::write(
            dir.path().join(format!("file{i}.txt")),
            format!("line {i}\n").repeat(2000),
        )
        .unwrap();
    }
    let Some(s) = npm_servers(dir.path()) else {
        return;
    };
    let root = dir.path().display().to_string();
    let code = format!(
        "const root = {root:?};\n\
         // Chained: write to the memory graph, read it back.\n\
         await tools.memory.create_entities({{entities: [{{name: 'Ada', entityType: 'person', observations: ['wrote code']}}]}});\n\
         const graph = await tools.memory.read_graph({{}});\n\
         // Concurrent: server-everything's get-sum (an identifier mapped from a dashed name).\n\
         const sums = await Promise.all([1, 2, 3].map((n) => tools.everything.get_sum({{a: n, b: 10}})));\n\
         // A big result filtered in the snippet: 40 files of 16 KB, only their sizes come back.\n\
         const text = (r: any): string => (typeof r === 'string' ? r : r.content);\n\
         const listing = text(await tools.filesystem.list_directory({{path: root}}));\n\
         const names = listing.split('\\n').filter((l) => l.startsWith('[FILE]') && l.endsWith('.txt')).map((l) => l.slice(7));\n\
         const texts = await Promise.all(names.map((n) => tools.filesystem.read_text_file({{path: `${{root}}/${{n}}`}})));\n\
         const sizes = texts.map((t) => text(t).length);\n\
         // A tool error, caught.\n\
         let refused = null;\n\
         try {{ await tools.filesystem.read_text_file({{path: '/etc/passwd'}}); }} catch (e) {{ refused = e.kind; }}\n\
         return {{ people: graph.entities.map((e) => e.name), sums, files: sizes.length, bytes: sizes.reduce((a, b) => a + b, 0), refused }};"
    );
    let (record, ok) = exec(&s, &code, &[]);
    assert!(ok, "{record}");
    let v = &record["value"];
    assert_eq!(v["people"], json!(["Ada"]), "{v}");
    assert_eq!(v["sums"][2], "The sum of 3 and 10 is 13.", "{v}");
    assert_eq!(v["files"], 40, "{v}");
    assert_eq!(v["refused"], "tool-error", "{v}");
    let bytes: u64 = (0..40)
        .map(|i| format!("line {i}\n").len() as u64 * 2000)
        .sum();
    assert_eq!(v["bytes"], bytes, "{v}");
    // The 640 KB read stayed in the snippet: the answer is small.
    assert!(
        record.to_string().len() < 20_000,
        "{}",
        record.to_string().len()
    );
}

/// What a client driver printed after `search` and the batches of `execute`.
fn drive_client(program: &std::path::Path, script: &str, spec: &Value) -> Value {
    let out = Command::new(program)
        .arg(workspace_root().join("tests/peers").join(script))
        .arg(spec.to_string())
        .env("MCP_REGISTRY_CACHE_DIR", code_mode_cache())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{script} failed");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{script}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn check_client(report: &Value) {
    assert_eq!(
        report["tools"],
        json!(["execute", "search"]),
        "--code-mode=only lists two tools"
    );
    let declarations = report["search"][0]["text"].as_str().unwrap();
    assert!(
        declarations.contains("declare namespace tools.alpha"),
        "{declarations}"
    );
    assert!(
        declarations.contains("function echo(args: {"),
        "{declarations}"
    );
    assert_eq!(
        report["search"][0]["structured"]["tools"][0]["call"],
        "tools.alpha.echo"
    );
    let stubs = report["search"][1]["text"].as_str().unwrap();
    assert!(stubs.contains("class alpha:"), "{stubs}");
    assert!(
        stubs.contains("async def echo(self, *, message: str) -> Any:"),
        "{stubs}"
    );
    let batch = &report["executes"][0];
    // The runaway was stopped; the good snippet beside it finished first.
    assert_eq!(batch[0]["is_error"], true, "{batch}");
    assert_eq!(
        batch[0]["structured"]["error"]["kind"], "timeout",
        "{batch}"
    );
    assert_eq!(batch[1]["is_error"], false, "{batch}");
    assert_eq!(
        batch[1]["structured"]["value"],
        json!(["a", "b"]),
        "{batch}"
    );
    assert_eq!(report["order"][0], json!([0, 1]), "{report}");
    // Pollution in one run, none in the next.
    assert_eq!(
        report["executes"][2][0]["structured"]["value"], "clean",
        "{report}"
    );
    // A snippet's error comes back as a tool error with its position.
    let syntax = &report["executes"][3][0];
    assert_eq!(syntax["is_error"], true);
    assert_eq!(
        syntax["structured"]["error"]["name"], "SyntaxError",
        "{syntax}"
    );
    // Python: a runaway stopped beside a good snippet whose progress the client saw.
    let python = &report["executes"][4];
    assert_eq!(
        python[0]["structured"]["error"]["kind"], "timeout",
        "{python}"
    );
    assert_eq!(python[1]["is_error"], false, "{python}");
    assert_eq!(
        python[1]["structured"]["value"],
        json!(["a", "b"]),
        "{python}"
    );
    assert_eq!(
        progress_of(&python[1]),
        [(1.0, Some(2.0), Some("half")), (2.0, Some(2.0), None)],
        "{python}"
    );
    // A ToolError caught (its kind read from it), and one not caught: the snippet's error,
    // with its kind and line.
    let errors = &report["executes"][5];
    assert_eq!(errors[0]["structured"]["value"], "tool-error", "{errors}");
    let uncaught = &errors[1]["structured"]["error"];
    assert_eq!(errors[1]["is_error"], true, "{errors}");
    assert_eq!(uncaught["name"], "ToolError", "{uncaught}");
    assert_eq!(uncaught["kind"], "not-found", "{uncaught}");
    assert_eq!(uncaught["line"], 2, "{uncaught}");
    // JavaScript's progress reaches the client the same way.
    let js = &report["executes"][6][0];
    assert_eq!(
        progress_of(js),
        [(1.0, Some(3.0), Some("one")), (3.0, Some(3.0), None)],
        "{js}"
    );
    // An inner call's upstream progress reaches the client as the snippet's, naming the tool.
    for inner in report["executes"][7].as_array().unwrap() {
        assert_eq!(inner["structured"]["value"], "progress done", "{inner}");
        let tool = Some("alpha__test_tool_with_progress");
        assert_eq!(
            progress_of(inner),
            [
                (0.0, Some(100.0), tool),
                (50.0, Some(100.0), tool),
                (100.0, Some(100.0), tool)
            ],
            "{inner}"
        );
    }
}

/// The progress notifications a client saw for one `execute`, as numbers (one SDK gives
/// integers, the other floats).
fn progress_of(result: &Value) -> Vec<(f64, Option<f64>, Option<&str>)> {
    result["progress"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p[0].as_f64().unwrap_or(f64::NAN),
                p[1].as_f64(),
                p[2].as_str(),
            )
        })
        .collect()
}

fn client_spec(s: &Scratch) -> Value {
    json!({
        "command": [env!("CARGO_BIN_EXE_mcp-registry"), "--config", s.config, "serve", "--code-mode=only"],
        "search": [
            {"query": "echo message", "limit": 2},
            {"query": "echo message", "limit": 2, "language": "python"}
        ],
        "executes": [
            [
                {"code": "while (true) {}", "timeout_ms": 3000},
                {"code": "return await Promise.all([tools.alpha.echo({message: 'a'}), tools.beta.echo({message: 'b'})]);"}
            ],
            [{"code": "Object.prototype.polluted = 1; return 1;"}],
            [{"code": "return ({}).polluted === undefined ? 'clean' : 'polluted';"}],
            [{"code": "return (;"}],
            [
                {"code": "while True:\n    pass", "language": "python", "timeout_ms": 3000},
                {"code": "import asyncio\nprogress(1, 2, 'half')\nr = await asyncio.gather(tools.alpha.echo(message='a'), tools.beta.echo(message='b'))\nprogress(2, 2)\nawait tools.alpha.echo(message='done')\nr", "language": "python"}
            ],
            [
                {"code": "try:\n    await tools.alpha.fail(message='no')\nexcept ToolError as e:\n    kind = str(e).split(':')[0]\nkind", "language": "python"},
                {"code": "x = 1\nawait tools.alpha.nope()", "language": "python"}
            ],
            [{"code": "progress(1, 3, 'one'); progress(3, 3); await tools.alpha.echo({message: 'done'}); return 1;"}],
            [
                {"code": "return await tools.alpha.test_tool_with_progress({});"},
                {"code": "await tools.alpha.test_tool_with_progress()", "language": "python"}
            ]
        ]
    })
}

#[test]
fn typescript_sdk_client_searches_then_executes() {
    let Some(node) = peer(
        peers_dir().join("node_modules/.bin/node"),
        "Node 22 (npm node@22)",
    ) else {
        return;
    };
    if peer(
        peers_dir().join("node_modules/@modelcontextprotocol/sdk/package.json"),
        "npm @modelcontextprotocol/sdk",
    )
    .is_none()
    {
        return;
    }
    let s = test_servers();
    check_client(&drive_client(
        &node,
        "codemode_client.mjs",
        &client_spec(&s),
    ));
}

#[test]
fn python_sdk_client_searches_then_executes() {
    let Some(python) = peer(peers_dir().join("venv/bin/python"), "PyPI mcp 2.3.0 (venv)") else {
        return;
    };
    let s = test_servers();
    check_client(&drive_client(
        &python,
        "codemode_client.py",
        &client_spec(&s),
    ));
}

#[test]
fn deep_nesting_is_the_snippets_error_not_the_hosts() {
    let s = test_servers();
    // The host strips TypeScript before the engine sees a snippet: swc's parser must not
    // overflow the host's stack (that would end every client's connection), and the engine's
    // parser overflowing its own stack inside the sandbox is the snippet's error.
    for depth in [3_000, 30_000] {
        let code = format!("return {}1{};", "(".repeat(depth), ")".repeat(depth));
        let e = failure(&s, &code, &[]);
        assert_eq!(e["name"], "RangeError", "{depth}: {e}");
        assert_eq!(e["kind"], "limit", "{depth}: {e}");
    }
}
