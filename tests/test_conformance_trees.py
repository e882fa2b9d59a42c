"""The tree cases of conformance/generators/num_trees.py have teeth: each broken adapter of a tree rule fails
exactly its cases among the tree cases, and a tree that is a chain repeats the chain cases' goldens
(spec/trees.md#TRE-10; CONTRIBUTING.md section 5)."""

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from test_conformance_rules_more import failed_cases

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "conformance" / "cases" / "numerics" / "1.0"
TREES = ("num.tree-attention.*", "num.propose-tree.*", "num.verify-tree-*", "num.generate-tree.*", "num.refuse.tree-*")
GENERATED = {"num.generate-tree.eagle3-static-8-2-2-n12", "num.generate-tree.medusa-static-8-2-2-n12"}
ATTENTION = {"num.tree-attention.shuffled-paths-n3", "num.tree-attention.full-2-2-n2"}

# broken adapter -> the tree cases it must fail (every other tree case it must pass)
EXACT = {
    "tree_causal_mask": ATTENTION | GENERATED | {"num.generate-tree.eagle-dynamic-10-4-3-n12"},
    "tree_index_positions": ATTENTION | GENERATED,
    "tree_first_child_only": GENERATED | {"num.generate-tree.eagle-dynamic-10-4-3-n12",
                                          "num.verify-tree-greedy.second-child-accepted",
                                          "num.verify-tree-greedy.match-under-rejected-node"},
    "tree_match_without_ancestors": {"num.generate-tree.eagle3-static-8-2-2-n12",
                                     "num.generate-tree.eagle-dynamic-10-4-3-n12",
                                     "num.verify-tree-greedy.match-under-rejected-node",
                                     "num.verify-tree-greedy.none-accepted"},
    "tree_paths_in_given_order": {"num.tree-attention.shuffled-paths-n3"},
    "tree_cache_by_length": GENERATED | {"num.generate-tree.eagle-dynamic-10-4-3-n12"},
    "tree_top_k_not_refused": {"num.refuse.tree-verifier-accept-k-2"},
    "tree_sampling_keeps_q": {"num.verify-tree-sampling.removed-mass-rejects-second-child",
                              "num.verify-tree-sampling.all-rejected-residual"},
    "tree_sampling_residual_from_p": {"num.verify-tree-sampling.removed-mass-rejects-second-child",
                                      "num.verify-tree-sampling.all-rejected-residual",
                                      "num.verify-tree-sampling.third-child-running-residual"},
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_a_broken_adapter_of_a_tree_rule_fails_exactly_its_cases(name, tmp_path):
    ran, failed = failed_cases(name, TREES, tmp_path, frozenset({"pass", "fail"}))
    assert EXACT[name] <= ran
    assert failed == EXACT[name]


def expected(case_id: str) -> dict:
    return {name: t.tolist() for name, t in load_file(CASES / case_id / "expected.safetensors").items()}


def test_a_chain_tree_generates_the_chain_case_exactly():
    tree, chain = "num.generate-tree.eagle3-chain-n12", "num.generate.eagle3-n12-k3"
    assert load_file(CASES / tree / "inputs.safetensors")["prompt_ids"].tolist() == \
        load_file(CASES / chain / "inputs.safetensors")["prompt_ids"].tolist()
    assert expected(tree) == expected(chain)


def test_a_chain_tree_proposes_the_chain_case_exactly():
    tree, chain = "num.propose-tree.eagle3-chain-k3", "num.propose.eagle3-k3"
    assert json.loads((CASES / tree / "case.json").read_text())["params"]["tree"] == {"paths": [[0], [0, 0], [0, 0, 0]]}
    assert expected(tree)["parents"] == [-1, 0, 1, 2]
    assert expected(tree)["tokens"][1:] == expected(chain)["draft_tokens"]


def test_every_tree_rule_a_runtime_must_keep_has_a_case():
    rules = {a.split("#")[1] for d in CASES.iterdir() if d.name.startswith(("num.tree", "num.propose-tree",
                                                                           "num.verify-tree", "num.generate-tree",
                                                                           "num.refuse.tree"))
             for a in json.loads((d / "case.json").read_text())["spec"] if a.startswith("spec/trees.md#")}
    assert {"TRE-1", "TRE-2", "TRE-5", "TRE-6", "TRE-7", "TRE-8", "TRE-9", "TRE-10"} <= rules
