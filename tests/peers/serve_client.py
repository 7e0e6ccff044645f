"""Drives `mcp-registry serve` with the Python `mcp` SDK's stdio_client + ClientSession.

Usage: serve_client.py COMMAND [ARGS...]   (the command that starts `mcp-registry serve`)
Prints one JSON object with what it observed; the Rust test asserts on it.
"""

import json
import os
import sys

import anyio
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import get_default_environment, stdio_client


def text(result):
    return "".join(getattr(c, "text", "") for c in result.content)


def is_error(result):
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


async def main() -> None:
    # The SDK's default environment, plus the cache directory (the test's own, not the user's).
    env = get_default_environment()
    if os.environ.get("MCP_REGISTRY_CACHE_DIR"):
        env["MCP_REGISTRY_CACHE_DIR"] = os.environ["MCP_REGISTRY_CACHE_DIR"]
    params = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:], env=env)
    seen = {"list_changed": 0}
    changed = anyio.Event()

    async def on_message(message):
        if type(message).__name__ == "ToolListChangedNotification":
            seen["list_changed"] += 1
            changed.set()

    async def on_sampling(context, params):
        prompt = params.messages[0].content.text
        seen["sampling_prompt"] = prompt
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"echo of {prompt}"),
            model="test-model",
        )

    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, message_handler=on_message, sampling_callback=on_sampling) as session:
            await session.initialize()
            tools = await session.list_tools()
            out["tools"] = sorted(t.name for t in tools.tools)
            out["echo"] = text(await session.call_tool("a__echo", {"message": "from python"}))
            out["counter"] = [text(await session.call_tool("a__counter", {})) for _ in range(3)]
            out["alias"] = text(await session.call_tool("say", {"message": "via alias"}))
            fail = await session.call_tool("a__fail", {"message": "upstream words"})
            out["fail"] = {"is_error": is_error(fail), "text": text(fail)}
            plugin = await session.call_tool("fanout", {"servers": ["a", "b"], "rounds": 2})
            out["plugin"] = {"is_error": is_error(plugin), "text": text(plugin)}
            # Cancel a slow upstream call by abandoning it: the SDK sends notifications/cancelled.
            with anyio.move_on_after(0.5):
                await session.call_tool("a__sleep", {"ms": 30000})
            out["cancelled_upstream"] = "0"
            with anyio.move_on_after(5):
                while out["cancelled_upstream"] == "0":
                    out["cancelled_upstream"] = text(await session.call_tool("a__cancelled", {}))
                    await anyio.sleep(0.05)
            # Make the upstream change its tool list; the notification must reach us.
            await session.call_tool("a__enable_extra", {})
            with anyio.move_on_after(5):
                await changed.wait()
            out["list_changed"] = seen["list_changed"]
            tools = await session.list_tools()
            out["extra_listed"] = "a__extra" in [t.name for t in tools.tools]
    print(json.dumps(out))


anyio.run(main)
