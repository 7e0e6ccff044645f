//! Plugins distributed through OCI registries: `oci://REGISTRY/REPO@sha256:DIGEST` wherever a
//! component path is accepted, and `mcp-registry push` to publish one.
//!
//! Why OCI: it is where the peers that distribute Wasm tools (wassette, hyper-mcp) keep
//! them, every cloud has a registry, and a digest names bytes, not a place. A component is
//! stored in the Wasm OCI artifact layout (a `application/vnd.wasm.config.v0+json` config and
//! one `application/wasm` layer), so other tools of that convention can pull what we push.
//!
//! What a pull guarantees, in this order, before anything is compiled:
//! 1. the manifest's bytes hash to the digest asked for (a tag is resolved first, with a
//!    warning: tags move);
//! 2. when the policy asks for signatures (`signed_by`), one of the digest's cosign
//!    signatures verifies with one of the keys ([`signature`]);
//! 3. the component's bytes hash to the layer digest the manifest names.
//!
//! Manifests, verified signatures and components are cached by digest ([`cache`]), so a
//! plugin pinned by digest runs with the registry down once it has been pulled.

pub mod artifact;
mod cache;
mod reference;
mod remote;
pub mod signature;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

pub use reference::{ComponentSource, OciReference};
use remote::RemoteRegistry;

pub use artifact::{WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE};
pub use signature::{SigningKey, TrustedKey};

/// The scheme that marks a component reference as an OCI one.
pub const SCHEME: &str = "oci://";

/// An error of fetching or publishing a component.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OciError {
    /// The reference is not `oci://REGISTRY/REPO(:TAG|@sha256:DIGEST)`.
    #[error("{reference}: not an OCI reference ({message}); write oci://REGISTRY/REPOSITORY@sha256:DIGEST")]
    BadReference {
        /// The text given.
        reference: String,
        /// What is wrong with it.
        message: String,
    },
    /// The registry could not be reached or refused the request.
    #[error("{reference}: {message}")]
    Registry {
        /// The reference being fetched or pushed.
        reference: String,
        /// What went wrong, without credentials.
        message: String,
    },
    /// The registry has no manifest for this reference.
    #[error("{reference}: the registry has no such manifest (wrong digest or tag?)")]
    NotFound {
        /// The reference.
        reference: String,
    },
    /// Bytes did not hash to the digest that names them.
    #[error("{reference}: {what} does not match its digest (expected {expected}, got {actual}); refusing it")]
    DigestMismatch {
        /// The reference.
        reference: String,
        /// Which bytes: the manifest, the component.
        what: &'static str,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The artifact is not a Wasm component in the Wasm OCI artifact layout.
    #[error("{reference}: not a Wasm component artifact: {message}")]
    NotWasm {
        /// The reference.
        reference: String,
        /// What the manifest holds instead.
        message: String,
    },
    /// The policy requires a signature and none verifies.
    #[error("{reference}: {message}")]
    Unsigned {
        /// The reference.
        reference: String,
        /// Which signatures were found and which keys were tried.
        message: String,
    },
    /// A key file could not be read or is not a P-256 key.
    #[error("{}: {message}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A local file or the cache could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A component fetched and verified.
#[derive(Debug)]
pub struct FetchedComponent {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The reference pinned to the manifest digest it came from (`None` for a file).
    pub pinned: Option<OciReference>,
}

/// Fetches and publishes components, with a cache by digest.
pub struct ComponentStore {
    cache: cache::DigestCache,
}

impl ComponentStore {
    /// A store caching under `cache_dir` (`None`: no cache, everything is fetched).
    pub fn new(cache_dir: Option<PathBuf>) -> Self {
        Self {
            cache: cache::DigestCache::new(cache_dir),
        }
    }

    /// The bytes of a component, verified: a file is read; an OCI reference is resolved to
    /// a digest, its signatures checked against `signed_by` (when not empty), and its
    /// component checked against the layer digest. A file cannot satisfy `signed_by`.
    pub async fn fetch(
        &self,
        source: &ComponentSource,
        signed_by: &[TrustedKey],
    ) -> Result<FetchedComponent, OciError> {
        match source {
            ComponentSource::File(path) => {
                if !signed_by.is_empty() {
                    return Err(OciError::Unsigned {
                        reference: path.display().to_string(),
                        message: "the policy requires a signature (signed_by), and a local \
                                  file has none; publish it with `mcp-registry push --sign-key` \
                                  and name it oci://...@sha256:DIGEST"
                            .into(),
                    });
                }
                let bytes = std::fs::read(path).map_err(|source| OciError::Io {
                    path: path.clone(),
                    source,
                })?;
                Ok(FetchedComponent {
                    bytes,
                    pinned: None,
                })
            }
            ComponentSource::Oci(reference) => self.pull(reference, signed_by).await,
        }
    }

    async fn pull(
        &self,
        reference: &OciReference,
        signed_by: &[TrustedKey],
    ) -> Result<FetchedComponent, OciError> {
        // Set up only when the cache lacks something: a client loads the system's root
        // certificates, which costs more than reading a cached component.
        let remote = std::sync::OnceLock::new();
        let remote = || remote.get_or_init(|| RemoteRegistry::new(reference));
        let (pinned, manifest) = match reference.digest() {
            Some(digest) => {
                let pinned = reference.with_digest(digest);
                let manifest = match self.cache.manifest(digest) {
                    Some(bytes) => bytes,
                    None => {
                        let bytes = remote().manifest(&pinned).await?.0;
                        self.cache.put_manifest(digest, &bytes);
                        bytes
                    }
                };
                (pinned, manifest)
            }
            None => {
                let (bytes, digest) = remote().manifest(reference).await?;
                let pinned = reference.with_digest(&digest);
                tracing::warn!(
                    "{reference} is a tag, and tags move: it names {digest} today; pin it as \
                     {pinned}"
                );
                self.cache.put_manifest(&digest, &bytes);
                (pinned, bytes)
            }
        };
        let digest = pinned.digest().unwrap_or_default().to_owned();
        let layer = artifact::component_layer(&manifest).map_err(|message| OciError::NotWasm {
            reference: pinned.to_string(),
            message,
        })?;
        if !signed_by.is_empty() {
            self.check_signatures(remote, &pinned, &digest, signed_by)
                .await?;
        }
        let bytes = match self.cache.blob(&layer.digest) {
            Some(bytes) => bytes,
            None => {
                let bytes = remote().blob(&pinned, &layer, "the component").await?;
                self.cache.put_blob(&layer.digest, &bytes);
                bytes
            }
        };
        Ok(FetchedComponent {
            bytes,
            pinned: Some(pinned),
        })
    }

    /// Verifies the digest's signatures, from the cache first and from the registry when
    /// none cached verifies (a signature may have been added since).
    async fn check_signatures<'r>(
        &self,
        remote: impl FnOnce() -> &'r RemoteRegistry,
        pinned: &OciReference,
        digest: &str,
        keys: &[TrustedKey],
    ) -> Result<(), OciError> {
        let cached = self.cache.signatures(digest);
        if signature::verify_any(&cached, pinned, digest, keys).is_ok() {
            return Ok(());
        }
        let found = remote().signatures(pinned, digest).await?;
        let result = signature::verify_any(&found, pinned, digest, keys);
        if result.is_ok() {
            self.cache.put_signatures(digest, &found);
        }
        result
    }

    /// Publishes a component at `target` (a tag; `latest` when none is named), in the Wasm
    /// OCI artifact layout, signed with `sign_with` when given. Returns the reference pinned
    /// to the pushed manifest's digest.
    pub async fn push(
        &self,
        component: Vec<u8>,
        target: &OciReference,
        sign_with: Option<&SigningKey>,
    ) -> Result<OciReference, OciError> {
        let target = match (target.tag(), target.digest()) {
            (Some(_), _) => target.clone(),
            (None, None) => target.with_tag("latest"),
            (None, Some(_)) => {
                return Err(OciError::BadReference {
                    reference: target.to_string(),
                    message: "push to a tag, not a digest: the digest is the result".into(),
                })
            }
        };
        let remote = RemoteRegistry::new(&target);
        let artifact = artifact::build(component, &target.to_string())?;
        let digest = sha256_digest(&artifact.manifest);
        remote.push_blob(&target, artifact.config).await?;
        remote.push_blob(&target, artifact.component).await?;
        remote
            .push_manifest(&target, artifact.manifest, artifact::MANIFEST_MEDIA_TYPE)
            .await?;
        let pinned = target.with_digest(&digest);
        if let Some(key) = sign_with {
            let existing = remote.signature_manifest(&pinned, &digest).await?;
            let signed = signature::sign(key, &pinned, &digest, existing.as_deref())?;
            for blob in signed.blobs {
                remote.push_blob(&target, blob).await?;
            }
            let sig_tag = target.with_tag(&signature::signature_tag(&digest));
            remote
                .push_manifest(&sig_tag, signed.manifest, artifact::MANIFEST_MEDIA_TYPE)
                .await?;
        }
        Ok(pinned)
    }
}

/// `sha256:HEX` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut text = String::with_capacity(71);
    text.push_str("sha256:");
    for b in hash {
        text.push_str(&format!("{b:02x}"));
    }
    text
}
