"""A FastMCP 4 server over HTTP, for tests/it/remote.rs.

    python fastmcp_http_server.py TRANSPORT PORT TOKEN

serves streamable HTTP (TRANSPORT `http`, at /mcp) or the older HTTP+SSE (`sse`, at /sse)
on 127.0.0.1:PORT (0: any free port), prints `listening on PORT`, and refuses every request
without `Authorization: Bearer TOKEN`.

Its tools make a client's behaviour observable: `counter` counts per MCP session (a
persistent connection counts 1, 2, 3; one connection per call counts 1, 1, 1), `sleep`
notes when it is cancelled and `stats` reports it, `grow` adds a tool and announces it.
"""

import asyncio
import os
import socket
import sys

from fastmcp import Context, FastMCP
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier

transport, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
mcp = FastMCP(
    "fastmcp-http",
    auth=StaticTokenVerifier(tokens={token: {"client_id": "tests", "scopes": []}}),
)
counts: dict[str, int] = {}
observed = {"cancelled": 0}


@mcp.tool
def echo(message: str) -> str:
    """Returns its message."""
    return message


@mcp.tool
def counter(ctx: Context) -> int:
    """Counts calls in this MCP session."""
    key = ctx.session_id
    counts[key] = counts.get(key, 0) + 1
    return counts[key]


@mcp.tool
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@mcp.tool
async def sleep(seconds: float) -> str:
    """Sleeps; a cancellation is counted."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        observed["cancelled"] += 1
        raise
    return "slept"


@mcp.tool
def stats() -> dict:
    """What the server observed."""
    return observed


def extra() -> str:
    """A tool added at run time."""
    return "extra"


@mcp.tool
async def grow(ctx: Context) -> str:
    """Adds the tool `extra` and tells the client its tool list changed."""
    mcp.tool(extra)
    await ctx.session.send_tool_list_changed()
    return "grown"


sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", port))
sock.listen(64)
print(f"listening on {sock.getsockname()[1]}", flush=True)
asyncio.run(
    mcp.run_http_async(
        transport=transport, show_banner=False, log_level="warning", sockets=[sock]
    )
)
