"""Tree proposals and tree verification as pure functions (spec/trees.md): the shape of a static tree, the
dynamic tree's selection and its ties, the verifier's mask and positions, greedy and sampling verification, and
the statistical test of the central theorem: recursive rejection sampling over a tree reproduces p.
"""

import pytest
import torch

from builders import config_of
from specfmt import tree, tree_step
from specfmt.defaults import resolve
from specfmt.nn import KVCache
from specfmt.proposal import Picker
from specfmt.tree import DynamicTree, StaticTree, Tree, TreeVerdict
from specfmt.verification import Verdict, sample, verify_greedy, verify_sampling

T = torch.tensor


def test_a_static_tree_lists_its_nodes_shorter_paths_first_then_lexicographic():
    paths = [(1,), (0, 1), (0,), (0, 0, 0), (1, 0), (0, 0)]
    assert sorted(paths, key=tree.node_order) == [(0,), (1,), (0, 0), (0, 1), (1, 0), (0, 0, 0)]


def test_a_path_list_with_a_missing_parent_a_missing_earlier_sibling_or_a_duplicate_is_no_tree():
    assert tree.path_problems([(0,), (1,), (0, 0), (1, 0)]) == []
    assert tree.path_problems([(0,), (1, 0)]) == ["path [1, 0] has no parent path [1]"]
    assert tree.path_problems([(0,), (2,), (1,)]) == []
    assert tree.path_problems([(0,), (2,)]) == ["path [2] has no earlier sibling [1]"]
    assert tree.path_problems([(0,), (0,)]) == ["path [0] is listed twice"]
    assert tree.path_problems([]) == ["a static tree needs at least one path"]
    assert tree.path_problems([(0,), (-1,)]) == ["path (-1,) is not a non-empty list of ranks >= 0"]


def test_the_v1_0_static_tree_fields_give_every_node_of_the_full_tree():
    shape = tree.full_tree(initial_branching_factor=3, branching_factor=2, depth=3)
    assert len(shape.paths) == 3 + 3 * 2 + 3 * 2 * 2
    assert shape.depth == 3 and tree.path_problems(shape.paths) == []
    assert tree.full_tree(1, 1, 4).paths == ((0,), (0, 0), (0, 0, 0), (0, 0, 0, 0))  # a chain of K = 4


def test_the_tree_methods_of_config_json_name_their_trees_with_the_schema_defaults():
    config = config_of("medusa")
    config["speculators_config"]["proposal_methods"] = [
        {"proposal_type": "static_tree"}, {"proposal_type": "dynamic_tree", "depth": 3}, {"proposal_type": "greedy"}]
    static, dynamic, chain = resolve(config)["speculators_config"]["proposal_methods"]
    assert tree.shape_of(static) == tree.full_tree(4, 2, 5)  # the schema's defaults
    assert tree.shape_of(dynamic) == DynamicTree(speculative_tokens=48, expansion_factor=10, depth=3)
    assert tree.shape_of(chain) is None


def small_tree() -> Tree:
    """root 0 -> nodes 1, 2; node 1 -> 3, 4; node 2 -> 5; node 3 -> 6 (node order of the paths
    (0), (1), (0,0), (0,1), (1,0), (0,0,0))."""
    return Tree([-1, 0, 0, 1, 1, 2, 3], [9, 10, 11, 12, 13, 14, 15])


def test_the_mask_lets_each_node_attend_to_the_context_its_ancestors_and_itself_at_context_length_plus_depth():
    positions, mask = tree.attention(small_tree(), n=2)
    assert positions.tolist() == [2, 3, 3, 4, 4, 4, 5]
    context, nodes = [True, True], {
        0: [0], 1: [0, 1], 2: [0, 2], 3: [0, 1, 3], 4: [0, 1, 4], 5: [0, 2, 5], 6: [0, 1, 3, 6]}
    expected = [context + [j in nodes[i] for j in range(7)] for i in range(7)]
    assert mask.tolist() == expected


def test_the_mask_and_positions_of_a_chain_are_the_causal_ones():
    chain = Tree([-1, 0, 1, 2], [4, 5, 6, 7])
    positions, mask = tree.attention(chain, n=3)
    assert positions.tolist() == [3, 4, 5, 6]
    assert torch.equal(mask, torch.ones(4, 7, dtype=torch.bool).tril(3))


def one_hot_logits(best: list[int], vocab: int = 16) -> torch.Tensor:
    logits = torch.zeros(len(best), vocab)
    logits[range(len(best)), best] = 1.0
    return logits


def test_greedy_tree_verification_takes_the_child_holding_the_argmax_then_the_bonus_token():
    # argmax at the root 11 (node 2), at node 2 14 (node 5), at node 5 the bonus 3
    logits = one_hot_logits([11, 0, 14, 0, 0, 3, 0])
    assert tree.verify_tree_greedy(small_tree(), logits) == TreeVerdict([0, 2, 5], 3)
    logits = one_hot_logits([10, 13, 0, 0, 0, 0, 0])  # node 1, then node 4, a leaf: bonus from node 4's row
    assert tree.verify_tree_greedy(small_tree(), logits) == TreeVerdict([0, 1, 4], 0)
    assert tree.verify_tree_greedy(small_tree(), one_hot_logits([5] * 7)) == TreeVerdict([0], 5)


def test_greedy_tree_verification_breaks_an_argmax_tie_to_the_lowest_id():
    logits = torch.zeros(7, 16)
    logits[0, [11, 10]] = 1.0  # 10 and 11 tie at the root: 10 (node 1) is the argmax
    assert tree.verify_tree_greedy(small_tree(), logits).path[:2] == [0, 1]


def chain_of(tokens: list[int], root: int = 0) -> Tree:
    return Tree(list(range(-1, len(tokens))), [root] + tokens)


@pytest.mark.parametrize("seed", range(20))
def test_a_chain_tree_verifies_as_the_chain_rules_do(seed):
    g = torch.Generator().manual_seed(seed)
    k, vocab = 4, 6
    logits = torch.randn(k + 1, vocab, generator=g) * 2
    p, q = torch.softmax(logits, -1), torch.softmax(torch.randn(k, vocab, generator=g) * 2, -1)
    drafts = [sample(q[i], float(torch.rand((), generator=g))) for i in range(k)]
    drafts[:2] = logits[:2].argmax(-1).tolist()  # so some greedy steps accept
    chain = chain_of(drafts)
    greedy = verify_greedy(T(drafts), logits)
    assert tree.verify_tree_greedy(chain, logits) == TreeVerdict(list(range(greedy.accepted + 1)), greedy.next_token)
    u = torch.rand(k + 1, generator=g, dtype=torch.float64)
    chain.q = torch.cat([q, torch.zeros(1, vocab)])  # row u: the distribution of u's child
    sampled = verify_sampling(T(drafts), q, p, u[:k], float(u[k]))
    got = tree.verify_tree_sampling(chain, p, u[:k], float(u[k]))
    assert Verdict(got.accepted, got.next_token) == sampled


def test_sampling_tree_verification_after_a_rejection_tests_the_next_child_against_the_residual():
    p = T([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    q = T([[0.8, 0.2, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    two = Tree([-1, 0, 0], [2, 0, 1], q)  # children token 0 (drawn first), then token 1
    # reject token 0 (0.9 * 0.8 >= 0.5); residual [0, 0.3, 0] -> [0, 1, 0]; q without token 0 -> [0, 1, 0]
    # token 1: 0.99 * 1 < 1 accepts node 2; node 2 is a leaf: its bonus from p[2] is token 1
    assert tree.verify_tree_sampling(two, p, T([0.9, 0.99], dtype=torch.float64), 0.5) == TreeVerdict([0, 2], 1)


# Central theorem: whatever q, the first committed token of a tree step follows p (spec/trees.md#TRE-8).
CHI2_CRITICAL_DF4_P001 = 18.467  # chi-square critical value, 4 degrees of freedom, significance 0.001
DRAWS = 3_000  # a correct rule gives chi-square near 4; the wrong one near 100 here (near 280 at 8,000)
P_ROOT = T([0.10, 0.15, 0.30, 0.20, 0.25])
Q_ROOT = T([0.55, 0.25, 0.10, 0.05, 0.05])
P_CHILD = T([0.40, 0.05, 0.05, 0.20, 0.30])
Q_CHILD = T([0.05, 0.05, 0.30, 0.30, 0.30])


def wrong_keeps_q(tree_: Tree, p, uniforms, final_uniform) -> TreeVerdict:
    """A plausible bug: children drawn without replacement, but verified as if drawn with replacement (the
    rejected token's mass stays in q)."""
    path = [0]
    while True:
        target, drafted = p[path[-1]].double(), tree_.q[path[-1]].double()
        residual = target
        for c in tree_.children(path[-1]):
            if float(uniforms[c - 1]) * float(drafted[tree_.tokens[c]]) < float(target[tree_.tokens[c]]):
                path.append(c)
                break
            residual = torch.clamp(target - drafted, min=0)
            target = residual / residual.sum()
        else:
            return TreeVerdict(path, sample(residual, final_uniform))


def tree_step_counts(verify, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Over DRAWS steps of a two-level tree (3 children of the root, 2 under the first), drawn from Q_ROOT and
    Q_CHILD without replacement: the counts of the first committed token, and of the second one when the first
    is the first child's token."""
    g = torch.Generator().manual_seed(seed)
    pick = Picker(temperature=1.0, generator=g)
    first, second = torch.zeros(5), torch.zeros(5)
    for _ in range(DRAWS):
        roots, _, q0 = tree.draw(Q_ROOT.log(), 3, pick)
        below, _, q1 = tree.draw(Q_CHILD.log(), 2, pick)
        t = Tree([-1, 0, 0, 0, 1, 1], [0] + roots + below, torch.stack([q0, q1, *[torch.zeros(5)] * 4]))
        p = torch.stack([P_ROOT, P_CHILD, P_CHILD, P_CHILD, P_CHILD, P_CHILD])
        u = torch.rand(6, generator=g, dtype=torch.float64)
        verdict = verify(t, p, u[:5], float(u[5]))
        committed = [t.tokens[c] for c in verdict.path[1:]] + [verdict.next_token]
        first[committed[0]] += 1
        if verdict.path[1:2] == [1]:
            second[committed[1]] += 1
    return first, second


def chi2(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.fixture(scope="module")
def right_counts():
    return tree_step_counts(tree.verify_tree_sampling, seed=3)


def test_tree_sampling_verification_reproduces_p_at_the_root_and_below_an_accepted_child(right_counts):
    first, second = right_counts
    assert chi2(first, P_ROOT) < CHI2_CRITICAL_DF4_P001
    assert second.sum() > 1000 and chi2(second, P_CHILD) < CHI2_CRITICAL_DF4_P001


def test_the_same_chi_square_test_rejects_verification_that_keeps_a_rejected_token_in_q():
    first, _ = tree_step_counts(wrong_keeps_q, seed=3)
    assert chi2(first, P_ROOT) > CHI2_CRITICAL_DF4_P001


def test_greedy_draws_are_the_highest_logits_with_ties_to_the_lower_id():
    ids, log_q, q = tree.draw(T([1.0, 3.0, 2.0, 3.0, 2.0]), 4, Picker())
    assert ids == [1, 3, 2, 4] and q is None
    assert log_q[0] == log_q[1] > log_q[2] == log_q[3]


@pytest.mark.parametrize("m", [1, 3, 8, 40])
def test_greedy_draws_over_a_bfloat16_vocabulary_full_of_ties_are_the_first_m_of_a_stable_descending_sort(m):
    logits = torch.randint(0, 6, (32,), generator=torch.Generator().manual_seed(m)).to(torch.bfloat16)
    ids, _, _ = tree.draw(logits, m, Picker())
    assert ids == torch.sort(logits, descending=True, stable=True).indices[:m].tolist()


def test_sampled_draws_never_repeat_a_token_and_stop_when_q_is_used_up():
    pick = Picker(temperature=1.0, top_k=2, generator=torch.Generator().manual_seed(0))
    ids, _, q = tree.draw(T([1.0, 3.0, 2.0, 0.0]), 4, pick)
    assert sorted(ids) == [1, 2] and q[[0, 3]].sum() == 0


def test_dynamic_selection_breaks_equal_scores_to_the_lower_token_id_then_the_earlier_node():
    c = tree.Candidates(parents=[-1, 0, 0, 0, 1, 2], draft_ids=[-1, 7, 3, 3, 5, 5],
                        tokens=[-1, 7, 3, 3, 5, 5], scores=[0.0, -1.0, -1.0, -1.0, -2.0, -2.0],
                        paths=[(), (0,), (1,), (2,), (0, 0), (1, 0)])
    assert tree.ranked(c, range(1, 6)) == [2, 3, 1, 4, 5]


def test_dynamic_selection_keeps_a_node_only_with_its_parent_and_its_earlier_siblings():
    parents = [-1, 0, 0, 1, 2]  # nodes 1, 2 under the root; 3 under 1; 4 under 2
    assert tree.keep_best(parents, [4, 2, 3, 1], 2) == [1, 2]  # 4 needs 2; 2 needs 1 (its earlier sibling)
    assert tree.keep_best(parents, [3, 1, 4, 2], 3) == [1, 2, 3]
    assert tree.keep_best(parents, [3, 1, 4, 2], 9) == [1, 2, 3, 4]


def test_a_dynamic_tree_with_every_score_tied_keeps_lower_draft_ids_first_then_earlier_nodes():
    uniform = lambda c, nodes: torch.zeros(len(nodes), 4)  # noqa: E731  every draw has log q = log 1/4
    c = tree.expand(uniform, DynamicTree(4, 2, 2), Picker(), None)
    # level 1: draws 0, 1 of the root (nodes 1, 2); level 2: draws 0, 1 of node 1 (3, 4) and of node 2 (5, 6)
    assert c.parents == [-1, 0, 0, 1, 1, 2, 2] and c.draft_ids[1:] == [0, 1, 0, 1, 0, 1]
    kept = tree.select(c, DynamicTree(4, 2, 2), 4, None)  # at depth 2, id 0 of node 2 before id 1 of node 1
    assert kept.parents == [-1, 0, 0, 1, 2] and kept.tokens[1:] == [0, 1, 0, 0]
    assert tree.select(c, DynamicTree(3, 2, 2), 4, None).parents == [-1, 0, 0, 1]


def test_a_dynamic_tree_of_one_draw_per_node_is_the_chain():
    c = tree.expand(lambda c, nodes: torch.eye(6)[[len(c.paths[u]) for u in nodes]] * 3, DynamicTree(3, 1, 3),
                    Picker(), None)
    chain = tree.select(c, DynamicTree(3, 1, 3), 6, None)
    assert chain.parents == [-1, 0, 1, 2] and chain.tokens[1:] == [0, 1, 2]


def test_a_static_tree_draws_rank_r_as_the_r_th_highest_draft_token():
    logits = T([[0.0, 5.0, 4.0, 3.0], [9.0, 0.0, 1.0, 2.0]])
    shape = StaticTree(((0,), (1,), (2,), (0, 0), (0, 1), (2, 0)))
    c = tree.expand(lambda c, nodes: logits[[len(c.paths[u]) for u in nodes]], shape, Picker(), None)
    t = tree.select(c, shape, 4, None)
    assert t.parents == [-1, 0, 0, 0, 1, 1, 3]
    assert t.tokens[1:] == [1, 2, 3, 0, 3, 0]


def test_keeping_the_accepted_path_moves_its_rows_behind_the_context_in_path_order():
    cache = KVCache()
    with torch.inference_mode():
        rows = torch.arange(9.0).view(1, 9, 1)  # [n_kv, positions, d]: position i holds i
        cache.append(rows, rows + 100)
        tree_step.keep_path([cache], n=2, path=[0, 2, 5])
    assert len(cache) == 5
    assert cache.k[..., :5, :].flatten().tolist() == [0, 1, 2, 4, 7]
    assert cache.v[..., :5, :].flatten().tolist() == [100, 101, 102, 104, 107]
