//! Keyed signatures in cosign's format, so `cosign sign --key` / `cosign verify --key` and
//! we can each check what the other signed.
//!
//! The format (cosign's "simple signing" in a registry): the signatures of manifest
//! `sha256:HEX` live in the same repository under the tag `sha256-HEX.sig`, as an OCI manifest
//! whose layers (`application/vnd.dev.cosign.simplesigning.v1+json`) each hold a JSON payload
//! naming the signed digest, with the base64 ECDSA P-256/SHA-256 signature of that payload in
//! the layer annotation `dev.cosignproject.cosign/signature`. Keys are PEM: public keys as
//! SubjectPublicKeyInfo (what `cosign generate-key-pair` writes to `cosign.pub`), private keys
//! as unencrypted PKCS#8 or SEC1 (what `openssl genpkey` writes, and `cosign import-key-pair`
//! reads). Sigstore's transparency log and keyless certificates are not used: the key files a
//! policy names are the whole trust.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::artifact::{descriptor, MANIFEST_MEDIA_TYPE};
use super::{OciError, OciReference};

/// The media type of a cosign signature layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const PAYLOAD_TYPE: &str = "cosign container image signature";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// A public key whose signatures a policy accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The file it was read from (named in errors).
    pub path: PathBuf,
    key: p256::ecdsa::VerifyingKey,
}

impl TrustedKey {
    /// Reads a PEM public key (SubjectPublicKeyInfo, ECDSA P-256).
    pub fn load(path: &Path) -> Result<Self, OciError> {
        let text = read_key_file(path)?;
        let key =
            p256::ecdsa::VerifyingKey::from_public_key_pem(&text).map_err(|e| OciError::Key {
                path: path.to_path_buf(),
                message: format!(
                    "not a PEM ECDSA P-256 public key ({e}); cosign's cosign.pub or \
                     `openssl pkey -pubout` output is"
                ),
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            key,
        })
    }
}

impl TrustedKey {
    /// Whether `signature` (base64 DER ECDSA) is this key's signature of `bytes`.
    pub fn verifies(&self, bytes: &[u8], signature: &str) -> bool {
        verifies(
            &StoredSignature {
                payload: bytes.to_vec(),
                signature: signature.to_owned(),
            },
            &self.key,
        )
    }
}

/// A private key to sign with.
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
}

impl SigningKey {
    /// Reads a PEM private key: unencrypted PKCS#8 or SEC1, ECDSA P-256.
    pub fn load(path: &Path) -> Result<Self, OciError> {
        let text = read_key_file(path)?;
        let bad = |message: String| OciError::Key {
            path: path.to_path_buf(),
            message,
        };
        if text.contains("ENCRYPTED") {
            return Err(bad(
                "an encrypted key; give an unencrypted PKCS#8 P-256 key (openssl genpkey \
                 -algorithm EC -pkeyopt ec_paramgen_curve:P-256), which cosign import-key-pair \
                 also takes"
                    .into(),
            ));
        }
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&text)
            .or_else(|_| p256::SecretKey::from_sec1_pem(&text).map(Into::into))
            .map_err(|e| bad(format!("not a PEM ECDSA P-256 private key ({e})")))?;
        Ok(Self { key })
    }
}

impl SigningKey {
    /// The base64 DER ECDSA P-256/SHA-256 signature of `bytes`.
    pub fn sign_bytes(&self, bytes: &[u8]) -> String {
        let signature: p256::ecdsa::Signature = self.key.sign(bytes);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }
}

fn read_key_file(path: &Path) -> Result<String, OciError> {
    std::fs::read_to_string(path).map_err(|source| OciError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The tag cosign keeps a digest's signatures under.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// A signature found for a digest: the payload and its base64 signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSignature {
    /// The simple-signing payload, as stored.
    pub payload: Vec<u8>,
    /// Base64 DER ECDSA signature of the payload.
    pub signature: String,
}

/// A layer of a signature manifest.
pub(super) struct SignatureLayer {
    pub(super) descriptor: OciDescriptor,
    pub(super) signature: String,
}

/// The signature layers of a cosign signature manifest (others are ignored).
pub(super) fn signature_layers(manifest: &[u8]) -> Vec<SignatureLayer> {
    let Ok(manifest) = serde_json::from_slice::<OciImageManifest>(manifest) else {
        return Vec::new();
    };
    manifest
        .layers
        .into_iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .filter_map(|l| {
            let signature = l.annotations.as_ref()?.get(SIGNATURE_ANNOTATION)?.clone();
            Some(SignatureLayer {
                descriptor: l,
                signature,
            })
        })
        .collect()
}

/// Whether one of `found` is a signature of `digest` by one of `keys`.
pub(super) fn verify_any(
    found: &[StoredSignature],
    pinned: &OciReference,
    digest: &str,
    keys: &[TrustedKey],
) -> Result<(), OciError> {
    let names = keys
        .iter()
        .map(|k| k.path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if found.is_empty() {
        return Err(OciError::Unsigned {
            reference: pinned.to_string(),
            message: format!(
                "not signed (no {} in the registry), and the policy requires a signature by {names}",
                signature_tag(digest)
            ),
        });
    }
    let verified = found.iter().any(|s| {
        keys.iter()
            .any(|k| verifies(s, &k.key) && payload_names(&s.payload, digest))
    });
    if verified {
        Ok(())
    } else {
        Err(OciError::Unsigned {
            reference: pinned.to_string(),
            message: format!(
                "none of its {} signature(s) verifies with {names}; refusing it",
                found.len()
            ),
        })
    }
}

fn verifies(stored: &StoredSignature, key: &p256::ecdsa::VerifyingKey) -> bool {
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(stored.signature.trim()) else {
        return false;
    };
    let Ok(signature) = p256::ecdsa::DerSignature::from_bytes(&der) else {
        return false;
    };
    key.verify(&stored.payload, &signature).is_ok()
}

/// Whether a (verified) payload is a cosign signature of exactly this digest.
fn payload_names(payload: &[u8], digest: &str) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return false;
    };
    v["critical"]["type"] == PAYLOAD_TYPE
        && v["critical"]["image"]["docker-manifest-digest"] == digest
}

/// A signature manifest to push and the blobs it needs.
pub(super) struct Signed {
    pub(super) manifest: Vec<u8>,
    pub(super) blobs: Vec<Vec<u8>>,
}

/// Signs `digest`, keeping the signatures `existing` (the current signature manifest) has.
pub(super) fn sign(
    key: &SigningKey,
    pinned: &OciReference,
    digest: &str,
    existing: Option<&[u8]>,
) -> Result<Signed, OciError> {
    let payload = serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": pinned.repository()},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    }))
    .unwrap_or_default();
    let signature: p256::ecdsa::Signature = key.key.sign(&payload);
    let signature = base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());
    let mut layer = descriptor(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    layer.annotations = Some([(SIGNATURE_ANNOTATION.to_owned(), signature)].into());
    let mut layers: Vec<OciDescriptor> = existing
        .map(signature_layers)
        .unwrap_or_default()
        .into_iter()
        .map(|l| l.descriptor)
        .filter(|l| l.digest != layer.digest || l.annotations != layer.annotations)
        .collect();
    layers.push(layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.digest).collect::<Vec<_>>()},
        "config": {},
    }))
    .unwrap_or_default();
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.into()),
        config: descriptor(CONFIG_MEDIA_TYPE, &config),
        layers,
        ..Default::default()
    };
    Ok(Signed {
        manifest: serde_json::to_vec(&manifest).unwrap_or_default(),
        blobs: vec![config, payload],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (SigningKey, TrustedKey) {
        let secret = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let public = *secret.verifying_key();
        (
            SigningKey { key: secret },
            TrustedKey {
                path: "k.pub".into(),
                key: public,
            },
        )
    }

    #[test]
    fn a_signature_verifies_only_for_its_digest_and_key() {
        let (signer, trusted) = keys();
        let d = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let pinned = OciReference::parse(&format!("oci://localhost:5000/p@{d}")).unwrap();
        let signed = sign(&signer, &pinned, d, None).unwrap();
        let layer = signature_layers(&signed.manifest).pop().unwrap();
        let stored = StoredSignature {
            payload: signed.blobs[1].clone(),
            signature: layer.signature,
        };
        assert!(verify_any(
            std::slice::from_ref(&stored),
            &pinned,
            d,
            std::slice::from_ref(&trusted)
        )
        .is_ok());
        let other = d.replace('a', "b");
        assert!(verify_any(
            std::slice::from_ref(&stored),
            &pinned,
            &other,
            std::slice::from_ref(&trusted)
        )
        .is_err());
        let stranger = TrustedKey {
            path: "other.pub".into(),
            key: *p256::ecdsa::SigningKey::from_slice(&[9u8; 32])
                .unwrap()
                .verifying_key(),
        };
        let e = verify_any(&[stored], &pinned, d, &[stranger])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("none of its 1 signature(s) verifies with other.pub"),
            "{e}"
        );
        // Signing again keeps one layer per distinct signature.
        let again = sign(&signer, &pinned, d, Some(&signed.manifest)).unwrap();
        assert_eq!(signature_layers(&again.manifest).len(), 1);
    }
}
