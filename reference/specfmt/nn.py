"""Plain-torch building blocks shared by the verifier and the drafts: RMSNorm, RoPE, GQA attention
with a KV cache that rolls back, SwiGLU, and the llama/qwen2/qwen3 decoder layer.

Every function takes rows [T, H], or a batch of them [B, T, H] (with positions [B, T] and a mask
[B, 1, T, S]): sequence is always the second-last dimension of activations and of the KV cache.

Weights arrive as dicts keyed by role (the `role` of the layout documents, without the layer
prefix): `w["q_proj"]`, `w["q_norm"]`, ... On-disk names never appear here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from specfmt.findings import Refused
from specfmt.schemas import load


def widen(x: torch.Tensor) -> torch.Tensor:
    """x in float32 at least: half precisions are widened, float64 is kept (the conformance goldens)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm computed in float32 (or wider), returned in the input dtype."""
    x32 = widen(x)
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x times a weight prepacked for oneDNN (torch.ops.mkldnn._reorder_linear_weight), plus the bias if any."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [None], "")


def linear(x: torch.Tensor, w: dict, role: str) -> torch.Tensor:
    """x times the role's weight, plus its bias if any; through the prepacked copy of the weight when the layer
    has one (`w["packed"]`, Verifier.pack) and x is bfloat16 without autograd."""
    packed = w.get("packed", {}).get(role)
    if packed is not None and x.dtype == torch.bfloat16 and not torch.is_grad_enabled():
        return packed_linear(x, packed, w.get(f"{role}_bias"))
    return F.linear(x, w[role], w.get(f"{role}_bias"))


def linears(x: torch.Tensor, w: dict, roles: tuple[str, ...]) -> list[torch.Tensor]:
    """linear() of each role: one matmul over the roles' weights stacked when the layer has them prepacked
    together (`w["packed"][roles]`: weight, bias, output sizes) and x is bfloat16 without autograd."""
    fused = w.get("packed", {}).get(roles)
    if fused is None or x.dtype != torch.bfloat16 or torch.is_grad_enabled():
        return [linear(x, w, role) for role in roles]
    weight, bias, sizes = fused
    return list(packed_linear(x, weight, bias).split(sizes, -1))


def silu_mlp(x: torch.Tensor, w: dict) -> torch.Tensor:
    gate, up = linears(x, w, ("gate_proj", "up_proj"))
    return linear(F.silu(gate) * up, w, "down_proj")


@dataclass(frozen=True)
class LayerConfig:
    """The decoder facts the math needs, resolved from a transformer_layer_config."""

    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    eps: float
    rope_theta: float
    rope_scaling: dict | None
    family: str

    @staticmethod
    def from_config(cfg: dict) -> LayerConfig:
        """`cfg` is a transformer_layer_config with defaults resolved (specfmt.defaults.resolve)."""
        rope = dict(cfg.get("rope_parameters") or {})
        theta = rope.pop("rope_theta", cfg["rope_theta"])  # resolved: absent, it holds the schema default
        scaling = rope if rope.get("rope_type", "default") != "default" else cfg.get("rope_scaling")
        if scaling and scaling.get("rope_type", scaling.get("type", "default")) == "default":
            scaling = None
        return LayerConfig(cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                           cfg["head_dim"], cfg["rms_norm_eps"], float(theta), scaling, cfg["model_type"])


LLAMA3_PARAMETERS = load("config.schema.json")["$defs"]["rope_llama3"]["properties"]  # the keys of VFR-9, defaults


def rope_inv_freq(cfg: LayerConfig) -> torch.Tensor:
    """Inverse frequencies, with llama3 scaling when configured. Spec: spec/verifier.md#VFR-8, VFR-9"""
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim))
    s = cfg.rope_scaling
    if not s:
        return inv
    kind = s.get("rope_type", s.get("type"))
    if kind != "llama3":
        raise Refused("refused.verifier", f"rope_type {kind!r} is not implemented; the reference runtime "
                      "implements default and llama3 (spec/verifier.md#VFR-9)")
    if "factor" not in s:
        raise Refused("refused.verifier", "llama3 RoPE scaling without factor (spec/verifier.md#VFR-9)")
    p = {key: s.get(key, prop["default"]) for key, prop in LLAMA3_PARAMETERS.items() if "default" in prop}
    factor, low, high, old = s["factor"], p["low_freq_factor"], p["high_freq_factor"], \
        p["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    low_wavelen, high_wavelen = old / low, old / high
    scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    mid = (1 - smooth) * scaled / factor + smooth * scaled
    is_mid = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(is_mid, mid, scaled)


Rotary = tuple[torch.Tensor, torch.Tensor]  # cos and [-sin, sin] of every position, [..., 1, T, d] each


def rotary(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype) -> Rotary:
    """The RoPE tables of `positions` ([..., T]), computed in float64 once per forward pass and shared by its
    layers (computing them per layer cost more than the layer's matmuls in a one-token step). The sine's first
    half is negated here, once, so that rope() rotates with a roll instead of a negation and a concatenation."""
    angles = positions.to(torch.float64)[..., None] * inv_freq  # [..., T] -> [..., T, d/2]
    cos = torch.cat([angles.cos(), angles.cos()], -1).to(dtype).unsqueeze(-3)  # [..., 1, T, d]: every head
    sin = torch.cat([-angles.sin(), angles.sin()], -1).to(dtype).unsqueeze(-3)
    return cos, sin


def rope(x: torch.Tensor, rot: Rotary) -> torch.Tensor:
    """Rotate-half RoPE, x * cos + [-x2, x1] * sin, for x: [..., heads, T, d] = [x1, x2] along d. x.roll gives
    [x2, x1] and the table holds [-sin, sin]: the same products bit for bit (a sign is exact), in four operations
    instead of six, which a one-token step runs twice per layer."""
    cos, signed_sin = rot
    return x * cos + x.roll(x.shape[-1] // 2, -1) * signed_sin


class KVCache:
    """Keys and values of one attention layer; `truncate` rolls back rejected positions.

    Without autograd (decoding) appends write into a buffer that doubles when full, so a step costs its own
    rows, not a copy of the whole cache; under autograd (training) they concatenate, since writing in place
    would change tensors that backward still needs."""

    def __init__(self):
        self.k: torch.Tensor | None = None  # [..., n_kv, capacity, d]
        self.v: torch.Tensor | None = None
        self.length = 0

    def __len__(self) -> int:
        return self.length

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the rows of k and v ([..., n_kv, T, d]); the keys and values of every cached position."""
        end = self.length + k.shape[-2]
        if torch.is_grad_enabled():
            self.k = k if self.length == 0 else torch.cat([self.k[..., :self.length, :], k], -2)
            self.v = v if self.length == 0 else torch.cat([self.v[..., :self.length, :], v], -2)
        else:
            if self.k is None or self.k.shape[-2] < end or self.k.shape[:-2] != k.shape[:-2]:
                self.k, self.v = self._grown(self.k, k, end), self._grown(self.v, v, end)
            self.k[..., self.length:end, :] = k
            self.v[..., self.length:end, :] = v
        self.length = end
        return self.k[..., :end, :], self.v[..., :end, :]

    def _grown(self, old: torch.Tensor | None, new: torch.Tensor, end: int) -> torch.Tensor:
        buffer = new.new_empty(*new.shape[:-2], max(2 * end, 64), new.shape[-1])
        if old is not None and self.length:
            buffer[..., :self.length, :] = old[..., :self.length, :]
        return buffer

    def select(self, rows: torch.Tensor) -> None:
        """Keep only these rows of a batch (ids into the first dimension): a finished row stops costing."""
        if self.k is not None:
            self.k, self.v = self.k.index_select(0, rows), self.v.index_select(0, rows)

    def put(self, rows: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write k and v ([R, n_kv, T, d]) as the last T positions of these rows of the batch (a refilled row)."""
        self.k[rows, :, self.length - k.shape[-2]:self.length] = k
        self.v[rows, :, self.length - v.shape[-2]:self.length] = v

    def shift(self, n: int) -> None:
        """Drop the first n positions of every row, or add -n zero positions in front when n < 0 (the rows of a
        batch decode keep their keys at other columns)."""
        if self.k is None:
            return
        end, front = self.length - n, max(-n, 0)
        for name in ("k", "v"):
            old = getattr(self, name)
            buffer = old.new_empty(*old.shape[:-2], max(2 * end, 64), old.shape[-1])
            buffer[..., :front, :] = 0  # masked, but a key of NaN would still poison the scores
            buffer[..., front:end, :] = old[..., max(n, 0):self.length, :]
            setattr(self, name, buffer)
        self.length = end

    def truncate(self, length: int) -> None:
        """Keep the first `length` positions; 0 forgets the sequence, batch shape included."""
        if length == 0:
            self.k = self.v = None
        self.length = min(self.length, length)


def split_heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """[..., T, n*d] -> [..., n, T, d]."""
    return x.unflatten(-1, (n, x.shape[-1] // n)).transpose(-3, -2)


@dataclass(frozen=True)
class StepMask:
    """The keys of training-time test's step k: `base` [T, S] over the first S keys (step 0's rows), then k
    blocks of T keys, one per earlier step, of which row t sees only its own key t. As a dense mask it would be
    [T, S + kT], and attention over it would read every key of every block; `attention` reads one key per row
    and block instead (an optimizer step of the demo draft, k = 3 and T = 1024, 1.59x faster in bfloat16)."""

    base: torch.Tensor
    steps: int


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | StepMask | None) -> torch.Tensor:
    """GQA attention. q: [..., n_h, T, d]; k, v: [..., n_kv, S, d]; mask: bool [..., T, S] (True = attend), or
    a StepMask. Query head h reads key-value head h // (n_h / n_kv), without copying the keys per head. A single
    query position (a decode step) stacks the query heads of each key-value head as its rows: one pass over each
    head's keys instead of one per query head (benchmarks/datagen.py)."""
    if isinstance(mask, StepMask):
        return step_attention(q, k, v, mask)
    if q.dim() == 3:  # unbatched rows: SDPA's fused CPU kernel takes [B, n, T, d] only, 3-D falls to its math path
        return attention(q[None], k[None], v[None], mask)[0]
    n_h, n_kv, t = q.shape[-3], k.shape[-3], q.shape[-2]
    if t != 1 or n_h == n_kv:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=n_h != n_kv)
    grouped = q.reshape(*q.shape[:-3], n_kv, n_h // n_kv, q.shape[-1])  # [..., n_h, 1, d] -> [..., n_kv, g, d]
    return F.scaled_dot_product_attention(grouped, k, v, attn_mask=mask).reshape(q.shape)  # -> [..., n_h, 1, d]


def step_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: StepMask) -> torch.Tensor:
    """Attention under a StepMask: the first S keys' scores as one product, each later block's as one dot product
    per row (its own key), one softmax over both, in float32."""
    n_h, n_kv, t, d = q.shape[-3], k.shape[-3], q.shape[-2], q.shape[-1]
    s, g = k.shape[-2] - mask.steps * t, n_h // n_kv
    rows = q.unflatten(-3, (n_kv, g)) / math.sqrt(d)  # [..., n_kv, g, T, d], scaled before the products
    first = (rows.flatten(-3, -2) @ k[..., :s, :].transpose(-1, -2)).unflatten(-2, (g, t))  # [..., n_kv, g, T, S]
    first = first.masked_fill(~mask.base, float("-inf"))
    own_k, own_v = (x[..., s:, :].unflatten(-2, (mask.steps, t)) for x in (k, v))  # [..., n_kv, steps, T, d]
    own = torch.einsum("...hgtd,...hbtd->...hgtb", rows, own_k)  # [..., n_kv, g, T, steps]
    p = torch.softmax(torch.cat([first, own], -1), -1, dtype=torch.float32).to(q.dtype)
    o = (p[..., :s].flatten(-3, -2) @ v[..., :s, :]).unflatten(-2, (g, t))
    o = o + torch.einsum("...hgtb,...hbtd->...hgtd", p[..., s:], own_v)
    return o.flatten(-4, -3)  # [..., n_h, T, d]


def causal_mask(t: int, past: int, device) -> torch.Tensor:
    """Row i (position past + i) attends to every position <= past + i."""
    return torch.ones(t, past + t, dtype=torch.bool, device=device).tril(past)


def decoder_layer(x: torch.Tensor, w: dict, cfg: LayerConfig, rot: Rotary, cache: KVCache,
                  mask: torch.Tensor | None, attn_in: torch.Tensor | None = None,
                  residual: torch.Tensor | None = None) -> torch.Tensor:
    """One pre-norm decoder layer over rows x: [..., T, H]. `attn_in` replaces input_layernorm(x) as the
    attention input and `residual` replaces x as the residual (EAGLE-3's first layer)."""
    h = attn_in if attn_in is not None else rms_norm(x, w["input_layernorm"], cfg.eps)
    x = x if residual is None else residual
    x = x + self_attention(h, w, cfg, rot, cache, mask)
    return x + silu_mlp(rms_norm(x, w["post_attention_layernorm"], cfg.eps), w)


def self_attention(h: torch.Tensor, w: dict, cfg: LayerConfig, rot: Rotary, cache: KVCache,
                   mask: torch.Tensor | None) -> torch.Tensor:
    q, k, v = linears(h, w, ("q_proj", "k_proj", "v_proj"))
    q, k, v = split_heads(q, cfg.num_heads), split_heads(k, cfg.num_kv_heads), split_heads(v, cfg.num_kv_heads)
    if "q_norm" in w:  # qwen3: per-head RMSNorm over d
        q, k = rms_norm(q, w["q_norm"], cfg.eps), rms_norm(k, w["k_norm"], cfg.eps)
    q, k = rope(q, rot), rope(k, rot)
    k, v = cache.append(k, v)
    o = attention(q, k, v, mask)  # [..., n_h, T, d]
    return linear(o.transpose(-3, -2).flatten(-2), w, "o_proj")  # -> [..., T, n_h*d]
