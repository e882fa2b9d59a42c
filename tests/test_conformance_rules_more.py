"""The cases of conformance/generators/rules_more.py and rules_vrf.py have teeth: each broken adapter of a rule
they newly test fails exactly that rule's cases among the cases of the operation it damages (CONTRIBUTING.md
section 5)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
BROKEN = ROOT / "conformance" / "adapters" / "broken"
NGRAM = ("num.propose.ngram*", "num.generate.*ngram*")
VERIFY = ("num.process-logits.*", "num.verify-top-k.*")
REFUSALS = ("num.refuse.*", "num.*.rules-more.*")

# broken adapter -> (the cases it is run on, as --case patterns; the ones among them it must fail)
EXACT = {
    "ngram_ignores_n_min": (NGRAM, {"num.propose.ngram.shorter-than-n-min-k2",
                                    "num.propose.ngram.no-length-from-n-min-k2"}),
    "ngram_no_overlap": (NGRAM, {"num.propose.ngram.overlapping-match-k4"}),
    "ngram_latest_match": (NGRAM, {"num.propose.ngram.longest-first-earliest-k3", "num.propose.ngram-k3"}),
    "top_p_keeps_boundary": (VERIFY, {"num.process-logits.top-p-exact-boundary"}),
    "top_p_before_top_k": (VERIFY, {"num.process-logits.top-k-before-top-p"}),
    "rank_by_distinct_values": (VERIFY, {"num.verify-top-k.rank-counts-tied-tokens"}),
    "loads_invalid_checkpoints": (REFUSALS, {"num.refuse.eagle3-fc-width", "num.refuse.eagle3-lm-head-missing",
                                             "num.refuse.medusa-block-shape"}),
    "layer_types_unchecked": (REFUSALS, {"num.refuse.dflash-layer-types-count", "num.refuse.dflash-layer-types-unknown",
                                         "num.refuse.dflash-sliding-without-window"}),
    "eagle_layer_unchecked": (REFUSALS, {"num.refuse.eagle-two-layers", "num.refuse.eagle-mistral-layer"}),
    "verifier_embedding_any_width": (REFUSALS, {"num.refuse.eagle3-no-embedding-24-on-16"}),
    "anchor_slot_never_predicts": (REFUSALS, {"num.propose.rules-more.dflash-anchor-k4",
                                              "num.draft-forward.rules-more.dflash-anchor-k4",
                                              "num.propose.rules-more.dflash-block-1-anchor-k1",
                                              "num.draft-forward.rules-more.dflash-block-1-anchor-k1"}),
    "eagle3_embedding_from_lm_head": (REFUSALS, {"num.propose.rules-more.eagle3-verifier-embedding-k3",
                                                 "num.draft-forward.rules-more.eagle3-verifier-embedding-k3"}),
    "binding_unchecked": (REFUSALS, {"num.refuse.eagle-hidden-24", "num.refuse.independent-vocab-128-unbound",
                                     "num.refuse.eagle3-bound-to-vocab-128", "num.refuse.eagle3-bound-to-hidden-24",
                                     "num.refuse.eagle3-aux-id-7"}),
}


def failed_cases(adapter: str, patterns: tuple[str, ...], report: Path,
                 allowed: frozenset[str] = frozenset({"pass", "fail", "error"})) -> tuple[set[str], set[str]]:
    """(ids of the cases run, ids of those that did not pass); every status is one of `allowed` (by default an
    error too: a refused running draft)."""
    cmd = [sys.executable, "-m", "specfmt_conformance.cli", "run", "--level", "numerics", "--report", str(report),
           "--adapter", f"{sys.executable} {BROKEN / f'{adapter}.py'}"]
    for pattern in patterns:
        cmd += ["--case", pattern]
    subprocess.run(cmd, capture_output=True, timeout=300)
    results = json.loads((report / "report.json").read_text())["results"]
    assert {r["status"] for r in results} <= allowed, results
    return {r["id"] for r in results}, {r["id"] for r in results if r["status"] != "pass"}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_a_broken_adapter_of_a_newly_tested_rule_fails_exactly_its_cases(name, tmp_path):
    patterns, expected = EXACT[name]
    ran, failed = failed_cases(name, patterns, tmp_path)
    assert expected <= ran
    assert failed == expected


def test_each_ngram_case_is_its_page_example_relabelled_one_to_one():
    from conformance.generators.rules_more import NGRAM_EXAMPLES
    cases = ROOT / "conformance" / "cases" / "numerics" / "1.0"
    for name, (k, n_min, n_max, symbols, proposal, _) in NGRAM_EXAMPLES.items():
        case = json.loads((cases / f"num.propose.ngram.{name}-k{k}" / "case.json").read_text())
        assert case["params"] == {"k": k}
        config = json.loads((ROOT / "conformance" / case["checkpoint"] / "config.json").read_text())
        assert (config["prompt_lookup_min"], config["prompt_lookup_max"]) == (n_min, n_max)
        assert case["golden"]["symbols"] == symbols
        tokens = load_file(cases / case["id"] / "inputs.safetensors")["token_ids"].tolist()
        relabel = dict(zip(symbols, tokens, strict=True))
        assert len(set(relabel.values())) == len(relabel)  # distinct symbols, distinct tokens
        assert [relabel[s] for s in symbols] == tokens  # equal symbols, equal tokens
        drafted = load_file(cases / case["id"] / "expected.safetensors")["draft_tokens"].tolist()
        assert drafted == [relabel[s] for s in proposal]
