"""The generated conformance pages of the docs site: the adapter protocol reference (from
conformance/meta/protocol/), the tolerance policy (from the numerics cases) and the results (from every
committed conformance/results/*/report.json). Called through gen_docs.pages()."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import gen_spec

PROTOCOL_ORDER = ["hello", "validate", "load", "run", "unload", "stop", "error"]
STATUSES = ["pass", "fail", "skip", "xfail", "xpass", "error", "crash", "not-applicable"]
LISTED = {"fail", "skip", "xfail", "xpass", "error", "crash"}  # statuses whose cases the results page lists


def cell(text: str) -> str:
    """A table cell for Python-Markdown: pipes escaped outside code spans (inside one, an escape would show)."""
    parts = str(text).replace("\n", " ").split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def protocol_constraints(prop: dict) -> str:
    parts = [gen_spec.constraints(prop)]
    if "minLength" in prop:
        parts.append(f"length >= {prop['minLength']}")
    if prop.get("uniqueItems"):
        parts.append("unique items")
    if "pattern" in prop.get("not", {}):
        parts.append(f"does not match `{prop['not']['pattern']}`")
    if prop.get("additionalProperties") is False and "properties" in prop:
        parts.append("no other fields")
    return "; ".join(p for p in parts if p)


def message_rows(node: dict, prefix: str = "") -> list[str]:
    """One row per field of an object schema, nested objects and array items flattened into JSON Pointers."""
    rows = []
    required = set(node.get("required", []))
    for key, prop in node.get("properties", {}).items():
        path = f"{prefix}/{key}"
        rows.append(f"| `{path}` | {cell(gen_spec.type_text(prop))} | {'yes' if key in required else 'no'} | "
                    f"{cell(protocol_constraints(prop))} | {cell(prop.get('description', ''))} |")
        if "properties" in prop:
            rows += message_rows(prop, path)
        if isinstance(prop.get("items"), dict) and "properties" in prop["items"]:
            rows += message_rows(prop["items"], f"{path}/0")
    return rows


def message_section(doc: dict, stem: str, stems: dict[str, str]) -> list[str]:
    out = [f"## `{stem}` {{ #{stem} }}", "", f"{doc['title']}. {doc['description']}", "",
           f"Schema: [{stem}.schema.json](meta/protocol/{stem}.schema.json) (`$id` `{doc['$id']}`).", ""]
    forms = doc.get("oneOf", [doc])
    for i, form in enumerate(forms):
        if "$ref" in form:
            target = stems[form["$ref"]]
            out += [f"Or an [`{target}`](#{target}).", ""]
            continue
        if len(forms) > 1:
            out += [f"Form {i + 1}:", ""]
        out += ["| Field | Type | Required | Constraints | Description |", "|---|---|---|---|---|",
                *message_rows(form), ""]
        if form.get("additionalProperties") is False:
            out += ["No other fields are allowed.", ""]
    return out


def protocol_key(stem: str) -> tuple[int, str]:
    command = stem.split("-")[0]
    rank = PROTOCOL_ORDER.index(command) if command in PROTOCOL_ORDER else len(PROTOCOL_ORDER)
    return rank, stem


def protocol_page(root: Path) -> str:
    docs = {p.name.removesuffix(".schema.json"): json.loads(p.read_text(encoding="utf-8"))
            for p in (root / "conformance" / "meta" / "protocol").glob("*.schema.json")}
    stems = {doc["$id"]: stem for stem, doc in docs.items()}
    out = ["# Protocol reference", "",
           "One section per message of the adapter protocol, generated from its JSON Schema. The prose rules "
           "(ordering, timeouts, grading) are in [Writing an adapter](adapters.md) and in `conformance/PROTOCOL.md`. "
           "Each message is one JSON object on one line. Paths are JSON Pointers into the message; array items "
           "are shown at index 0.", ""]
    for stem in sorted(docs, key=protocol_key):
        out += message_section(docs[stem], stem, stems)
    return "\n".join(out)


def numerics_cases(root: Path) -> list[dict]:
    paths = sorted((root / "conformance" / "cases" / "numerics").glob("*/*/case.json"))
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def margin(case: dict) -> tuple[str, float] | None:
    golden = case.get("golden", {})
    for key in ("min_top2_margin", "min_uniform_margin"):
        if key in golden:
            return key, golden[key]
    return None


def tolerance_rows(cases: list[dict]) -> list[str]:
    """One row per (operation, output, comparison): how many cases store it and their smallest margin."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for case in cases:
        for output, rule in case["outputs"].items():
            key = (case["operation"], output, rule["compare"], rule.get("rtol"), rule.get("atol"))
            groups[key].append(case)
    rows = ["| Operation | Output | Comparison | rtol | atol | Cases | Smallest recorded margin |",
            "|---|---|---|---|---|---|---|"]
    for (operation, output, compare, rtol, atol), members in sorted(groups.items(), key=lambda kv: kv[0][:2]):
        margins = [m for m in map(margin, members) if m]
        low = f"{min(v for _, v in margins):.3g} (`{margins[0][0]}`)" if margins else ""
        rows.append(f"| `{operation}` | `{output}` | {compare} | {'' if rtol is None else rtol} | "
                    f"{'' if atol is None else atol} | {len(members)} | {low} |")
    return rows


def tolerances_page(root: Path) -> str:
    cases = numerics_cases(root)
    goldens = sorted({(c["golden"]["computed_in"], c["golden"]["dtype"], c["golden"]["device"])
                      for c in cases if "golden" in c})
    return "\n".join([
        "# Tolerance policy", "",
        "Every tolerance is stored in the case that uses it, never in the runner, and the runner does every "
        "comparison (`conformance/PROTOCOL.md` section 5).", "",
        "## Schema and checkpoint levels", "",
        "Exact. A case passes when the set of `(code, pointer, severity)` of the reported findings, at the "
        "checkpoint level `(code, pointer, severity, file)`, equals the expected set and the verdict `valid` "
        "matches. Messages are never compared.", "",
        "## Numerics level", "",
        "Dtype and shape of every output must match exactly. `exact` requires equal values (token ids, accepted "
        "lengths). `allclose` requires `|actual - expected| <= atol + rtol * |expected|` element-wise, NaN "
        "matching NaN and infinities matching only themselves. Goldens are computed in "
        + ", ".join(f"{c} on {dev} and stored in {d}" for c, d, dev in goldens) + ", so a golden is the exact value "
        "rounded once and does not move with the CPU's kernels; a tolerance covers the float32 error of the "
        "implementation under test alone. The table lists what the committed cases store:",
        "", *tolerance_rows(cases), "",
        "Near ties are refused when the cases are generated, so an exact comparison of token ids is fair: every "
        "compared token has a top-2 logit margin of at least 1e-3 (`min_top2_margin`), and every supplied "
        "uniform of a rejection-sampling case lies at least 1e-3 from its acceptance threshold and from every "
        "step of the CDF it draws from (`min_uniform_margin`). The exceptions sit on a "
        "boundary on purpose and say which in their golden (`exact_boundary`: a tie of u * q and p, a uniform "
        "of 0, a threshold between two float32 values): their values are exact in binary, so every "
        "implementation computes the same comparison, and the boundary is the rule under test. The report "
        "records `max_abs`, `max_rel`, "
        "`mismatch_count`, the first mismatching index and, for token ids, the first divergence, so a "
        "tolerance can be tightened on evidence.", ""])


def summary_rows(report: dict) -> list[str]:
    rows = ["| Level | total | " + " | ".join(STATUSES) + " |", "|---|---|" + "---|" * len(STATUSES)]
    for level, counts in report["summary"].items():
        rows.append(f"| {level} | {counts['total']} | " + " | ".join(str(counts.get(s, 0)) for s in STATUSES) + " |")
    return rows


def implementation_section(name: str, report: dict) -> list[str]:
    head = report["header"]
    impl = head["implementation"]
    listed = [r for r in report["results"] if r["status"] in LISTED]
    out = [f"## {impl['name']} {impl['version']} {{ #{name} }}", "",
           f"Language {impl['language']}; adapter `{head['adapter']}`; suite {head['suite_version']} "
           f"(manifest `{head['manifest_sha256'][:12]}`), format {head['format_version']}, protocol "
           f"{head['protocol_version']}; {head['environment']['dtype']} on {head['environment']['device']}; "
           f"run {head['started']}. Certifying: **{'yes' if head['certifying'] else 'no'}**. "
           f"Report: `conformance/results/{name}/report.json`.", "", *summary_rows(report), ""]
    if not listed:
        return out + ["Every applicable case passed.", ""]
    out += ["| Case | Status | Reason |", "|---|---|---|"]
    out += [f"| `{r['id']}` | {r['status']} | {cell((r.get('detail') or {}).get('summary', ''))} |" for r in listed]
    return out + [""]


def results_page(root: Path) -> str:
    reports = sorted((root / "conformance" / "results").glob("*/report.json"))
    out = ["# Results", "",
           "Every committed report under `conformance/results/`, one section per implementation. Counts are by "
           "level and status; the cases listed are those that did not pass (fail, skip, xfail, xpass, error, "
           "crash) with the runner's reason. A not-applicable case is one the adapter did not declare.", ""]
    for path in reports:
        out += implementation_section(path.parent.name, json.loads(path.read_text(encoding="utf-8")))
    return "\n".join(out)
