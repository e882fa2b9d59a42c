#!/usr/bin/env python3
"""Broken on purpose: grouped-query attention maps query head h to key-value head h % n_kv (the keys repeated
as a block) where the spec maps it to h // (n_h / n_kv); with one key-value head both are the same."""

import torch
import torch.nn.functional as F
from _base import serve

from specfmt import nn


def block_repeated(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    groups = q.shape[-3] // k.shape[-3]
    k = k.repeat(*([1] * (k.dim() - 3)), groups, 1, 1)
    v = v.repeat(*([1] * (v.dim() - 3)), groups, 1, 1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


if __name__ == "__main__":
    nn.attention = block_repeated
    serve()
