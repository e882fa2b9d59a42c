#!/usr/bin/env python3
"""Broken on purpose: an mtp draft reads the verifier state before its final norm whatever verifier_hidden_state
says (the speculators library's reading, and v1.0's before the field existed)."""

from _base import serve

from specfmt.algorithms import mtp


def pre_norm_only(config: dict, w: dict, verifier) -> mtp.Mtp:
    draft = mtp.Mtp(config, w, verifier)
    draft.post_norm = False
    return draft


if __name__ == "__main__":
    mtp.build = pre_norm_only
    serve()
