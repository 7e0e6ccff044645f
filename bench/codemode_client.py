"""Code-mode benchmark driver, run by `cargo bench --bench codemode` in .peers/venv (mcp 2.3):
the Python SDK client over stdio against one code-mode server (ours or FastMCP's), timing each
case. Prints {"tools": [the tools/list entries], "cases": {name: {"ms": [...], "error": text}}}.

usage: codemode_client.py SPEC
  SPEC: {"command": [argv], "cases": [{"name", "tool", "arguments", "n", "warmup"?,
         "concurrent"?: how many of the same call at once}]}
  A case's `error` is the text of its first failed call (isError or an exception), if any.
"""

import asyncio
import json
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def text(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def timed(session, case):
    try:
        t = time.perf_counter()
        r = await session.call_tool(case["tool"], case.get("arguments", {}))
        ms = (time.perf_counter() - t) * 1e3
        return ms, (text(r)[:300] if r.is_error else None)
    except Exception as e:  # noqa: BLE001 - a failed call is a row's finding, not a crash
        return (time.perf_counter() - t) * 1e3, f"{type(e).__name__}: {e}"[:300]


async def main():
    spec = json.loads(sys.argv[1])
    params = StdioServerParameters(command=spec["command"][0], args=spec["command"][1:])
    out = {"cases": {}}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            out["tools"] = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools.tools]
            for case in spec.get("cases", []):
                ms, error = [], None
                for i in range(case.get("warmup", 0) + case["n"]):
                    if case.get("concurrent"):
                        got = await asyncio.gather(*[timed(session, case) for _ in range(case["concurrent"])])
                        # The batch took as long as its slowest call.
                        sample = max(g[0] for g in got)
                        failed = next((g[1] for g in got if g[1]), None)
                    else:
                        sample, failed = await timed(session, case)
                    error = error or failed
                    if i >= case.get("warmup", 0):
                        ms.append(sample)
                out["cases"][case["name"]] = {"ms": ms, "error": error}
    print(json.dumps(out))


asyncio.run(main())
