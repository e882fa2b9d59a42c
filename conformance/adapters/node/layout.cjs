// Layout binding: symbols, loops, fragments, presence, shapes and dtypes. Spec: layout.md#LAY-1..LAY-6
"use strict";

const { layout, safetensors } = require("./schemas.cjs");
const { evalExpr, ExprError } = require("./expr.cjs");

const MAX_LOOP = 100000;
const esc = (s) => String(s).replace(/~/g, "~0").replace(/\//g, "~1");

function evalInt(expr, scope, config) {
  const v = evalExpr(expr, scope, config);
  if (!Number.isInteger(v)) throw new ExprError(`${expr} is not an integer`);
  return v;
}

function evalBool(expr, scope, config) {
  if (expr === undefined) return true;
  const v = evalExpr(expr, scope, config);
  if (typeof v !== "boolean") throw new ExprError(`${expr} is not a boolean`);
  return v;
}

// Expand nested loops, outer first, calling fn(scope, layers) per iteration; layers: [{pointer, value}].
// Nested loops share MAX_LOOP (GEN-6): an inner loop may run the budget divided by the outer loop's count.
function expandLoops(loops, scope, config, fn, layers = [], budget = MAX_LOOP) {
  if (!loops || loops.length === 0) return fn(scope, layers);
  const [loop, ...rest] = loops;
  const from = loop.from === undefined ? 0 : evalInt(loop.from, scope, config);
  const to = evalInt(loop.to, scope, config);
  if (to - from > budget) throw new ExprError(`loop ${loop.var} runs past ${budget} iterations`);
  for (let v = from; v < to; v++) {
    const inner = { ...scope, [loop.var]: v };
    const more = loop.layers_of ? [...layers, { pointer: loop.layers_of, value: v }] : layers;
    expandLoops(rest, inner, config, fn, more, Math.floor(budget / (to - from)));
  }
}

const fill = (template, scope) => template.replace(/\{([a-z])\}/g, (_, v) => String(scope[v]));

/**
 * Every tensor instance of a layout document: {name, entry, scope, active, shape, layers}, and whether some
 * expression failed. LAY-3: a symbol that fails is null; each entry (each tensor of an included fragment counts as
 * one) gives all of its instances or, when any of its expressions fails, none; a shape is evaluated only for an
 * instance whose condition holds.
 */
function instances(doc, config) {
  const scope = {};
  let failed = false;
  for (const [name, symbol] of Object.entries(doc.symbols || {})) {
    try {
      scope[name] = evalExpr(symbol.expr, scope, config);
    } catch (err) {
      if (!(err instanceof ExprError)) throw err;
      scope[name] = null;
      failed = true;
    }
  }
  const out = [];
  for (const entry of doc.tensors) {
    for (const t of entry.include ? layout(`_${entry.include}`).tensors : [entry]) {
      const mine = [];
      try {
        expandLoops(entry.for, scope, config, (s, layers) => {
          const inner = { ...s };
          for (const [param, expr] of Object.entries(entry.with || {})) inner[param] = evalExpr(expr, s, config);
          const active = evalBool(entry.when, inner, config) && (t === entry || evalBool(t.when, inner, config));
          const shape = active ? t.shape.map((e) => evalInt(e, inner, config)) : null;
          const name = entry.include ? fill(entry.prefix, s) + t.name : fill(entry.name, s);
          mine.push({ name, entry: t, scope: inner, active, shape, layers });
        });
        out.push(...mine);
      } catch (err) {
        if (!(err instanceof ExprError)) throw err;
        failed = true;
      }
    }
  }
  return { all: out, failed, V: scope.V };
}

/**
 * Bind the stored tensors ({name: {dtype, shape, file}}) to the layout (LAY-3..LAY-6). `malformed` names are
 * stored but unreadable (already a header finding), so never missing; `weightsFile` is the file a missing tensor
 * is reported in. Returns the names bound to an active entry (what the draft reads) and V, for a value scan.
 */
function bind(algorithm, config, tensors, schemaErrors, out, malformed = [], weightsFile = "model.safetensors") {
  const doc = layout(algorithm);
  const bound = new Set();
  if (!doc) return { bound };
  const { all, failed, V } = instances(doc, config);
  if (failed && !schemaErrors) out.push({ code: "layout.expression", pointer: "", file: "config.json" });
  const byName = new Map();
  for (const inst of all) (byName.get(inst.name) || byName.set(inst.name, []).get(inst.name)).push(inst);
  const missing = [];
  const wantDtype = safetensors.config_dtypes[config.dtype ?? config.torch_dtype];
  for (const [name, insts] of byName) {
    const inst = insts.find((i) => i.active);
    const t = tensors[name];
    if (!inst) {
      if (t) out.push({ code: insts[0].entry.forbidden_code || "layout.forbidden", pointer: `/${esc(name)}`, file: t.file });
      continue;
    }
    if (!t) {
      if ((inst.entry.presence || "required") === "required" && !malformed.includes(name)) missing.push(inst);
      continue;
    }
    checkTensor(name, inst, t, out);
    bound.add(name);
  }
  reportMissing(missing, all, tensors, out, weightsFile);
  const forbidden = new Map((doc.forbidden || []).map((f) => [f.name, f.code]));
  for (const [name, t] of Object.entries(tensors)) {
    if (byName.has(name) || failed) continue;  // with a failed entry, a stored tensor may be one of its own
    out.push({ code: forbidden.get(name) || "layout.unexpected", pointer: `/${esc(name)}`, file: t.file });
  }
  // LAY-6: every stored tensor of the float class, bound or not, in the config's dtype.
  for (const [name, t] of Object.entries(tensors)) {
    if (wantDtype && safetensors.dtypes[t.dtype].class === "float" && t.dtype !== wantDtype) {
      out.push({ code: "hazard.dtype_mismatch", pointer: `/${esc(name)}/dtype`, file: t.file });
    }
  }
  return { bound, V };
}

// LAY-5 and LAY-6 for one bound tensor.
function checkTensor(name, inst, t, out) {
  const at = `/${esc(name)}`;
  if (JSON.stringify(inst.shape) !== JSON.stringify(t.shape)) out.push({ code: inst.entry.shape_code || "layout.shape", pointer: `${at}/shape`, file: t.file });
  const cls = safetensors.dtypes[t.dtype].class;
  if (cls !== inst.entry.dtype) out.push({ code: "layout.dtype", pointer: `${at}/dtype`, file: t.file });
}

// LAY-4: missing tensors, with whole trailing layers collapsed into hazard.layers_missing.
function reportMissing(missing, all, tensors, out, weightsFile) {
  const missingSet = new Set(missing);
  const collapsed = new Set();
  const pointers = new Set(all.flatMap((i) => i.layers.map((l) => l.pointer)));
  for (const pointer of pointers) {
    const layerOf = (i) => i.layers.find((l) => l.pointer === pointer)?.value;
    const values = [...new Set(all.map(layerOf).filter((v) => v !== undefined))].sort((a, b) => a - b);
    const required = (v) => all.filter((i) => layerOf(i) === v && i.active && (i.entry.presence || "required") === "required");
    let m = values.length;
    while (m > 0 && required(values[m - 1]).every((i) => missingSet.has(i) && !tensors[i.name])) m--;
    if (m === values.length || values[m] === 0) continue; // no trailing gap, or every layer absent: tensor by tensor
    if (m === 0 && belowAbsent(all, tensors, required(values[0]), values[0])) continue; // eagle3's layers.0 too
    for (const v of values.slice(m)) for (const i of required(v)) collapsed.add(i);
    out.push({ code: "hazard.layers_missing", pointer, file: "config.json" });
  }
  for (const inst of missing) {
    if (!collapsed.has(inst)) out.push({ code: inst.entry.missing_code || "layout.missing", pointer: `/${esc(inst.name)}`, file: weightsFile });
  }
}

// A layer below a loop that starts at `start` > 0 (eagle3 and peagle declare layers.0. apart from their loop) with no
// required tensor stored: its names differ from the loop's lowest layer only in the index.
function belowAbsent(all, tensors, lowest, start) {
  if (lowest.length === 0) return false;
  const parts = lowest[0].name.split(".");
  const at = parts.indexOf(String(start));
  if (at < 0) return false;
  const head = parts.slice(0, at).join(".");
  for (let layer = 0; layer < start; layer++) {
    const prefix = head ? `${head}.${layer}.` : `${layer}.`;
    const required = all.filter((i) => i.active && (i.entry.presence || "required") === "required" && i.name.startsWith(prefix));
    if (required.length > 0 && !required.some((i) => tensors[i.name])) return true;
  }
  return false;
}

/** Does the algorithm's layout declare any tensor? (ngram does not.) */
function hasTensors(algorithm) {
  const doc = layout(algorithm);
  return doc === null || doc.tensors.length > 0;
}

module.exports = { bind, hasTensors };
