#!/usr/bin/env python3
"""Broken on purpose: a static tree's nodes are numbered in the order its list gives the paths, where TRE-2 numbers
them in node order (by length, then lexicographically) whatever order the list gives. Parents, positions and the
mask are right for that numbering."""

import torch
from _base import serve, with_operations

from specfmt.conformance_adapter import tree_shape


def tree_attention(model, params: dict, x: dict) -> dict:
    tree_shape(params)  # a list that is no tree is still refused
    nodes = [()] + [tuple(path) for path in params["tree"]["paths"]]  # the defect: the list's order
    index = {path: i for i, path in enumerate(nodes)}
    n, size = params["n"], len(nodes)
    mask = torch.zeros(size, n + size, dtype=torch.bool)
    mask[:, :n] = True
    for i, path in enumerate(nodes):
        for d in range(len(path) + 1):
            mask[i, n + index[path[:d]]] = True  # itself and each ancestor
    return {"parents": torch.tensor([-1] + [index[path[:-1]] for path in nodes[1:]]),
            "positions": n + torch.tensor([len(path) for path in nodes]), "mask": mask}


if __name__ == "__main__":
    serve(handler=with_operations(tree_attention=tree_attention))
