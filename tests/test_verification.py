"""Verification rules: exact decisions with explicit uniforms, the top-k rule by hand, and the central
theorem by statistics: rejection sampling reproduces p for arbitrary q."""

import pytest
import torch

from specfmt.verification import Verdict, process_logits, sample, verify_greedy, verify_sampling, verify_top_k

T = torch.tensor


def test_sample_returns_the_first_index_whose_cdf_passes_u():
    probs = T([0.2, 0.0, 0.5, 0.3])
    assert [sample(probs, u) for u in (0.0, 0.19, 0.2, 0.69, 0.7, 0.999)] == [0, 0, 2, 2, 3, 3]


def test_sample_never_returns_a_zero_probability_index():
    probs = T([0.0, 1.0, 0.0])
    assert {sample(probs, u / 100) for u in range(100)} == {1}


def test_greedy_accepts_the_prefix_until_the_first_mismatch():
    logits = T([[0.0, 5, 1], [9, 0, 0], [0, 0, 3], [1, 2, 0]])  # argmax 1, 0, 2, 1
    assert verify_greedy(T([1, 0, 1]), logits) == Verdict(2, 2)
    assert verify_greedy(T([2, 0, 2]), logits) == Verdict(0, 1)


def test_greedy_takes_the_bonus_token_when_every_draft_matches():
    logits = T([[0.0, 5, 1], [9, 0, 0], [0, 0, 3], [1, 2, 0]])
    assert verify_greedy(T([1, 0, 2]), logits) == Verdict(3, 1)


def test_greedy_breaks_ties_to_the_lowest_id():
    assert verify_greedy(T([1]), T([[2.0, 2.0, 0], [0, 0, 0]])) == Verdict(0, 0)


def test_top_k_accepts_a_second_choice_within_tolerance():
    logits = torch.log(T([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    # x=1 is second (rank 1 < k=2); gap log(0.5/0.3) = 0.51 <= 0.6
    assert verify_top_k(T([1]), logits, accept_k=2, tolerance=0.6) == Verdict(1, 2)


def test_top_k_rejects_a_second_choice_beyond_tolerance():
    logits = torch.log(T([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    assert verify_top_k(T([1]), logits, accept_k=2, tolerance=0.5) == Verdict(0, 0)


def test_top_k_rejects_a_token_outside_the_top_k_whatever_the_tolerance():
    logits = torch.log(T([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    assert verify_top_k(T([2]), logits, accept_k=2, tolerance=10.0) == Verdict(0, 0)


def test_top_k_counts_ties_with_the_kth_token_as_inside():
    logits = torch.log(T([[0.4, 0.3, 0.3], [1.0, 0.0, 0.0]]))
    assert verify_top_k(T([2]), logits, accept_k=2, tolerance=1.0) == Verdict(1, 0)


def test_top_k_with_k_1_is_greedy_whatever_the_tolerance():
    logits = torch.log(T([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    assert verify_top_k(T([1]), logits, accept_k=1, tolerance=100.0) == verify_greedy(T([1]), logits)


P = T([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]])
Q = T([[0.5, 0.25, 0.25]])


def test_sampling_accepts_when_u_is_below_p_over_q():
    # x = 1: p/q = 0.6/0.25 >= 1: always accepted; bonus from p[1] with u_final 0.6 -> index 1
    assert verify_sampling(T([1]), Q, P, T([0.99]), 0.6) == Verdict(1, 1)
    # x = 0: p/q = 0.2; u = 0.19 accepts, u = 0.2 rejects (a tie rejects)
    assert verify_sampling(T([0]), Q, P, T([0.19]), 0.0).accepted == 1
    assert verify_sampling(T([0]), Q, P, T([0.2]), 0.0).accepted == 0


def test_sampling_draws_the_correction_from_the_normalized_residual():
    # residual max(p - q, 0) = [0, 0.35, 0.05] -> normalized [0, 0.875, 0.125]
    assert verify_sampling(T([0]), Q, P, T([0.5]), 0.87) == Verdict(0, 1)
    assert verify_sampling(T([0]), Q, P, T([0.5]), 0.88) == Verdict(0, 2)


def test_sampling_with_q_zero_accepts_when_p_is_positive():
    q = T([[0.0, 1.0, 0.0]])
    assert verify_sampling(T([2]), q, P, T([0.999]), 0.0).accepted == 1


def test_sampling_falls_back_to_p_when_the_residual_is_empty():
    p = T([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    q = T([[0.0, 1.0, 0.0]])
    # x = 0 has p = 0 and q = 0: rejected; residual is all zero, so next is drawn from p: token 1
    assert verify_sampling(T([0]), q, p, T([0.0]), 0.3) == Verdict(0, 1)


def test_process_logits_applies_temperature_top_k_and_top_p():
    logits = T([2.0, 1.0, 0.0, -1.0])
    assert torch.allclose(process_logits(logits, 1.0), torch.softmax(logits, -1))
    assert process_logits(logits, 1.0, top_k=2)[2:].sum() == 0
    probs = process_logits(logits, 1.0, top_p=0.7)  # softmax ~ [0.64, 0.24, 0.09, 0.03]
    assert (probs > 0).tolist() == [True, True, False, False]


CHI2_CRITICAL_DF5_P001 = 20.515  # chi-square critical value, 5 degrees of freedom, significance 0.001
DRAWS = 100_000


def first_token_counts(p: torch.Tensor, q: torch.Tensor, verify, seed: int) -> torch.Tensor:
    """Empirical distribution of the first committed token of one step with K = 1."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(DRAWS, 3, generator=g, dtype=torch.float64)
    counts = torch.zeros(p.shape[-1])
    for draw in range(DRAWS):
        x = sample(q[0], float(u[draw, 0]))
        verdict = verify(T([x]), q, p, u[draw, 1:2], float(u[draw, 2]))
        counts[x if verdict.accepted else verdict.next_token] += 1
    return counts


def chi2(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def wrong_sampler(draft_tokens, q, p, uniforms, final_uniform):
    """A plausible bug: on rejection, resample from p instead of the residual."""
    verdict = verify_sampling(draft_tokens, q, p, uniforms, final_uniform)
    return verdict if verdict.accepted else Verdict(0, sample(p[0], final_uniform))


@pytest.fixture(scope="module")
def distributions():
    g = torch.Generator().manual_seed(7)
    p = torch.softmax(torch.randn(2, 6, generator=g) * 1.5, -1)
    q = torch.softmax(torch.randn(1, 6, generator=g) * 1.5, -1)
    return p, q


def test_rejection_sampling_reproduces_p_for_an_arbitrary_q(distributions):
    p, q = distributions
    assert chi2(first_token_counts(p, q, verify_sampling, seed=1), p[0]) < CHI2_CRITICAL_DF5_P001


def test_the_same_chi_square_test_rejects_a_wrong_sampler(distributions):
    p, q = distributions
    assert chi2(first_token_counts(p, q, wrong_sampler, seed=1), p[0]) > CHI2_CRITICAL_DF5_P001
