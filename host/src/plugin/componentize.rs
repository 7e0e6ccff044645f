//! A core Wasm module (C, Go, Zig, any `wasm32-wasi` compiler) made into an orchestrator
//! component: this host's own WIT world embedded where the compiler left none (Go's does not;
//! `wit-bindgen c` links it in), and WASI preview 1 adapted to the preview 2 this host
//! links. It is what `wasm-tools component embed` + `component new --adapt` do, with the WIT
//! and the adapter this host was built with, so a plugin author needs no second tool and no
//! copy of the contract that could drift from it.

use std::path::Path;

use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

use super::PluginError;

/// The WIT files of the `orchestrator` world, as this host links it (path, text).
pub const WIT_FILES: &[(&str, &str)] = &[
    (
        "wit/orchestrator.wit",
        include_str!("../../../wit/orchestrator.wit"),
    ),
    (
        "wit/deps/io/io.wit",
        include_str!("../../../wit/deps/io/io.wit"),
    ),
];

/// The world every plugin implements.
pub const WORLD: &str = "orchestrator";

/// The WIT package's version (`mcp-registry:plugin@X.Y.Z`): the guest SDKs' versions follow it.
pub fn wit_version() -> &'static str {
    WIT_FILES[0]
        .1
        .split_once("package mcp-registry:plugin@")
        .and_then(|(_, rest)| rest.split_once(';'))
        .map_or("0.0.0", |(version, _)| version.trim())
}

/// Makes `core` (the bytes of a core module) an orchestrator component. `name` names it in
/// errors. An input that already is a component is returned as it is.
pub fn componentize(name: &str, core: &[u8]) -> Result<Vec<u8>, PluginError> {
    let invalid = |message: String| PluginError::Invalid {
        name: name.to_owned(),
        message,
    };
    if wasmparser::Parser::is_component(core) {
        return Ok(core.to_vec());
    }
    if !wasmparser::Parser::is_core_wasm(core) {
        return Err(invalid("not a Wasm module".into()));
    }
    let mut module = core.to_vec();
    if !has_component_type(core) {
        let (resolve, _, world) = world().map_err(|e| invalid(format!("{e:#}")))?;
        wit_component::embed_component_metadata(
            &mut module,
            &resolve,
            world,
            StringEncoding::UTF8,
            // The world's names as the WIT writes them (what the bindings import).
            false,
        )
        .map_err(|e| invalid(format!("cannot embed the {WORLD} world: {e:#}")))?;
    }
    let mut encoder = ComponentEncoder::default();
    // The adapter takes its own memory with `memory.grow` instead of calling the module's
    // `cabi_realloc`: Go's allocator cannot run before its runtime is up, and the runtime's
    // start-up is what first calls WASI.
    encoder.realloc_via_memory_grow(true);
    encoder
        .validate(true)
        .module(&module)
        .and_then(|encoder| {
            encoder.adapter(
                "wasi_snapshot_preview1",
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .and_then(|encoder| encoder.encode())
        .map_err(|e| invalid(format!("{e:#}")))
}

/// Reads `input`, componentizes it and writes `output`.
pub fn componentize_file(input: &Path, output: &Path) -> Result<usize, PluginError> {
    let core = std::fs::read(input).map_err(|source| PluginError::Read {
        path: input.to_owned(),
        source,
    })?;
    let component = componentize(&input.display().to_string(), &core)?;
    std::fs::write(output, &component).map_err(|source| PluginError::Read {
        path: output.to_owned(),
        source,
    })?;
    Ok(component.len())
}

/// Whether the module carries a `component-type` section (a world its bindings embedded).
fn has_component_type(core: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(core)
        .filter_map(Result::ok)
        .any(|payload| {
            matches!(payload, wasmparser::Payload::CustomSection(section)
                if section.name().starts_with("component-type"))
        })
}

/// The WIT package as a binary (a WIT package encoded as a component, what `wasm-tools
/// component wit --wasm` writes and `wkg`, `wit-bindgen` and `jco` read), for publishing it
/// with `push` in the Wasm OCI layout.
pub fn wit_package() -> Result<Vec<u8>, PluginError> {
    let invalid = |e: anyhow::Error| PluginError::Invalid {
        name: "wit".into(),
        message: format!("{e:#}"),
    };
    let (resolve, package, _) = world().map_err(invalid)?;
    wit_component::encode(&resolve, package, false).map_err(invalid)
}

/// This host's WIT resolved: the resolve, its package and the `orchestrator` world.
pub(super) fn world() -> anyhow::Result<(Resolve, wit_parser::PackageId, wit_parser::WorldId)> {
    let mut resolve = Resolve::default();
    // Dependencies first: a package can only use what is already in the resolve.
    let mut main = None;
    for (path, text) in WIT_FILES.iter().rev() {
        main = Some(resolve.push_str(path, text)?);
    }
    let main = main.ok_or_else(|| anyhow::anyhow!("no WIT"))?;
    let world = resolve.select_world(&[main], Some(WORLD))?;
    Ok((resolve, main, world))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_parses_and_bad_input_is_refused() {
        world().unwrap();
        let package = wit_package().unwrap();
        assert!(wasmparser::Parser::is_component(&package));
        let version = wit_version();
        assert_eq!(version.split('.').count(), 3, "{version}");
        let e = componentize("x.wasm", b"not wasm").unwrap_err();
        assert!(e.to_string().contains("not a Wasm module"), "{e}");
        // A core module that imports nothing the world has is still refused with a reason
        // (it exports neither `describe` nor `run`).
        let empty = b"\0asm\x01\0\0\0";
        let e = componentize("x.wasm", empty).unwrap_err();
        assert!(e.to_string().contains("x.wasm"), "{e}");
    }
}
