"""One verifier pass over several rows: each row scores as it would alone, and attention runs SDPA's fused kernel."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from builders import verifier_for
from specfmt import nn

PROMPT = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7]
ROWS = [11, 2, 7, 7, 1, 12, 4, 9, 3, 3, 8, 10, 6, 5, 2, 1]
# float32 rows differ only in the order of their sums; bfloat16 rounds each product to 8 bits of mantissa
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 0.03}  # of the largest logit; measured 3e-7 and 0.005 to 0.009


@pytest.mark.parametrize("dtype", sorted(TOLERANCE, key=str))
@pytest.mark.parametrize("rows", [4, 16])
def test_a_row_scores_the_same_whether_it_shares_its_pass_with_others_or_runs_alone(dtype, rows):
    verifier = verifier_for(0, dtype)
    verifier.pack()
    verifier.forward(torch.tensor(PROMPT))
    together = verifier.forward(torch.tensor(ROWS[:rows])).logits.float()
    verifier.truncate(len(PROMPT))
    alone = torch.cat([verifier.forward(torch.tensor([token])).logits.float() for token in ROWS[:rows]])
    scale = together.abs().max()
    assert (together - alone).abs().max() <= TOLERANCE[dtype] * scale


@pytest.mark.parametrize("rows", [1, 4])
def test_attention_over_unbatched_rows_runs_the_fused_kernel_not_the_math_fallback(rows):
    q, k, v = torch.randn(4, rows, 8), torch.randn(2, 20, 8), torch.randn(2, 20, 8)
    mask = nn.causal_mask(rows, 20 - rows, "cpu")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = nn.attention(q, k, v, mask)
    names = {event.name for event in prof.events()}
    assert "aten::_scaled_dot_product_attention_math" not in names, names
    expected = torch.softmax((q @ k.repeat_interleave(2, 0).transpose(-1, -2)) / 8 ** 0.5 +
                             torch.zeros(rows, 20).masked_fill(~mask, float("-inf")), -1) @ v.repeat_interleave(2, 0)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
