// Config validation: the profile's schema through Ajv, then the semantic checks of spec/config.md.
"use strict";

const { schemas, validators, branchValidator, resolveRef, layout, keywordCode } = require("./schemas.cjs");
const { evalExpr } = require("./expr.cjs");

const REMOVED_PROPOSAL_TYPES = ["sampling", "static_tree", "dynamic_tree"];

const escapeToken = (s) => String(s).replace(/~/g, "~0").replace(/\//g, "~1");
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isInt = (v) => typeof v === "number" && Number.isInteger(v);

function jsonType(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (isInt(v)) return "integer";
  return typeof v;
}

function typeAccepts(declared, value) {
  if (declared === undefined) return true;
  const t = jsonType(value);
  return [].concat(declared).some((d) => d === t || (d === "number" && t === "integer"));
}

/** Map Ajv errors to findings {code, pointer}. Spec: config.md#CFG-2 */
function mapErrors(errors, profile, prefix, out) {
  const anyOfPaths = errors.filter((e) => e.keyword === "anyOf").map((e) => e.instancePath);
  const underAnyOf = (p) => anyOfPaths.some((a) => p === a || p.startsWith(a + "/"));
  for (const err of errors) {
    const at = prefix + err.instancePath;
    if (err.keyword === "anyOf") {
      mapAnyOf(err, profile, at, out);
      continue;
    }
    if (underAnyOf(err.instancePath) || err.keyword === "if") continue;
    const code = keywordCode(err.keyword);
    if (err.keyword === "required") out.push({ code, pointer: `${at}/${escapeToken(err.params.missingProperty)}` });
    else out.push({ code, pointer: at });
  }
}

// anyOf: the branch whose type accepts the value explains the failure; when none does, the type is wrong.
function mapAnyOf(err, profile, at, out) {
  const branches = err.schema;
  const chosen = branches.find((b) => typeAccepts((b.$ref ? resolveRef(profile, b.$ref) : b).type, err.data));
  if (chosen === undefined) {
    out.push({ code: keywordCode("type"), pointer: at });
    return;
  }
  const validate = branchValidator(profile, chosen);
  if (!validate(err.data)) mapErrors(validate.errors, profile, at, out);
}

// Does a value satisfy an if-schema of the form {required, properties: {k: {const}}} (or a $ref to one)?
function ifMatches(schema, obj) {
  if (schema.$ref) return ifMatches(resolveRef("compat", schema.$ref), obj);
  if (!isObject(obj)) return false;
  for (const key of schema.required || []) if (!(key in obj)) return false;
  for (const [key, sub] of Object.entries(schema.properties || {})) {
    if (key in obj && "const" in sub && JSON.stringify(obj[key]) !== JSON.stringify(sub.const)) return false;
  }
  return true;
}

// The schemas that apply to obj: the node, its $ref, its allOf entries and the then of every matching if.
function applicable(schema, obj, found = []) {
  if (schema.$ref) applicable(resolveRef("compat", schema.$ref), obj, found);
  found.push(schema);
  for (const sub of schema.allOf || []) {
    if (sub.if) { if (ifMatches(sub.if, obj) && sub.then) applicable(sub.then, obj, found); }
    else applicable(sub, obj, found);
  }
  return found;
}

/**
 * Resolve absent fields to their defaults in place, and report, through visit, every applicable
 * object schema with the object it applies to and its pointer. Spec: config.md#CFG-11
 */
function resolveObject(schema, obj, pointer, original, visit) {
  let subs = [];
  for (let round = 0; round < 3; round++) {
    subs = applicable(schema, obj);
    let changed = false;
    for (const sub of subs) {
      for (const [key, prop] of Object.entries(sub.properties || {})) {
        if (key in obj) continue;
        if ("default" in prop) { obj[key] = JSON.parse(JSON.stringify(prop.default)); changed = true; }
      }
    }
    for (const sub of subs) {
      for (const [key, prop] of Object.entries(sub.properties || {})) {
        if (key in obj || !("x-specfmt-default" in prop)) continue;
        try { obj[key] = evalExpr(prop["x-specfmt-default"], {}, obj); changed = true; } catch (_) { /* left absent */ }
      }
    }
    if (!changed) break;
  }
  for (const sub of subs) visit(sub, obj, pointer, original);
  const propSchemas = {};
  for (const sub of subs) for (const [key, prop] of Object.entries(sub.properties || {})) (propSchemas[key] ||= []).push(prop);
  for (const [key, props] of Object.entries(propSchemas)) {
    const value = obj[key];
    const orig = isObject(original) ? original[key] : undefined;
    const merged = { allOf: props };
    if (isObject(value)) resolveObject(merged, value, `${pointer}/${escapeToken(key)}`, orig, visit);
    else if (Array.isArray(value)) {
      const items = props.map((p) => (p.$ref ? resolveRef("compat", p.$ref) : p)).filter((p) => p.items).map((p) => p.items);
      if (items.length) value.forEach((item, i) => {
        if (isObject(item)) resolveObject({ allOf: items }, item, `${pointer}/${escapeToken(key)}/${i}`, Array.isArray(orig) ? orig[i] : undefined, visit);
      });
    }
  }
}

/** The config with every default resolved (CFG-11), plus the findings of the schema annotations. */
function resolveConfig(doc, out) {
  const resolved = JSON.parse(JSON.stringify(doc));
  if (!isObject(resolved)) return resolved;
  resolveObject(schemas.compat, resolved, "", doc, (sub, obj, pointer, original) => {
    const orig = isObject(original) ? original : {};
    const required = new Set(sub.required || []);
    for (const [key, prop] of Object.entries(sub.properties || {})) {
      const at = `${pointer}/${escapeToken(key)}`;
      if (prop["x-specfmt-engine-defaults"] && !(key in orig)) out.push({ code: "hazard.default_conflict", pointer: at });
      if (prop["x-specfmt-excludes"] && obj[key] === true && obj[prop["x-specfmt-excludes"]] === true) out.push({ code: "config.exclusive", pointer: at });
      if (prop["x-specfmt-aux-layer-ids"]) checkAuxIds(key, orig[key], required.has(key), at, doc, out);
    }
  });
  return resolved;
}

/** Aux layer ids: range, order, implicit. Spec: config.md#CFG-9 */
function checkAuxIds(key, ids, required, at, doc, out) {
  if (ids === undefined || ids === null) {
    if (!required) out.push({ code: "hazard.aux_layer_ids_implicit", pointer: at });
    return;
  }
  if (!Array.isArray(ids) || !ids.every(isInt)) return;
  const n = doc.speculators_config?.verifier?.num_hidden_layers;
  if (isInt(n)) ids.forEach((k, i) => { if (k > n) out.push({ code: "config.aux_layer_range", pointer: `${at}/${i}` }); });
  if (ids.some((k, i) => i > 0 && k <= ids[i - 1])) out.push({ code: "hazard.aux_layer_ids_order", pointer: at });
}

/** Cross-field rules of CFG-5..CFG-13 that no schema keyword expresses. */
function checkRules(doc, cfg, out) {
  const sc = isObject(doc.speculators_config) ? doc.speculators_config : {};
  const algo = doc.speculators_model_type;
  if (typeof sc.algorithm === "string" && typeof algo === "string" && sc.algorithm !== algo) {
    out.push({ code: "config.algorithm_mismatch", pointer: "/speculators_config/algorithm" });
  }
  const methods = Array.isArray(sc.proposal_methods) ? sc.proposal_methods : [];
  const types = methods.filter(isObject).map((m) => m.proposal_type);
  // Only a well-formed, non-empty list can be searched; the schema reports the others.
  const searchable = methods.length > 0 && methods.every(isObject);
  if (typeof sc.default_proposal_method === "string" && searchable && !types.includes(sc.default_proposal_method)) {
    out.push({ code: "config.default_proposal_method", pointer: "/speculators_config/default_proposal_method" });
  }
  methods.forEach((m, i) => {
    if (isObject(m) && REMOVED_PROPOSAL_TYPES.includes(m.proposal_type)) {
      out.push({ code: "hazard.proposal_type_removed", pointer: `/speculators_config/proposal_methods/${i}/proposal_type` });
    }
  });
  const tlc = isObject(doc.transformer_layer_config) ? doc.transformer_layer_config : null;
  if (tlc && !("model_type" in tlc)) out.push({ code: "hazard.layer_model_type_implicit", pointer: "/transformer_layer_config/model_type" });
  checkVerifier(doc, cfg, isObject(sc.verifier) ? sc.verifier : {}, tlc, out);
  checkConsistency(doc, cfg, tlc, out);
}

/** The draft against the verifier binding. Spec: config.md#CFG-8 */
function checkVerifier(doc, cfg, verifier, tlc, out) {
  const algo = doc.speculators_model_type;
  // Facts the algorithm's layout reads from the binding must be stated (CFG-8).
  const doc_ = typeof algo === "string" ? layout(algo) : null;
  for (const symbol of Object.values(doc_?.symbols || {})) {
    const m = /^speculators_config\.verifier\.([a-z_]+)$/.exec(symbol.expr);
    if (m && isObject(doc.speculators_config) && !(m[1] in verifier)) {
      out.push({ code: "config.required", pointer: `/speculators_config/verifier/${m[1]}` });
    }
  }
  if (!tlc) return;
  const mismatch = (pointer) => out.push({ code: "config.verifier_mismatch", pointer });
  if (isInt(verifier.vocab_size) && isInt(tlc.vocab_size) && tlc.vocab_size !== verifier.vocab_size) mismatch("/transformer_layer_config/vocab_size");
  if (isInt(verifier.hidden_size)) {
    if (algo === "mtp") {
      if (isInt(tlc.hidden_size) && tlc.hidden_size !== verifier.hidden_size) mismatch("/transformer_layer_config/hidden_size");
    } else if ("target_hidden_size" in cfg) {
      if (isInt(cfg.target_hidden_size)) { if (cfg.target_hidden_size !== verifier.hidden_size) mismatch("/target_hidden_size"); }
      else if (isInt(tlc.hidden_size) && tlc.hidden_size !== verifier.hidden_size) mismatch("/transformer_layer_config/hidden_size");
    }
  }
  if (algo === "mtp" && isInt(verifier.num_hidden_layers) && isInt(tlc.num_hidden_layers) && tlc.num_hidden_layers !== verifier.num_hidden_layers) {
    mismatch("/transformer_layer_config/num_hidden_layers");
  }
}

/** Fields that depend on each other. Spec: config.md#CFG-13 */
function checkConsistency(doc, cfg, tlc, out) {
  const bad = (pointer) => out.push({ code: "config.consistency", pointer });
  const algo = doc.speculators_model_type;
  if (algo === "ngram" && isInt(cfg.prompt_lookup_min) && isInt(cfg.prompt_lookup_max) && cfg.prompt_lookup_min > cfg.prompt_lookup_max) bad("/prompt_lookup_max");
  if (algo === "mlp_speculator" && Array.isArray(cfg.top_k_tokens_per_head) && isInt(cfg.n_predict) && cfg.top_k_tokens_per_head.length !== cfg.n_predict) bad("/top_k_tokens_per_head");
  if (algo === "dspark" && cfg.enable_confidence_head === true && cfg.confidence_head_with_markov === true && cfg.markov_rank === 0) bad("/confidence_head_with_markov");
  const V = tlc && isInt(tlc.vocab_size) ? tlc.vocab_size : null;
  if (V !== null && isInt(cfg.draft_vocab_size) && cfg.draft_vocab_size > V) bad("/draft_vocab_size");
  if (V !== null && isInt(doc.mask_token_id) && doc.mask_token_id >= V) bad("/mask_token_id");
}

/**
 * Validate a config.json document under a profile: schema findings, then semantic findings.
 * Returns {findings: [{code, pointer}], resolved, schemaErrors}. Spec: config.md#CFG-2..CFG-13
 */
function validateConfig(doc, profile) {
  const out = [];
  const validate = validators[profile];
  if (!validate(doc)) mapErrors(validate.errors, profile, "", out);
  const schemaErrors = out.length > 0;
  let resolved = doc;
  if (isObject(doc)) {
    resolved = resolveConfig(doc, out);
    checkRules(doc, resolved, out);
  }
  return { findings: out, resolved, schemaErrors };
}

module.exports = { validateConfig, escapeToken, mapErrors };
