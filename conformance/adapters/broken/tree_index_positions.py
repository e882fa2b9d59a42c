#!/usr/bin/env python3
"""Broken on purpose: a tree node sits at position n + its index in node order, where TRE-6 puts it at n + its
depth (siblings share a position). A chain's positions come out right."""

import torch
from _base import serve

from specfmt import tree, tree_step


def by_index(nodes, n: int):
    _, mask = tree.attention(nodes, n)
    return n + torch.arange(len(nodes.parents)), mask  # the defect: index, not depth


if __name__ == "__main__":
    tree_step.attention = by_index
    serve()
