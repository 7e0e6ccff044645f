//! Builds the code-mode engines (the `code-mode-engine` crate: Boa, for JavaScript and
//! TypeScript; `code-mode-python`: Monty, for Python; each compiled to a `wasm32-wasip2`
//! component, both in one nested cargo run) so that the host binary embeds them: `serve
//! --code-mode` and `exec` then need no file beside the binary. The engines get a target
//! directory of their own (beside this build's), so this nested cargo never waits for the
//! lock of the build that runs it, and debug and release host builds share one engine build.
//!
//! `MCP_REGISTRY_ENGINE_WASM=PATH` (`MCP_REGISTRY_PYTHON_ENGINE_WASM` for Python) uses a
//! component built elsewhere instead. Without the `code-mode` feature there is nothing to
//! build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The engines: crate, the variable naming a prebuilt one, the variable the host reads.
const ENGINES: [(&str, &str, &str); 2] = [
    (
        "code-mode-engine",
        "MCP_REGISTRY_ENGINE_WASM",
        "CODE_MODE_ENGINE",
    ),
    (
        "code-mode-python",
        "MCP_REGISTRY_PYTHON_ENGINE_WASM",
        "CODE_MODE_PYTHON",
    ),
];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("the host crate is in the workspace");
    for (_, prebuilt, _) in ENGINES {
        println!("cargo:rerun-if-env-changed={prebuilt}");
    }
    if env::var_os("CARGO_FEATURE_CODE_MODE").is_none() {
        return;
    }
    let mut to_build = Vec::new();
    for (krate, prebuilt, var) in ENGINES {
        match env::var_os(prebuilt) {
            Some(path) => {
                let path = PathBuf::from(path);
                println!("cargo:rerun-if-changed={}", path.display());
                println!("cargo:rustc-env={var}={}", path.display());
            }
            None => to_build.push((krate, var)),
        }
    }
    if to_build.is_empty() {
        return;
    }
    for input in ["code-mode-engine", "code-mode-python", "wit", "Cargo.lock"] {
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
    build
        .current_dir(root)
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"]);
    for (krate, _) in &to_build {
        build.args(["-p", krate]);
    }
    let status = build.env("CARGO_TARGET_DIR", &target_dir).status();
    let wasm = |krate: &str| {
        target_dir.join(format!(
            "wasm32-wasip2/release/{}.wasm",
            krate.replace('-', "_")
        ))
    };
    match status {
        Ok(s) if s.success() && to_build.iter().all(|(k, _)| wasm(k).exists()) => {}
        Ok(_) => fail(
            "building the code-mode engines failed (see above); is the wasm32-wasip2 target \
             installed? `rustup target add wasm32-wasip2`",
        ),
        Err(e) => fail(&format!(
            "cannot run cargo to build the code-mode engines: {e}"
        )),
    }
    for (krate, var) in to_build {
        println!("cargo:rustc-env={var}={}", display(&wasm(krate)));
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
