#!/usr/bin/env python3
"""Broken on purpose: top_p is applied before top_k (each on the temperature-scaled logits), where VRF-1 applies top_k
first and top_p to what top_k kept."""

from _base import serve, with_operations

from specfmt.verification import process_logits as reference


def process_logits(model, params: dict, x: dict) -> dict:
    scaled = x["logits"].float() / params["temperature"]
    nucleus = reference(scaled, 1.0, 0, params["top_p"])  # top_p alone
    kept = scaled.masked_fill(nucleus == 0, float("-inf"))
    return {"probs": reference(kept, 1.0, params["top_k"], 1.0)}  # then top_k


if __name__ == "__main__":
    serve(handler=with_operations(process_logits=process_logits))
