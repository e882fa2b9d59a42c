"""The runner against hostile adapters: a case answered with a million unexpected findings is cut to the cap
(the report says how many were cut) and finishes in seconds, and a checkpoint finding filed under another file
than the case's fails the case (the runner grades `file`; issue 23 item 5)."""

import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

import jsonschema

from specfmt_conformance.cli import main
from specfmt_conformance.compare import UNEXPECTED_CAP, compare_findings

ROOT = Path(__file__).resolve().parent.parent
MISBEHAVING = ROOT / "conformance" / "adapters" / "misbehaving"
REPORT_SCHEMA = ROOT / "conformance" / "meta" / "report.schema.json"
SHARD = "model-00002-of-00002.safetensors"
OFFSETS = {"code": "header.offsets", "pointer": "/t/data_offsets", "severity": "error", "file": SHARD}


def write_json(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def build_suite(root: Path) -> Path:
    """One schema case that triggers the flood and one checkpoint case that expects OFFSETS in SHARD."""
    group = {"id": "mini", "description": "d", "since": "1.0", "spec": [], "profile": "compat",
             "tests": [{"id": "flooded", "description": "d", "data": {"x-misbehave": True}, "valid": True,
                        "findings": []}]}
    write_json(root / "cases/schema/1.0/mini.json", [group])
    case = root / "cases/checkpoint/1.0/ckpt-shard"
    write_json(case / "case.json", {"id": "ckpt-shard", "description": "d", "since": "1.0", "spec": [],
                                    "profile": "compat", "checkpoint": "checkpoint", "valid": False,
                                    "findings": [OFFSETS]})
    write_json(case / "checkpoint/config.json", {})
    cases = [{"id": "mini/flooded", "level": "schema", "path": "cases/schema/1.0/mini.json", "since": "1.0"},
             {"id": "ckpt-shard", "level": "checkpoint", "path": "cases/checkpoint/1.0/ckpt-shard", "since": "1.0"}]
    files = {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(root.rglob("*")) if p.is_file()}
    write_json(root / "manifest.json", {"suite_version": "1.0.0", "format_version": "1.0", "cases": cases,
                                        "files": files})
    return root


def run(tmp_path: Path, adapter: str, *args: str) -> dict:
    """The results by case id, from a report that validates against meta/report.schema.json."""
    command = shlex.join([sys.executable, str(MISBEHAVING / f"{adapter}.py"), *args])
    main(["run", "--suite", str(build_suite(tmp_path / "suite")), "--adapter", command,
          "--report", str(tmp_path / "r")])
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    jsonschema.Draft202012Validator(json.loads(REPORT_SCHEMA.read_text())).validate(report)
    return {r["id"]: r for r in report["results"]}


def test_a_million_unexpected_findings_are_cut_to_the_cap_and_the_run_takes_seconds(tmp_path):
    start = time.monotonic()
    flooded = run(tmp_path, "flood", "x-misbehave", "1000000")["mini/flooded"]
    elapsed = time.monotonic() - start
    assert flooded["status"] == "fail"
    assert len(flooded["detail"]["unexpected"]) == UNEXPECTED_CAP
    assert flooded["detail"]["unexpected_cut"] == 1_000_000 - UNEXPECTED_CAP
    assert flooded["detail"]["summary"] == f"0 missing, 1000000 unexpected finding(s), {1_000_000 - 100} not listed"
    assert sum(p.stat().st_size for p in (tmp_path / "r").iterdir()) < 200_000
    assert "999900 more unexpected finding(s)" in (tmp_path / "r" / "report.md").read_text()
    assert elapsed < 60, f"{elapsed:.1f} s (34 s and 435 MB of reports before the cap, on two busy cores)"


def test_the_unexpected_findings_listed_are_the_first_in_order_and_keep_only_graded_fields():
    actual = [{"code": "a.b", "pointer": f"/{i:03d}", "severity": "error", "message": "x" * 1000}
              for i in range(500, 0, -1)]
    status, detail = compare_findings([], actual, True)
    assert status == "fail" and detail["unexpected_cut"] == 400
    assert [f["pointer"] for f in detail["unexpected"]] == [f"/{i:03d}" for i in range(1, 101)]
    assert all(set(f) == {"code", "pointer", "severity"} for f in detail["unexpected"])


def test_a_few_unexpected_findings_are_all_listed_and_nothing_is_counted_as_cut():
    status, detail = compare_findings([], [{"code": "a.b", "pointer": "", "severity": "warning"}], True)
    assert status == "fail" and len(detail["unexpected"]) == 1 and "unexpected_cut" not in detail


def test_a_checkpoint_finding_in_the_file_the_case_names_passes(tmp_path):
    assert run(tmp_path, "files_under", SHARD)["ckpt-shard"]["status"] == "pass"


def test_a_checkpoint_finding_filed_under_another_shard_fails_its_case(tmp_path):
    result = run(tmp_path, "files_under", "model-00001-of-00002.safetensors")["ckpt-shard"]
    assert result["status"] == "fail"
    assert result["detail"]["missing"] == [OFFSETS]
    assert result["detail"]["unexpected"] == [{**OFFSETS, "file": "model-00001-of-00002.safetensors"}]


def test_a_checkpoint_finding_without_a_file_is_a_protocol_error(tmp_path):
    result = run(tmp_path, "files_under")["ckpt-shard"]
    assert (result["status"], result["detail"]["reason"]) == ("error", "protocol")
    assert "file of every finding" in result["detail"]["summary"]


def test_schema_findings_are_graded_without_their_file():
    expected = [{"code": "config.required", "pointer": "/a", "severity": "error"}]
    actual = [{**expected[0], "file": "config.json"}]
    assert compare_findings(expected, actual, False) == ("pass", None)


def test_a_report_names_the_suite_and_working_directories_by_marks_not_by_this_machine_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from specfmt_conformance.report import build_report
    from specfmt_conformance.runner import Result
    from specfmt_conformance.suite import Suite

    suite = Suite(build_suite(tmp_path / "suite"))
    fixture = f"{suite.root}/cases/checkpoint/1.0/ckpt-shard/checkpoint/config.json"
    result = Result("ckpt-shard", "checkpoint", "error", 0.1, {"summary": f"adapter error: {fixture} unreadable",
                    "findings": [{"file": fixture}]}, {}, f"refused: {fixture}\n  File \"{Path.cwd()}/a.py\"\n")
    run = {"started": "now", "adapter": "a", "selection": {}, "expectations": {"file": None, "entries": 0}}
    row = build_report(suite, {}, run, [result])["results"][0]
    mine = "<suite>/cases/checkpoint/1.0/ckpt-shard/checkpoint/config.json"
    assert row["stderr"] == f"refused: {mine}\n  File \"<cwd>/a.py\"\n"
    assert row["detail"] == {"summary": f"adapter error: {mine} unreadable", "findings": [{"file": mine}]}
    assert str(tmp_path) not in json.dumps(row)
