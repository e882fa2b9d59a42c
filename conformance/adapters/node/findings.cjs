// Severity, folding, deduplication and sorting of findings. Spec: index.md#GEN-2, GEN-4, GEN-5
"use strict";

const { codes, severities } = require("./schemas.cjs");

/** Give each finding its severity under the profile, fold and deduplicate. */
function finish(raw, profile) {
  const strict = profile === "strict";
  const required = new Set(raw.filter((f) => f.code === "config.required").map((f) => `${f.file || ""}\u0000${f.pointer}`));
  const seen = new Set();
  const out = [];
  for (const f of raw) {
    const kind = codes[f.code]?.kind;
    const severity = severities[kind]?.[profile] ?? "error";
    // GEN-4: under strict, a hazard about a field the schema reports as required is not reported again.
    if (kind === "hazard" && strict && required.has(`${f.file || ""}\u0000${f.pointer}`)) continue;
    const key = `${f.file || ""}\u0000${f.pointer}\u0000${f.code}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ ...f, severity });
  }
  out.sort((a, b) => (a.file || "").localeCompare(b.file || "") || a.pointer.localeCompare(b.pointer) || a.code.localeCompare(b.code));
  return out;
}

module.exports = { finish };
