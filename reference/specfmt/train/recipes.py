"""What a new draft looks like for a verifier: its strict config, its initial tensors, and which tensors the
trainer must not change. One recipe per trainable algorithm; the math they train is the runtime's own.

- eagle3: one llama-family layer as wide as the verifier, aux ids of the CFG-9 fallback (x-specfmt-fallback,
  stated explicitly), a draft vocabulary of the most frequent supervised tokens (d2t/t2d) whose lm_head rows are
  the verifier's and stay frozen (as speculators does), the verifier's embedding shared (no embed_tokens),
  norm_before_fc and norm_before_residual off: the research EAGLE-3 layer, which SGLang and TensorRT-LLM hard-wire
  (they have neither flag) and vLLM and speculators read from the config, so the draft serves in all four.
- medusa: residual SiLU heads on the verifier's final state, zero-initialised (each head starts as the verifier's
  own next-token head), the verifier's lm_head shared (original_lm_head).
- mlp_speculator: fms-extras stages with scale_input, N(0, 1/sqrt(D)) initialisation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch

from specfmt.algorithms.eagle3 import default_aux_ids
from specfmt.envelope import envelope
from specfmt.synthetic import random_tensors
from specfmt.train import TRAINABLE
from specfmt.verifier import Verifier

LAYER_KEYS = ("model_type", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
              "head_dim", "vocab_size", "rms_norm_eps", "max_position_embeddings", "rope_theta", "rope_scaling",
              "rope_parameters", "hidden_act", "attention_bias")
NORM = re.compile(r"(norm|layernorm)\.weight$")


@dataclass
class Recipe:
    config: dict
    tensors: dict[str, torch.Tensor]
    frozen: set[str] = field(default_factory=set)  # on-disk names the trainer leaves as they are


def eagle3_aux_ids(num_layers: int) -> tuple[int, ...]:
    """The CFG-9 fallback (the schema's x-specfmt-fallback), stated explicitly, without the repeats a small verifier
    gives."""
    return tuple(sorted(set(default_aux_ids(num_layers))))


def draft_vocabulary(counts: torch.Tensor, size: int) -> torch.Tensor:
    """The `size` most frequent ids (ties to the lowest id), sorted: d2t offsets are then increasing."""
    order = torch.argsort(-counts, stable=True)[:size]
    return torch.sort(order).values


def eagle3(verifier: Verifier, verifier_name: str, k: int, counts: torch.Tensor, draft_vocab_size: int,
           seed: int) -> Recipe:
    c, vocab = verifier.config, min(draft_vocab_size, verifier.vocab_size)
    layer = {key: c[key] for key in LAYER_KEYS if c.get(key) is not None}
    layer.update(num_hidden_layers=1, model_type=c["model_type"] if c["model_type"] != "qwen2" else "llama",
                 hidden_act=c.get("hidden_act", "silu"), attention_bias=False)
    config = envelope("eagle3", verifier.config, verifier_name, k, transformer_layer_config=layer,
                      draft_vocab_size=vocab, norm_before_residual=False, norm_before_fc=False, fc_norm=False,
                      norm_output=False, target_hidden_size=None,
                      eagle_aux_hidden_state_layer_ids=list(eagle3_aux_ids(c["num_hidden_layers"])))
    tensors = {n: torch.ones_like(t) if NORM.search(n) else t
               for n, t in random_tensors(config, seed, std=0.02).items() if n != "embed_tokens.weight"}
    ids = draft_vocabulary(counts, vocab)
    tensors["lm_head.weight"] = verifier.lm_head.float()[ids].clone()  # [V_d, H]: the verifier's rows
    if vocab < verifier.vocab_size:
        tensors["d2t"] = ids - torch.arange(vocab)  # target_id = draft_id + d2t[draft_id]
        tensors["t2d"] = torch.zeros(verifier.vocab_size, dtype=torch.bool).index_fill_(0, ids, True)
    return Recipe(config, tensors, {"lm_head.weight", "d2t", "t2d"})


def medusa(verifier: Verifier, verifier_name: str, k: int, seed: int) -> Recipe:
    config = envelope("medusa", verifier.config, verifier_name, k, medusa_num_heads=k, medusa_num_layers=1,
                      medusa_fc_bias=True, original_lm_head=True)
    return Recipe(config, {n: torch.zeros_like(t) for n, t in random_tensors(config, seed).items()})


def mlp_speculator(verifier: Verifier, verifier_name: str, k: int, seed: int) -> Recipe:
    config = envelope("mlp_speculator", verifier.config, verifier_name, k, n_predict=k, inner_dim=0, tie_weights=False,
                      scale_input=True, top_k_tokens_per_head=[1] * k, n_candidates=1)
    g, tensors = torch.Generator().manual_seed(seed), {}
    for name, t in random_tensors(config, seed).items():
        if name.startswith("ln."):  # ln.{i}.weight and ln.{i}.bias
            tensors[name] = torch.ones_like(t) if name.endswith("weight") else torch.zeros_like(t)
        else:
            tensors[name] = torch.randn(t.shape, generator=g) / math.sqrt(t.shape[-1])
    return Recipe(config, tensors)


def recipe(algorithm: str, verifier: Verifier, verifier_name: str, k: int, counts: torch.Tensor,
           draft_vocab_size: int, seed: int) -> Recipe:
    if algorithm == "eagle3":
        return eagle3(verifier, verifier_name, k, counts, draft_vocab_size, seed)
    if algorithm == "medusa":
        return medusa(verifier, verifier_name, k, seed)
    if algorithm == "mlp_speculator":
        return mlp_speculator(verifier, verifier_name, k, seed)
    raise ValueError(f"specfmt train does not train {algorithm!r} yet; it trains {', '.join(TRAINABLE)}")
