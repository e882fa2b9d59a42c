"""generate_batch: the verifier alone on several left-padded prompts at once (self-distillation data)."""

from builders import verifier_for
from specfmt.generate import generate_batch, generate_plain
from specfmt.proposal import Proposal

PROMPTS = [[1, 5, 9, 3], [7, 7, 2, 11, 13, 4, 4], [9], [3, 1, 4, 1, 5, 9, 2, 6]]


def test_each_row_of_a_batch_equals_decoding_its_prompt_alone():
    verifier = verifier_for(0)
    batch = generate_batch(verifier, PROMPTS, 20, set())
    assert batch == [generate_plain(verifier, p, 20, Proposal()) for p in PROMPTS]


def test_a_row_stops_after_its_eos_and_the_batch_stops_at_max_new_tokens():
    verifier = verifier_for(0)
    alone = [generate_plain(verifier, p, 12, Proposal()) for p in PROMPTS]
    eos = alone[0][-1]  # a token the first row emits; a row that never does must still stop at 12 tokens
    batch = generate_batch(verifier, PROMPTS, 12, {eos})
    for row, tokens in zip(batch, alone, strict=True):
        assert row == (tokens[:tokens.index(eos) + 1] if eos in tokens else tokens)
    assert any(eos not in tokens for tokens in alone), "every row stops: the test would not bound the loop"
