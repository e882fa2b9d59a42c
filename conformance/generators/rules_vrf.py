"""Numerics cases for the VRF-1 and VRF-4 boundaries that mutants.py's verification cases leave open (issue 23, rule
coverage map), in their operations (`process_logits`, `verify_top_k`, PROTOCOL.md 3.3):

- VRF-1: top_p drops a token whose preceding mass equals top_p exactly (and keeps the one that crosses it), and
  top_k comes before top_p (and the temperature before both);
- VRF-4: rank counts the tokens strictly more likely one by one, tied ones included, so a token below two tied
  tokens has rank 2, not 1.

Each case asserts the verdict or support its description promises, so a generator change that loses the point of a
case fails here.
"""

from __future__ import annotations

import math

import torch

from conformance.generators.mutants import VERDICT, mass_margin, verdict
from conformance.generators.numerics import FLOAT32, NumericsCase
from specfmt.verification import process_logits, verify_top_k

V = 16
VRF = "spec/verification.md"
LOW = -40.0  # a logit whose probability is below float32's resolution next to the designed ones


def designed(rows: list[dict[int, float]], low: float = LOW) -> torch.Tensor:
    """[len(rows), V] logits: `low` but where a row names a token's value."""
    logits = torch.full((len(rows), V), low)
    for i, entries in enumerate(rows):
        for token, value in entries.items():
            logits[i, token] = value
    return logits


def log_weights(weights: dict[int, float], scale: float = 1.0) -> dict[int, float]:
    return {token: scale * math.log(w) for token, w in weights.items()}


# --- VRF-4 ------------------------------------------------------------------------------------------------------

def top_k_cases() -> list[NumericsCase]:
    """k = 3: rank 2 accepted in row 0; in row 1 two tokens tie at the top and one follows, so the draft below them
    has rank 3 and is rejected (counted by distinct values it would be 2)."""
    logits = designed([{3: 1, 6: 0.5, 8: 0.25}, {2: 3, 10: 3, 12: 2, 1: 1.5}, {5: 1}], low=-4.0)
    drafts = torch.tensor([8, 1])
    v = verify_top_k(drafts, logits, 3, 8.0)
    assert (v.accepted, v.next_token) == (1, 2)
    return [NumericsCase(
        "num.verify-top-k.rank-counts-tied-tokens", "the speculators top-k rule, k = 3, tau = 8: rank 2 accepted; "
        "a token below two tied tokens and a third has rank 3 (each strictly more likely token counted, tied ones "
        "too) and is rejected", [f"{VRF}#VRF-4"], "verify_top_k", None, None,
        {"accept_k": 3, "accept_tolerance": 8.0}, {"draft_tokens": drafts, "target_logits": logits}, verdict(v),
        VERDICT, {"accepted": v.accepted, "exact_boundary": "row 1 ties two tokens at the top by design, in logits "
                                                            "exact in binary"})]


# --- VRF-1 ------------------------------------------------------------------------------------------------------

# case name -> (params, logits, kept tokens per row, description, the boundary the case sits on by design)
DISTRIBUTIONS = {
    "top-p-exact-boundary": (
        {"temperature": 1.0, "top_k": 0, "top_p": 0.5},
        designed([{3: 0.0, 8: -2.0 ** -30}, log_weights({2: 0.45, 9: 0.3, 4: 0.15, 13: 0.1})]), [1, 2],
        "top_p 0.5: row 0 holds two tokens of mass 1/2 in float32 (logits 0 and -2^-30), so the second one's "
        "preceding mass is exactly 0.5 and it is dropped; in row 1 the token whose mass crosses 0.5 is kept",
        "row 0's preceding mass equals top_p exactly, in float32 values exact in binary"),
    "top-k-before-top-p": (
        {"temperature": 2.0, "top_k": 3, "top_p": 0.5},
        designed([log_weights({1: 0.22, 5: 0.2, 7: 0.18, 10: 0.15, 14: 0.13, 0: 0.12}, 2.0),
                  log_weights({0: 0.45, 6: 0.3, 12: 0.25}, 2.0)]), [2, 2],
        "temperature 2, then top_k 3, then top_p 0.5, each row keeping 2 tokens: row 0 keeps 3 when top_p comes "
        "before top_k, row 1 keeps 1 when the temperature comes after the filters", None),
}


def top_k_only(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The logits top_k keeps (the others -inf), so that top_p's margin is measured where VRF-1 applies it."""
    if k <= 0:
        return logits
    kth = logits.topk(k, -1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def distribution_cases() -> list[NumericsCase]:
    cases = []
    for name, (params, logits, kept, what, boundary) in DISTRIBUTIONS.items():
        args = params["temperature"], params["top_k"], params["top_p"]
        probs = process_logits(logits.double(), *args).float()  # float64, stored in float32, as mutants.py
        for computed in (probs, process_logits(logits, *args)):  # the same support in float32 (VRF-1's dtype)
            assert [int(n) for n in (computed > 0).sum(-1)] == kept, name
        cases.append(NumericsCase(
            f"num.process-logits.{name}", f"the target distribution of VRF-1: {what}", [f"{VRF}#VRF-1"],
            "process_logits", None, None, params, {"logits": logits}, {"probs": probs}, {"probs": FLOAT32},
            {"kept": kept, **({"exact_boundary": boundary} if boundary else
                              {"min_mass_margin": mass_margin(top_k_only(logits, params["top_k"]), *args[::2])})}))
    return cases


def cases(suite) -> list[NumericsCase]:
    return top_k_cases() + distribution_cases()
