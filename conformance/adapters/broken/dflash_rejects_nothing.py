#!/usr/bin/env python3
"""Broken on purpose: a DFlash draft is built whatever its block and widths, where ALG-DFLASH-2 rejects block_size 1
without sample_from_anchor and ALG-DFLASH-5 a draft whose absent LM head or embedding would be the verifier's of
another width."""

from _base import serve

from specfmt.algorithms import dflash

problems = dflash.problems


def block_and_width_unchecked(config: dict, w: dict, verifier) -> list[str]:
    return [p for p in problems(config, w, verifier) if "block_size" not in p and "ALG-DFLASH-5" not in p]


if __name__ == "__main__":
    dflash.problems = block_and_width_unchecked
    serve()
