"""The conformance suite through the runner: the reference adapter passes every case, and each
deliberately broken adapter fails at least one case that targets its defect (bowtie's
fauxmplementations: the cases have teeth)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = ROOT / "conformance" / "adapters"
LEVELS = ("schema", "checkpoint", "numerics")


def run_suite(adapter: Path, report: Path, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "specfmt_conformance.cli", "run", "--adapter", f"{sys.executable} {adapter}",
           "--report", str(report), *extra]
    for level in LEVELS:
        cmd += ["--level", level]
    subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return json.loads((report / "report.json").read_text())


@pytest.fixture(scope="module")
def reference_report(tmp_path_factory):
    return run_suite(ADAPTERS / "reference" / "adapter.py", tmp_path_factory.mktemp("reference"))


def test_the_reference_adapter_passes_every_case_of_every_level(reference_report):
    statuses = {r["status"] for r in reference_report["results"]}
    assert statuses == {"pass"}, [r for r in reference_report["results"] if r["status"] != "pass"][:3]
    assert {r["level"] for r in reference_report["results"]} == set(LEVELS)
    assert reference_report["header"]["certifying"] is True


# Each broken adapter, and a case id fragment its defect must be caught by.
BROKEN = {
    "accepts_everything": "required",
    "wrong_error_code": "required",
    "ignores_profile": "",
    "drops_warnings": "",
    "header_offsets_blind": "offsets",
    "always_accepts": "verify-",
    "ignores_d2t": "eagle3",
    "off_by_one_accepted": "verify-",
    "late_features": "generate.accept",
    "gqa_head_mapping": "gqa",
    "mtp_pre_norm": "mtp-post-norm",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_adapter_fails_a_case_that_targets_its_defect(name, tmp_path):
    report = run_suite(ADAPTERS / "broken" / f"{name}.py", tmp_path)
    failed = [r["id"] for r in report["results"] if r["status"] == "fail"]
    assert failed, f"{name} passed every case"
    assert any(BROKEN[name] in case_id for case_id in failed), failed[:5]
    assert report["header"]["certifying"] is False
