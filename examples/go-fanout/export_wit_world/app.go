// Package export_wit_world is an example plugin in Go: the fan-out of examples/fanout, on the
// bindings `wit-bindgen go` writes from wit/.
//
// Input: {"servers": ["alpha", "beta"], "rounds": 3, "message": "hi"} (all optional), plus
// "mode": "temporary" (counter calls in temporary mode) or "errors" (report error kinds).
// Build: `scripts/build-guests.sh go` (bindings beside a copy of this directory, then
// `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared` and `mcp-registry componentize`;
// docs/authoring.md walks through it).
package export_wit_world

import (
	"encoding/json"
	"strconv"
	"strings"

	"wit_component/mcp_registry_plugin_log"
	"wit_component/mcp_registry_plugin_registry"
	"wit_component/mcp_registry_plugin_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

type callResult = witTypes.Result[mcp_registry_plugin_types.CallResult, mcp_registry_plugin_types.Error]

// Describe tells the host the plugin's name, input and what it needs.
func Describe() string {
	return `{"name": "go-fanout",
	 "description": "Open a session on several servers and call them concurrently (Go)",
	 "inputSchema": {"type": "object", "properties": {
	   "servers": {"type": "array", "items": {"type": "string"}},
	   "rounds": {"type": "integer"}, "message": {"type": "string"},
	   "mode": {"type": "string", "enum": ["fanout", "temporary", "errors"]}}},
	 "requires": {"servers": ["alpha", "beta"], "tools": []}}`
}

// Run dispatches on input.mode.
func Run(input string) witTypes.Result[string, string] {
	args := struct {
		Servers []string `json:"servers"`
		Rounds  *int     `json:"rounds"`
		Mode    string   `json:"mode"`
		Message *string  `json:"message"`
	}{}
	if strings.TrimSpace(input) != "" {
		if err := json.Unmarshal([]byte(input), &args); err != nil {
			return witTypes.Err[string]("bad input: " + err.Error())
		}
	}
	names := args.Servers
	if len(names) == 0 {
		names = mcp_registry_plugin_registry.Servers()
		if len(names) > 2 {
			names = names[:2]
		}
	}
	if len(names) == 0 {
		return witTypes.Err[string]("no servers")
	}
	rounds := 3
	if args.Rounds != nil {
		rounds = *args.Rounds
	}
	message := "hello from go"
	if args.Message != nil {
		message = *args.Message
	}
	var out any
	var err error
	switch args.Mode {
	case "temporary":
		out, err = temporary(names[0], rounds)
	case "errors":
		out, err = errorKinds(names[0])
	default:
		out, err = fanOut(names, rounds, message)
	}
	if err != nil {
		return witTypes.Err[string](err.Error())
	}
	text, _ := json.Marshal(out)
	return witTypes.Ok[string, string](string(text))
}

// registryError is a WIT error as a Go error: "kind: message".
type registryError struct{ e mcp_registry_plugin_types.Error }

func (r registryError) Error() string { return kind(r.e) + ": " + message(r.e) }

func kind(e mcp_registry_plugin_types.Error) string {
	kinds := []string{"not-found", "denied", "invalid-input", "server-failed", "timeout", "limit-exceeded"}
	if int(e.Tag()) < len(kinds) {
		return kinds[e.Tag()]
	}
	return "unknown"
}

func message(e mcp_registry_plugin_types.Error) string {
	switch e.Tag() {
	case mcp_registry_plugin_types.Error_NotFound:
		return e.NotFound()
	case mcp_registry_plugin_types.Error_Denied:
		return e.Denied()
	case mcp_registry_plugin_types.Error_InvalidInput:
		return e.InvalidInput()
	case mcp_registry_plugin_types.Error_ServerFailed:
		return e.ServerFailed()
	case mcp_registry_plugin_types.Error_Timeout:
		return e.Timeout()
	default:
		return e.LimitExceeded()
	}
}

// text joins the text items of a call's content, or gives its error.
func text(r callResult) (string, error) {
	if r.IsErr() {
		return "", registryError{r.Err()}
	}
	var content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal([]byte(r.Ok().Content), &content)
	var texts []string
	for _, item := range content {
		if item.Type == "text" {
			texts = append(texts, item.Text)
		}
	}
	return strings.Join(texts, "\n"), nil
}

func temporary(server string, rounds int) (any, error) {
	counters := []int{}
	for i := 0; i < rounds; i++ {
		t, err := text(mcp_registry_plugin_registry.CallTool(server+"__counter", "{}"))
		if err != nil {
			return nil, err
		}
		n, _ := strconv.Atoi(t)
		counters = append(counters, n)
	}
	return map[string]any{"counters": counters}, nil
}

func errorKinds(server string) (any, error) {
	opened := mcp_registry_plugin_registry.SessionOpen([]string{server})
	if opened.IsErr() {
		return nil, registryError{opened.Err()}
	}
	s := opened.Ok()
	defer s.Drop()
	kindOf := func(r callResult) string {
		if r.IsOk() {
			return "ok"
		}
		return kind(r.Err())
	}
	failed := s.CallTool(server+"__fail", `{"message": "m"}`)
	if failed.IsErr() {
		return nil, registryError{failed.Err()}
	}
	return map[string]any{
		"array_args":     kindOf(s.CallTool(server+"__echo", "[1]")),
		"unknown_tool":   kindOf(s.CallTool(server+"__nope", "{}")),
		"unknown_server": kindOf(mcp_registry_plugin_registry.CallTool("nosuch__echo", "{}")),
		"bad_name":       kindOf(s.CallTool("echo", "{}")),
		"tool_error":     failed.Ok().IsError,
	}, nil
}

// all starts `tool` on every server at once, then waits for each in turn.
func all(s *mcp_registry_plugin_registry.Session, names []string, tool, arguments string) ([]string, error) {
	var calls []*mcp_registry_plugin_registry.FutureCallResult
	defer func() {
		for _, c := range calls {
			c.Drop()
		}
	}()
	for _, name := range names {
		started := s.StartCall(name+"__"+tool, arguments)
		if started.IsErr() {
			return nil, registryError{started.Err()}
		}
		calls = append(calls, started.Ok())
	}
	var texts []string
	for _, c := range calls {
		ready := c.Subscribe()
		ready.Block()
		ready.Drop()
		t, err := text(c.Get().Some())
		if err != nil {
			return nil, err
		}
		texts = append(texts, t)
	}
	return texts, nil
}

func fanOut(names []string, rounds int, message string) (any, error) {
	opened := mcp_registry_plugin_registry.SessionOpen(names)
	if opened.IsErr() {
		return nil, registryError{opened.Err()}
	}
	s := opened.Ok()
	// The session is closed when fanOut returns, whatever happened.
	defer s.Drop()
	mcp_registry_plugin_log.Log(mcp_registry_plugin_log.Level_Info, "session open")
	counters := map[string][]int{}
	for i := 0; i < rounds; i++ {
		texts, err := all(s, names, "counter", "{}")
		if err != nil {
			return nil, err
		}
		for j, name := range names {
			n, _ := strconv.Atoi(texts[j])
			counters[name] = append(counters[name], n)
		}
	}
	echoArgs, _ := json.Marshal(map[string]string{"message": message})
	echoes, err := all(s, names, "echo", string(echoArgs))
	if err != nil {
		return nil, err
	}
	pids := map[string]string{}
	for _, name := range names {
		pid, err := text(s.CallTool(name+"__pid", "{}"))
		if err != nil {
			return nil, err
		}
		pids[name] = pid
	}
	return map[string]any{"servers": names, "counters": counters, "echoes": echoes, "pids": pids}, nil
}
