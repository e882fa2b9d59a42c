#!/usr/bin/env python3
"""Broken on purpose: greedy tree decoding ignores verifier_accept_k and verifies by TRE-7 whatever it asks, where
TRE-7 requires a runtime to refuse verifier_accept_k above 1 for trees (the top-k rule is not defined for them)."""

from _base import serve, with_operations

from specfmt.conformance_adapter import run_generate_tree


def generate_tree(model, params: dict, x: dict) -> dict:
    return run_generate_tree(model, {**params, "verifier_accept_k": 1}, x)  # the defect: the request is not refused


if __name__ == "__main__":
    serve(handler=with_operations(generate_tree=generate_tree))
