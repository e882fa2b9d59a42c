// The layout expression language (spec/layout.md#LAY-2): a hand-written parser and evaluator, never eval.
"use strict";

class ExprError extends Error {}

const TOKEN = /\s*(?:(\d+)|'([^']*)'|([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)|(\?\?|\/\/|==|!=|<=|>=|[-+*<>()]))/y;

/** Split an expression into tokens. Spec: layout.md#LAY-2 */
function tokenize(text) {
  const tokens = [];
  TOKEN.lastIndex = 0;
  let pos = 0;
  while (pos < text.length) {
    if (/^\s*$/.test(text.slice(pos))) break;
    TOKEN.lastIndex = pos;
    const m = TOKEN.exec(text);
    if (!m) throw new ExprError(`cannot parse ${JSON.stringify(text)} at ${pos}`);
    if (m[1] !== undefined) tokens.push({ kind: "int", value: Number(m[1]) });
    else if (m[2] !== undefined) tokens.push({ kind: "str", value: m[2] });
    else if (m[3] !== undefined) tokens.push({ kind: "name", value: m[3] });
    else tokens.push({ kind: "op", value: m[4] });
    pos = TOKEN.lastIndex;
  }
  return tokens;
}

/** Parse an expression into a tree of arrays [op, ...args]. Spec: layout.md#LAY-2 */
function parse(text) {
  const tokens = tokenize(text);
  let i = 0;
  const peek = (v) => i < tokens.length && (tokens[i].kind === "op" || tokens[i].kind === "name") && tokens[i].value === v;
  const take = (v) => { if (!peek(v)) throw new ExprError(`expected ${v} in ${JSON.stringify(text)}`); i++; };
  function expr() {
    const a = coalesce();
    if (peek("if")) { i++; const c = expr(); take("else"); const b = expr(); return ["if", c, a, b]; }
    return a;
  }
  function binary(next, ops, tag) {
    return () => {
      let a = next();
      while (ops.some(peek)) { const op = tokens[i++].value; a = [tag || op, op, a, next()]; }
      return a;
    };
  }
  const unary = () => {
    if (peek("-")) { i++; return ["neg", unary()]; }
    return primary();
  };
  const product = binary(unary, ["*", "//"], "arith");
  const sum = binary(product, ["+", "-"], "arith");
  function compare() {
    const a = sum();
    for (const op of ["==", "!=", "<=", ">=", "<", ">"]) if (peek(op)) { i++; return ["cmp", op, a, sum()]; }
    return a;
  }
  function not() { if (peek("not")) { i++; return ["not", not()]; } return compare(); }
  const and = binary(not, ["and"], "bool");
  const or = binary(and, ["or"], "bool");
  const coalesce = binary(or, ["??"], "coalesce");
  function primary() {
    const t = tokens[i++];
    if (!t) throw new ExprError(`unexpected end of ${JSON.stringify(text)}`);
    if (t.kind === "int") return ["lit", t.value];
    if (t.kind === "str") return ["lit", t.value];
    if (t.kind === "op" && t.value === "(") { const e = expr(); take(")"); return e; }
    if (t.kind === "name") {
      if (t.value === "true") return ["lit", true];
      if (t.value === "false") return ["lit", false];
      if (t.value === "null") return ["lit", null];
      if (t.value === "len" && peek("(")) { i++; const e = expr(); take(")"); return ["len", e]; }
      if (["if", "else", "and", "or", "not"].includes(t.value)) throw new ExprError(`unexpected ${t.value}`);
      return ["path", t.value.split(".")];
    }
    throw new ExprError(`unexpected ${t.value} in ${JSON.stringify(text)}`);
  }
  const tree = expr();
  if (i !== tokens.length) throw new ExprError(`trailing input in ${JSON.stringify(text)}`);
  return tree;
}

const isInt = (v) => typeof v === "number" && Number.isInteger(v);
const isBool = (v) => typeof v === "boolean";

function lookup(parts, scope, config) {
  let value;
  if (parts.length === 1 && Object.prototype.hasOwnProperty.call(scope, parts[0])) return scope[parts[0]];
  value = config;
  for (const p of parts) {
    if (value === null || typeof value !== "object" || Array.isArray(value) || !(p in value)) return null;
    value = value[p];
  }
  return value;
}

/** `==` of LAY-2: numbers by value, true and false as 1 and 0, lists and objects member by member, else unequal
 * across types (as the reference compares Python values). */
function deepEqual(a, b) {
  const numeric = (v) => typeof v === "number" || isBool(v);
  if (numeric(a) && numeric(b)) return Number(a) === Number(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length
      && keys.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
  }
  return a === b;
}

/** Evaluate a parsed tree over a scope (loop variables, params, symbols) and a config. Spec: layout.md#LAY-2 */
function evaluate(tree, scope, config) {
  const ev = (t) => evaluate(t, scope, config);
  switch (tree[0]) {
    case "lit": return tree[1];
    case "path": return lookup(tree[1], scope, config);
    case "len": {
      const v = ev(tree[1]);
      if (v === null) return null;
      if (Array.isArray(v)) return v.length;
      throw new ExprError("len of a non-list");  // LAY-2: a string, an object, a number or a boolean
    }
    case "neg": { const v = ev(tree[1]); if (!isInt(v)) throw new ExprError("- on a non-integer"); return -v; }
    case "arith": {
      const a = ev(tree[2]); const b = ev(tree[3]);
      if (!isInt(a) || !isInt(b)) throw new ExprError(`${tree[1]} on non-integers`);
      if (tree[1] === "+") return a + b;
      if (tree[1] === "-") return a - b;
      if (tree[1] === "*") return a * b;
      if (b === 0) throw new ExprError("division by zero");
      return Math.floor(a / b);
    }
    case "cmp": {
      const a = ev(tree[2]); const b = ev(tree[3]); const op = tree[1];
      if (op === "==") return deepEqual(a, b);
      if (op === "!=") return !deepEqual(a, b);
      if (!isInt(a) || !isInt(b)) throw new ExprError(`${op} on non-integers`);
      return op === "<" ? a < b : op === "<=" ? a <= b : op === ">" ? a > b : a >= b;
    }
    case "not": { const v = ev(tree[1]); if (!isBool(v)) throw new ExprError("not on a non-boolean"); return !v; }
    case "bool": {
      const a = ev(tree[2]);
      if (!isBool(a)) throw new ExprError(`${tree[1]} on a non-boolean`);
      if (tree[1] === "and" && !a) return false;
      if (tree[1] === "or" && a) return true;
      const b = ev(tree[3]);
      if (!isBool(b)) throw new ExprError(`${tree[1]} on a non-boolean`);
      return b;
    }
    case "coalesce": { const a = ev(tree[2]); return a === null ? ev(tree[3]) : a; }
    case "if": {
      const c = ev(tree[1]);
      if (!isBool(c)) throw new ExprError("if on a non-boolean");
      return c ? ev(tree[2]) : ev(tree[3]);
    }
    default: throw new ExprError(`unknown node ${tree[0]}`);
  }
}

/** Parse and evaluate one expression. Spec: layout.md#LAY-2 */
function evalExpr(text, scope, config) {
  return evaluate(parse(String(text)), scope, config);
}

module.exports = { ExprError, parse, evaluate, evalExpr };
