"""The mlp_speculator recipe: fms-extras stages with scale_input; layer norms start as the identity (scale one,
bias zero), every other tensor at N(0, 1/sqrt(D))."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from specfmt.envelope import envelope
from specfmt.train.options import TrainOptions
from specfmt.train.recipes.common import Recipe, Roles, Start

if TYPE_CHECKING:
    import torch

    from specfmt.verifier import Verifier

IDENTITY = {"ln": 1.0, "ln_bias": 0.0}  # the layer norms' roles: their initial value


def make(verifier: Verifier, verifier_name: str, opts: TrainOptions, own: None, token_counts: torch.Tensor) -> Start:
    import torch

    from specfmt.synthetic import random_tensors

    k = opts.steps
    config = envelope("mlp_speculator", verifier.config, verifier_name, k, n_predict=k, inner_dim=0,
                      tie_weights=False, scale_input=True, top_k_tokens_per_head=[1] * k, n_candidates=1)
    roles, g, tensors = Roles(config), torch.Generator().manual_seed(opts.seed), {}
    for name, t in random_tensors(config, opts.seed).items():
        role = roles.role_of[name]
        if role in IDENTITY:
            tensors[name] = torch.full_like(t, IDENTITY[role])
        else:
            tensors[name] = torch.randn(t.shape, generator=g) / math.sqrt(t.shape[-1])
    return Start(config, tensors)


RECIPE = Recipe(make)
