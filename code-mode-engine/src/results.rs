//! What a snippet gets of a tool call, the same in every engine: the answer as a value, or a
//! failure `{kind, message}` with the kinds `ToolError` carries. The Python engine includes
//! this file too (`#[path]`): `types` is each engine's own WIT bindings, so one crate could
//! not name both.

use serde_json::{json, Value};

use super::types;

/// A tool's answer as the snippet's value: `structuredContent` if there is one; otherwise a
/// single text item (parsed when it is JSON); otherwise the content list. A result with
/// `isError` is a failure of kind `tool-error`, with the server's text.
pub(crate) fn tool_value(result: types::CallResult) -> Result<Value, Value> {
    let content: Value = serde_json::from_str(&result.content).unwrap_or(Value::Null);
    if result.is_error {
        let texts: Vec<&str> = content
            .as_array()
            .map(|items| items.iter().filter_map(|i| i["text"].as_str()).collect())
            .unwrap_or_default();
        let message = if texts.is_empty() {
            "the tool reported an error".to_owned()
        } else {
            texts.join("\n")
        };
        return Err(json!({"kind": "tool-error", "message": message}));
    }
    if let Some(structured) = result.structured_content {
        return Ok(serde_json::from_str(&structured).unwrap_or(Value::Null));
    }
    Ok(match content.as_array().map(Vec::as_slice) {
        Some([item]) if item["type"] == "text" => {
            let text = item["text"].as_str().unwrap_or("");
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
        }
        _ => content,
    })
}

/// A call the host refused or could not make, as `{kind, message}`.
pub(crate) fn error_json(e: &types::Error) -> Value {
    let (kind, message) = match e {
        types::Error::NotFound(m) => ("not-found", m),
        types::Error::Denied(m) => ("denied", m),
        types::Error::InvalidInput(m) => ("invalid", m),
        types::Error::ServerFailed(m) => ("server-failed", m),
        types::Error::Timeout(m) => ("timeout", m),
        types::Error::LimitExceeded(m) => ("limit", m),
    };
    json!({"kind": kind, "message": message})
}
