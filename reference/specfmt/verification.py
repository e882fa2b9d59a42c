"""Verification of a chain of K draft tokens: pure functions, every random draw an input.

Spec: spec/verification.md. Notation: p is the target (verifier) distribution, q the draft's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Verdict:
    """`accepted` leading draft tokens are kept, then `next_token` (the correction, or the bonus
    token when all K were accepted)."""

    accepted: int
    next_token: int


def sample(probs: torch.Tensor, u: float) -> int:
    """Inverse-CDF draw: the smallest index i with cdf[i] > u * cdf[-1]. A zero-probability index is
    never returned. Spec: spec/verification.md#VRF-2"""
    cdf = torch.cumsum(probs.double(), 0)
    index = int(torch.searchsorted(cdf, torch.tensor([u * float(cdf[-1])], dtype=torch.float64), right=True))
    return min(index, probs.numel() - 1)


def verify_greedy(draft_tokens: torch.Tensor, target_logits: torch.Tensor) -> Verdict:
    """Accept the longest prefix equal to the target's argmax; ties break to the lowest id.

    draft_tokens: [K]; target_logits: [K+1, V]. Spec: spec/verification.md#VRF-3
    """
    best = target_logits.argmax(-1)  # first maximal index on ties
    n = 0
    while n < draft_tokens.numel() and int(draft_tokens[n]) == int(best[n]):
        n += 1
    return Verdict(n, int(best[n]))


def verify_top_k(draft_tokens: torch.Tensor, target_logits: torch.Tensor, accept_k: int,
                 tolerance: float) -> Verdict:
    """The speculators rule (`verifier_accept_k`, `accept_tolerance`): draft token x at row i is
    accepted when it is among the target's top `accept_k` tokens and log p(top-1) - log p(x) <=
    tolerance. Lossy when accept_k > 1. Spec: spec/verification.md#VRF-4
    """
    logp = torch.log_softmax(target_logits.double(), -1)
    best = logp.argmax(-1)
    n = 0
    while n < draft_tokens.numel():
        x = int(draft_tokens[n])
        rank = int((logp[n] > logp[n, x]).sum())  # tokens strictly more likely than x
        if rank >= accept_k or float(logp[n, best[n]] - logp[n, x]) > tolerance:
            break
        n += 1
    return Verdict(n, int(best[n]))


def verify_sampling(draft_tokens: torch.Tensor, q: torch.Tensor, p: torch.Tensor, uniforms: torch.Tensor,
                    final_uniform: float) -> Verdict:
    """Lossless rejection sampling (Leviathan et al. 2023).

    draft_tokens: [K]; q: [K, V], the distributions the draft tokens were drawn from; p: [K+1, V],
    the processed target distributions; uniforms: [K] in [0, 1); final_uniform in [0, 1) draws the
    correction or the bonus token. Row i accepts x iff uniforms[i] * q[i, x] < p[i, x] (so q = 0
    accepts whenever p > 0, and a tie rejects). On the first rejection the next token is drawn from
    max(p - q, 0), normalized (from p if that is all zero); if all K are accepted it is drawn from
    p[K]. Spec: spec/verification.md#VRF-5
    """
    for i in range(draft_tokens.numel()):
        x = int(draft_tokens[i])
        if not float(uniforms[i]) * float(q[i, x]) < float(p[i, x]):
            residual = torch.clamp(p[i].double() - q[i].double(), min=0)
            return Verdict(i, sample(residual if float(residual.sum()) > 0 else p[i], final_uniform))
    return Verdict(draft_tokens.numel(), sample(p[-1], final_uniform))


def process_logits(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """The sampling distribution of rows of logits: temperature, then top-k, then top-p, then
    softmax, in float32. Spec: spec/verification.md#VRF-1"""
    x = logits.float() / temperature
    if top_k > 0 and top_k < x.shape[-1]:
        kth = torch.topk(x, top_k, -1).values[..., -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p < 1.0:
        sorted_x, order = torch.sort(x, -1, descending=True)
        cum = torch.softmax(sorted_x, -1).cumsum(-1)
        drop = cum - torch.softmax(sorted_x, -1) >= top_p  # keep the smallest prefix reaching top_p
        x = x.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return torch.softmax(x, -1)
