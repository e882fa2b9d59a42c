"""The speculators library certified through its conformance adapter (`make interop` only).

What it shows is information about the library, recorded in conformance/results/speculators-0.9.0:
P-EAGLE's parallel pass matches every row; EAGLE-3 and MTP match the first proposal row (the library
has no inference chain to produce the others); DFlash differs because the library replaces the stored
draft embedding with the verifier's. The assertions pin that picture so a change in either side shows.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("speculators")
pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = ROOT / "conformance" / "adapters" / "speculators" / "adapter.py"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    report = tmp_path_factory.mktemp("speculators")
    subprocess.run([sys.executable, "-m", "specfmt_conformance.cli", "run", "--adapter", f"{sys.executable} {ADAPTER}",
                    "--level", "numerics", "--report", str(report)], capture_output=True, text=True, timeout=600)
    return {r["id"]: r for r in json.loads((report / "report.json").read_text())["results"]}


def test_peagle_draft_forward_matches_the_spec_in_every_row(results):
    assert results["num.draft-forward.peagle-k3"]["status"] == "pass"


@pytest.mark.parametrize(("case", "row_width"), [("num.draft-forward.eagle3-k3", 24), ("num.draft-forward.mtp-k3", 64)])
def test_chain_drafts_match_the_spec_in_their_first_row(results, case, row_width):
    result = results[case]
    assert result["status"] == "fail"
    assert result["metrics"]["draft_logits"]["first_mismatch"] == row_width  # row 0 equal, then no counterpart


def test_dflash_differs_because_the_library_swaps_in_the_verifier_embedding(results):
    assert results["num.draft-forward.dflash-k3"]["status"] == "fail"
    assert results["num.draft-forward.dflash-k3"]["metrics"]["draft_logits"]["first_mismatch"] == 0


def test_operations_it_does_not_declare_are_not_applicable(results):
    assert results["num.generate.eagle3-n12-k3"]["status"] == "not-applicable"
