#!/usr/bin/env python3
"""Broken on purpose: a verifier of any model_type and hidden_act runs as a llama with SiLU, where VFR-1 requires a
runtime to refuse a family other than llama, qwen2 and qwen3 and an activation other than silu."""

from _base import serve

from specfmt import verifier

refusals = verifier.refusals


def heads_only(config: dict) -> list[str]:
    return [problem for problem in refusals(config) if "VFR-7" in problem]


if __name__ == "__main__":
    verifier.refusals = heads_only
    serve()
