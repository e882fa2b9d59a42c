"""EAGLE-1/2 and HASS draft: fusion_fc over [embedding, verifier feature], one decoder layer, the
verifier's own embedding and LM head; the decoder output is fed back as the next feature.

Spec: spec/algorithms/eagle.md (forward computation, ALG-EAGLE-*)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from specfmt import nn
from specfmt.proposal import Context, Drafted, Picker, propose_recurrent
from specfmt.tree_step import RecurrentExpander
from specfmt.verifier import Verifier


def problems(config: dict, w: dict, verifier: Verifier) -> list[str]:
    """The checks a runtime owes beyond validation; H and V against the verifier's (ALG-EAGLE-3) are
    specfmt.binding's, checked before this. Spec: spec/algorithms/eagle.md#ALG-EAGLE-1"""
    layer_cfg, out = config["transformer_layer_config"], []
    if layer_cfg["num_hidden_layers"] != 1:
        out.append(f"eagle has exactly one decoder layer; found num_hidden_layers {layer_cfg['num_hidden_layers']}")
    if config["transformer_layer_architecture"] not in ("LlamaDecoderLayer", "auto"):
        out.append(f"transformer_layer_architecture {config['transformer_layer_architecture']!r} "
                   "is not LlamaDecoderLayer or auto")
    return out


class Eagle:
    aux_ids: tuple[int, ...] = ()  # reads ctx.normed, the state after the verifier's final norm

    def __init__(self, config: dict, w: dict, verifier: Verifier):
        self.cfg = nn.LayerConfig.from_config(config["transformer_layer_config"])
        self.inv_freq = nn.rope_inv_freq(self.cfg).to(verifier.device)
        self.w = w
        self.layernorms = config["layernorms"]
        self.verifier = verifier  # E and W_out are the verifier's (ALG-EAGLE-5)
        self.caches = [nn.KVCache()]
        self.targets, self.vocab_size = None, verifier.vocab_size  # no draft vocabulary
        self.verified_rows = 0

    def forward_rows(self, tokens: torch.Tensor, f: torch.Tensor, positions: torch.Tensor,
                     mask: torch.Tensor | None = None, caches: list[nn.KVCache] | None = None):
        """Rows (token, feature) at `positions` -> (logits [T, V], fed-back feature hs [T, H])."""
        eps, caches = self.cfg.eps, caches or self.caches
        e = F.embedding(tokens, self.verifier.embed_tokens)  # [T] -> [T, H]
        if self.layernorms:
            e = nn.rms_norm(e, self.w["embedding_layernorm"], eps)
        z = F.linear(torch.cat([e, f], -1), self.w["fusion_fc"], self.w.get("fusion_fc_bias"))  # [T, 2H] -> [T, H]
        # Without layernorms the layer's input norm is the identity, so attention reads z itself.
        attn_in = None if self.layernorms else z
        if mask is None:
            mask = nn.causal_mask(tokens.numel(), len(caches[0]), tokens.device)
        rot = nn.rotary(positions, self.inv_freq, z.dtype)
        hs = nn.decoder_layer(z, self.w["layer"], self.cfg, rot, caches[0], mask, attn_in)
        o = nn.rms_norm(hs, self.w["pre_lm_head_layernorm"], eps) if self.layernorms else hs
        return F.linear(o, self.verifier.lm_head), hs

    def reset(self) -> None:
        """Start a new sequence: the next propose rebuilds every cached row."""
        self.verified_rows = 0

    def propose(self, ctx: Context, k: int, pick: Picker) -> Drafted:
        """Catch-up rows over new verified states, then k - 1 speculative rows.
        Spec: spec/algorithms/eagle.md#ALG-EAGLE-6"""
        return propose_recurrent(self, self.features(ctx), ctx, k, pick)

    def features(self, ctx: Context):
        """The state each catch-up row starts from: the verifier's final-normed state at `positions`."""
        return lambda positions: ctx.normed[positions.to(ctx.normed.device)]

    def branch(self, ctx: Context, depth: int) -> RecurrentExpander:
        """Catch-up rows, then a row per expanded node. Spec: spec/trees.md#TRE-5"""
        return RecurrentExpander(self, self.features(ctx), ctx)


def build(config: dict, w: dict, verifier: Verifier) -> Eagle:
    return Eagle(config, w, verifier)
