//! Everything pulled, kept by its digest under `CACHE/oci/` and checked against that digest
//! again when read (a cache file changed on disk is dropped and fetched again). Writes go to a
//! temporary file renamed into place, so a concurrent reader never sees half a component.

use std::path::PathBuf;

use super::sha256_digest;
use super::signature::StoredSignature;

pub(super) struct DigestCache {
    root: Option<PathBuf>,
}

impl DigestCache {
    pub(super) fn new(root: Option<PathBuf>) -> Self {
        Self {
            root: root.map(|r| r.join("oci")),
        }
    }

    fn path(&self, kind: &str, digest: &str) -> Option<PathBuf> {
        let name = digest.replacen(':', "-", 1);
        if name.contains(['/', '\\', '.']) {
            return None;
        }
        Some(self.root.as_ref()?.join(kind).join(name))
    }

    /// Bytes stored under `digest` that still hash to it.
    fn verified(&self, kind: &str, digest: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.path(kind, digest)?).ok()?;
        (sha256_digest(&bytes) == digest).then_some(bytes)
    }

    fn put(&self, kind: &str, name: &str, bytes: &[u8]) {
        let Some(path) = self.path(kind, name) else {
            return;
        };
        if let Err(e) = crate::files::write_atomic(&path, bytes) {
            tracing::debug!(file = %path.display(), error = %e, "cannot write the OCI cache");
        }
    }

    pub(super) fn manifest(&self, digest: &str) -> Option<Vec<u8>> {
        self.verified("manifests", digest)
    }

    pub(super) fn put_manifest(&self, digest: &str, bytes: &[u8]) {
        self.put("manifests", digest, bytes);
    }

    pub(super) fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        self.verified("blobs", digest)
    }

    pub(super) fn put_blob(&self, digest: &str, bytes: &[u8]) {
        self.put("blobs", digest, bytes);
    }

    /// Signatures seen (and verified) for a digest; they are checked again on every use.
    pub(super) fn signatures(&self, digest: &str) -> Vec<StoredSignature> {
        self.path("signatures", digest)
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub(super) fn put_signatures(&self, digest: &str, found: &[StoredSignature]) {
        if let Ok(bytes) = serde_json::to_vec(found) {
            self.put("signatures", digest, &bytes);
        }
    }
}
