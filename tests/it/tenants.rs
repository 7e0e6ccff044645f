//! Multi-tenant `serve --http`: tenants as authenticated identities (API keys, JWTs), each
//! seeing only its own, sharing one bounded pool of upstream processes, and hostile clients
//! that get clear refusals while a well-behaved tenant keeps working.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ACME_KEY: &str = "acme-api-key-7f3c";
const BETA_KEY: &str = "beta-api-key-91aa";
const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "https://mcp.test/mcp";

pub(super) fn digest(key: &str) -> String {
    let d: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The issuer's keys: one of each accepted kind, and their JWK set.
struct Issuer {
    rsa: EncodingKey,
    rsa_public_pem: Vec<u8>,
    ec: EncodingKey,
    ed: EncodingKey,
    jwks: Value,
}

impl Issuer {
    fn new() -> Issuer {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
        use rsa::traits::PublicKeyParts;
        let mut rng = rand::thread_rng();
        let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let rsa_pem = rsa_key.to_pkcs8_pem(Default::default()).unwrap();
        let rsa_public = rsa_key.to_public_key();
        let rsa_public_pem = rsa_public
            .to_public_key_pem(Default::default())
            .unwrap()
            .into_bytes();
        let ec_key = p256::SecretKey::random(&mut rng);
        let ec_pem = ec_key.to_pkcs8_pem(Default::default()).unwrap();
        let point = ec_key.public_key().to_encoded_point(false);
        let ed_key = ed25519_dalek::SigningKey::generate(&mut rng);
        let ed_pem = ed_key.to_pkcs8_pem(Default::default()).unwrap();
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig",
             "n": b64(&rsa_public.n().to_bytes_be()), "e": b64(&rsa_public.e().to_bytes_be())},
            {"kty": "EC", "kid": "ec", "alg": "ES256", "crv": "P-256",
             "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())},
            {"kty": "OKP", "kid": "ed", "alg": "EdDSA", "crv": "Ed25519",
             "x": b64(ed_key.verifying_key().as_bytes())},
        ]});
        Issuer {
            rsa: EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap(),
            rsa_public_pem,
            ec: EncodingKey::from_ec_pem(ec_pem.as_bytes()).unwrap(),
            ed: EncodingKey::from_ed_pem(ed_pem.as_bytes()).unwrap(),
            jwks,
        }
    }

    /// A token for `tenant`, with `claims` changed as given.
    fn token(&self, alg: Algorithm, tenant: &str, change: impl FnOnce(&mut Value)) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 600,
                                "nbf": now - 10, "sub": "user-1", "tenant": tenant});
        change(&mut claims);
        let (kid, key) = match alg {
            Algorithm::RS256 => ("rsa", &self.rsa),
            Algorithm::ES256 => ("ec", &self.ec),
            _ => ("ed", &self.ed),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }
}

/// A `serve --http --tenants` set-up: servers `a` and `b` (test servers recording their
/// pids), `g` (shared by every tenant), tenants `acme` (servers a and g, a probe plugin, at
/// most 2 processes) and `beta` (server b, 3 calls a minute), keys and JWTs.
struct Setup {
    scratch: Scratch,
    pids: PathBuf,
    issuer: Issuer,
    _pids_dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let server = |extra: Value| {
        let mut entry = json!({"command": test_server().display().to_string(),
                               "env": {"MCP_TEST_PID_FILE": pids.display().to_string()}});
        if let (Value::Object(e), Value::Object(x)) = (&mut entry, extra) {
            e.extend(x);
        }
        entry
    };
    let scratch = Scratch::new(json!({
        "a": server(json!({})),
        "b": server(json!({})),
        "g": server(json!({"sharing": "global"})),
        "s": server(json!({"sharing": "session"})),
    }));
    let issuer = Issuer::new();
    std::fs::write(scratch.path("jwks.json"), issuer.jwks.to_string()).unwrap();
    std::fs::write(
        scratch.path("plugins.json"),
        json!({"plugins": {"probe": {"component": guest("probe").display().to_string(),
                                     "servers": ["a", "b"]}}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        scratch.path("tenants.json"),
        json!({
            "tenants": {
                "acme": {"keys": [digest(ACME_KEY)], "servers": ["a", "g", "s"],
                         "tools": ["a__*", "g__echo", "g__pid", "s__*"], "plugins": ["probe"],
                         "limits": {"processes": 2, "sessions": 1000}},
                "beta": {"keys": [digest(BETA_KEY)], "servers": ["b"],
                         "limits": {"calls_per_minute": 3}},
            },
            "jwt": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "jwks.json"},
        })
        .to_string(),
    )
    .unwrap();
    Setup {
        scratch,
        pids,
        issuer,
        _pids_dir: dir,
    }
}

/// `serve --http` of a set-up; the child and its `host:port`.
async fn serve(s: &Setup, extra: &[&str]) -> (tokio::process::Child, String) {
    let tenants = s.scratch.path("tenants.json");
    let plugins = s.scratch.path("plugins.json");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .env("MCP_REGISTRY_CACHE_DIR", s.scratch.cache())
        .arg("--config")
        .arg(&s.scratch.config)
        .args(["serve", "--http", "127.0.0.1:0"])
        .arg("--tenants")
        .arg(&tenants)
        .arg("--plugins")
        .arg(&plugins)
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = served_address(&mut child).await;
    (child, addr)
}

/// An HTTP response: status, lower-cased head, body.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) head: String,
    pub(super) body: String,
}

impl Reply {
    /// The JSON-RPC message of the body (plain JSON, or the first SSE `data:` line).
    pub(super) fn message(&self) -> Value {
        // SSE opens with an empty priming event; the message is the first JSON data line.
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data:").or(l.starts_with('{').then_some(l)))
            .find_map(|text| serde_json::from_str(text.trim()).ok())
            .unwrap_or_default()
    }

    pub(super) fn header(&self, name: &str) -> Option<String> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_owned())
    }
}

pub(super) async fn http(
    addr: &str,
    method: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Reply {
    let mut all = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
    let (status, head, body) = http_exchange(addr, method, "/mcp", &all, body).await;
    Reply { status, head, body }
}

/// A stateless 2026-07-28 `tools/call` of `tool` with credential `bearer`.
pub(super) async fn call(addr: &str, bearer: Option<&str>, tool: &str, arguments: Value) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28".to_string()),
        ("mcp-method", "tools/call".to_string()),
        ("mcp-name", tool.to_string()),
    ];
    if let Some(b) = bearer {
        headers.push(("authorization", format!("Bearer {b}")));
    }
    http(addr, "POST", &headers, &body.to_string()).await
}

/// A stateless request of `method` with credential `bearer`.
pub(super) async fn request(addr: &str, bearer: &str, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                             "io.modelcontextprotocol/clientCapabilities": {}});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let headers = vec![
        ("mcp-protocol-version", "2026-07-28".to_string()),
        ("mcp-method", method.to_string()),
        ("authorization", format!("Bearer {bearer}")),
    ];
    http(addr, "POST", &headers, &body.to_string())
        .await
        .message()
}

pub(super) fn text_of(reply: &Reply) -> String {
    reply.message()["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The well-behaved tenant: its call must work whatever else is going on.
async fn acme_still_works(addr: &str) {
    let r = call(addr, Some(ACME_KEY), "a__echo", json!({"message": "fine"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(text_of(&r), "fine", "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_valid_credentials_of_known_tenants_get_in() {
    let s = setup();
    let (_child, addr) = serve(&s, &[]).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let i = &s.issuer;
    let good = [
        ("API key", ACME_KEY.to_owned()),
        ("RS256", i.token(Algorithm::RS256, "acme", |_| {})),
        ("ES256", i.token(Algorithm::ES256, "acme", |_| {})),
        ("EdDSA", i.token(Algorithm::EdDSA, "acme", |_| {})),
    ];
    for (what, credential) in &good {
        let r = call(&addr, Some(credential), "a__echo", json!({"message": "in"})).await;
        assert_eq!(
            (r.status, text_of(&r)),
            (200, "in".to_owned()),
            "{what}: {}",
            r.body
        );
    }
    // HS256 signed with the issuer's public key as the secret: the classic confusion.
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "tenant": "acme"}),
        &EncodingKey::from_secret(&i.rsa_public_pem),
    )
    .unwrap();
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(
            json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "tenant": "acme"})
                .to_string()
                .as_bytes()
        )
    );
    // Change one character inside the signature (the last one may carry only padding bits,
    // which a lenient base64 decoder ignores).
    let mut tampered = i.token(Algorithm::RS256, "acme", |_| {});
    let at = tampered.rfind('.').unwrap() + 10;
    let flipped = if tampered.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(at..at + 1, flipped);
    let bad: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("garbage".into())),
        ("unknown key", Some("not-a-key-of-anyone".into())),
        (
            "expired",
            Some(i.token(Algorithm::RS256, "acme", |c| c["exp"] = json!(now - 3600))),
        ),
        (
            "not yet valid",
            Some(i.token(Algorithm::ES256, "acme", |c| c["nbf"] = json!(now + 3600))),
        ),
        (
            "wrong issuer",
            Some(i.token(Algorithm::EdDSA, "acme", |c| {
                c["iss"] = json!("https://evil")
            })),
        ),
        (
            "wrong audience",
            Some(i.token(Algorithm::RS256, "acme", |c| {
                c["aud"] = json!("https://other")
            })),
        ),
        ("alg none", Some(none)),
        ("HS256 with the public key", Some(hs256)),
        ("bad signature", Some(tampered)),
        (
            "unknown tenant",
            Some(i.token(Algorithm::RS256, "mallory", |_| {})),
        ),
    ];
    for (what, credential) in bad {
        let r = call(
            &addr,
            credential.as_deref(),
            "a__echo",
            json!({"message": "x"}),
        )
        .await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains("resource_metadata=")
                && challenge.contains("oauth-protected-resource"),
            "{what}: {challenge}"
        );
        if let Some(c) = &credential {
            assert!(
                !r.body.contains(c.as_str()),
                "{what}: the credential is echoed"
            );
        }
        acme_still_works(&addr).await;
    }
    // The metadata the challenge points to (RFC 9728).
    let meta = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let req = format!("GET /.well-known/oauth-protected-resource HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        serde_json::from_str::<Value>(&body).unwrap()
    };
    assert_eq!(meta["resource"], format!("http://{addr}/mcp"));
    assert_eq!(meta["authorization_servers"], json!([ISSUER]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_only_its_own_and_others_read_as_nonexistent() {
    let s = setup();
    let (_child, addr) = serve(&s, &[]).await;
    let tools = |bearer: &'static str| {
        let addr = addr.clone();
        async move {
            let m = request(&addr, bearer, "tools/list", json!({})).await;
            let mut names: Vec<String> = m["result"]["tools"]
                .as_array()
                .unwrap_or(&Vec::new())
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect();
            names.sort();
            names
        }
    };
    let acme = tools(ACME_KEY).await;
    assert!(
        acme.contains(&"a__echo".to_owned()) && acme.contains(&"probe".to_owned()),
        "{acme:?}"
    );
    assert!(
        acme.contains(&"g__echo".to_owned()) && !acme.contains(&"g__counter".to_owned()),
        "{acme:?}"
    );
    assert!(!acme.iter().any(|t| t.starts_with("b__")), "{acme:?}");
    let beta = tools(BETA_KEY).await;
    assert!(beta.iter().all(|t| t.starts_with("b__")), "{beta:?}");
    assert!(!beta.contains(&"probe".to_owned()), "{beta:?}");

    // Another tenant's tool, a tool outside its globs, a plugin it may not run, a prompt of
    // another's server: each the same error as a name that exists nowhere.
    let nowhere = call(&addr, Some(ACME_KEY), "zz__nothing", json!({}))
        .await
        .message();
    let expected =
        |name: &str| json!({"code": -32602, "message": format!("unknown tool \"{name}\"")});
    assert_eq!(nowhere["error"], expected("zz__nothing"));
    for (bearer, tool) in [
        (ACME_KEY, "b__echo"),
        (ACME_KEY, "g__counter"),
        (BETA_KEY, "probe"),
        (BETA_KEY, "a__echo"),
    ] {
        let m = call(&addr, Some(bearer), tool, json!({"message": "x"}))
            .await
            .message();
        assert_eq!(m["error"], expected(tool), "{tool}: {m}");
    }
    let prompt = request(
        &addr,
        ACME_KEY,
        "prompts/get",
        json!({"name": "b__test_simple_prompt"}),
    )
    .await;
    let nowhere = request(
        &addr,
        ACME_KEY,
        "prompts/get",
        json!({"name": "zz__test_simple_prompt"}),
    )
    .await;
    assert_eq!(
        prompt["error"]["code"], nowhere["error"]["code"],
        "{prompt}"
    );
    assert_eq!(
        prompt["error"]["message"]
            .as_str()
            .map(|m| m.replace("b__", "zz__")),
        nowhere["error"]["message"].as_str().map(str::to_owned)
    );
    // A plugin run for acme reaches only acme's servers, whatever its own policy grants.
    let r = call(
        &addr,
        Some(ACME_KEY),
        "probe",
        json!({"op": "grants", "server": "b"}),
    )
    .await;
    let v: Value = serde_json::from_str(&text_of(&r)).unwrap();
    assert_eq!(v["session"]["kind"], "denied", "{v}");
    assert_eq!(v["servers"], json!(["a"]), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_an_identity_not_a_session() {
    let s = setup();
    let (_child, addr) = serve(&s, &[]).await;
    // Three HTTP sessions of acme and its session-less requests share one process of `a`.
    let mut counts = Vec::new();
    for _ in 0..3 {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}});
        let auth = ("authorization", format!("Bearer {ACME_KEY}"));
        let r = http(
            &addr,
            "POST",
            std::slice::from_ref(&auth),
            &init.to_string(),
        )
        .await;
        let id = r.header("mcp-session-id").expect("a session");
        let headers = [
            auth,
            ("mcp-session-id", id),
            ("mcp-protocol-version", "2025-11-25".to_string()),
        ];
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                          "params": {"name": "a__counter", "arguments": {}}});
        let r = http(&addr, "POST", &headers, &body.to_string()).await;
        counts.push(text_of(&r));
    }
    counts.push(text_of(
        &call(&addr, Some(ACME_KEY), "a__counter", json!({})).await,
    ));
    assert_eq!(counts, ["1", "2", "3", "4"]);
    // `g` is shared by every tenant: beta cannot see it, acme's calls reach one process.
    let g1 = text_of(&call(&addr, Some(ACME_KEY), "g__pid", json!({})).await);
    let g2 = text_of(&call(&addr, Some(ACME_KEY), "g__pid", json!({})).await);
    assert_eq!(g1, g2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_hold_processes_rate_and_many_sessions() {
    let s = setup();
    let (child, addr) = serve(&s, &["--max-processes", "64"]).await;
    // acme may have 2 processes; `s` is per client session. Five sessions each want their own.
    let mut outcomes = Vec::new();
    let mut sessions = Vec::new();
    for _ in 0..5 {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}});
        let auth = ("authorization", format!("Bearer {ACME_KEY}"));
        let r = http(
            &addr,
            "POST",
            std::slice::from_ref(&auth),
            &init.to_string(),
        )
        .await;
        let headers = [
            auth,
            ("mcp-session-id", r.header("mcp-session-id").unwrap()),
            ("mcp-protocol-version", "2025-11-25".to_string()),
        ];
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                          "params": {"name": "s__pid", "arguments": {}}});
        outcomes.push(
            http(&addr, "POST", &headers, &body.to_string())
                .await
                .message(),
        );
        sessions.push(headers);
    }
    let refused: Vec<&Value> = outcomes
        .iter()
        .filter(|m| m.get("error").is_some())
        .collect();
    assert_eq!(
        refused.len(),
        3,
        "two processes, then refusals: {outcomes:?}"
    );
    for m in &refused {
        let message = m["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("limits.processes"), "{m}");
    }
    // Ending the sessions ends their processes and gives the budget back.
    for headers in &sessions {
        assert_eq!(http(&addr, "DELETE", headers, "").await.status, 200);
    }
    // beta may make 3 calls a minute.
    let mut rate = Vec::new();
    for _ in 0..4 {
        rate.push(
            call(&addr, Some(BETA_KEY), "b__echo", json!({"message": "x"}))
                .await
                .message(),
        );
    }
    assert!(
        rate[..3].iter().all(|m| m.get("result").is_some()),
        "{rate:?}"
    );
    let message = rate[3]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("limits.calls_per_minute"), "{}", rate[3]);
    acme_still_works(&addr).await;

    // 1,000 sessions of one tenant: processes stay bounded, and so does the host's memory.
    for _ in 0..1000 {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}});
        let auth = ("authorization", format!("Bearer {ACME_KEY}"));
        let r = http(&addr, "POST", &[auth], &init.to_string()).await;
        assert_eq!(r.status, 200);
    }
    acme_still_works(&addr).await;
    let live = pids_in(&s.pids).into_iter().filter(|p| alive(*p)).count();
    assert!(
        live <= 5,
        "{live} server processes alive (a, b, g and acme's two)"
    );
    let rss_kib = std::fs::read_to_string(format!("/proc/{}/status", child.id().unwrap()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    assert!(
        rss_kib < 256 * 1024,
        "serve holds {rss_kib} KiB after 1,000 sessions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_oversized_and_flooding_clients_hurt_only_themselves() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup();
    let (_child, addr) = serve(&s, &[]).await;
    // Headers that never finish: the connection is closed (the header deadline), not kept.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /mcp HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    acme_still_works(&addr).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(60), slow.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "a client that never finishes its headers is still connected"
    );
    // Headers of 200 KB, a body of 5 MB: refused.
    let big_header = ("x-padding", "x".repeat(200 * 1024));
    let r = http(&addr, "POST", &[big_header], "{}").await;
    assert!(
        r.status == 431 || r.status == 0 || r.status == 400,
        "{}",
        r.status
    );
    let r = call(
        &addr,
        Some(ACME_KEY),
        "a__echo",
        json!({"message": "y".repeat(5 << 20)}),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.head);
    // beta floods (past its rate), acme goes on.
    let flood = (0..50).map(|_| call(&addr, Some(BETA_KEY), "b__echo", json!({"message": "f"})));
    let (flood, _) = tokio::join!(futures::future::join_all(flood), acme_still_works(&addr));
    let limited = flood
        .iter()
        .filter(|r| r.body.contains("limits.calls_per_minute"))
        .count();
    assert!(limited >= 47, "{limited} of 50 flooding calls were limited");
}

#[test]
fn a_public_address_needs_tenants() {
    let s = Scratch::new(json!({"a": {"command": test_server().display().to_string()}}));
    let out = s
        .cli(&["serve", "--http", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tenants") && err.contains("--insecure-no-auth"),
        "{err}"
    );
}

/// The real clients: the TypeScript SDK and the Python `mcp` 2.3 client, with a key and a JWT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_clients_list_and_call_with_a_key_and_a_jwt() {
    let (Some(node), Some(python)) = (
        peer(peers_dir().join("node_modules/.bin/node"), "Node 22"),
        peer(peers_dir().join("venv/bin/python"), "PyPI mcp 2.3.0"),
    ) else {
        return;
    };
    // The driver scripts call `memory__read_graph` and `modern__*`: a registry with those.
    let memory = peers_dir().join("node_modules/@modelcontextprotocol/server-memory/dist/index.js");
    let Some(memory) = peer(memory, "npm server-memory") else {
        return;
    };
    let files = tempfile::tempdir().unwrap();
    let s = Scratch::new(json!({
        "memory": {"command": node.display().to_string(), "args": [memory.display().to_string()],
                   "env": {"MEMORY_FILE_PATH": files.path().join("m.jsonl").display().to_string()}},
        "modern": {"command": test_server().display().to_string()},
    }));
    let issuer = Issuer::new();
    std::fs::write(s.path("jwks.json"), issuer.jwks.to_string()).unwrap();
    std::fs::write(
        s.path("tenants.json"),
        json!({"tenants": {"acme": {"keys": [digest(ACME_KEY)], "servers": ["memory", "modern"]}},
               "jwt": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "jwks.json"}})
        .to_string(),
    )
    .unwrap();
    let setup = Setup {
        pids: s.path("pids"),
        scratch: s,
        issuer,
        _pids_dir: files,
    };
    let (_child, addr) = serve_plain(&setup).await;
    let url = format!("http://{addr}/mcp");
    let jwt = setup.issuer.token(Algorithm::ES256, "acme", |_| {});
    for (program, script, mode) in [
        (&node, "compat_client.mjs", "ts1"),
        (&node, "compat_client.mjs", "ts2-2026"),
        (&python, "compat_client.py", "2026-07-28"),
        (&python, "compat_client.py", "legacy"),
    ] {
        for token in [ACME_KEY.to_owned(), jwt.clone()] {
            let out = std::process::Command::new(program)
                .arg(workspace_root().join("tests/peers").join(script))
                .args([mode, "http", &url])
                .env("MCP_AUTH_TOKEN", &token)
                .output()
                .unwrap();
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            assert_eq!(v["echo"]["text"], "compat", "{mode} {script}: {v}");
            assert_eq!(v["memory_read_graph"]["ok"], true, "{mode} {script}: {v}");
        }
        // And without a credential, no way in.
        let out = std::process::Command::new(program)
            .arg(workspace_root().join("tests/peers").join(script))
            .args([mode, "http", &url])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert!(
            v.get("fatal").is_some() || v["echo"]["ok"] != true,
            "{mode}: {v}"
        );
    }
}

/// `serve --http --tenants` without plugins.
async fn serve_plain(s: &Setup) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .env("MCP_REGISTRY_CACHE_DIR", s.scratch.cache())
        .arg("--config")
        .arg(&s.scratch.config)
        .args(["serve", "--http", "127.0.0.1:0", "--tenants"])
        .arg(s.scratch.path("tenants.json"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = served_address(&mut child).await;
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstreams_are_closed() {
    let s = setup();
    let (_child, addr) = serve(&s, &["--idle-timeout", "1"]).await;
    let pid: u32 = text_of(&call(&addr, Some(ACME_KEY), "a__pid", json!({})).await)
        .parse()
        .unwrap();
    assert!(alive(pid));
    assert!(
        gone(pid),
        "an upstream unused for its idle timeout is still running"
    );
    // The next call starts it again.
    let again: u32 = text_of(&call(&addr, Some(ACME_KEY), "a__pid", json!({})).await)
        .parse()
        .unwrap();
    assert_ne!(pid, again);
}

/// `tenant-key` makes a key and the digest line a tenants file holds for it.
#[test]
fn tenant_key_prints_a_new_key_and_its_digest_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .arg("tenant-key")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let key = text
        .lines()
        .find_map(|l| l.rsplit_once("anywhere): ").map(|(_, k)| k.trim()))
        .unwrap_or_else(|| panic!("no key in {text}"));
    assert_eq!(key.len(), 64, "{text}");
    assert!(text.contains(&format!("\"{}\"", digest(key))), "{text}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
        .args(["tenant-key", "--digest-of-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{key}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest(key));
}

/// A 2026-07-28 request is session-less whatever `Mcp-Session-Id` it carries: a made-up id
/// buys it no session's own processes (each would be one more, past `limits.sessions`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_session_id_on_a_2026_request_buys_no_process() {
    let s = setup();
    let (_child, addr) = serve(&s, &[]).await;
    let mut pids = std::collections::BTreeSet::new();
    for id in ["", "made-up-1", "made-up-2", "made-up-3"] {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "s__pid", "arguments": {},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}});
        let mut headers = vec![
            ("mcp-protocol-version", "2026-07-28".to_string()),
            ("mcp-method", "tools/call".to_string()),
            ("mcp-name", "s__pid".to_string()),
            ("authorization", format!("Bearer {ACME_KEY}")),
        ];
        if !id.is_empty() {
            headers.push(("mcp-session-id", id.to_string()));
        }
        let r = http(&addr, "POST", &headers, &body.to_string()).await;
        let pid = text_of(&r);
        assert!(!pid.is_empty(), "{id}: {}", r.body);
        pids.insert(pid);
    }
    assert_eq!(
        pids.len(),
        1,
        "one process for every session-less request: {pids:?}"
    );
}
