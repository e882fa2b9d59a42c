"""P-EAGLE draft: the EAGLE-3 network run once over its context rows plus K-1 depth rows, each depth
row carrying mask_token_id and the learned state mask_hidden instead of a real token and verifier state.

The EAGLE-3 math (combine, row, d2t) is reused from eagle3.Eagle3; only the row set differs.
Spec: spec/algorithms/peagle.md (forward computation, ALG-PEAGLE-*)
"""

from __future__ import annotations

import torch

from specfmt.algorithms import eagle3
from specfmt.proposal import Context, Drafted, Picker, to_target
from specfmt.tree_step import DepthExpander
from specfmt.verifier import Verifier


def problems(config: dict, w: dict, verifier: Verifier) -> list[str]:
    """EAGLE-3's checks, and mask_token_id inside the vocabulary (validation does not check m < V)."""
    m, out = config["mask_token_id"], eagle3.problems(config, w, verifier)
    return out + ([] if 0 <= m < verifier.vocab_size else [f"mask_token_id must lie in [0, {verifier.vocab_size}); "
                                                           f"found {m}"])


class PEagle:
    def __init__(self, config: dict, w: dict, verifier: Verifier):
        self.eagle = eagle3.Eagle3(config, w, verifier)
        self.aux_ids, self.w, self.targets = self.eagle.aux_ids, w, self.eagle.targets
        self.mask_token_id = config["mask_token_id"]
        self.device = verifier.device

    def reset(self) -> None:
        """Start a new sequence: the next propose rebuilds every cached row."""
        self.eagle.reset()

    def forward_pass(self, row_tokens: torch.Tensor, aux: torch.Tensor, start: int, k: int) -> torch.Tensor:
        """Context rows start..start+T-1 (token x[t+1], verified aux state) and k-1 depth rows after them,
        in one pass -> logits of the last context row and the depth rows: [k, V_d].
        Spec: spec/algorithms/peagle.md#ALG-PEAGLE-4"""
        eagle, t = self.eagle, row_tokens.numel()
        positions = torch.arange(start, start + t + k - 1, device=self.device)  # depth s sits at n-1+s
        mask_tokens = torch.full((k - 1,), self.mask_token_id, device=self.device)
        mask_state = eagle.combine(self.w["mask_hidden"].view(1, -1))  # [1, 1, A*H_t] -> [1, A*H_t] -> [1, H]
        g = torch.cat([eagle.combine(aux), mask_state.expand(k - 1, -1)])  # [T, H], [k-1, H] -> [T+k-1, H]
        # Rows are in position order, so forward_rows' causal mask is "attend up to your own position".
        logits, _ = eagle.forward_rows(torch.cat([row_tokens, mask_tokens]), g, positions)
        return logits[-k:]

    def propose(self, ctx: Context, k: int, pick: Picker) -> Drafted:
        """All k proposals from one pass: new context rows, then k-1 depth rows.
        Spec: spec/algorithms/peagle.md#ALG-PEAGLE-4"""
        ids, probs = [], []
        for row in self.depth_logits(ctx, k):  # row n-1 (depth 0) predicts position n+1, depth row s position n+s+1
            draft_id, q = pick(row)  # no row reads an earlier pick (ALG-PEAGLE-6)
            ids.append(draft_id)
            probs.append(q)
        return to_target(ids, probs, self.targets, self.eagle.vocab_size)

    def branch(self, ctx: Context, depth: int) -> DepthExpander:
        """Every node at depth d draws its children from depth row d, whatever its tokens. Spec: spec/trees.md#TRE-5"""
        return DepthExpander(self.depth_logits(ctx, depth))

    def depth_logits(self, ctx: Context, k: int) -> torch.Tensor:
        """The logits of depth 0..k-1 [k, V_d] from one pass over the new context rows and k-1 depth rows."""
        eagle, n = self.eagle, len(ctx.tokens) - 1  # n: positions the verifier has run
        eagle.verified_rows = min(eagle.verified_rows, n - 1)  # row n-1 (depth 0) is in every pass: it is read
        for cache in eagle.caches:
            cache.truncate(eagle.verified_rows)  # drop the depth rows of the last pass (ALG-PEAGLE-5)
        new = torch.arange(eagle.verified_rows, n, device=self.device)
        tokens = torch.tensor(ctx.tokens, device=self.device)
        logits = self.forward_pass(tokens[new + 1], ctx.aux[new], eagle.verified_rows, k)
        eagle.verified_rows = n  # only the context rows are verified; the depth rows go at the next truncate
        return logits


def build(config: dict, w: dict, verifier: Verifier) -> PEagle:
    return PEagle(config, w, verifier)
