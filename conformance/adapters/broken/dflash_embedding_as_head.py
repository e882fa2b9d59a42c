#!/usr/bin/env python3
"""Broken on purpose: a DFlash draft without lm_head.weight reads the verifier's embedding as its LM head, where
ALG-DFLASH-5 reads the verifier's LM head (its embedding only when the verifier ties them)."""

from _base import serve

from specfmt.algorithms import dflash

init = dflash.DFlash.__init__


def embedding_as_head(self, config: dict, w: dict, verifier) -> None:
    init(self, config, w, verifier)
    if "lm_head" not in w:
        self.lm_head = verifier.embed_tokens


if __name__ == "__main__":
    dflash.DFlash.__init__ = embedding_as_head
    serve()
