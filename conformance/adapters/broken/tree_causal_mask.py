#!/usr/bin/env python3
"""Broken on purpose: the verifier's tree mask is causal over the tree's rows, so a node also sees the nodes before
it in node order (its earlier siblings and their subtrees), where TRE-6 lets it see only its ancestors and itself.
A chain's mask comes out right."""

import torch
from _base import serve

from specfmt import tree_step


def causal(tree, n: int):
    size = len(tree.parents)
    mask = torch.ones(size, n + size, dtype=torch.bool).tril(n)  # the defect: key n + j for every j <= i
    return n + torch.tensor(tree.depths), mask


if __name__ == "__main__":
    tree_step.attention = causal
    serve()
