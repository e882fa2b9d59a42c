#!/usr/bin/env python3
"""Broken on purpose: the layout language's `==` compares values of one type only (as JSON texts), so `1 == true`
and `1 == 1.0` are false, where LAY-2 compares numbers by value and takes true and false for 1 and 0."""

import json

from _base import serve

from specfmt import expr

evaluate_node = expr._eval


def strictly_typed(node: expr.Node, text: str, scope, config):
    if node.op not in ("==", "!="):
        return evaluate_node(node, text, scope, config)
    left, right = (json.dumps(expr._eval(child, text, scope, config), sort_keys=True) for child in node.args)
    return (left == right) == (node.op == "==")


if __name__ == "__main__":
    expr._eval = strictly_typed
    serve()
