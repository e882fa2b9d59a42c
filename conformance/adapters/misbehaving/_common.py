"""The loop shared by the misbehaving adapters (fauxmplementations that test the runner itself).

Each one speaks the protocol correctly and reports no findings, except on a trigger: a validate
command whose document contains the trigger text (argv[1], default "x-misbehave"), or, for the
numerics adapter, every run command. Standard library only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

Misbehave = Callable[[dict], None]


def reply(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def hello(name: str, levels: list[str], operations: list[str]) -> dict:
    return {"protocol": 1,
            "implementation": {"name": name, "version": "1.0.0", "language": "python"},
            "supports": {"levels": levels, "profiles": ["compat", "strict"], "operations": operations}}


def serve(name: str, on_trigger: Misbehave, levels: list[str] | None = None,
          operations: list[str] | None = None, on_run: Misbehave | None = None) -> None:
    """Answer commands until stop; `on_trigger` replaces the answer to a triggered validate."""
    trigger = sys.argv[1] if len(sys.argv) > 1 else "x-misbehave"
    for line in sys.stdin:
        message = json.loads(line)
        cmd, seq = message["cmd"], message.get("seq")
        if cmd == "hello":
            reply(hello(name, levels or ["schema"], operations or []))
        elif cmd == "stop":
            return
        elif cmd == "validate" and trigger in json.dumps(message.get("document"), sort_keys=True):
            on_trigger(message)
        elif cmd == "validate":
            reply({"seq": seq, "findings": []})
        elif cmd == "load":
            reply({"seq": seq, "handle": "h1"})
        elif cmd == "run" and on_run is not None:
            on_run(message)
            reply({"seq": seq, "ok": True})
        elif cmd == "unload":
            reply({"seq": seq, "ok": True})
        else:
            reply({"seq": seq, "error": {"message": f"{name} does not handle {cmd}"}})
