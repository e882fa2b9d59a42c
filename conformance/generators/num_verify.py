"""Numerics cases of the pure verification rules (no checkpoint): greedy (VRF-3) and rejection
sampling with supplied uniforms (VRF-5).

Inputs are seeded; a seed is refused when a target row has a near tie (greedy), or when a uniform
lies within MIN_UNIFORM_MARGIN of the acceptance threshold p/q or of a CDF step of the distribution
the next token is drawn from (sampling). The smallest margins seen are recorded in golden.
"""

from __future__ import annotations

import torch

from conformance.generators.numerics import EXACT, MIN_TOP2_MARGIN, SEEDS, NumericsCase, rounded, top2_margin
from specfmt.verification import verify_greedy, verify_sampling

K, V = 4, 16
MIN_UNIFORM_MARGIN = 1e-3
OUTPUTS = {"accepted": EXACT, "next_token": EXACT}


def verdict_tensors(verdict) -> dict[str, torch.Tensor]:
    return {"accepted": torch.tensor([verdict.accepted]), "next_token": torch.tensor([verdict.next_token])}


def greedy_inputs(seed: int, accepted: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Target logits (multiples of 1/64) and drafts equal to the argmax on the first `accepted` rows,
    the runner-up on the next row, and random tokens after it."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randint(-256, 257, (K + 1, V), generator=g) / 64
    ranked = logits.argsort(-1, descending=True)
    drafts = torch.randint(0, V, (K,), generator=g)
    drafts[:accepted] = ranked[:accepted, 0]
    if accepted < K:
        drafts[accepted] = ranked[accepted, 1]
    return drafts, logits


def greedy_cases() -> list[NumericsCase]:
    cases = []
    for accepted in (0, 2, K):
        for seed in SEEDS:
            drafts, logits = greedy_inputs(seed, accepted)
            if top2_margin(logits) >= MIN_TOP2_MARGIN:
                break
        verdict = verify_greedy(drafts, logits)
        assert verdict.accepted == accepted
        what = "every draft accepted, then the bonus token" if accepted == K else \
            f"{accepted} of {K} drafts accepted, then the correction"
        cases.append(NumericsCase(
            f"num.verify-greedy.accept-{accepted}-of-{K}", f"greedy verification: {what}",
            ["spec/verification.md#VRF-3"], "verify_greedy", None, None, {},
            {"draft_tokens": drafts, "target_logits": logits}, verdict_tensors(verdict), OUTPUTS,
            {"min_top2_margin": rounded(top2_margin(logits))}))
    return cases


def cdf_margin(probs: torch.Tensor, u: float) -> float:
    """How far u * total lies from every step of the CDF of `probs`, relative to the total."""
    cdf = torch.cumsum(probs.double(), 0)
    return float((cdf / cdf[-1] - u).abs().min())


def sampling_inputs(seed: int, accepted: int):
    """q, p, drafts and uniforms whose row `accepted` (if < K) rejects and earlier rows accept."""
    g = torch.Generator().manual_seed(seed)
    # softmax in float64, then stored in float32: the same bits on every CPU
    q = torch.softmax(torch.randint(-128, 129, (K, V), generator=g).double() / 32, -1).float()
    p = torch.softmax(torch.randint(-128, 129, (K + 1, V), generator=g).double() / 32, -1).float()
    drafts = torch.multinomial(q, 1, generator=g).squeeze(-1)  # what the draft drew from q
    if accepted < K:
        drafts[accepted] = int((q[accepted] - p[accepted]).argmax())  # p/q < 1 there: rejection is possible
    ratio = (p[torch.arange(K), drafts] / q[torch.arange(K), drafts]).double()  # [K]
    r = torch.rand(K + 1, generator=g, dtype=torch.float64)
    uniforms = r[:K] * ratio.clamp(max=1)  # below the threshold: accept
    if accepted < K:
        uniforms[accepted] = ratio[accepted] + r[accepted] * (1 - ratio[accepted])  # above it: reject
    return drafts, q, p, uniforms, r[K:]


def sampling_cases() -> list[NumericsCase]:
    cases = []
    for accepted in (0, 2, K):
        for seed in SEEDS:
            drafts, q, p, uniforms, final = sampling_inputs(seed, accepted)
            ratio = (p[torch.arange(K), drafts] / q[torch.arange(K), drafts]).double()
            decided = min(accepted + 1, K)  # rows whose uniform is compared with its threshold
            u_margin = float((uniforms[:decided] - ratio[:decided]).abs().min())
            source = p[K] if accepted == K else (p[accepted] - q[accepted]).clamp(min=0)
            margin = min(u_margin, cdf_margin(source, float(final)))
            if margin >= MIN_UNIFORM_MARGIN:
                break
        verdict = verify_sampling(drafts, q, p, uniforms, float(final))
        assert verdict.accepted == accepted
        what = "every draft accepted, the bonus token drawn from p[K]" if accepted == K else \
            f"row {accepted} rejects, the correction drawn from the residual max(p - q, 0)"
        cases.append(NumericsCase(
            f"num.verify-sampling.accept-{accepted}-of-{K}", f"rejection sampling with supplied uniforms: {what}",
            ["spec/verification.md#VRF-5", "spec/verification.md#VRF-2"], "verify_sampling", None, None, {},
            {"draft_tokens": drafts, "q": q, "p": p, "uniforms": uniforms, "final_uniform": final},
            verdict_tensors(verdict), OUTPUTS, {"min_uniform_margin": rounded(margin)}))
    return cases


def verify_cases() -> list[NumericsCase]:
    return greedy_cases() + sampling_cases()
