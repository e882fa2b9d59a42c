"""The recipes of `specfmt train`: what a new draft looks like for a verifier (its strict config, its initial
tensors and which the trainer must not change), one module per trainable algorithm, all with one signature
(common.Make). The math they train is the runtime's own. A new recipe is its module and one line here.
"""

from __future__ import annotations

from specfmt.train.recipes import eagle3, medusa, mlp_speculator
from specfmt.train.recipes.common import Recipe, Start, warm_start

RECIPES: dict[str, Recipe] = {
    "eagle3": eagle3.RECIPE,
    "medusa": medusa.RECIPE,
    "mlp_speculator": mlp_speculator.RECIPE,
}
DEFAULT = "eagle3"  # the draft datagen keeps aux states for unless told

__all__ = ["DEFAULT", "RECIPES", "Recipe", "Start", "warm_start"]

