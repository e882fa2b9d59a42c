"""--from mlp-speculator: IBM fms-extras MLPSpeculator Hugging Face directories as a strict `mlp_speculator` checkpoint.

The source is config.json (model_type mlp_speculator: emb_dim, the verifier's hidden size; inner_dim, 0 meaning
emb_dim; n_predict; top_k_tokens_per_head; n_candidates; tie_weights; scale_input; vocab_size) and its weights,
whose names may carry the HF wrapper's prefix speculator.: emb.{i}.weight, proj.{i}.weight, ln.{i}.{weight,bias},
head.{i}.weight. With tie_weights fms shares emb, head and ln with stage 0 and proj.{i>=2} with proj.1, and a save
that drops shared tensors stores only those copies. Upstream: foundation-model-stack/fms-extras
fms_extras/models/speculator.py (MLPSpeculator, _rename_hf_weights_to_fms), models/hf/modeling_mlp_speculator.py.
Spec: spec/algorithms/mlp_speculator.md
"""

from __future__ import annotations

import json
import re

import torch

from specfmt.convert.common import (
    Conversion,
    Decision,
    Refusal,
    Source,
    SourceError,
    VerifierFacts,
    finish,
    float_dtype,
    renamed,
    some_names,
)
from specfmt.envelope import envelope

NAME = re.compile(r"(emb|proj|head)\.(\d+)\.weight|ln\.(\d+)\.(weight|bias)")
PREFIX = [(r"speculator\.(.+)", r"\1")]  # the HF wrapper's module name, which fms strips on load
FLAGS = {"scale_input": False, "tie_weights": False, "inner_dim": 0}  # MLPSpeculatorConfig's defaults


def convert(source: Source, verifier: VerifierFacts, given: dict) -> Conversion:
    """The strict `mlp_speculator` checkpoint of an fms-extras HF directory. Spec: spec/algorithms/mlp_speculator.md"""
    if source.config is None:
        raise SourceError(f"{source.path}: no config.json; an fms-extras MLPSpeculator directory has one")
    cfg, where, decisions, refusals = source.config, f"{source.path}/config.json", [], []
    tensors = renamed(source.tensors, PREFIX, decisions)
    unknown = sorted(n for n in tensors if not NAME.fullmatch(n))
    if unknown:
        raise SourceError(f"{source.path}: {some_names(unknown)} are not MLPSpeculator tensors; expected "
                          "emb.{i}.weight, proj.{i}.weight, ln.{i}.weight, ln.{i}.bias and head.{i}.weight")
    stated = {**cfg, **given}
    flags = {}
    for key, default in FLAGS.items():
        flags[key] = stated.get(key, default)
        if key not in stated:
            decisions.append(Decision("default", key, f"{json.dumps(default)}: absent, MLPSpeculatorConfig's default"))
    n_predict = stage_count(tensors, stated, where, decisions, refusals)
    if n_predict and flags["tie_weights"]:
        untie(tensors, n_predict, where, decisions, refusals)
    elif n_predict:
        missing = [n for n in stage_names(n_predict) if n not in tensors]
        if missing:
            refusals.append(Refusal(where, "/tie_weights", f"tie_weights is {json.dumps(cfg.get('tie_weights'))}, but "
                                    f"{missing} are absent", "--set tie_weights=true (fms tying fills them in)"))
    check_verifier(tensors, verifier, where, refusals)
    k = n_predict or 1  # a placeholder where a refusal already speaks
    fields = dict(flags, n_predict=k, **tree_keys(cfg, k, decisions))
    decisions.append(Decision("default", "speculators_config.proposal_methods[0].speculative_tokens",
                              f"{k}: one token per stage (vLLM's default num_speculative_tokens is n_predict)"))
    dtype = float_dtype(tensors, str(source.path))
    config = envelope("mlp_speculator", verifier.config, verifier.name, k, dtype, **fields)
    return finish(config, tensors, decisions, given, str(source.path), verifier, refusals)


def stage_names(n_predict: int) -> list[str]:
    """Every tensor name of the v1 layout for n_predict stages."""
    per_stage = [f"{kind}.{i}.{part}" for i in range(n_predict)
                 for kind, part in (("emb", "weight"), ("proj", "weight"), ("ln", "weight"), ("ln", "bias"),
                                    ("head", "weight"))]
    return sorted(per_stage)


def stage_count(tensors: dict, stated: dict, where: str, decisions: list, refusals: list) -> int:
    """n_predict as config.json states it (sw and ew depend on it); absent, counted from the heads when every
    stage stores one. Names of a stage at or beyond it are refused."""
    highest = max(int(next(g for g in NAME.fullmatch(n).groups()[1:3] if g)) for n in tensors) + 1
    n_predict = stated.get("n_predict")
    if n_predict is None:
        heads = sum(f"head.{i}.weight" in tensors for i in range(highest))
        if heads != highest:
            refusals.append(Refusal(where, "/n_predict", "n_predict is absent and the tensors do not show every "
                                    "stage (tied weights)", "--set n_predict=N"))
            return 0
        decisions.append(Decision("translated", "n_predict", f"{highest}: absent, counted from head.{{i}}.weight"))
        return highest
    if not isinstance(n_predict, int) or n_predict < 1 or highest > n_predict:
        raise SourceError(f"{where}: n_predict is {json.dumps(n_predict)}, but the tensors hold stage {highest - 1}")
    return n_predict


def untie(tensors: dict, n_predict: int, where: str, decisions: list, refusals: list) -> None:
    """Each stage's name filled from the copy fms ties it to (emb, head, ln to stage 0, proj.{i>=2} to proj.1);
    v1 stores every name (ALG-MLP-3). Tied copies that differ are refused: which one fms would load is unknown."""
    groups = [[f"emb.{i}.weight" for i in range(n_predict)], [f"head.{i}.weight" for i in range(n_predict)],
              [f"ln.{i}.weight" for i in range(n_predict)], [f"ln.{i}.bias" for i in range(n_predict)],
              [f"proj.{i}.weight" for i in range(1, n_predict)]]
    filled = []
    for names in (g for g in groups if g):
        present = [n for n in names if n in tensors]
        if not present:
            raise SourceError(f"{where}: tie_weights is true, but none of {names} is stored")
        if any(not torch.equal(tensors[present[0]], tensors[n]) for n in present[1:]):
            refusals.append(Refusal(where, "/tie_weights", f"tie_weights is true, but the stored {present} differ",
                                    "--set tie_weights=false (each stage keeps its own)"))
            continue
        for name in names:
            if name not in tensors:
                tensors[name] = tensors[present[0]].clone()
                filled.append(name)
    if filled:
        decisions.append(Decision("computed", "emb.*, head.*, ln.*, proj.*", f"{len(filled)} tied copies written "
                                  f"under each stage's own name ({', '.join(filled)}): fms ties emb, head and ln to "
                                  "stage 0 and proj.{i>=2} to proj.1, and v1 stores every name"))
    if "proj.0.weight" not in tensors:
        raise SourceError(f"{where}: proj.0.weight is absent (fms never ties it)")


def tree_keys(cfg: dict, n_predict: int, decisions: list) -> dict:
    """top_k_tokens_per_head and n_candidates, the fms tree search's keys, kept when they fit the stages."""
    out = {}
    top_k = cfg.get("top_k_tokens_per_head")
    if isinstance(top_k, list) and len(top_k) == n_predict:
        out["top_k_tokens_per_head"] = top_k
    elif top_k is not None:
        decisions.append(Decision("dropped", "top_k_tokens_per_head", f"{json.dumps(top_k)} does not have one entry "
                                  f"per stage ({n_predict}); only the tree search reads it"))
    if "n_candidates" in cfg:
        out["n_candidates"] = cfg["n_candidates"]
    return out


def check_verifier(tensors: dict, verifier: VerifierFacts, where: str, refusals: list) -> None:
    """proj.0 reads the verifier's hidden state and head.0 writes its vocabulary."""
    found = {}
    if "proj.0.weight" in tensors:
        found["hidden_size"] = tensors["proj.0.weight"].shape[1]
    if "head.0.weight" in tensors:
        found["vocab_size"] = tensors["head.0.weight"].shape[0]
    for key, value in found.items():
        if value != verifier.config[key]:
            refusals.append(Refusal(where, "", f"the speculator's {key} is {value}, the verifier's is "
                                    f"{verifier.config[key]}", f"--verifier PATH (a verifier with {key} {value})"))

