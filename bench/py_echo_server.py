"""A Python MCP echo server (FastMCP from mcp 1.6.0, what the seed runs with): the server
users actually deploy, where server cost dominates. Appends its pid to $MCP_TEST_PID_FILE."""

import os

from mcp.server.fastmcp import FastMCP

if os.environ.get("MCP_TEST_PID_FILE"):
    with open(os.environ["MCP_TEST_PID_FILE"], "a") as f:
        f.write(f"{os.getpid()}\n")

mcp = FastMCP("py-echo")


@mcp.tool()
def echo(message: str) -> str:
    """Return the message unchanged."""
    return message


if __name__ == "__main__":
    mcp.run()
