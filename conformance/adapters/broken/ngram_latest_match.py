#!/usr/bin/env python3
"""Broken on purpose: n-gram lookup takes the latest earlier occurrence of the suffix, where ALG-NGRAM-3 takes the
earliest (smallest start i)."""

from _base import serve, with_operations
from _ngram import propose_with


def lookup(context: list[int], n_min: int, n_max: int, k: int) -> list[int]:
    c = len(context)
    for n in range(n_max, n_min - 1, -1):
        suffix = context[c - n:] if n < c else None
        for i in reversed(range(c - n)):  # the defect: latest first
            if context[i:i + n] == suffix:
                return context[i + n:min(i + n + k, c)]
    return []


if __name__ == "__main__":
    serve(handler=with_operations(propose=propose_with(lookup)))
