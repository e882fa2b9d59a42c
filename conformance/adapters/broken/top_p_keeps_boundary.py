#!/usr/bin/env python3
"""Broken on purpose: top_p drops a token only when the mass before it is above top_p, so a token whose preceding
mass equals top_p exactly is kept, where VRF-1 drops every token whose preceding mass is >= top_p."""

import torch
from _base import serve, with_operations


def process_logits(model, params: dict, x: dict) -> dict:
    logits = x["logits"].float() / params["temperature"]
    if 0 < params["top_k"] < logits.shape[-1]:
        kth = torch.topk(logits, params["top_k"], -1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params["top_p"] < 1.0:
        ordered, order = torch.sort(logits, -1, descending=True)
        probs = torch.softmax(ordered, -1)
        drop = probs.cumsum(-1) - probs > params["top_p"]  # the defect: > where VRF-1 says >=
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return {"probs": torch.softmax(logits, -1)}


if __name__ == "__main__":
    serve(handler=with_operations(process_logits=process_logits))
