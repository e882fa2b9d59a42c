"""The n-gram lookup as the ALG-NGRAM-3 broken adapters answer it: `propose` on an ngram draft runs a damaged lookup
over the context, every other draft the reference's."""

import torch
from _base import OPERATIONS

from specfmt.algorithms.ngram import Ngram


def propose_with(lookup):
    """A `propose` operation whose n-gram drafts run lookup(context, n_min, n_max, k) -> tokens."""
    def propose(model, params: dict, x: dict) -> dict:
        if not isinstance(model.draft, Ngram):
            return OPERATIONS["propose"](model, params, x)
        tokens = lookup(x["token_ids"].tolist(), model.draft.n_min, model.draft.n_max, params["k"])
        return {"draft_tokens": torch.tensor(tokens, dtype=torch.long)}
    return propose
