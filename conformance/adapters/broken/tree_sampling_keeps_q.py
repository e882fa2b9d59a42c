#!/usr/bin/env python3
"""Broken on purpose: sampling tree verification leaves a rejected child's token in q (SpecInfer's
with-replacement rule), where TRE-8 sets it to 0 and renormalizes q before the next sibling, since the children
were drawn without replacement."""

import torch
from _base import serve

from specfmt import conformance_adapter
from specfmt.tree import TreeVerdict
from specfmt.verification import sample


def keeps_q(tree, p, uniforms, final_uniform: float):
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
            residual = torch.clamp(target - drafted, min=0)
            if float(residual.sum()) == 0:
                residual = target
            target = residual / residual.sum()  # the defect: drafted keeps x
        else:
            return TreeVerdict(path, sample(residual, final_uniform))


if __name__ == "__main__":
    conformance_adapter.verify_tree_sampling = keeps_q
    serve()
