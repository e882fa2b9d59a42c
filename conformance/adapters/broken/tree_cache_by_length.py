#!/usr/bin/env python3
"""Broken on purpose: after a tree step the verifier's cache is cut to the committed length, as after a chain step,
so it keeps the rows of the first nodes in node order, where TRE-9 keeps the rows of the accepted path."""

from _base import serve

from specfmt import tree_step


def by_length(caches, n: int, path: list[int]) -> None:
    for cache in caches:
        cache.truncate(n + len(path))  # the defect: rows n..n+a are nodes 0..a, not the path's


if __name__ == "__main__":
    tree_step.keep_path = by_length
    serve()
