"""A FastMCP server on the Python `mcp` 1.x SDK (not written with anything of ours): the kind
of server most deployments run today. Appends its pid to $MCP_TEST_PID_FILE at start-up."""

import os

from mcp.server.fastmcp import FastMCP

if os.environ.get("MCP_TEST_PID_FILE"):
    with open(os.environ["MCP_TEST_PID_FILE"], "a") as f:
        f.write(f"{os.getpid()}\n")

mcp = FastMCP("fastmcp1-peer")
calls = 0


@mcp.tool()
def echo(message: str) -> str:
    """Return the message unchanged."""
    return message


@mcp.tool()
def counter() -> str:
    """Count calls in this process."""
    global calls
    calls += 1
    return str(calls)


if __name__ == "__main__":
    mcp.run()
