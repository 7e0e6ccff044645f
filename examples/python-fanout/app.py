"""Example plugin in Python: the fan-out of examples/fanout, with Python's `with`.

Input: {"servers": ["alpha", "beta"], "rounds": 3, "message": "hi"} (all optional), plus
"mode": "temporary" (counter calls in temporary mode) or "errors" (report error kinds).
Build: componentize-py -d wit -w orchestrator componentize app \
         -p examples/python-fanout -p guest-sdk/python -o python-fanout.wasm
"""

import json

import wit_world
from componentize_py_types import Err
import mcp_registry_guest as guest
from mcp_registry_guest import RegistryError, Session, call, join_all, log, servers


def kind(fn):
    try:
        fn()
        return "ok"
    except RegistryError as e:
        return e.kind


class WitWorld(wit_world.WitWorld):
    def describe(self) -> str:
        return guest.describe(
            "python-fanout",
            "Open a session on several servers and call them concurrently (Python)",
            {"type": "object", "properties": {
                "servers": {"type": "array", "items": {"type": "string"}},
                "rounds": {"type": "integer"}, "message": {"type": "string"},
                "mode": {"type": "string", "enum": ["fanout", "temporary", "errors"]}}},
            servers=["alpha", "beta"],
        )

    def run(self, input: str) -> str:
        try:
            args = json.loads(input) if input.strip() else {}
            names = args.get("servers") or servers()[:2]
            rounds = int(args.get("rounds", 3))
            mode = args.get("mode", "fanout")
            if mode == "temporary":
                counters = [int(call(f"{names[0]}__counter").text) for _ in range(rounds)]
                return json.dumps({"counters": counters})
            if mode == "errors":
                with Session.open(names[:1]) as s:
                    echo = f"{names[0]}__echo"
                    out = {
                        "array_args": kind(lambda: s.call_raw(echo, "[1]")),
                        "unknown_tool": kind(lambda: s.call(f"{names[0]}__nope")),
                        "unknown_server": kind(lambda: call("nosuch__echo")),
                        "bad_name": kind(lambda: s.call("echo")),
                        "tool_error": s.call(f"{names[0]}__fail", {"message": "m"}).is_error,
                    }
                return json.dumps(out)
            message = args.get("message", "hello from python")
            counters = {n: [] for n in names}
            pids = {}
            with Session.open(names) as session:
                log("info", f"session open on {names}")
                for _ in range(rounds):
                    results = join_all([session.start(f"{n}__counter") for n in names])
                    for n, r in zip(names, results):
                        if isinstance(r, Exception):
                            raise r
                        counters[n].append(int(r.text))
                echoes = [r.text for r in join_all([session.start(f"{n}__echo", {"message": message}) for n in names])]
                for n in names:
                    pids[n] = session.call(f"{n}__pid").text
            # The session is closed here, whatever happened inside the block.
            return json.dumps({"servers": names, "counters": counters, "echoes": echoes, "pids": pids})
        except RegistryError as e:
            raise Err(str(e))
