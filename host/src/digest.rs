//! SHA-256 digests, written `sha256:HEX`: of bytes, and of JSON in its RFC 8785 canonical
//! form (keys sorted, numbers and strings in one spelling), so the same value has the same
//! digest whoever serialised it. Pins and the audit log both name values this way.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// `sha256:` and the hex SHA-256 of `bytes`.
pub fn of_bytes(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for b in hash {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The RFC 8785 canonical form of `value`.
pub fn canonical(value: &Value) -> Vec<u8> {
    // Serialising a `Value` cannot fail: its keys are strings and its numbers finite.
    serde_json_canonicalizer::to_vec(value).unwrap_or_default()
}

/// `sha256:` and the hex SHA-256 of `value`'s RFC 8785 canonical form.
pub fn of_json(value: &Value) -> String {
    of_bytes(&canonical(value))
}
