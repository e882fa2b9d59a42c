"""generate_batch: the verifier alone on several left-padded prompts at once (self-distillation data)."""

import pytest
import torch

from builders import config_of, draft_for, tensors_for, verifier_for
from specfmt import nn
from specfmt import verifier as verifier_module
from specfmt.defaults import resolve
from specfmt.generate import _choose, generate_batch, generate_plain
from specfmt.proposal import Context, Proposal, RecordingPicker
from specfmt.runtime import build_draft
from specfmt.verifier import packed, packs_bfloat16

# oneDNN refuses to prepack bfloat16 weights on an AVX2-only CPU; there pack() keeps the plain weights (tested below)
needs_packing = pytest.mark.skipif(not packs_bfloat16(), reason="this CPU has no oneDNN bfloat16 packing")

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


MORE = PROMPTS + [[2, 8], [5] * 11, [4, 4, 6, 1, 3], [12, 3, 9], [1] * 14, [6, 2]]  # two longer than any in PROMPTS


def test_a_refilled_batch_answers_each_prompt_as_decoding_it_alone():
    verifier = verifier_for(0)
    alone = [generate_plain(verifier, p, 12, Proposal()) for p in MORE]
    eos = {alone[0][2], alone[3][5]}  # rows end at different steps, and free rows take the waiting prompts
    expected = [next((t[:i + 1] for i, x in enumerate(t) if x in eos), t) for t in alone]
    assert generate_batch(verifier, MORE, 12, eos, rows=3) == expected
    assert any(len(t) < 12 for t in expected) and any(len(t) == 12 for t in expected)


def test_a_refilled_batch_runs_full_rows_while_prompts_wait():
    verifier, rows = verifier_for(0), []
    forward = verifier.forward
    verifier.forward = lambda tokens, *a, **k: rows.append(tuple(tokens.shape)) or forward(tokens, *a, **k)
    generate_batch(verifier, MORE, 5, set(), rows=4)  # 10 prompts, 5 tokens each: 4 + 4 + 2 rows
    decode = [shape[0] for shape in rows if shape[1] == 1]
    assert decode == [4] * 4 + [4] * 4 + [2] * 4, rows  # the third fill has only 2 prompts: the others leave


def test_a_long_refilled_decode_drops_the_columns_no_row_reads(monkeypatch):
    """Without compaction the cache would grow by every step of every prompt (about 12 x 40 columns)."""
    monkeypatch.setattr("specfmt.generate.COMPACT", 8)
    verifier, lengths = verifier_for(0), []
    forward = verifier.forward
    verifier.forward = lambda tokens, *a, **k: lengths.append(len(verifier)) or forward(tokens, *a, **k)
    prompts = MORE + PROMPTS
    assert generate_batch(verifier, prompts, 40, set(), rows=2) == [generate_plain(verifier, p, 40, Proposal())
                                                                     for p in prompts]
    assert max(lengths) <= 14 + 40 + 8, max(lengths)


def test_a_refilled_batch_at_a_temperature_draws_the_same_answers_for_the_same_seed():
    verifier = verifier_for(0)
    runs = [generate_batch(verifier, MORE, 9, {3}, 0.8, torch.Generator().manual_seed(5), rows=3) for _ in range(2)]
    assert runs[0] == runs[1] and all(1 <= len(t) <= 9 for t in runs[0])
    assert all(3 not in t[:-1] for t in runs[0])  # an answer ends at its first eos


@needs_packing
def test_a_packed_bfloat16_verifier_computes_the_logits_of_the_unpacked_one():
    verifier, tokens = verifier_for(0, torch.bfloat16), torch.tensor([[1, 5, 9, 3, 2], [7, 7, 2, 11, 4]])
    step = torch.tensor([[5], [5]])  # a decode step after the prefill
    plain = [verifier.forward(tokens).logits, verifier.forward(tokens[:, :1], positions=step).logits]
    verifier.truncate(0)
    verifier.pack()
    packed = [verifier.forward(tokens).logits, verifier.forward(tokens[:, :1], positions=step).logits]
    assert verifier.head is not None and all(torch.equal(a, b) for a, b in zip(plain, packed, strict=True))


@needs_packing
def test_plain_decoding_packs_a_bfloat16_verifier_and_decodes_what_the_unpacked_forward_picks():
    verifier, prompt = verifier_for(0, torch.bfloat16), PROMPTS[1]
    tokens, expected = generate_plain(verifier, prompt, 10, Proposal()), []
    assert verifier.head is not None  # packed by the loop itself
    unpacked = verifier_for(0, torch.bfloat16)
    for _ in range(10):
        expected.append(int(unpacked.forward(torch.tensor(prompt + expected)).logits[-1].argmax()))
        unpacked.truncate(0)
    assert tokens == expected


def test_packing_leaves_a_bfloat16_verifier_as_it_is_on_a_cpu_without_onednn_bfloat16_packing(monkeypatch):
    monkeypatch.setattr(verifier_module, "packs_bfloat16", lambda: False)
    verifier = verifier_for(0, torch.bfloat16)
    verifier.pack()
    assert verifier.head is None and verifier.layers is verifier.w["layer"]
    assert generate_batch(verifier, PROMPTS, 4, set()) == generate_batch(verifier_for(0, torch.bfloat16), PROMPTS, 4,
                                                                          set())


def test_packing_leaves_a_float32_verifier_as_it_is():
    verifier = verifier_for(0)
    verifier.pack()
    assert verifier.head is None and verifier.layers is verifier.w["layer"]


@needs_packing
def test_packed_projections_equal_their_linears_fused_or_one_by_one_where_only_some_have_a_bias():
    g = torch.Generator().manual_seed(2)
    w = {role: torch.randn(8, 8, generator=g).to(torch.bfloat16) for role in
         ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")}
    w["q_proj_bias"] = torch.randn(8, generator=g).to(torch.bfloat16)  # k and v have none: q, k, v one by one
    layer, x = {**w, "packed": packed(w)}, torch.randn(3, 1, 8, generator=g).to(torch.bfloat16)
    assert ("q_proj", "k_proj", "v_proj") not in layer["packed"] and ("gate_proj", "up_proj") in layer["packed"]
    for roles in (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj")):
        expected = [torch.nn.functional.linear(x, w[role], w.get(f"{role}_bias")) for role in roles]
        assert all(torch.equal(a, b) for a, b in zip(nn.linears(x, layer, roles), expected, strict=True))
    w.update({f"{role}_bias": torch.randn(8, generator=g).to(torch.bfloat16) for role in ("k_proj", "v_proj")})
    layer, roles = {**w, "packed": packed(w)}, ("q_proj", "k_proj", "v_proj")  # every one biased: fused again
    expected = [torch.nn.functional.linear(x, w[role], w[f"{role}_bias"]) for role in roles]
    assert roles in layer["packed"] and all(torch.equal(a, b) for a, b in
                                            zip(nn.linears(x, layer, roles), expected, strict=True))


@needs_packing
def test_a_bfloat16_eagle3_draft_decodes_through_prepacked_linears_to_the_logits_of_its_plain_weights(monkeypatch):
    verifier = verifier_for(0, torch.bfloat16)
    draft = draft_for("eagle3", verifier)
    monkeypatch.setattr(verifier_module, "packs_bfloat16", lambda: False)
    plain = draft_for("eagle3", verifier)
    assert "packed" in draft.layers[0] and "packed" in draft.linears and "packed" not in plain.layers[0]
    out = verifier.forward(torch.tensor(PROMPTS[3][:-1]), draft.aux_ids)
    pickers = [RecordingPicker(), RecordingPicker()]
    with torch.inference_mode():
        for d, pick in zip((draft, plain), pickers, strict=True):
            d.propose(Context(list(PROMPTS[3]), out.aux, out.last, out.normed), 4, pick)
    assert all(torch.equal(a, b) for a, b in zip(*(p.logits for p in pickers), strict=True))


def test_a_draft_whose_weights_take_gradients_keeps_them_unpacked():
    verifier = verifier_for(0, torch.bfloat16)
    config = resolve(config_of("eagle3"))
    tensors = {k: v.to(torch.bfloat16).requires_grad_() if v.is_floating_point() else v
               for k, v in tensors_for(config, 1).items()}
    draft = build_draft(config, tensors, verifier)
    assert all("packed" not in layer for layer in draft.layers) and "packed" not in draft.linears
