//! Example plugin using temporary calls only: each call starts the one server it needs and
//! stops it afterwards, so `counter` answers 1 every time.
//!
//! Input: `{"server": "alpha", "calls": 3}` (optional).

use mcp_registry_guest::{call, export_plugin, json, list_tools, Description, Plugin, Value};

struct Temporary;

impl Plugin for Temporary {
    fn describe() -> Value {
        Description::new(
            "temporary",
            "List a server's tools and call its counter in temporary mode",
        )
        .input_schema(json!({
            "type": "object",
            "properties": {"server": {"type": "string"}, "calls": {"type": "integer"}}
        }))
        .requires_servers(&["alpha"])
        .into()
    }

    fn run(input: Value) -> Result<Value, String> {
        let server = match input.get("server").and_then(Value::as_str) {
            Some(s) => s.to_owned(),
            None => mcp_registry_guest::servers()
                .into_iter()
                .next()
                .ok_or("no servers available")?,
        };
        let calls = input.get("calls").and_then(Value::as_u64).unwrap_or(3);
        let tools: Vec<String> = list_tools(&[&server])
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|t| t.name)
            .collect();
        let mut counters = Vec::new();
        for _ in 0..calls {
            let r = call(&format!("{server}__counter"), &json!({})).map_err(|e| e.to_string())?;
            counters.push(
                r.text()
                    .parse::<u64>()
                    .map_err(|_| "counter returned a non-number")?,
            );
        }
        Ok(json!({"server": server, "tools": tools, "counters": counters}))
    }
}

export_plugin!(Temporary);
