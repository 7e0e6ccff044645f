//! Where a component comes from: a file, or `oci://REGISTRY/REPOSITORY(:TAG)(@sha256:DIGEST)`.

use std::fmt;
use std::path::{Path, PathBuf};

use oci_client::Reference;

use super::{OciError, SCHEME};

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A `.wasm` file.
    File(PathBuf),
    /// A component in an OCI registry.
    Oci(OciReference),
}

impl ComponentSource {
    /// Reads a component argument or policy field: `oci://...`, or a path relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, OciError> {
        if text.starts_with(SCHEME) {
            Ok(Self::Oci(OciReference::parse(text)?))
        } else {
            Ok(Self::File(base.join(text)))
        }
    }

    /// Reads a command-line component argument: `oci://...`, or a path as given.
    pub fn from_arg(arg: &Path) -> Result<Self, OciError> {
        match arg.to_str() {
            Some(text) if text.starts_with(SCHEME) => Ok(Self::Oci(OciReference::parse(text)?)),
            _ => Ok(Self::File(arg.to_path_buf())),
        }
    }

    /// A plugin name for it when none is given: the file's stem or the repository's last
    /// segment.
    pub fn default_name(&self) -> String {
        let name = match self {
            Self::File(path) => path.file_stem().map(|s| s.to_string_lossy().into_owned()),
            Self::Oci(r) => r
                .reference
                .repository()
                .rsplit('/')
                .next()
                .map(str::to_owned),
        };
        name.filter(|n| !n.is_empty())
            .unwrap_or_else(|| "plugin".into())
    }
}

impl fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Oci(r) => write!(f, "{r}"),
        }
    }
}

/// `oci://REGISTRY/REPOSITORY` with a tag or a digest (or both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciReference {
    pub(super) reference: Reference,
}

impl OciReference {
    /// Parses `oci://REGISTRY/REPOSITORY(:TAG)(@sha256:HEX)`. The registry must be named
    /// (no Docker Hub default), and a digest must be a sha256 one.
    pub fn parse(text: &str) -> Result<Self, OciError> {
        let bad = |message: &str| OciError::BadReference {
            reference: text.to_owned(),
            message: message.to_owned(),
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it does not start with oci://"))?;
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no repository after the registry"))?;
        if host.is_empty() || !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad("name the registry's host (and port) first"));
        }
        // Parsed here rather than by oci-spec's `Reference::from_str`, whose regex takes
        // longer to build than a cached pull takes in all.
        let (name, digest) = match path.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (path, None),
        };
        let (repository, tag) = match name.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
            _ => (name, None),
        };
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(segment_ok) {
            return Err(bad(
                "a repository is lowercase letters, digits, '.', '_' and '-', in '/'-separated parts",
            ));
        }
        if let Some(tag) = tag {
            let tag_ok = tag.len() <= 128
                && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !tag_ok {
                return Err(bad("a tag is up to 128 letters, digits, '.', '_' and '-'"));
            }
        }
        if let Some(digest) = digest {
            let hex = digest
                .strip_prefix("sha256:")
                .ok_or_else(|| bad("only sha256 digests are accepted"))?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("a sha256 digest is 64 hex digits"));
            }
        }
        let (host, repository) = (host.to_owned(), repository.to_owned());
        let reference = match (tag, digest) {
            (Some(t), Some(d)) => {
                Reference::with_tag_and_digest(host, repository, t.into(), d.into())
            }
            (None, Some(d)) => Reference::with_digest(host, repository, d.into()),
            (t, None) => Reference::with_tag(host, repository, t.unwrap_or("latest").into()),
        };
        Ok(Self { reference })
    }

    /// The same repository, pinned to a digest.
    pub fn with_digest(&self, digest: &str) -> Self {
        Self {
            reference: Reference::with_digest(
                self.reference.registry().to_owned(),
                self.reference.repository().to_owned(),
                digest.to_owned(),
            ),
        }
    }

    /// The same repository at another tag.
    pub(super) fn with_tag(&self, tag: &str) -> Self {
        Self {
            reference: Reference::with_tag(
                self.reference.registry().to_owned(),
                self.reference.repository().to_owned(),
                tag.to_owned(),
            ),
        }
    }

    /// The digest, when the reference names one.
    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// The tag, when the reference names one.
    pub fn tag(&self) -> Option<&str> {
        self.reference.tag()
    }

    /// `REGISTRY/REPOSITORY`, as cosign's payload names the image.
    pub fn repository(&self) -> String {
        format!(
            "{}/{}",
            self.reference.registry(),
            self.reference.repository()
        )
    }

    /// Whether the registry is on this machine, where plain HTTP is used (as Docker does for
    /// `localhost`); every other registry is reached over HTTPS.
    pub(super) fn is_loopback(&self) -> bool {
        let registry = self.reference.registry();
        let host = match registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => registry,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for OciReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.repository())?;
        if let Some(tag) = self.reference.tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.reference.digest() {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_parse_and_print() {
        let r = OciReference::parse(&format!("oci://127.0.0.1:5000/plugins/probe@{D}")).unwrap();
        assert_eq!(r.digest(), Some(D));
        assert_eq!(r.repository(), "127.0.0.1:5000/plugins/probe");
        assert_eq!(
            r.to_string(),
            format!("oci://127.0.0.1:5000/plugins/probe@{D}")
        );
        assert!(r.is_loopback());
        let t = OciReference::parse("oci://ghcr.io/acme/fanout:v1").unwrap();
        assert_eq!((t.tag(), t.digest()), (Some("v1"), None));
        let latest = OciReference::parse("oci://localhost:5000/a/b").unwrap();
        assert_eq!(latest.to_string(), "oci://localhost:5000/a/b:latest");
        let both = OciReference::parse(&format!("oci://localhost:5000/a/b:v2@{D}")).unwrap();
        assert_eq!((both.tag(), both.digest()), (Some("v2"), Some(D)));
        assert!(!t.is_loopback());
        let source =
            ComponentSource::parse("oci://ghcr.io/acme/fanout:v1", Path::new("/x")).unwrap();
        assert_eq!(source.default_name(), "fanout");
    }

    #[test]
    fn bad_references_say_why() {
        for (text, why) in [
            ("oci://probe", "no repository"),
            ("oci://plugins/probe", "registry's host"),
            ("oci://ghcr.io/acme/x@md5:abc", "sha256"),
            ("oci://ghcr.io/acme/x@sha256:abc", "64 hex"),
            ("oci://ghcr.io/Acme/x:v1", "lowercase"),
            ("oci://ghcr.io/acme//x", "lowercase"),
            ("oci://ghcr.io/acme/x:v/1", "lowercase"),
            ("oci://ghcr.io/acme/x:.v1", "a tag is"),
        ] {
            let e = OciReference::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
