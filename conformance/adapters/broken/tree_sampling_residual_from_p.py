#!/usr/bin/env python3
"""Broken on purpose: after each rejected child, sampling tree verification takes the residual max(p - q, 0) from
the node's p again, where TRE-8 takes it from the running target (the normalized residual of the children before)."""

import torch
from _base import serve

from specfmt import conformance_adapter
from specfmt.tree import TreeVerdict
from specfmt.verification import sample


def residual_from_p(tree, p, uniforms, final_uniform: float):
    path = [0]
    while True:
        u = path[-1]
        target, drafted = p[u].double(), tree.q[u].double()
        residual = target
        for c in tree.children(u):
            x = tree.tokens[c]
            if float(uniforms[c - 1]) * float(drafted[x]) < float(target[x]):
                path.append(c)
                break
            residual = torch.clamp(target - drafted, min=0)  # the defect: target stays p[u]
            if float(residual.sum()) == 0:
                residual = target
            drafted = drafted.clone()
            drafted[x] = 0
            if float(drafted.sum()) > 0:
                drafted = drafted / drafted.sum()
        else:
            return TreeVerdict(path, sample(residual, final_uniform))


if __name__ == "__main__":
    conformance_adapter.verify_tree_sampling = residual_from_p
    serve()
