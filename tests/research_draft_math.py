"""The source formats' own math in plain torch, written from their documentation and never calling specfmt's runtime:
the converter tests compare a converted draft's logits with it. Float64 throughout.

Llama: HF LlamaDecoderLayer (RMSNorm in float, rotate-half RoPE, GQA, SiLU MLP; head_dim from the config when
stated, as the HASS research attention reads it). EAGLE-1: SafeAILab/EAGLE cnets1.py Model.forward (fc over
cat(embedding, feature), layer 0 without an input norm, logits through the verifier's lm_head on the raw output); HASS
with norms (speculators research/hass Model.forward and its training loop): embed_layernorm on the embedding,
hidden_layernorm on the feature BEFORE fc, layer 0 still without an input norm, lm_head_layernorm before the head, the
raw output fed back. Medusa: FasterDecoding ResBlock, x + SiLU(W x + b). MLP speculator: fms-extras
MLPSpeculator with LayerNormParameterized(use_mean=False, eps 1e-6) and exact GELU.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


def rms(x: torch.Tensor, w: torch.Tensor | None, eps: float) -> torch.Tensor:
    y = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y if w is None else w * y


def rotate(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate-half RoPE at positions 0..T-1; x [T, heads, d]."""
    d = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(x.shape[0], dtype=torch.float64)[:, None] * inv  # [T, d/2]
    cos, sin = torch.cat([angles.cos()] * 2, -1)[:, None], torch.cat([angles.sin()] * 2, -1)[:, None]
    return x * cos + torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1) * sin


def llama_layer(x: torch.Tensor, w: dict, cfg: dict, input_norm: torch.Tensor | None) -> torch.Tensor:
    """One decoder layer over rows x [T, H] at positions 0..T-1 with causal attention; `w` holds self_attn.* and
    mlp.* names; input_norm None is the identity (EAGLE-1's layer 0)."""
    t, nh, nkv = x.shape[0], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d, eps = cfg.get("head_dim", cfg["hidden_size"] // nh), cfg["rms_norm_eps"]
    u = x if input_norm is None else rms(x, input_norm, eps)
    q, k, v = (F.linear(u, w[f"self_attn.{p}_proj.weight"], w.get(f"self_attn.{p}_proj.bias")) for p in "qkv")
    q, k, v = q.view(t, nh, d), k.view(t, nkv, d), v.view(t, nkv, d)
    q, k = rotate(q, cfg["rope_theta"]), rotate(k, cfg["rope_theta"])
    k, v = k.repeat_interleave(nh // nkv, 1), v.repeat_interleave(nh // nkv, 1)  # [T, nkv, d] -> [T, nh, d]
    scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(d)
    scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    attn = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v).reshape(t, nh * d)
    h = x + F.linear(attn, w["self_attn.o_proj.weight"])
    m = rms(h, w["post_attention_layernorm.weight"], eps)
    return h + F.linear(F.silu(F.linear(m, w["mlp.gate_proj.weight"])) * F.linear(m, w["mlp.up_proj.weight"]),
                        w["mlp.down_proj.weight"])


def sub(tensors: dict, prefix: str) -> dict:
    return {n[len(prefix):]: t.double() for n, t in tensors.items() if n.startswith(prefix)}


class HfLlama:
    """A Hugging Face llama directory (config.json, model.safetensors) run in float64."""

    def __init__(self, path: Path):
        self.cfg = json.loads((path / "config.json").read_text())
        self.w = {n: t.double() for n, t in load_file(str(path / "model.safetensors")).items()}
        self.embed, self.lm_head = self.w["model.embed_tokens.weight"], self.w["lm_head.weight"]

    def normed(self, tokens: list[int]) -> torch.Tensor:
        """The final hidden states after the final norm, [T, H]: what the LM head reads."""
        x = self.embed[torch.tensor(tokens)]
        for i in range(self.cfg["num_hidden_layers"]):
            w = sub(self.w, f"model.layers.{i}.")
            x = llama_layer(x, w, self.cfg, w["input_layernorm.weight"])
        return rms(x, self.w["model.norm.weight"], self.cfg["rms_norm_eps"])

    def greedy(self, tokens: list[int]) -> int:
        return int(F.linear(self.normed(tokens)[-1], self.lm_head).argmax())


def eagle_rows(src: dict, cfg: dict, verifier: HfLlama, tokens: list[int], feats: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """EAGLE-1 draft rows from research tensors `src` (row t: token x[t+1], feature f[t], position t) ->
    (logits [T, V] through the verifier's lm_head, raw outputs [T, H]). Each extra norm the file holds applies where
    its code applies it: embed_layernorm to the embedding, hidden_layernorm to the feature before fc,
    layers.0.input_layernorm (a layer's own input norm) to fc's output, lm_head_layernorm before the head."""
    eps, w = cfg.get("rms_norm_eps", 1e-6), {n: t.double() for n, t in src.items()}
    e = verifier.embed[torch.tensor(tokens)]
    if "embed_layernorm.weight" in w:
        e = rms(e, w["embed_layernorm.weight"], eps)
    if "hidden_layernorm.weight" in w:
        feats = rms(feats, w["hidden_layernorm.weight"], eps)
    z = F.linear(torch.cat([e, feats], -1), w["fc.weight"], w.get("fc.bias"))  # [T, 2H] -> [T, H]
    layer_cfg = {"num_key_value_heads": cfg["num_attention_heads"], "rope_theta": 10000.0, **cfg, "rms_norm_eps": eps}
    h = llama_layer(z, sub(w, "layers.0."), layer_cfg, w.get("layers.0.input_layernorm.weight"))
    out = rms(h, w["lm_head_layernorm.weight"], eps) if "lm_head_layernorm.weight" in w else h
    return F.linear(out, verifier.lm_head), h


def eagle_chain(src: dict, cfg: dict, verifier: HfLlama, context: list[int], k: int) -> list[torch.Tensor]:
    """The k logits rows of a greedy EAGLE-1 chain after `context` (whose last token the verifier has not run):
    every row recomputed from scratch over the whole sequence, the raw output fed back as the next feature."""
    n = len(context) - 1
    tokens, feats = context[1:], verifier.normed(context[:-1])
    rows = []
    for _ in range(k):
        logits, h = eagle_rows(src, cfg, verifier, tokens, feats)
        rows.append(logits[-1])
        tokens, feats = tokens + [int(logits[-1].argmax())], torch.cat([feats, h[-1:]])
    assert len(tokens) == n + k
    return rows


def medusa_heads(src: dict, g: torch.Tensor, num_heads: int, num_layers: int, lm_head: torch.Tensor | None
                 ) -> list[torch.Tensor]:
    """Each FasterDecoding head on the verifier state g: L ResBlocks (a shared block's one name when that is all the
    file holds) then the head's output matrix, or the base lm_head in version 2."""
    w = {n: t.double() for n, t in src.items()}
    out = []
    for k in range(num_heads):
        x = g
        for r in range(num_layers):
            name = next(f"{k}.{j}.linear" for j in (r, 0) if f"{k}.{j}.linear.weight" in w)
            x = x + F.silu(F.linear(x, w[f"{name}.weight"], w.get(f"{name}.bias")))
        out.append(F.linear(x, lm_head if lm_head is not None else w[f"{k}.{num_layers}.weight"]))
    return out


def mlp_chain(src: dict, cfg: dict, g: torch.Tensor, token: int, k: int) -> list[torch.Tensor]:
    """fms-extras MLPSpeculator stages on the verifier state g after token x[n], each fed the previous stage's
    argmax; `src` holds every stage's own name. sw = 0.5 ** (0.5 / n_predict), ew = sqrt((1 - sw^2) * D / 2)."""
    w = {n: t.double() for n, t in src.items()}
    p, d = cfg["n_predict"], cfg["inner_dim"] or cfg["emb_dim"]
    sw = 0.5 ** (0.5 / p)
    ew = math.sqrt((1 - sw ** 2) * d / 2)
    s = rms(g, None, 1e-6) / math.sqrt(2) if cfg.get("scale_input") else g
    rows = []
    for i in range(k):
        z = w[f"emb.{i}.weight"][token]
        s = F.linear(s, w[f"proj.{i}.weight"]) + (ew / sw) * z
        s = F.gelu(rms(s, w[f"ln.{i}.weight"], 1e-6) + w[f"ln.{i}.bias"])
        rows.append(F.linear(s, w[f"head.{i}.weight"]))
        token = int(rows[-1].argmax())
    return rows
