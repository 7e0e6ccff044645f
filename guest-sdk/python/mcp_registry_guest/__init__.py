"""Write mcp-registry plugins in Python (componentize-py).

A thin layer over the bindings componentize-py generates from `wit/orchestrator.wit`:
JSON values instead of JSON text, one exception type, and `Session` as a context manager,
so Python's own `with` maps onto the WIT resource's lifetime:

    with Session.open(["alpha", "beta"]) as session:
        calls = [session.start("alpha__echo", {"message": "hi"}),
                 session.start("beta__echo", {"message": "hi"})]
        results = join_all(calls)        # concurrent on the host
    # leaving the block drops the session: both server processes are closed
"""

import json
from typing import Any, List, Optional

from componentize_py_types import Err
from wit_world.imports import log as _log
from wit_world.imports import poll as _poll
from wit_world.imports import progress as _progress
from wit_world.imports import registry as _registry


class RegistryError(Exception):
    """A request failed; `kind` is the WIT error case (`not-found`, `denied`, ...)."""

    _KINDS = {
        "Error_NotFound": "not-found",
        "Error_Denied": "denied",
        "Error_InvalidInput": "invalid-input",
        "Error_ServerFailed": "server-failed",
        "Error_Timeout": "timeout",
        "Error_LimitExceeded": "limit-exceeded",
    }

    def __init__(self, error: Any):
        self.kind = self._KINDS.get(type(error).__name__, "unknown")
        self.message = getattr(error, "value", str(error))
        super().__init__(f"{self.kind}: {self.message}")


class CallResult:
    """A tool's answer: MCP `content` (list), `structured` (dict or None), `is_error`."""

    def __init__(self, raw: Any):
        self.content = json.loads(raw.content)
        self.structured = json.loads(raw.structured_content) if raw.structured_content else None
        self.is_error = raw.is_error

    @property
    def text(self) -> str:
        return "\n".join(b.get("text", "") for b in self.content if isinstance(b, dict) and "text" in b)


def describe(name: str, description: str, input_schema: Optional[dict] = None,
             servers: Optional[List[str]] = None, tools: Optional[List[str]] = None) -> str:
    """The JSON a plugin's `describe` returns. The host grants a plugin no server until it is
    told to; `servers` and `tools` (globs over SERVER__TOOL) say what this one needs, which
    `mcp-registry run --allow-requested` grants."""
    d = {"name": name, "description": description,
         "inputSchema": input_schema or {"type": "object"}}
    if servers or tools:
        d["requires"] = {"servers": list(servers or []), "tools": list(tools or [])}
    return json.dumps(d)


def _wrap(fn, *args):
    try:
        return fn(*args)
    except Err as e:
        raise RegistryError(e.value) from None


def servers() -> List[str]:
    """The servers this plugin may use."""
    return _registry.servers()


def list_tools(servers: Optional[List[str]] = None) -> List[dict]:
    """Temporary mode: the tools of `servers` (all allowed servers if empty)."""
    tools = _wrap(_registry.list_tools, list(servers or []))
    return [{"name": t.name, "description": t.description, "inputSchema": json.loads(t.input_schema)} for t in tools]


def call(name: str, arguments: Optional[dict] = None) -> CallResult:
    """Temporary mode: one call; the server is started for it and stopped after."""
    return CallResult(_wrap(_registry.call_tool, name, json.dumps(arguments or {})))


class PendingCall:
    """A call in flight. Leaving its `with` block (or `close()`) before it finished cancels it."""

    def __init__(self, raw: Any):
        self._raw = raw

    def try_get(self) -> Optional[CallResult]:
        """The result if the call finished (raises RegistryError if it failed), else None."""
        outcome = self._raw.get()
        if outcome is None:
            return None
        if isinstance(outcome, Err):
            raise RegistryError(outcome.value)
        return CallResult(outcome.value)

    def wait(self) -> CallResult:
        while True:
            result = self.try_get()
            if result is not None:
                return result
            with self._raw.subscribe() as pollable:
                pollable.block()

    def close(self) -> None:
        self._raw.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return None


def join_all(calls: List[PendingCall]) -> List[Any]:
    """Waits for every call concurrently; returns CallResults or RegistryErrors, in order."""
    outcomes: List[Any] = [None] * len(calls)
    done = [False] * len(calls)
    while not all(done):
        waiting = []
        for i, c in enumerate(calls):
            if done[i]:
                continue
            try:
                r = c.try_get()
            except RegistryError as e:
                r = e
            if r is None:
                waiting.append(i)
            else:
                outcomes[i], done[i] = r, True
        if waiting:
            pollables = [calls[i]._raw.subscribe() for i in waiting]
            try:
                _poll.poll(pollables)
            finally:
                for p in pollables:
                    p.__exit__(None, None, None)
    return outcomes


class Session:
    """Persistent connections to a set of servers; a context manager that closes them."""

    def __init__(self, raw: Any):
        self._raw = raw

    @classmethod
    def open(cls, servers: List[str]) -> "Session":
        return cls(_wrap(_registry.Session.open, list(servers)))

    def list_tools(self) -> List[dict]:
        tools = _wrap(self._raw.list_tools)
        return [{"name": t.name, "description": t.description, "inputSchema": json.loads(t.input_schema)} for t in tools]

    def call(self, name: str, arguments: Optional[dict] = None) -> CallResult:
        return CallResult(_wrap(self._raw.call_tool, name, json.dumps(arguments or {})))

    def call_raw(self, name: str, arguments: str) -> CallResult:
        return CallResult(_wrap(self._raw.call_tool, name, arguments))

    def start(self, name: str, arguments: Optional[dict] = None) -> PendingCall:
        return PendingCall(_wrap(self._raw.start_call, name, json.dumps(arguments or {})))

    def close(self) -> None:
        self._raw.__exit__(None, None, None)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        return None


def log(level: str, message: str) -> None:
    """Writes to the host log: level is trace, debug, info, warn or error."""
    _log.log(getattr(_log.Level, level.upper()), message)


def report_progress(progress: float, total: Optional[float] = None, message: Optional[str] = None) -> None:
    """Reports how far the run is (progress must grow). Under `mcp-registry serve` it becomes
    the tools/call's notifications/progress."""
    _progress.report(progress, total, message)
