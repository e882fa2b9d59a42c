"""The training objective, for every algorithm alike: step k of row t predicts the token at t + 2 + k, and its
target is the verifier's own distribution for that token (its logits at position t + 1 + k, through the rows of
the draft vocabulary, renormalised over them), as the speculators library trains. A row is supervised at step k
when that token is supervised and in the row's document.

Metrics per step (sums, so that ranks and samples add up): `rows` supervised, `correct` where the draft's top
token (in verifier ids) is the verifier's greedy token, and `alive` where it was correct at every step up to k,
the teacher-forced chain a greedy verifier would accept. 1 + sum(alive_k / rows_k) estimates tokens per step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from specfmt.proposal import Sample


def verifier_head(sample: Sample, lm_head: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """The verifier's logits at every position over the draft vocabulary: [T, V_d] (no grad)."""
    rows = lm_head if targets is None else lm_head[targets]  # [V, H] -> [V_d, H]
    with torch.no_grad():
        return F.linear(sample.normed, rows.float())


def objective(logits: list[torch.Tensor], sample: Sample, greedy: torch.Tensor, head: torch.Tensor,
              targets: torch.Tensor | None, weights: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted loss, metrics [K, 4]: loss_sum, rows, correct, alive). `greedy` [T]: the verifier's greedy
    token after each position."""
    t_len = sample.tokens.numel()
    metrics = torch.zeros(len(logits), 4)
    loss, total_weight = logits[0].new_zeros(()), 0.0
    alive = torch.ones(t_len, dtype=torch.bool)
    for k, step in enumerate(logits):
        n = t_len - 2 - k  # rows whose target lies inside the sample
        if n <= 0:
            break
        rows = torch.arange(n)
        valid = sample.loss_mask[rows + 2 + k] & (sample.doc[rows] == sample.doc[rows + 2 + k])
        p = torch.softmax(head[rows + 1 + k], -1)  # [n, V_d]
        ce = -(p * torch.log_softmax(step[:n].float(), -1)).sum(-1)  # [n]
        picked = step[:n].detach().max(-1).indices  # argmax over bfloat16 rows is several times slower
        picked = picked if targets is None else targets[picked]
        correct = (picked == greedy[rows + 1 + k]) & valid
        alive = alive[:n] & correct
        count = int(valid.sum())
        metrics[k] = torch.tensor([float((ce.detach() * valid).sum()), count, int(correct.sum()), int(alive.sum())])
        if count:
            loss = loss + weights[k] * (ce * valid).sum() / count
            total_weight += weights[k]
    return loss / max(total_weight, 1e-12), metrics


def summary(metrics: torch.Tensor) -> dict:
    """Per-step loss, accuracy and chain accuracy from summed metrics [K, 4], and the tokens-per-step proxy."""
    rows = metrics[:, 1].clamp(min=1)
    loss, acc, full = metrics[:, 0] / rows, metrics[:, 2] / rows, metrics[:, 3] / rows
    return {"loss_k": [round(float(x), 4) for x in loss], "acc_k": [round(float(x), 4) for x in acc],
            "full_acc_k": [round(float(x), 4) for x in full], "tau_proxy": round(1 + float(full.sum()), 4)}
