"""The one bounded, strict JSON reader for every JSON document of a checkpoint: config.json, the shard
index and each safetensors header.

Strict means RFC 8259: UTF-8 text, no object repeating a key (json.loads keeps the last), none of the
literals NaN, Infinity and -Infinity (json.loads accepts them, JSON.parse does not), and at most
`json_max_depth` nested arrays and objects, so a hostile document can neither exhaust the stack nor
parse differently in two languages.
Spec: spec/index.md#GEN-7
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from specfmt.schemas import SAFETENSORS

MAX_DEPTH: int = SAFETENSORS["json_max_depth"]


class JsonProblem(ValueError):
    """Why a document was refused: `kind` is "too_large", "encoding", "duplicate_key" or "json"."""

    def __init__(self, kind: str, message: str, key: str | None = None):
        self.kind, self.key = kind, key
        super().__init__(message)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise JsonProblem("duplicate_key", f"key {key!r} appears twice", key)
        obj[key] = value
    return obj


def _no_constant(name: str) -> None:
    raise JsonProblem("json", f"{name} is not a JSON literal (RFC 8259)")


def depth(value: Any) -> int:
    """Nesting of arrays and objects: a scalar is 0, [] and {} are 1. Iterative, so any depth is safe."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse(raw: bytes, what: str) -> Any:
    """The JSON value of `raw`, or JsonProblem naming `what` (the file) and the broken rule."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonProblem("encoding", f"{what} is not UTF-8: byte {e.start}") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except JsonProblem:
        raise
    except RecursionError:
        raise JsonProblem("json", f"{what} nests arrays and objects deeper than {MAX_DEPTH}") from None
    except ValueError as e:
        raise JsonProblem("json", f"{what} is not JSON: {e}") from None
    if depth(value) > MAX_DEPTH:
        raise JsonProblem("json", f"{what} nests arrays and objects deeper than {MAX_DEPTH}")
    return value


def read(path: Path, max_bytes: int, what: str) -> Any:
    """The JSON value of the file at `path`, read only if it is a regular file (specfmt.files.open_regular: a FIFO
    is refused, never waited on) at most `max_bytes` long."""
    from specfmt.files import open_regular

    with open_regular(path, what) as f:
        raw, size = f.read(max_bytes + 1), os.fstat(f.fileno()).st_size  # never more than the bound is read
    if len(raw) > max_bytes:
        raise JsonProblem("too_large", f"{what} too large; expected <= {max_bytes} bytes, found "
                                       f"{max(size, len(raw))} bytes")
    return parse(raw, what)
