#!/usr/bin/env python3
"""Broken on purpose: greedy tree verification compares the verifier's choice with the first child of each node
only, as a chain would, where TRE-7 accepts whichever child holds it."""

from _base import serve

from specfmt import conformance_adapter, tree_step
from specfmt.tree import TreeVerdict


def first_child_only(tree, target_logits):
    best = target_logits.argmax(-1).tolist()
    path = [0]
    while True:
        first = tree.children(path[-1])[:1]  # the defect: later siblings are never looked at
        if not first or tree.tokens[first[0]] != best[path[-1]]:
            return TreeVerdict(path, best[path[-1]])
        path.append(first[0])


if __name__ == "__main__":
    conformance_adapter.verify_tree_greedy = tree_step.verify_tree_greedy = first_child_only
    serve()
