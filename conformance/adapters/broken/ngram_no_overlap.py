#!/usr/bin/env python3
"""Broken on purpose: n-gram lookup takes only matches that end before the suffix starts, where ALG-NGRAM-3 takes the
earliest match even when it overlaps the suffix."""

from _base import serve, with_operations
from _ngram import propose_with


def lookup(context: list[int], n_min: int, n_max: int, k: int) -> list[int]:
    c = len(context)
    for n in range(n_max, n_min - 1, -1):
        suffix = context[c - n:]
        for i in range(c - 2 * n + 1):  # the defect: i + n <= c - n, no overlap with the suffix
            if context[i:i + n] == suffix:
                return context[i + n:min(i + n + k, c)]
    return []


if __name__ == "__main__":
    serve(handler=with_operations(propose=propose_with(lookup)))
