#!/usr/bin/env python3
"""Broken on purpose: a verifier whose config names a sliding window (use_sliding_window, sliding_window) attends
only to the last `sliding_window` positions, where VFR-7 makes a v1.0 verifier causal over every earlier
position and ignores those keys."""

import torch
from _base import serve

from specfmt.verifier import Verifier

forward = Verifier.forward


def windowed(self, tokens, aux_ids=(), positions=None, mask=None, last_logits=False):
    window = self.config.get("sliding_window")
    if mask is None and self.config.get("use_sliding_window") and isinstance(window, int):
        past, t = len(self), tokens.shape[-1]
        query = torch.arange(past, past + t)[:, None]  # [T, 1]
        key = torch.arange(past + t)[None, :]  # [1, S]
        mask = (key <= query) & (query - key < window)  # [T, S]
    return forward(self, tokens, aux_ids, positions, mask, last_logits)


if __name__ == "__main__":
    Verifier.forward = windowed
    serve()
