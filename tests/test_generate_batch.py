"""generate_batch: the verifier alone on several left-padded prompts at once (self-distillation data)."""

import torch

from builders import verifier_for
from specfmt import nn
from specfmt.generate import _choose, generate_batch, generate_plain
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


def test_a_row_that_emits_eos_leaves_the_batch_so_later_steps_run_fewer_rows():
    verifier = verifier_for(0)
    alone = [generate_plain(verifier, p, 12, Proposal()) for p in PROMPTS]
    eos = alone[0][2]  # the first row stops after 3 tokens (or earlier, if it emits this token before)
    stop = alone[0].index(eos) + 1
    rows, forward = [], verifier.forward
    verifier.forward = lambda tokens, *a, **k: rows.append(tokens.shape[0]) or forward(tokens, *a, **k)
    batch = generate_batch(verifier, PROMPTS, 12, {eos})
    assert batch[0] == alone[0][:stop]
    assert rows[stop] < len(PROMPTS), rows  # the step after the row's eos runs without it
    assert len(rows) == 12  # a prefill and 11 decode steps: no forward after the last token


def test_batched_bfloat16_answers_agree_with_float32_ones_on_most_tokens():
    """bfloat16 rounds each row's sums differently from float32, so greedy answers may part after a near tie;
    the tolerance: at least 80% of the tokens agree position by position (the random tiny verifier has
    near ties that a trained one rarely has)."""
    prompts, n = PROMPTS * 2, 16
    exact = generate_batch(verifier_for(0), prompts, n, set())
    half = generate_batch(verifier_for(0, torch.bfloat16), prompts, n, set())
    same = sum(a == b for x, y in zip(exact, half, strict=True) for a, b in zip(x, y, strict=True))
    assert same >= 0.8 * n * len(prompts), same


def test_last_logits_is_the_last_row_of_the_full_logits():
    verifier = verifier_for(0)
    tokens = torch.tensor([[1, 5, 9, 3], [7, 7, 2, 11]])
    full = verifier.forward(tokens).logits
    verifier.truncate(0)
    assert torch.equal(verifier.forward(tokens, last_logits=True).logits, full[:, -1:])


def test_one_query_position_attends_like_every_query_head_reading_its_key_value_head():
    """nn.attention stacks the query heads of a key-value head as rows when there is one query position; the
    result must be the GQA of scaled_dot_product_attention (head h reads key-value head h // 3 here)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, n, t, 8, generator=g) for n, t in ((6, 1), (2, 5), (2, 5)))
    mask = torch.tensor([[True] * 5, [False, False, True, True, True]])[:, None, None, :]  # [B, 1, 1, S]
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    assert torch.allclose(nn.attention(q, k, v, mask), expected, atol=1e-6)
    alone = torch.nn.functional.scaled_dot_product_attention(q[0], k[0], v[0], enable_gqa=True)  # [n_h, 1, d]
    assert torch.allclose(nn.attention(q[0], k[0], v[0], None), alone, atol=1e-6)


def test_the_greedy_choice_of_a_batch_is_the_first_of_equal_maxima_as_argmax_picks():
    logits = torch.tensor([[0.0, 3.0, 1.0, 3.0], [2.0, 2.0, 2.0, 2.0], [-1.0, -5.0, -1.0, 0.5]], dtype=torch.bfloat16)
    assert _choose(logits, 0.0, None).tolist() == [1, 0, 3] == logits.argmax(-1).tolist()
