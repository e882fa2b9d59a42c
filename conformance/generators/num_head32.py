"""Numerics fixtures and cases with head_dim 32, the smallest an inference engine's CPU attention runs
(vLLM's needs head_dim 32, 64, 80, ...; the fixtures of num_fixtures have head_dim 8).

Sizes: a 3-layer llama verifier, hidden 32 (one query and one key-value head of 32), intermediate 32,
vocabulary 64; 1-layer eagle3 (draft vocabulary 32, with d2t), peagle and dflash drafts, and a 2-layer
dflash draft with `sliding_window_non_causal: false` whose layers have distinct k_norm weights (both
points on which engines are known to diverge from spec/algorithms/dflash.md). The configs carry what
engines need beyond the schema (`hidden_act`, `torch_dtype`); `verifier.name_or_path` stays a
placeholder that an adapter points at the verifier fixture. Weights are multiples of 1/256 in
[-1/4, 1/4] (norm weights 1 + k/64, |k| <= 8), stored in bfloat16, where they are exact: logits are
O(1), so top-2 margins are wide. Every propose context ends in the verifier's greedy token
(numerics.context), so an engine reaches it by decoding one token after the rest.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from conformance.generators import num_fixtures, variants
from conformance.generators.common import write_json
from conformance.generators.num_fixtures import FIXTURES
from conformance.generators.numerics import NumericsCase, generate_case, proposal_cases
from specfmt import save
from specfmt.safetensors_file import write_tensors

ROOT = FIXTURES / "head32"
VERIFIER = (ROOT / "verifier").as_posix()
H, V, V_D, N_VERIFIER = 32, 64, 32, 3
DIMS = {"hidden_size": H, "intermediate_size": 32, "num_attention_heads": 1, "num_key_value_heads": 1,
        "head_dim": 32, "vocab_size": V, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu"}
VERIFIER_CONFIG = {**variants.VERIFIER_CONFIG, **DIMS, "num_hidden_layers": N_VERIFIER,
                   "torch_dtype": "float32"}
EAGLE3 = {"draft_vocab_size": V_D, "eagle_aux_hidden_state_layer_ids": [0, 1, 2]}
DFLASH = {"draft_vocab_size": V, "aux_hidden_state_layer_ids": [1, 2, 3], "mask_token_id": V - 1}
# fixture name -> (builder variant, top-level changes, transformer layers)
DRAFTS = {
    "eagle3": ("eagle3", EAGLE3, 1),
    "peagle": ("peagle", dict(EAGLE3, draft_vocab_size=V, mask_token_id=V - 1), 1),
    "dflash": ("dflash", dict(DFLASH, sliding_window_non_causal=True), 1),
    "dflash-2l-causal": ("dflash", dict(DFLASH, sliding_window_non_causal=False), 2),
}


def draft_path(name: str) -> str:
    return (ROOT / name).as_posix()


def weights(tensors: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """num_fixtures.weights with norms 1 + j/64 (|j| <= 8) and others j/256 (|j| <= 64): wider layers."""
    return num_fixtures.weights(tensors, seed, norm_k=8, k=64, scale=256)


def shaped(variant: str, changes: dict, layers: int | None) -> dict:
    """A builder variant with these dimensions, `changes` at the top level and `layers` decoder layers (when it
    has a transformer_layer_config), stored in bfloat16."""
    config = copy.deepcopy(variants.VARIANTS[variant])
    config.update(copy.deepcopy(changes), dtype="bfloat16")
    config["speculators_config"]["verifier"].update(hidden_size=H, vocab_size=V, num_hidden_layers=N_VERIFIER)
    if "transformer_layer_config" in config:
        config["transformer_layer_config"].update(DIMS, num_hidden_layers=layers)
    return config


def draft_config(name: str) -> dict:
    return shaped(*DRAFTS[name])


def write_fixtures(suite: Path) -> None:
    wrapped = {"speculators_model_type": "independent", "transformer_layer_config": VERIFIER_CONFIG,
               "speculators_config": variants.VARIANTS["independent"]["speculators_config"]}
    write_json(suite / VERIFIER / "config.json", VERIFIER_CONFIG)
    write_tensors(suite / VERIFIER / "model.safetensors", weights(variants.tensors_for(wrapped), seed=100),
                  {"format": "pt"})
    for seed, name in enumerate(DRAFTS, start=101):
        config = draft_config(name)
        save(config, weights(variants.tensors_for(config), seed), suite / draft_path(name))


def cases(suite: Path) -> list[NumericsCase]:
    """propose (k 3) and generate (12 tokens, K 3) for each draft."""
    out = []
    for name, (variant, _, _) in DRAFTS.items():
        algorithm = variants.VARIANTS[variant]["speculators_model_type"]
        paths = {"checkpoint": draft_path(name), "verifier_path": VERIFIER, "name": f"hd32.{name}"}
        out += proposal_cases(suite, algorithm, forward=False, **paths)
        out.append(generate_case(suite, algorithm, **paths))
    return out
