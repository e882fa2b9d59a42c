#!/usr/bin/env python3
"""Broken on purpose: a verifier whose query heads are no multiple of its key-value heads is loaded and run, where
VFR-7 requires n_h to be a multiple of n_kv (the reference refuses it)."""

from _base import serve

from specfmt import verifier

refusals = verifier.refusals


def family_only(config: dict) -> list[str]:
    return [problem for problem in refusals(config) if "VFR-7" not in problem]


if __name__ == "__main__":
    verifier.refusals = family_only
    serve()
