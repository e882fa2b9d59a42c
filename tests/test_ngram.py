"""N-gram prompt lookup against the worked examples of spec/algorithms/ngram.md (ALG-NGRAM-3), and
short proposals verified as they are (ALG-NGRAM-6)."""

import torch

from specfmt.algorithms.ngram import Ngram, lookup
from specfmt.proposal import Context, Picker

CONFIG = {"prompt_lookup_min": 1, "prompt_lookup_max": 2}


def context(tokens: list[int]) -> Context:
    empty = torch.zeros(len(tokens) - 1, 0)
    return Context(list(tokens), empty, empty, empty)


def never_pick(logits):
    raise AssertionError("ngram proposals are one-hot and never call pick")


def test_lookup_takes_the_largest_n_and_its_earliest_occurrence():
    assert lookup([1, 2, 7, 8, 9, 1, 2, 3, 4, 1, 2], 1, 2, 3) == [7, 8, 9]


def test_lookup_match_may_overlap_the_suffix_and_stops_at_the_end_of_the_context():
    assert lookup([5, 5, 5, 5], 1, 3, 4) == [5]


def test_lookup_does_not_match_the_suffix_with_itself():
    assert lookup([1, 2, 3], 1, 2, 2) == []


def test_lookup_is_empty_when_the_context_is_shorter_than_n_min():
    assert lookup([4], 2, 3, 2) == []


def test_lookup_falls_back_to_a_shorter_n_when_the_longest_has_no_match():
    assert lookup([6, 1, 9, 2, 1], 1, 3, 2) == [9, 2]


def test_lookup_proposes_at_most_k_tokens():
    assert lookup([1, 2, 7, 8, 9, 1, 2, 3, 4, 1, 2], 1, 2, 2) == [7, 8]


def test_propose_returns_a_short_proposal_as_it_is():
    drafted = Ngram({"prompt_lookup_min": 1, "prompt_lookup_max": 3}, {}).propose(context([5, 5, 5, 5]), 4,
                                                                                   never_pick)
    assert drafted.tokens.tolist() == [5]


def test_propose_returns_no_tokens_when_nothing_matches():
    drafted = Ngram(CONFIG, {}).propose(context([1, 2, 3]), 2, never_pick)
    assert drafted.tokens.tolist() == []


def test_a_step_with_an_empty_proposal_is_a_plain_verifier_step():
    from builders import verifier_for
    from specfmt.generate import generate, generate_plain
    from specfmt.proposal import Proposal

    class Nothing:
        aux_ids = ()

        def reset(self):
            pass

        def propose(self, ctx, k, pick):
            return Ngram(CONFIG, {}).propose(context([1, 2, 3]), k, pick)

    result = generate(verifier_for(0), Nothing(), [1, 2, 3], 12, Proposal(speculative_tokens=3))
    assert result.tokens == generate_plain(verifier_for(0), [1, 2, 3], 12, Proposal())
    assert result.stats.accepted == [0] * 11


def test_propose_returns_at_most_k_tokens_with_a_one_hot_distribution():
    drafted = Ngram(CONFIG, {}).propose(context([1, 2, 7, 8, 9, 1, 2, 3, 4, 1, 2]), 3, Picker())
    assert drafted.tokens.tolist() == [7, 8, 9]
    assert drafted.tokens.dtype == torch.long
    assert drafted.q is None
