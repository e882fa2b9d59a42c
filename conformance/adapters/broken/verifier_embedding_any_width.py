#!/usr/bin/env python3
"""Broken on purpose: an eagle3 draft without embed_tokens.weight is built whatever the verifier's embedding width,
where ALG-EAGLE3-9 requires it rejected when H_t != H."""

from _base import serve

from specfmt.algorithms import eagle3

checked = eagle3.problems


def problems(config: dict, w: dict, verifier) -> list[str]:
    return checked({**config, "target_hidden_size": None}, w, verifier)  # the defect: H_t taken as H


eagle3.problems = problems

if __name__ == "__main__":
    serve()
