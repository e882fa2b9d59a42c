"""The rules issue 23 found untested (item 3) have teeth: a broken adapter that violates one of them fails exactly
the cases written for it, at every level, and the reference passes them (tests/test_conformance_adapters.py)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "conformance" / "adapters" / "broken"
VERIFIER = "num.verifier-forward.verifier-"
DFLASH_HEAD = "num.propose.rules.dflash-verifier-head-k3"

# Each broken adapter of a rule of issue 23, item 3, and exactly the cases it must fail.
EXACT = {
    "equality_strictly_typed": {"ckpt.layout.expr-bool-equals-int"},  # LAY-2
    "len_of_any_sized": {"ckpt.layout.expr-len-of-string", "ckpt.layout.expr-len-of-object"},  # LAY-2
    "k_clamped": {"num.refuse.medusa-k4", "num.refuse.mlp-speculator-k4", "num.refuse.dflash-k4",
                  "num.refuse.dflash-anchor-k5"},  # the last from the coverage map's rules_more.py
    "rope_scaling_ignored": {f"{VERIFIER}llama3-rope-parameters.aux-1-2", f"{VERIFIER}llama3-rope-scaling.aux-1-2",
                             "num.refuse.verifier-rope-yarn"},  # VFR-9
    "rope_parameters_only": {f"{VERIFIER}llama3-rope-scaling.aux-1-2", "num.refuse.verifier-rope-yarn"},  # VFR-9
    "tied_head_read_from_file": {f"{VERIFIER}tied-stored-lm-head.aux-1-2",
                                 "num.propose.rules.dflash-tied-verifier-head-k3"},  # VFR-2
    "any_verifier_family": {"num.refuse.verifier-mistral", "num.refuse.verifier-gelu"},  # VFR-1
    "uneven_heads_accepted": {"num.refuse.verifier-3-heads-on-2"},  # VFR-7
    "verifier_sliding_window": {f"{VERIFIER}sliding-window-named.aux-1-2"},  # VFR-7
    # VFR-7's scale; the independent draft is a causal LM run by the verifier's own code (VFR-10)
    "scale_by_hidden_per_head": {f"{VERIFIER}head-dim-4.aux-1-2", "num.draft-forward.flags.independent-qwen3-bias-k3"},
    "dflash_embedding_as_head": {DFLASH_HEAD, DFLASH_HEAD.replace("propose", "draft-forward")},  # ALG-DFLASH-5
    "dflash_rejects_nothing": {"num.refuse.dflash-block-1", "num.refuse.dflash-head-of-24-wide-verifier"},
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_a_broken_adapter_of_a_newly_tested_rule_fails_exactly_its_cases(name, tmp_path):
    subprocess.run([sys.executable, "-m", "specfmt_conformance.cli", "run", "--adapter",
                    f"{sys.executable} {BROKEN / f'{name}.py'}", "--report", str(tmp_path)],
                   capture_output=True, timeout=600)
    results = json.loads((tmp_path / "report.json").read_text())["results"]
    assert {r["id"] for r in results if r["status"] != "pass"} == EXACT[name]
    assert {r["status"] for r in results if r["id"] in EXACT[name]} == {"fail"}


def test_every_refusal_case_names_a_code_that_protocol_section_3_4_declares():
    """Each refusal case (PROTOCOL.md 3.4) has no expected outputs and a code of 3.4's table of codes."""
    protocol = (ROOT / "conformance/PROTOCOL.md").read_text(encoding="utf-8")
    table = protocol[protocol.index("### 3.4 Refusals"):protocol.index("## 4. ")]
    declared = set(re.findall(r"^\| `(refused\.[a-z0-9_]+)` \|", table, flags=re.M))
    paths = sorted((ROOT / "conformance/cases/numerics").glob("*/num.refuse.*/case.json"))
    cases = [json.loads(path.read_text()) for path in paths]
    assert {"refused.k_above_limit", "refused.verifier", "refused.draft"} <= declared
    assert [(c["id"], c["refusal"]) for c in cases if c["refusal"] not in declared] == []
    assert all(c["expected"] is None and c["outputs"] == {} for c in cases)
