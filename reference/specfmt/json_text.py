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
    """Why a document was refused: `kind` is "too_large", "encoding", "duplicate_key" or "json"; for a repeated key,
    `key` is the key and `path` the JSON Pointer tokens of the repeated member (the key last)."""

    def __init__(self, kind: str, message: str, key: str | None = None, path: tuple[str, ...] = ()):
        self.kind, self.key, self.path = kind, key, path
        super().__init__(message)


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


def first_repeat(text: str) -> tuple[tuple[str, ...] | None, int]:
    """In JSON text that parsed: the pointer tokens of the first member, in the order of the text, whose key an
    earlier member of the same object has (None when no key repeats), and the nesting depth of the text. The
    depth counts the members a repeated key hides from the parsed value too. Iterative, so any depth is safe."""
    decoder = json.JSONDecoder()
    frames: list[list] = []  # per open array or object: [keys seen or None for an array, path, next index]
    first, deepest, i = None, 0, 0
    while i < len(text):
        c = text[i]
        if c in "{[":
            frame = frames[-1] if frames else None
            path = frame[1] + (frame[3],) if frame else ()
            frames.append([set() if c == "{" else None, path, 0, ""])
            deepest = max(deepest, len(frames))
            if c == "[":
                frames[-1][3] = "0"
            i += 1
        elif c in "}]":
            frames.pop()
            i += 1
        elif c == ",":
            if frames[-1][0] is None:
                frames[-1][2] += 1
                frames[-1][3] = str(frames[-1][2])
            i += 1
        elif c == '"':
            value, end = json.decoder.scanstring(text, i + 1)
            j = end
            while j < len(text) and text[j] in " \t\r\n":
                j += 1
            frame = frames[-1] if frames else None
            if frame is not None and frame[0] is not None and j < len(text) and text[j] == ":":  # a key
                if value in frame[0] and first is None:
                    first = frame[1] + (value,)
                frame[0].add(value)
                frame[3] = value
                j += 1
            i = j
        elif c in " \t\r\n:":
            i += 1
        else:  # a number, true, false or null
            i = decoder.raw_decode(text, i)[1]
    return first, deepest


def parse(raw: bytes, what: str) -> Any:
    """The JSON value of `raw`, or JsonProblem naming `what` (the file) and the broken rule. Rules are checked in
    GEN-7's order: UTF-8, then JSON within the depth bound, and only then repeated keys, so a document that is not
    JSON or too deep is "json" whatever keys it repeats; of several repeated keys, the first in the text is
    reported."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonProblem("encoding", f"{what} is not UTF-8: byte {e.start}") from None
    repeats: list[str] = []

    def pairs(members: list[tuple[str, Any]]) -> dict:
        obj: dict = {}
        for key, value in members:
            if key in obj:
                repeats.append(key)
            obj[key] = value
        return obj

    too_deep = JsonProblem("json", f"{what} nests arrays and objects deeper than {MAX_DEPTH}")
    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=_no_constant)
    except JsonProblem:
        raise
    except RecursionError:
        raise too_deep from None
    except ValueError as e:
        raise JsonProblem("json", f"{what} is not JSON: {e}") from None
    if depth(value) > MAX_DEPTH:
        raise too_deep
    if repeats:
        path, deepest = first_repeat(text)
        if deepest > MAX_DEPTH:  # the deeper part was a value that a repeated key replaced
            raise too_deep
        raise JsonProblem("duplicate_key", f"key {path[-1]!r} appears twice in its object", path[-1], path)
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
