//! Scale-out: three `serve --http --tenants` replicas behind a real HAProxy (Debian's
//! package), configured by `deploy/haproxy.cfg` (what `docs/deploy.md` documents): tenant affinity by a consistent hash of the
//! `Authorization` header, health checks on `/readyz`, and retries only where no work was
//! done (a refused connection, a draining replica's 503).
//!
//! A client that knows only the public URL (the ingress's name) discovers the OAuth
//! protected-resource metadata under that name; a Host the service does not go by is refused.
//! Under load from 30 tenants: a replica killed with SIGKILL fails only the calls in flight on
//! it, its tenants move to the survivors, and its upstream processes go; a replica drained with
//! SIGTERM loses no call at all.

use crate::support::haproxy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{json, Value};

const TENANTS: usize = 30;
/// What clients know the service by: the ingress's name, not a replica's address.
const PUBLIC_URL: &str = "http://mcp.example.test/mcp";
const REPLICAS: usize = 3;
/// The replicas' idle timeout: a tenant's upstream left behind on a replica that no longer
/// serves it (its calls were retried elsewhere while HAProxy's view changed) closes after this.
const IDLE: Duration = Duration::from_secs(2);

struct Replica {
    child: tokio::process::Child,
    pid: u32,
}

/// `serve --http` with the tenants file; its address once it listens.
async fn replica(s: &Scratch, tenants: &str) -> (Replica, String) {
    let mut child = s
        .cli(&[
            "serve",
            "--http",
            "127.0.0.1:0",
            "--public-url",
            PUBLIC_URL,
            "--tenants",
            tenants,
            "--idle-timeout",
            &IDLE.as_secs().to_string(),
        ])
        .into_tokio();
    let addr = served_address(&mut child).await;
    let pid = child.id().unwrap();
    (Replica { child, pid }, addr)
}

trait IntoTokio {
    fn into_tokio(self) -> tokio::process::Child;
}

impl IntoTokio for std::process::Command {
    fn into_tokio(self) -> tokio::process::Child {
        let mut cmd = tokio::process::Command::from(self);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.spawn().unwrap()
    }
}

/// The key of tenant `i`.
fn key(i: usize) -> String {
    format!("scaleout-key-{i}")
}

/// A stateless `tools/call` through `front` as tenant `i`: the result's text, or why not.
async fn call(front: &str, i: usize, tool: &str, arguments: Value) -> Result<String, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let bearer = format!("Bearer {}", key(i));
    let headers = [
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool),
        ("authorization", bearer.as_str()),
    ];
    let (status, _, body) =
        try_http_exchange(front, "POST", "/mcp", &headers, &body.to_string()).await?;
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    let message: Value = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:").or(l.starts_with('{').then_some(l)))
        .find_map(|t| serde_json::from_str(t.trim()).ok())
        .unwrap_or_default();
    match message["result"]["content"][0]["text"].as_str() {
        Some(text) if message["result"]["isError"] != true => Ok(text.to_owned()),
        _ => Err(format!("no result: {message}")),
    }
}

/// The parent of `pid` (the replica an upstream process belongs to).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The upstream (test server) processes of a replica (not its watchdog).
fn upstreams_of(replica: u32) -> Vec<u32> {
    children_of(replica)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "mcp-test-server")
        })
        .collect()
}

/// The replica (by pid) that answers each tenant now: one `alpha__pid` call each.
async fn owners(front: &str) -> BTreeMap<usize, (u32, u32)> {
    let answers = futures::future::join_all((0..TENANTS).map(|i| async move {
        let pid: u32 = call(front, i, "alpha__pid", json!({}))
            .await
            .unwrap_or_else(|e| panic!("tenant {i}: {e}"))
            .parse()
            .unwrap();
        (i, (parent_of(pid).unwrap_or(0), pid))
    }))
    .await;
    answers.into_iter().collect()
}

/// A call's outcome under load: when a failed one ended, and why.
type Outcome = Result<(), (Instant, String)>;

/// Every tenant calls `alpha__sleep` in a loop until `stop`; each call's outcome, with when
/// it ended.
fn load(front: &str, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<Vec<Outcome>>> {
    (0..TENANTS)
        .map(|i| {
            let (front, stop) = (front.to_owned(), stop.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let r = call(&front, i, "alpha__sleep", json!({"ms": 150})).await;
                    outcomes.push(r.map(|_| ()).map_err(|e| (Instant::now(), e)));
                }
                outcomes
            })
        })
        .collect()
}

/// Waits until `pid` is gone (up to 15 s).
async fn wait_gone(pid: u32) -> bool {
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        if gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The replica that serves the most tenants.
fn busiest(owners: &BTreeMap<usize, (u32, u32)>) -> u32 {
    let mut count: BTreeMap<u32, usize> = BTreeMap::new();
    for (replica, _) in owners.values() {
        *count.entry(*replica).or_default() += 1;
    }
    count.into_iter().max_by_key(|(_, n)| *n).unwrap().0
}

/// A client that knows only the public URL (Host `mcp.example.test`, through HAProxy):
/// unauthenticated, it is pointed at the protected-resource metadata (RFC 9728) under that
/// name, which names the public URL as the resource; authenticated, its call gets through.
/// A Host the service does not go by is refused.
async fn discovery_behind_the_ingress(front: &str) {
    let host = ("host", "mcp.example.test");
    let json_headers = [
        host,
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "discovery", "version": "1"}}})
    .to_string();
    let (status, head, _) = http_exchange(front, "POST", "/mcp", &json_headers, &init).await;
    assert_eq!(status, 401, "{head}");
    let metadata_url = "http://mcp.example.test/.well-known/oauth-protected-resource";
    assert!(
        head.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{head}"
    );
    let path = metadata_url.trim_start_matches("http://mcp.example.test");
    let (status, _, body) = http_exchange(front, "GET", path, &[host], "").await;
    assert_eq!(status, 200, "{body}");
    let metadata: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(metadata["resource"], PUBLIC_URL, "{metadata}");
    let bearer = format!("Bearer {}", key(0));
    let mut authorized = json_headers.to_vec();
    authorized.push(("authorization", &bearer));
    let (status, head, _) = http_exchange(front, "POST", "/mcp", &authorized, &init).await;
    assert_eq!(status, 200, "{head}");
    // Another name for the same address (DNS rebinding): refused.
    let rebound = [
        ("host", "attacker.example"),
        json_headers[1],
        json_headers[2],
    ];
    let (status, _, _) = http_exchange(front, "POST", "/mcp", &rebound, &init).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_behind_haproxy_keep_tenants_apart_survive_a_kill_and_drain_without_loss() {
    use sha2::Digest;
    let Some(haproxy) = peer(
        PathBuf::from("/usr/sbin/haproxy"),
        "HAProxy (Debian's haproxy package)",
    ) else {
        return;
    };
    let s = Scratch::new(json!({"alpha": {"command": test_server().display().to_string()}}));
    let tenants: serde_json::Map<String, Value> = (0..TENANTS)
        .map(|i| {
            let digest: String = sha2::Sha256::digest(key(i).as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let grant = json!({"keys": [format!("sha256:{digest}")], "servers": ["alpha"]});
            (format!("t{i}"), grant)
        })
        .collect();
    let tenants_file = s.path("tenants.json");
    std::fs::write(&tenants_file, json!({ "tenants": tenants }).to_string()).unwrap();
    let tenants_file = tenants_file.display().to_string();
    let mut replicas = BTreeMap::new();
    let mut addrs = Vec::new();
    for _ in 0..REPLICAS {
        let (r, addr) = replica(&s, &tenants_file).await;
        replicas.insert(r.pid, r);
        addrs.push(addr);
    }
    let front = format!("127.0.0.1:{}", free_port());
    let config = s.path("haproxy.cfg");
    std::fs::write(
        &config,
        haproxy::haproxy_config(&workspace_root(), &front, &addrs),
    )
    .unwrap();
    let _haproxy = tokio::process::Command::new(haproxy)
        .arg("-db")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Up once every replica passed its health checks (rise 2).
    let until = Instant::now() + Duration::from_secs(20);
    while call(&front, 0, "alpha__echo", json!({"message": "up"}))
        .await
        .is_err()
    {
        assert!(Instant::now() < until, "HAProxy never answered on {front}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    discovery_behind_the_ingress(&front).await;

    // Affinity: a tenant is answered by the same upstream process every time, and the
    // tenants are spread over the replicas.
    let first = owners(&front).await;
    assert_eq!(first, owners(&front).await, "a tenant moved between calls");
    let used: BTreeSet<u32> = first.values().map(|(r, _)| *r).collect();
    assert!(used.len() >= 2, "every tenant on one replica: {first:?}");
    assert!(used.iter().all(|r| replicas.contains_key(r)), "{first:?}");

    // SIGKILL the busiest replica under load: only calls in flight on it fail; clients that
    // retry get through on the survivors.
    let victim = busiest(&first);
    let victims: BTreeSet<usize> = first
        .iter()
        .filter(|(_, (r, _))| *r == victim)
        .map(|(i, _)| *i)
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(&front, &stop);
    tokio::time::sleep(Duration::from_millis(800)).await;
    // SAFETY: kill(2) on a child of ours.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    let killed = Instant::now();
    let _ = replicas.remove(&victim).unwrap().child.wait().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    for (i, task) in running.into_iter().enumerate() {
        let outcomes = task.await.unwrap();
        // Every tenant's calls succeed again once HAProxy has seen the replica go (the
        // dead one's tenants on a survivor).
        assert!(
            outcomes.last().is_some_and(Result::is_ok),
            "tenant {i} did not get through after the kill: {:?}",
            outcomes.last()
        );
        for (when, error) in outcomes.into_iter().filter_map(Result::err) {
            assert!(
                victims.contains(&i),
                "tenant {i} was not on the killed replica, yet lost a call: {error}"
            );
            // What was in flight on it (sent, or queued in its listen backlog) when it died,
            // and what reached it before the health check (every 200 ms) saw it gone.
            let after = when.duration_since(killed);
            assert!(
                after < Duration::from_millis(700),
                "tenant {i} lost a call {after:?} after the kill: {error}"
            );
        }
    }
    // The killed replica's tenants moved; the others did not; its upstreams are gone.
    let second = owners(&front).await;
    for (i, (replica, pid)) in &second {
        assert_ne!(*replica, victim, "tenant {i} still on the dead replica");
        if !victims.contains(i) {
            assert_eq!(*pid, first[i].1, "tenant {i} lost its upstream");
        }
    }
    for i in &victims {
        assert!(
            wait_gone(first[i].1).await,
            "the dead replica's upstream {} lives on",
            first[i].1
        );
    }
    // Nothing leaks on the survivors: once idle, every upstream closes; then each tenant gets
    // exactly one, on the replica it belongs to.
    tokio::time::sleep(IDLE * 2).await;
    for replica in replicas.keys() {
        let until = Instant::now() + Duration::from_secs(10);
        while !upstreams_of(*replica).is_empty() {
            assert!(
                Instant::now() < until,
                "replica {replica} keeps {:?}",
                upstreams_of(*replica)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let second = owners(&front).await;
    for replica in replicas.keys() {
        let mut expected: Vec<u32> = second
            .values()
            .filter(|(r, _)| r == replica)
            .map(|(_, pid)| *pid)
            .collect();
        expected.sort();
        let mut live = upstreams_of(*replica);
        live.sort();
        assert_eq!(live, expected, "replica {replica}'s processes");
    }

    // SIGTERM the busiest survivor under load: no call is lost at all.
    let drained = busiest(&second);
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(&front, &stop);
    tokio::time::sleep(Duration::from_millis(800)).await;
    // SAFETY: kill(2) on a child of ours.
    assert_eq!(unsafe { libc::kill(drained as i32, libc::SIGTERM) }, 0);
    let exit = tokio::time::timeout(
        Duration::from_secs(30),
        replicas.remove(&drained).unwrap().child.wait(),
    )
    .await
    .expect("the drained replica did not exit")
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);
    let mut lost = Vec::new();
    for (i, task) in running.into_iter().enumerate() {
        for (_, e) in task.await.unwrap().into_iter().filter_map(Result::err) {
            lost.push((i, e));
        }
    }
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    assert!(lost.is_empty(), "lost in the drain: {lost:?}");
    let third = owners(&front).await;
    let last = *replicas.keys().next().unwrap();
    assert!(third.values().all(|(r, _)| *r == last), "{third:?}");
    for (i, (replica, pid)) in &second {
        if *replica == drained {
            assert!(
                wait_gone(*pid).await,
                "tenant {i}'s upstream outlived the drain"
            );
        }
    }
}
