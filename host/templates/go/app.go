// Package export_wit_world is {{name}}, an mcp-registry plugin: it echoes its input's
// `message` through the `echo` tool of the registry's `everything` server, in a session that
// is closed before Run returns. The bindings beside it are written by `mcp-registry bindings
// go` (wit-bindgen's Go generator); this is the only file that is yours.
package export_wit_world

import (
	"encoding/json"
	"fmt"

	"wit_component/mcp_registry_plugin_registry"
	"wit_component/mcp_registry_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// Describe tells the host the plugin's name, input and what it needs.
func Describe() string {
	return `{"name": "{{name}}", "description": "Echoes a message through the everything server",
	 "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}},
	                 "required": ["message"]},
	 "requires": {"servers": ["everything"], "tools": ["everything__echo"]}}`
}

// Run echoes input.message.
func Run(input string) witTypes.Result[string, string] {
	var args struct {
		Message *string `json:"message"`
	}
	if json.Unmarshal([]byte(input), &args) != nil || args.Message == nil {
		return witTypes.Err[string]("input.message must be a string")
	}
	opened := mcp_registry_plugin_registry.SessionOpen([]string{"everything"})
	if opened.IsErr() {
		return witTypes.Err[string](describeError(opened.Err()))
	}
	session := opened.Ok()
	// Closes the session's server connections whatever happens below.
	defer session.Drop()
	arguments, _ := json.Marshal(map[string]string{"message": *args.Message})
	called := session.CallTool("everything__echo", string(arguments))
	if called.IsErr() {
		return witTypes.Err[string](describeError(called.Err()))
	}
	out, _ := json.Marshal(map[string]string{"echoed": text(called.Ok())})
	return witTypes.Ok[string, string](string(out))
}

// text joins the text items of a tool's content.
func text(result mcp_registry_plugin_types.CallResult) string {
	var content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal([]byte(result.Content), &content)
	joined := ""
	for _, item := range content {
		if item.Type == "text" {
			if joined != "" {
				joined += "\n"
			}
			joined += item.Text
		}
	}
	return joined
}

// describeError is "kind: message", with the kind as the WIT names it.
func describeError(e mcp_registry_plugin_types.Error) string {
	switch e.Tag() {
	case mcp_registry_plugin_types.Error_NotFound:
		return "not-found: " + e.NotFound()
	case mcp_registry_plugin_types.Error_Denied:
		return "denied: " + e.Denied()
	case mcp_registry_plugin_types.Error_InvalidInput:
		return "invalid-input: " + e.InvalidInput()
	case mcp_registry_plugin_types.Error_ServerFailed:
		return "server-failed: " + e.ServerFailed()
	case mcp_registry_plugin_types.Error_Timeout:
		return "timeout: " + e.Timeout()
	case mcp_registry_plugin_types.Error_LimitExceeded:
		return "limit-exceeded: " + e.LimitExceeded()
	}
	return fmt.Sprintf("error %d", e.Tag())
}
