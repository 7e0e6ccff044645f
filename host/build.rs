//! Builds the code-mode engine (the `code-mode-engine` crate: Boa compiled to a
//! `wasm32-wasip2` component) so that the host binary embeds it: `serve --code-mode` and
//! `exec` then need no file beside the binary. The engine gets a target directory of its own
//! (beside this build's), so this nested cargo never waits for the lock of the build that
//! runs it, and debug and release host builds share one engine build.
//!
//! `MCP_REGISTRY_ENGINE_WASM=PATH` uses a component built elsewhere instead. Without the
//! `code-mode` feature there is nothing to build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("the host crate is in the workspace");
    println!("cargo:rerun-if-env-changed=MCP_REGISTRY_ENGINE_WASM");
    if env::var_os("CARGO_FEATURE_CODE_MODE").is_none() {
        return;
    }
    if let Some(prebuilt) = env::var_os("MCP_REGISTRY_ENGINE_WASM") {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        println!("cargo:rustc-env=CODE_MODE_ENGINE={}", prebuilt.display());
        return;
    }
    for input in ["code-mode-engine", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    // OUT_DIR is <target>/<profile>/build/<crate>-<hash>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(&out_dir)
        .join("code-mode-engine");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    // Flags and wrappers meant for the host build (coverage flags, a wrapper that is not
    // clippy) are not for the engine. Under clippy (`CLIPPY_ARGS` set, as `cargo clippy` and
    // CI do) the driver stays: the engine is linted as it is built.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "RUSTC_WRAPPER"] {
        build.env_remove(var);
    }
    if env::var_os("CLIPPY_ARGS").is_none() {
        build.env_remove("RUSTC_WORKSPACE_WRAPPER");
    }
    println!("cargo:rerun-if-env-changed=CLIPPY_ARGS");
    let status = build
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "code-mode-engine",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .status();
    let wasm = target_dir.join("wasm32-wasip2/release/code_mode_engine.wasm");
    match status {
        Ok(s) if s.success() && wasm.exists() => {}
        Ok(_) => fail(
            "building the code-mode engine failed (see above); is the wasm32-wasip2 target \
             installed? `rustup target add wasm32-wasip2`",
        ),
        Err(e) => fail(&format!(
            "cannot run cargo to build the code-mode engine: {e}"
        )),
    }
    println!("cargo:rustc-env=CODE_MODE_ENGINE={}", display(&wasm));
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
