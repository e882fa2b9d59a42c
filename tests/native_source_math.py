"""Plain-torch forward math of source formats, written for the converter tests from each source's documented
computation (z-lab DFlash, the native MTP heads). It shares no code with specfmt's runtime, so a converted draft
that matches it shows the conversion kept the source's meaning."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rms(x: torch.Tensor, w: torch.Tensor, eps: float, zero_centred: bool = False) -> torch.Tensor:
    """RMSNorm; a zero-centred norm (Qwen3-Next, Qwen3.5) scales by 1 + w."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * ((1 + w) if zero_centred else w)


def rope(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate-half RoPE as Hugging Face's Llama and Qwen apply it. x: [heads, T, d]."""
    d = x.shape[-1]
    angles = positions.double()[:, None] * theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # [T, d/2]
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)  # [T, d]
    return x * cos + torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1) * sin


def heads(x: torch.Tensor, n: int) -> torch.Tensor:
    """[T, n*d] -> [n, T, d]."""
    return x.view(x.shape[0], n, -1).transpose(0, 1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax attention with grouped KV heads. q: [n_h, T, d]; k, v: [n_kv, S, d]; allowed: [T, S] -> [T, n_h*d]."""
    group = q.shape[0] // k.shape[0]
    k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)  # [n_kv, S, d] -> [n_h, S, d]
    scores = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf"))
    return (scores.softmax(-1) @ v).transpose(0, 1).flatten(1)  # [n_h, T, d] -> [T, n_h*d]


def mlp(x: torch.Tensor, w: dict, p: str) -> torch.Tensor:
    """SwiGLU MLP of the layer whose tensor names start with `p`."""
    return F.linear(F.silu(F.linear(x, w[p + "mlp.gate_proj.weight"])) * F.linear(x, w[p + "mlp.up_proj.weight"]),
                    w[p + "mlp.down_proj.weight"])


def proj(x: torch.Tensor, w: dict, name: str) -> torch.Tensor:
    """A Linear of the source, with its bias when the source stores one."""
    return F.linear(x, w[name + ".weight"], w.get(name + ".bias"))


def dense_layer(x: torch.Tensor, w: dict, p: str, cfg: dict, positions: torch.Tensor,
                zero_centred: bool = False) -> torch.Tensor:
    """One pre-norm llama/qwen2/qwen3 decoder layer over rows x [T, H], causal over the rows; qwen3 layers (q_norm
    present) norm each query and key head."""
    eps, nh, nkv = cfg["rms_norm_eps"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    u = rms(x, w[p + "input_layernorm.weight"], eps, zero_centred)
    q, k = heads(proj(u, w, p + "self_attn.q_proj"), nh), heads(proj(u, w, p + "self_attn.k_proj"), nkv)
    v = heads(proj(u, w, p + "self_attn.v_proj"), nkv)
    if p + "self_attn.q_norm.weight" in w:
        q = rms(q, w[p + "self_attn.q_norm.weight"], eps, zero_centred)
        k = rms(k, w[p + "self_attn.k_norm.weight"], eps, zero_centred)
    theta = cfg.get("rope_theta", 10000.0)
    causal = torch.ones(len(x), len(x), dtype=torch.bool).tril()
    x = x + proj(attend(rope(q, positions, theta), rope(k, positions, theta), v, causal), w, p + "self_attn.o_proj")
    return x + mlp(rms(x, w[p + "post_attention_layernorm.weight"], eps, zero_centred), w, p)
