"""Schema defaults: which property schemas apply to a config, and the config with defaults filled in.

Spec: spec/config.md#CFG-11
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator

from specfmt import expr
from specfmt.schemas import load


def _deref(node: Any) -> Any:
    """Resolve a local `#/$defs/...` reference, keeping sibling keywords (description, annotations)."""
    if isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/$defs/"):
        target = load("config.schema.json")["$defs"][node["$ref"].split("/")[-1]]
        return _deref({**target, **{k: v for k, v in node.items() if k != "$ref"}})
    return node


def _matches(condition: dict, obj: Any) -> bool:
    """Whether `obj` meets an `if` condition. Dispatch conditions test one key against a const and are
    decided directly; any other condition goes to jsonschema."""
    props = condition.get("properties", {})
    if set(condition) <= {"type", "required", "properties"} and len(props) == 1:
        (key, prop), = props.items()
        if set(prop) == {"const"} and isinstance(prop["const"], str) and condition.get("required") == [key]:
            return isinstance(obj, dict) and obj.get(key) == prop["const"]
    return Draft202012Validator(condition).is_valid(obj)


def applicable_properties(obj: dict, schema: dict) -> dict[str, dict]:
    """The property schemas that apply to `obj`: its own, those of allOf members, and those of each
    if/then branch whose condition `obj` meets. Later entries refine earlier ones key by key."""
    schema = _deref(schema)
    props: dict[str, dict] = {}

    def add(more: dict) -> None:
        for name, prop in more.items():
            if prop is not False:
                props[name] = {**props.get(name, {}), **_deref(prop)}

    add(schema.get("properties", {}))
    for member in schema.get("allOf", []):
        if "if" in member:
            if _matches(_deref(member["if"]), obj):
                add(applicable_properties(obj, member["then"]))
        else:
            add(applicable_properties(obj, member))
    return props


def resolve(config: dict) -> dict:
    """A copy of `config` with every schema default filled in (constants, then expressions).

    Spec: spec/config.md#CFG-11
    """
    resolved = copy.deepcopy(config)
    _fill(resolved, load("config.schema.json"))
    return resolved


def _fill(obj: dict, schema: dict) -> None:
    props = applicable_properties(obj, schema)
    while missing := [n for n, p in props.items() if n not in obj and "default" in p]:
        # A filled default (model_type) can select a dispatch branch with defaults of its own.
        for name in missing:
            obj[name] = copy.deepcopy(props[name]["default"])
        props = applicable_properties(obj, schema)
    for name, prop in props.items():
        if name not in obj and "x-specfmt-default" in prop:
            try:
                obj[name] = expr.evaluate(prop["x-specfmt-default"], {}, obj)
            except expr.ExprError:
                pass  # the operands are invalid; schema findings already name them
    for name, prop in props.items():
        value = obj.get(name)
        if isinstance(value, dict):
            _fill(value, prop)
        elif isinstance(value, list) and "items" in prop:
            for item in value:
                if isinstance(item, dict):
                    _fill(item, prop["items"])
