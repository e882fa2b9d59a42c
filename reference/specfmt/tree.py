"""Tree proposals and tree verification as pure functions: a tree's shape, its expansion from the draft's per-node
distributions, the verifier's mask and positions, greedy and sampling verification. Every random draw of
verification comes in as a uniform; the draws of a sampled expansion come from the picker's generator.
The tree step of generate, and how each draft computes its distributions, are in specfmt.tree_step.
Notation: node 0 is the root (the pending token), nodes 1..N the drafts in node order, p the target
distribution and q the draft's.
Spec: spec/trees.md
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from specfmt.proposal import Picker
from specfmt.verification import process_logits, sample

Path = tuple[int, ...]


@dataclass(frozen=True)
class StaticTree:
    """A static tree: element j of a path is the rank of its node among the draws of its parent at depth j.
    Spec: spec/trees.md#TRE-1"""

    paths: tuple[Path, ...]

    @property
    def depth(self) -> int:
        return max(len(path) for path in self.paths)


@dataclass(frozen=True)
class DynamicTree:
    """EAGLE-2's dynamic tree: expansion_factor draws per expanded node, depth levels, speculative_tokens nodes
    kept. Spec: spec/trees.md#TRE-4"""

    speculative_tokens: int
    expansion_factor: int
    depth: int


def full_tree(initial_branching_factor: int, branching_factor: int, depth: int) -> StaticTree:
    """The paths of a v1.0 static_tree method: every node of level 1..depth, initial_branching_factor children
    at the root, branching_factor below. Spec: spec/trees.md#TRE-3"""
    level: list[Path] = [(r,) for r in range(initial_branching_factor)]
    paths = list(level)
    for _ in range(depth - 1):
        level = [path + (r,) for path in level for r in range(branching_factor)]
        paths += level
    return StaticTree(tuple(paths))


def shape_of(method: dict) -> StaticTree | DynamicTree | None:
    """The tree a resolved proposal method of config.json names (its fields with their defaults); None for a chain
    method. Spec: spec/trees.md#TRE-3, spec/trees.md#TRE-4"""
    if method["proposal_type"] == "static_tree":
        return full_tree(method["initial_branching_factor"], method["branching_factor"], method["depth"])
    if method["proposal_type"] == "dynamic_tree":
        return DynamicTree(method["speculative_tokens"], method["expansion_factor"], method["depth"])
    return None


def path_problems(paths) -> list[str]:
    """Why a list of paths is no tree (empty when it is one). Spec: spec/trees.md#TRE-2"""
    if not isinstance(paths, (list, tuple)) or not paths:
        return ["a static tree needs at least one path"]
    problems, seen = [], set()
    for path in paths:
        if not isinstance(path, (list, tuple)) or not path or \
                not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in path):
            problems.append(f"path {path!r} is not a non-empty list of ranks >= 0")
            continue
        if tuple(path) in seen:
            problems.append(f"path {list(path)} is listed twice")
        seen.add(tuple(path))
    for path in sorted(seen, key=node_order):
        if len(path) > 1 and path[:-1] not in seen:
            problems.append(f"path {list(path)} has no parent path {list(path[:-1])}")
        if path[-1] > 0 and path[:-1] + (path[-1] - 1,) not in seen:
            problems.append(f"path {list(path)} has no earlier sibling {list(path[:-1] + (path[-1] - 1,))}")
    return problems


def node_order(path: Path) -> tuple[int, Path]:
    """The sort key of node order: shorter paths first, then lexicographic. Spec: spec/trees.md#TRE-2"""
    return len(path), tuple(path)


@dataclass
class Tree:
    """The root (the pending token) and the draft nodes in node order: parents[c] < c, parents[0] = -1."""

    parents: list[int]
    tokens: list[int]  # verifier ids; tokens[0] is the pending token
    q: torch.Tensor | None = None  # [N+1, V]: row u, the distribution u's children were drawn from; None: greedy

    @property
    def depths(self) -> list[int]:
        out = [0]
        for c in range(1, len(self.parents)):
            out.append(out[self.parents[c]] + 1)
        return out

    def children(self, u: int) -> list[int]:
        return [c for c in range(u + 1, len(self.parents)) if self.parents[c] == u]


def attention(tree: Tree, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The verifier's positions [N+1] and mask [N+1, n+N+1] for the tree after n cached positions: node i sits at
    n + depth(i) and attends to every cached position, to its ancestors and to itself. Spec: spec/trees.md#TRE-6"""
    size = len(tree.parents)
    mask = torch.zeros(size, n + size, dtype=torch.bool)
    mask[:, :n] = True
    for i in range(size):
        a = i
        while a >= 0:
            mask[i, n + a] = True
            a = tree.parents[a]
    return n + torch.tensor(tree.depths), mask


@dataclass(frozen=True)
class TreeVerdict:
    """The accepted path from the root (path[0] = 0), then the next token (a correction or the bonus)."""

    path: list[int]
    next_token: int

    @property
    def accepted(self) -> int:
        return len(self.path) - 1


def verify_tree_greedy(tree: Tree, target_logits: torch.Tensor) -> TreeVerdict:
    """Walk from the root to the child holding the verifier's argmax (ties to the lowest id) while there is one.
    target_logits: [N+1, V]. Spec: spec/trees.md#TRE-7"""
    best = target_logits.argmax(-1).tolist()  # [N+1]
    path = [0]
    while True:
        child = next((c for c in tree.children(path[-1]) if tree.tokens[c] == best[path[-1]]), None)
        if child is None:
            return TreeVerdict(path, best[path[-1]])
        path.append(child)


def verify_tree_sampling(tree: Tree, p: torch.Tensor, uniforms: torch.Tensor, final_uniform: float) -> TreeVerdict:
    """Recursive rejection sampling over each accepted node's children, drawn without replacement: a rejected
    child's residual becomes the target and its token leaves q. p: [N+1, V]; tree.q: [N+1, V]; uniforms: [N],
    uniforms[c-1] for node c. Spec: spec/trees.md#TRE-8"""
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
            target = residual / residual.sum()
            drafted = drafted.clone()
            drafted[x] = 0
            if float(drafted.sum()) > 0:
                drafted = drafted / drafted.sum()
        else:
            return TreeVerdict(path, sample(residual, final_uniform))


def draw(logits: torch.Tensor, m: int, pick: Picker) -> tuple[list[int], list[float], torch.Tensor | None]:
    """At most m children of a node from its draft logits [V_d]: their draft ids, log q of each in float64, and q
    (None when greedy). Greedy: the m highest logits, ties to the lower id; sampling: m draws without replacement
    from q (VRF-1), the j-th one sample(q with the earlier draws set to 0, u_j). Spec: spec/trees.md#TRE-3"""
    if pick.temperature == 0:  # a stable sort of only the ids that reach the m-th highest logit (of all V_d = 8,192
        floor = logits.topk(min(m, logits.numel())).values[-1]  # ids, the sort cost 0.5 ms a node on two cores)
        reach = (logits >= floor).nonzero().flatten()  # in id order, ties at the floor included
        ids = reach[torch.sort(logits[reach], descending=True, stable=True).indices[:m]]
        log_q = torch.log_softmax(logits.double(), -1)[ids]
        return ids.tolist(), log_q.tolist(), None
    q = process_logits(logits, pick.temperature, pick.top_k, pick.top_p)
    left, ids = q.double().clone(), []
    while len(ids) < m and float(left.sum()) > 0:
        ids.append(sample(left, float(torch.rand((), generator=pick.generator))))
        left[ids[-1]] = 0
    return ids, torch.log(q.double()[ids]).tolist(), q


@dataclass
class Candidates:
    """Every drafted node in generation order, the root first (index 0)."""

    parents: list[int]
    draft_ids: list[int]
    tokens: list[int]  # verifier ids
    scores: list[float]  # cumulative log q, float64
    paths: list[Path]
    q: dict[int, torch.Tensor] = field(default_factory=dict)  # the draft distribution of each expanded node

    def depth(self, i: int) -> int:
        return len(self.paths[i])


Expander = Callable[[Candidates, list[int]], torch.Tensor]  # (candidates, nodes) -> logits [len(nodes), V_d]


def ranked(c: Candidates, nodes) -> list[int]:
    """Nodes by score, highest first; equal scores: the lower draft id, then the earlier node. TRE-4"""
    return sorted(nodes, key=lambda i: (-c.scores[i], c.draft_ids[i], i))


def expand(expander: Expander, shape: StaticTree | DynamicTree, pick: Picker,
           targets: torch.Tensor | None) -> Candidates:
    """Draft level by level: the nodes to expand get their logits from `expander`, and children by `draw`.
    Static: every node whose path has children; dynamic: the expansion_factor best nodes of the level.
    Spec: spec/trees.md#TRE-3, spec/trees.md#TRE-4"""
    c = Candidates([-1], [-1], [-1], [0.0], [()])
    wanted = {} if isinstance(shape, DynamicTree) else _widths(shape)
    level = [0]
    for _ in range(shape.depth):
        if isinstance(shape, DynamicTree):
            nodes = level if level == [0] else ranked(c, level)[:shape.expansion_factor]
        else:
            nodes = [i for i in level if wanted.get(c.paths[i], 0) > 0]
        if not nodes:
            break
        level = []
        for u, logits in zip(nodes, expander(c, nodes), strict=True):
            m = shape.expansion_factor if isinstance(shape, DynamicTree) else wanted[c.paths[u]]
            ids, log_q, q = draw(logits, m, pick)
            if q is not None:
                c.q[u] = q
            for rank, (x, lq) in enumerate(zip(ids, log_q, strict=True)):
                c.parents.append(u)
                c.draft_ids.append(x)
                c.tokens.append(x if targets is None else int(targets[x]))
                c.scores.append(c.scores[u] + lq)
                c.paths.append(c.paths[u] + (rank,))
                level.append(len(c.parents) - 1)
    return c


def _widths(shape: StaticTree) -> dict[Path, int]:
    """How many children each path has (the root is the empty path)."""
    out: dict[Path, int] = {}
    for path in shape.paths:
        out[tuple(path[:-1])] = out.get(tuple(path[:-1]), 0) + 1
    return out


def keep_best(parents: list[int], order: list[int], size: int) -> list[int]:
    """The `size` nodes a dynamic tree keeps, in generation order: repeatedly the first node of `order` whose parent
    is kept (the root always is) and whose earlier siblings are kept. Spec: spec/trees.md#TRE-4"""
    kept, last_child, earlier = {0}, {}, {}
    for i in range(1, len(parents)):
        earlier[i], last_child[parents[i]] = last_child.get(parents[i], 0), i  # 0: no earlier sibling
    chosen: list[int] = []
    while len(chosen) < size:
        i = next((i for i in order if i not in kept and parents[i] in kept and earlier[i] in kept), None)
        if i is None:
            break
        kept.add(i)
        chosen.append(i)
    return sorted(chosen)


def select(c: Candidates, shape: StaticTree | DynamicTree, vocab_size: int,
           targets: torch.Tensor | None) -> Tree:
    """The tree of the kept candidates in node order (a static tree keeps them all), with q over the verifier
    vocabulary when the draws were sampled. Spec: spec/trees.md#TRE-2, spec/trees.md#TRE-4"""
    if isinstance(shape, DynamicTree):
        kept = [0] + keep_best(c.parents, ranked(c, range(1, len(c.parents))), shape.speculative_tokens)
    else:
        kept = [0] + sorted(range(1, len(c.parents)), key=lambda i: node_order(c.paths[i]))
    index = {old: new for new, old in enumerate(kept)}
    tree = Tree([-1] + [index[c.parents[i]] for i in kept[1:]], [c.tokens[i] for i in kept])
    if c.q:
        some = next(iter(c.q.values()))
        tree.q = torch.zeros(len(kept), vocab_size, dtype=some.dtype, device=some.device)  # [N+1, V]
        for old, row in c.q.items():
            if old in index:
                at = index[old]
                if targets is None:
                    tree.q[at] = row
                else:
                    tree.q[at, targets.to(row.device)] = row  # [V_d] -> [V]
    return tree
