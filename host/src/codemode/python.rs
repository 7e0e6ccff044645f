//! Tools as Python stubs: what `search` shows a model that writes Python snippets.
//!
//! The same identifiers as the TypeScript declarations (`Names`: one mapping for both
//! languages, so a tool is `tools.<server>.<tool>` in either), each tool an `async def` with
//! its parameters as keyword arguments typed from the input schema: a model writes
//! `await tools.alpha.echo(message="hi")` from it without reading JSON Schema.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::Names;
use crate::aggregator::NamespacedTool;

/// Python's keywords: a name that is one cannot be written as an attribute or an argument.
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// Whether `name` can be written in Python as it is.
fn writable(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name)
}

/// Stubs of `tools`, a class per server, in the order given within each server.
pub fn stubs(tools: &[&NamespacedTool], names: &Names) -> String {
    let mut by_server: BTreeMap<&str, Vec<&NamespacedTool>> = BTreeMap::new();
    for t in tools {
        by_server.entry(t.server.as_str()).or_default().push(t);
    }
    let mut out = String::from(
        "# Call as `await tools.<server>.<tool>(name=value, ...)`; a failed call raises ToolError.\n",
    );
    for (server, tools) in by_server {
        let Some(sid) = names.server_ids.get(server) else {
            continue;
        };
        let access = if writable(sid) {
            format!("tools.{sid}")
        } else {
            format!("getattr(tools, {sid:?})")
        };
        let _ = writeln!(
            out,
            "\nclass {}:  # {access}: server \"{server}\"",
            class_name(sid)
        );
        for t in tools {
            let tool = t.tool.name.as_ref();
            let Some(tid) = names.tool_ids.get(&(server.to_owned(), tool.to_owned())) else {
                continue;
            };
            let schema = Value::Object((*t.tool.input_schema).clone());
            let returns = match &t.tool.output_schema {
                Some(_) => "dict[str, Any]",
                None => "Any",
            };
            let def = if writable(tid) {
                tid.to_owned()
            } else {
                let _ = writeln!(out, "    # call as getattr({access}, {tid:?})(...)");
                class_name(tid)
            };
            let (parameters, unwritable) = parameters(&schema);
            if !unwritable.is_empty() {
                let _ = writeln!(
                    out,
                    "    # also takes, as **{{...}}: {}",
                    unwritable.join(", ")
                );
            }
            let _ = writeln!(out, "    async def {def}(self{parameters}) -> {returns}:");
            let description = t.tool.description.as_deref().unwrap_or("").trim();
            let doc = if description.is_empty() {
                format!("Tool \"{tool}\".")
            } else {
                description.replace("\"\"\"", "\\\"\\\"\\\"")
            };
            let _ = writeln!(out, "        \"\"\"{}\"\"\"", indent(&doc));
        }
    }
    out
}

fn class_name(sid: &str) -> String {
    let name: String = sid
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if writable(&name) {
        name
    } else {
        format!("_{name}")
    }
}

fn indent(text: &str) -> String {
    text.lines().collect::<Vec<_>>().join("\n        ")
}

/// `, *, a: int, b: str | None = None` from an object schema (required first), and the
/// properties that are not Python names (left to `**arguments`, quoted).
fn parameters(schema: &Value) -> (String, Vec<String>) {
    let Some(properties) = schema["properties"].as_object() else {
        return (", **arguments: Any".to_owned(), Vec::new());
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut first = Vec::new();
    let mut later = Vec::new();
    let mut unwritable = Vec::new();
    for (name, property) in properties {
        if !writable(name) {
            unwritable.push(format!("{name:?}"));
            continue;
        }
        let ty = type_of(property, 0);
        if required.contains(&name.as_str()) {
            first.push(format!("{name}: {ty}"));
        } else {
            later.push(format!("{name}: {ty} | None = None"));
        }
    }
    let mut all: Vec<String> = first.into_iter().chain(later).collect();
    if !unwritable.is_empty() {
        all.push("**arguments: Any".to_owned());
    }
    let text = if all.is_empty() {
        String::new()
    } else {
        format!(", *, {}", all.join(", "))
    };
    (text, unwritable)
}

/// A Python type for a JSON Schema (a few levels deep; `Any` past them).
fn type_of(schema: &Value, depth: usize) -> String {
    if depth > 3 {
        return "Any".to_owned();
    }
    if let Some(values) = schema["enum"].as_array() {
        let literals: Vec<String> = values.iter().map(Value::to_string).collect();
        return format!("Literal[{}]", literals.join(", "));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema[key].as_array() {
            let mut types: Vec<String> = Vec::new();
            for t in options.iter().map(|o| type_of(o, depth + 1)) {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
            return types.join(" | ");
        }
    }
    let one = |t: &str| match t {
        "string" => "str".to_owned(),
        "integer" => "int".to_owned(),
        "number" => "float".to_owned(),
        "boolean" => "bool".to_owned(),
        "null" => "None".to_owned(),
        "array" => format!("list[{}]", type_of(&schema["items"], depth + 1)),
        "object" => "dict[str, Any]".to_owned(),
        _ => "Any".to_owned(),
    };
    match &schema["type"] {
        Value::String(t) => one(t),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(one)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "Any".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::Tool;
    use serde_json::json;
    use std::sync::Arc;

    fn tool(server: &str, name: &str, schema: Value) -> NamespacedTool {
        NamespacedTool {
            name: format!("{server}__{name}"),
            server: server.to_owned(),
            tool: Tool::new(
                name.to_owned(),
                "Does \"\"\"things\"\"\"".to_owned(),
                Arc::new(schema.as_object().cloned().unwrap_or_default()),
            ),
        }
    }

    #[test]
    fn a_tool_is_an_async_def_with_keyword_arguments() {
        let tools = [
            tool(
                "my-server",
                "get-sum",
                json!({"type": "object", "required": ["a"], "properties": {
                    "a": {"type": "integer"},
                    "mode": {"enum": ["x", "y"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "max-results": {"type": "integer"}
                }}),
            ),
            tool("s", "from", json!({"type": "object"})),
        ];
        let refs: Vec<&NamespacedTool> = tools.iter().collect();
        let names = Names::new(&tools);
        let text = stubs(&refs, &names);
        assert!(
            text.contains("class my_server:  # tools.my_server: server \"my-server\""),
            "{text}"
        );
        assert!(
            text.contains("async def get_sum(self, *, a: int, mode: Literal[\"x\", \"y\"] | None = None, tags: list[str] | None = None, **arguments: Any) -> Any:"),
            "{text}"
        );
        assert!(
            text.contains("# also takes, as **{...}: \"max-results\""),
            "{text}"
        );
        assert!(text.contains("Does \\\"\\\"\\\"things"), "{text}");
        // A Python keyword is reached with getattr.
        assert!(text.contains("# call as getattr(tools.s, \"from\")(...)\n    async def _from(self, **arguments: Any)"), "{text}");
    }
}
