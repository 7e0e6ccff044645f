//! The Wasm OCI artifact layout (the CNCF TAG Runtime's "Wasm OCI Artifact" convention, as
//! wkg, wash and wassette write it): an OCI image manifest whose config is
//! `application/vnd.wasm.config.v0+json` and whose one layer is the component,
//! `application/wasm`. The config names the component's imports and exports, so a registry
//! browser or another runtime can tell what it needs without running it.

use oci_client::manifest::{OciDescriptor, OciImageManifest};
use serde_json::json;

use super::{sha256_digest, OciError};

/// The manifest media type we write and accept.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config media type of a Wasm artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The media type of the layer that holds the component.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// The blobs of a component's artifact.
pub(super) struct Artifact {
    pub(super) manifest: Vec<u8>,
    pub(super) config: Vec<u8>,
    pub(super) component: Vec<u8>,
}

/// The manifest, config and layer of a component's artifact.
pub(super) fn build(component: Vec<u8>, target: &str) -> Result<Artifact, OciError> {
    let (imports, exports) = interface(&component).map_err(|message| OciError::NotWasm {
        reference: target.to_owned(),
        message,
    })?;
    let layer_digest = sha256_digest(&component);
    let config = serde_json::to_vec(&json!({
        "created": created(),
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
        "component": {"exports": exports, "imports": imports},
    }))
    .unwrap_or_default();
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.into()),
        config: descriptor(WASM_CONFIG_MEDIA_TYPE, &config),
        layers: vec![descriptor(WASM_LAYER_MEDIA_TYPE, &component)],
        ..Default::default()
    };
    let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
    Ok(Artifact {
        manifest,
        config,
        component,
    })
}

/// A descriptor of some bytes.
pub(super) fn descriptor(media_type: &str, bytes: &[u8]) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.into(),
        digest: sha256_digest(bytes),
        size: bytes.len() as i64,
        ..Default::default()
    }
}

/// The layer holding the component, from a manifest's bytes.
pub(super) fn component_layer(manifest: &[u8]) -> Result<OciDescriptor, String> {
    let manifest: OciImageManifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("the manifest is not an OCI image manifest ({e})"))?;
    let mut wasm = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == WASM_LAYER_MEDIA_TYPE);
    match (wasm.next(), wasm.next()) {
        (Some(layer), None) => Ok(layer.clone()),
        (None, _) => Err(format!(
            "no {WASM_LAYER_MEDIA_TYPE} layer (config {}, layers: {})",
            manifest.config.media_type,
            manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (Some(_), Some(_)) => Err(format!("more than one {WASM_LAYER_MEDIA_TYPE} layer")),
    }
}

/// The component's own (outermost) import and export names.
fn interface(component: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    use wasmparser::{Parser, Payload};
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    let mut is_component = false;
    for payload in Parser::new(0).parse_all(component) {
        let payload = payload.map_err(|e| format!("not a Wasm binary: {e}"))?;
        match payload {
            Payload::Version { encoding, .. } if depth == 0 => {
                is_component = matches!(encoding, wasmparser::Encoding::Component);
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| e.to_string())?;
                    imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| e.to_string())?;
                    exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    if !is_component {
        return Err("a core Wasm module, not a component (build for wasm32-wasip2)".into());
    }
    Ok((imports, exports))
}

/// The config's creation time: `SOURCE_DATE_EPOCH` when set (reproducible pushes of the
/// same bytes give the same digest), else now.
fn created() -> String {
    let at = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .unwrap_or_else(chrono::Utc::now);
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
