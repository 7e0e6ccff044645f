//! Registry validation (every message names file, server and field) and the CLI end to end.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::*;
use mcp_registry_host::config::{ConfigError, Registry, RemoteTransport};

fn load(dir: &Path, text: &str) -> Result<Registry, ConfigError> {
    let path = dir.join("reg.json");
    std::fs::write(&path, text).unwrap();
    Registry::load(&path)
}

/// Asserts that loading `text` fails with a message naming the file and every `needle`.
fn assert_rejected(text: &str, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), text).expect_err(text).to_string();
    assert!(
        err.contains("reg.json"),
        "message does not name the file: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "message {err:?} does not contain {n:?}");
    }
}

#[test]
fn bad_json_reports_line_and_column() {
    assert_rejected(
        "{\n  \"mcpServers\": {,}\n}",
        &["reg.json:2:", "invalid JSON"],
    );
}

#[test]
fn missing_or_mistyped_mcp_servers() {
    assert_rejected(r#"{"servers": {}}"#, &["mcpServers", "missing"]);
    assert_rejected(
        r#"{"mcpServers": []}"#,
        &["mcpServers", "expected an object"],
    );
    assert_rejected(r#"[]"#, &["expected an object"]);
}

#[test]
fn empty_or_missing_command() {
    assert_rejected(
        r#"{"mcpServers": {"s1": {"command": ""}}}"#,
        &["server \"s1\"", "\"command\"", "empty"],
    );
    assert_rejected(
        r#"{"mcpServers": {"s1": {"command": "  "}}}"#,
        &["server \"s1\"", "\"command\""],
    );
    assert_rejected(
        r#"{"mcpServers": {"s1": {"args": []}}}"#,
        &["server \"s1\"", "\"command\"", "missing"],
    );
    assert_rejected(
        r#"{"mcpServers": {"s1": {"command": 3}}}"#,
        &["server \"s1\"", "\"command\"", "a number"],
    );
}

#[test]
fn bad_server_names() {
    assert_rejected(
        r#"{"mcpServers": {"": {"command": "x"}}}"#,
        &["server \"\"", "empty"],
    );
    assert_rejected(
        r#"{"mcpServers": {"a__b": {"command": "x"}}}"#,
        &["server \"a__b\"", "__"],
    );
    assert_rejected(
        r#"{"mcpServers": {"a b": {"command": "x"}}}"#,
        &["server \"a b\"", "' '"],
    );
    assert_rejected(
        r#"{"mcpServers": {"a.b": {"command": "x"}}}"#,
        &["server \"a.b\"", "'.'"],
    );
}

#[test]
fn unknown_and_mistyped_fields() {
    assert_rejected(
        r#"{"mcpServers": {"s1": {"command": "x", "arg": []}}}"#,
        &["server \"s1\"", "\"arg\"", "unknown field"],
    );
    assert_rejected(
        r#"{"mcpServers": {"s1": {"command": "x", "args": [1]}}}"#,
        &["server \"s1\"", "args[0]"],
    );
    assert_rejected(
        r#"{"mcpServers": {"s1": {"command": "x", "env": {"K": 1}}}}"#,
        &["server \"s1\"", "env.K"],
    );
    assert_rejected(
        r#"{"mcpServers": {"s1": {"command": "x", "type": "sse"}}}"#,
        &["server \"s1\"", "\"type\"", "sse"],
    );
    assert_rejected(
        r#"{"mcpServers": {"s1": {"command": "x", "timeouts": {"call": -1}}}}"#,
        &["server \"s1\"", "timeouts.call", "positive"],
    );
    assert_rejected(
        r#"{"mcpServers": {"s1": {"command": "x", "timeouts": {"calls": 1}}}}"#,
        &["server \"s1\"", "timeouts.calls"],
    );
    assert_rejected(
        r#"{"mcpServers": {"s1": {"command": "x", "tools": {"allow": ["a"], "deny": ["b"]}}}}"#,
        &["server \"s1\"", "\"tools\""],
    );
    assert_rejected(
        r#"{"mcpServers": {"s1": {"command": "x", "protocol": "1999"}}}"#,
        &["server \"s1\"", "\"protocol\""],
    );
}

#[test]
fn valid_config_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let r = load(
        dir.path(),
        r#"{"mcpServers": {"s1": {"type": "stdio", "command": "x", "args": [], "env": {"A": "1"},
            "cwd": "/tmp", "description": "d", "timeouts": {"connect": 2, "call": 0.5},
            "tools": {"deny": ["crash"]}, "roots": ["file:///tmp"], "protocol": "legacy"}}}"#,
    )
    .unwrap();
    let s = r.server("s1").unwrap();
    assert_eq!(s.call_timeout.as_millis(), 500);
    assert_eq!(s.env.get("A").map(String::as_str), Some("1"));
}

fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run mcp-registry")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn add_list_remove_keep_foreign_content_and_write_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, r#"{"globalShortcut": "Ctrl+M", "mcpServers": {}}"#).unwrap();
    let server = test_server().display().to_string();
    let o = cli(&path, &["add", "t1", "--env", "GREETING=hi", "--", &server]);
    assert!(o.status.success(), "{o:?}");
    let o = cli(&path, &["add", "bad__name", "--", &server]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("__"), "{o:?}");

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["globalShortcut"], "Ctrl+M", "foreign key lost on write");
    assert_eq!(doc["mcpServers"]["t1"]["env"]["GREETING"], "hi");
    // No temporary files left beside the registry.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");

    let o = cli(&path, &["-v", "list"]);
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("t1:"), "{out}");
    assert!(
        out.contains("protocol 2026-07-28"),
        "list -v shows the negotiated version: {out}"
    );

    let o = cli(&path, &["remove", "t1"]);
    assert!(o.status.success(), "{o:?}");
    let o = cli(&path, &["remove", "t1"]);
    assert_eq!(o.status.code(), Some(2));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["globalShortcut"], "Ctrl+M");
    assert!(doc["mcpServers"].as_object().unwrap().is_empty());
}

#[test]
fn init_creates_a_registry_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("config.json");
    assert!(cli(&path, &["init"]).status.success());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(doc["mcpServers"].is_object());
    let o = cli(&path, &["init"]);
    assert!(stdout(&o).contains("already exists"));
}

#[test]
fn call_and_list_tools_output_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let server = test_server().display().to_string();
    assert!(cli(&path, &["add", "t1", "--", &server]).status.success());

    let o = cli(&path, &["list-tools", "--json"]);
    assert!(o.status.success(), "{o:?}");
    let tools: serde_json::Value =
        serde_json::from_str(&stdout(&o)).expect("list-tools --json prints JSON only");
    assert!(tools
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "t1__echo"));

    let o = cli(&path, &["call", "t1__echo", r#"{"message": "hello"}"#]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let result: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("call prints JSON");
    assert_eq!(result["content"][0]["text"], "hello");

    let o = cli(&path, &["call", "t1__fail", r#"{"message": "nope"}"#]);
    assert_eq!(o.status.code(), Some(1), "isError exits 1: {o:?}");
    let result: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(result["isError"], true);

    for bad in [
        &["call", "t1__echo", "[1, 2]"][..],
        &["call", "nope__echo"],
        &["call", "t1__nope"],
    ] {
        let o = cli(&path, bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {o:?}");
        assert!(stdout(&o).is_empty(), "errors go to stderr only: {o:?}");
        assert!(!o.stderr.is_empty());
    }

    // Arguments from stdin.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .args(["--config", path.to_str().unwrap(), "call", "t1__add", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"a": 2, "b": 40}"#)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let result: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(result["content"][0]["text"], "42");
}

#[test]
fn config_errors_reach_the_cli_user() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, r#"{"mcpServers": {"s1": {"command": ""}}}"#).unwrap();
    let o = cli(&path, &["call", "s1__echo"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("config.json") && err.contains("s1") && err.contains("command"),
        "{err}"
    );
}

#[test]
fn the_seeds_command_names_work() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reg.json");
    let server = test_server().display().to_string();
    std::fs::write(
        &config,
        serde_json::json!({"mcpServers": {"t": {"command": server, "description": "test"}},
                           "x-kept": 1})
        .to_string(),
    )
    .unwrap();
    // show-config-path, get, show.
    let out = cli(&config, &["show-config-path"]);
    assert_eq!(stdout(&out).trim(), config.display().to_string());
    let out = cli(&config, &["get", "t"]);
    let entry: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(entry["description"], "test");
    let out = cli(&config, &["get", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reg.json") && stderr.contains("\"nope\""),
        "{stderr}"
    );
    let out = cli(&config, &["show"]);
    let whole: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(whole["x-kept"], 1);

    // alias add | list | remove, written to the file; a bad target is refused.
    assert!(cli(&config, &["alias", "add", "say", "t__echo"])
        .status
        .success());
    assert_eq!(
        stdout(&cli(&config, &["alias", "list"])).trim(),
        "say -> t__echo"
    );
    let out = cli(&config, &["alias", "add", "bad", "nowhere__echo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere__echo"));
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(written["aliases"]["say"], "t__echo");
    assert_eq!(written["x-kept"], 1);

    // test-tool (call's seed name) with -i, -f, through an alias, and -t.
    let out = cli(
        &config,
        &["test-tool", "say", "-i", r#"{"message": "via -i"}"#],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("via -i"));
    let input = dir.path().join("input.json");
    std::fs::write(&input, r#"{"message": "via -f"}"#).unwrap();
    let out = cli(
        &config,
        &["test-tool", "t__echo", "-f", input.to_str().unwrap()],
    );
    assert!(stdout(&out).contains("via -f"), "{out:?}");
    let out = cli(
        &config,
        &["call", "t__sleep", "-i", r#"{"ms": 5000}"#, "-t", "0.3"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("timed out") || stderr.contains("timeout"),
        "{stderr}"
    );

    assert!(cli(&config, &["alias", "remove", "say"]).status.success());
    assert!(stdout(&cli(&config, &["alias", "list"])).contains("no aliases"));
    assert_eq!(
        cli(&config, &["alias", "remove", "say"]).status.code(),
        Some(2)
    );
}

#[test]
fn variables_are_expanded_when_a_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reg.json");
    std::fs::write(
        &config,
        serde_json::json!({"mcpServers": {"t": {
            "command": "${MCP_TEST_BIN}",
            "args": ["--label", "${MCP_TEST_SECRET}"],
            "env": {"GREETING": "${MCP_TEST_GREETING:-hello}", "TOKEN": "${MCP_TEST_TOKEN}"}},
            "u": {"command": "${MCP_TEST_BIN}", "inherit_env": ["MCP_TEST_SECRET"]}}})
        .to_string(),
    )
    .unwrap();
    let run_on = |server: &str, tool_args: &str, token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-registry"));
        cmd.arg("--config")
            .arg(&config)
            .args(["call", &format!("{server}__env"), tool_args])
            .env("MCP_TEST_BIN", test_server())
            .env("MCP_TEST_SECRET", "hunter2")
            .env_remove("MCP_TEST_GREETING")
            .env_remove("RUST_LOG");
        match token {
            Some(t) => cmd.env("MCP_TEST_TOKEN", t),
            None => cmd.env_remove("MCP_TEST_TOKEN"),
        };
        cmd.output().unwrap()
    };
    let run = |tool_args: &str, token: Option<&str>| run_on("t", tool_args, token);
    // Only what a server is given reaches it: the host's own variables (another server's
    // secrets) do not, unless it names them in `inherit_env`.
    let secret = r#"{"name": "MCP_TEST_SECRET"}"#;
    let out = run(secret, Some("tok-1"));
    assert!(out.status.success(), "{out:?}");
    assert!(
        !stdout(&out).contains("hunter2"),
        "inherited: {}",
        stdout(&out)
    );
    let out = run_on("u", secret, Some("tok-1"));
    assert!(
        stdout(&out).contains("hunter2"),
        "inherit_env: {}",
        stdout(&out)
    );
    let out = run(r#"{"name": "TOKEN"}"#, Some("tok-1"));
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("tok-1"), "{}", stdout(&out));
    let out = run(r#"{"name": "GREETING"}"#, Some("tok-1"));
    assert!(
        stdout(&out).contains("hello"),
        "the default: {}",
        stdout(&out)
    );
    // Unset, no default: the error names the server, the field and the variable, and shows
    // no value of any variable.
    let out = run(r#"{"name": "TOKEN"}"#, None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in ["\"t\"", "env.TOKEN", "MCP_TEST_TOKEN"] {
        assert!(stderr.contains(needle), "{needle} missing in {stderr}");
    }
    assert!(!stderr.contains("hunter2"), "a secret leaked: {stderr}");
}

#[test]
fn init_imports_other_clients_configurations_from_their_usual_places() {
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let write = |path: std::path::PathBuf, v: serde_json::Value| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, v.to_string()).unwrap();
    };
    let server = test_server().display().to_string();
    write(
        home.path()
            .join(".config/Claude/claude_desktop_config.json"),
        serde_json::json!({"mcpServers": {"desk": {"command": server, "env": {"A": "1"}}},
                           "globalShortcut": ""}),
    );
    write(
        project.path().join(".mcp.json"),
        serde_json::json!({"mcpServers": {"code": {"command": server, "args": ["x"]},
                                          "remote": {"type": "http", "url": "https://x.example/mcp"}}}),
    );
    write(
        project.path().join(".cursor/mcp.json"),
        serde_json::json!({"mcpServers": {"cur": {"command": server}, "desk": {"command": "other"},
                                          "cur-sse": {"url": "http://127.0.0.1:9/sse", "headers": {"X-Key": "${K}"}},
                                          "broken": {"type": "http", "url": "ftp://x"}}}),
    );
    write(
        project.path().join(".vscode/mcp.json"),
        serde_json::json!({"servers": {"vs": {"type": "stdio", "command": server}}}),
    );
    let config = project.path().join("reg.json");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(project.path())
            .env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .unwrap()
    };
    let out = run(&["init", "--import"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    for line in [
        "added desk",
        "added code",
        "added cur",
        "added vs",
        "added remote",
        "added cur-sse",
        "already present, kept: desk",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }
    assert!(
        text.contains("skipped: broken (field \"url\": \"ftp://x\" is not an http"),
        "{text}"
    );
    let registry = Registry::load(&config).unwrap();
    let names: Vec<&String> = registry.servers().keys().collect();
    assert_eq!(names, ["code", "cur", "cur-sse", "desk", "remote", "vs"]);
    let remote = |name: &str| registry.server(name).unwrap().remote.clone().unwrap();
    assert_eq!(remote("remote").transport, RemoteTransport::StreamableHttp);
    assert_eq!(remote("cur-sse").transport, RemoteTransport::Sse);
    assert_eq!(remote("cur-sse").headers["X-Key"], "${K}");
    // The first one in stays: Claude Desktop's `desk`, not Cursor's.
    assert_eq!(registry.server("desk").unwrap().command, server);
    assert_eq!(registry.server("desk").unwrap().env["A"], "1");
    assert_eq!(registry.server("code").unwrap().args, ["x"]);
    // The imported servers work.
    let out = run(&["call", "vs__echo", r#"{"message": "imported"}"#]);
    assert!(stdout(&out).contains("imported"), "{out:?}");
    // An explicit file; everything there is already present.
    let out = run(&["init", "--import", ".mcp.json"]);
    assert!(
        stdout(&out).contains("already present, kept: code"),
        "{out:?}"
    );
    assert!(stdout(&out).contains("0 server(s) added"), "{out:?}");
}

#[test]
fn projects_select_servers_for_add_remove_list_list_tools_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reg.json");
    let server = test_server().display().to_string();
    assert!(cli(&config, &["add", "a", "-p", "web", "--", &server])
        .status
        .success());
    assert!(cli(&config, &["add", "b", "--", &server]).status.success());
    assert!(cli(&config, &["add", "c", "-p", "web", "--", &server])
        .status
        .success());
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(written["projects"]["web"], serde_json::json!(["a", "c"]));
    // list -p, list-tools -p.
    let listed = stdout(&cli(&config, &["list", "-p", "web"]));
    assert!(
        listed.contains("a:") && listed.contains("c:") && !listed.contains("b:"),
        "{listed}"
    );
    let tools = stdout(&cli(&config, &["list-tools", "-p", "web"]));
    assert!(
        tools.contains("a__echo") && tools.contains("c__echo"),
        "{tools}"
    );
    assert!(!tools.contains("b__echo"), "{tools}");
    // An unknown project names the file and the known ones.
    let out = cli(&config, &["list", "-p", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reg.json") && stderr.contains("\"nope\"") && stderr.contains("web"),
        "{stderr}"
    );
    // serve -p: only the project's servers.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .arg("--config")
        .arg(&config)
        .args(["serve", "-p", "web"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::{BufRead, Write};
        let mut stdin = serve.stdin.take().unwrap();
        for line in [
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}}),
            serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        ] {
            writeln!(stdin, "{line}").unwrap();
        }
        let mut lines = std::io::BufReader::new(serve.stdout.take().unwrap()).lines();
        let listing = lines
            .find(|l| l.as_ref().is_ok_and(|l| l.contains("\"id\":2")))
            .unwrap()
            .unwrap();
        assert!(
            listing.contains("a__echo") && listing.contains("c__echo"),
            "{listing}"
        );
        assert!(!listing.contains("b__echo"), "{listing}");
    }
    let _ = serve.wait();
    // remove -p takes a server out of the project only; remove takes it out of every project.
    assert!(cli(&config, &["remove", "a", "-p", "web"]).status.success());
    assert!(stdout(&cli(&config, &["list"])).contains("a:"));
    assert!(cli(&config, &["remove", "c"]).status.success());
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(written["projects"]["web"], serde_json::json!([]));
    // A project naming a server the registry lacks is an error naming file and field.
    std::fs::write(
        &config,
        serde_json::json!({"mcpServers": {}, "projects": {"web": ["ghost"]}}).to_string(),
    )
    .unwrap();
    let out = cli(&config, &["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("projects.web") && stderr.contains("ghost"),
        "{stderr}"
    );
}

/// An editor (a shell script) that writes `first` the first time it runs and `then` after.
fn scripted_editor(dir: &Path, first: &str, then: &str) -> std::path::PathBuf {
    let script = dir.join("editor.sh");
    let count = dir.join("edits");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(cat '{c}' 2>/dev/null || echo 0)\necho $((n + 1)) > '{c}'\n\
             if [ \"$n\" = 0 ]; then printf '%s' '{first}' > \"$1\"; else printf '%s' '{then}' > \"$1\"; fi\n",
            c = count.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = std::fs::remove_file(count);
    script
}

#[test]
fn edit_keeps_a_backup_validates_and_offers_another_go() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reg.json");
    let original = r#"{"mcpServers": {}, "x-kept": 1}"#;
    let valid = r#"{"mcpServers": {"t": {"command": "x"}}}"#;
    let broken = r#"{"mcpServers": {"t": {"args": []}}}"#;
    let edit = |editor: &Path| {
        Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
            .arg("--config")
            .arg(&config)
            .arg("edit")
            .env("VISUAL", editor)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    // A valid edit is kept; the previous version is in .bak.
    std::fs::write(&config, original).unwrap();
    let out = edit(&scripted_editor(dir.path(), valid, valid));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), valid);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("reg.json.bak")).unwrap(),
        original
    );
    // A broken edit, with no terminal to ask: the previous version is put back, the edit set
    // aside, and the error names the file, the server and the field.
    let out = edit(&scripted_editor(dir.path(), broken, broken));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server \"t\"") && stderr.contains("command"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), valid);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("reg.json.rejected")).unwrap(),
        broken
    );
    // At a terminal, a broken edit offers another go; the second is valid.
    let Some(python) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("python3"))
            .find(|p| p.exists())
    }) else {
        assert!(!peers_required(), "python3 is needed for the terminal test");
        return;
    };
    let fixed = r#"{"mcpServers": {"u": {"command": "y"}}}"#;
    let editor = scripted_editor(dir.path(), broken, fixed);
    let out = Command::new(python)
        .arg(workspace_root().join("tests/peers/pty_run.py"))
        .args(["edit again?", "y", env!("CARGO_BIN_EXE_mcp-registry")])
        .arg("--config")
        .arg(&config)
        .arg("edit")
        .env("VISUAL", &editor)
        .output()
        .unwrap();
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["answered"], true, "{result}");
    assert_eq!(result["status"], 0, "{result}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), fixed);
}

/// `mcp-registry ARGS` under a pseudo-terminal answering `script` ([prompt, answer] pairs).
fn in_a_terminal(
    config: &Path,
    args: &[&str],
    script: serde_json::Value,
) -> Option<serde_json::Value> {
    let python = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("python3"))
            .find(|p| p.exists())
    });
    let Some(python) = python else {
        assert!(
            !peers_required(),
            "python3 is needed for the terminal tests"
        );
        return None;
    };
    let out = Command::new(python)
        .arg(workspace_root().join("tests/peers/pty_run.py"))
        .arg("--script")
        .arg(script.to_string())
        .arg(env!("CARGO_BIN_EXE_mcp-registry"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    Some(serde_json::from_slice(&out.stdout).expect("pty_run.py prints JSON"))
}

#[test]
fn at_a_terminal_add_and_call_ask_for_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reg.json");
    let server = test_server().display().to_string();
    // add with no name: name, command, arguments, environment.
    let script = serde_json::json!([
        ["server name:", "asked"],
        ["command:", server],
        ["arguments", "--flag"],
        ["environment variable", "GREETING=hi"],
        ["environment variable", ""]
    ]);
    let Some(out) = in_a_terminal(&config, &["add"], script) else {
        return;
    };
    assert_eq!(out["status"], 0, "{out}");
    let registry = Registry::load(&config).unwrap();
    let added = registry.server("asked").expect("the asked-for server");
    assert_eq!(added.args, ["--flag"]);
    assert_eq!(added.env["GREETING"], "hi");
    // call with no arguments: each one of the schema; a required one is insisted on, a
    // mistyped one asked again.
    let script = serde_json::json!([
        ["message (string, required)", ""],
        ["is required", "from a terminal"]
    ]);
    let out = in_a_terminal(&config, &["call", "asked__echo"], script).unwrap();
    assert_eq!(out["status"], 0, "{out}");
    assert!(
        out["output"].as_str().unwrap().contains("from a terminal"),
        "{out}"
    );
    let script = serde_json::json!([
        ["a (number, required)", "two"],
        ["expected a number", "2"],
        ["b (number, required)", "3.5"]
    ]);
    let out = in_a_terminal(&config, &["call", "asked__add"], script).unwrap();
    assert_eq!(out["status"], 0, "{out}");
    assert!(out["output"].as_str().unwrap().contains("5.5"), "{out}");
    // Not at a terminal, add without a name says what it needs.
    let out = cli(&config, &["add"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME"));
}

#[test]
fn list_tools_shows_parameters_with_v_and_schemas_with_vv() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reg.json");
    let server = test_server().display().to_string();
    std::fs::write(
        &config,
        serde_json::json!({"mcpServers": {"t": {"command": server}}}).to_string(),
    )
    .unwrap();
    let plain = stdout(&cli(&config, &["list-tools"]));
    assert!(plain.contains("t__big\t[t] Return"), "{plain}");
    assert!(!plain.contains("bytes (integer"), "{plain}");
    let out = cli(&config, &["list-tools", "-v"]);
    let v = stdout(&out);
    assert!(
        v.contains("    bytes (integer, required) Number of bytes"),
        "{v}"
    );
    // -v here is detail, not logging.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vv = stdout(&cli(&config, &["list-tools", "-vv"]));
    assert!(
        vv.contains("\"required\"") && vv.contains("\"properties\""),
        "{vv}"
    );
}

#[test]
fn the_registry_file_never_locks_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let server = test_server().display().to_string();
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(cli(
        &path,
        &["add", "t", "-e", "TOKEN=first-secret", "--", &server]
    )
    .status
    .success());
    assert!(cli(&path, &["alias", "add", "plus", "t__add"])
        .status
        .success());

    // Adding over an existing name refuses, says what would change, and keeps the entry; the
    // same entry again is no change; --replace replaces.
    let o = cli(
        &path,
        &["add", "t", "-e", "TOKEN=second-secret", "--", &server],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        err(&o).contains("already exists") && err(&o).contains("--replace"),
        "{o:?}"
    );
    assert!(
        err(&o).contains("env") && !err(&o).contains("secret"),
        "names the field, not its value: {o:?}"
    );
    let o = cli(
        &path,
        &["add", "t", "-e", "TOKEN=first-secret", "--", &server],
    );
    assert!(stdout(&o).contains("unchanged"), "{o:?}");
    let o = cli(&path, &["alias", "add", "plus", "t__echo"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = cli(&path, &["alias", "add", "plus", "t__echo", "--replace"]);
    assert!(o.status.success(), "{o:?}");

    // Removing a server removes the aliases that would dangle, and the file still loads.
    let o = cli(&path, &["remove", "t"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("alias \"plus\""), "{o:?}");
    let o = cli(&path, &["alias", "list"]);
    assert!(o.status.success(), "{o:?}");

    // A file that fails validation is repaired by the commands that remove things.
    std::fs::write(
        &path,
        serde_json::json!({"mcpServers": {"s": {"command": ""}}, "aliases": {"x": "gone__t", "y": "s__echo"},
                           "projects": {"p": ["s"]}})
        .to_string(),
    )
    .unwrap();
    assert_eq!(cli(&path, &["list"]).status.code(), Some(2));
    let o = cli(&path, &["alias", "remove", "x"]);
    assert!(o.status.success(), "{o:?}");
    assert!(err(&o).contains("still invalid"), "{o:?}");
    let o = cli(&path, &["remove", "s"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("valid again"), "{o:?}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["projects"]["p"], serde_json::json!([]), "{doc}");
    assert!(cli(&path, &["list"]).status.success());

    // A project member naming a server that is gone is taken out with `remove -p`.
    std::fs::write(
        &path,
        serde_json::json!({"mcpServers": {}, "projects": {"p": ["ghost"]}}).to_string(),
    )
    .unwrap();
    assert_eq!(cli(&path, &["list"]).status.code(), Some(2));
    let o = cli(&path, &["remove", "ghost", "-p", "p"]);
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("valid again"), "{o:?}");
    assert!(cli(&path, &["list"]).status.success());
}

#[test]
fn disabled_entries_are_kept_and_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let server = test_server().display().to_string();
    let desktop = dir.path().join("claude.json");
    std::fs::write(
        &desktop,
        serde_json::json!({"mcpServers": {
            "on": {"command": server},
            "off": {"command": server, "disabled": true},
        }})
        .to_string(),
    )
    .unwrap();
    let o = cli(&path, &["init", "--import", desktop.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    let o = cli(&path, &["list"]);
    assert!(
        stdout(&o).contains("off: (disabled)") && stdout(&o).contains("on:"),
        "{o:?}"
    );
    let o = cli(&path, &["list-tools"]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).contains("on__echo") && !stdout(&o).contains("off__"),
        "{o:?}"
    );
    let o = cli(&path, &["call", "off__echo", r#"{"message": "x"}"#]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    // An alias may stand for a disabled server's tool: it comes back with the server.
    let o = cli(&path, &["alias", "add", "later", "off__echo"]);
    assert!(o.status.success(), "{o:?}");
    assert!(cli(&path, &["list"]).status.success());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["mcpServers"]["off"]["disabled"], true, "{doc}");
}

#[test]
fn a_missing_registry_says_where_it_looked_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nowhere.json");
    let o = cli(&path, &["call", "s__echo"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nowhere.json")
            && err.contains("mcp-registry init")
            && err.contains("--config"),
        "{err}"
    );
    assert_eq!(err.matches("os error").count(), 0, "{err}");
}
