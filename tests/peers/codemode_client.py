"""Drives `mcp-registry serve --code-mode` with the Python `mcp` SDK over stdio, as a model's
client would: list tools, `search`, then several `execute` calls at once.

Usage: codemode_client.py SPEC   (SPEC as in codemode_client.mjs; same JSON printed)
"""

import json
import os
import sys

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import get_default_environment, stdio_client


def text(result):
    return "".join(getattr(c, "text", "") for c in result.content)


def field(result, *names):
    for name in names:
        value = getattr(result, name, None)
        if value is not None:
            return value
    return None


def server_env():
    """The SDK's default environment (what Claude Desktop and the others pass), plus the
    cache directory: without it serve compiles the code-mode engines into the user's own
    cache, cold on a fresh machine (minutes under load, past the client's timeouts)."""
    env = get_default_environment()
    if os.environ.get("MCP_REGISTRY_CACHE_DIR"):
        env["MCP_REGISTRY_CACHE_DIR"] = os.environ["MCP_REGISTRY_CACHE_DIR"]
    return env


async def main() -> None:
    spec = json.loads(sys.argv[1])
    params = StdioServerParameters(command=spec["command"][0], args=spec["command"][1:], env=server_env())
    out = {"order": []}
    with anyio.fail_after(120):
        await drive(spec, params, out)
    print(json.dumps(out))


async def drive(spec, params, out) -> None:
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            out["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
            async def search(arguments):
                found = await session.call_tool("search", arguments)
                return {
                    "text": text(found),
                    "structured": field(found, "structured_content", "structuredContent"),
                }

            if isinstance(spec["search"], list):
                out["search"] = [await search(a) for a in spec["search"]]
            else:
                out["search"] = await search(spec["search"])
            out["executes"] = []
            for b, batch in enumerate(spec["executes"]):
                results = [None] * len(batch)

                async def run(i, arguments, b=b, results=results):
                    progress = []

                    async def note(done, total, message):
                        progress.append([done, total, message])

                    r = await session.call_tool("execute", arguments, progress_callback=note)
                    results[i] = {
                        "is_error": bool(field(r, "is_error", "isError")),
                        "structured": field(r, "structured_content", "structuredContent"),
                        "text": text(r),
                        "progress": progress,
                    }
                    out["order"].append([b, i])

                async with anyio.create_task_group() as group:
                    for i, arguments in enumerate(batch):
                        group.start_soon(run, i, arguments)
                out["executes"].append(results)


if __name__ == "__main__":
    anyio.run(main)
