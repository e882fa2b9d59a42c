"""MTP draft: one multi-token-prediction layer of the verifier's family, applied once per step; the
verifier's embedding and LM head; the output of final_layernorm is fed back. The first row reads the verifier state
that verifier_hidden_state names: before its final norm (pre_norm) or after it (post_norm).

Spec: spec/algorithms/mtp.md (forward computation, ALG-MTP-*)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from specfmt import nn
from specfmt.proposal import Context, Drafted, Picker, propose_recurrent
from specfmt.schemas import LAYER_FAMILIES
from specfmt.tree_step import RecurrentExpander
from specfmt.verifier import Verifier


def problems(config: dict, w: dict, verifier: Verifier) -> list[str]:
    """The layer config must be the verifier's own: its sizes are specfmt.binding's, checked before this; its
    family is checked here. Spec: spec/algorithms/mtp.md#ALG-MTP-2"""
    layer_cfg = config["transformer_layer_config"]
    if layer_cfg["model_type"] not in LAYER_FAMILIES:
        return [f"mtp model_type {layer_cfg['model_type']!r} is not one of {LAYER_FAMILIES}"]
    return []


class Mtp:
    aux_ids: tuple[int, ...] = ()  # reads ctx.last (pre_norm, aux id N) or ctx.normed (post_norm)

    def __init__(self, config: dict, w: dict, verifier: Verifier):
        self.post_norm = config["verifier_hidden_state"] == "post_norm"  # ALG-MTP-5
        self.cfg = nn.LayerConfig.from_config(config["transformer_layer_config"])
        self.inv_freq = nn.rope_inv_freq(self.cfg).to(verifier.device)
        self.w = w
        self.verifier = verifier  # E and W_out are the verifier's (ALG-MTP-3)
        self.caches = [nn.KVCache()]
        self.targets, self.vocab_size = None, verifier.vocab_size  # no draft vocabulary
        self.verified_rows = 0

    def forward_rows(self, tokens: torch.Tensor, h: torch.Tensor, positions: torch.Tensor,
                     mask: torch.Tensor | None = None, caches: list[nn.KVCache] | None = None):
        """Rows (token, state) at `positions` -> (logits [T, V], fed-back state h2 [T, H])."""
        m, eps, caches = self.w["mtp"], self.cfg.eps, caches or self.caches
        e = nn.rms_norm(F.embedding(tokens, self.verifier.embed_tokens), m["token_layernorm"], eps)  # [T] -> [T, H]
        hn = nn.rms_norm(h, m["hidden_layernorm"], eps)
        u = F.linear(torch.cat([e, hn], -1), m["input_proj"])  # [T, H], [T, H] -> [T, 2H] -> [T, H]
        if mask is None:
            mask = nn.causal_mask(tokens.numel(), len(caches[0]), tokens.device)
        rot = nn.rotary(positions, self.inv_freq, u.dtype)
        h2 = nn.rms_norm(nn.decoder_layer(u, m, self.cfg, rot, caches[0], mask),
                         m["final_layernorm"], eps)
        return F.linear(h2, self.verifier.lm_head), h2

    def reset(self) -> None:
        """Start a new sequence: the next propose rebuilds every cached row."""
        self.verified_rows = 0

    def propose(self, ctx: Context, k: int, pick: Picker) -> Drafted:
        """Catch-up rows over new verified states, then k - 1 speculative rows.
        Spec: spec/algorithms/mtp.md#ALG-MTP-5"""
        return propose_recurrent(self, self.features(ctx), ctx, k, pick)

    def features(self, ctx: Context):
        """The state each catch-up row starts from: the verifier's state at `positions`, before or after its final
        norm (ALG-MTP-5)."""
        states = ctx.normed if self.post_norm else ctx.last
        return lambda positions: states[positions.to(states.device)]

    def branch(self, ctx: Context, depth: int) -> RecurrentExpander:
        """Catch-up rows, then a row per expanded node. Spec: spec/trees.md#TRE-5"""
        return RecurrentExpander(self, self.features(ctx), ctx)


def build(config: dict, w: dict, verifier: Verifier) -> Mtp:
    return Mtp(config, w, verifier)
