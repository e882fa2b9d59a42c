"""The adapter side of the conformance protocol's transport, shared by the Python adapters (the reference adapter,
the repository's broken, vLLM and speculators adapters): JSON lines on stdin, one response per request on stdout,
logs on stderr (conformance/PROTOCOL.md). Stdlib only, so an adapter can use it without specfmt's extras."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable


def serve(handler: Callable[[dict], dict]) -> None:
    """Answer each request with `handler` until `stop` or end of input; an exception becomes an error
    response for that request, never the end of the session."""
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if message.get("cmd") == "stop":
            return
        try:
            response = handler(message)
        except Exception as e:
            response = {"seq": message.get("seq"), "error": {"message": f"{type(e).__name__}: {e}"}}
            if isinstance(getattr(e, "refusal", None), str):  # a refusal the spec requires (PROTOCOL.md 3.4)
                response["error"]["code"] = e.refusal
                print(f"refused ({e.refusal}): {e}", file=sys.stderr)  # an answer, not a fault: no traceback
            else:
                traceback.print_exc(file=sys.stderr)
        sys.stdout.write(json.dumps(response) + "\n")
        sys.stdout.flush()
