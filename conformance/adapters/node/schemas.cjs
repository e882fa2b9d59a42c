// The v1.0 schema documents, read once, and Ajv (draft 2020-12, strict mode) compiled over them.
"use strict";

const fs = require("fs");
const path = require("path");
const Ajv2020 = require("ajv/dist/2020");

const SCHEMA_DIR = path.resolve(__dirname, "..", "..", "..", "schemas", "v1.0");
const PROFILE_FILES = { compat: "config.schema.json", strict: "config.strict.schema.json" };
const CUSTOM_PREFIX = "x-specfmt-";

function readJson(file) {
  return JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, file), "utf8"));
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

const schemas = { compat: readJson(PROFILE_FILES.compat), strict: readJson(PROFILE_FILES.strict) };
const codesDoc = readJson("codes.json");
const codes = codesDoc.codes;
/** The severity of each kind of code under each profile (GEN-4), as codes.json declares it. */
const severities = codesDoc.severity.kinds;
const codeOfKeyword = new Map(Object.entries(codesDoc.keywords.codes).flatMap(([code, kws]) => kws.map((k) => [k, code])));
/** The code of a schema violation by its failing keyword (CFG-2), as codes.json maps it. */
const keywordCode = (keyword) => codeOfKeyword.get(keyword) ?? codesDoc.keywords.otherwise;
const safetensors = readJson("safetensors.json");

const keywords = new Set();
for (const schema of Object.values(schemas)) customKeywords(schema, keywords);
// allErrors: every finding, not the first (GEN-5); verbose: anyOf errors carry their branches.
const ajv = new Ajv2020({ strict: true, allErrors: true, verbose: true, logger: false });
ajv.addVocabulary([...keywords].sort());
const validators = {};
for (const [profile, schema] of Object.entries(schemas)) validators[profile] = ajv.compile(schema);

/** A validator for one subschema of a profile's schema, for anyOf branches. */
const branchCache = new Map();
function branchValidator(profile, branch) {
  const key = profile + JSON.stringify(branch);
  if (!branchCache.has(key)) {
    const ref = branch.$ref;
    const fn = ref !== undefined && Object.keys(branch).length === 1
      ? ajv.getSchema(schemas[profile].$id + ref)
      : ajv.compile(branch);
    branchCache.set(key, fn);
  }
  return branchCache.get(key);
}

/** Resolve a local $ref ("#/$defs/x") inside a profile's schema. */
function resolveRef(profile, ref) {
  let node = schemas[profile];
  for (const part of ref.replace(/^#\//, "").split("/")) node = node[part];
  return node;
}

const layoutCache = new Map();
/** A layout document or fragment by name, or null when absent. */
function layout(name) {
  if (!layoutCache.has(name)) {
    const file = path.join(SCHEMA_DIR, "layouts", `${name}.json`);
    layoutCache.set(name, /^[a-z_][a-z0-9_]*$/.test(name) && fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : null);
  }
  return layoutCache.get(name);
}

module.exports = { schemas, codes, severities, keywordCode, safetensors, validators, branchValidator, resolveRef, layout };
