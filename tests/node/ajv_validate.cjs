#!/usr/bin/env node
// Second-language check of the config schemas: validate documents with Ajv (draft 2020-12, strict mode).
//
// stdin:  a JSON array of documents.
// stdout: a JSON array of {"compat": bool, "strict": bool}, one per document, in the same order.
// Exits non-zero with a message on stderr if Ajv refuses to compile a schema.
//
// CommonJS on purpose: ajv has no "exports" map, so the ESM import "ajv/dist/2020" does not resolve.
"use strict";

const fs = require("fs");
const path = require("path");
const Ajv2020 = require("ajv/dist/2020");

const SCHEMA_DIR = path.resolve(__dirname, "..", "..", "schemas", "v1.0");
const PROFILES = { compat: "config.schema.json", strict: "config.strict.schema.json" };
const CUSTOM_PREFIX = "x-specfmt-";

function fail(message) {
  process.stderr.write(`ajv_validate: ${message}\n`);
  process.exit(2);
}

// Every object key starting with x-specfmt- anywhere in the schema documents.
function customKeywords(node, found) {
  if (Array.isArray(node)) {
    for (const item of node) customKeywords(item, found);
  } else if (node !== null && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key.startsWith(CUSTOM_PREFIX)) found.add(key);
      customKeywords(value, found);
    }
  }
  return found;
}

const schemas = {};
for (const [profile, file] of Object.entries(PROFILES)) {
  try {
    schemas[profile] = JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, file), "utf8"));
  } catch (err) {
    fail(`cannot read ${file}: ${err.message}`);
  }
}

const keywords = new Set();
for (const schema of Object.values(schemas)) customKeywords(schema, keywords);

// Every strict-mode option is on; any strict-mode warning is a failure. The union types in the
// schemas are all nullable ({"type": ["integer", "null"]}), which strictTypes accepts, so
// allowUnionTypes is not set.
const warnings = [];
const collect = (...args) => warnings.push(args.join(" "));
const ajv = new Ajv2020({
  strict: true,
  logger: { log: collect, warn: collect, error: collect },
});
// The x-specfmt-* keywords are annotations with no validation effect: declare them so strict mode
// accepts them, from the scan above rather than a hand-written list.
ajv.addVocabulary([...keywords].sort());

const validators = {};
for (const [profile, schema] of Object.entries(schemas)) {
  try {
    validators[profile] = ajv.compile(schema);
  } catch (err) {
    fail(`Ajv (strict mode) refused to compile ${PROFILES[profile]}: ${err.message}`);
  }
}

if (warnings.length > 0) fail(`Ajv strict mode warned while compiling the schemas:\n  ${warnings.join("\n  ")}`);

let documents;
try {
  documents = JSON.parse(fs.readFileSync(0, "utf8"));
} catch (err) {
  fail(`stdin is not JSON: ${err.message}`);
}
if (!Array.isArray(documents)) fail("stdin must be a JSON array of documents");

const verdicts = documents.map((doc) => {
  const verdict = {};
  for (const [profile, validate] of Object.entries(validators)) verdict[profile] = validate(doc) === true;
  return verdict;
});
process.stdout.write(JSON.stringify(verdicts) + "\n");
