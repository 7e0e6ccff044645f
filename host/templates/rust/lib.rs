//! {{name}}: an mcp-registry plugin. It echoes its input's `message` through the `echo`
//! tool of the registry's `everything` server, in a session that closes when it is dropped.

use mcp_registry_guest::{export_plugin, json, Description, Plugin, Session, Value};

struct {{type_name}};

impl Plugin for {{type_name}} {
    fn describe() -> Value {
        Description::new("{{name}}", "Echoes a message through the everything server")
            .input_schema(json!({
                "type": "object",
                "properties": {"message": {"type": "string"}},
                "required": ["message"]
            }))
            .requires_servers(&["everything"])
            .requires_tools(&["everything__echo"])
            .into()
    }

    fn run(input: Value) -> Result<Value, String> {
        let message = input
            .get("message")
            .and_then(Value::as_str)
            .ok_or("input.message must be a string")?;
        let session = Session::open(&["everything"]).map_err(|e| e.to_string())?;
        let echoed = session
            .call("everything__echo", &json!({"message": message}))
            .map_err(|e| e.to_string())?
            .text();
        Ok(json!({"echoed": echoed}))
    }
}

export_plugin!({{type_name}});
