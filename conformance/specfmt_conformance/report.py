"""The three report files: report.json (authoritative, meta/report.schema.json), report.md for
people and PR comments, junit.xml for CI panels."""

from __future__ import annotations

import json
import platform
import xml.etree.ElementTree as ET
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from specfmt_conformance import FAILING, LEVELS, PROTOCOL_VERSION, RUNNER_VERSION, STATUSES
from specfmt_conformance.runner import Result
from specfmt_conformance.session import LOAD_OPTIONS
from specfmt_conformance.suite import Suite


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def environment() -> dict:
    return {"os": platform.platform(), "machine": platform.machine(),
            "python": platform.python_version(), **LOAD_OPTIONS}


def certifying(results: list[Result], expectation_count: int, filtered: bool = False) -> bool:
    """An unfiltered run (a --case or --level run tests only part of what it would certify), no expectation
    entries, at least one applicable case, and every applicable case passed."""
    applicable = [r for r in results if r.status != "not-applicable"]
    return (not filtered and expectation_count == 0 and bool(applicable)
            and all(r.status == "pass" for r in applicable))


def filtered_note(header: dict) -> str:
    """` (filtered run: N of M cases)` for a run whose filters left cases out, else ``."""
    selection = header["selection"]
    selected, total = selection.get("selected"), selection.get("suite_cases")
    if selected is None or total is None or selected >= total:
        return ""
    return f" (filtered run: {selected} of {total} cases)"


def summarize(results: list[Result]) -> dict:
    summary = {}
    for level in LEVELS:
        mine = [r for r in results if r.level == level]
        if mine:
            summary[level] = {"total": len(mine), **{s: sum(r.status == s for r in mine) for s in STATUSES}}
    return summary


def build_report(suite: Suite, hello: dict, run: dict, results: list[Result]) -> dict:
    """`run` holds started, adapter, selection and expectations (file and entry count). A run whose filters
    selected fewer cases than the suite holds is not certifying."""
    filtered = len(results) < len(suite.cases)
    header = {
        "suite_version": suite.suite_version,
        "format_version": suite.format_version,
        "manifest_sha256": suite.manifest_sha256,
        "runner_version": RUNNER_VERSION,
        "protocol_version": PROTOCOL_VERSION,
        "implementation": hello.get("implementation", {}),
        "supports": hello.get("supports", {}),
        "environment": environment(),
        "certifying": certifying(results, run["expectations"]["entries"], filtered),
        **run,
        "selection": {**run["selection"], "selected": len(results), "suite_cases": len(suite.cases)},
    }
    places = ((str(suite.root), SUITE_MARK), (str(Path.cwd()), CWD_MARK))
    return {"header": header, "results": [marked(asdict(r), places) for r in results],
            "summary": summarize(results)}


SUITE_MARK, CWD_MARK = "<suite>", "<cwd>"


def marked(value, places: tuple[tuple[str, str], ...]):
    """`value` with every mention of the suite's directory in its strings written as `<suite>`, then of the
    runner's working directory as `<cwd>`: what an adapter printed names the files the runner passed it (and, in a
    traceback, its own installation), and a report is read on other machines, where those directories mean nothing
    (and name the machine it ran on)."""
    if isinstance(value, str):
        for path, mark in places:
            value = value.replace(path, mark)
        return value
    if isinstance(value, dict):
        return {k: marked(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [marked(v, places) for v in value]
    return value


def failed(report: dict) -> bool:
    return any(r["status"] in FAILING for r in report["results"])


def _detail_lines(result: dict) -> list[str]:
    detail = result["detail"] or {}
    lines = [f"- {detail.get('summary', '')}"]
    for key, label in (("missing", "missing"), ("unexpected", "unexpected")):
        lines += [f"  - {label}: `{f['code']}` at `{f['pointer'] or '(root)'}` ({f['severity']})"
                  + (f" in `{f['file']}`" if f.get("file") else "") for f in detail.get(key, [])]
    if detail.get("unexpected_cut"):
        lines.append(f"  - and {detail['unexpected_cut']} more unexpected finding(s), not listed")
    for name, m in result["metrics"].items():
        facts = [f"{k} {m[k]}" for k in ("first_mismatch", "max_abs", "max_rel", "mismatch_count",
                                          "token_divergence") if m.get(k) is not None]
        if facts:
            lines.append(f"  - `{name}`: " + ", ".join(facts))
    return lines


def declared(supports: dict) -> str:
    """What a certifying run certifies: the declared levels, profiles, operations and algorithms."""
    parts = [f"{key} {', '.join(supports[key]) or 'none'}" for key in ("levels", "profiles", "operations")
             if key in supports]
    parts.append(f"algorithms {', '.join(supports['algorithms'])}" if "algorithms" in supports else "every algorithm")
    return "; ".join(parts)


def to_markdown(report: dict) -> str:
    h = report["header"]
    impl = h["implementation"]
    lines = [f"# specfmt conformance: {impl.get('name', '?')} {impl.get('version', '?')}", "",
             f"Suite {h['suite_version']} (format {h['format_version']}, manifest sha256 `{h['manifest_sha256']}`), "
             f"runner {h['runner_version']}, protocol {h['protocol_version']}, started {h['started']}.", "",
             f"**Certifying: {'yes' if h['certifying'] else 'no'}**{filtered_note(h)} for {declared(h['supports'])}.",
             "",
             "| level | total | " + " | ".join(STATUSES) + " |", "|---" * (len(STATUSES) + 2) + "|"]
    for level, counts in report["summary"].items():
        lines.append(f"| {level} | {counts['total']} | " + " | ".join(str(counts[s]) for s in STATUSES) + " |")
    bad = [r for r in report["results"] if r["status"] in FAILING]
    if bad:
        lines += ["", "## Failing cases", ""]
        for result in bad:
            lines += [f"### `{result['id']}` ({result['level']}): {result['status']}", ""]
            lines += _detail_lines(result) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _testcase(suite_el: ET.Element, result: dict, classname: str) -> None:
    case = ET.SubElement(suite_el, "testcase", classname=classname, name=result["id"],
                         time=f"{result['duration_s']:.6f}")
    summary = (result["detail"] or {}).get("summary", "")
    body = json.dumps({"detail": result["detail"], "metrics": result["metrics"]}, indent=2)
    if result["status"] in ("fail", "xpass"):
        ET.SubElement(case, "failure", message=summary, type=result["status"]).text = body
    elif result["status"] in ("error", "crash"):
        ET.SubElement(case, "error", message=summary, type=result["status"]).text = body
    elif result["status"] in ("skip", "xfail", "not-applicable"):
        ET.SubElement(case, "skipped", message=f"{result['status']}: {summary}")
    if result["stderr"]:
        ET.SubElement(case, "system-err").text = result["stderr"]


def to_junit(report: dict) -> bytes:
    h = report["header"]
    root = ET.Element("testsuites", name="specfmt-conformance")
    for level in LEVELS:
        mine = [r for r in report["results"] if r["level"] == level]
        if not mine:
            continue
        count = {s: sum(r["status"] == s for r in mine) for s in STATUSES}
        suite_el = ET.SubElement(root, "testsuite", name=level, tests=str(len(mine)),
                                 failures=str(count["fail"] + count["xpass"]),
                                 errors=str(count["error"] + count["crash"]),
                                 skipped=str(count["skip"] + count["xfail"] + count["not-applicable"]),
                                 time=f"{sum(r['duration_s'] for r in mine):.6f}", timestamp=h["started"])
        props = ET.SubElement(suite_el, "properties")
        for name in ("suite_version", "format_version", "manifest_sha256", "runner_version"):
            ET.SubElement(props, "property", name=name, value=str(h[name]))
        for result in mine:
            _testcase(suite_el, result, f"{level}.{h['format_version']}")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_reports(directory: Path, report: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (directory / "report.md").write_text(to_markdown(report), encoding="utf-8")
    (directory / "junit.xml").write_bytes(to_junit(report))


def console_lines(report: dict) -> list[str]:
    """The short stdout summary: each failing case, then counts per level."""
    lines = [f"{r['status'].upper():<6} {r['id']}: {(r['detail'] or {}).get('summary', '')}"
             for r in report["results"] if r["status"] in FAILING]
    for level, counts in report["summary"].items():
        nonzero = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
        lines.append(f"{level}: {counts['total']} case(s): {nonzero}")
    lines.append(f"certifying: {'yes' if report['header']['certifying'] else 'no'}{filtered_note(report['header'])}")
    return lines
