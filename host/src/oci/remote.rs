//! One registry over the OCI distribution API (oci-client), with errors in a user's words:
//! a missing manifest, refused credentials, an unreachable host, bytes that do not match
//! their digest. Credentials and URLs' secrets never reach a message.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;

use super::{artifact, sha256_digest, signature, OciError, OciReference};

/// The largest blob we pull (a componentize-py plugin is about 40 MB).
const MAX_BLOB_BYTES: usize = 512 << 20;
/// The most signatures of one digest we look at.
const MAX_SIGNATURES: usize = 64;

/// One registry, reached through oci-client with our TLS set-up and credentials from
/// `MCP_REGISTRY_OCI_USERNAME` / `MCP_REGISTRY_OCI_PASSWORD` when `MCP_REGISTRY_OCI_REGISTRY`
/// names this registry, else `docker login`'s for it, else none.
pub(super) struct RemoteRegistry {
    client: Client,
    auth: RegistryAuth,
}

impl RemoteRegistry {
    pub(super) fn new(reference: &OciReference) -> Self {
        crate::client::install_tls_provider();
        let protocol = if reference.is_loopback() {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        };
        let registry = reference.reference.registry();
        let auth = match env_credentials(registry) {
            Some((user, password)) => RegistryAuth::Basic(user, password),
            None => docker_config()
                .and_then(|config| docker_login(&config, registry))
                .map(|(user, password)| RegistryAuth::Basic(user, password))
                .unwrap_or(RegistryAuth::Anonymous),
        };
        Self {
            client: Client::new(config),
            auth,
        }
    }

    /// A manifest's bytes and digest (oci-client checks them against a digest reference).
    pub(super) async fn manifest(
        &self,
        reference: &OciReference,
    ) -> Result<(Vec<u8>, String), OciError> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(
                &reference.reference,
                &self.auth,
                &[artifact::MANIFEST_MEDIA_TYPE],
            )
            .await
            .map_err(|e| registry_error(reference, e))?;
        if let Some(expected) = reference.digest() {
            let actual = sha256_digest(&bytes);
            if actual != expected {
                return Err(OciError::DigestMismatch {
                    reference: reference.to_string(),
                    what: "the manifest",
                    expected: expected.to_owned(),
                    actual,
                });
            }
        }
        Ok((bytes.to_vec(), digest))
    }

    /// A blob's bytes, checked against its digest.
    pub(super) async fn blob(
        &self,
        reference: &OciReference,
        layer: &oci_client::manifest::OciDescriptor,
        what: &'static str,
    ) -> Result<Vec<u8>, OciError> {
        use futures::StreamExt;
        let failed = |message: String| OciError::Registry {
            reference: reference.to_string(),
            message,
        };
        let size = usize::try_from(layer.size)
            .ok()
            .filter(|s| *s <= MAX_BLOB_BYTES)
            .ok_or_else(|| {
                failed(format!(
                    "{what} is {} bytes by its manifest; the most we take is {} MiB",
                    layer.size,
                    MAX_BLOB_BYTES >> 20
                ))
            })?;
        let mut stream = self
            .client
            .pull_blob_stream(&reference.reference, layer)
            .await
            .map_err(|e| registry_error(reference, e))?;
        // The manifest's size bounds what we hold: a registry cannot make us buffer more.
        let mut bytes = Vec::with_capacity(size);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                // oci-client checks the digest as the stream ends and reports it as an I/O
                // error of its own wording.
                let e = e.to_string();
                match e.strip_prefix("Invalid digest. ") {
                    Some(detail) => failed(format!(
                        "{what} does not match its digest ({detail}); refusing it"
                    )),
                    None => failed(format!("{what} broke off: {e}")),
                }
            })?;
            if bytes.len() + chunk.len() > size {
                return Err(failed(format!(
                    "the registry sent more of {what} than the {size} bytes its manifest says; \
                     refusing it"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let actual = sha256_digest(&bytes);
        if actual != layer.digest {
            return Err(OciError::DigestMismatch {
                reference: reference.to_string(),
                what,
                expected: layer.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The cosign signature manifest of a digest, if there is one.
    pub(super) async fn signature_manifest(
        &self,
        pinned: &OciReference,
        digest: &str,
    ) -> Result<Option<Vec<u8>>, OciError> {
        let tag = pinned.with_tag(&signature::signature_tag(digest));
        match self.manifest(&tag).await {
            Ok((bytes, _)) => Ok(Some(bytes)),
            Err(OciError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The cosign signatures of a digest (none when it has no signature manifest).
    pub(super) async fn signatures(
        &self,
        pinned: &OciReference,
        digest: &str,
    ) -> Result<Vec<signature::StoredSignature>, OciError> {
        let Some(manifest) = self.signature_manifest(pinned, digest).await? else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for layer in signature::signature_layers(&manifest)
            .into_iter()
            .take(MAX_SIGNATURES)
        {
            let payload = self
                .blob(pinned, &layer.descriptor, "a signature payload")
                .await?;
            found.push(signature::StoredSignature {
                payload,
                signature: layer.signature,
            });
        }
        Ok(found)
    }

    pub(super) async fn push_blob(
        &self,
        reference: &OciReference,
        data: Vec<u8>,
    ) -> Result<(), OciError> {
        let digest = sha256_digest(&data);
        self.client
            .push_blob(&reference.reference, data, &digest)
            .await
            .map(drop)
            .map_err(|e| registry_error(reference, e))
    }

    pub(super) async fn push_manifest(
        &self,
        reference: &OciReference,
        bytes: Vec<u8>,
        media_type: &'static str,
    ) -> Result<(), OciError> {
        self.client
            .store_auth_if_needed(reference.reference.resolve_registry(), &self.auth)
            .await;
        self.client
            .push_manifest_raw(
                &reference.reference,
                bytes,
                reqwest::header::HeaderValue::from_static(media_type),
            )
            .await
            .map(drop)
            .map_err(|e| registry_error(reference, e))
    }
}

/// Docker's client configuration (`$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`), where `docker login`, `podman login --compat-auth-file` and
/// `oras login` keep registry credentials.
fn docker_config() -> Option<serde_json::Value> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The user and password `auths` holds for a registry (its `auth` is base64 `user:password`).
/// Credential helpers (`credsStore`, `credHelpers`) are not run.
fn docker_login(config: &serde_json::Value, registry: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let auths = config.get("auths")?.as_object()?;
    let entry = auths.iter().find_map(|(key, entry)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        (host == registry).then_some(entry)
    })?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?.trim())
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Says what went wrong with a registry in a user's words.
fn registry_error(reference: &OciReference, error: OciDistributionError) -> OciError {
    use oci_client::errors::OciErrorCode;
    let reference_text = reference.to_string();
    let message = match error {
        OciDistributionError::RegistryError { envelope, .. } => {
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
                )
            }) {
                return OciError::NotFound {
                    reference: reference_text,
                };
            }
            format!("the registry refused: {envelope}")
        }
        OciDistributionError::ServerError { code: 404, .. }
        | OciDistributionError::ImageManifestNotFoundError(_) => {
            return OciError::NotFound {
                reference: reference_text,
            }
        }
        OciDistributionError::ServerError { code, message, .. } => {
            format!("the registry answered HTTP {code}: {}", message.trim())
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            "the registry refused our credentials (MCP_REGISTRY_OCI_USERNAME and \
             MCP_REGISTRY_OCI_PASSWORD for the registry MCP_REGISTRY_OCI_REGISTRY names, else \
             `docker login`'s in ~/.docker/config.json)"
                .into()
        }
        OciDistributionError::DigestError(e) => {
            let e = e.to_string();
            format!(
                "what the registry sent does not match its digest ({}); refusing it",
                e.trim_start_matches("Invalid digest. ")
            )
        }
        OciDistributionError::RequestError(e) => {
            let mut text = format!(
                "cannot reach the registry {}",
                reference.reference.registry()
            );
            if e.is_connect() {
                text.push_str(": connection refused or unreachable");
            } else if e.is_timeout() {
                text.push_str(": timed out");
            }
            text
        }
        other => other.to_string(),
    };
    OciError::Registry {
        reference: reference_text,
        message,
    }
}

/// The credentials of the environment, for `registry` only: `MCP_REGISTRY_OCI_REGISTRY` says
/// which registry (`HOST[:PORT]`) they are for, so a reference to another registry (one a
/// policy file or a tenant names) is never sent them.
fn env_credentials(registry: &str) -> Option<(String, String)> {
    let user = std::env::var("MCP_REGISTRY_OCI_USERNAME").ok()?;
    let password = std::env::var("MCP_REGISTRY_OCI_PASSWORD").ok()?;
    match std::env::var("MCP_REGISTRY_OCI_REGISTRY") {
        Ok(named) if named.trim().eq_ignore_ascii_case(registry) => Some((user, password)),
        Ok(_) => None,
        Err(_) => {
            tracing::warn!(
                "MCP_REGISTRY_OCI_USERNAME is set but MCP_REGISTRY_OCI_REGISTRY is not: the \
                 credentials are sent to no registry (name the registry they are for)"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_logins_are_found_by_registry_host() {
        let config = serde_json::json!({"auths": {
            "https://ghcr.io": {"auth": "YWxpY2U6czNjcmV0"},
            "localhost:5000": {"auth": "Ym9iOnB3OmQ="},
            "quay.io": {},
        }});
        assert_eq!(
            docker_login(&config, "ghcr.io"),
            Some(("alice".into(), "s3cret".into()))
        );
        // A password may hold ':'.
        assert_eq!(
            docker_login(&config, "localhost:5000"),
            Some(("bob".into(), "pw:d".into()))
        );
        assert_eq!(docker_login(&config, "quay.io"), None);
        assert_eq!(docker_login(&config, "docker.io"), None);
    }
}
