// The checks that read tensor data, run only when a case asks (GEN-5): weights.nonfinite and
// hazard.nonfinite (LAY-7), hazard.vocab_mapping (d2t and t2d). Spec: layout.md#LAY-7, hazards.md
"use strict";

const fs = require("fs");
const path = require("path");

const esc = (s) => String(s).replace(/~/g, "~0").replace(/\//g, "~1");
// Every floating-point dtype, the 8-bit ones included (LAY-7); only finiteness matters for F8, so they are decoded
// to NaN, Infinity or 0.
const FLOATS = { F64: [8, (b, i) => b.readDoubleLE(i)], F32: [4, (b, i) => b.readFloatLE(i)],
  F16: [2, (b, i) => half(b.readUInt16LE(i))], BF16: [2, (b, i) => bfloat(b.readUInt16LE(i))],
  F8_E4M3: [1, (b, i) => ((b[i] & 0x7f) === 0x7f ? NaN : 0)],  // E4M3FN: no infinities, NaN is S.1111.111
  F8_E5M2: [1, (b, i) => ((b[i] & 0x7c) !== 0x7c ? 0 : (b[i] & 0x03) ? NaN : Infinity)] };  // IEEE 754-like

function bfloat(bits) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(bits << 16 >>> 0);
  return b.readFloatLE(0);
}

function half(bits) {
  const exp = (bits >> 10) & 0x1f, frac = bits & 0x3ff, sign = bits & 0x8000 ? -1 : 1;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (exp ? (1 + frac / 1024) * 2 ** (exp - 15) : (frac / 1024) * 2 ** -14);
}

/** The bytes of one tensor: the data starts after the 8-byte length and the header. */
function tensorBytes(dir, t) {
  const fd = fs.openSync(path.join(dir, t.file), "r");
  try {
    const prefix = Buffer.alloc(8);
    fs.readSync(fd, prefix, 0, 8, 0);
    const start = 8 + Number(prefix.readBigUInt64LE(0));
    const bytes = Buffer.alloc(t.end - t.begin);
    fs.readSync(fd, bytes, 0, bytes.length, start + t.begin);
    return bytes;
  } finally {
    fs.closeSync(fd);
  }
}

function nonfinite(dir, name, t, read, out) {
  const [width, get] = FLOATS[t.dtype];
  const bytes = tensorBytes(dir, t);
  const total = bytes.length / width;
  let bad = 0;
  for (let i = 0; i < bytes.length; i += width) if (!Number.isFinite(get(bytes, i))) bad++;
  if (bad === 0) return;
  const code = bad === total && read.has(name) ? "weights.nonfinite" : "hazard.nonfinite";
  out.push({ code, pointer: `/${esc(name)}`, file: t.file });
}

/** d2t maps draft ids to increasing verifier ids in [0, V), and t2d marks exactly those ids. */
function vocabMapping(dir, tensors, V, out) {
  const d2t = tensors.d2t, t2d = tensors.t2d;
  if (!d2t || d2t.dtype !== "I64" || !Number.isInteger(V)) return;
  const raw = tensorBytes(dir, d2t);
  const target = [];
  for (let i = 0; i < raw.length; i += 8) target.push(i / 8 + Number(raw.readBigInt64LE(i)));
  const increasing = target.every((v, i) => v >= 0 && v < V && (i === 0 || v > target[i - 1]));
  if (!increasing) { out.push({ code: "hazard.vocab_mapping", pointer: "/d2t", file: d2t.file }); return; }
  if (!t2d || t2d.dtype !== "BOOL" || t2d.shape.length !== 1 || t2d.shape[0] !== V) return;
  const mask = tensorBytes(dir, t2d);
  const marked = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) marked.push(i);
  if (marked.length !== target.length || marked.some((v, i) => v !== target[i])) {
    out.push({ code: "hazard.vocab_mapping", pointer: "/t2d", file: t2d.file });
  }
}

/** Every value finding of the stored tensors; `read`: the names bound to the layout. */
function scanValues(dir, tensors, read, V, out) {
  for (const name of Object.keys(tensors).sort()) {
    if (tensors[name].dtype in FLOATS) nonfinite(dir, name, tensors[name], read, out);
  }
  vocabMapping(dir, tensors, V, out);
}

module.exports = { scanValues };
