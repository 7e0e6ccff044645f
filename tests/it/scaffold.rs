//! `mcp-registry new --lang rust|python|js|c|go|zig`: each project is built with the command
//! its README documents, and passes its own `mcp-registry test`, with this host's WIT.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::toolchains::{toolchain, Native};
use crate::support::{peer, peers_dir, workspace_root};

/// The lines of the first ```sh block after `heading` in a generated README.
fn documented(readme: &Path, heading: &str) -> String {
    let text = std::fs::read_to_string(readme).unwrap();
    let after = text
        .split_once(heading)
        .unwrap_or_else(|| panic!("{heading} in {text}"))
        .1;
    let block = after.split_once("```sh\n").unwrap().1;
    block.split_once("```").unwrap().0.trim().to_owned()
}

/// Creates a project (against this checkout's guest SDKs with `sdk`, else the packages by
/// version), runs its documented build (`prepare` may adjust it) and test commands in it with
/// `path` first on PATH, and returns the test's output.
fn new_build_test(
    lang: &str,
    name: &str,
    path: &[PathBuf],
    sdk: bool,
    prepare: fn(&Path, String) -> String,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_mcp-registry"));
    let mut new = Command::new(bin);
    new.current_dir(dir.path())
        .args(["new", "--lang", lang, name]);
    if sdk {
        new.arg("--sdk").arg(workspace_root().join("guest-sdk"));
    }
    let out = new.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = dir.path().join(name);
    for wit in ["wit/orchestrator.wit", "wit/deps/io/io.wit"] {
        assert_eq!(
            std::fs::read_to_string(project.join(wit)).unwrap(),
            std::fs::read_to_string(workspace_root().join(wit)).unwrap(),
            "the project builds against the installed host's {wit}"
        );
    }
    let mut dirs = path.to_vec();
    dirs.push(bin.parent().unwrap().to_path_buf());
    let path_var = std::env::join_paths(dirs.into_iter().chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let readme = project.join("README.md");
    let run = |script: &str| {
        let out = Command::new("sh")
            .current_dir(&project)
            .env("PATH", &path_var)
            .args(["-ec", script])
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{lang}: `{script}` failed:\n{all}");
        all
    };
    run(&prepare(&project, documented(&readme, "## Build")));
    let test = documented(&readme, "## Test");
    assert!(test.starts_with("mcp-registry test "), "{test}");
    let output = run(&test);
    assert!(
        output.contains("test result: ok. 2 passed; 0 failed"),
        "{lang}: {output}"
    );
    output
}

#[test]
fn a_new_rust_plugin_builds_and_passes_its_own_test() {
    new_build_test("rust", "echo-plugin", &[], true, |project, build| {
        assert_eq!(build, "cargo build --release");
        // The SDK is a dependency by the WIT's version, patched to this checkout by `--sdk`.
        let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("mcp-registry-guest = \"0.1.1\"")
                && manifest.contains("[patch.crates-io]"),
            "{manifest}"
        );
        assert!(!project.join("mcp-registry-guest").exists());
        // Share one target directory across runs (the guest SDK's dependencies build once).
        let shared = workspace_root().join("target/scaffold");
        std::fs::create_dir_all(&shared).unwrap();
        std::os::unix::fs::symlink(&shared, project.join("target")).unwrap();
        build
    });
}

#[test]
fn a_new_python_plugin_builds_and_passes_its_own_test() {
    let Some(tool) = peer(
        peers_dir().join("venv/bin/componentize-py"),
        "componentize-py",
    ) else {
        return;
    };
    // The published package stands in as the wheel this checkout builds, installed in the
    // environment componentize-py bundles from (what `pip install -r requirements.txt` does
    // with the package on PyPI).
    let Some(wheel) = crate::packages::python_sdk_wheel() else {
        return;
    };
    let venv = tool.parent().unwrap().parent().unwrap().to_path_buf();
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--no-deps", "--force-reinstall"])
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    new_build_test(
        "python",
        "py-echo",
        &[tool.parent().unwrap().to_path_buf()],
        false,
        |project, build| {
            let requirements = std::fs::read_to_string(project.join("requirements.txt")).unwrap();
            assert!(
                requirements.contains("mcp-registry-guest==0.1.1"),
                "{requirements}"
            );
            // The project's README says: in an activated virtual environment.
            let venv = peers_dir().join("venv");
            format!("export VIRTUAL_ENV={}\n{build}", venv.display())
        },
    );
}

#[test]
fn a_new_javascript_plugin_builds_and_passes_its_own_test() {
    let Some(node) = peer(peers_dir().join("node_modules/.bin/node"), "Node 22") else {
        return;
    };
    let bins = node.parent().unwrap().to_path_buf();
    new_build_test("js", "js-echo", &[bins], true, |project, build| {
        // `npm install` would fetch componentize-js and rolldown again: the installed peers
        // stand in for them, and the SDK is linked where `npm install` puts a `file:` one.
        let modules = project.join("node_modules");
        std::fs::create_dir(&modules).unwrap();
        for entry in std::fs::read_dir(peers_dir().join("node_modules")).unwrap() {
            let entry = entry.unwrap();
            std::os::unix::fs::symlink(entry.path(), modules.join(entry.file_name())).unwrap();
        }
        std::os::unix::fs::symlink(
            workspace_root().join("guest-sdk/js"),
            modules.join("mcp-registry-guest"),
        )
        .unwrap();
        build
            .strip_prefix("npm install && ")
            .unwrap_or_else(|| panic!("{build}"))
            .to_owned()
    });
}

/// A C, Go or Zig project: `mcp-registry bindings`, the language's compiler, then
/// `mcp-registry componentize`, all as its README says.
fn native(lang: Native, name: &str) {
    let Some((path, _)) = toolchain(lang) else {
        return;
    };
    new_build_test(lang.name(), name, &path, false, |_, build| {
        assert!(
            build.contains("mcp-registry componentize core.wasm"),
            "{build}"
        );
        // What the test adds to the documented build: the compiler Debian names clang-19,
        // and Go kept off the network (the module it needs is in the project).
        format!("export CC=/usr/bin/clang-19 GOTOOLCHAIN=local GOPROXY=off\n{build}")
    });
}

#[test]
fn a_new_c_plugin_builds_and_passes_its_own_test() {
    native(Native::C, "c-echo");
}

#[test]
fn a_new_go_plugin_builds_and_passes_its_own_test() {
    native(Native::Go, "go-echo");
}

#[test]
fn a_new_zig_plugin_builds_and_passes_its_own_test() {
    native(Native::Zig, "zig-echo");
}

#[test]
fn new_refuses_bad_names_and_non_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let new = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mcp-registry"))
            .current_dir(dir.path())
            .arg("new")
            .args(args)
            .output()
            .unwrap()
    };
    let out = new(&["--lang", "rust", "Bad_Name"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lowercase letters"));
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    std::fs::write(dir.path().join("taken/keep.txt"), "mine").unwrap();
    let out = new(&["--lang", "js", "taken"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists and is not empty"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken/keep.txt")).unwrap(),
        "mine"
    );
}
