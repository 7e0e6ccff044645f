"""A strict legacy MCP server (stdlib only), like Python `mcp` 1.x servers: it knows only
the 2024-11-05 handshake and exits on any request it does not know, such as the 2026-07-28
`server/discover` probe. Logs every method it receives to $STRICT_LOG (one per line)."""

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


for line in sys.stdin:
    msg = json.loads(line)
    method = msg.get("method", "")
    log(method)
    if method == "initialize":
        reply(msg["id"], {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}},
                          "serverInfo": {"name": "strict-legacy", "version": "1"}})
    elif method == "notifications/initialized" or method.startswith("notifications/"):
        continue
    elif method == "tools/list":
        reply(msg["id"], {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]})
    elif method == "tools/call":
        text = msg["params"].get("arguments", {}).get("message", "")
        reply(msg["id"], {"content": [{"type": "text", "text": text}]})
    else:
        sys.stderr.write(f"unknown method {method}; exiting\n")
        sys.exit(1)
