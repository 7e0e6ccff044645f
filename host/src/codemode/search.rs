//! `search`: which tools fit a query. A plain lexical ranking (no model, no index to build):
//! query words found in the tool's name count most, then in its server's name, its
//! parameters' names, and its description. Deterministic, so the same question gets the
//! same answer.

use serde_json::Value;

use crate::aggregator::NamespacedTool;

/// The query words a ranking looks at (the first ones).
const MAX_QUERY_WORDS: usize = 32;

/// The words of `text`, lower-cased; `snake_case`, `kebab-case` and `camelCase` split.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && previous_lower && !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
            word.extend(c.to_lowercase());
        } else {
            previous_lower = false;
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Whether `query` (a word) matches `word`: equal, or one a prefix of the other when both
/// have 3 or more letters (`file` finds `files`, `read` finds `reading`).
fn matches(query: &str, word: &str) -> bool {
    query == word
        || (query.len() >= 3
            && word.len() >= 3
            && (word.starts_with(query) || query.starts_with(word)))
}

fn score_in(query: &[String], words: &[String], weight: f64) -> f64 {
    query
        .iter()
        .filter(|q| words.iter().any(|w| matches(q, w)))
        .count() as f64
        * weight
}

/// How well `tool` fits the query words (0: not at all).
pub fn score(query: &[String], tool: &NamespacedTool) -> f64 {
    let name = words(tool.tool.name.as_ref());
    let server = words(&tool.server);
    let params: Vec<String> = tool
        .tool
        .input_schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().flat_map(|k| words(k)).collect())
        .unwrap_or_default();
    let description = words(tool.tool.description.as_deref().unwrap_or(""));
    let mut s = score_in(query, &name, 4.0)
        + score_in(query, &server, 2.0)
        + score_in(query, &params, 1.0)
        + score_in(query, &description, 1.0);
    // Every query word found somewhere: a better match than many hits of one word.
    let all: Vec<&String> = name
        .iter()
        .chain(&server)
        .chain(&params)
        .chain(&description)
        .collect();
    if !query.is_empty() && query.iter().all(|q| all.iter().any(|w| matches(q, w))) {
        s += 2.0;
    }
    s
}

/// The tools that fit `query`, best first, at most `limit`; every tool (up to `limit`) for an
/// empty query. Ties keep the registry's order.
pub fn rank<'a>(query: &str, tools: &'a [NamespacedTool], limit: usize) -> Vec<&'a NamespacedTool> {
    // Each query word is looked for in every tool: a few words say what is wanted, and more
    // would only cost the host time.
    let query: Vec<String> = words(query).into_iter().take(MAX_QUERY_WORDS).collect();
    if query.is_empty() {
        return tools.iter().take(limit).collect();
    }
    let mut scored: Vec<(f64, usize)> = tools
        .iter()
        .enumerate()
        .map(|(i, t)| (score(&query, t), i))
        .filter(|(s, _)| *s > 0.0)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .into_iter()
        .take(limit)
        .map(|(_, i)| &tools[i])
        .collect()
}

/// How many tools `search` returns unless asked for more.
pub const DEFAULT_LIMIT: usize = 8;

/// How `search` shows the tools it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Names, call paths and descriptions as JSON.
    Names,
    /// TypeScript declarations (for JavaScript and TypeScript snippets).
    TypeScript,
    /// Python stubs (for Python snippets).
    Python,
}

/// What `search` answers, the same for a model (code mode's `search` tool) and a person
/// (`mcp-registry search`): the text to read (the best `limit` tools as `detail` says) and
/// the structured result.
pub fn answer(
    query: &str,
    tools: &[NamespacedTool],
    limit: usize,
    detail: Detail,
) -> (String, Value) {
    let names = super::Names::new(tools);
    let found = rank(query, tools, limit);
    let listed: Vec<Value> = found
        .iter()
        .map(|t| {
            serde_json::json!({
                "call": names.call_path(&t.server, &t.tool.name),
                "name": t.name,
                "description": t.tool.description.as_deref().unwrap_or(""),
            })
        })
        .collect();
    let text = match detail {
        Detail::Names => serde_json::to_string_pretty(&listed).unwrap_or_default(),
        _ if found.is_empty() => {
            let comment = if detail == Detail::Python { "#" } else { "//" };
            format!(
                "{comment} no tool matches {query:?}; try other words, or an empty query for all"
            )
        }
        Detail::TypeScript => super::declarations(&found, &names),
        Detail::Python => super::python::stubs(&found, &names),
    };
    let structured = serde_json::json!({"tools": listed, "total": tools.len()});
    (text, structured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::Tool;
    use serde_json::json;
    use std::sync::Arc;

    fn tool(server: &str, name: &str, description: &str) -> NamespacedTool {
        let schema = json!({"type": "object", "properties": {"path": {"type": "string"}}});
        NamespacedTool {
            name: format!("{server}__{name}"),
            server: server.to_owned(),
            tool: Tool::new(
                name.to_owned(),
                description.to_owned(),
                Arc::new(schema.as_object().unwrap().clone()),
            ),
        }
    }

    #[test]
    fn words_split_every_case() {
        assert_eq!(words("readTextFile"), ["read", "text", "file"]);
        assert_eq!(words("get_current-time"), ["get", "current", "time"]);
    }

    #[test]
    fn names_rank_above_descriptions() {
        let tools = vec![
            tool("fs", "list_directory", "Lists the files of a directory"),
            tool("fs", "read_file", "Reads a file"),
            tool("time", "get_current_time", "The time now"),
        ];
        let ranked = rank("read file", &tools, 10);
        assert_eq!(ranked[0].tool.name, "read_file");
        assert_eq!(ranked.len(), 2, "the time tool does not match");
        assert_eq!(rank("current time", &tools, 10)[0].server, "time");
        assert_eq!(rank("", &tools, 2).len(), 2);
    }
}
