"""The k-subset distribution: DP against enumeration, exact sampler, top-k, noise mappings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from scipy.special import gammaincinv

import verify
from reference import ksubset as ks
from reference.distributions import get_distribution
from reference.estimators.ksubset_perturbation.cpu import _ksubset_cov, _ksubset_sample, _ksubset_tables
from reference.objectives import SubsetQuadratic
from verify.exact import ksubset_probabilities


def _enumerated(theta: np.ndarray, k: int):
    Z = ks.enumerate_subsets(theta.size, k)
    w = Z @ theta
    logz = w.max() + math.log(np.exp(w - w.max()).sum())
    p = np.exp(w - logz)
    mu = p @ Z
    cov = (Z * p[:, None]).T @ Z - np.outer(mu, mu)
    return Z, p, logz, mu, cov


@st.composite
def theta_and_k(draw, max_n: int = 8, scale: float = 50.0):
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(1, n))
    theta = np.array(draw(st.lists(st.floats(-scale, scale), min_size=n, max_size=n)))
    return theta, k


@given(theta_and_k())
def test_dp_equals_enumeration(tk):
    theta, k = tk
    _, _, logz, mu, cov = _enumerated(theta, k)
    assert abs(ks.log_partition(theta, k) - logz) <= 1e-12 * max(1.0, abs(logz))
    assert np.abs(ks.marginals(theta, k) - mu).max() <= 1e-12
    assert np.abs(ks.covariance(theta, k) - cov).max() <= 1e-12


def test_dp_batched_and_jacobian():
    theta = np.random.default_rng(0).normal(size=(3, 7)) * 3
    lz = ks.log_partition(theta, 3)
    assert lz.shape == (3,)
    # Cov = d mu / d theta (central differences)
    t, h = theta[1], 1e-6
    jac = np.stack([(ks.marginals(t + h * e, 3) - ks.marginals(t - h * e, 3)) / (2 * h)
                    for e in np.eye(7)], axis=1)
    assert np.abs(jac - ks.covariance(t, 3)).max() < 1e-8


def test_cpu_dp_kernels_match_reference_at_extreme_scores():
    theta = np.array([[50.0, -50.0, 49.5, 0.0, -3.0, 20.0, 50.0]])
    k = 3
    L = np.empty((1, 8, k + 1))
    _ksubset_tables(theta, k, L)
    assert np.array_equal(L[0], ks.forward_table(theta[0], k))
    Lb, Bk = np.empty((1, 8, k + 1)), np.empty((1, 8, k + 1))
    mu, cond, cov = np.empty((1, 7)), np.empty((1, 7)), np.empty((1, 7, 7))
    _ksubset_cov(theta, k, Lb, Bk, mu, cond, cov)
    assert np.abs(cov[0] - ks.covariance(theta[0], k)).max() <= 1e-15
    assert np.abs(cov[0] - _enumerated(theta[0], k)[4]).max() <= 1e-12
    u = np.random.default_rng(1).random((1, 50, 7))
    z = np.empty((1, 50, 7), dtype=np.int64)
    _ksubset_sample(theta, L, k, u, z)
    assert np.array_equal(z[0], ks.sample(theta[0], u[0], k))


def _chi2_pvalue(samples: np.ndarray, Z: np.ndarray, p: np.ndarray) -> float:
    index = {tuple(r): i for i, r in enumerate(Z)}
    counts = np.bincount([index[tuple(r)] for r in samples], minlength=len(Z))
    return float(stats.chisquare(counts, p * len(samples)).pvalue)


THETA = np.array([2.0, 1.0, 0.0, 0.0, -1.0])


def test_exact_sampler_passes_chi_square():
    k = 2
    Z, p, *_ = _enumerated(THETA, k)
    u = np.random.default_rng(2).random((40000, 5))
    z = ks.sample(THETA, u, k)
    assert np.all(z.sum(axis=1) == k)
    assert _chi2_pvalue(z, Z, p) > 1e-6


def test_gumbel_top_k_samples_a_different_distribution():
    # Documented difference (DESIGN.md, SIMPLE): perturb-and-MAP with Gumbel noise draws k
    # items without replacement with probabilities softmax(theta), which is not p(z).
    k = 2
    Z, p, *_ = _enumerated(THETA, k)
    u = np.random.default_rng(3).random((40000, 5))
    z = ks.top_k(THETA + ks.gumbel(u), k)
    assert _chi2_pvalue(z, Z, p) < 1e-12
    # ... and it is the without-replacement law, exactly: P({i, j}) = q_i q_j/(1-q_i) + q_j q_i/(1-q_j)
    q = np.exp(THETA) / np.exp(THETA).sum()
    p_wor = np.array([sum(q[a] * q[b] / (1 - q[a]) for a, b in (tuple(np.flatnonzero(r)),
                                                                  tuple(np.flatnonzero(r))[::-1]))
                      for r in Z])
    assert abs(p_wor.sum() - 1) < 1e-12
    assert _chi2_pvalue(z, Z, p_wor) > 1e-6


def test_top_k_ties_and_enumeration():
    assert ks.top_k(np.array([1.0, 3.0, 3.0, 0.0]), 2).tolist() == [0, 1, 1, 0]
    assert ks.top_k(np.array([1.0, 1.0, 1.0]), 2).tolist() == [1, 1, 0]
    Z = ks.enumerate_subsets(6, 3)
    assert Z.shape == (20, 6) and len({tuple(r) for r in Z}) == 20 and np.all(Z.sum(1) == 3)


def test_distribution_kind_and_oracle_gradient():
    d = get_distribution("ksubset")
    theta = np.array([0.3, -1.0, 2.0, 0.5])
    assert d.num_variables(theta) == 4 and d.num_categories(theta) == 2
    Z = ks.enumerate_subsets(4, 2)
    assert abs(np.exp(d.log_prob(theta, Z, k=2)).sum() - 1) < 1e-12
    obj = SubsetQuadratic(np.array([1.0, 0.0, 0.0, 1.0]))
    pr = verify.make_problem("ksubset", theta, obj)
    grad = verify.exact_gradient(pr, k=2)
    # finite differences of the enumerated expectation
    h = 1e-5
    fd = np.array([(verify.exact_expectation(verify.make_problem("ksubset", theta + h * e, obj), k=2)
                    - verify.exact_expectation(verify.make_problem("ksubset", theta - h * e, obj), k=2))
                   / (2 * h) for e in np.eye(4)])
    assert np.abs(fd - grad).max() < 1e-8
    # the score z - mu has mean zero and gives the gradient
    _, p = ksubset_probabilities(pr, 2)
    s = d.score(theta, Z, k=2)
    assert np.abs(p @ s).max() < 1e-12
    assert np.abs((p * obj(Z)) @ s - grad).max() < 1e-12


def test_validation_errors():
    with pytest.raises(ValueError, match="k must be <="):
        ks.marginals(np.zeros(3), 4)
    with pytest.raises(ValueError, match="needs the option k"):
        ks.log_partition(np.zeros(3), None)
    with pytest.raises(ValueError, match="NaN"):
        ks.marginals(np.array([0.0, np.nan]), 1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ks.sample(np.zeros(3), np.ones((2, 3)), 1)
    with pytest.raises(ValueError, match="shape"):
        ks.sample(np.zeros(3), np.zeros((2, 4)), 1)


def test_noise_mappings():
    assert np.isfinite(ks.gumbel(np.array([0.0, 1 - 2**-53]))).all()
    u = np.random.default_rng(4).random((3, 4, 5))
    k, tau = 3, 0.7
    eps = ks.sum_of_gamma_noise(u, k, tau)
    i = np.arange(1, 5)[:, None]
    manual = (tau / k) * ((stats.gamma.ppf(u, 1 / k, scale=k / i)).sum(axis=-2) - math.log(4))
    assert np.allclose(eps, manual, rtol=1e-10, atol=1e-12)
    assert np.allclose(gammaincinv(1.0, u), -np.log1p(-u))  # shape 1: exponential
