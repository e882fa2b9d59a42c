// Bounded, strict JSON reading (GEN-7): UTF-8, JSON (JSON.parse already refuses NaN and Infinity), nesting
// at most json_max_depth, and repeated keys (which JSON.parse silently merges).
"use strict";

const fs = require("fs");
const { safetensors } = require("./schemas.cjs");

/** The deepest nesting of arrays and objects in JSON text, counted without recursion (strings skipped). */
function nestingDepth(text) {
  let level = 0, deepest = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') { for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++; }
    else if (c === "[" || c === "{") deepest = Math.max(deepest, ++level);
    else if (c === "]" || c === "}") level--;
  }
  return deepest;
}

/** Keys repeated within one object of valid JSON text, as [{pointer of the object, key}]. */
function duplicateKeys(text) {
  const found = [];
  let i = 0;
  const ws = () => { while (i < text.length && " \t\r\n".includes(text[i])) i++; };
  function str() {
    const start = i++;
    while (text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i));
  }
  function value(pointer) {
    ws();
    if (text[i] === "{") {
      i++; const keys = new Set(); ws();
      if (text[i] === "}") { i++; return; }
      for (;;) {
        ws(); const key = str(); ws(); i++; // ':'
        if (keys.has(key)) found.push({ pointer, key });
        keys.add(key);
        value(`${pointer}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`); ws();
        if (text[i++] === "}") return;
      }
    } else if (text[i] === "[") {
      i++; ws();
      if (text[i] === "]") { i++; return; }
      for (let n = 0; ; n++) { value(`${pointer}/${n}`); ws(); if (text[i++] === "]") return; }
    } else if (text[i] === '"') str();
    else while (i < text.length && !",}] \t\r\n".includes(text[i])) i++;
  }
  value("");
  return found;
}

/** Decode bytes as UTF-8 and parse JSON: {value} or {error: "encoding" | "json"}, with duplicates. */
function parseJsonBytes(bytes) {
  let text;
  try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch (_) { return { error: "encoding" }; }
  if (nestingDepth(text) > safetensors.json_max_depth) return { error: "json" };
  let value;
  try { value = JSON.parse(text); } catch (_) { return { error: "json" }; }
  return { value, duplicates: duplicateKeys(text) };
}

/** Read a JSON file of at most maxBytes: {value, duplicates} or {error: "too_large" | "encoding" | "json"}. */
function readJsonFile(file, maxBytes) {
  if (fs.statSync(file).size > maxBytes) return { error: "too_large" };
  return parseJsonBytes(fs.readFileSync(file));
}

module.exports = { readJsonFile, parseJsonBytes };
