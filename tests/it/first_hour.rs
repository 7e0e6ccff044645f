//! A new user's first hour, end to end: a registry imported from a Claude Desktop
//! configuration with one good server, one that never answers and one that starts slowly,
//! served to the clients people run (the inspector, the TypeScript SDK).

use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use crate::support::*;

/// The Claude Desktop configuration a user imports: `hang` never answers (as an `npx -y`
/// entry does without network), `slow` answers after 5 s.
fn imported(s: &Scratch) {
    let desktop = s.path("claude_desktop_config.json");
    let server = test_server().display().to_string();
    std::fs::write(
        &desktop,
        json!({"mcpServers": {
            "good": {"command": server, "args": []},
            "hang": {"command": "sleep", "args": ["600"]},
            "slow": {"command": server, "args": [], "env": {"MCP_TEST_STARTUP_DELAY_MS": "5000"}},
        }})
        .to_string(),
    )
    .unwrap();
    std::fs::remove_file(&s.config).unwrap();
    let out = s
        .cli(&["init", "--import", desktop.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "init --import: {out:?}");
}

fn node() -> Option<std::path::PathBuf> {
    peer(peers_dir().join("node_modules/.bin/node"), "Node 22")
}

/// The servers a listing's `_meta` names as left out.
fn unavailable(meta: &Value) -> Vec<String> {
    let mut names: Vec<String> = meta
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_hanging_and_a_slow_server_cost_only_themselves_for_the_typescript_sdk() {
    let Some(node) = node() else { return };
    let s = Scratch::new(json!({}));
    imported(&s);
    // Wired into Claude Desktop's configuration by `install`, and started the way a client
    // starts it: from that entry, with the SDK's filtered environment.
    let desktop = s.path("claude_desktop_config.json");
    let o = s
        .cli(&[
            "install",
            "claude-desktop",
            "--file",
            desktop.to_str().unwrap(),
        ])
        .args(["--", "--list-wait", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let installed: Value =
        serde_json::from_str(&std::fs::read_to_string(&desktop).unwrap()).unwrap();
    let entry = &installed["mcpServers"]["mcp-registry"];
    assert!(
        installed["mcpServers"]["hang"].is_object(),
        "others kept: {installed}"
    );
    assert!(s.path("claude_desktop_config.json.bak").exists());
    let mut serve = vec![entry["command"].clone()];
    serve.extend(entry["args"].as_array().unwrap().iter().cloned());
    let serve = Value::from(serve);
    let out = Command::new(node)
        .arg(workspace_root().join("tests/peers/first_hour_client.mjs"))
        .arg(serve.to_string())
        .env("MCP_REGISTRY_CACHE_DIR", s.cache())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("client printed non-JSON ({e}): {out:?}"));
    assert!(out.status.success(), "{report:#}\n{out:?}");
    let names = |list: &Value| -> Vec<String> {
        let names: Vec<String> = serde_json::from_value(list["names"].clone()).unwrap();
        let mut servers: Vec<String> = names
            .iter()
            .filter_map(|n| n.split_once("__").map(|(s, _)| s.to_owned()))
            .collect();
        servers.dedup();
        servers
    };
    // The first listing has the good server's tools and names the two others as missing.
    assert_eq!(names(&report["first"]), ["good"], "{report:#}");
    assert_eq!(
        unavailable(&report["first"]["unavailable"]),
        ["hang", "slow"],
        "{report:#}"
    );
    // The slow server's tools arrive with list_changed; the hanging one stays named.
    assert!(report["changed_after_ms"].is_u64(), "{report:#}");
    assert_eq!(names(&report["second"]), ["good", "slow"], "{report:#}");
    assert_eq!(
        unavailable(&report["second"]["unavailable"]),
        ["hang"],
        "{report:#}"
    );
}

#[test]
fn the_inspector_lists_a_registry_with_a_hanging_server() {
    let Some(node) = node() else { return };
    let s = Scratch::new(json!({}));
    imported(&s);
    let inspector = peers_dir().join("node_modules/@modelcontextprotocol/inspector");
    let started = Instant::now();
    let out = Command::new(node)
        .arg(peers_dir().join("node_modules/.bin/mcp-inspector"))
        .arg("--cli")
        .args([
            "-e",
            &format!("MCP_REGISTRY_CACHE_DIR={}", s.cache().display()),
        ])
        .args(["--method", "tools/list", "--"])
        .arg(env!("CARGO_BIN_EXE_mcp-registry"))
        .arg("--config")
        .arg(&s.config)
        .arg("serve")
        .env("HOME", s.dir.path())
        .current_dir(&inspector)
        .output()
        .unwrap();
    // The inspector gives up on its own after 15 s; before, the hanging server cost 90 s.
    assert!(
        out.status.success(),
        "inspector after {:?}: {out:?}",
        started.elapsed()
    );
    eprintln!("the inspector listed in {:?}", started.elapsed());
    let list: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("inspector printed non-JSON ({e}): {out:?}"));
    let tools: Vec<&str> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"good__echo"), "{list:#}");
    assert!(!tools.iter().any(|t| t.starts_with("hang__")), "{list:#}");
}

/// The README's `--filter` examples, applied to the tools the real `server-memory` lists:
/// each rule matches a tool, so each example shows or hides what it says.
#[test]
fn the_readmes_filter_examples_mean_what_they_say() {
    let Some(node) = node() else { return };
    let Some(memory) = peer(
        peers_dir().join("node_modules/@modelcontextprotocol/server-memory/dist/index.js"),
        "server-memory",
    ) else {
        return;
    };
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let start = readme
        .find("`--filter` takes")
        .expect("the README explains --filter");
    let paragraph = &readme[start..start + readme[start..].find("\n\n").unwrap()];
    let specs: Vec<&str> = paragraph
        .split("`'")
        .skip(1)
        .filter_map(|s| s.split_once("'`").map(|(spec, _)| spec))
        .collect();
    assert!(specs.len() >= 2, "{paragraph}");
    let s = Scratch::new(json!({
        "memory": {"command": node, "args": [memory],
                   "env": {"MEMORY_FILE_PATH": "/dev/null/never-written"}},
    }));
    let out = s.cli(&["list-tools"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let tools: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split('\t')
                .next()?
                .strip_prefix("memory__")
                .map(str::to_owned)
        })
        .collect();
    assert!(tools.len() > 3, "{tools:?}");
    let names: Vec<&str> = tools.iter().map(String::as_str).collect();
    for spec in specs {
        let filters = mcp_registry_host::config::parse_filter(spec).unwrap();
        let filter = &filters["memory"];
        assert!(filter.unmatched(&names).is_empty(), "{spec}: {names:?}");
        let shown = names.iter().filter(|t| filter.permits(t)).count();
        assert!(
            shown > 0 && shown < names.len(),
            "{spec} shows {shown} of {names:?}"
        );
    }
    // A rule that matches nothing (the README's old example) is reported at start, before
    // any listing, and hides nothing.
    let mut serve = s
        .cli(&["serve", "--filter", "memory:-delete"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = serve.stderr.take().unwrap();
    let (said, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            let _ = said.send(line);
        }
    });
    let warning = loop {
        match heard.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(line) if line.contains("matches no tool") => break line,
            Ok(_) => continue,
            Err(e) => panic!("no warning at start ({e})"),
        }
    };
    assert!(warning.contains("delete"), "{warning}");
    let mut stdin = serve.stdin.take().unwrap();
    use std::io::{BufRead, Write};
    for line in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
               "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    let mut stdout = std::io::BufReader::new(serve.stdout.take().unwrap());
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 && !line.contains(r#""id":2"#) {
        line.clear();
    }
    drop(stdin);
    let _ = serve.wait();
    assert!(
        line.contains("memory__delete_entities"),
        "the rule hides nothing: {line}"
    );
}

/// `serve --code-mode` on a fresh install answers `initialize` before the engine is compiled
/// (the inspector gives up after 15 s; compiling takes longer on a small machine).
#[test]
fn serve_with_code_mode_answers_initialize_before_the_engine_is_ready() {
    use std::io::{BufRead, Write};
    let s = Scratch::new(json!({"t": {"command": test_server()}}));
    let mut serve = s
        .cli(&["serve", "--code-mode"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = serve.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(serve.stdout.take().unwrap());
    let mut send = |line: Value| writeln!(stdin, "{line}").unwrap();
    let mut answer = |id: u64| -> Value {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "serve ended");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["id"] == id {
                return message;
            }
        }
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
                "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    );
    let init = answer(1);
    assert!(init["result"]["serverInfo"].is_object(), "{init}");
    let compiled = |dir: &std::path::Path| {
        std::fs::read_dir(dir.join("components"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
    };
    assert!(
        !compiled(&s.cache()),
        "initialize was answered only after the engine was compiled"
    );
    // The tools are listed meanwhile too; `execute` waits for the engine (the other
    // code-mode tests call it).
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    let list = answer(2);
    assert!(list.to_string().contains(r#""name":"execute""#), "{list}");
    drop(stdin);
    assert!(serve.wait().unwrap().success());
}

#[test]
fn serve_listens_on_a_host_name() {
    let s = Scratch::new(json!({}));
    let port = free_port();
    let mut serve = s
        .cli(&["serve", "--http", &format!("localhost:{port}")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(serve.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(
        line.contains(&format!("http://127.0.0.1:{port}/mcp")),
        "{line}"
    );
}

/// The README's client snippets are what `install` writes: each JSON one parses, names the
/// binary and the registry by full paths and runs `serve`; the Claude Code line does the same.
#[test]
fn the_readmes_client_snippets_are_what_install_writes() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let start = readme
        .find("## Use it from your MCP client")
        .expect("the README says how to wire a client");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let blocks: Vec<&str> = section
        .split("```json\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(json, _)| json))
        .collect();
    assert_eq!(blocks.len(), 2, "{section}");
    let s = Scratch::new(json!({}));
    for (block, client, key) in [
        (blocks[0], "claude-desktop", "mcpServers"),
        (blocks[0], "cursor", "mcpServers"),
        (blocks[1], "vscode", "servers"),
    ] {
        let snippet: Value = serde_json::from_str(block)
            .unwrap_or_else(|e| panic!("README snippet for {client} is not JSON ({e}): {block}"));
        let file = s.path(&format!("{client}.json"));
        let o = s
            .cli(&["install", client, "--file", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let (shown, made) = (&snippet[key]["mcp-registry"], &written[key]["mcp-registry"]);
        let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        assert_eq!(keys(shown), keys(made), "{client}: {shown} against {made}");
        assert_eq!(made["args"][0], "--config");
        assert_eq!(made["args"][2], "serve");
        assert!(made["command"].as_str().unwrap().starts_with('/'), "{made}");
        assert!(made["args"][1].as_str().unwrap().starts_with('/'), "{made}");
        assert_eq!(shown["args"][0], "--config");
        assert_eq!(shown["args"][2], "serve");
    }
    let claude_code = section
        .lines()
        .find(|l| l.starts_with("claude mcp add "))
        .expect("the Claude Code line");
    let words: Vec<&str> = claude_code.split_whitespace().collect();
    let after = &words[words.iter().position(|w| *w == "--").unwrap() + 1..];
    assert!(after[0].ends_with("/mcp-registry"), "{claude_code}");
    assert_eq!(
        &after[1..],
        ["--config", after[2], "serve"],
        "{claude_code}"
    );
}

/// `install` into a client configuration that is a symbolic link (dotfiles kept elsewhere)
/// writes the link's target and leaves the link; each install keeps a backup of its own.
#[test]
fn install_keeps_a_linked_configuration_linked_and_every_backup() {
    let s = Scratch::new(json!({}));
    let real = s.path("dotfiles/claude.json");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    let original = json!({"mcpServers": {"other": {"command": "other-server"}}}).to_string();
    std::fs::write(&real, &original).unwrap();
    let link = s.path("claude_desktop_config.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let install = |extra: &[&str]| {
        let o = s
            .cli(&[
                "install",
                "claude-desktop",
                "--file",
                link.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
    };
    install(&[]);
    let first = std::fs::read_to_string(&real).unwrap();
    assert!(
        first.contains("mcp-registry") && first.contains("other-server"),
        "{first}"
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    install(&["--replace", "--", "--list-wait", "2"]);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&real)
        .unwrap()
        .contains("--list-wait"));
    let backup = |suffix: &str| {
        std::fs::read_to_string(s.path(&format!("claude_desktop_config.json{suffix}")))
    };
    assert_eq!(
        backup(".bak").unwrap(),
        original,
        "the first backup is the user's own file"
    );
    assert_eq!(
        backup(".bak.1").unwrap(),
        first,
        "the second install kept its own"
    );
}

/// `mcp-registry search` prints what code mode's `search` tool gives a model.
#[test]
fn search_prints_what_a_model_gets() {
    use std::io::{BufRead, Write};
    let s = Scratch::new(json!({"t": {"command": test_server()}}));
    let out = s
        .cli(&["search", "add numbers", "--limit", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.contains("function add("), "{printed}");

    let mut serve = s
        .cli(&["serve", "--code-mode"])
        .env("MCP_REGISTRY_CACHE_DIR", code_mode_cache())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = serve.stdin.take().unwrap();
    for line in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
               "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "search", "arguments": {"query": "add numbers", "limit": 2}}}),
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    let mut stdout = std::io::BufReader::new(serve.stdout.take().unwrap());
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 && !line.contains(r#""id":2"#) {
        line.clear();
    }
    drop(stdin);
    let _ = serve.wait();
    let answer: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .trim(),
        printed.trim(),
        "{answer}"
    );
}

/// `init` at a terminal offers to import the clients' servers it finds, and prepares code
/// mode (both engines), so the first `exec` finds the engine compiled.
#[test]
fn init_at_a_terminal_imports_and_prepares_code_mode() {
    let s = Scratch::new(json!({}));
    std::fs::remove_file(&s.config).unwrap();
    let home = s.path("home");
    let desktop = home.join(".config/Claude/claude_desktop_config.json");
    std::fs::create_dir_all(desktop.parent().unwrap()).unwrap();
    std::fs::write(
        &desktop,
        json!({"mcpServers": {"t": {"command": test_server()}}}).to_string(),
    )
    .unwrap();
    let out = Command::new(python3())
        .arg(workspace_root().join("tests/peers/pty_run.py"))
        .args(["--script", r#"[["[Y/n]", "y"]]"#])
        .arg(env!("CARGO_BIN_EXE_mcp-registry"))
        .arg("--config")
        .arg(&s.config)
        .arg("init")
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env("MCP_REGISTRY_CACHE_DIR", s.cache())
        .current_dir(&home)
        .output()
        .unwrap();
    let run: Value = serde_json::from_slice(&out.stdout).expect("pty_run.py prints JSON");
    assert_eq!(run["status"], 0, "{run:#}");
    assert_eq!(run["answered"], true, "{run:#}");
    let said = run["output"].as_str().unwrap();
    assert!(said.contains("added t"), "{said}");
    let registry: Value =
        serde_json::from_str(&std::fs::read_to_string(&s.config).unwrap()).unwrap();
    assert!(registry["mcpServers"]["t"].is_object(), "{registry}");
    let compiled = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(s.cache().join("components"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect()
    };
    let before = compiled();
    // The JavaScript engine and the Python one.
    assert_eq!(before.len(), 2, "{said}");
    let snippet = s.path("snippet.js");
    std::fs::write(&snippet, "return (await tools.t.add({a: 1, b: 2}))").unwrap();
    let out = s
        .cli(&["exec", snippet.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(compiled(), before, "exec compiled the engine again");
}

/// The examples work from any directory: a relative `command` path (with no `cwd`) is the
/// registry file's, as a relative `cwd` is.
#[test]
fn the_example_registry_works_from_any_directory() {
    let elsewhere = tempfile::tempdir().unwrap();
    let registry = workspace_root().join("examples/registry.json");
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .arg("--config")
        .arg(&registry)
        .args(["call", "alpha__echo", r#"{"message": "from elsewhere"}"#])
        .env("MCP_REGISTRY_CACHE_DIR", elsewhere.path().join("cache"))
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("from elsewhere"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_and_its_model_are_told_which_servers_are_missing_but_not_their_stderr() {
    use super::tenants::{call, digest, request};
    const KEY: &str = "first-hour-tenant-key";
    let server = test_server().display().to_string();
    let s = Scratch::new(json!({
        "good": {"command": server},
        "broken": {"command": "sh", "args": ["-c", "echo SECRET-STDERR-LINE >&2; exit 3"]},
        "hang": {"command": "sleep", "args": ["600"]},
    }));
    let tenants = json!({"tenants": {"t": {"keys": [digest(KEY)],
        "servers": ["good", "broken", "hang"], "code_mode": true}}});
    std::fs::write(s.path("tenants.json"), tenants.to_string()).unwrap();
    let tenants = s.path("tenants.json");
    let (_child, addr) = serve_http(
        &s.config,
        &code_mode_cache(),
        &[
            "--code-mode",
            "--list-wait",
            "1",
            "--tenants",
            tenants.to_str().unwrap(),
        ],
    )
    .await;
    // The listing has the good server's tools and names the two others, with what failed
    // and how, not the server's stderr or command (those are the operator's). (Under load the
    // broken server may not have failed within the listing's 1 s wait: then a later listing
    // names its failure, which the pool remembers.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let listed = loop {
        let listed = request(&addr, KEY, "tools/list", json!({})).await;
        let broken = &listed["result"]["_meta"]["mcp-registry/unavailable"]["broken"];
        if broken.as_str().is_some_and(|b| b.contains("failed"))
            || std::time::Instant::now() > deadline
        {
            break listed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let tools = listed["result"]["tools"].to_string();
    assert!(tools.contains("good__echo"), "{listed}");
    let missing = &listed["result"]["_meta"]["mcp-registry/unavailable"];
    assert_eq!(unavailable(missing), ["broken", "hang"], "{listed}");
    let broken = missing["broken"].as_str().unwrap_or_default();
    assert!(broken.contains("failed"), "{missing}");
    assert!(
        !missing.to_string().contains("SECRET") && !missing.to_string().contains("sh -c"),
        "{missing}"
    );
    assert!(
        missing["hang"]
            .as_str()
            .unwrap_or_default()
            .contains("still starting"),
        "{missing}"
    );
    // A model searching in code mode is told the same, so it does not take those servers'
    // tools for absent.
    let searched = call(&addr, Some(KEY), "search", json!({"query": "echo"})).await;
    let result = &searched.message()["result"];
    let said = result["content"][1]["text"].as_str().unwrap_or_default();
    assert!(
        said.contains("broken") && said.contains("hang") && !said.contains("SECRET"),
        "{result}"
    );
    assert_eq!(
        unavailable(&result["structuredContent"]["unavailable"]),
        ["broken", "hang"],
        "{result}"
    );
    assert!(result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .contains("echo"));
}

/// A server that is up but slow to list is left out of a listing that cannot wait, and the
/// `list_changed` the listing promises comes when its list is read.
#[test]
fn a_server_slow_to_list_is_announced_when_its_list_is_read() {
    use std::io::{BufRead, Write};
    let server = test_server().display().to_string();
    let s = Scratch::new(json!({
        "good": {"command": server},
        "slowlist": {"command": server, "env": {"MCP_TEST_LIST_DELAY_MS": "3000"}},
    }));
    let mut serve = s
        .cli(&["serve", "--list-wait", "1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = serve.stdin.take().unwrap();
    let stdout = std::io::BufReader::new(serve.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let mut send = |v: Value| writeln!(stdin, "{v}").unwrap();
    let next = |what: &str, until: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(v) if until(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("{what}: nothing within 20 s"),
            }
        }
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}),
    );
    next("initialize", &|v| v["id"] == 1);
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}));
    let first = next("the first tools/list", &|v| v["id"] == 2);
    let names = first["result"]["tools"].to_string();
    assert!(
        names.contains("good__echo") && !names.contains("slowlist__echo"),
        "{first}"
    );
    let missing = &first["result"]["_meta"]["mcp-registry/unavailable"];
    assert_eq!(unavailable(missing), ["slowlist"], "{first}");
    // Each listing that gave up announces when its list is read; the list is then cached
    // (a 2026-07-28 upstream's is read once more when our listen on it is acknowledged).
    let mut listed = Value::Null;
    for id in 3..8 {
        next("list_changed", &|v| {
            v["method"] == "notifications/tools/list_changed"
        });
        send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {}}));
        listed = next("a later tools/list", &|v| v["id"] == id);
        if listed["result"]["tools"]
            .to_string()
            .contains("slowlist__echo")
        {
            break;
        }
    }
    assert!(
        listed["result"]["tools"]
            .to_string()
            .contains("slowlist__echo"),
        "{listed}"
    );
    let _ = serve.kill();
    let _ = serve.wait();
}
