//! Guests in other Wasm languages against the same WIT and the same host, with the same
//! assertions as the Rust guests: Python (componentize-py), JavaScript (componentize-js), and
//! C, Go and Zig (a core module from their own compiler, bindings from `mcp-registry bindings`, made a
//! component by `mcp-registry componentize`). The toolchains come from
//! `scripts/install-peers.sh` (pinned, under `.peers/`, and Debian's clang); with `CI=true`
//! they are mandatory, elsewhere a missing toolchain skips with a reason.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use crate::support::toolchains::{sh, toolchain, Native};
use crate::support::*;
use mcp_registry_host::plugin::{PluginHost, PluginPolicy};
use mcp_registry_host::Aggregator;
use serde_json::{json, Value};

fn out_dir() -> PathBuf {
    let dir = workspace_root().join("target/guests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Builds examples/<name>-fanout with scripts/build-guests.sh (what docs/authoring.md shows),
/// once per run, after `tools` found the toolchain (PATH directories and CC, or a skip).
fn built(
    name: &str,
    once: &OnceLock<Option<PathBuf>>,
    tools: impl FnOnce() -> Option<(Vec<PathBuf>, Option<PathBuf>)>,
) -> Option<PathBuf> {
    once.get_or_init(|| {
        let (path, cc) = tools()?;
        let started = Instant::now();
        sh(
            &workspace_root(),
            &format!("scripts/build-guests.sh {name}"),
            &path,
            cc.as_deref(),
        );
        eprintln!("built the {name} guest in {:?}", started.elapsed());
        Some(out_dir().join(format!("{name}-fanout.wasm")))
    })
    .clone()
}

fn python_guest() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    built("python", &BUILT, || {
        peer(
            peers_dir().join("venv/bin/componentize-py"),
            "componentize-py",
        )?;
        Some((Vec::new(), None))
    })
}

fn js_guest() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    built("js", &BUILT, || {
        peer(peers_dir().join("node_modules/.bin/node"), "Node 22")?;
        peer(
            peers_dir().join("node_modules/@bytecodealliance/componentize-js/src/cli.js"),
            "componentize-js",
        )?;
        Some((Vec::new(), None))
    })
}

fn native_guest(lang: Native) -> Option<PathBuf> {
    static BUILT: [OnceLock<Option<PathBuf>>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    built(lang.name(), &BUILT[lang as usize], || toolchain(lang))
}

/// A host over two test servers recording their pids; the compile cache is shared across
/// runs (components of 10-20 MB take seconds to compile, milliseconds to load).
fn host() -> (PluginHost, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let host = PluginHost::new(
        Aggregator::new(pid_recording_registry(&["alpha", "beta"], &pid_file)),
        Some(out_dir().join("compile-cache")),
    )
    .unwrap();
    (host, pid_file, dir)
}

async fn same_assertions_as_rust(guest: PathBuf, language: &str) {
    let (host, pid_file, _dir) = host();
    let plugin = host.load_file(&guest).unwrap();
    let describe: Value = host.describe(&plugin).await.unwrap().raw;
    assert_eq!(describe["name"], format!("{language}-fanout"));
    assert_eq!(describe["inputSchema"]["type"], "object");
    let policy = PluginPolicy::granting(["alpha", "beta"]);

    // Persistence through the guest's session: each server counts 1, 2, 3 in one process.
    let out = host
        .run(
            &plugin,
            &json!({"servers": ["alpha", "beta"], "rounds": 3}).to_string(),
            &policy,
        )
        .await
        .unwrap();
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["counters"]["alpha"], json!([1, 2, 3]), "{out}");
    assert_eq!(out["counters"]["beta"], json!([1, 2, 3]), "{out}");
    let hello = format!("hello from {}", full_name(language));
    assert_eq!(out["echoes"], json!([hello, hello]));
    // Cleanup: the session's processes are gone once the run returned.
    for pid in out["pids"].as_object().unwrap().values() {
        let pid: u32 = pid.as_str().unwrap().parse().unwrap();
        assert!(gone(pid), "{language}: server {pid} outlived the session");
    }

    // Temporary calls: a fresh process each time.
    let out = host
        .run(
            &plugin,
            &json!({"servers": ["alpha"], "mode": "temporary"}).to_string(),
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["counters"],
        json!([1, 1, 1])
    );

    // Error cases arrive as the right WIT variants.
    let out = host
        .run(
            &plugin,
            &json!({"servers": ["alpha"], "mode": "errors"}).to_string(),
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"array_args": "invalid-input", "unknown_tool": "not-found", "unknown_server": "denied",
               "bad_name": "invalid-input", "tool_error": true})
    );

    // A denied server is `denied`, reported through the plugin's own error.
    let denied = PluginPolicy {
        allowed_servers: vec!["alpha".into()],
        ..PluginPolicy::granting(["alpha", "beta"])
    };
    let e = host
        .run(&plugin, &json!({"servers": ["beta"]}).to_string(), &denied)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("denied"), "{language}: {e}");

    for pid in pids_in(&pid_file) {
        assert!(gone(pid), "{language}: server {pid} leaked");
    }
    assert_eq!(host.live_instances(), 0);
    assert_eq!(host.open_sessions(), 0);
}

fn full_name(language: &str) -> &str {
    match language {
        "js" => "javascript",
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_guest_behaves_like_the_rust_one() {
    let Some(guest) = python_guest() else { return };
    same_assertions_as_rust(guest, "python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_guest_behaves_like_the_rust_one() {
    let Some(guest) = js_guest() else { return };
    same_assertions_as_rust(guest, "js").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_guest_behaves_like_the_rust_one() {
    let Some(guest) = native_guest(Native::C) else {
        return;
    };
    same_assertions_as_rust(guest, "c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_guest_behaves_like_the_rust_one() {
    let Some(guest) = native_guest(Native::Go) else {
        return;
    };
    same_assertions_as_rust(guest, "go").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zig_guest_behaves_like_the_rust_one() {
    let Some(guest) = native_guest(Native::Zig) else {
        return;
    };
    same_assertions_as_rust(guest, "zig").await;
}
