//! `mcp-registry bindings c|go`: a guest's bindings from the WIT, written by wit-bindgen's own
//! C and Go generators (the `c` and `go` of wit-bindgen 0.63's CLI, as libraries). A C, Go or
//! Zig author needs no tool beyond this host and a compiler, and the bindings are for the
//! contract this host links, or, with `--wit`, for another version of it (a guest that must
//! also run on older hosts builds against the oldest).

use std::path::{Path, PathBuf};

use wit_bindgen_core::{Files, WorldGenerator};
use wit_parser::Resolve;

use super::componentize::{world, WORLD};
use super::PluginError;

/// The languages whose bindings wit-bindgen's generators write here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BindingsLanguage {
    /// C (`orchestrator.h`, `orchestrator.c`, `orchestrator_component_type.o`); Zig uses them.
    C,
    /// Go (a `wit_component` module: `go.mod`, `wit_exports.go`, a package per interface).
    Go,
}

/// Writes `language`'s bindings of the `orchestrator` world into `out_dir`: of this host's WIT,
/// or of `wit` (a `wit/` directory or a binary WIT package). Returns the files written.
pub fn generate_bindings(
    language: BindingsLanguage,
    wit: Option<&Path>,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, PluginError> {
    let failed = |message: String| PluginError::Invalid {
        name: wit.map_or_else(|| "wit".to_owned(), |w| w.display().to_string()),
        message,
    };
    let (mut resolve, world) = match wit {
        None => world()
            .map(|(resolve, _, world)| (resolve, world))
            .map_err(|e| failed(format!("{e:#}")))?,
        Some(path) => {
            let mut resolve = Resolve::default();
            let (package, _) = resolve
                .push_path(path)
                .map_err(|e| failed(format!("{e:#}")))?;
            let world = resolve
                .select_world(&[package], Some(WORLD))
                .map_err(|e| failed(format!("{e:#}")))?;
            (resolve, world)
        }
    };
    let mut generator: Box<dyn WorldGenerator> = match language {
        BindingsLanguage::C => wit_bindgen_c::Opts::default().build(),
        BindingsLanguage::Go => wit_bindgen_go::Opts::default().build(),
    };
    let mut files = Files::default();
    generator
        .generate(&mut resolve, world, &mut files)
        .map_err(|e| failed(format!("{e:#}")))?;
    let mut written = Vec::new();
    for (name, bytes) in files.iter() {
        let path = out_dir.join(name);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, bytes)
        };
        write().map_err(|source| PluginError::Read {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_bindings_of_this_hosts_wit() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate_bindings(BindingsLanguage::C, None, dir.path()).unwrap();
        assert!(
            files.iter().any(|f| f.ends_with("orchestrator.h")),
            "{files:?}"
        );
        let header = std::fs::read_to_string(dir.path().join("orchestrator.h")).unwrap();
        assert!(header.contains("mcp_registry_plugin_progress_report"));
        let e = generate_bindings(
            BindingsLanguage::Go,
            Some(Path::new("/nonexistent")),
            dir.path(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent"), "{e}");
    }
}
