"""Loading a draft for the reference runtime: validate, read, resolve, bind by role, build.

Spec: spec/index.md#GEN-1 (a runtime rejects what a validator finds in error)
"""

from __future__ import annotations

from pathlib import Path

import torch

from specfmt import binding
from specfmt.algorithms import ALGORITHMS
from specfmt.checkpoint import load
from specfmt.defaults import resolve
from specfmt.findings import Finding, Refused, ValidationError
from specfmt.proposal import Draft, Proposal
from specfmt.tree import DynamicTree, StaticTree, shape_of
from specfmt.validate import validate
from specfmt.verifier import Verifier
from specfmt.weights import bind_roles


def load_draft(path: str | Path, verifier: Verifier, profile: str = "compat",
               verifier_dir: str | Path | None = None) -> tuple[Draft, dict]:
    """The draft at `path` bound to `verifier` (loaded from `verifier_dir`, named in messages), and its resolved
    config. Raises CheckpointInvalid with every finding when the checkpoint has an error under `profile`, and
    BindingError before any forward when the draft was made for another verifier."""
    report = validate(path, profile)
    if report.errors:
        raise CheckpointInvalid(report.errors)
    config, tensors = load(path)
    resolved = resolve(config)
    files = (str(Path(path) / "config.json"), str(Path(verifier_dir) / "config.json") if verifier_dir else VERIFIER)
    return build_draft(resolved, on_verifier(tensors, verifier), verifier, files), resolved


def on_verifier(tensors: dict, verifier: Verifier) -> dict:
    """The tensors on the verifier's device, floats in its dtype: how a draft runs beside it."""
    return {k: v.to(device=verifier.device, dtype=verifier.dtype if v.is_floating_point() else v.dtype)
            for k, v in tensors.items()}


class CheckpointInvalid(ValidationError):
    """A checkpoint that validation finds in error under the runtime's profile: rejected before it is read, with
    every finding. Spec: spec/index.md#GEN-1"""

    refusal = "refused.invalid"  # what a conformance adapter answers (conformance/PROTOCOL.md 3.4)


class DraftRejected(Refused):
    """A draft that validates but that the runtime cannot run with this verifier (the module's problems)."""

    def __init__(self, message: str):
        super().__init__("refused.draft", message)


class BindingError(DraftRejected):
    """A draft made for another verifier: its findings (config.verifier_mismatch, config.aux_layer_range) name
    the draft's statement and the verifier's fact."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        super().__init__("; ".join(f"{f.message} [{f.code}]" for f in findings))


VERIFIER = "the verifier's config.json"  # how a message names a verifier built in memory


def check_binding(resolved: dict, verifier: Verifier, draft_file: str = "config.json",
                  verifier_file: str = VERIFIER) -> None:
    """Raise BindingError when the resolved draft states a verifier fact that `verifier` contradicts."""
    facts = {"hidden_size": verifier.config.get("hidden_size"), "num_hidden_layers": verifier.num_layers,
             "vocab_size": verifier.vocab_size}
    findings = binding.check(resolved, facts, draft_file, verifier_file)
    if findings:
        raise BindingError(findings)


def build_draft(resolved: dict, tensors: dict, verifier: Verifier,
                files: tuple[str, str] = ("config.json", VERIFIER)) -> Draft:
    """The draft of a resolved config, its tensors (by on-disk name) bound by role, attached to `verifier`;
    BindingError for a draft made for another verifier (`files` name the two config.json files), DraftRejected
    listing every other problem at once."""
    check_binding(resolved, verifier, *files)
    algorithm = resolved["speculators_model_type"]
    module, w = ALGORITHMS[algorithm], bind_roles(algorithm, resolved, tensors)
    problems = module.problems(resolved, w, verifier)
    if problems:
        raise DraftRejected(f"{algorithm} checkpoint rejected: " + "; ".join(problems))
    return module.build(resolved, w, verifier)


def default_method(config: dict) -> dict:
    """The checkpoint's default proposal method, an entry of proposal_methods (spec/config.md#CFG-6)."""
    sc = config["speculators_config"]
    return next(m for m in sc["proposal_methods"] if m["proposal_type"] == sc["default_proposal_method"])


def default_proposal(config: dict) -> Proposal:
    """The checkpoint's default proposal method with its fields (spec/config.md#CFG-6). A tree method decodes
    greedily (its tree is default_shape's): it carries no verification rule of its own, and a runtime that decodes
    greedily verifies by TRE-7. Spec: spec/trees.md#TRE-9"""
    method = default_method(config)
    if method["proposal_type"] in ("static_tree", "dynamic_tree"):
        return Proposal("greedy", method["depth"])
    if method["proposal_type"] == "greedy":
        return Proposal("greedy", method["speculative_tokens"], method["verifier_accept_k"],
                        method["accept_tolerance"])
    if method["proposal_type"] == "sampling":
        if method["accept_lenience"] != 1.0:  # CFG-7: lossy, and its accept test is not defined yet
            raise ValueError(f"accept_lenience {method['accept_lenience']} is lossy and the reference runtime "
                             "does not implement it; only 1.0 (lossless rejection sampling) runs")
        return Proposal("sampling", method["speculative_tokens"], temperature=1.0)
    raise NotImplementedError(f"proposal_type {method['proposal_type']!r} is not a proposal method of spec/config.md")


def default_shape(config: dict) -> StaticTree | DynamicTree | None:
    """The tree of the checkpoint's default proposal method (a resolved config: the method's fields defaulted),
    for generate(shape=...); None when the method is a chain. Spec: spec/trees.md#TRE-3, spec/trees.md#TRE-4"""
    return shape_of(default_method(config))


def pick_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
            "float16": torch.float16}[name]
