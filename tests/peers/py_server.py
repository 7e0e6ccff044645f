"""A tiny MCP server written with the Python `mcp` 2.x SDK (not by this project).

It speaks both protocol eras, so the interop tests connect to it in each.
"""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("py-peer")
calls = 0


@server.tool()
def echo(message: str) -> str:
    """Return the message unchanged."""
    return message


@server.tool()
def counter() -> str:
    """Count calls in this process."""
    global calls
    calls += 1
    return str(calls)


@server.tool()
def pid() -> str:
    """Process id of this server."""
    return str(os.getpid())


if __name__ == "__main__":
    server.run("stdio")
