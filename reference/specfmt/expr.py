"""The layout expression language: a hand-written parser and evaluator, never `eval`.

Spec: spec/layout.md#LAY-2

Grammar (lowest precedence first)::

    expr     := coalesce ["if" expr "else" expr]
    coalesce := or_ ("??" or_)*            # a ?? b: b when a is null
    or_      := and_ ("or" and_)*
    and_     := not_ ("and" not_)*
    not_     := "not" not_ | compare
    compare  := sum [("==" | "!=" | "<" | "<=" | ">" | ">=") sum]
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "//") unary)*
    unary    := "-" unary | primary
    primary  := INT | STRING | "true" | "false" | "null" | "len" "(" expr ")" | "(" expr ")" | PATH

A PATH is a dotted name. A name without dots is looked up in the scope (symbols, loop variables,
fragment parameters) and then in the config; a dotted name is a path into the config. A path that
does not exist evaluates to null.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class ExprError(ValueError):
    """An expression that does not parse, or does not evaluate on the given values."""


_TOKEN = re.compile(
    r"\s*(?:(?P<int>\d+)|(?P<str>'[^']*')|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|(?P<op>\?\?|//|==|!=|<=|>=|[-+*<>()]))"
)
_KEYWORDS = {"and", "or", "not", "if", "else", "len", "true", "false", "null"}


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExprError(f"unexpected character {text[pos:].strip()[0]!r} in {text!r}")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "name" and value in _KEYWORDS:
            kind = "kw"
        tokens.append((kind, value))
        pos = m.end()
    return tokens


@dataclass(frozen=True)
class Node:
    op: str
    args: tuple


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def accept(self, *values: str) -> str | None:
        tok = self.peek()
        if tok and tok[0] in ("op", "kw") and tok[1] in values:
            self.i += 1
            return tok[1]
        return None

    def expect(self, value: str) -> None:
        if not self.accept(value):
            raise ExprError(f"expected {value!r} in {self.text!r}")

    def parse(self) -> Node:
        node = self.expr()
        if self.peek() is not None:
            raise ExprError(f"unexpected {self.peek()[1]!r} in {self.text!r}")
        return node

    def expr(self) -> Node:
        node = self.binary_chain(self.or_, ("??",))
        if self.accept("if"):
            cond = self.expr()
            self.expect("else")
            return Node("if", (cond, node, self.expr()))
        return node

    def binary_chain(self, operand, ops) -> Node:
        node = operand()
        while op := self.accept(*ops):
            node = Node(op, (node, operand()))
        return node

    def or_(self) -> Node:
        return self.binary_chain(self.and_, ("or",))

    def and_(self) -> Node:
        return self.binary_chain(self.not_, ("and",))

    def not_(self) -> Node:
        if self.accept("not"):
            return Node("not", (self.not_(),))
        return self.compare()

    def compare(self) -> Node:
        node = self.sum_()
        if op := self.accept("==", "!=", "<", "<=", ">", ">="):
            node = Node(op, (node, self.sum_()))
        return node

    def sum_(self) -> Node:
        return self.binary_chain(self.product, ("+", "-"))

    def product(self) -> Node:
        return self.binary_chain(self.unary, ("*", "//"))

    def unary(self) -> Node:
        if self.accept("-"):
            return Node("neg", (self.unary(),))
        return self.primary()

    def primary(self) -> Node:
        tok = self.peek()
        if tok is None:
            raise ExprError(f"unexpected end of {self.text!r}")
        kind, value = tok
        self.i += 1
        if kind == "int":
            return Node("const", (int(value),))
        if kind == "str":
            return Node("const", (value[1:-1],))
        if kind == "kw" and value in ("true", "false", "null"):
            return Node("const", ({"true": True, "false": False, "null": None}[value],))
        if kind == "kw" and value == "len":
            self.expect("(")
            arg = self.expr()
            self.expect(")")
            return Node("len", (arg,))
        if kind == "op" and value == "(":
            node = self.expr()
            self.expect(")")
            return node
        if kind == "name":
            return Node("path", (value,))
        raise ExprError(f"unexpected {value!r} in {self.text!r}")


_CACHE: dict[str, Node] = {}


def parse(text: str) -> Node:
    """Parse an expression once; parsed trees are cached by text."""
    if text not in _CACHE:
        _CACHE[text] = _Parser(text).parse()
    return _CACHE[text]


def lookup(path: str, scope: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
    head, *rest = path.split(".")
    if not rest and head in scope:
        return scope[head]
    value: Any = config
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _int(value: Any, text: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExprError(f"{text!r}: expected an integer, found {value!r}")
    return value


def _bool(value: Any, text: str) -> bool:
    if not isinstance(value, bool):
        raise ExprError(f"{text!r}: expected a boolean, found {value!r}")
    return value


def evaluate(text: str, scope: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
    """Evaluate `text` with names from `scope`, then from `config`."""
    return _eval(parse(text), text, scope, config)


def _eval(node: Node, text: str, scope, config) -> Any:
    op, args = node.op, node.args

    def ev(child: Node) -> Any:
        return _eval(child, text, scope, config)

    if op == "const":
        return args[0]
    if op == "path":
        return lookup(args[0], scope, config)
    if op == "len":
        value = ev(args[0])
        if value is None:
            return None
        if not isinstance(value, list):
            raise ExprError(f"{text!r}: len() of a non-list {value!r}")
        return len(value)
    if op == "??":
        left = ev(args[0])
        return ev(args[1]) if left is None else left
    if op == "if":
        return ev(args[1]) if _bool(ev(args[0]), text) else ev(args[2])
    if op == "not":
        return not _bool(ev(args[0]), text)
    if op in ("and", "or"):
        left = _bool(ev(args[0]), text)
        if (op == "and" and not left) or (op == "or" and left):
            return left
        return _bool(ev(args[1]), text)
    if op in ("==", "!="):
        equal = ev(args[0]) == ev(args[1])
        return equal if op == "==" else not equal
    if op == "neg":
        return -_int(ev(args[0]), text)
    left, right = _int(ev(args[0]), text), _int(ev(args[1]), text)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "//":
        if right == 0:
            raise ExprError(f"{text!r}: division by zero")
        return left // right
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
