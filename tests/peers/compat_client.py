"""Drives `mcp-registry serve` with the Python `mcp` SDK clients, as a compatibility probe.

Usage: compat_client.py MODE TRANSPORT TARGET [CALLS]
  MODE       mcp1 (the mcp 1.x stdio_client + ClientSession; run it under the venv-mcp1 python),
             or legacy | auto | 2026-07-28 (the mcp 2.x `Client(..., mode=MODE)`; run it under venv)
  TRANSPORT  stdio (TARGET is a JSON array: the command line that starts serve)
             | http (TARGET is the URL, http://127.0.0.1:PORT/mcp)

The served registry is expected to aggregate a `memory` server (server-memory) and a `modern`
server (the test server). The script lists tools, calls memory__read_graph, modern__echo,
modern__counter three times and the unknown modern__nope, and prints one JSON object with what
it saw. Every step records its own failure ("Class: message"), so one failure hides nothing;
the whole run is bounded at 120 s. With CALLS (a JSON list of [tool, arguments] pairs) it lists
tools and makes those calls instead, reporting them under "calls" with how many progress
notifications each got; a third element "cancel" gives the call up after 1.5 s (reported as
"cancelled"). The mcp 2.x client answers
elicitation (accepting, with the question as `username`; declining with
$MCP_COMPAT_ELICIT=decline; each question is kept under "asked") and sampling ("echo of PROMPT"). With $MCP_AUTH_TOKEN set,
HTTP requests carry `Authorization: Bearer $MCP_AUTH_TOKEN` (through an httpx auth). Exit status 1 when it could not connect ("fatal") or timed
out, else 0 whatever the steps saw: the Rust test asserts on the JSON.
"""

import json
import os
import sys
import threading

import anyio

MODE, TRANSPORT, TARGET = sys.argv[1:4]
CALLS = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
# With $MCP_COMPAT_LOGS set, the mcp 2.x client asks for log messages at "info" (the 2026-07-28
# per-request opt-in, or logging/setLevel in 2025-11-25) and reports each one's logger under "logs".
LOGS = bool(os.environ.get("MCP_COMPAT_LOGS"))
# With $MCP_COMPAT_CHANGES (a JSON list of server names), the mcp 2.x client then calls each
# server's `enable_extra` and waits for the tool-list change it announces (on a
# `subscriptions/listen` in 2026-07-28, as a notification in 2025-11-25), then looks for
# SERVER__extra in a fresh tools/list; reported under "changes".
CHANGES = json.loads(os.environ.get("MCP_COMPAT_CHANGES") or "[]")
# A step may start a server (npx under a loaded CI machine: tens of seconds) behind `serve`.
STEP_TIMEOUT = 30
TOTAL_TIMEOUT = 120

out: dict = {"mode": MODE, "transport": TRANSPORT}
_printed = threading.Lock()


def emit() -> None:
    """Print `out` once (the main path and the timeout backstop race for it)."""
    if _printed.acquire(blocking=False):
        print(json.dumps(out), flush=True)


def backstop() -> None:
    out["timeout"] = f"gave up after {TOTAL_TIMEOUT} s"
    emit()
    os._exit(1)


def failure(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def is_error(result) -> bool:
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


def outcome(result) -> dict:
    found = {"ok": not is_error(result), "text": text(result)}
    # Whose identity the result carries, if any (2026-07-28 results may name their server).
    meta = getattr(result, "meta", None) or {}
    info = meta.get("io.modelcontextprotocol/serverInfo") if isinstance(meta, dict) else None
    if info:
        found["server_info"] = info.get("name") if isinstance(info, dict) else str(info)
    return found


async def step(action):
    """Run one action with its own timeout; an exception becomes {"ok": false, "error": ...}."""
    try:
        with anyio.fail_after(STEP_TIMEOUT):
            return await action()
    except Exception as e:
        return {"ok": False, "error": failure(e)}


async def logs_settle() -> None:
    """Waits (up to 5 s) for the three log messages of each logging call: in a 2025-11-25
    session over HTTP they travel on the session's own stream, not the call's, so they may
    arrive after the call's answer."""
    expected = 3 * sum(1 for spec in CALLS if spec[0].endswith("test_tool_with_logging"))
    with anyio.move_on_after(5):
        while len(out.get("logs", [])) < expected:
            await anyio.sleep(0.05)


async def exercise(list_tools, call_tool, rpc_error) -> None:
    """The actions, in order. `rpc_error` is the SDK's exception class for a JSON-RPC error."""

    async def tools():
        return sorted(t.name for t in await list_tools())

    def call(name, arguments):
        async def action():
            return outcome(await call_tool(name, arguments))

        return action

    def traced_call(name, arguments, how=None):
        """A call of CALLS: with the progress notifications it got counted, and with how ==
        "cancel" given up after 1.5 s (the SDK then tells the server)."""

        async def action():
            seen = []

            async def on_progress(progress, total, message):
                seen.append(progress)

            if how == "cancel":
                with anyio.move_on_after(1.5) as scope:
                    r = await call_tool(name, arguments, progress_callback=on_progress)
                if scope.cancelled_caught:
                    return {"ok": True, "text": "cancelled", "progress": len(seen)}
            else:
                r = await call_tool(name, arguments, progress_callback=on_progress)
            return {**outcome(r), "progress": len(seen)}

        return action

    async def counter():
        r = await call_tool("modern__counter", {})
        return text(r) if not is_error(r) else {"ok": False, "text": text(r)}

    async def unknown():
        try:
            r = await call_tool("modern__nope", {})
        except rpc_error as e:
            return {"kind": "jsonrpc-error", "code": e.error.code, "message": e.error.message}
        return {"kind": "is-error" if is_error(r) else "ok", "message": text(r)}

    out["tools"] = await step(tools)
    if CALLS is not None:
        out["calls"] = [await step(traced_call(*spec)) for spec in CALLS]
        if LOGS:
            await logs_settle()
        return
    out["memory_read_graph"] = await step(call("memory__read_graph", {}))
    out["echo"] = await step(call("modern__echo", {"message": "compat"}))
    out["counter"] = [await step(counter) for _ in range(3)]
    out["unknown_tool"] = await step(unknown)


async def run_mcp1() -> None:
    """mcp 1.x: stdio_client (or streamablehttp_client, when the installed 1.x has it) + ClientSession."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.shared.exceptions import McpError

    if TRANSPORT == "stdio":
        argv = json.loads(TARGET)
        # env: the SDK passes only a safe subset of the environment by default; serve needs all of it.
        transport = stdio_client(StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ)))
    else:
        try:
            from mcp.client.streamable_http import streamablehttp_client
        except ImportError:
            import importlib.metadata

            version = importlib.metadata.version("mcp")
            out["unsupported"] = f"mcp {version} has no streamable HTTP client"
            return
        transport = streamablehttp_client(TARGET)

    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["protocol_version"] = init.protocolVersion

            async def list_tools():
                return (await session.list_tools()).tools

            await exercise(list_tools, session.call_tool, McpError)


async def run_mcp2() -> None:
    """mcp 2.x: the high-level Client, with `mode` choosing legacy / auto / a pinned 2026 revision."""
    from mcp import Client, MCPError, StdioServerParameters

    if TRANSPORT == "stdio":
        argv = json.loads(TARGET)
        server = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
    elif os.environ.get("MCP_AUTH_TOKEN"):
        # An httpx auth, as a deployment would give its credentials.
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        class Bearer(httpx2.Auth):
            def auth_flow(self, request):
                request.headers["Authorization"] = f"Bearer {os.environ['MCP_AUTH_TOKEN']}"
                yield request

        server = streamable_http_client(TARGET, http_client=httpx2.AsyncClient(auth=Bearer()))
    else:
        server = TARGET
    from mcp import types

    async def on_elicitation(context, params):
        # With $MCP_COMPAT_ELICIT=decline the user says no (what was asked is kept under "asked").
        out.setdefault("asked", []).append(params.message)
        if os.environ.get("MCP_COMPAT_ELICIT") == "decline":
            return types.ElicitResult(action="decline")
        # The answer names what was asked, so the caller sees it went the whole way.
        return types.ElicitResult(action="accept", content={"username": params.message, "email": "a@example.org"})

    async def on_sampling(context, params):
        prompt = params.messages[0].content.text
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"echo of {prompt}"), model="test-model"
        )

    async def on_log(params):
        out.setdefault("logs", []).append(params.logger)

    # 2025-11-25: tool-list changes arrive as notifications, counted here.
    changed = {"count": 0, "event": anyio.Event()}

    async def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed["count"] += 1
            changed["event"].set()

    async with Client(
        server,
        mode=MODE,
        elicitation_callback=on_elicitation,
        sampling_callback=on_sampling,
        logging_callback=on_log,
        log_level="info" if LOGS else None,
        message_handler=on_message if CHANGES else None,
    ) as client:
        out["protocol_version"] = client.protocol_version
        if LOGS and not str(client.protocol_version).startswith("2026"):
            # A 2025-11-25 session sets its level once (the 2026-07-28 one asks per request).
            await client.set_logging_level("info")

        async def list_tools():
            tools, cursor = [], None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools += page.tools
                cursor = page.next_cursor
                if cursor is None:
                    return tools

        await exercise(list_tools, client.call_tool, MCPError)

        async def hear_change(server):
            """Calls SERVER__enable_extra and waits (5 s) to hear of the change."""
            modern = str(client.protocol_version).startswith("2026")
            if modern:
                async with client.listen(tools_list_changed=True) as sub:
                    await client.call_tool(f"{server}__enable_extra", {})
                    heard = False
                    with anyio.move_on_after(5):
                        async for _event in sub:
                            heard = True
                            break
            else:
                changed["event"] = anyio.Event()
                await client.call_tool(f"{server}__enable_extra", {})
                with anyio.move_on_after(5):
                    await changed["event"].wait()
                heard = changed["event"].is_set()
            listed = any(t.name == f"{server}__extra" for t in await list_tools())
            return {"ok": heard and listed, "text": f"heard={heard} listed={listed}"}

        if CHANGES:
            out["changes"] = {server: await step(lambda server=server: hear_change(server)) for server in CHANGES}


async def main() -> None:
    try:
        await (run_mcp1() if MODE == "mcp1" else run_mcp2())
    except Exception as e:
        # Connecting (or closing) failed; the steps that ran are already in `out`.
        out["fatal"] = failure(e)
        # anyio task groups wrap errors in an ExceptionGroup; name the inner ones too.
        inner = getattr(e, "exceptions", None)
        if inner:
            out["fatal_causes"] = [failure(x) for x in inner]


timer = threading.Timer(TOTAL_TIMEOUT, backstop)
timer.daemon = True
timer.start()
anyio.run(main)
emit()
sys.exit(1 if "fatal" in out else 0)
