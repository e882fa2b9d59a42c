"""The medusa recipe: residual SiLU heads on the verifier's final state, zero-initialised (each head starts as the
verifier's own next-token head), the verifier's lm_head shared (original_lm_head)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from specfmt.envelope import envelope
from specfmt.train.options import TrainOptions
from specfmt.train.recipes.common import Recipe, Start

if TYPE_CHECKING:
    import torch

    from specfmt.verifier import Verifier


def make(verifier: Verifier, verifier_name: str, opts: TrainOptions, own: None, token_counts: torch.Tensor) -> Start:
    import torch

    from specfmt.synthetic import random_tensors

    config = envelope("medusa", verifier.config, verifier_name, opts.steps, medusa_num_heads=opts.steps,
                      medusa_num_layers=1, medusa_fc_bias=True, original_lm_head=True)
    return Start(config, {n: torch.zeros_like(t) for n, t in random_tensors(config, opts.seed).items()})


RECIPE = Recipe(make)
