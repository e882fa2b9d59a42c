"""The eagle3 recipe: one llama-family layer as wide as the verifier (--num-hidden-layers stacks more), aux ids
of the CFG-9 fallback (x-specfmt-fallback, stated explicitly), a draft vocabulary of the most frequent supervised
tokens (d2t/t2d) whose lm_head rows are the verifier's and stay frozen (as speculators does), the verifier's
embedding shared (no embed_tokens), norm_before_fc and norm_before_residual off unless asked (--norm-before-fc,
--norm-before-residual): the research EAGLE-3 layer, which SGLang and TensorRT-LLM hard-wire (they have neither
flag) and vLLM and speculators read from the config, so the draft serves in all four. Norm scales start at one,
every other tensor at N(0, 0.02).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from specfmt.envelope import envelope
from specfmt.train.options import INF, TrainOptions, option
from specfmt.train.recipes.common import Recipe, Roles, Start, is_norm

if TYPE_CHECKING:
    import torch

    from specfmt.verifier import Verifier

LAYER_KEYS = ("model_type", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
              "head_dim", "vocab_size", "rms_norm_eps", "max_position_embeddings", "rope_theta", "rope_scaling",
              "rope_parameters", "hidden_act", "attention_bias")
FROZEN = ("lm_head", "d2t", "t2d")  # the verifier's rows and the vocabulary they map


@dataclass
class Eagle3Options:
    draft_vocab_size: int = option(8192, "most frequent supervised tokens", bounds=(1, INF))
    num_hidden_layers: int = option(1, "decoder layers of the draft (transformer_layer_config.num_hidden_layers; "
                                       "the first reads [embedding, hidden])", bounds=(1, 64))
    # The EAGLE-3 paper's layer has both off; SGLang and TensorRT-LLM have no flag for them (issue 21 item 3
    # measures what they are worth).
    norm_before_residual: bool = option(False, "norm_before_residual on: a draft that vLLM and speculators serve, "
                                               "SGLang and TensorRT-LLM do not")
    norm_before_fc: bool = option(False, "norm_before_fc on (an RMSNorm over the aux states): a draft that vLLM and "
                                         "speculators serve, SGLang and TensorRT-LLM do not")


def eagle3_aux_ids(num_layers: int) -> tuple[int, ...]:
    """The CFG-9 fallback (the schema's x-specfmt-fallback), stated explicitly, without the repeats a small verifier
    gives."""
    from specfmt.algorithms.eagle3 import default_aux_ids

    return tuple(sorted(set(default_aux_ids(num_layers))))


def draft_vocabulary(counts: torch.Tensor, size: int) -> torch.Tensor:
    """The `size` most frequent ids (ties to the lowest id), sorted: d2t offsets are then increasing."""
    import torch

    order = torch.argsort(-counts, stable=True)[:size]
    return torch.sort(order).values


def config_of(verifier: Verifier, verifier_name: str, k: int, vocab: int, own: Eagle3Options) -> dict:
    c = verifier.config
    layer = {key: c[key] for key in LAYER_KEYS if c.get(key) is not None}
    layer.update(num_hidden_layers=own.num_hidden_layers,
                 model_type=c["model_type"] if c["model_type"] != "qwen2" else "llama",
                 hidden_act=c.get("hidden_act", "silu"), attention_bias=False)
    return envelope("eagle3", verifier.config, verifier_name, k, transformer_layer_config=layer,
                    draft_vocab_size=vocab, norm_before_residual=own.norm_before_residual,
                    norm_before_fc=own.norm_before_fc, fc_norm=False,
                    norm_output=False, target_hidden_size=None,
                    eagle_aux_hidden_state_layer_ids=list(eagle3_aux_ids(c["num_hidden_layers"])))


def make(verifier: Verifier, verifier_name: str, opts: TrainOptions, own: Eagle3Options,
         token_counts: torch.Tensor) -> Start:
    import torch

    from specfmt.synthetic import random_tensors

    vocab = min(own.draft_vocab_size, verifier.vocab_size)
    config = config_of(verifier, verifier_name, opts.steps, vocab, own)
    roles = Roles(config)
    tensors = {n: torch.ones_like(t) if is_norm(roles.role_of[n]) else t
               for n, t in random_tensors(config, opts.seed, std=0.02).items()
               if roles.role_of[n] != "embed_tokens"}
    ids = draft_vocabulary(token_counts, vocab)
    tensors[roles.name("lm_head")] = verifier.lm_head.float()[ids].clone()  # [V_d, H]: the verifier's rows
    if vocab < verifier.vocab_size:
        tensors[roles.name("d2t")] = ids - torch.arange(vocab)  # target_id = draft_id + d2t[draft_id]
        tensors[roles.name("t2d")] = torch.zeros(verifier.vocab_size, dtype=torch.bool).index_fill_(0, ids, True)
    return Start(config, tensors, set(roles.names(*FROZEN)))


RECIPE = Recipe(make, eagle3_aux_ids, Eagle3Options)
