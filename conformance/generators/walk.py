"""Which subschemas of a config schema apply where in a document: the walker behind the generated
schema-level cases (removals of required fields, keyword violations).

It follows properties, items, allOf, the if/then branches whose condition the document meets and the
anyOf members it matches, as the validator does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator


def _deref(schema: dict, node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target = schema["$defs"][node["$ref"].split("/")[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _matches(schema: dict, node: Any, value: Any) -> bool:
    return Draft202012Validator({**_deref(schema, node), "$defs": schema["$defs"]}).is_valid(value)


def applied(schema: dict, doc: Any) -> Iterator[tuple[tuple, dict, Any]]:
    """(path, subschema, value) for every subschema that applies to a location of `doc`."""
    def visit(node: Any, value: Any, path: tuple) -> Iterator[tuple[tuple, dict, Any]]:
        node = _deref(schema, node)
        if not isinstance(node, dict):
            return
        yield path, node, value
        if isinstance(value, dict):
            for key, prop in node.get("properties", {}).items():
                if key in value:
                    yield from visit(prop, value[key], path + (key,))
        if isinstance(value, list) and "items" in node:
            for i, item in enumerate(value):
                yield from visit(node["items"], item, path + (i,))
        for member in node.get("allOf", []):
            if "if" not in member:
                yield from visit(member, value, path)
            elif _matches(schema, member["if"], value):
                yield from visit(member["then"], value, path)
        for member in node.get("anyOf", []):
            if _matches(schema, member, value):
                yield from visit(member, value, path)

    yield from visit(schema, doc, ())


def required_fields(schema: dict, doc: Any) -> list[tuple[tuple, str]]:
    """(path, key) for every key the schema requires of an object in `doc` that `doc` has."""
    out = {(path, key) for path, node, value in applied(schema, doc) if isinstance(value, dict)
           for key in node.get("required", []) if key in value}
    return sorted(out, key=repr)


def forbidden_fields(schema: dict, doc: Any) -> list[tuple[tuple, str]]:
    """(path, key) for every property the schema forbids (`"not": {}`) that `doc` leaves out."""
    out = {(path, key) for path, node, value in applied(schema, doc) if isinstance(value, dict)
           for key, prop in node.get("properties", {}).items()
           if key not in value and _deref(schema, prop).get("not") == {}}
    return sorted(out, key=repr)


def _wrong_type(types: str | list[str]) -> Any:
    return 7 if "string" in ([types] if isinstance(types, str) else types) else "x"


def violations(node: dict, value: Any) -> Iterator[tuple[str, Any]]:
    """(keyword, replacement) for each keyword of `node` and a value that breaks only it where possible."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if "type" in node:
        yield "type", _wrong_type(node["type"])
    if number and "minimum" in node:
        yield "minimum", node["minimum"] - 1
    if number and "exclusiveMinimum" in node:
        yield "exclusiveMinimum", node["exclusiveMinimum"]
    if number and "maximum" in node:
        yield "maximum", node["maximum"] + 1
    if isinstance(value, list) and node.get("minItems", 0) > 0:
        yield "minItems", value[: node["minItems"] - 1]
    if isinstance(value, str) and "enum" in node:
        yield "enum", "unknown"
    if isinstance(value, str) and "const" in node:
        yield "const", "unknown"
    if isinstance(value, str) and "pattern" in node:  # "unknown" is a valid hub id, so a path stands in there
        yield "pattern", next(bad for bad in ("unknown", "./unknown") if not re.search(node["pattern"], bad))
