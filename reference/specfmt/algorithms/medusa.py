"""Medusa draft: independent heads of residual SiLU blocks on the verifier's final-normed state;
head j predicts the token j + 2 positions after that state.

Spec: spec/algorithms/medusa.md (forward computation, ALG-MEDUSA-*)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from specfmt.findings import Refused
from specfmt.proposal import Context, Drafted, Picker, Sample, to_target
from specfmt.tree_step import DepthExpander
from specfmt.verifier import Verifier


def problems(config: dict, w: dict, verifier: Verifier) -> list[str]:
    """Nothing beyond validation: the layout shapes every head by the binding's hidden_size and vocab_size,
    which specfmt.binding compares with the verifier's before this. Spec: spec/algorithms/medusa.md#ALG-MEDUSA-4"""
    return []


class Medusa:
    aux_ids: tuple[int, ...] = ()  # reads ctx.normed, the state the verifier's LM head reads
    targets = None  # the verifier's vocabulary

    def __init__(self, config: dict, w: dict, verifier: Verifier):
        self.w = w
        self.num_heads, self.num_layers = config["medusa_num_heads"], config["medusa_num_layers"]
        self.original_lm_head = config["original_lm_head"]
        self.verifier = verifier

    def head(self, j: int, g: torch.Tensor) -> torch.Tensor:
        """Head j (the spec's k) on state g: [..., H] -> logits [..., V]."""
        v = g
        for r in range(self.num_layers):
            bias = self.w["block_bias"][j][r] if "block_bias" in self.w else None
            v = v + F.silu(F.linear(v, self.w["block"][j][r], bias))  # [H] -> [H]
        w_out = self.verifier.lm_head if self.original_lm_head else self.w["lm_head"][j]
        return F.linear(v, w_out)  # [H] -> [V]

    def train_forward(self, sample: Sample, steps: int) -> list[torch.Tensor]:
        """Head k on every row's verifier state: row t predicts position t + 2 + k. Spec: ALG-MEDUSA-5"""
        return [self.head(k, sample.normed) for k in range(steps)]

    def reset(self) -> None:
        """Nothing to forget: each proposal reads only the context."""

    def propose(self, ctx: Context, k: int, pick: Picker) -> Drafted:
        """Heads 0..k-1 on the state at position n-1; no head reads a drafted token.
        Spec: spec/algorithms/medusa.md#ALG-MEDUSA-5"""
        if k > self.num_heads:  # ALG-MEDUSA-2
            raise Refused("refused.k_above_limit", f"medusa cannot propose {k} tokens with {self.num_heads} heads")
        g = ctx.normed[-1]  # the state whose logits chose the pending token x[n]
        ids, probs = [], []
        for j in range(k):
            draft_id, q = pick(self.head(j, g))  # predicts position n+1+j
            ids.append(draft_id)
            probs.append(q)
        return to_target(ids, probs, None, self.verifier.vocab_size)

    def branch(self, ctx: Context, depth: int) -> DepthExpander:
        """Every node at depth d draws its children from head d, whatever its tokens. Spec: spec/trees.md#TRE-5"""
        if depth > self.num_heads:  # ALG-MEDUSA-2
            raise Refused("refused.k_above_limit", f"medusa cannot draft depth {depth} with {self.num_heads} heads")
        return DepthExpander(torch.stack([self.head(j, ctx.normed[-1]) for j in range(depth)]))  # [D, V]


def build(config: dict, w: dict, verifier: Verifier) -> Medusa:
    return Medusa(config, w, verifier)
