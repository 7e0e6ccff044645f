//! Helpers shared by the bench binaries: locating the repository and building the release
//! artifacts a bench runs (test server, CLI, guest components) through cargo.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `cargo build --release ARGS` and the path of the artifact whose name ends with `wanted`.
pub fn cargo_build(args: &[&str], wanted: &str) -> PathBuf {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args(["build", "--release", "--quiet", "--message-format=json"])
        .args(args)
        .output()
        .expect("cargo build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        if let Some(exe) = msg["executable"].as_str().filter(|e| e.ends_with(wanted)) {
            return PathBuf::from(exe);
        }
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(wanted)) {
                return PathBuf::from(f);
            }
        }
    }
    panic!("cargo reported no artifact named {wanted}");
}
