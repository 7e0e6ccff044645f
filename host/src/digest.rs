//! SHA-256 digests, written `sha256:HEX`: of bytes, and of JSON in its RFC 8785 canonical
//! form (keys sorted, numbers and strings in one spelling), so the same value has the same
//! digest whoever serialised it. Pins and the audit log both name values this way.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// `sha256:` and the hex SHA-256 of `bytes`.
pub fn of_bytes(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = Sha256::digest(bytes);
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256:");
    for b in hash {
        hex.push(HEX[usize::from(b >> 4)] as char);
        hex.push(HEX[usize::from(b & 0xf)] as char);
    }
    hex
}

/// The RFC 8785 canonical form of `value`.
///
/// Most values we digest (tool definitions, arguments, audit lines) hold no fractional number
/// and only ASCII keys; for those, serde_json's compact output of a sorted map already is the
/// canonical form (the same escapes, integers spelt alike), at a fifth of the canonicaliser's
/// cost. Anything else goes through the canonicaliser.
pub fn canonical(value: &Value) -> Vec<u8> {
    if maps_are_sorted() && plain(value) {
        if let Ok(bytes) = serde_json::to_vec(value) {
            return bytes;
        }
    }
    // Serialising a `Value` cannot fail: its keys are strings and its numbers finite.
    serde_json_canonicalizer::to_vec(value).unwrap_or_default()
}

/// Whether `value` holds only integers a double represents exactly, and only ASCII keys
/// (whose UTF-16 order, RFC 8785's, is their byte order).
fn plain(value: &Value) -> bool {
    const EXACT: u64 = 1 << 53;
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_i64().map(i64::unsigned_abs))
            .is_some_and(|n| n <= EXACT),
        Value::Array(items) => items.iter().all(plain),
        Value::Object(map) => map.iter().all(|(k, v)| k.is_ascii() && plain(v)),
    }
}

/// Whether serde_json's maps keep their keys sorted (they do unless a crate in the build
/// turns on its `preserve_order`).
fn maps_are_sorted() -> bool {
    static SORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut map = serde_json::Map::new();
        map.insert("b".into(), Value::Null);
        map.insert("a".into(), Value::Null);
        map.keys().next().map(String::as_str) == Some("a")
    })
}

/// `sha256:` and the hex SHA-256 of `value`'s RFC 8785 canonical form.
pub fn of_json(value: &Value) -> String {
    of_bytes(&canonical(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_gives_the_canonical_form() {
        for text in [
            r#"{"b": [1, -2, "x\u0001\n\"é"], "a": {"z": null, "y": true}, "c": 9007199254740992}"#,
            r#"{"name": "echo", "inputSchema": {"type": "object", "properties": {"m": {"type": "string"}}}}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert!(plain(&value));
            assert_eq!(
                serde_json::to_vec(&value).unwrap(),
                serde_json_canonicalizer::to_vec(&value).unwrap(),
                "{text}"
            );
        }
        let floats: Value = serde_json::from_str(r#"{"a": 1.5e300, "b": 1e-7}"#).unwrap();
        assert!(!plain(&floats));
        assert_eq!(
            canonical(&floats),
            serde_json_canonicalizer::to_vec(&floats).unwrap()
        );
    }
}
