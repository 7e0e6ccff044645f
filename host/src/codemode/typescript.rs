//! What `search` shows the model: the registry's tools as TypeScript declarations, one
//! namespace per server (`tools.<server>`), one function per tool, parameter and return types
//! from the tools' JSON schemas, JSDoc from their descriptions.
//!
//! Server and tool names are not always identifiers (`my-server`, `get.thing`): each gets an
//! identifier, unique within its scope, and [`Names`] maps it back. The same mapping goes to
//! the engine with every run, so `tools.my_server.get_thing()` reaches `my-server__get.thing`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::aggregator::NamespacedTool;

/// How deep schemas are expanded (and `$ref`s followed) before a type becomes `unknown`.
const MAX_DEPTH: usize = 6;

const RESERVED: &[&str] = &[
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
    "let",
    "static",
    "implements",
    "interface",
    "package",
    "private",
    "protected",
    "public",
    "await",
    "then",
];

/// `name` as a JavaScript identifier: other characters become `_`, a leading digit or a
/// reserved word gets a `_` added.
pub fn identifier(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if RESERVED.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// The identifiers of servers and tools, and the registry names they stand for.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// server identifier -> (server, tool identifier -> tool)
    servers: BTreeMap<String, (String, BTreeMap<String, String>)>,
    /// server -> its identifier
    pub(super) server_ids: BTreeMap<String, String>,
    /// (server, tool) -> tool identifier
    pub(super) tool_ids: BTreeMap<(String, String), String>,
}

fn unique(wanted: String, taken: &BTreeSet<String>) -> String {
    if !taken.contains(&wanted) {
        return wanted;
    }
    (2..)
        .map(|i| format!("{wanted}_{i}"))
        .find(|n| !taken.contains(n))
        .unwrap_or(wanted)
}

impl Names {
    /// Identifiers for every tool of `tools`.
    pub fn new<'a>(tools: impl IntoIterator<Item = &'a NamespacedTool>) -> Self {
        let mut names = Names::default();
        let mut by_server: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for t in tools {
            by_server
                .entry(t.server.as_str())
                .or_default()
                .push(t.tool.name.as_ref());
        }
        // Names that already are identifiers keep them; mangled ones take what is left.
        let mut by_server: Vec<(&str, Vec<&str>)> = by_server.into_iter().collect();
        by_server.sort_by_key(|(server, _)| identifier(server) != *server);
        for (_, tools) in &mut by_server {
            tools.sort_by_key(|tool| identifier(tool) != *tool);
        }
        let mut server_taken = BTreeSet::new();
        for (server, tools) in by_server {
            let sid = unique(identifier(server), &server_taken);
            server_taken.insert(sid.clone());
            let mut tool_taken = BTreeSet::new();
            let mut map = BTreeMap::new();
            for tool in tools {
                let tid = unique(identifier(tool), &tool_taken);
                tool_taken.insert(tid.clone());
                map.insert(tid.clone(), tool.to_owned());
                names
                    .tool_ids
                    .insert((server.to_owned(), tool.to_owned()), tid);
            }
            names.server_ids.insert(server.to_owned(), sid.clone());
            names.servers.insert(sid, (server.to_owned(), map));
        }
        names
    }

    /// `tools.<server>.<tool>` for a registry tool.
    pub fn call_path(&self, server: &str, tool: &str) -> Option<String> {
        let sid = self.server_ids.get(server)?;
        let tid = self.tool_ids.get(&(server.to_owned(), tool.to_owned()))?;
        Some(format!("tools.{sid}.{tid}"))
    }

    /// The mapping as the engine takes it: `{server id: {tool id: "server__tool"}}`.
    pub fn to_engine(&self) -> Value {
        let mut out = Map::new();
        for (sid, (server, tools)) in &self.servers {
            let tools: Map<String, Value> = tools
                .iter()
                .map(|(tid, tool)| (tid.clone(), json!(format!("{server}__{tool}"))))
                .collect();
            out.insert(sid.clone(), Value::Object(tools));
        }
        Value::Object(out)
    }
}

/// Declarations of `tools`, grouped by server, in the order given within each server.
pub fn declarations(tools: &[&NamespacedTool], names: &Names) -> String {
    let mut by_server: BTreeMap<&str, Vec<&NamespacedTool>> = BTreeMap::new();
    for t in tools {
        by_server.entry(t.server.as_str()).or_default().push(t);
    }
    let mut out = String::new();
    for (server, tools) in by_server {
        let Some(sid) = names.server_ids.get(server) else {
            continue;
        };
        if sid != server {
            let _ = writeln!(out, "// tools.{sid} is server \"{server}\"");
        }
        let _ = writeln!(out, "declare namespace tools.{sid} {{");
        for t in tools {
            let tool = t.tool.name.as_ref();
            let Some(tid) = names.tool_ids.get(&(server.to_owned(), tool.to_owned())) else {
                continue;
            };
            if tid != tool {
                let _ = writeln!(out, "  // {tid} is tool \"{tool}\"");
            }
            let schema = Value::Object((*t.tool.input_schema).clone());
            let output = t
                .tool
                .output_schema
                .as_ref()
                .map(|s| Value::Object((**s).clone()));
            out.push_str(&doc(t.tool.description.as_deref(), "  "));
            let params = type_of(&schema, &schema, 1, 1);
            let optional = schema["required"].as_array().is_none_or(Vec::is_empty);
            let result = output
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), |o| type_of(o, o, 1, 1));
            let _ = writeln!(
                out,
                "  function {tid}(args{}: {params}): Promise<{result}>;",
                if optional { "?" } else { "" }
            );
        }
        out.push_str("}\n");
    }
    out
}

/// A JSDoc block from a description.
fn doc(description: Option<&str>, indent: &str) -> String {
    let description = description.unwrap_or("").trim();
    if description.is_empty() {
        return String::new();
    }
    let mut out = format!("{indent}/**\n");
    for line in description.lines() {
        let _ = writeln!(out, "{indent} * {}", line.replace("*/", "*\\/"));
    }
    let _ = writeln!(out, "{indent} */");
    out
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => v.to_string(),
        _ => "unknown".to_owned(),
    }
}

fn property_key(name: &str) -> String {
    if identifier(name) == name && !RESERVED.contains(&name) {
        name.to_owned()
    } else {
        Value::String(name.to_owned()).to_string()
    }
}

fn union(types: Vec<String>) -> String {
    let mut seen = Vec::new();
    for t in types {
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    match seen.len() {
        0 => "unknown".to_owned(),
        1 => seen.remove(0),
        _ => seen.join(" | "),
    }
}

/// Follows a local `$ref` (`#/$defs/X`, `#/definitions/X`, or any JSON pointer into the root).
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    root.pointer(reference.strip_prefix('#')?)
}

/// The TypeScript type of `schema` (within `root`, for `$ref`s), indented for `level`.
fn type_of(schema: &Value, root: &Value, depth: usize, level: usize) -> String {
    if depth > MAX_DEPTH {
        return "unknown".to_owned();
    }
    let Some(obj) = schema.as_object() else {
        // `true` (anything) or `false` (nothing).
        return if schema == &Value::Bool(false) {
            "never".to_owned()
        } else {
            "unknown".to_owned()
        };
    };
    let nullable = obj.get("nullable") == Some(&Value::Bool(true));
    let t = if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        resolve(root, r).map_or_else(
            || "unknown".to_owned(),
            |s| type_of(s, root, depth + 1, level),
        )
    } else if let Some(c) = obj.get("const") {
        literal(c)
    } else if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        union(values.iter().map(literal).collect())
    } else if let Some(any) = obj
        .get("anyOf")
        .or_else(|| obj.get("oneOf"))
        .and_then(Value::as_array)
    {
        union(
            any.iter()
                .map(|s| type_of(s, root, depth + 1, level))
                .collect(),
        )
    } else if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
        let parts: Vec<String> = all
            .iter()
            .map(|s| type_of(s, root, depth + 1, level))
            .collect();
        if parts.len() == 1 {
            parts[0].clone()
        } else {
            parts
                .iter()
                .map(|p| format!("({p})"))
                .collect::<Vec<_>>()
                .join(" & ")
        }
    } else {
        match obj.get("type") {
            Some(Value::Array(types)) => union(
                types
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|t| simple_type(t, obj, root, depth, level))
                    .collect(),
            ),
            Some(Value::String(t)) => simple_type(t, obj, root, depth, level),
            _ if obj.contains_key("properties") => simple_type("object", obj, root, depth, level),
            _ if obj.contains_key("items") => simple_type("array", obj, root, depth, level),
            _ => "unknown".to_owned(),
        }
    };
    if nullable && t != "null" && !t.ends_with(" | null") {
        format!("{t} | null")
    } else {
        t
    }
}

fn simple_type(
    t: &str,
    obj: &Map<String, Value>,
    root: &Value,
    depth: usize,
    level: usize,
) -> String {
    match t {
        "string" => "string".to_owned(),
        "number" | "integer" => "number".to_owned(),
        "boolean" => "boolean".to_owned(),
        "null" => "null".to_owned(),
        "array" => {
            let item = match obj.get("items") {
                Some(Value::Array(tuple)) => {
                    let parts: Vec<String> = tuple
                        .iter()
                        .map(|s| type_of(s, root, depth + 1, level))
                        .collect();
                    return format!("[{}]", parts.join(", "));
                }
                Some(items) => type_of(items, root, depth + 1, level),
                None => "unknown".to_owned(),
            };
            if item.chars().all(|c| c.is_alphanumeric() || c == '_') {
                format!("{item}[]")
            } else {
                format!("Array<{item}>")
            }
        }
        "object" => object_type(obj, root, depth, level),
        _ => "unknown".to_owned(),
    }
}

fn object_type(obj: &Map<String, Value>, root: &Value, depth: usize, level: usize) -> String {
    let pad = "  ".repeat(level + 1);
    let required: BTreeSet<&str> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut fields = Vec::new();
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let mut field = String::new();
            if let Some(d) = prop.get("description").and_then(Value::as_str) {
                let d = d.trim().replace("*/", "*\\/").replace('\n', " ");
                if !d.is_empty() {
                    let _ = writeln!(field, "{pad}/** {d} */");
                }
            }
            let optional = if required.contains(name.as_str()) {
                ""
            } else {
                "?"
            };
            let _ = write!(
                field,
                "{pad}{}{optional}: {};",
                property_key(name),
                type_of(prop, root, depth + 1, level + 1)
            );
            fields.push(field);
        }
    }
    match obj.get("additionalProperties") {
        Some(Value::Bool(false)) => {}
        Some(extra @ Value::Object(_)) => fields.push(format!(
            "{pad}[key: string]: {};",
            type_of(extra, root, depth + 1, level + 1)
        )),
        _ if fields.is_empty() => fields.push(format!("{pad}[key: string]: unknown;")),
        _ => {}
    }
    let close = "  ".repeat(level);
    format!("{{\n{}\n{close}}}", fields.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::Tool;
    use std::sync::Arc;

    fn tool(server: &str, name: &str, input: Value, output: Option<Value>) -> NamespacedTool {
        let mut t = Tool::new(
            name.to_owned(),
            format!("Does {name}."),
            Arc::new(input.as_object().unwrap().clone()),
        );
        t.output_schema = output.map(|o| Arc::new(o.as_object().unwrap().clone()));
        NamespacedTool {
            name: format!("{server}__{name}"),
            server: server.to_owned(),
            tool: t,
        }
    }

    #[test]
    fn identifiers_are_valid_and_unique_and_map_back() {
        assert_eq!(identifier("my-server"), "my_server");
        assert_eq!(identifier("9lives"), "_9lives");
        assert_eq!(identifier("delete"), "delete_");
        let a = tool("my-server", "get.thing", json!({"type": "object"}), None);
        let b = tool("my-server", "get_thing", json!({"type": "object"}), None);
        let names = Names::new([&a, &b]);
        assert_eq!(
            names.call_path("my-server", "get_thing").as_deref(),
            Some("tools.my_server.get_thing")
        );
        assert_eq!(
            names.call_path("my-server", "get.thing").as_deref(),
            Some("tools.my_server.get_thing_2")
        );
        assert_eq!(
            names.to_engine()["my_server"]["get_thing_2"],
            "my-server__get.thing"
        );
        let ts = declarations(&[&a, &b], &names);
        assert!(
            ts.contains("// tools.my_server is server \"my-server\""),
            "{ts}"
        );
        assert!(ts.contains("// get_thing_2 is tool \"get.thing\""), "{ts}");
    }

    #[test]
    fn schemas_become_types() {
        let input = json!({
            "type": "object",
            "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
            "properties": {
                "mode": {"type": "string", "enum": ["fast", "slow"], "description": "How fast"},
                "at": {"$ref": "#/$defs/Point"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "limit": {"type": ["integer", "null"]},
                "either": {"anyOf": [{"type": "string"}, {"type": "boolean"}]},
                "meta": {"type": "object", "additionalProperties": {"type": "number"}},
                "odd-name": {"type": "string", "nullable": true}
            },
            "required": ["mode"]
        });
        let output = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]});
        let t = tool("s", "run", input, Some(output));
        let names = Names::new([&t]);
        let ts = declarations(&[&t], &names);
        for expected in [
            "declare namespace tools.s {",
            "function run(args: {",
            "mode: \"fast\" | \"slow\";",
            "/** How fast */",
            "at?: {",
            "x: number;",
            "tags?: string[];",
            "limit?: number | null;",
            "either?: string | boolean;",
            "[key: string]: number;",
            "\"odd-name\"?: string | null;",
            "}): Promise<{",
            "ok: boolean;",
            " * Does run.",
        ] {
            assert!(ts.contains(expected), "missing {expected:?} in\n{ts}");
        }
    }

    #[test]
    fn recursive_refs_stop() {
        let input = json!({"type": "object", "properties": {"node": {"$ref": "#"}}});
        let t = tool("s", "tree", input, None);
        let ts = declarations(&[&t], &Names::new([&t]));
        assert!(ts.contains("unknown"), "{ts}");
    }
}
