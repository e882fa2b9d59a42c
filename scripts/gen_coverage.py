"""The rule coverage map: every MUST-class rule of spec/ with the conformance cases that a violation of it fails,
or the reason no case can (conformance/coverage.json). Called through gen_docs.pages() for
docs/conformance/coverage.md and through scripts/generate.py --check for `problems()`.

A rule is an anchored paragraph of spec/*.md or spec/algorithms/*.md (`<a id="X"></a>` then `**X.**`); it is
MUST-class when its text says MUST, MUST NOT, SHALL or REQUIRED. A case covers a rule when its `spec` names the
rule's anchor (the generators add the rule of every finding code a case expects), or, for a rule of an algorithm
page, when the case's algorithm is that page's and it expects a finding whose code and field the rule names.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from gen_docs_conformance import cell

REASONS = "conformance/coverage.json"
ANCHOR = re.compile(r'<a id="([^"]+)"></a>')
MUST = re.compile(r"\b(MUST|SHALL|REQUIRED)\b")
HEADER_MEMBERS = ("dtype", "shape", "data_offsets")
SHOWN = 6  # case ids listed per rule before "and N more"


@dataclass
class Rule:
    id: str
    file: str  # repository-relative: spec/layout.md
    text: str
    cases: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"{self.file}#{self.id}"

    @property
    def must(self) -> bool:
        return bool(MUST.search(self.text))

    @property
    def named(self) -> set[str]:
        """Every backticked word of the rule: codes, fields, tensor names."""
        return set(re.findall(r"`([^`\s]+)`", self.text))


def spec_files(root: Path) -> list[Path]:
    return sorted((root / "spec").glob("*.md")) + sorted((root / "spec" / "algorithms").glob("*.md"))


def read_rules(root: Path) -> list[Rule]:
    """Every anchored rule, its text running to the next anchor or heading."""
    rules = []
    for path in spec_files(root):
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = ANCHOR.fullmatch(line.strip())
            if not m:
                continue
            end = next((j for j in range(i + 1, len(lines)) if ANCHOR.match(lines[j]) or lines[j].startswith("#")),
                       len(lines))
            rules.append(Rule(m.group(1), path.relative_to(root).as_posix(), "\n".join(lines[i + 1:end]).strip()))
    return rules


def read_cases(root: Path) -> list[dict]:
    """Every case of the manifest: id, algorithm, spec anchors and expected (code, pointer) findings."""
    suite = root / "conformance"
    manifest = json.loads((suite / "manifest.json").read_text(encoding="utf-8"))
    groups = {}
    for path in {c["path"] for c in manifest["cases"] if c["level"] == "schema"}:
        for g in json.loads((suite / path).read_text(encoding="utf-8")):
            for t in g["tests"]:
                groups[f"{g['id']}/{t['id']}"] = (g["spec"] + t.get("spec", []), t["findings"])
    cases = []
    for entry in manifest["cases"]:
        if entry["level"] == "schema":
            spec, findings = groups[entry["id"]]
        else:
            doc = json.loads((suite / entry["path"] / "case.json").read_text(encoding="utf-8"))
            spec, findings = doc["spec"], doc.get("findings", [])
        cases.append({"id": entry["id"], "algorithm": entry.get("algorithm"), "spec": spec,
                      "findings": [(f["code"], f["pointer"]) for f in findings]})
    return cases


def names_finding(rule: Rule, code: str, ptr: str) -> bool:
    """The rule names the finding's code and its pointer: as written, or as the dotted field path
    (`/transformer_layer_config/model_type` as `transformer_layer_config.model_type`, list indices left out)."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in ptr.split("/")[1:]]
    if len(tokens) == 2 and tokens[1] in HEADER_MEMBERS:  # /<tensor>/shape in a safetensors header
        tokens = tokens[:1]
    dotted = ".".join(t for t in tokens if not t.isdigit())
    return code in rule.named and bool({ptr, dotted} & rule.named)


def covers(rule: Rule, case: dict) -> bool:
    if rule.anchor in case["spec"]:
        return True
    page = f"spec/algorithms/{case['algorithm']}.md"
    return rule.file == page and any(names_finding(rule, code, ptr) for code, ptr in case["findings"])


def read_reasons(root: Path) -> dict:
    return json.loads((root / REASONS).read_text(encoding="utf-8"))


def coverage(root: Path) -> list[Rule]:
    """The MUST-class rules, each with the ids of the cases that cover it."""
    rules = [r for r in read_rules(root) if r.must]
    cases = read_cases(root)
    for rule in rules:
        rule.cases = [c["id"] for c in cases if covers(rule, c)]
    return rules


def problems(root: Path) -> list[str]:
    """Why the map is incomplete: a MUST-class rule without a case, a reason or a pending entry; a reason or
    pending entry for a rule that is not MUST-class; a reason for a rule that has cases; a case anchor that names
    no rule; a rule id declared twice. Empty in a tree without the suite (a partial copy)."""
    if not (root / "conformance" / "manifest.json").is_file():
        return []
    if not (root / REASONS).is_file():
        return [f"{REASONS}: missing"]
    every = read_rules(root)
    ids = [r.id for r in every]
    out = [f"spec: rule id {i} is anchored more than once" for i in sorted({i for i in ids if ids.count(i) > 1})]
    rules = {r.id: r for r in coverage(root)}
    declared = read_reasons(root)
    reasons, pending = declared["reasons"], declared.get("pending", {})
    for kind, entries in (("reason", reasons), ("pending entry", pending)):
        out += [f"{REASONS}: {kind} for {i}, which is no MUST-class rule of spec/" for i in entries if i not in rules]
    out += [f"{REASONS}: {i} has cases ({len(rules[i].cases)}) and a reason; drop the reason"
            for i in reasons if i in rules and rules[i].cases]
    out += [f"{r.anchor}: MUST-class rule with no case and no reason in {REASONS}"
            for r in rules.values() if not r.cases and r.id not in reasons and r.id not in pending]
    anchors = {r.anchor for r in every}
    named = sorted({a for c in read_cases(root) for a in c["spec"] if "#" in a and a not in anchors})
    return out + [f"conformance cases: spec anchor {a} names no rule of spec/" for a in named]


def stale_pending(root: Path) -> list[str]:
    """Pending entries whose rule now has cases: the lead removes them (a note, not a failure)."""
    if not (root / REASONS).is_file() or not (root / "conformance" / "manifest.json").is_file():
        return []
    rules = {r.id: r for r in coverage(root)}
    return [i for i in read_reasons(root).get("pending", {}) if i in rules and rules[i].cases]


def first_sentence(text: str) -> str:
    """The rule's first sentence, without its bold id or links (a title of one or two words, such as "Dtype.",
    takes the next sentence with it); a period inside a code span does not end a sentence, and a code block does."""
    paragraph = re.split(r"\n\n|\n```", text)[0]
    body = re.sub(r"^\*\*`?[^*`]+`?\.\*\*\s*", "", paragraph).replace("\n", " ")
    body = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", body)  # a link relative to the spec page
    ticks, start = 0, 0
    for i, ch in enumerate(body):
        ticks += ch == "`"
        if ch == "." and ticks % 2 == 0 and (i + 1 == len(body) or body[i + 1] == " "):
            if len(body[start:i].split()) > 2:  # not a title of one or two words
                return body[:i + 1]
            start = i + 1
    return body


def cases_cell(ids: list[str]) -> str:
    shown = ", ".join(f"`{i}`" for i in ids[:SHOWN])
    more = f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
    return f"**{len(ids)}**: {shown}{more}"


def rule_row(rule: Rule, reasons: dict, pending: dict) -> str:
    link = f"[{rule.id}](../{rule.file}#{rule.id})"  # docs/spec/ holds the spec pages under the same names
    if rule.cases:
        status = cases_cell(rule.cases)
    elif rule.id in reasons:
        status = f"no case: {reasons[rule.id]}"
    elif rule.id in pending:
        status = f"**pending**: {pending[rule.id]}"
    else:
        status = "**no case and no reason**"
    return f"| {link} | {cell(first_sentence(rule.text))} | {cell(status)} |"


def coverage_page(root: Path) -> str:
    rules = coverage(root)
    declared = read_reasons(root)
    reasons, pending = declared["reasons"], declared.get("pending", {})
    by_file: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_file[rule.file].append(rule)
    covered = sum(1 for r in rules if r.cases)
    explained = sum(1 for r in rules if not r.cases and r.id in reasons)
    waiting = sum(1 for r in rules if not r.cases and r.id in pending)
    out = ["# Rule coverage", "",
           f"**{len(rules)}** MUST-class rules (a numbered or anchored rule of `spec/` whose text says MUST, MUST NOT, "
           f"SHALL or REQUIRED): **{covered}** with cases, **{explained}** with a reason no case can test them"
           + (f", **{waiting}** pending a case" if waiting else "") + ".", "",
           "A case covers a rule when its `spec` list names the rule's anchor (every case also names the rule of each "
           "finding code it expects), or, for a rule of an algorithm page, when the case is of that algorithm and "
           "expects a finding whose code and field the rule names. A violation of the rule then fails the case. A "
           "schema-level group names its rules once for all its tests, so each of its tests is listed under each. "
           f"The reasons are declared in `{REASONS}`; `make check` fails when a MUST-class rule has neither a case "
           "nor a reason.", ""]
    for file, members in by_file.items():
        out += [f"## {file.removeprefix('spec/')}", "", "| Rule | First sentence | Cases |", "|---|---|---|",
                *(rule_row(r, reasons, pending) for r in members), ""]
    return "\n".join(out)
