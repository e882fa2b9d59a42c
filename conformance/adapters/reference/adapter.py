#!/usr/bin/env python3
"""The reference adapter: specfmt itself, speaking the conformance protocol (conformance/PROTOCOL.md).

Run it as `specfmt-conformance run --adapter "python conformance/adapters/reference/adapter.py"`.
The broken adapters in ../broken reuse `serve` with a transform that damages one kind of answer.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable

import specfmt
from specfmt import validate, validate_config

PROTOCOL = 1
Transform = Callable[[dict, dict], dict]


def hello(message: dict) -> dict:
    return {"protocol": PROTOCOL,
            "implementation": {"name": "specfmt-reference", "version": getattr(specfmt, "__version__", "0.1.0"),
                               "language": "python"},
            "supports": {"levels": ["schema", "checkpoint"], "profiles": ["compat", "strict"], "operations": []}}


def findings_of(report) -> list[dict]:
    return [{"code": f.code, "pointer": f.pointer, "severity": f.severity, "file": f.file} for f in report.findings]


def handle(message: dict) -> dict:
    """One request -> one response (PROTOCOL.md)."""
    cmd = message.get("cmd")
    if cmd == "hello":
        return hello(message)
    if cmd == "validate":
        if "document" in message:
            report = validate_config(message["document"], message["profile"])
            return {"seq": message["seq"], "findings": [{k: v for k, v in f.items() if k != "file"}
                                                        for f in findings_of(report)]}
        return {"seq": message["seq"], "findings": findings_of(validate(message["checkpoint_dir"], message["profile"]))}
    return {"seq": message.get("seq"), "error": {"message": f"unsupported command {cmd!r}"}}


def serve(transform: Transform | None = None, handler: Callable[[dict], dict] = handle) -> None:
    """Answer JSON lines on stdin until `stop` or end of input; logs go to stderr only."""
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if message.get("cmd") == "stop":
            return
        try:
            response = handler(message)
            if transform is not None:
                response = transform(message, response)
        except Exception as e:  # a failing case is reported, never fatal to the session
            traceback.print_exc(file=sys.stderr)
            response = {"seq": message.get("seq"), "error": {"message": f"{type(e).__name__}: {e}"}}
        sys.stdout.write(json.dumps(response) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
