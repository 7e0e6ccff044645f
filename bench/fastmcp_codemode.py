"""FastMCP's own "code mode" over an MCP registry file, served on stdio.

Benchmark peer. Usage: python fastmcp_codemode.py REGISTRY.json
where REGISTRY.json is {"mcpServers": {name: {command, args, env}}}.

Needs `fastmcp[code-mode]` (FastMCP >= 3.1; written against 4.1.6), which
pulls in `pydantic-monty` (the Monty sandboxed Python interpreter).
Everything is left at FastMCP's defaults.
"""

import json
import sys

from fastmcp.experimental.transforms.code_mode import CodeMode
from fastmcp.server import create_proxy

# The registry is plain MCPConfig JSON; create_proxy accepts it as a dict.
# With several servers FastMCP mounts each under its name, so upstream tools
# appear as "<server>_<tool>" (e.g. alpha_echo).
with open(sys.argv[1]) as f:
    config = json.load(f)

proxy = create_proxy(config, name="fastmcp-codemode")

# CodeMode collapses the catalog into `search`, `get_schema` and `execute`;
# `execute` runs a Python snippet in Monty with `call_tool(name, params)`.
# Defaults: 30 s sandbox CPU time, 100 MB memory, 50 tool calls per execute.
proxy.add_transform(CodeMode())

if __name__ == "__main__":
    proxy.run(transport="stdio", show_banner=False)
