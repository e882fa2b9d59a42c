"""Weights by role: the layout document decides which tensor plays which role.

`bind_roles` turns a checkpoint's tensors into nested dicts: a role `scope.name` under loops with
values (i, ...) lands at `w[scope][i]...[name]`; a role without a dot at `w[role][i]...`.
Spec: spec/layout.md#LAY-3
"""

from __future__ import annotations

from typing import Any

from specfmt.layout import expand


def bind_roles(algorithm: str, config: dict, tensors: dict[str, Any]) -> dict[str, Any]:
    """Every active tensor of `algorithm`'s layout for `config` (defaults resolved), by role.
    Optional tensors that are absent are left out; a required one that is absent is a KeyError
    (validation reports it first)."""
    _, expected, errors = expand(algorithm, config)
    if errors:
        raise ValueError(f"layout of {algorithm} does not evaluate on this config: {errors}")
    wrong = [f"{e.name} shape; expected {e.shape} (= {e.shape_text}), found {list(tensors[e.name].shape)}"
             for e in expected if e.active and e.shape is not None and e.name in tensors
             and list(tensors[e.name].shape) != e.shape]
    if wrong:  # what the layout's shapes say before any matmul does (a verifier is not validated first)
        raise ValueError(wrong[0] + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else "") + " [layout.shape]")
    roles: dict[str, Any] = {}
    for e in expected:
        if not e.active:
            continue
        if e.name not in tensors:
            in_layers = any("layers_of" in loop for loop in e.entry.get("for", []))
            if e.required and not in_layers:  # trailing layers may be absent (hazard.layers_missing)
                raise KeyError(f"required tensor {e.name} is absent")
            continue
        scope, _, leaf = e.role.partition(".")
        path = [scope, *e.bindings.values()] + ([leaf] if leaf else [])
        node = roles
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = tensors[e.name]
    return roles
