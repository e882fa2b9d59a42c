"""What every recipe is and gives: the registry entry (`Recipe`: the function that makes a new draft, the verifier
states it reads and its own options) and the new draft (`Start`: config, initial tensors, frozen tensors). Recipes
reach tensors by role through the layout document (`Roles`), which alone names them on disk (CONTRIBUTING.md
section 2).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
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
    init: dict | None = None  # warm_start: the draft the weights came from ({"path", "provenance"})


# config fields a warm start may differ in: how the earlier draft was written, not what it computes
WRITTEN = ("dtype", "specfmt_provenance")


def warm_start(start: Start, path: Path) -> Start:
    """`start` with the trainable weights of the draft at `path` (--init), which must have `start`'s config (less
    how it was written) and every tensor of `start` at its shape, frozen ones equal: the same verifier, data
    vocabulary and recipe options. Read with the converters' reader (safetensors only, headers checked first)."""
    import torch

    from specfmt.convert.common import SourceError, read_json, read_tensors
    from specfmt.train.outs import portable

    try:
        config, (tensors, _) = read_json(path / "config.json"), read_tensors(path)
    except SourceError as e:
        raise ValueError(f"--init: {e}") from None
    if not isinstance(config, dict):
        raise ValueError(f"--init {path / 'config.json'}: expected a JSON object, found {type(config).__name__}")
    ours, theirs = ({k: v for k, v in c.items() if k not in WRITTEN} for c in (json.loads(json.dumps(start.config)),
                                                                         config))
    problems = [f"/{k}: expected {json.dumps(ours.get(k))}, found {json.dumps(theirs.get(k))}"
                for k in sorted(ours.keys() | theirs.keys()) if ours.get(k) != theirs.get(k)]
    for name, t in sorted(start.tensors.items()):
        found = tensors.get(name)
        if found is None or found.shape != t.shape:
            problems.append(f"{name}: expected shape {list(t.shape)}, found "
                            + ("no such tensor" if found is None else f"{list(found.shape)}"))
        elif name in start.frozen and not torch.equal(found.to(t.dtype), t):
            problems.append(f"{name}: expected the values this data gives (a frozen tensor), found others")
    problems += [f"{name}: expected no such tensor, found one" for name in sorted(tensors.keys() - start.tensors)]
    if problems:
        raise ValueError(f"--init {path} is not a draft of this run's config and data: " + "; ".join(problems))
    weights = {n: t if n in start.frozen else tensors[n].to(t.dtype) for n, t in start.tensors.items()}
    return Start(start.config, weights, start.frozen,
                 {"path": portable([str(path)])[0], "provenance": config.get("specfmt_provenance")})


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
