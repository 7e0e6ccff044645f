//! The guest SDKs as packages, each built by its ecosystem's own tool: the Rust crate
//! (`cargo package`, with its verifying build, and `cargo doc`), the Python distribution
//! (`python -m build`: a wheel and an sdist, typed), the npm package (`npm pack`, with types
//! that TypeScript accepts); every SDK's version is the WIT package's; and a guest built
//! against the previous WIT version still runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::toolchains::{sh, toolchain, Native};
use crate::support::{peer, peers_dir, workspace_root};
use mcp_registry_host::plugin::componentize::wit_version;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{all}");
    all
}

/// The `version` of a TOML (`version = "..."`) or JSON (`"version": "..."`) manifest.
fn manifest_version(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(str::trim)
        .find_map(|line| {
            let value = line
                .strip_prefix("version = ")
                .or_else(|| line.strip_prefix("\"version\": "))?;
            Some(value.trim_matches([',', '"']).to_owned())
        })
        .unwrap_or_else(|| panic!("no version in {}", path.display()))
}

#[test]
fn every_guest_sdk_has_the_wit_packages_version() {
    let wit = wit_version();
    assert!(
        std::fs::read_to_string(workspace_root().join("wit/orchestrator.wit"))
            .unwrap()
            .contains(&format!("package mcp-registry:plugin@{wit};")),
        "the host's WIT is the workspace's"
    );
    for manifest in [
        "guest-sdk/Cargo.toml",
        "guest-sdk/python/pyproject.toml",
        "guest-sdk/js/package.json",
    ] {
        assert_eq!(
            manifest_version(&workspace_root().join(manifest)),
            wit,
            "{manifest} must carry the WIT package's version"
        );
    }
}

#[test]
fn the_rust_sdk_packages_and_documents() {
    let root = workspace_root();
    // A target directory of its own: the verifying build is a workspace of its own anyway,
    // and the CI's clippy wrapper is for this workspace's crates, not the packaged copy.
    let target = root.join("target/sdk-package");
    let cargo = || {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CLIPPY_ARGS");
        cmd
    };
    let listed = run(cargo().args([
        "package",
        "-p",
        "mcp-registry-guest",
        "--allow-dirty",
        "--list",
    ]));
    for file in ["wit/orchestrator.wit", "wit/deps/io/io.wit", "src/lib.rs"] {
        assert!(
            listed.lines().any(|l| l == file),
            "{file} not in:\n{listed}"
        );
    }
    assert!(
        !listed.contains("python/"),
        "other SDKs packaged:\n{listed}"
    );
    // The verifying build compiles the packaged copy on its own (the WIT travels with it).
    // For the one target the crate is for (docs.rs is told the same in its metadata).
    let wasm = ["--target", "wasm32-wasip2"];
    run(cargo()
        .args(["package", "-p", "mcp-registry-guest", "--allow-dirty"])
        .args(wasm));
    run(cargo()
        .args(["doc", "-p", "mcp-registry-guest", "--no-deps"])
        .args(wasm)
        .env("RUSTDOCFLAGS", "-D warnings"));
    assert!(target
        .join("wasm32-wasip2/doc/mcp_registry_guest/struct.Session.html")
        .exists());
}

/// The Python SDK built as a wheel and an sdist (from a copy: the build writes beside its
/// sources); the wheel's path.
pub fn python_sdk_wheel() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let python = peer(
                peers_dir().join("venv/bin/python"),
                "the peers' Python venv",
            )?;
            let out = workspace_root().join("target/sdk-python");
            let _ = std::fs::remove_dir_all(&out);
            let src = out.join("src");
            std::fs::create_dir_all(src.join("mcp_registry_guest")).unwrap();
            let sdk = workspace_root().join("guest-sdk/python");
            for file in [
                "pyproject.toml",
                "README.md",
                "mcp_registry_guest/__init__.py",
                "mcp_registry_guest/py.typed",
            ] {
                std::fs::copy(sdk.join(file), src.join(file)).unwrap();
            }
            let dist = out.join("dist");
            run(Command::new(python)
                .args(["-m", "build", "--no-isolation", "--outdir"])
                .arg(&dist)
                .arg(&src));
            let version = wit_version();
            assert!(dist
                .join(format!("mcp_registry_guest-{version}.tar.gz"))
                .exists());
            Some(dist.join(format!("mcp_registry_guest-{version}-py3-none-any.whl")))
        })
        .clone()
}

#[test]
fn the_python_sdk_builds_a_typed_wheel_and_an_sdist() {
    let Some(wheel) = python_sdk_wheel() else {
        return;
    };
    let python = peers_dir().join("venv/bin/python");
    let listing = run(Command::new(python)
        .args(["-m", "zipfile", "-l"])
        .arg(&wheel));
    for file in [
        "mcp_registry_guest/__init__.py",
        "mcp_registry_guest/py.typed",
    ] {
        assert!(
            listing.contains(file),
            "{file} not in the wheel:\n{listing}"
        );
    }
}

#[test]
fn the_javascript_sdk_packs_with_types() {
    let Some(tsc) = peer(peers_dir().join("node_modules/.bin/tsc"), "TypeScript") else {
        return;
    };
    let sdk = workspace_root().join("guest-sdk/js");
    let packed = run(Command::new("npm")
        .current_dir(&sdk)
        .args(["pack", "--dry-run", "--json"]));
    let packed: serde_json::Value = serde_json::from_str(&packed).unwrap();
    let files: Vec<&str> = packed[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    for file in [
        "mcp-registry-guest.js",
        "mcp-registry-guest.d.ts",
        "package.json",
    ] {
        assert!(files.contains(&file), "{file} not packed: {files:?}");
    }
    assert_eq!(packed[0]["version"], wit_version());
    // The types compile, and a use of them type-checks the way a plugin author writes it.
    let dir = tempfile::tempdir().unwrap();
    for file in ["mcp-registry-guest.js", "mcp-registry-guest.d.ts"] {
        std::fs::copy(sdk.join(file), dir.path().join(file)).unwrap();
    }
    std::fs::write(
        dir.path().join("use.ts"),
        "import { Session, joinAll, describe, RegistryError } from './mcp-registry-guest.js';\n\
         const session: Session = Session.open(['a']);\n\
         const results = joinAll([session.start('a__b', { x: 1 })]);\n\
         const text: string = describe({ name: 'n', description: 'd' });\n\
         if (results[0] instanceof RegistryError) { const kind: string = results[0].kind; }\n",
    )
    .unwrap();
    // tsc's launcher is a Node script: run by the peers' Node 22.
    run(Command::new(peers_dir().join("node_modules/.bin/node"))
        .arg(&tsc)
        .current_dir(dir.path())
        .args(["--noEmit", "--strict", "--module", "nodenext", "use.ts"]));
}

/// The compatibility rule (docs/authoring.md, "Versions"): a guest built against an older
/// 0.1.x WIT runs on this host. The C template, built against the frozen 0.1.0 contract.
#[test]
fn a_guest_built_against_the_previous_wit_runs_on_this_host() {
    let Some((path, cc)) = toolchain(Native::C) else {
        return;
    };
    let root = workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let app = std::fs::read_to_string(root.join("host/templates/c/app.c"))
        .unwrap()
        .replace("{{name}}", "old-echo");
    std::fs::write(dir.path().join("app.c"), app).unwrap();
    for file in ["cases.json", "recording.jsonl"] {
        std::fs::copy(
            root.join("host/templates/common").join(file),
            dir.path().join(file),
        )
        .unwrap();
    }
    let root = root.display();
    sh(
        dir.path(),
        &format!(
            "mcp-registry bindings c --wit {root}/tests/guests/wit-0.1.0 --out-dir gen\n\
             \"$CC\" --target=wasm32-wasi -mexec-model=reactor -O2 -Igen -I{root}/guest-sdk/c \
             app.c {root}/guest-sdk/c/mcp_registry_guest.c gen/orchestrator.c \
             gen/orchestrator_component_type.o -o core.wasm\n\
             mcp-registry componentize core.wasm -o old-echo.wasm"
        ),
        &path,
        cc.as_deref(),
    );
    let component = std::fs::read(dir.path().join("old-echo.wasm")).unwrap();
    let imports = |version: &str| {
        let name = format!("mcp-registry:plugin/registry@{version}");
        component.windows(name.len()).any(|w| w == name.as_bytes())
    };
    assert!(
        imports("0.1.0") && !imports(wit_version()),
        "not a 0.1.0 guest"
    );
    let out = sh(
        dir.path(),
        "mcp-registry test old-echo.wasm --cases cases.json",
        &path,
        None,
    );
    assert!(out.contains("2 passed; 0 failed"), "{out}");
}
