"""Lossless greedy decoding: for every algorithm, speculative greedy output equals the verifier's
plain greedy output, token for token, in float32 with random weights.

Two regimes per builder variant: random weights (the draft almost never agrees: steps where no
draft token is accepted) and agreeing heads (every output head zeroed, so the verifier and the draft
both pick token 0: steps where every draft token is accepted).
"""

import pytest

from builders import VARIANTS, draft_for, verifier_for
from specfmt.generate import generate, generate_plain
from specfmt.proposal import Proposal

PROMPT = [1, 5, 9, 3, 7, 5, 9, 3]
NEW_TOKENS = 64
SEEDS = (0, 1, 2)


def zero_heads(draft, verifier) -> None:
    """Make every output head of the draft and the verifier produce all-zero logits."""
    verifier.w["lm_head"].zero_()
    stack = [draft.w] if hasattr(draft, "w") else []
    while stack:
        node = stack.pop()
        heads = [k for k in ("lm_head", "lm_heads", "head", "markov_w2") if k in node]
        if node is getattr(draft, "w", None) and "embed_tokens" in node and "lm_head" not in node:
            heads.append("embed_tokens")  # a tied independent draft reads its embedding as its head
        for key, value in node.items():
            if key in heads:
                for t in value.values() if isinstance(value, dict) else [value]:
                    t.zero_()
            elif isinstance(value, dict):
                stack.append(value)
    if getattr(draft, "targets", None) is not None:
        draft.targets.copy_(draft.targets - draft.targets[0])  # draft id 0 maps to verifier id 0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("seed", SEEDS)
def test_speculative_greedy_equals_plain_greedy_with_random_weights(variant, seed):
    plain = generate_plain(verifier_for(seed), PROMPT, NEW_TOKENS, Proposal())
    verifier = verifier_for(seed)
    draft = draft_for(variant, verifier, seed)
    result = generate(verifier, draft, PROMPT, NEW_TOKENS, Proposal(speculative_tokens=3))
    assert result.tokens == plain
    assert 0 in result.stats.accepted


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_speculative_greedy_equals_plain_greedy_when_every_draft_is_accepted(variant):
    verifier = verifier_for(0)
    draft = draft_for(variant, verifier, 0)
    zero_heads(draft, verifier)
    plain_verifier = verifier_for(0)
    plain_verifier.w["lm_head"].zero_()
    plain = generate_plain(plain_verifier, PROMPT, NEW_TOKENS, Proposal())
    result = generate(verifier, draft, PROMPT, NEW_TOKENS, Proposal(speculative_tokens=3))
    assert result.tokens == plain
    assert result.stats.accepted.count(3) >= len(result.stats.accepted) // 2
