#!/usr/bin/env python3
"""Broken on purpose: the verifier's attention scale is 1/sqrt(hidden_size / num_attention_heads), where VFR-7 makes
it 1/sqrt(head_dim); the two differ only when head_dim says otherwise (no draft's attention is changed)."""

import math

import torch.nn.functional as F
from _base import serve

from specfmt import nn
from specfmt.verifier import Verifier

forward, attention = Verifier.forward, nn.attention
SCALE: list[float] = []  # the scale of the verifier pass under way, if any


def scaled_attention(q, k, v, mask):
    if not SCALE:
        return attention(q, k, v, mask)
    grouped = q.shape[-3] != k.shape[-3]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=SCALE[0], enable_gqa=grouped)


def per_hidden(self, *args, **kwargs):
    SCALE.append(1 / math.sqrt(self.config["hidden_size"] / self.config["num_attention_heads"]))
    try:
        return forward(self, *args, **kwargs)
    finally:
        SCALE.pop()


if __name__ == "__main__":
    nn.attention, Verifier.forward = scaled_attention, per_hidden
    serve()
