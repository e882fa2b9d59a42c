"""What every recipe is and gives: the registry entry (`Recipe`: the function that makes a new draft, the verifier
states it reads and its own options) and the new draft (`Start`: config, initial tensors, frozen tensors). Recipes
reach tensors by role through the layout document (`Roles`), which alone names them on disk (CONTRIBUTING.md
section 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from specfmt.defaults import resolve
from specfmt.layout import expand
from specfmt.train.options import TrainOptions

if TYPE_CHECKING:  # the registry is read when the parser is built, which never imports torch (specfmt.cli)
    import torch

    from specfmt.verifier import Verifier


@dataclass
class Start:
    """A new draft: its strict config, its initial tensors and the tensors the trainer leaves as they are (both by
    the names the layout document gives the roles)."""

    config: dict
    tensors: dict[str, torch.Tensor]
    frozen: set[str] = field(default_factory=set)


class Make(Protocol):
    def __call__(self, verifier: Verifier, verifier_name: str, opts: TrainOptions, own: Any,
                 token_counts: torch.Tensor) -> Start:
        """The new draft for `verifier` (named by its hub id), trained with `opts`; `own` is an instance of the
        recipe's options (None when it declares none); `token_counts` counts each supervised token of the data."""


def no_aux(num_layers: int) -> tuple[int, ...]:
    """A draft that reads none of the verifier's intermediate states (heads on its last state)."""
    return ()


@dataclass(frozen=True)
class Recipe:
    """One trainable algorithm: how a new draft is made, which verifier states it reads (for a verifier of N
    layers) and its own options (a dataclass of specfmt.train.options fields: their flags join specfmt train's)."""

    make: Make
    aux_ids: Callable[[int], tuple[int, ...]] = no_aux
    options: type | None = None


class Roles:
    """The active tensors of a config's layout, by role: a recipe says "lm_head" and the layout names it."""

    def __init__(self, config: dict):
        resolved = resolve(config)
        _, expected, errors = expand(resolved["speculators_model_type"], resolved)
        if errors:
            raise ValueError(f"the layout does not evaluate on this config: {errors}")
        self.role_of = {e.name: e.role for e in expected if e.active}

    def names(self, *roles: str) -> list[str]:
        """The on-disk names of the active tensors playing any of `roles`, in layout order."""
        return [name for name, role in self.role_of.items() if role in roles]

    def name(self, role: str) -> str:
        """The on-disk name of the one active tensor playing `role`."""
        (found,) = self.names(role)
        return found


def is_norm(role: str) -> bool:
    """A normalization's scale: roles such as norm, layer0.hidden_norm, layer0.input_layernorm."""
    return role.rpartition(".")[2].endswith("norm")
