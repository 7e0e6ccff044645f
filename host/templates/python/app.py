"""{{name}}: an mcp-registry plugin. It echoes its input's `message` through the `echo` tool
of the registry's `everything` server, in a session that closes when the `with` block ends."""

import json

import wit_world
from componentize_py_types import Err
import mcp_registry_guest as guest
from mcp_registry_guest import RegistryError, Session


class WitWorld(wit_world.WitWorld):
    def describe(self) -> str:
        return guest.describe(
            "{{name}}",
            "Echoes a message through the everything server",
            {"type": "object", "properties": {"message": {"type": "string"}},
             "required": ["message"]},
            servers=["everything"],
            tools=["everything__echo"],
        )

    def run(self, input: str) -> str:
        args = json.loads(input) if input.strip() else {}
        message = args.get("message") if isinstance(args, dict) else None
        if not isinstance(message, str):
            raise Err("input.message must be a string")
        try:
            with Session.open(["everything"]) as session:
                echoed = session.call("everything__echo", {"message": message}).text
            # The session is closed here, whatever happened inside the block.
        except RegistryError as e:
            raise Err(str(e))
        except Exception as e:  # an exception left uncaught traps the plugin, without a word
            raise Err(f"{type(e).__name__}: {e}")
        return json.dumps({"echoed": echoed})
