"""The tree step of generate: the drafts that branch compute their distribution at each node (a row per node of a
state-recurrent draft, a depth-wise row of Medusa and P-EAGLE), the verifier scores the tree in one pass, and the
accepted path stays in its cache.

Spec: spec/trees.md#TRE-5, spec/trees.md#TRE-9
"""

from __future__ import annotations

import torch

from specfmt.findings import Refused
from specfmt.nn import KVCache
from specfmt.proposal import Context, Picker, Proposal, catch_up
from specfmt.tree import (
    Candidates,
    DynamicTree,
    StaticTree,
    Tree,
    attention,
    expand,
    path_problems,
    select,
    verify_tree_greedy,
    verify_tree_sampling,
)
from specfmt.verification import process_logits
from specfmt.verifier import Output, Verifier


class RecurrentExpander:
    """The per-node distributions of a state-recurrent draft (EAGLE-3, EAGLE, MTP): the root's from the catch-up
    row n-1; a node at depth d is a row at position n-1+d that reads its token and its parent's fed-back state
    and attends to rows 0..n-1, its ancestors' rows and itself. Spec: spec/trees.md#TRE-5"""

    def __init__(self, draft, features, ctx: Context):
        self.draft, self.n = draft, len(ctx.tokens) - 1
        logits, state = catch_up(draft, features, ctx)
        self.out = {0: (logits[-1], state[-1])}  # node -> (its logits, the state its children read)
        self.columns: dict[int, int] = {}  # node -> its row in the draft's caches

    def __call__(self, c: Candidates, nodes: list[int]) -> torch.Tensor:
        if nodes == [0]:
            return self.out[0][0][None]  # [1, V_d]
        state = self.out[0][1]
        device, past = state.device, len(self.draft.caches[0])
        mask = torch.zeros(len(nodes), past + len(nodes), dtype=torch.bool)
        mask[:, :self.n] = True
        for row, u in enumerate(nodes):
            self.columns[u] = past + row
            a = u
            while a > 0:
                mask[row, self.columns[a]] = True
                a = c.parents[a]
        logits, fed = self.draft.forward_rows(
            torch.tensor([c.tokens[u] for u in nodes], device=device),
            torch.stack([self.out[c.parents[u]][1] for u in nodes]),  # [F, H]
            torch.tensor([self.n - 1 + c.depth(u) for u in nodes], device=device), mask.to(device))
        for row, u in enumerate(nodes):
            self.out[u] = (logits[row], fed[row])
        return logits


class DepthExpander:
    """A draft whose distribution at depth d is one for every node (Medusa's heads, P-EAGLE's depth rows): the
    children of a node at depth d take row d of `logits` [D, V_d]. Spec: spec/trees.md#TRE-5"""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    def __call__(self, c: Candidates, nodes: list[int]) -> torch.Tensor:
        return self.logits[[c.depth(u) for u in nodes]]  # [F, V_d]


def propose(draft, ctx: Context, shape: StaticTree | DynamicTree, pick: Picker, vocab_size: int) -> Tree:
    """A draft's tree after ctx.tokens: the draft's own expander, drawn as TRE-3 / TRE-4 say.
    Spec: spec/trees.md#TRE-5"""
    if not hasattr(draft, "branch"):
        raise Refused("refused.tree", f"{type(draft).__name__} drafts cannot branch (spec/trees.md#TRE-5)")
    problems = path_problems(shape.paths) if isinstance(shape, StaticTree) else []
    if problems:
        raise Refused("refused.tree", "static tree refused (spec/trees.md#TRE-2): " + "; ".join(problems))
    targets = draft.targets
    candidates = expand(draft.branch(ctx, shape.depth), shape, pick, targets)
    candidates.tokens[0] = ctx.tokens[-1]
    return select(candidates, shape, vocab_size, targets)


def keep_path(caches: list[KVCache], n: int, path: list[int]) -> None:
    """Keep, after the n positions before the tree, only the rows of the accepted path (its nodes move to
    positions n..n+len(path)-1). Spec: spec/trees.md#TRE-9"""
    rows = n + torch.tensor(path)
    for cache in caches:
        cache.k[..., n:n + len(path), :] = cache.k[..., rows.to(cache.k.device), :]
        cache.v[..., n:n + len(path), :] = cache.v[..., rows.to(cache.v.device), :]
        cache.truncate(n + len(path))


def step(verifier: Verifier, draft, ctx: Context, proposal: Proposal, generator: torch.Generator,
         shape: StaticTree | DynamicTree) -> tuple[int, int]:
    """One tree step of VRF-6: propose a tree, score the root and every node in one verifier pass, verify,
    keep the accepted path in the verifier's cache and commit it; (accepted, nodes drafted).
    Spec: spec/trees.md#TRE-9"""
    if proposal.kind == "greedy" and proposal.verifier_accept_k != 1:
        raise Refused("refused.tree", "tree verification with verifier_accept_k > 1 is not defined")
    n, device = len(ctx.tokens) - 1, verifier.device
    tree = propose(draft, ctx, shape, proposal.picker(generator), verifier.vocab_size)
    positions, mask = attention(tree, n)
    out = verifier.forward(torch.tensor(tree.tokens), draft.aux_ids, positions.to(device), mask.to(device))
    if proposal.kind == "greedy":
        verdict = verify_tree_greedy(tree, out.logits)
    else:
        p = process_logits(out.logits, proposal.temperature, proposal.top_k, proposal.top_p)
        uniforms = torch.rand(len(tree.tokens), generator=generator, dtype=torch.float64)
        verdict = verify_tree_sampling(tree, p, uniforms[:-1], float(uniforms[-1]))
    keep_path(verifier.caches, n, verdict.path)
    rows = torch.tensor(verdict.path, device=out.logits.device)
    ctx.commit(Output(out.logits[rows], out.aux[rows], out.last[rows], out.normed[rows]), len(rows),
               [tree.tokens[c] for c in verdict.path[1:]] + [verdict.next_token])
    return verdict.accepted, len(tree.tokens) - 1
