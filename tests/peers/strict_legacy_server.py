"""A strict legacy MCP server (stdlib only): it knows only the 2024-11-05 handshake.

Legacy servers meet the 2026-07-28 `server/discover` probe in different ways; $STRICT_MODE picks
one: `exit` (default: exit on any unknown request, as Python `mcp` 1.6 servers drop their
connection) or `silent` (ignore unknown requests but answer `ping`, as servers that never answer
an unknown request before `initialize` do). A call to a tool it does not have is answered the
FastMCP 1.x way: a successful result with `isError` and "Unknown tool: NAME".
Logs every method it receives to $STRICT_LOG (one per line), and its pid to $STRICT_PIDS.
"""

import json
import os
import sys


def log(method):
    path = os.environ.get("STRICT_LOG")
    if path:
        with open(path, "a") as f:
            f.write(method + "\n")


def reply(id_, result):
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": id_, "result": result}) + "\n")
    sys.stdout.flush()


if os.environ.get("STRICT_PIDS"):
    with open(os.environ["STRICT_PIDS"], "a") as f:
        f.write(f"{os.getpid()}\n")
mode = os.environ.get("STRICT_MODE", "exit")

for line in sys.stdin:
    msg = json.loads(line)
    method = msg.get("method", "")
    log(method)
    if method == "initialize":
        reply(msg["id"], {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}},
                          "serverInfo": {"name": "strict-legacy", "version": "1"}})
    elif method == "notifications/initialized" or method.startswith("notifications/"):
        continue
    elif method == "ping":
        reply(msg["id"], {})
    elif method == "tools/list":
        reply(msg["id"], {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]})
    elif method == "tools/call":
        name = msg["params"].get("name")
        if name == "echo":
            text = msg["params"].get("arguments", {}).get("message", "")
            reply(msg["id"], {"content": [{"type": "text", "text": text}]})
        else:
            reply(msg["id"], {"content": [{"type": "text", "text": f"Unknown tool: {name}"}],
                              "isError": True})
    elif mode == "silent":
        continue
    else:
        sys.stderr.write(f"unknown method {method}; exiting\n")
        sys.exit(1)
