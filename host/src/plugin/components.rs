//! Compiled components, cached by content: in memory for the life of the host, and on disk
//! across runs (a 20 MB Python guest takes seconds to compile and milliseconds to load).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::locks::lock;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The compile cache of one engine.
pub(super) struct ComponentCache {
    dir: Option<PathBuf>,
    compiled: Mutex<HashMap<[u8; 32], Component>>,
}

impl ComponentCache {
    /// A cache that keeps compiled components in `dir` too, if given.
    pub(super) fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The component of `bytes`, compiled by `engine` (or found in the cache).
    pub(super) fn compile(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let mut hasher = Sha256::new();
        hasher.update(bytes);
        let key: [u8; 32] = hasher.finalize().into();
        let mut compiled = lock(&self.compiled);
        if let Some(c) = compiled.get(&key) {
            return Ok(c.clone());
        }
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let file = self.dir.as_ref().map(|dir| {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            dir.join(format!("{hex}-{:016x}.cwasm", engine_hash.finish()))
        });
        if let Some(file) = file.as_ref().filter(|f| f.exists()) {
            // SAFETY: the file is in our own cache directory, named by the hash of the source
            // component and of this engine's configuration, and was written by `serialize`
            // below (atomically, via rename). A file that fails to deserialize is recompiled.
            match unsafe { Component::deserialize_file(engine, file) } {
                Ok(c) => {
                    compiled.insert(key, c.clone());
                    return Ok(c);
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "discarding bad compile cache entry")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(file) = file {
            let write = || -> std::io::Result<()> {
                let data = component.serialize().map_err(std::io::Error::other)?;
                crate::files::write_atomic(&file, &data)
            };
            if let Err(e) = write() {
                tracing::warn!(file = %file.display(), error = %e, "cannot write compile cache");
            }
        }
        compiled.insert(key, component.clone());
        Ok(component)
    }
}
