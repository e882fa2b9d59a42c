"""DFlash draft: a block [x_n, m, ..., m] of B slots filled in one pass by Qwen3-style layers whose
attention also reads a context projected once from the verifier's aux states.

Each layer's KV cache holds only the context keys and values (committed positions, never rolled
back); block keys are appended for one layer call and truncated right after.
Spec: spec/algorithms/dflash.md (forward computation, ALG-DFLASH-*)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from specfmt import nn
from specfmt.findings import Refused
from specfmt.proposal import Context, Drafted, Picker, to_target
from specfmt.verifier import Verifier

KINDS = ("full_attention", "sliding_attention")


def problems(config: dict, w: dict, verifier: Verifier) -> list[str]:
    """What a runtime must reject and validation does not check. Spec: spec/algorithms/dflash.md#ALG-DFLASH-2"""
    layer_cfg, V = config["transformer_layer_config"], verifier.vocab_size
    H, L = layer_cfg["hidden_size"], layer_cfg["num_hidden_layers"]
    problems = []
    if not 0 <= config["mask_token_id"] < V:
        problems.append(f"mask_token_id must lie in [0, {V}); found {config['mask_token_id']}")
    if config["draft_vocab_size"] > V:
        problems.append(f"draft_vocab_size must be <= {V}; found {config['draft_vocab_size']}")
    if config["block_size"] < 2 and not config["sample_from_anchor"]:
        problems.append(f"block_size must be >= 2 when sample_from_anchor is false; found {config['block_size']}")
    for role in ("embed_tokens", "lm_head"):  # absent: the verifier's own is used (ALG-DFLASH-5)
        if role not in w and (config["target_hidden_size"] or H) != H:
            problems.append(f"{role} is absent and the verifier's is not H wide (ALG-DFLASH-5)")
    types = layer_cfg.get("layer_types")
    if types is not None and (len(types) != L or any(t not in KINDS for t in types)):
        problems.append(f"layer_types must hold {L} entries from {list(KINDS)}; found {types}")
    elif types is not None and "sliding_attention" in types:
        window = layer_cfg.get("sliding_window")
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            problems.append(f"sliding_window must be an integer >= 1 for sliding_attention layers; found {window}")
    return problems


def context_kv(c: torch.Tensor, w: dict, cfg: nn.LayerConfig, rot: nn.Rotary):
    """One layer's keys and values of context rows: its k_proj, k_norm and v_proj, no input_layernorm.
    Spec: spec/algorithms/dflash.md#ALG-DFLASH-6"""
    k = nn.split_heads(F.linear(c, w["k_proj"], w.get("k_proj_bias")), cfg.num_kv_heads)  # [T, H] -> [n_kv, T, d]
    v = nn.split_heads(F.linear(c, w["v_proj"], w.get("v_proj_bias")), cfg.num_kv_heads)
    k = nn.rms_norm(k, w["k_norm"], cfg.eps)  # per head, over d
    return nn.rope(k, rot), v


class DFlash:
    def __init__(self, config: dict, w: dict, verifier: Verifier):
        layer_cfg = config["transformer_layer_config"]
        self.cfg = nn.LayerConfig.from_config(layer_cfg)
        self.inv_freq = nn.rope_inv_freq(self.cfg).to(verifier.device)
        self.w = w
        self.embed = w.get("embed_tokens", verifier.embed_tokens)
        self.lm_head = w.get("lm_head", verifier.lm_head)  # absent only with the full vocabulary (layout)
        self.aux_ids = tuple(config["aux_hidden_state_layer_ids"])
        self.block_size, self.mask_token_id = config["block_size"], config["mask_token_id"]
        self.first_slot = 0 if config["sample_from_anchor"] else 1  # slot 0 predicts only when sampling from it
        self.non_causal, self.window = config["sliding_window_non_causal"], layer_cfg.get("sliding_window")
        L = layer_cfg["num_hidden_layers"]
        kinds = layer_cfg.get("layer_types") or ["full_attention"] * L
        stored = w.get("layer", {})
        self.layers = [(stored[i], kinds[i]) for i in range(L) if i in stored]  # a compat file may keep a prefix
        self.caches = [nn.KVCache() for _ in self.layers]
        self.targets = torch.arange(w["d2t"].numel(), device=w["d2t"].device) + w["d2t"] if "d2t" in w else None
        self.vocab_size, self.device = verifier.vocab_size, verifier.device
        self.context_rows = 0  # context rows cached; they are verified, so they never roll back

    def slots(self, k: int) -> range:
        """The first k predicting slots. Spec: spec/algorithms/dflash.md#ALG-DFLASH-7"""
        limit = self.block_size - self.first_slot
        if k > limit:
            raise Refused("refused.k_above_limit", f"k = {k} exceeds the {limit} predicting slots of a block "
                          f"(block_size {self.block_size}, sample_from_anchor {self.first_slot == 0})")
        return range(self.first_slot, self.first_slot + k)

    def extend_context(self, ctx: Context) -> int:
        """Append the context keys and values of newly verified positions; return n, their count."""
        n = len(ctx.tokens) - 1  # the verifier features cover positions 0..n-1
        self.context_rows = min(self.context_rows, n)  # a reset (0) or a shorter context starts over
        new = torch.arange(self.context_rows, n, device=self.device)
        c = F.linear(ctx.aux[new], self.w["fc"])  # [T, A*H_t] -> [T, H]
        c = nn.rms_norm(c, self.w["hidden_norm"], self.cfg.eps)
        rot = nn.rotary(new, self.inv_freq, c.dtype)
        for (layer, _), cache in zip(self.layers, self.caches, strict=True):
            cache.truncate(self.context_rows)
            cache.append(*context_kv(c, layer, self.cfg, rot))
        self.context_rows = n
        return n

    def mask(self, kind: str, n: int) -> torch.Tensor | None:
        """mask_l over [context 0..n-1, block n..n+B-1] keys, True = attend; None attends to all.
        Spec: spec/algorithms/dflash.md#ALG-DFLASH-6"""
        if kind == "full_attention":
            return None  # full layers see all context and are bidirectional in the block
        query = torch.arange(n, n + self.block_size, device=self.device)[:, None]  # [B, 1]
        key = torch.arange(n + self.block_size, device=self.device)[None, :]  # [1, n+B]
        mask = query - key < self.window
        if not self.non_causal:
            mask = mask & ((key < n) | (key <= query))
        return mask

    def block_states(self, ctx: Context) -> torch.Tensor:
        """norm of every slot's output after the last layer: [B, H]. Spec: spec/algorithms/dflash.md#ALG-DFLASH-6"""
        n = self.extend_context(ctx)
        blk = torch.full((self.block_size,), self.mask_token_id, device=self.device)
        blk[0] = ctx.tokens[-1]  # the anchor: the pending token at position n
        positions = torch.arange(n, n + self.block_size, device=self.device)
        e = F.embedding(blk, self.embed)  # [B] -> [B, H]
        rot = nn.rotary(positions, self.inv_freq, e.dtype)
        for (layer, kind), cache in zip(self.layers, self.caches, strict=True):
            e = nn.decoder_layer(e, layer, self.cfg, rot, cache, self.mask(kind, n))
            cache.truncate(n)  # block keys never outlive the pass (ALG-DFLASH-8)
        return nn.rms_norm(e, self.w["norm"], self.cfg.eps)

    def reset(self) -> None:
        """Start a new sequence: the next propose rebuilds every cached row."""
        self.context_rows = 0

    def propose(self, ctx: Context, k: int, pick: Picker) -> Drafted:
        """k proposals read from the first k predicting slots of one block pass.
        Spec: spec/algorithms/dflash.md#ALG-DFLASH-7"""
        slots = self.slots(k)
        logits = F.linear(self.block_states(ctx)[slots.start:slots.stop], self.lm_head)  # [k, H] -> [k, V_d]
        ids, probs = [], []
        for row in logits:
            draft_id, q = pick(row)
            ids.append(draft_id)
            probs.append(q)
        return to_target(ids, probs, self.targets, self.vocab_size)


def build(config: dict, w: dict, verifier: Verifier) -> DFlash:
    return DFlash(config, w, verifier)
