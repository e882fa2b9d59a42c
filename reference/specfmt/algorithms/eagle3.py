"""EAGLE-3 draft: fc over verifier aux states, a first layer reading [embedding, hidden], optional
plain layers, a reduced-vocabulary head mapped through d2t.

Spec: spec/algorithms/eagle3.md (forward computation, ALG-EAGLE3-*)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from specfmt import expr, nn
from specfmt.proposal import Context, Drafted, Picker, Sample, propose_recurrent
from specfmt.schemas import load
from specfmt.tree_step import RecurrentExpander
from specfmt.verifier import Verifier, packed_for_decoding

AUX_IDS = load("config.schema.json")["$defs"]["eagle3_fields"]["properties"]["eagle_aux_hidden_state_layer_ids"]


def default_aux_ids(num_layers: int) -> tuple[int, ...]:
    """The engines' fallback when a compat checkpoint gives no ids: the schema's x-specfmt-fallback, with N the
    verifier's layers. Spec: spec/config.md#CFG-9"""
    return tuple(expr.evaluate(text, {"N": num_layers}, {}) for text in AUX_IDS["x-specfmt-fallback"])


def problems(config: dict, w: dict, verifier: Verifier) -> list[str]:
    """What a runtime must reject and validation does not check. Spec: spec/algorithms/eagle3.md"""
    layer_cfg, out = config["transformer_layer_config"], []
    h_t = config["target_hidden_size"] or layer_cfg["hidden_size"]
    if "embed_tokens" not in w and h_t != layer_cfg["hidden_size"]:  # ALG-EAGLE3-9
        out.append(f"embed_tokens is absent and the verifier's embedding is {h_t} wide, not {layer_cfg['hidden_size']}")
    if config["draft_vocab_size"] > layer_cfg["vocab_size"]:  # ALG-EAGLE3-5
        out.append(f"draft_vocab_size {config['draft_vocab_size']} exceeds vocab_size {layer_cfg['vocab_size']}")
    return out


class Eagle3:
    def __init__(self, config: dict, w: dict, verifier: Verifier):
        layer_cfg = config["transformer_layer_config"]
        self.cfg = nn.LayerConfig.from_config(layer_cfg)
        self.inv_freq = nn.rope_inv_freq(self.cfg).to(verifier.device)
        self.w = w
        self.embed = w.get("embed_tokens", verifier.embed_tokens)
        ids = config["eagle_aux_hidden_state_layer_ids"]
        self.aux_ids = tuple(ids) if ids is not None else default_aux_ids(verifier.num_layers)
        self.norm_before_residual = config["norm_before_residual"]
        self.norm_before_fc, self.fc_norm, self.norm_output = config["norm_before_fc"], config["fc_norm"], \
            config["norm_output"]
        layers = [w["layer0"]] + [w["layer"][i] for i in range(1, layer_cfg["num_hidden_layers"])
                                  if i in w.get("layer", {})]  # a compat file may keep only a prefix
        # bfloat16 decoding on a CPU runs the linears prepacked, as the verifier's (Verifier.pack); same results
        self.layers = [packed_for_decoding(layer) for layer in layers]
        self.linears = packed_for_decoding({"fc": w["fc"], "lm_head": w["lm_head"]}, ("fc", "lm_head"))
        self.caches = [nn.KVCache() for _ in self.layers]
        self.targets = (torch.arange(w["d2t"].numel()) + w["d2t"].cpu()) if "d2t" in w else None  # ids on the host
        self.vocab_size = verifier.vocab_size
        self.verified_rows = 0

    def combine(self, aux: torch.Tensor) -> torch.Tensor:
        """[T, A*H_t] -> [T, H]."""
        eps = self.cfg.eps
        if self.norm_before_fc:
            aux = nn.rms_norm(aux, self.w["input_norm"], eps)
        if self.fc_norm:
            chunks = aux.chunk(len(self.w["fc_norm"]), -1)  # [T, A*H_t] -> A x [T, H_t]
            aux = torch.cat([nn.rms_norm(c, self.w["fc_norm"][a], eps) for a, c in enumerate(chunks)], -1)
        return nn.linear(aux, self.linears, "fc")

    def forward_rows(self, tokens: torch.Tensor, g: torch.Tensor, positions: torch.Tensor,
                     mask: torch.Tensor | None = None, caches: list[nn.KVCache] | None = None):
        """Rows (token, hidden) at `positions` -> (logits [T, V_d], hidden fed to the next row [T, H])."""
        eps, layer0, caches = self.cfg.eps, self.layers[0], caches or self.caches
        if mask is None:
            mask = nn.causal_mask(tokens.numel(), len(caches[0]), tokens.device)
        e = nn.rms_norm(F.embedding(tokens, self.embed), layer0["input_layernorm"], eps)
        gn = nn.rms_norm(g, layer0["hidden_norm"], eps)
        attn_in = torch.cat([e, gn], -1)  # [T, H], [T, H] -> [T, 2H], embedding first
        residual = gn if self.norm_before_residual else g
        rot = nn.rotary(positions, self.inv_freq, g.dtype)
        h = nn.decoder_layer(g, layer0, self.cfg, rot, caches[0], mask, attn_in, residual)
        for layer, cache in zip(self.layers[1:], caches[1:], strict=True):
            h = nn.decoder_layer(h, layer, self.cfg, rot, cache, mask)
        z = nn.rms_norm(h, self.w["norm"], eps)
        return nn.linear(z, self.linears, "lm_head"), (z if self.norm_output else h)

    def train_forward(self, sample: Sample, steps: int) -> list[torch.Tensor]:
        """Training-time test: step k feeds every row the true token k positions further on and the state its
        own step k-1 fed back, attending to the step-0 rows of its document up to itself and to its own rows
        of steps 1..k, as its depth-k row does in propose. Spec: spec/algorithms/eagle3.md"""
        t, tokens = sample.tokens.numel(), sample.tokens
        same_doc = sample.doc[:, None] == sample.doc[None, :]
        base = torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril() & same_doc  # [T, T] step-0 keys
        caches = [nn.KVCache() for _ in self.layers]  # the runtime's own caches stay untouched
        g, out = self.combine(sample.aux), []
        for k in range(steps):
            fed = torch.cat([tokens[1 + k:], tokens.new_zeros(1 + k)])[:t]  # row t reads x[t+1+k]
            logits, g = self.forward_rows(fed, g, sample.positions + k, nn.StepMask(base, k), caches)
            out.append(logits)
        return out

    def reset(self) -> None:
        """Start a new sequence: the next propose rebuilds every cached row."""
        self.verified_rows = 0

    def features(self, ctx: Context):
        """The state each catch-up row starts from: fc over the verified aux states at `positions`."""
        return lambda positions: self.combine(ctx.aux[positions.to(ctx.aux.device)])

    def propose(self, ctx: Context, k: int, pick: Picker) -> Drafted:
        """Catch-up rows from verified aux states, then k - 1 speculative rows. Spec: spec/algorithms/eagle3.md"""
        return propose_recurrent(self, self.features(ctx), ctx, k, pick)

    def branch(self, ctx: Context, depth: int) -> RecurrentExpander:
        """Catch-up rows, then a row per expanded node. Spec: spec/trees.md#TRE-5"""
        return RecurrentExpander(self, self.features(ctx), ctx)


def build(config: dict, w: dict, verifier: Verifier) -> Eagle3:
    return Eagle3(config, w, verifier)
