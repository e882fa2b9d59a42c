"""Numerics cases of tree verification (spec/trees.md, format v1.1), no checkpoint: greedy (TRE-7) and recursive
rejection sampling (TRE-8) over small hand-made trees.

Greedy cases hold integer logits, so every top-2 margin is 1. Sampling cases draw q and p from seeded integer logits
(softmax in float64, stored in float32) and the children from q without replacement (TRE-3); a seed is refused when
a uniform lies within MIN_UNIFORM_MARGIN of its threshold or of a CDF step, and kept only when the mistakes TRE-8
names decide otherwise: the with-replacement rule (SpecInfer's, q unchanged) or a residual taken from p instead of
the running target.
"""

from __future__ import annotations

import torch

from conformance.generators.numerics import EXACT, NumericsCase, rounded, top2_margin
from specfmt.tree import Tree, verify_tree_greedy, verify_tree_sampling
from specfmt.verification import sample

MIN_UNIFORM_MARGIN = 1e-3
PATH_OUTPUTS = {"path": EXACT, "next_token": EXACT}


def anchors(*rules: str) -> list[str]:
    return [f"spec/trees.md#{rule}" for rule in rules]


# --- verify_tree_greedy (TRE-7) -------------------------------------------------------------------------------------

# node order: the root 0; depth 1: 1, 2, 3; depth 2: 4 and 5 under 1, 6 under 2; depth 3: 7 under 4
PARENTS = [-1, 0, 0, 0, 1, 1, 2, 4]
TOKENS = [5, 1, 2, 3, 4, 6, 7, 0]  # verifier ids; TOKENS[0] the pending token; siblings differ (TRE-1)
V_TREE = 8
GREEDY = {  # name -> (what, each row's argmax b[u])
    "second-child-accepted": ("the root's second child holds b[0] and its child holds b[2]: the path goes down "
                              "past a rejected first child", [2, 0, 7, 5, 5, 1, 3, 1]),
    "match-under-rejected-node": ("the root's third child, a leaf, is accepted; nodes 4 and 7 below the rejected "
                                  "first child match their parents' rows but are never reached",
                                  [3, 4, 1, 6, 0, 1, 2, 5]),
    "deepest-leaf-bonus": ("first children down to the depth-3 leaf, whose row gives the bonus token",
                           [1, 4, 0, 2, 0, 3, 3, 6]),
    "none-accepted": ("no child of the root holds b[0]: nothing accepted, the next token is b[0]",
                      [4, 1, 7, 0, 0, 2, 3, 1]),
}


def argmax_rows(best: list[int]) -> torch.Tensor:
    """Integer logits [N+1, V] whose row u has its maximum 2 at best[u], then distinct values 1, 0, -1, ...: every
    top-2 margin is 1."""
    rows = []
    for u, b in enumerate(best):
        others = [(j + u) % V_TREE for j in range(V_TREE) if (j + u) % V_TREE != b]
        row = torch.zeros(V_TREE)
        row[b] = 2.0
        for rank, j in enumerate(others):
            row[j] = 1.0 - rank
        rows.append(row)
    return torch.stack(rows)


def greedy_cases() -> list[NumericsCase]:
    cases = []
    for name, (what, best) in GREEDY.items():
        logits = argmax_rows(best)
        tree = Tree(PARENTS, TOKENS)
        verdict = verify_tree_greedy(tree, logits)
        cases.append(NumericsCase(
            f"num.verify-tree-greedy.{name}", f"greedy tree verification: {what}", anchors("TRE-7", "TRE-1"),
            "verify_tree_greedy", None, None, {},
            {"parents": torch.tensor(PARENTS), "tokens": torch.tensor(TOKENS), "target_logits": logits},
            {"path": torch.tensor(verdict.path), "next_token": torch.tensor([verdict.next_token])}, PATH_OUTPUTS,
            {"min_top2_margin": rounded(top2_margin(logits)), "path": verdict.path}))
    return cases


# --- verify_tree_sampling (TRE-8) -----------------------------------------------------------------------------------

SAMPLING_PARENTS = [-1, 0, 0, 0, 1, 1, 2]  # three children at the root, two under the first, one under the second


def recursive(parents: list[int], tokens: list[int], q: torch.Tensor, p: torch.Tensor, u: torch.Tensor, final: float,
              remove_q: bool = True, running: bool = True) -> tuple[list[int], int, float]:
    """TRE-8's loop (both flags true), or a mistake: Q unchanged after a rejection (remove_q false, SpecInfer's
    with-replacement rule), or each residual taken from p instead of the running target (running false).
    (path, next token, the smallest distance of a uniform from its threshold or from a CDF step)."""
    path, margins = [0], []
    while True:
        a = path[-1]
        target, drafted = p[a].double(), q[a].double()
        residual = target
        for c in (c for c in range(a + 1, len(parents)) if parents[c] == a):
            x = tokens[c]
            margins.append(abs(float(u[c - 1]) - float(target[x]) / float(drafted[x])))
            if float(u[c - 1]) * float(drafted[x]) < float(target[x]):
                path.append(c)
                break
            residual = torch.clamp(target - drafted, min=0)
            if float(residual.sum()) == 0:
                residual = target
            if running:
                target = residual / residual.sum()
            if remove_q:
                drafted = drafted.clone()
                drafted[x] = 0
                if float(drafted.sum()) > 0:
                    drafted = drafted / drafted.sum()
        else:
            cdf = torch.cumsum(residual, 0) / residual.sum()
            margins.append(float((cdf - final).abs().min()))
            return path, sample(residual, final), min(margins)


def sampling_inputs(seed: int) -> dict[str, torch.Tensor]:
    """q for the nodes with children (zero rows for leaves), p for every node, children drawn from q without
    replacement (TRE-3), uniforms; float64 softmax of integer logits, stored in float32."""
    g = torch.Generator().manual_seed(seed)
    n = len(SAMPLING_PARENTS)
    p = torch.softmax(torch.randint(-8, 9, (n, V_TREE), generator=g).double() / 4, -1).float()
    q = torch.zeros(n, V_TREE)
    tokens = [int(torch.randint(0, V_TREE, (), generator=g))]
    for u in range(n):
        children = [c for c in range(1, n) if SAMPLING_PARENTS[c] == u]
        if children:
            q[u] = torch.softmax(torch.randint(-8, 9, (V_TREE,), generator=g).double() / 4, -1).float()
            left = q[u].double().clone()
            for _ in children:
                x = sample(left, float(torch.rand((), generator=g, dtype=torch.float64)))
                tokens.append(x)  # children are numbered in the order they are drawn, level by level
                left[x] = 0
    order = sorted(range(1, n), key=lambda c: SAMPLING_PARENTS[c])  # drawn per parent; stored in node order
    tokens = [tokens[0]] + [tokens[1 + order.index(c)] for c in range(1, n)]
    return {"parents": torch.tensor(SAMPLING_PARENTS), "tokens": torch.tensor(tokens), "q": q, "p": p,
            "uniforms": torch.rand(n - 1, generator=g, dtype=torch.float64),
            "final_uniform": torch.rand(1, generator=g, dtype=torch.float64)}


SAMPLING = {  # name -> (what, what the correct path must be, which mistakes must decide otherwise)
    "removed-mass-rejects-second-child": ("the first child is rejected, then the second, which the rule that keeps "
                                          "the first child's token in q (with replacement) accepts",
                                          lambda path: path[:2] != [0, 1] and path[:2] != [0, 2], ("keeps_q",)),
    "third-child-running-residual": ("two children rejected, the third accepted against the residual of the "
                                     "residual", lambda path: path[:2] == [0, 3], ("residual_from_p",)),
    "all-rejected-residual": ("every child of the root rejected: the next token is drawn from the last residual, "
                              "not from max(p - q, 0) of the root's p and first q", lambda path: path == [0],
                              ("keeps_q", "residual_from_p")),
    "leaf-bonus": ("a first child and its second child accepted: the leaf's bonus token is drawn from its p",
                   lambda path: path == [0, 1, 5], ()),
}


def sampling_cases() -> list[NumericsCase]:
    cases, used = [], set()
    for name, (what, wanted, mistakes) in SAMPLING.items():
        for seed in (seed for seed in range(5000) if seed not in used):
            x = sampling_inputs(seed)
            args = (SAMPLING_PARENTS, x["tokens"].tolist(), x["q"], x["p"], x["uniforms"],
                    float(x["final_uniform"][0]))
            path, next_token, margin = recursive(*args)
            if margin < MIN_UNIFORM_MARGIN or not wanted(path):
                continue
            wrong = {"keeps_q": recursive(*args, remove_q=False)[:2],
                     "residual_from_p": recursive(*args, running=False)[:2]}
            if all(wrong[m] != (path, next_token) for m in mistakes):
                used.add(seed)
                break
        else:
            raise AssertionError(f"no seed gives {name}")
        verdict = verify_tree_sampling(Tree(SAMPLING_PARENTS, x["tokens"].tolist(), x["q"]), x["p"], x["uniforms"],
                                       float(x["final_uniform"][0]))
        assert (verdict.path, verdict.next_token) == (path, next_token), name
        cases.append(NumericsCase(
            f"num.verify-tree-sampling.{name}", f"recursive rejection sampling over a tree: {what}",
            anchors("TRE-8"), "verify_tree_sampling", None, None, {}, x,
            {"path": torch.tensor(path), "next_token": torch.tensor([next_token])}, PATH_OUTPUTS,
            {"min_uniform_margin": rounded(margin), "path": path}))
    return cases
