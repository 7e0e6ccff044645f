//! Example plugin: opens one session on several servers and fans calls out concurrently.
//!
//! Input: `{"servers": ["alpha", "beta"], "rounds": 3, "message": "hi"}` (all optional).
//! Each round starts a `counter` call on every server at once and waits for all of them;
//! because the session keeps one process per server, each server counts 1, 2, 3...

use mcp_registry_guest::{
    export_plugin, join_all, json, log, serde_json, Description, Level, Plugin, Session, Value,
};

struct FanOut;

impl Plugin for FanOut {
    fn describe() -> Value {
        Description::new(
            "fanout",
            "Open a session on several servers and call them concurrently",
        )
        .input_schema(json!({
            "type": "object",
            "properties": {
                "servers": {"type": "array", "items": {"type": "string"}},
                "rounds": {"type": "integer", "minimum": 1},
                "message": {"type": "string"}
            }
        }))
        // The servers of examples/registry.json, and the two tools it calls on each.
        .requires_servers(&["alpha", "beta"])
        .requires_tools(&["*__counter", "*__echo"])
        .into()
    }

    fn run(input: Value) -> Result<Value, String> {
        let servers: Vec<String> = match input.get("servers").and_then(Value::as_array) {
            Some(list) => list
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
            None => mcp_registry_guest::servers().into_iter().take(2).collect(),
        };
        let rounds = input.get("rounds").and_then(Value::as_u64).unwrap_or(3);
        let message = input
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("hello from wasm");
        let names: Vec<&str> = servers.iter().map(String::as_str).collect();
        let session = Session::open(&names).map_err(|e| e.to_string())?;
        log(Level::Info, &format!("session open on {names:?}"));

        let mut counters = serde_json::Map::new();
        for _ in 0..rounds {
            let calls = names
                .iter()
                .map(|s| session.start(&format!("{s}__counter"), &json!({})))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            for (server, outcome) in names.iter().zip(join_all(calls)) {
                let n: u64 = outcome
                    .map_err(|e| e.to_string())?
                    .text()
                    .parse()
                    .map_err(|_| "counter returned a non-number")?;
                if let Some(list) = counters
                    .entry(server.to_string())
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                {
                    list.push(json!(n));
                }
            }
        }
        let echoes = names
            .iter()
            .map(|s| session.start(&format!("{s}__echo"), &json!({"message": message})))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let echoes: Vec<String> = join_all(echoes)
            .into_iter()
            .map(|r| r.map(|r| r.text()).unwrap_or_else(|e| e.to_string()))
            .collect();
        Ok(json!({"servers": names, "counters": counters, "echoes": echoes}))
        // `session` drops here: every server process it opened is closed.
    }
}

export_plugin!(FanOut);
