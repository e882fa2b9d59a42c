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

/** Read one header without touching the data: {tensors: {name: {dtype, shape}}} or null when unreadable. */
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
    const before = out.length;
    for (const d of parsed.duplicates) if (d.pointer === "") add("header.duplicate", `/${esc(d.key)}`);
    const tensors = checkEntries(parsed.value, add);
    const stored = Object.keys(parsed.value).filter((k) => k !== "__metadata__").length;
    const entriesOk = parsed.duplicates.length === 0 && Object.keys(tensors).length === stored;
    // With a repeated or malformed entry some byte ranges are unknown, so coverage is not checked.
    if (entriesOk) checkOffsets(tensors, size - 8 - Number(n), add);
    return out.length === before ? tensors : null;
  } finally {
    fs.closeSync(fd);
  }
}

// SFT-2, SFT-3: every entry well formed, with a dtype of the profile.
function checkEntries(header, add) {
  const tensors = {};
  for (const [name, entry] of Object.entries(header)) {
    const at = `/${esc(name)}`;
    if (name === "__metadata__") {
      if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === "string")) add("header.metadata", at);
      continue;
    }
    if (!isObject(entry) || !("dtype" in entry) || !("shape" in entry) || !("data_offsets" in entry)) { add("header.entry", at); continue; }
    let ok = true;
    if (!Array.isArray(entry.shape) || !entry.shape.every(isNat)) { add("header.entry", `${at}/shape`); ok = false; }
    const off = entry.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every(isNat)) { add("header.entry", `${at}/data_offsets`); ok = false; }
    else if (off[0] > off[1]) { add("header.offsets", `${at}/data_offsets`); ok = false; }
    const info = typeof entry.dtype === "string" ? safetensors.dtypes[entry.dtype] : undefined;
    if (!info) { add("header.dtype", `${at}/dtype`); ok = false; }
    if (!ok) continue;
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (off[1] - off[0] !== count * info.bytes) add("header.size", `${at}/data_offsets`);
    tensors[name] = { dtype: entry.dtype, shape: entry.shape, begin: off[0], end: off[1] };
  }
  return tensors;
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

/** Read the shard index and its shards: tensors by name or null when some header is unread. Spec: SFT-5 */
function readSharded(dir, out) {
  const add = (code, pointer, file = INDEX) => out.push({ code, pointer, file });
  const idx = readJsonFile(path.join(dir, INDEX), safetensors.config_max_bytes);
  if (idx.error) { add("index.json", ""); return null; }
  const map = isObject(idx.value) ? idx.value.weight_map : undefined;
  if (!isObject(map) || !Object.values(map).every((v) => typeof v === "string")) { add("index.json", "/weight_map"); return null; }
  const shards = [...new Set(Object.values(map))];
  let complete = true;
  const stored = {};
  for (const shard of shards) {
    if (shard.includes("/") || shard.includes("\\") || !shard.endsWith(".safetensors") || shard === ".." || shard === ".") { add("index.path", "/weight_map"); complete = false; continue; }
    const file = path.join(dir, shard);
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) { add("index.missing_shard", "/weight_map"); complete = false; continue; }
    const tensors = readHeader(dir, shard, out);
    if (tensors === null) { complete = false; continue; }
    for (const [name, t] of Object.entries(tensors)) (stored[name] ||= []).push({ shard, ...t });
  }
  if (!complete) return null;
  const before = out.length;
  for (const [name, shard] of Object.entries(map)) {
    if (!(stored[name] || []).some((t) => t.shard === shard)) add("index.mismatch", `/weight_map/${esc(name)}`);
  }
  for (const [name, copies] of Object.entries(stored)) {
    if (!(name in map)) add("index.mismatch", `/${esc(name)}`, copies[0].shard);
    if (copies.length > 1) {
      add("index.mismatch", `/${esc(name)}`, copies[1].shard);
      add("index.mismatch", `/weight_map/${esc(name)}`);
    }
  }
  if (out.length !== before) return null;
  const tensors = {};
  for (const [name, copies] of Object.entries(stored)) tensors[name] = { ...copies[0], file: copies[0].shard };
  return tensors;
}

/**
 * Find and read the weights: {tensors} with every header read, {tensors: null} when some header
 * could not be read, or {absent: true} when there is no weights file. Spec: layout.md#SFT-1
 */
function readWeights(dir, out) {
  if (fs.existsSync(path.join(dir, INDEX))) return { tensors: readSharded(dir, out) };
  if (fs.existsSync(path.join(dir, "model.safetensors"))) {
    const tensors = readHeader(dir, "model.safetensors", out);
    if (tensors !== null) for (const t of Object.values(tensors)) t.file = "model.safetensors";
    return { tensors };
  }
  const pickles = fs.readdirSync(dir).filter((f) => PICKLE.test(f)).sort();
  return { absent: true, pickles };
}

module.exports = { readWeights };
