"""Tree steps in generate (spec/trees.md): lossless greedy decoding with static and dynamic trees for every draft
that branches, a tree that is a chain decoding exactly as the chain does, and the drafts that cannot branch refused.
"""

import pytest
import torch

from builders import draft_for, verifier_for
from specfmt import tree
from specfmt.findings import Refused
from specfmt.generate import generate, generate_plain
from specfmt.proposal import Proposal
from test_lossless import zero_heads

PROMPT = [1, 5, 9, 3, 7, 5, 9, 3]
NEW_TOKENS = 32
BRANCHING = ["eagle3", "eagle3_qwen3_2l_fullvocab_normfc", "eagle", "eagle_hass_norms", "mtp", "mtp_post_norm",
             "peagle", "medusa"]


def wide(first: int, second: int) -> tree.StaticTree:
    """`first` children of the root and `second` under each: with random weights the verifier's choice is often
    one of the first level, at any rank, so accepted paths run through every branch."""
    return tree.StaticTree(tuple([(i,) for i in range(first)] + [(i, j) for i in range(first) for j in range(second)]))


SHAPES = {"static": wide(40, 6), "dynamic": tree.DynamicTree(speculative_tokens=90, expansion_factor=40, depth=3)}


@pytest.mark.parametrize("variant", BRANCHING)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_tree_greedy_generation_equals_plain_greedy(variant, shape):
    plain = generate_plain(verifier_for(0), PROMPT, NEW_TOKENS, Proposal())
    verifier = verifier_for(0)
    result = generate(verifier, draft_for(variant, verifier, 0), PROMPT, NEW_TOKENS, Proposal(), shape=SHAPES[shape])
    assert result.tokens == plain
    assert sum(result.stats.accepted) >= 4  # steps that kept tree rows, whose cache rows then moved


CHAINS = {"static": tree.StaticTree(((0,), (0, 0), (0, 0, 0))), "dynamic": tree.DynamicTree(3, 1, 3),
          "full": tree.full_tree(1, 1, 3)}


@pytest.mark.parametrize("variant", ["eagle3", "eagle", "mtp", "peagle", "medusa"])
@pytest.mark.parametrize("chain", sorted(CHAINS))
@pytest.mark.parametrize("agree", [False, True])
def test_a_tree_that_is_a_chain_gives_the_chain_tokens_and_counters(variant, chain, agree):
    runs = []
    for shape in (None, CHAINS[chain]):
        verifier = verifier_for(0)
        draft = draft_for(variant, verifier, 0)
        if agree:  # every head zeroed: the draft and the verifier both pick token 0, every draft is accepted
            zero_heads(draft, verifier)
        runs.append(generate(verifier, draft, PROMPT, NEW_TOKENS, Proposal(speculative_tokens=3), shape=shape))
    chain_run, tree_run = runs
    assert tree_run.tokens == chain_run.tokens
    assert tree_run.stats.accepted == chain_run.stats.accepted
    assert tree_run.stats.counters() == chain_run.stats.counters()
    if agree:
        assert chain_run.stats.accepted.count(3) >= len(chain_run.stats.accepted) // 2


@pytest.mark.parametrize("variant", ["eagle3", "eagle", "mtp", "peagle", "medusa"])
def test_a_sampled_tree_that_is_a_chain_draws_the_chain_tokens_from_the_same_seed(variant):
    runs = []
    for shape in (None, CHAINS["static"]):
        verifier = verifier_for(0, scale=0.3)  # flatter distributions: drafts are sometimes accepted
        proposal = Proposal("sampling", speculative_tokens=3, temperature=1.0)
        runs.append(generate(verifier, draft_for(variant, verifier, 0), PROMPT, NEW_TOKENS, proposal, seed=5,
                             shape=shape))
    assert runs[1].tokens == runs[0].tokens and runs[1].stats.accepted == runs[0].stats.accepted
    assert sum(runs[0].stats.accepted) > 0


def test_a_sampled_tree_generation_runs_and_keeps_its_counters_per_depth():
    verifier = verifier_for(0, scale=0.3)
    proposal = Proposal("sampling", temperature=1.0)
    result = generate(verifier, draft_for("eagle3", verifier, 0), PROMPT, NEW_TOKENS, proposal, seed=1,
                      shape=tree.DynamicTree(12, 4, 3))
    counters = result.stats.counters()
    assert len(result.tokens) == NEW_TOKENS and len(counters["accepted_per_position"]) == 3
    assert counters["accepted_per_position"][0] == sum(a > 0 for a in result.stats.accepted)


@pytest.mark.parametrize("variant", ["ngram", "dflash", "dspark", "mlp_speculator", "independent"])
def test_a_draft_that_cannot_branch_refuses_a_tree(variant):
    verifier = verifier_for(0)
    with pytest.raises(Refused) as refused:
        generate(verifier, draft_for(variant, verifier, 0), PROMPT, 4, Proposal(), shape=CHAINS["static"])
    assert refused.value.refusal == "refused.tree"


def test_a_path_list_that_is_no_tree_is_refused_before_any_draft_runs():
    verifier = verifier_for(0)
    with pytest.raises(Refused, match=r"path \[1, 0\] has no parent path \[1\]") as refused:
        generate(verifier, draft_for("eagle3", verifier, 0), PROMPT, 4, Proposal(),
                 shape=tree.StaticTree(((0,), (1, 0))))
    assert refused.value.refusal == "refused.tree"


def test_medusa_refuses_a_tree_deeper_than_its_heads():
    verifier = verifier_for(0)
    draft = draft_for("medusa", verifier, 0)
    with pytest.raises(Refused) as refused:
        generate(verifier, draft, PROMPT, 4, Proposal(), shape=tree.full_tree(1, 1, draft.num_heads + 1))
    assert refused.value.refusal == "refused.k_above_limit"


def test_a_tree_with_the_top_k_rule_is_refused():
    verifier = verifier_for(0)
    with pytest.raises(Refused):
        generate(verifier, draft_for("eagle3", verifier, 0), PROMPT, 4, Proposal(verifier_accept_k=2),
                 shape=CHAINS["static"])


def test_the_verifier_cache_holds_only_the_committed_tokens_after_a_tree_step():
    verifier = verifier_for(0)
    result = generate(verifier, draft_for("eagle", verifier, 0), PROMPT, 8, Proposal(), shape=SHAPES["static"])
    assert len(verifier) == len(PROMPT) + sum(a + 1 for a in result.stats.accepted)
    with torch.inference_mode():
        assert torch.isfinite(verifier.caches[0].k[..., :len(verifier), :]).all()


def test_one_verifier_pass_over_a_tree_scores_each_node_as_its_path_alone():
    small = tree.Tree([-1, 0, 0, 1, 1, 2, 3], [9, 10, 11, 12, 13, 14, 15])  # depths 0, 1, 1, 2, 2, 2, 3
    verifier = verifier_for(0)
    with torch.inference_mode():
        verifier.forward(torch.tensor(PROMPT))
        positions, mask = tree.attention(small, len(PROMPT))
        scored = verifier.forward(torch.tensor(small.tokens), positions=positions, mask=mask).logits
        for node in range(len(small.tokens)):
            path, a = [], node
            while a >= 0:
                path.insert(0, small.tokens[a])
                a = small.parents[a]
            verifier.truncate(len(PROMPT))
            alone = verifier.forward(torch.tensor(path)).logits[-1]
            torch.testing.assert_close(scored[node], alone, rtol=1e-5, atol=1e-5)
