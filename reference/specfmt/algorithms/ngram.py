"""N-gram prompt lookup: copy the tokens that followed the earliest earlier occurrence of the
longest matching suffix of the context (vLLM's rule); no weights, no verifier state.

Spec: spec/algorithms/ngram.md (forward computation, ALG-NGRAM-*)
"""

from __future__ import annotations

import torch

from specfmt.proposal import Context, Drafted, Picker
from specfmt.verifier import Verifier


def lookup(context: list[int], n_min: int, n_max: int, k: int) -> list[int]:
    """The ALG-NGRAM-3 proposal: 0..k tokens. Spec: spec/algorithms/ngram.md#ALG-NGRAM-3"""
    c = len(context)
    for n in range(n_max, n_min - 1, -1):  # largest n first
        if n >= c:
            continue  # needs an earlier start with a following token
        suffix = context[c - n:]
        for i in range(c - n):  # earliest occurrence first; may overlap the suffix itself
            if context[i:i + n] == suffix:
                return context[i + n:min(i + n + k, c)]
    return []


def problems(config: dict, w: dict, verifier: Verifier) -> list[str]:
    """Nothing beyond validation: the lookup reads only token ids."""
    return []


class Ngram:
    aux_ids: tuple[int, ...] = ()  # reads token ids only
    targets = None  # the verifier's vocabulary

    def __init__(self, config: dict, w: dict):
        self.w = w  # empty: the type has no tensors (ALG-NGRAM-2)
        self.n_min, self.n_max = config["prompt_lookup_min"], config["prompt_lookup_max"]

    def reset(self) -> None:
        """Nothing to forget: each proposal reads only the context."""

    def propose(self, ctx: Context, k: int, pick: Picker) -> Drafted:
        """Lookup over every committed token including the pending x[n]: 0 to k tokens, verified as
        they are; q is one-hot, so `pick` is not called. Spec: spec/algorithms/ngram.md#ALG-NGRAM-5"""
        return Drafted(torch.tensor(lookup(ctx.tokens, self.n_min, self.n_max, k), dtype=torch.long))


def build(config: dict, w: dict, verifier: Verifier) -> Ngram:
    return Ngram(config, w)
