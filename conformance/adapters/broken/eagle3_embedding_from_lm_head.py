#!/usr/bin/env python3
"""Broken on purpose: an eagle3 draft without embed_tokens.weight embeds its tokens with the verifier's LM head (the
same matrix only in a tied verifier), where ALG-EAGLE3-9 makes it read the verifier's input embedding."""

from _base import serve

from specfmt.algorithms import eagle3

built = eagle3.build


def build(config: dict, w: dict, verifier):
    if "embed_tokens" not in w:
        w = {**w, "embed_tokens": verifier.lm_head}  # the defect
    return built(config, w, verifier)


eagle3.build = build

if __name__ == "__main__":
    serve()
