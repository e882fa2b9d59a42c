#!/usr/bin/env python3
"""Broken on purpose: n-gram lookup tries every length from n_max down to 1 (as HF transformers does), where
ALG-NGRAM-3 stops at n_min and proposes nothing below it."""

from _base import serve, with_operations
from _ngram import propose_with

from specfmt.algorithms.ngram import lookup

if __name__ == "__main__":
    serve(handler=with_operations(propose=propose_with(lambda ctx, n_min, n_max, k: lookup(ctx, 1, n_max, k))))
