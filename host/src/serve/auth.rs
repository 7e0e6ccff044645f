//! Who is calling: `Authorization: Bearer <API key or JWT>` to a tenant of the tenants file.
//!
//! API keys are compared by SHA-256 digest in constant time and never logged. JWTs are
//! checked as the MCP authorization spec asks of a protected resource: signature (RS256,
//! ES256 or EdDSA, by a key of the issuer's JWK set; `none` and HMAC refused), `iss`, `aud`,
//! `exp` and `nbf`; a claim names the tenant.

use std::collections::BTreeMap;
use std::sync::Arc;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::tenants::{JwtConfig, TenantsConfig};

/// Why a request is not let in (the message goes to the client; it never holds the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// No `Authorization: Bearer ...` header.
    #[error("this server requires `Authorization: Bearer <API key or token>`")]
    Missing,
    /// The credential is not valid (unknown key, bad or expired token, unknown tenant).
    #[error("invalid credential: {0}")]
    Invalid(String),
}

/// A JWT check: the issuer's keys and what a token must say.
struct JwtVerifier {
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
    config: JwtConfig,
}

/// Turns credentials into tenant names.
pub(crate) struct Authenticator {
    keys: Vec<([u8; 32], Arc<str>)>,
    tenants: BTreeMap<String, Arc<str>>,
    jwt: Option<JwtVerifier>,
}

/// The algorithms we accept, by JWK family: asymmetric only.
fn algorithm_of(key: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm};
    let declared = key.common.key_algorithm.and_then(|a| match a {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
        _ => None,
    });
    let by_type = match &key.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        // Symmetric keys (HMAC) are never accepted: a shared secret is not an issuer's key.
        _ => None,
    };
    match (declared, by_type) {
        (Some(d), Some(t)) if d == t => Some(d),
        (None, t) => t,
        _ => None,
    }
}

impl JwtVerifier {
    fn load(config: &JwtConfig) -> Result<Self, String> {
        let text = std::fs::read_to_string(&config.jwks_file).map_err(|e| {
            format!(
                "{}: cannot read the JWK set: {e}",
                config.jwks_file.display()
            )
        })?;
        let set: JwkSet = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a JWK set: {e}", config.jwks_file.display()))?;
        let mut keys = Vec::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let Some(alg) = algorithm_of(jwk) else {
                return Err(format!(
                    "{}: keys[{i}]: only RSA (RS256), P-256 (ES256) and Ed25519 (EdDSA) keys are accepted",
                    config.jwks_file.display()
                ));
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| format!("{}: keys[{i}]: {e}", config.jwks_file.display()))?;
            keys.push((jwk.common.key_id.clone(), alg, key));
        }
        if keys.is_empty() {
            return Err(format!(
                "{}: the JWK set has no keys",
                config.jwks_file.display()
            ));
        }
        Ok(Self {
            keys,
            config: config.clone(),
        })
    }

    /// The tenant a valid token names.
    fn verify(&self, token: &str) -> Result<String, AuthError> {
        let invalid = |m: String| AuthError::Invalid(m);
        // An unknown `alg` (`none` among them) fails here.
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        let candidates = self.keys.iter().filter(|(kid, alg, _)| {
            *alg == header.alg && (header.kid.is_none() || kid.is_none() || *kid == header.kid)
        });
        let mut last = "no key of the issuer matches the token's algorithm and key id".to_owned();
        for (_, alg, key) in candidates {
            let mut validation = Validation::new(*alg);
            validation.set_issuer(&[&self.config.issuer]);
            validation.set_audience(&[&self.config.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            validation.validate_nbf = true;
            validation.leeway = 30;
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                key,
                &validation,
            ) {
                Ok(data) => {
                    return data
                        .claims
                        .get(&self.config.tenant_claim)
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            invalid(format!(
                                "the token has no \"{}\" claim",
                                self.config.tenant_claim
                            ))
                        })
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(invalid(last))
    }
}

impl Authenticator {
    /// The authenticator of a tenants file (its JWK set is read now).
    pub(crate) fn new(config: &TenantsConfig) -> Result<Self, String> {
        let mut keys = Vec::new();
        let mut tenants = BTreeMap::new();
        for (name, tenant) in &config.tenants {
            let name: Arc<str> = name.as_str().into();
            tenants.insert(name.to_string(), name.clone());
            for digest in &tenant.keys {
                keys.push((*digest, name.clone()));
            }
        }
        let jwt = config.jwt.as_ref().map(JwtVerifier::load).transpose()?;
        Ok(Self { keys, tenants, jwt })
    }

    /// The tenant of an `Authorization` header's value.
    pub(crate) fn tenant(&self, authorization: Option<&str>) -> Result<Arc<str>, AuthError> {
        let token = authorization
            .and_then(|h| {
                let (scheme, token) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        if let Some(tenant) = self.by_key(token) {
            return Ok(tenant);
        }
        let looks_like_jwt = token.split('.').count() == 3;
        match (&self.jwt, looks_like_jwt) {
            (Some(jwt), true) => {
                let name = jwt.verify(token)?;
                self.tenants.get(&name).cloned().ok_or_else(|| {
                    AuthError::Invalid("the token names no tenant of this server".into())
                })
            }
            _ => Err(AuthError::Invalid("unknown API key".into())),
        }
    }

    /// The tenant whose key this is: every key compared, each in constant time.
    fn by_key(&self, token: &str) -> Option<Arc<str>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (key, tenant) in &self.keys {
            if bool::from(key.ct_eq(&digest)) {
                found = Some(tenant.clone());
            }
        }
        found
    }

    /// The issuer to name in the protected-resource metadata, if tokens are accepted.
    pub(crate) fn issuer(&self) -> Option<&str> {
        self.jwt.as_ref().map(|j| j.config.issuer.as_str())
    }
}
