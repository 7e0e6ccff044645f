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

    /// Whether `bytes` would load without compiling: compiled in this process already, or in
    /// the cache directory.
    pub(super) fn has(&self, engine: &Engine, bytes: &[u8]) -> bool {
        let key = Self::key(bytes);
        lock(&self.compiled).contains_key(&key)
            || self.file(engine, &key).is_some_and(|f| f.is_file())
    }

    fn key(bytes: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(bytes);
        hasher.finalize().into()
    }

    /// The cache file of a component: named by its hash and this engine's configuration.
    fn file(&self, engine: &Engine, key: &[u8; 32]) -> Option<PathBuf> {
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        self.dir.as_ref().map(|dir| {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            dir.join(format!("{hex}-{:016x}.cwasm", engine_hash.finish()))
        })
    }

    /// The component of `bytes`, compiled by `engine` (or found in the cache).
    pub(super) fn compile(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        let key = Self::key(bytes);
        let mut compiled = lock(&self.compiled);
        if let Some(c) = compiled.get(&key) {
            return Ok(c.clone());
        }
        let file = self.file(engine, &key);
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
