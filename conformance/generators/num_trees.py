"""Numerics cases of tree proposals and tree verification (spec/trees.md, format v1.1): the verifier's mask and
positions for a static tree (tree_attention), trees a branching draft proposes (propose_tree), greedy and sampling
tree verification (verify_tree_greedy, verify_tree_sampling: num_tree_verify), and generation with a tree
(generate_tree); the refusals of TRE-2 (a path list that is no tree) and TRE-5 (a draft that cannot branch).

The drafts and the verifier are num_fixtures' (eagle3 with its d2t offsets, medusa, eagle). Draws are greedy, so
every token a case compares is chosen with a margin: each of a node's m draws at least MIN_TOP2_MARGIN above the
next logit (the order of the children is node order), each verifier row's argmax as in numerics.py, and in a
dynamic tree every two candidate scores that far apart. A tree that is a chain repeats the chain case of
numerics.py exactly (TRE-10).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch

from conformance.generators import num_tree_verify
from conformance.generators.num_fixtures import VERIFIER, draft_path
from conformance.generators.num_tree_verify import anchors
from conformance.generators.numerics import (
    EXACT,
    MIN_TOP2_MARGIN,
    SEEDS,
    NumericsCase,
    context,
    generate_case,
    generate_outputs,
    models,
    prompt,
    proposal_cases,
    rounded,
    top2_margin,
)
from specfmt import tree as tree_module
from specfmt import tree_step
from specfmt.conformance_adapter import static_parents
from specfmt.generate import generate, generate_plain
from specfmt.proposal import Context, Picker, Proposal
from specfmt.tree import DynamicTree, StaticTree, Tree, attention


def shape_param(shape: StaticTree | DynamicTree) -> dict:
    if isinstance(shape, StaticTree):
        return {"paths": [list(path) for path in shape.paths]}
    return {"speculative_tokens": shape.speculative_tokens, "expansion_factor": shape.expansion_factor,
            "depth": shape.depth}


def parents_of(paths: list[list[int]]) -> list[int]:
    return static_parents(StaticTree(tuple(map(tuple, paths))))


# --- tree_attention: node order, mask and positions (TRE-2, TRE-6) and refused path lists ------------------------

SHUFFLED = [[1], [0, 1], [0], [1, 0], [2], [0, 0], [0, 0, 0]]  # node order: [0] [1] [2] [0,0] [0,1] [1,0] [0,0,0]
CHAIN = [[0], [0, 0], [0, 0, 0]]
NOT_TREES = {
    "tree-without-parent-path": ([[0], [1, 0]], "[1, 0] is listed without its parent path [1]"),
    "tree-without-earlier-sibling": ([[0], [2]], "[2] is listed without the earlier sibling [1]"),
    "tree-path-twice": ([[0], [0, 0], [0]], "[0] is listed twice"),
    "tree-negative-rank": ([[0], [0, -1]], "a rank below 0"),
}


def attention_case(name: str, what: str, paths: list, n: int, rules: tuple[str, ...]) -> NumericsCase:
    parents = parents_of(paths)
    positions, mask = attention(Tree(parents, [0] * len(parents)), n)
    return NumericsCase(
        f"num.tree-attention.{name}", f"the verifier's mask and positions for a static tree: {what}",
        anchors(*rules), "tree_attention", None, None, {"tree": {"paths": paths}, "n": n}, {},
        {"parents": torch.tensor(parents), "positions": positions, "mask": mask},
        {"parents": EXACT, "positions": EXACT, "mask": EXACT}, {"exact_boundary": "integers and booleans only"})


def attention_cases() -> list[NumericsCase]:
    cases = [
        attention_case("shuffled-paths-n3", "paths given out of order are nodes in node order (by length, then "
                       "lexicographically); each node sits at n + its depth and sees the 3 cached positions, its "
                       "ancestors and itself, never a sibling", SHUFFLED, 3, ("TRE-1", "TRE-2", "TRE-6")),
        attention_case("full-2-2-n2", "the full tree of a static_tree method with both branching factors 2 and depth 2",
                       [list(p) for p in tree_module.full_tree(2, 2, 2).paths], 2, ("TRE-2", "TRE-3", "TRE-6")),
        attention_case("chain-n4", "a chain: the causal mask, positions n..n+K", CHAIN, 4, ("TRE-6", "TRE-10")),
    ]
    for name, (paths, why) in NOT_TREES.items():
        cases.append(NumericsCase(
            f"num.refuse.{name}", f"a path list that is no tree is refused: {why}", anchors("TRE-2"),
            "tree_attention", None, None, {"tree": {"paths": paths}, "n": 2}, {}, {}, {}, refusal="refused.tree"))
    return cases


# --- propose_tree: draws, node order, the dynamic expansion, which drafts branch (TRE-1 to TRE-5) ------------------

@contextmanager
def recording():
    """The margins the reference met while drafting and verifying trees: each draw's gap to the next logit, every
    candidate score of a dynamic tree, each verifier row's top-2 gap. Wraps the functions tree.expand, tree_step's
    proposal and its verification look up at call time."""
    seen = {"draws": [], "scores": [], "rows": [], "paths": []}
    draw, select, verify = tree_module.draw, tree_step.select, tree_step.verify_tree_greedy

    def recorded_draw(logits, m, pick):
        s = torch.sort(logits.double(), descending=True).values
        seen["draws"] += (s[:min(m, s.numel() - 1)] - s[1:min(m, s.numel() - 1) + 1]).tolist()
        return draw(logits, m, pick)

    def recorded_select(candidates, shape, vocab_size, targets):
        if isinstance(shape, DynamicTree):
            seen["scores"].append(candidates.scores[1:])
        return select(candidates, shape, vocab_size, targets)

    def recorded_verify(tree, target_logits):
        seen["rows"].append(top2_margin(target_logits.double()))
        verdict = verify(tree, target_logits)
        seen["paths"].append(verdict.path)
        return verdict

    tree_module.draw, tree_step.select, tree_step.verify_tree_greedy = recorded_draw, recorded_select, recorded_verify
    try:
        yield seen
    finally:
        tree_module.draw, tree_step.select, tree_step.verify_tree_greedy = draw, select, verify


def margin_of(seen: dict) -> float:
    gaps = list(seen["draws"]) + list(seen["rows"])
    for scores in seen["scores"]:
        s = sorted(scores)
        gaps += [b - a for a, b in zip(s, s[1:], strict=False)]
    return min(gaps) if gaps else float("inf")


def propose_case(suite: Path, algorithm: str, shape: StaticTree | DynamicTree, name: str, what: str,
                 rules: tuple[str, ...], inputs: dict | None = None) -> NumericsCase:
    """The tree the draft proposes after a seeded context with no near tie anywhere (or after `inputs`)."""
    checkpoint = draft_path(algorithm)
    verifier, draft = models(suite, checkpoint)
    for seed in SEEDS:
        if inputs is None:
            ctx, x, pending_margin = context(verifier, draft, prompt(seed, 6))
        else:  # another case's context, whose golden holds the pending token's margin; features widened back
            x, pending_margin = inputs, float("inf")
            ctx = Context(x["token_ids"].tolist(), *(x[k].double() for k in ("aux", "last", "normed")))
        draft.reset()
        with recording() as seen:
            tree = tree_step.propose(draft, ctx, shape, Picker(), verifier.vocab_size)
        margin = min(margin_of(seen), pending_margin)
        if margin >= MIN_TOP2_MARGIN or inputs is not None:
            break
    assert margin >= MIN_TOP2_MARGIN, name
    return NumericsCase(
        f"num.propose-tree.{name}", f"the tree a greedy {algorithm} draft proposes: {what}",
        anchors(*rules), "propose_tree", checkpoint, VERIFIER, {"tree": shape_param(shape)}, x,
        {"parents": torch.tensor(tree.parents), "tokens": torch.tensor(tree.tokens)},
        {"parents": EXACT, "tokens": EXACT}, {"min_top2_margin": rounded(margin)})


def propose_cases(suite: Path) -> list[NumericsCase]:
    chain = proposal_cases(suite, "eagle3", forward=False)[0]  # num.propose.eagle3-k3
    same = propose_case(suite, "eagle3", StaticTree(tuple(map(tuple, CHAIN))), "eagle3-chain-k3",
                        "the paths [0], [0, 0], [0, 0, 0] after num.propose.eagle3-k3's context give its chain",
                        ("TRE-10", "TRE-3", "TRE-5"), chain.inputs)
    assert same.expected["tokens"][1:].tolist() == chain.expected["draft_tokens"].tolist()
    cases = [
        propose_case(suite, "eagle3", StaticTree(tuple(map(tuple, SHUFFLED))), "eagle3-static",
                     "seven paths given out of order, three children at the root; tokens in verifier ids (d2t), "
                     "each node's row reads its parent's state and sees only its ancestors (TRE-5)",
                     ("TRE-1", "TRE-2", "TRE-3", "TRE-5")),
        propose_case(suite, "eagle3", DynamicTree(6, 2, 3), "eagle3-dynamic-6-2-3",
                     "EAGLE-2's dynamic tree, 2 draws per expanded node, depth 3, the 6 best-scoring nodes kept",
                     ("TRE-1", "TRE-3", "TRE-4", "TRE-5")),
        propose_case(suite, "medusa", StaticTree(tuple(map(tuple, SHUFFLED))), "medusa-static",
                     "every node at depth d draws from head d, whatever its parent", ("TRE-1", "TRE-2", "TRE-5")),
        same,
    ]
    for algorithm in ("ngram", "dflash", "independent"):
        verifier, draft = models(suite, draft_path(algorithm))
        _, x, _ = context(verifier, draft, prompt(0, 6))
        cases.append(NumericsCase(
            f"num.refuse.tree-{algorithm.replace('_', '-')}", f"a tree proposal from a {algorithm} draft is refused: "
            "v1.1 defines no tree for it", anchors("TRE-5"), "propose_tree", draft_path(algorithm),
            VERIFIER, {"tree": {"paths": CHAIN[:2] + [[1]]}}, x, {}, {}, refusal="refused.tree"))
    cases.append(NumericsCase(
        "num.refuse.tree-verifier-accept-k-2", "greedy tree decoding with the top-k rule (verifier_accept_k 2), "
        "which v1.1 does not define for trees, is refused", anchors("TRE-7"), "generate_tree", draft_path("eagle3"),
        VERIFIER, {"max_new_tokens": 4, "tree": {"paths": CHAIN[:2] + [[1]]}, "verifier_accept_k": 2},
        {"prompt_ids": prompt(0, 6)}, {}, {}, refusal="refused.tree"))
    return cases


# --- generate_tree: the loop and its counters per depth (TRE-9), a chain as a tree (TRE-10) ------------------------

def off_first_children(paths: list[list[int]]) -> bool:
    """Some accepted node is not on the chain of first children: its row's index differs from its depth, and a
    sibling precedes it or one of its ancestors in node order. Asked of every step but the last, so that the
    node's cached row (TRE-9) is read by a later step."""
    return any(node != depth for path in paths for depth, node in enumerate(path))


def generate_tree_case(suite: Path, algorithm: str, shape: StaticTree | DynamicTree, name: str, what: str,
                       rules: tuple[str, ...], max_new_tokens: int = 12, prompts=None) -> NumericsCase:
    checkpoint = draft_path(algorithm)
    verifier, draft = models(suite, checkpoint)
    proposal = Proposal("greedy", shape.depth)
    for prompt_ids in prompts if prompts is not None else (prompt(seed, 6) for seed in SEEDS):
        tokens = generate_plain(verifier, prompt_ids.tolist(), max_new_tokens, proposal)
        verifier.truncate(0)
        logits = verifier.forward(torch.tensor(prompt_ids.tolist() + tokens[:-1])).logits[len(prompt_ids) - 1:]
        with recording() as seen:
            result = generate(verifier, draft, prompt_ids.tolist(), max_new_tokens, proposal, shape=shape)
        margin = min(margin_of(seen), top2_margin(logits))
        if margin >= MIN_TOP2_MARGIN and (prompts is not None or off_first_children(seen["paths"][:-1])):
            break
    else:
        raise AssertionError(f"{name}: no prompt without a near tie accepts off the first children")
    assert margin >= MIN_TOP2_MARGIN and result.tokens == tokens, name
    return NumericsCase(
        f"num.generate-tree.{name}-n{max_new_tokens}",
        f"{max_new_tokens} tokens of greedy speculative decoding with a tree from the {algorithm} draft: {what}",
        anchors(*rules), "generate_tree", checkpoint, VERIFIER,
        {"max_new_tokens": max_new_tokens, "tree": shape_param(shape)}, {"prompt_ids": prompt_ids},
        generate_outputs(result), {"tokens": EXACT, "drafts": EXACT, "accepted_per_position": EXACT},
        {"min_top2_margin": rounded(margin), "accepted_per_step": result.stats.accepted,
         "paths": seen["paths"]})


def generate_cases(suite: Path) -> list[NumericsCase]:
    chain = generate_case(suite, "eagle3")  # num.generate.eagle3-n12-k3
    same = generate_tree_case(suite, "eagle3", StaticTree(tuple(map(tuple, CHAIN))), "eagle3-chain",
                              "the paths [0], [0, 0], [0, 0, 0] from num.generate.eagle3-n12-k3's prompt repeat its "
                              "tokens and counters", ("TRE-10", "TRE-9"), prompts=[chain.inputs["prompt_ids"]])
    for output, golden in chain.expected.items():
        assert torch.equal(same.expected[output], golden), output
    wide = tree_module.full_tree(8, 2, 2)
    return [
        generate_tree_case(suite, "eagle3", wide, "eagle3-static-8-2-2", "8 children at the root, 2 below, depth 2; "
                           "a node off the first children is accepted", ("TRE-9", "TRE-6", "TRE-7", "TRE-5")),
        generate_tree_case(suite, "medusa", wide, "medusa-static-8-2-2", "head d drafts depth d",
                           ("TRE-9", "TRE-6", "TRE-7", "TRE-5")),
        generate_tree_case(suite, "eagle", DynamicTree(10, 4, 3), "eagle-dynamic-10-4-3",
                           "EAGLE-2's dynamic tree, counters per depth 1..3", ("TRE-9", "TRE-4", "TRE-6", "TRE-7")),
        same,
    ]


def cases(suite: Path) -> list[NumericsCase]:
    return (attention_cases() + propose_cases(suite) + num_tree_verify.greedy_cases() + num_tree_verify.sampling_cases()
            + generate_cases(suite))
