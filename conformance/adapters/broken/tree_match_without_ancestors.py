#!/usr/bin/env python3
"""Broken on purpose: greedy tree verification marks every node whose token is its parent's argmax and accepts the
path to the deepest marked node (the first in node order among equals), without asking that its ancestors be
marked too, where TRE-7 walks down from the root and stops at the first node with no matching child."""

from _base import serve

from specfmt import conformance_adapter, tree_step
from specfmt.tree import TreeVerdict


def deepest_match(tree, target_logits):
    best = target_logits.argmax(-1).tolist()
    depths = tree.depths
    matched = [c for c in range(1, len(tree.parents)) if tree.tokens[c] == best[tree.parents[c]]]
    if not matched:
        return TreeVerdict([0], best[0])
    path = [max(matched, key=lambda c: (depths[c], -c))]  # the defect: its ancestors need not match
    while path[-1] != 0:
        path.append(tree.parents[path[-1]])
    return TreeVerdict(path[::-1], best[path[0]])


if __name__ == "__main__":
    conformance_adapter.verify_tree_greedy = tree_step.verify_tree_greedy = deepest_match
    serve()
