"""Shared numerics fixtures: one tiny Hugging Face verifier and one draft per algorithm, bound to it.

Sizes: hidden 16, vocabulary 64, six verifier layers, EAGLE-3 draft vocabulary 24. Weights are
multiples of 1/64 in [-1/2, 1/2], drawn with randint (the same bits on every CPU) and stored in
bfloat16, where they are exact; goldens are computed from them in float32 after the upcast.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from conformance.generators import variants
from conformance.generators.common import write_json
from specfmt import save
from specfmt.safetensors_file import write_tensors

FIXTURES = Path("fixtures") / "numerics"  # relative to the suite root; case.json names fixtures this way
VERIFIER = (FIXTURES / "verifier").as_posix()
H, V, V_D = 16, 64, 24
DIMS = {"hidden_size": H, "intermediate_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
        "head_dim": 8, "vocab_size": V}
VERIFIER_CONFIG = {**variants.VERIFIER_CONFIG, **DIMS}
# The builder variant each draft fixture is shrunk from; its name is the algorithm.
DRAFTS = ("eagle3", "eagle", "independent", "mtp", "peagle", "dflash", "dspark", "medusa", "mlp_speculator",
          "ngram")


def draft_path(algorithm: str) -> str:
    return (FIXTURES / algorithm).as_posix()


def weights(tensors: dict[str, torch.Tensor], seed: int, norm_k: int = 16, k: int = 32,
            scale: int = 64) -> dict[str, torch.Tensor]:
    """Float tensors drawn again, exact in bfloat16: norm weights 1 + j/64 (|j| <= norm_k), others j/scale
    (|j| <= k); integer tensors kept. Unit-scale norms keep the tiny verifier's greedy output varied."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in sorted(tensors.items()):
        if not t.is_floating_point():
            out[name] = t
        elif t.dim() == 1 and "norm" in name:
            out[name] = (1 + torch.randint(-norm_k, norm_k + 1, t.shape, generator=g) / 64).to(torch.bfloat16)
        else:
            out[name] = (torch.randint(-k, k + 1, t.shape, generator=g) / scale).to(torch.bfloat16)
    return out


def draft_config(algorithm: str) -> dict:
    """The builder variant with the fixture's dimensions, stored in bfloat16."""
    config = copy.deepcopy(variants.VARIANTS[algorithm])
    config["dtype"] = "bfloat16"
    config["speculators_config"]["verifier"].update(hidden_size=H, vocab_size=V)
    if "transformer_layer_config" in config:
        config["transformer_layer_config"].update(DIMS)
    if "draft_vocab_size" in config:
        config["draft_vocab_size"] = V_D
    return config


def write_verifier(path: Path) -> None:
    """config.json and model.safetensors with Hugging Face causal-LM names (the `independent` layout)."""
    write_json(path / "config.json", VERIFIER_CONFIG)
    wrapped = {"speculators_model_type": "independent", "transformer_layer_config": VERIFIER_CONFIG,
               "speculators_config": variants.VARIANTS["independent"]["speculators_config"]}
    write_tensors(path / "model.safetensors", weights(variants.tensors_for(wrapped), seed=0), {"format": "pt"})


def write_fixtures(suite: Path) -> None:
    write_verifier(suite / VERIFIER)
    for seed, algorithm in enumerate(DRAFTS, start=1):
        config = draft_config(algorithm)
        save(config, weights(variants.tensors_for(config), seed), suite / draft_path(algorithm))
