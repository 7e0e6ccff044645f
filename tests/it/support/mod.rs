//! Shared helpers for the integration tests: locating (building) the test server, building
//! registries that point at it, and checking that processes are gone.

#![allow(dead_code)]

pub mod haproxy;
pub mod toolchains;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mcp_registry_host::config::{Registry, ServerConfig};

/// Builds a workspace binary once per test process and returns its path.
fn build_bin(package: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = workspace_root();
    let out = Command::new(cargo)
        .current_dir(&root)
        // With the host package and the test targets beside it, cargo resolves features as
        // the outer `cargo test` did (dev-dependencies included), so the build is that one's:
        // nothing but this binary is compiled again.
        .args([
            "build",
            "--quiet",
            "--message-format=json",
            "--bins",
            "--tests",
        ])
        .args(["-p", package, "-p", "mcp-registry-host"])
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "building {package} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let plain_binary = msg["profile"]["test"] == false;
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == package && plain_binary
        {
            if let Some(exe) = msg["executable"].as_str() {
                return PathBuf::from(exe);
            }
        }
    }
    panic!("cargo did not report an executable for {package}");
}

/// The repository root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Path of the `mcp-test-server` binary (built on first use).
pub fn test_server() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| build_bin("mcp-test-server"))
}

/// A server config that runs the test server.
pub fn test_server_config() -> ServerConfig {
    ServerConfig::new(test_server().display().to_string(), Vec::<String>::new())
}

/// A registry of test servers under the given names.
pub fn registry(names: &[&str]) -> Registry {
    Registry::from_servers(names.iter().map(|n| (n.to_string(), test_server_config())))
}

/// Whether a process with this pid exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            // The state is the field after the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
    }
}

/// Waits up to 20 s for a pid to be gone; returns whether it is. (Generous: the whole suite
/// runs at once on two cores, and a killed host's watchdog must get a turn to run.)
pub fn gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The first text content of a tool result.
pub fn text(result: &rmcp::model::CallToolResult) -> String {
    let v = serde_json::to_value(result).expect("serialize result");
    v["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Direct children of this test process (pids), to check nothing of ours is left running.
pub fn children() -> Vec<u32> {
    children_of(std::process::id())
}

/// The live (not zombie) child processes of `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                let fields: Vec<&str> = stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect();
                if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent)
                    && fields.first() != Some(&"Z")
                {
                    kids.push(pid);
                }
            }
        }
    }
    kids
}

/// The Python interpreter itself (not a version manager's shim, which costs a second or more
/// to start on a loaded machine: longer than a probe waits for a silent server).
pub fn python3() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    })
}

/// Whether a test that needs an external peer must run (CI) or may skip.
pub fn peers_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The directory where `.ci/run` / `scripts/install-peers.sh` install npm and PyPI peers.
pub fn peers_dir() -> PathBuf {
    workspace_root().join(".peers")
}

/// `path`, an installed peer (`what` names it), or `None` with a printed reason to skip; under
/// CI, where `.ci/run` installs every peer, a missing one fails the test instead.
pub fn peer(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    assert!(
        !peers_required(),
        "{what} is missing at {} (CI=true makes peers mandatory; run scripts/install-peers.sh)",
        path.display()
    );
    eprintln!(
        "skipping: {what} not installed at {} (run scripts/install-peers.sh)",
        path.display()
    );
    None
}

/// Builds the workspace's guest components (examples and test guests) for
/// `wasm32-wasip2` once per test process and returns the path of `name`.wasm.
pub fn guest(name: &str) -> PathBuf {
    static GUESTS: OnceLock<std::collections::HashMap<String, PathBuf>> = OnceLock::new();
    let guests = GUESTS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "--message-format=json", "--target", "wasm32-wasip2"])
            // The guest SDK by name too, so that a lint run through this build (CI's) covers it.
            .args(["-p", "mcp-registry-guest", "-p", "fanout", "-p", "temporary"])
            .args(["-p", "probe", "-p", "hostile"])
            .output()
            .expect("run cargo build for the guests");
        assert!(
            out.status.success(),
            "building the wasm32-wasip2 guests failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut map = std::collections::HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            for f in msg["filenames"].as_array().into_iter().flatten() {
                if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                    let p = PathBuf::from(f);
                    let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
                    map.insert(stem, p);
                }
            }
        }
        map
    });
    guests
        .get(name)
        .unwrap_or_else(|| panic!("guest {name} was not built; have: {:?}", guests.keys()))
        .clone()
}

/// A cache directory shared by every test of this binary, as a user's cache would be:
/// compiled components are keyed by content, so tests that compile the same guest share the
/// work.
pub fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shared-cache")
}

/// [`shared_cache`], with the code-mode engines made and compiled (once per test process, by
/// the first test that needs them).
pub fn code_mode_cache() -> PathBuf {
    static WARM: OnceLock<()> = OnceLock::new();
    WARM.get_or_init(|| {
        let s = Scratch::new(serde_json::json!({}));
        // Both engines: the JavaScript one, and the Python one a first Python snippet loads.
        for (language, code) in [("typescript", "return 1"), ("python", "1")] {
            let out = Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
                .env("MCP_REGISTRY_CACHE_DIR", shared_cache())
                .arg("--config")
                .arg(&s.config)
                .args(["exec", "--language", language, "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write;
                    child.stdin.take().unwrap().write_all(code.as_bytes())?;
                    child.wait_with_output()
                })
                .unwrap();
            assert!(out.status.success(), "warming the {language} engine failed");
        }
    });
    shared_cache()
}

/// Reads the pids a test server wrote to its `MCP_TEST_PID_FILE`.
pub fn pids_in(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A registry of test servers under `names`, each appending its pid to `pid_file`, so a test
/// can check afterwards that every process it caused is gone.
pub fn pid_recording_registry(names: &[&str], pid_file: &Path) -> Registry {
    Registry::from_servers(names.iter().map(|n| {
        let mut cfg = test_server_config();
        cfg.env
            .insert("MCP_TEST_PID_FILE".into(), pid_file.display().to_string());
        (n.to_string(), cfg)
    }))
}

/// Tool arguments from a JSON literal (an object).
pub fn args(v: serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
    v.as_object().cloned()
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch directory with a registry file and a cache directory of its own, for tests that
/// run the CLI.
pub struct Scratch {
    /// The directory (removed when dropped).
    pub dir: tempfile::TempDir,
    /// The registry file in it.
    pub config: PathBuf,
}

impl Scratch {
    /// A registry of these `mcpServers`.
    pub fn new(servers: serde_json::Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            serde_json::json!({ "mcpServers": servers }).to_string(),
        )
        .unwrap();
        Scratch { dir, config }
    }

    /// A path in the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The cache directory (compiled components, protocol eras).
    pub fn cache(&self) -> PathBuf {
        self.path("cache")
    }

    /// `mcp-registry --config ... ARGS`, with the cache and the data directory (tokens) in
    /// the scratch directory.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-registry"));
        cmd.env("MCP_REGISTRY_CACHE_DIR", self.cache())
            .env("MCP_REGISTRY_DATA_DIR", self.path("data"))
            .arg("--config")
            .arg(&self.config)
            .args(args);
        cmd
    }
}

/// One HTTP/1.1 request over a fresh connection (`connection: close`), read to its end:
/// status, lower-cased head, body. A server that refuses before reading the whole request
/// may close early: that is an answer too.
pub async fn http_exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    match try_http_exchange(addr, method, path, headers, body).await {
        Ok(answer) => answer,
        // Closing without a response is an answer too (status 0).
        Err(e) if e == CLOSED => (0, String::new(), String::new()),
        Err(e) => panic!("HTTP {method} {addr}{path}: {e}"),
    }
}

const CLOSED: &str = "closed without a response";

/// [`http_exchange`], with a connection that cannot be made (or a peer that closes without a
/// word) as an error rather than a panic.
pub async fn try_http_exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    // The Host is the address reached, unless the caller names another (an ingress's).
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let _ = stream.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .map_err(|_| "no HTTP response within 30 s".to_owned())?;
    if response.is_empty() {
        return Err(CLOSED.into());
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_ascii_lowercase(), body.to_owned()))
}

/// A stateless 2026-07-28 `tools/call` over HTTP (`Authorization: Bearer KEY` if given, and
/// more `_meta`, a `traceparent` say): the status and the result's first text.
pub async fn mcp_call(
    addr: &str,
    key: Option<&str>,
    tool: &str,
    arguments: serde_json::Value,
    meta: serde_json::Value,
) -> (u16, String) {
    let mut body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    if let (Some(all), Some(more)) = (body["params"]["_meta"].as_object_mut(), meta.as_object()) {
        all.extend(more.clone());
    }
    let bearer = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool),
    ];
    if let Some(b) = &bearer {
        headers.push(("authorization", b));
    }
    let (status, _, body) = http_exchange(addr, "POST", "/mcp", &headers, &body.to_string()).await;
    let message: serde_json::Value = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:").or(l.starts_with('{').then_some(l)))
        .find_map(|t| serde_json::from_str(t.trim()).ok())
        .unwrap_or_default();
    let text = message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, text)
}

/// Appends `line` to the file `log` (a test's record of a child's stderr).
pub fn append_line(log: &Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let _ = writeln!(f, "{line}");
}

/// `mcp-registry --config REGISTRY serve --http 127.0.0.1:0 ARGS...` with `cache` as its
/// cache directory, killed when dropped: the child and its `HOST:PORT`.
pub async fn serve_http(
    config: &Path,
    cache: &Path,
    args: &[&str],
) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .env("MCP_REGISTRY_CACHE_DIR", cache)
        .arg("--config")
        .arg(config)
        .args(["serve", "--http", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = served_address(&mut child).await;
    (child, addr)
}

/// Reads a `serve --http` child's stderr (piped) until it names its MCP address
/// (`HOST:PORT`), then drains the rest in the background so the child never blocks on it.
pub async fn served_address(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncBufReadExt;
    let stderr = child.stderr.take().expect("serve's stderr is piped");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(url) = line.strip_prefix("mcp-registry: serving MCP on http://") {
            let addr = url.trim().trim_end_matches("/mcp").to_owned();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return addr;
        }
    }
    panic!("serve ended before it named its address");
}
