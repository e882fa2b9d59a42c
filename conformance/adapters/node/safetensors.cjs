// Safetensors headers (SFT-2..SFT-4) and weights discovery with the shard index (SFT-1, SFT-5).
"use strict";

const fs = require("fs");
const path = require("path");
const { safetensors } = require("./schemas.cjs");
const { readJsonFile, parseJsonBytes } = require("./jsonread.cjs");

const PICKLE = /\.(bin|pt|pth|ckpt|pkl)$/;
const INDEX = "model.safetensors.index.json";
const esc = (s) => String(s).replace(/~/g, "~0").replace(/\//g, "~1");
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isNat = (v) => typeof v === "number" && Number.isInteger(v) && v >= 0;

/**
 * Read one header without touching the data: {tensors: {name: {dtype, shape, begin, end}}, malformed: [names]},
 * or null when the header itself cannot be read (SFT-2). Malformed entries are reported, left out of the
 * coverage check and of binding, and still count as stored (LAY-3).
 */
function readHeader(dir, file, out) {
  const add = (code, pointer) => out.push({ code, pointer, file });
  const fd = fs.openSync(path.join(dir, file), "r");
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) { add("header.truncated", ""); return null; }
    const prefix = Buffer.alloc(8);
    fs.readSync(fd, prefix, 0, 8, 0);
    const n = prefix.readBigUInt64LE(0);
    if (n > BigInt(safetensors.header_max_bytes) || n > BigInt(size - 8)) { add("header.length", ""); return null; }
    const bytes = Buffer.alloc(Number(n));
    fs.readSync(fd, bytes, 0, bytes.length, 8);
    const parsed = parseJsonBytes(bytes);
    if (parsed.error || !isObject(parsed.value)) { add("header.json", ""); return null; }
    // One finding per header, at the first repeated member in the text (SFT-2): /<name> or /<name>/<key>.
    if (parsed.duplicates.length > 0) {
      const first = parsed.duplicates[0];
      add("header.duplicate", `${first.pointer}/${esc(first.key)}`);
      return null;
    }
    const { tensors, malformed } = checkEntries(parsed.value, add);
    checkOffsets(tensors, size - 8 - Number(n), add);
    return { tensors, malformed };
  } finally {
    fs.closeSync(fd);
  }
}

// SFT-2, SFT-3: each entry gets at most one finding, the first that applies in the spec's order.
function entryProblem(entry) {
  if (!isObject(entry) || !("dtype" in entry) || !("shape" in entry) || !("data_offsets" in entry)) {
    return ["header.entry", ""];
  }
  if (!Array.isArray(entry.shape) || !entry.shape.every(isNat)) return ["header.entry", "/shape"];
  const off = entry.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every(isNat) || off[0] > off[1]) {
    return ["header.offsets", "/data_offsets"];
  }
  if (typeof entry.dtype !== "string" || !safetensors.dtypes[entry.dtype]) return ["header.dtype", "/dtype"];
  return null;
}

function checkEntries(header, add) {
  const tensors = {};
  const malformed = [];
  for (const [name, entry] of Object.entries(header)) {
    const at = `/${esc(name)}`;
    if (name === "__metadata__") {
      if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === "string")) add("header.metadata", at);
      continue;
    }
    const problem = entryProblem(entry);
    if (problem) { add(problem[0], at + problem[1]); malformed.push(name); continue; }
    const off = entry.data_offsets;
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (off[1] - off[0] !== count * safetensors.dtypes[entry.dtype].bytes) add("header.size", `${at}/data_offsets`);
    tensors[name] = { dtype: entry.dtype, shape: entry.shape, begin: off[0], end: off[1] };
  }
  return { tensors, malformed };
}

// SFT-4: sorted by begin, the byte ranges cover the data exactly.
function checkOffsets(tensors, dataBytes, add) {
  const sorted = Object.entries(tensors).sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let end = 0;
  for (const [name, t] of sorted) {
    if (t.begin !== end) add("header.offsets", `/${esc(name)}/data_offsets`);
    end = Math.max(end, t.end);
  }
  if (end < dataBytes) add("header.offsets", "");
  else if (end > dataBytes) add("header.truncated", "");
}

/**
 * Read the shard index and its shards: {tensors, malformed}, with tensors null when the index or some shard's
 * header is unread (binding is then skipped, LAY-3). Spec: SFT-5
 */
function readSharded(dir, out) {
  const add = (code, pointer, file = INDEX) => out.push({ code, pointer, file });
  const idx = readJsonFile(path.join(dir, INDEX), safetensors.config_max_bytes);
  if (idx.error) { add("index.json", ""); return { tensors: null, malformed: [] }; }
  const map = isObject(idx.value) ? idx.value.weight_map : undefined;
  if (!isObject(map) || !Object.values(map).every((v) => typeof v === "string")) {
    add("index.json", "/weight_map");
    return { tensors: null, malformed: [] };
  }
  const shards = [...new Set(Object.values(map))].sort();
  let complete = true;
  const stored = {};
  const malformed = new Set();  // "shard\0name": a malformed entry is stored, so not an index.mismatch
  const readable = new Set();
  for (const shard of shards) {
    if (shard.includes("/") || shard.includes("\\") || !shard.endsWith(".safetensors") || shard === ".." || shard === ".") { add("index.path", "/weight_map"); complete = false; continue; }
    const file = path.join(dir, shard);
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) { add("index.missing_shard", "/weight_map"); complete = false; continue; }
    const header = readHeader(dir, shard, out);
    if (header === null) { complete = false; continue; }
    readable.add(shard);
    for (const name of header.malformed) malformed.add(`${shard}\0${name}`);
    for (const [name, t] of Object.entries(header.tensors)) (stored[name] ||= []).push({ shard, ...t });
  }
  for (const [name, copies] of Object.entries(stored)) {
    if (copies.length > 1) add("index.mismatch", `/${esc(name)}`, copies[1].shard);
  }
  for (const [name, shard] of Object.entries(map).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const where = stored[name];
    if (!where && readable.has(shard) && !malformed.has(`${shard}\0${name}`)) add("index.mismatch", `/weight_map/${esc(name)}`);
    else if (where && where[0].shard !== shard) add("index.mismatch", `/weight_map/${esc(name)}`);
  }
  for (const [name, copies] of Object.entries(stored)) {
    if (!(name in map)) add("index.mismatch", `/${esc(name)}`, copies[0].shard);
  }
  const names = new Set([...malformed].map((key) => key.split("\0")[1]));
  if (!complete) return { tensors: null, malformed: [...names] };
  const tensors = {};
  for (const [name, copies] of Object.entries(stored)) tensors[name] = { ...copies[0], file: copies[0].shard };
  return { tensors, malformed: [...names] };
}

/**
 * Find and read the weights: {tensors, malformed} with every header read, {tensors: null} when some header
 * could not be read, or {absent: true} when there is no weights file. Spec: layout.md#SFT-1
 */
function readWeights(dir, out) {
  if (fs.existsSync(path.join(dir, INDEX))) return { ...readSharded(dir, out), file: INDEX };
  if (fs.existsSync(path.join(dir, "model.safetensors"))) {
    const header = readHeader(dir, "model.safetensors", out);
    if (header === null) return { tensors: null, malformed: [] };
    for (const t of Object.values(header.tensors)) t.file = "model.safetensors";
    return { ...header, file: "model.safetensors" };
  }
  const pickles = fs.readdirSync(dir).filter((f) => PICKLE.test(f)).sort();
  return { absent: true, pickles };
}

module.exports = { readWeights };
