"""Loading a draft for the reference runtime: validate, read, resolve, bind by role, build.

Spec: spec/index.md#GEN-1 (a runtime rejects what a validator finds in error)
"""

from __future__ import annotations

from pathlib import Path

import torch

from specfmt.algorithms import ALGORITHMS
from specfmt.checkpoint import load
from specfmt.defaults import resolve
from specfmt.findings import ValidationError
from specfmt.proposal import Draft, Proposal
from specfmt.validate import validate
from specfmt.verifier import Verifier
from specfmt.weights import bind_roles


def load_draft(path: str | Path, verifier: Verifier, profile: str = "compat") -> tuple[Draft, dict]:
    """The draft at `path` bound to `verifier`, and its resolved config. Raises ValidationError with
    every finding when the checkpoint has an error under `profile`."""
    report = validate(path, profile)
    if report.errors:
        raise ValidationError(report.errors)
    config, tensors = load(path)
    resolved = resolve(config)
    return build_draft(resolved, on_verifier(tensors, verifier), verifier), resolved


def on_verifier(tensors: dict, verifier: Verifier) -> dict:
    """The tensors on the verifier's device, floats in its dtype: how a draft runs beside it."""
    return {k: v.to(device=verifier.device, dtype=verifier.dtype if v.is_floating_point() else v.dtype)
            for k, v in tensors.items()}


class DraftRejected(ValueError):
    """A draft that validates but that the runtime cannot run with this verifier (the module's problems)."""


def build_draft(resolved: dict, tensors: dict, verifier: Verifier) -> Draft:
    """The draft of a resolved config, its tensors (by on-disk name) bound by role, attached to `verifier`;
    DraftRejected lists every problem at once."""
    algorithm = resolved["speculators_model_type"]
    module, w = ALGORITHMS[algorithm], bind_roles(algorithm, resolved, tensors)
    problems = module.problems(resolved, w, verifier)
    if problems:
        raise DraftRejected(f"{algorithm} checkpoint rejected: " + "; ".join(problems))
    return module.build(resolved, w, verifier)


def default_proposal(config: dict) -> Proposal:
    """The checkpoint's default proposal method with its fields (spec/config.md#CFG-6)."""
    sc = config["speculators_config"]
    method = next(m for m in sc["proposal_methods"] if m["proposal_type"] == sc["default_proposal_method"])
    if method["proposal_type"] == "greedy":
        return Proposal("greedy", method["speculative_tokens"], method["verifier_accept_k"],
                        method["accept_tolerance"])
    if method["proposal_type"] == "sampling":
        if method["accept_lenience"] != 1.0:  # CFG-7: lossy, and its accept test is not defined yet
            raise ValueError(f"accept_lenience {method['accept_lenience']} is lossy and the reference runtime "
                             "does not implement it; only 1.0 (lossless rejection sampling) runs")
        return Proposal("sampling", method["speculative_tokens"], temperature=1.0)
    raise NotImplementedError(f"proposal_type {method['proposal_type']!r}: tree verification comes in a later version")


def pick_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
            "float16": torch.float16}[name]
