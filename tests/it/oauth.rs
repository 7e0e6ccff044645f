//! Remote servers that take an OAuth sign-in (`"auth": "oauth"`), against an authorization
//! server and a protected MCP server this project did not write: the Python `mcp` SDK's own
//! (`tests/peers/oauth_server.py` only supplies an in-memory provider that approves without a
//! person). The sign-in runs through the real CLI and its loopback redirect, with the test as
//! the browser; the calls after it run through the real CLI too.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::support::*;
use serde_json::{json, Value};

/// The SDK's OAuth-protected server; it exits when dropped (its stdin closes) and is killed.
struct OAuthServer {
    child: Child,
    url: String,
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OAuthServer {
    /// Starts one with these flags (`--iss`, `--access-token-ttl 3`, ...).
    fn start(flags: &[&str]) -> Option<Self> {
        let python = peer(peers_dir().join("venv/bin/python"), "PyPI mcp 2.3.0 (venv)")?;
        let mut child = Command::new(python)
            .arg(workspace_root().join("tests/peers/oauth_server.py"))
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let url = line.trim().to_owned();
        assert!(
            url.ends_with("/mcp"),
            "the OAuth server did not start: {line:?}"
        );
        Some(OAuthServer { child, url })
    }

    /// What its provider counted (registrations, refreshes, ...).
    fn stats(&self) -> Value {
        let (status, _, body) = get(&self.url.replace("/mcp", "/test/stats"));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn revoke_all(&self) {
        let url = self.url.replace("/mcp", "/test/revoke-all");
        let (status, _, body) = request("POST", &url);
        assert_eq!(status, 200, "{body}");
    }
}

/// One plain HTTP/1.1 request, redirects not followed: status, `location`, body.
fn request(method: &str, url: &str) -> (u16, Option<String>, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("location")
            .then(|| value.trim().to_owned())
    });
    (status, location, body.to_owned())
}

fn get(url: &str) -> (u16, Option<String>, String) {
    request("GET", url)
}

/// A registry with one OAuth server `secure` at `url`; the data directory (the tokens) is the
/// scratch directory's own.
fn registry(url: &str) -> Scratch {
    Scratch::new(json!({"secure": {"url": url, "auth": "oauth"}}))
}

fn token_file(s: &Scratch) -> std::path::PathBuf {
    s.path("data").join("oauth").join("secure.json")
}

/// `auth secure --no-browser`, with the test as the browser: it opens the URL the command
/// prints (the authorization server approves at once and redirects), then follows the
/// redirect to the command's loopback listener.
fn sign_in(s: &Scratch) -> Output {
    sign_in_with(s, &[])
}

/// [`sign_in`] with more arguments (`--tenant NAME`).
fn sign_in_with(s: &Scratch, extra: &[&str]) -> Output {
    let mut child = s
        .cli(&["auth", "secure", "--no-browser"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap_or(0) > 0 {
        printed.push_str(&line);
        if line.starts_with("http") {
            break;
        }
        line.clear();
    }
    if line.starts_with("http") {
        let (status, location, body) = get(line.trim());
        let location = location.unwrap_or_else(|| panic!("no redirect ({status}): {body}"));
        assert!(
            location.starts_with("http://127.0.0.1:"),
            "the redirect goes to the loopback listener: {location}"
        );
        // Another local process's forged callback (a made-up state, or an error) is not
        // taken for the browser's: it gets 404 and the sign-in waits on.
        let listener = &location[..location.find("/callback").unwrap()];
        for forged in [
            "/callback?code=evil&state=forged",
            "/callback?error=x&state=forged",
        ] {
            let (status, _, _) = get(&format!("{listener}{forged}"));
            assert_eq!(status, 404, "{forged}");
        }
        let (status, _, page) = get(&location);
        assert_eq!(status, 200, "{page}");
    }
    let _ = stdout.read_to_string(&mut printed);
    let mut out = child.wait_with_output().unwrap();
    out.stdout = printed.into_bytes();
    out
}

/// The access and refresh tokens a token file holds.
fn tokens(file: &std::path::Path) -> std::collections::BTreeSet<String> {
    let saved: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    ["access_token", "refresh_token"]
        .into_iter()
        .map(|field| {
            saved["credentials"]["token_response"][field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field}: {saved}"))
                .to_owned()
        })
        .collect()
}

/// What `whoami` answered (its text, as JSON).
fn answer(out: &Output) -> Value {
    assert!(out.status.success(), "{}", both(out));
    let result: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", both(out)));
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {result}"))
}

/// `call secure__whoami` (with `-vv`: every log line there is).
fn whoami(s: &Scratch) -> Output {
    s.cli(&["-vv", "call", "secure__whoami"]).output().unwrap()
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn sign_in_once_then_calls_carry_the_token_refreshed_until_revoked() {
    // RFC 9207's iss in the redirect, RFC 8707's resource bound into the token, and access
    // tokens that expire in 3 s.
    let Some(server) =
        OAuthServer::start(&["--iss", "--validate-resource", "--access-token-ttl", "3"])
    else {
        return;
    };
    let s = registry(&server.url);

    // Before any sign-in the error says what to do.
    let out = whoami(&s);
    assert!(!out.status.success());
    assert!(
        both(&out).contains("mcp-registry auth secure"),
        "{}",
        both(&out)
    );

    let out = sign_in(&s);
    assert!(out.status.success(), "{}", both(&out));
    assert!(
        both(&out).contains("signed in to \"secure\""),
        "{}",
        both(&out)
    );
    let file = token_file(&s);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600, "the token file is its owner's only");
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    // Every token the file ever held: none may show in any output.
    let mut seen = tokens(&file);
    assert_eq!(server.stats()["registrations"], 1, "registered dynamically");

    let out = whoami(&s);
    let me = answer(&out);
    assert_eq!(me["authenticated"], true, "{me}");
    assert_eq!(me["subject"], "test-user", "{me}");
    assert_eq!(
        me["resource"],
        server.url.as_str(),
        "the token is bound to the resource"
    );
    let mut outputs = vec![both(&out)];

    // Past the access token's life, the next call refreshes it (before expiry or on the 401).
    std::thread::sleep(Duration::from_secs(4));
    let out = whoami(&s);
    assert_eq!(answer(&out)["authenticated"], true);
    assert!(
        server.stats()["refreshes"].as_u64() >= Some(1),
        "{}",
        server.stats()
    );
    seen.extend(tokens(&file));
    assert!(seen.len() >= 4, "the refresh saved new tokens: {seen:?}");
    outputs.push(both(&out));

    // A code-mode snippet's calls go through the same connections, with the token.
    let (record, ok) = super::codemode::exec(
        &s,
        "(await tools.secure.whoami())['subject']",
        &["--language", "python"],
    );
    assert!(ok, "{record}");
    assert_eq!(record["value"], "test-user", "{record}");

    // No token text in any output: not in -vv logs, `list`, `show`, `get`.
    for args in [&["-vv", "list"][..], &["show"], &["get", "secure"]] {
        outputs.push(both(&s.cli(args).output().unwrap()));
    }

    // Tokens are for the URL they were given for: the same name at another URL is not
    // signed in.
    let Some(other) = OAuthServer::start(&[]) else {
        return;
    };
    let moved = Scratch::new(json!({"secure": {"url": other.url, "auth": "oauth"}}));
    std::fs::create_dir_all(moved.path("data").join("oauth")).unwrap();
    std::fs::copy(&file, token_file(&moved)).unwrap();
    let out = whoami(&moved);
    assert!(!out.status.success());
    assert!(
        both(&out).contains("mcp-registry auth secure"),
        "{}",
        both(&out)
    );
    assert_eq!(other.stats()["code_exchanges"], 0);

    // Revoked (the refresh token too): the error says to sign in again.
    server.revoke_all();
    let out = whoami(&s);
    assert!(!out.status.success());
    let text = both(&out);
    assert!(text.contains("mcp-registry auth secure"), "{text}");
    outputs.push(text);
    for text in &outputs {
        for token in &seen {
            assert!(
                !text.contains(token.as_str()),
                "a token in the output: {text}"
            );
        }
    }

    let out = s.cli(&["auth", "secure", "--logout"]).output().unwrap();
    assert!(out.status.success(), "{}", both(&out));
    assert!(!file.exists(), "--logout deletes the tokens");
}

#[test]
fn an_authorization_response_from_another_issuer_is_refused() {
    // The server advertises RFC 9207 and sends back an issuer that is not its own.
    let Some(server) = OAuthServer::start(&["--iss", "--iss-value", "http://127.0.0.1:9/evil"])
    else {
        return;
    };
    let s = registry(&server.url);
    let out = sign_in(&s);
    assert!(!out.status.success(), "{}", both(&out));
    assert!(
        both(&out).to_lowercase().contains("issuer"),
        "{}",
        both(&out)
    );
    assert!(!token_file(&s).exists());
    assert_eq!(
        server.stats()["code_exchanges"],
        0,
        "the code was not spent"
    );
}

#[test]
fn auth_names_the_field_for_a_server_without_oauth() {
    let s = Scratch::new(json!({"plain": {"url": "http://127.0.0.1:9/mcp"}}));
    let out = s.cli(&["auth", "plain", "--no-browser"]).output().unwrap();
    assert!(!out.status.success());
    let text = both(&out);
    assert!(
        text.contains("server \"plain\"") && text.contains("field \"auth\""),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_serve_a_tenant_uses_its_own_sign_in_or_the_operators() {
    use super::tenants::{call, digest};
    const OWN: &str = "own-tenant-key-5b21";
    const UNSIGNED: &str = "unsigned-tenant-key-0c7e";
    const SHARED: &str = "shared-tenant-key-e94d";
    let Some(server) = OAuthServer::start(&[]) else {
        return;
    };
    let s = registry(&server.url);
    std::fs::write(
        s.path("tenants.json"),
        json!({"tenants": {
            "own": {"keys": [digest(OWN)], "servers": ["secure"], "oauth": "own"},
            "unsigned": {"keys": [digest(UNSIGNED)], "servers": ["secure"], "oauth": "own"},
            "shared": {"keys": [digest(SHARED)], "servers": ["secure"]},
        }})
        .to_string(),
    )
    .unwrap();
    // The operator signs in for itself, and for the tenant "own".
    let scratch = &s;
    for extra in [&[][..], &["--tenant", "own"]] {
        let out = sign_in_with(scratch, extra);
        assert!(out.status.success(), "{}", both(&out));
    }
    let client_of = |file: std::path::PathBuf| {
        let saved: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        saved["credentials"]["client_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let operators = client_of(token_file(&s));
    let owns = client_of(s.path("data").join("oauth/tenants/own/secure.json"));
    assert_ne!(operators, owns, "two sign-ins, two registrations");

    // serve's log (the operator's) goes to a file the test reads.
    let log = s.path("serve.log");
    let _child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .env("MCP_REGISTRY_CACHE_DIR", s.cache())
        .env("MCP_REGISTRY_DATA_DIR", s.path("data"))
        .arg("--config")
        .arg(&s.config)
        .args(["serve", "--http", "127.0.0.1:0", "--tenants"])
        .arg(s.path("tenants.json"))
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let text = logged();
        if let Some(at) = text.find("serving MCP on http://") {
            let rest = &text[at + "serving MCP on http://".len()..];
            break rest
                .lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches("/mcp")
                .to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve named no address: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let whoami = |key: &'static str| {
        let addr = addr.clone();
        async move {
            let reply = call(&addr, Some(key), "secure__whoami", json!({})).await;
            let message = reply.message();
            let text = message["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (serde_json::from_str::<Value>(&text).ok(), reply.body)
        }
    };
    let (me, body) = whoami(OWN).await;
    assert_eq!(me.unwrap_or_default()["client_id"], owns.as_str(), "{body}");
    let (me, body) = whoami(SHARED).await;
    assert_eq!(
        me.unwrap_or_default()["client_id"],
        operators.as_str(),
        "{body}"
    );
    // A tenant with its own sign-in that has none is not given the operator's: its call
    // fails (opaquely, as every upstream failure does for a tenant), and the operator's log
    // says what to run.
    let (me, body) = whoami(UNSIGNED).await;
    assert!(me.is_none(), "{body}");
    assert!(body.contains("\"isError\":true"), "{body}");
    assert!(
        logged().contains("mcp-registry auth secure --tenant unsigned"),
        "{}",
        logged()
    );
    assert_eq!(server.stats()["code_exchanges"], 2);

    // A reload that gives "shared" a sign-in of its own (it has none) takes the operator's
    // from it: its connections made with the operator's tokens are closed.
    std::fs::write(
        s.path("tenants.json"),
        json!({"tenants": {
            "own": {"keys": [digest(OWN)], "servers": ["secure"], "oauth": "own"},
            "unsigned": {"keys": [digest(UNSIGNED)], "servers": ["secure"], "oauth": "own"},
            "shared": {"keys": [digest(SHARED)], "servers": ["secure"], "oauth": "own"},
        }})
        .to_string(),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (me, body) = whoami(SHARED).await;
        if me.is_none() {
            assert!(body.contains("\"isError\":true"), "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still the operator's sign-in: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (me, body) = whoami(OWN).await;
    assert_eq!(me.unwrap_or_default()["client_id"], owns.as_str(), "{body}");

    let log = logged();
    for file in [
        token_file(&s),
        s.path("data").join("oauth/tenants/own/secure.json"),
    ] {
        for token in tokens(&file) {
            assert!(!log.contains(&token), "a token in serve's log");
        }
    }
}

#[test]
fn a_tenant_with_its_own_sign_in_cannot_reach_a_globally_shared_oauth_server() {
    use super::tenants::digest;
    let s = Scratch::new(json!({
        "g": {"url": "http://127.0.0.1:9/mcp", "auth": "oauth", "sharing": "global"},
    }));
    std::fs::write(
        s.path("tenants.json"),
        json!({"tenants": {"own": {"keys": [digest("own-key-42")], "servers": ["g"], "oauth": "own"}}})
            .to_string(),
    )
    .unwrap();
    let tenants = s.path("tenants.json");
    let out = s
        .cli(&[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--tenants",
            tenants.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = both(&out);
    assert!(
        text.contains("tenant \"own\"") && text.contains("\"sharing\": \"global\""),
        "{text}"
    );
}
