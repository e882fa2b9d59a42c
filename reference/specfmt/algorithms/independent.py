"""Independent draft: a standalone causal LM sharing the verifier's vocabulary, run by the same
plain-torch model as the verifier and decoded autoregressively.

Spec: spec/algorithms/independent.md (forward computation, ALG-INDEPENDENT-*)
"""

from __future__ import annotations

import torch

from specfmt.proposal import Context, Drafted, Picker, to_target
from specfmt.schemas import LAYER_FAMILIES
from specfmt.verifier import Verifier


def stored_prefix(config: dict, w: dict) -> dict:
    """The layer config with num_hidden_layers cut to the stored prefix of layers: a compat file may
    keep only leading layers (hazard.layers_missing). Spec: spec/algorithms/independent.md#ALG-INDEPENDENT-4"""
    layer_cfg = dict(config["transformer_layer_config"])
    stored = 0
    while stored in w.get("layer", {}):
        stored += 1
    layer_cfg["num_hidden_layers"] = min(layer_cfg["num_hidden_layers"], stored)
    return layer_cfg


def problems(config: dict, w: dict, verifier: Verifier) -> list[str]:
    """The decoder family; the shared vocabulary is specfmt.binding's, checked before this.
    Spec: spec/algorithms/independent.md#ALG-INDEPENDENT-1, ALG-INDEPENDENT-2"""
    layer_cfg, out = config["transformer_layer_config"], []
    if layer_cfg["model_type"] not in LAYER_FAMILIES:
        out.append(f"independent model_type {layer_cfg['model_type']!r} is not one of {LAYER_FAMILIES}")
    return out


class Independent:
    aux_ids: tuple[int, ...] = ()  # reads token ids only (ALG-INDEPENDENT-5)
    targets = None  # the verifier's vocabulary

    def __init__(self, config: dict, w: dict, verifier: Verifier):
        self.lm = Verifier(stored_prefix(config, w), w, verifier.device, verifier.dtype)  # its own weights
        self.w = self.lm.w  # the draft's roles: lm_head present unless tied
        self.vocab_size = verifier.vocab_size
        self.cached_tokens = 0  # committed tokens in the draft's KV cache; later entries are speculative

    def reset(self) -> None:
        """Start a new sequence: the next propose rebuilds every cached row."""
        self.cached_tokens = 0

    def propose(self, ctx: Context, k: int, pick: Picker) -> Drafted:
        """Feed the committed tokens the cache lacks (including the pending x[n]), then decode k tokens.
        Spec: spec/algorithms/independent.md#ALG-INDEPENDENT-5"""
        self.lm.truncate(self.cached_tokens)  # forget the proposals of the last round
        logits = self.lm.forward(torch.tensor(ctx.tokens[self.cached_tokens:])).logits[-1]  # predicts position n+1
        self.cached_tokens = len(ctx.tokens)
        ids, probs = [], []
        for s in range(k):
            draft_id, q = pick(logits)
            ids.append(draft_id)
            probs.append(q)
            if s + 1 < k:
                logits = self.lm.forward(torch.tensor([draft_id])).logits[-1]
        return to_target(ids, probs, None, self.vocab_size)


def build(config: dict, w: dict, verifier: Verifier) -> Independent:
    return Independent(config, w, verifier)
