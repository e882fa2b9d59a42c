// Checkpoint validation: config.json reading, weights, headers and layout binding. Spec: index.md#GEN-3..GEN-5
"use strict";

const fs = require("fs");
const path = require("path");
const { safetensors } = require("./schemas.cjs");
const { readJsonFile } = require("./jsonread.cjs");
const { validateConfig } = require("./config.cjs");
const { readWeights } = require("./safetensors.cjs");
const { bind, hasTensors } = require("./layout.cjs");
const { scanValues: scan } = require("./values.cjs");

const READ_ERRORS = { too_large: "config.too_large", encoding: "config.encoding", json: "config.json" };

/** Read and validate config.json: {config, resolved, schemaErrors} or null. Spec: config.md#CFG-1 */
function readConfig(dir, profile, out) {
  const file = path.join(dir, "config.json");
  const add = (code, pointer = "") => out.push({ code, pointer, file: "config.json" });
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) { add("config.missing"); return null; }
  const read = readJsonFile(file, safetensors.config_max_bytes);
  if (read.error) { add(READ_ERRORS[read.error]); return null; }
  if (read.duplicates.length > 0) add("config.duplicate_key");
  const result = validateConfig(read.value, profile);
  for (const f of result.findings) out.push({ ...f, file: "config.json" });
  return { config: read.value, ...result };
}

/** Every finding of a checkpoint directory under a profile; with scanValues, of its tensor data too. */
function validateCheckpoint(dir, profile, scanValues = false) {
  const out = [];
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return [{ code: "io.not_found", pointer: "", file: "." }];
  const cfg = readConfig(dir, profile, out);
  const algorithm = cfg && cfg.config !== null && typeof cfg.config === "object" ? cfg.config.speculators_model_type : undefined;
  const known = typeof algorithm === "string" && /^[a-z][a-z0-9_]*$/.test(algorithm);
  const weights = readWeights(dir, out);
  if (weights.absent) {
    if (known && !hasTensors(algorithm)) return out;
    if (weights.pickles.length > 0) out.push({ code: "weights.pickle", pointer: "", file: weights.pickles[0] });
    else out.push({ code: "weights.missing", pointer: "", file: "model.safetensors" });
    return out;
  }
  if (weights.tensors && known) {
    const { bound, V } = bind(algorithm, cfg.resolved, weights.tensors, cfg.schemaErrors, out, weights.malformed, weights.file);
    if (scanValues) scan(dir, weights.tensors, bound, V, out);
  }
  return out;
}

module.exports = { validateCheckpoint };
