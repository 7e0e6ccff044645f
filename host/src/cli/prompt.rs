//! Asking at a terminal, as the seed does: `call` with no arguments asks for each one the
//! tool's input schema names (types checked, required ones insisted on, defaults shown), and
//! `add` with no name asks for the server's name, command, arguments and environment.

use std::io::{BufRead, Write};

use anyhow::{bail, Context};
use serde_json::{Map, Value};

/// Reads one answer to `question` (`None`: end of input).
fn ask(question: &str) -> anyhow::Result<Option<String>> {
    print!("{question}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\n', '\r']).to_owned()))
}

/// `text` as a value of the schema `kind`, or why not.
fn typed(text: &str, kind: &str) -> Result<Value, String> {
    match kind {
        "string" => Ok(Value::String(text.to_owned())),
        "integer" => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "expected a whole number".into()),
        "number" => text
            .trim()
            .parse::<f64>()
            .map(Value::from)
            .map_err(|_| "expected a number".into()),
        "boolean" => match text.trim().to_lowercase().as_str() {
            "y" | "yes" | "true" => Ok(Value::Bool(true)),
            "n" | "no" | "false" => Ok(Value::Bool(false)),
            _ => Err("expected yes or no".into()),
        },
        // Objects, arrays and anything else: JSON.
        _ => serde_json::from_str(text).map_err(|e| format!("expected JSON ({kind}): {e}")),
    }
}

/// The names an input schema marks `required`.
pub(super) fn required(schema: &Value) -> Vec<&str> {
    schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Asks for each argument of `schema` (a tool's input schema).
pub(super) fn arguments(tool: &str, schema: &Value) -> anyhow::Result<Map<String, Value>> {
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let required = required(schema);
    let mut arguments = Map::new();
    if properties.is_empty() {
        return Ok(arguments);
    }
    println!("{tool}: enter each argument (empty to leave an optional one out)");
    // Required ones first, each group in the schema's order.
    let mut names: Vec<&String> = properties.keys().collect();
    names.sort_by_key(|n| !required.contains(&n.as_str()));
    for name in names {
        let property = &properties[name];
        let kind = property["type"].as_str().unwrap_or("json");
        let is_required = required.contains(&name.as_str());
        let mut question = format!(
            "{name} ({kind}{}",
            if is_required { ", required" } else { "" }
        );
        if let Some(default) = property.get("default") {
            question.push_str(&format!(", default {default}"));
        }
        question.push(')');
        if let Some(d) = property["description"].as_str() {
            question.push_str(&format!(" {d}"));
        }
        question.push_str(": ");
        loop {
            let Some(answer) = ask(&question)? else {
                bail!("input ended before \"{name}\" was given");
            };
            if answer.is_empty() {
                if is_required {
                    println!("  \"{name}\" is required");
                    continue;
                }
                if let Some(default) = property.get("default") {
                    arguments.insert(name.clone(), default.clone());
                }
                break;
            }
            match typed(&answer, kind) {
                Ok(value) => {
                    arguments.insert(name.clone(), value);
                    break;
                }
                Err(why) => println!("  {why}"),
            }
        }
    }
    Ok(arguments)
}

/// What `add` asks for: name, command, arguments, environment.
pub(super) struct NewServer {
    pub(super) name: String,
    pub(super) command: Vec<String>,
    pub(super) env: Vec<String>,
}

/// Asks for a new server.
pub(super) fn new_server() -> anyhow::Result<NewServer> {
    let required = |question: &str| -> anyhow::Result<String> {
        loop {
            match ask(question)? {
                None => bail!("input ended"),
                Some(a) if a.trim().is_empty() => println!("  required"),
                Some(a) => return Ok(a.trim().to_owned()),
            }
        }
    };
    let name = required("server name: ")?;
    let program = required("command: ")?;
    let args = ask("arguments (separated by spaces, empty for none): ")?.context("input ended")?;
    let mut command = vec![program];
    command.extend(args.split_whitespace().map(str::to_owned));
    let mut env = Vec::new();
    loop {
        let Some(kv) = ask("environment variable K=V (empty when done): ")? else {
            break;
        };
        if kv.trim().is_empty() {
            break;
        }
        if !kv.contains('=') {
            println!("  expected K=V");
            continue;
        }
        env.push(kv.trim().to_owned());
    }
    Ok(NewServer { name, command, env })
}
