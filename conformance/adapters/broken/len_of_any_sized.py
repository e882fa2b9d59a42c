#!/usr/bin/env python3
"""Broken on purpose: the layout language's `len()` counts the characters of a string and the members of an
object, where LAY-2 makes `len` of anything but a list or null an evaluation error."""

from _base import serve

from specfmt import expr

evaluate_node = expr._eval


def any_sized(node: expr.Node, text: str, scope, config):
    if node.op == "len":
        value = expr._eval(node.args[0], text, scope, config)
        if isinstance(value, (str, dict)):
            return len(value)
    return evaluate_node(node, text, scope, config)


if __name__ == "__main__":
    expr._eval = any_sized
    serve()
