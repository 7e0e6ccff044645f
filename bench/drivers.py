"""Python-side benchmark drivers, run by `cargo bench --bench compare` in .peers/seed-venv
(mcp-registry 0.9.2, mcp 1.6.0). Prints {"us": [per-call microseconds]}.

usage: drivers.py MODE N SERVER_JSON TOOL
  MODE: seed-temporary | seed-persistent | py-client | serve-client
  SERVER_JSON: {"name": ..., "command": ..., "args": [...], "env": {...}}
"""

import asyncio
import json
import os
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

WARMUP = 10


def params(server):
    env = dict(os.environ)
    env.update(server.get("env", {}))
    return StdioServerParameters(command=server["command"], args=server.get("args", []), env=env)


async def seed(mode, n, server, tool):
    from mcp_registry.compound import MCPAggregator, ServerRegistry

    settings = {"type": "stdio", "command": server["command"], "args": server.get("args") or ["-"],
                "env": server.get("env", {})}
    registry = ServerRegistry.from_dict({server["name"]: settings})
    args = {"message": "x"}
    out = []
    if mode == "seed-temporary":
        for _ in range(n):
            agg = MCPAggregator(registry)
            t = time.perf_counter()
            r = await agg.call_tool(tool, args)
            out.append((time.perf_counter() - t) * 1e6)
            assert not r.isError, r
    else:
        async with MCPAggregator(registry) as agg:
            for i in range(n + WARMUP):
                t = time.perf_counter()
                r = await agg.call_tool(tool, args)
                if i >= WARMUP:
                    out.append((time.perf_counter() - t) * 1e6)
                assert not r.isError, r
    return out


async def client(n, server, tool):
    out = []
    async with stdio_client(params(server)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            for i in range(n + WARMUP):
                t = time.perf_counter()
                r = await session.call_tool(tool, {"message": "x"})
                if i >= WARMUP:
                    out.append((time.perf_counter() - t) * 1e6)
                assert not r.isError, r
    return out


async def main():
    mode, n, server, tool = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
    if mode.startswith("seed-"):
        us = await seed(mode, n, server, tool)
    else:
        us = await client(n, server, tool)
    print(json.dumps({"us": us}))


asyncio.run(main())
