"""Exact moments of REINFORCE and REINFORCE-LOO against the gradient and brute-force n-tuples."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import verify
from reference import get_estimator, random_table
from reference.distributions import Distribution
from reference.estimators.score_function.numpy_reference import loo_weights, reinforce_weights
from verify import strategies as vst
from verify.moments.score_function import reinforce_loo_moments, reinforce_moments


def brute_force_moments(problem, n, weights):
    """Mean and covariance by enumerating all n-tuples of configurations (tiny cases only)."""
    Z = Distribution.enumerate_configs(problem.K, problem.C)
    q = verify.config_probabilities(problem).ravel()
    f = problem.f_table().ravel()
    S = problem.dist.score(problem.params, Z).reshape(len(Z), -1)
    mean = np.zeros(S.shape[1])
    second = np.zeros((S.shape[1],) * 2)
    for tup in itertools.product(range(len(Z)), repeat=n):
        idx = np.array(tup)
        w = weights(f[idx])
        g = w @ S[idx]
        p = np.prod(q[idx])
        mean += p * g
        second += p * np.outer(g, g)
    return mean, second - np.outer(mean, mean)


@given(vst.problems(K=st.integers(1, 4), C=st.integers(2, 4), max_abs=50.0),
       st.integers(1, 6), st.floats(-2, 2))
def test_exact_means_equal_gradient(problem, n, baseline):
    grad = verify.exact_gradient(problem)
    tol = 1e-12 * max(1.0, np.abs(grad).max())
    m = reinforce_moments(problem.dist, problem.params, problem.objective, n=n, baseline=baseline)
    assert np.abs(m.mean - grad).max() <= tol
    m = reinforce_loo_moments(problem.dist, problem.params, problem.objective, n=max(n, 2))
    assert np.abs(m.mean - grad).max() <= tol


@pytest.mark.parametrize("dist,shape,n", [("bernoulli", (2,), 2), ("bernoulli", (2,), 3),
                                          ("categorical", (1, 3), 3), ("categorical", (2, 2), 2),
                                          ("categorical", (1, 3), 4)])
@pytest.mark.parametrize("loo", [False, True])
def test_covariance_matches_brute_force(dist, shape, n, loo, rng):
    params = rng.normal(size=shape) * 2
    K, C = shape[0], 2 if dist == "bernoulli" else shape[1]
    pr = verify.make_problem(dist, params, random_table(K, C, seed=n,
                                                        domain="binary" if dist == "bernoulli"
                                                        else "categorical"))
    if loo:
        m = reinforce_loo_moments(pr.dist, pr.params, pr.objective, n=n)
        mean, cov = brute_force_moments(pr, n, loo_weights)
    else:
        m = reinforce_moments(pr.dist, pr.params, pr.objective, n=n, baseline=0.3)
        mean, cov = brute_force_moments(pr, n, lambda f: reinforce_weights(f, 0.3))
    assert np.abs(m.mean.ravel() - mean).max() < 1e-13
    assert np.abs(m.cov - cov).max() < 1e-13 * max(1.0, np.abs(cov).max())


def test_range_bound_holds_over_support(rng):
    pr = verify.make_problem("categorical", rng.normal(size=(1, 3)), random_table(1, 3, 1))
    for n, loo in [(3, True), (2, False)]:
        m = (reinforce_loo_moments(pr.dist, pr.params, pr.objective, n=n) if loo else
             reinforce_moments(pr.dist, pr.params, pr.objective, n=n))
        Z = Distribution.enumerate_configs(1, 3)
        S = pr.dist.score(pr.params, Z).reshape(3, -1)
        f = pr.f_table().ravel()
        for tup in itertools.product(range(3), repeat=n):
            idx = list(tup)
            g = (loo_weights(f[idx]) if loo else reinforce_weights(f[idx], 0.0)) @ S[idx]
            assert np.all(np.abs(g - m.mean.ravel()) <= m.range_bound.ravel() + 1e-15)


def test_loo_n46_K3_C10(rng):
    # 1000^46 tuples: finishing at all shows the closed form; scripts/bench_oracle.py times it
    alpha = rng.normal(size=(3, 10))
    obj = random_table(3, 10, seed=46)
    m = get_estimator("reinforce_loo").exact_moments("categorical", alpha, obj, n=46)
    assert np.abs(m.mean - verify.exact_gradient("categorical", alpha, obj)).max() < 1e-13
    # LOO variance falls like 1/n for large n: compare with n = 23
    m23 = get_estimator("reinforce_loo").exact_moments("categorical", alpha, obj, n=23)
    assert 1.9 < m23.variance_trace / m.variance_trace < 2.1


def test_loo_needs_two_samples():
    with pytest.raises(ValueError, match="n >= 2"):
        reinforce_loo_moments("bernoulli", np.zeros(1), random_table(1, 2), n=1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loo", [True, False])
def test_cpu_categorical_combine_is_the_device_function(loo, dtype):
    # the CPU kernel computes each weight and each exp once instead of once per use; its
    # numbers must be score_combine_categorical's (which the CUDA kernel runs) bit for bit,
    # saturated rows and ties included
    from numba import njit

    from reference.estimators.score_function import cpu

    device = cpu.score_combine_categorical

    @njit
    def one_by_one(alpha, z, f, loo, baseline, out):
        for b in range(z.shape[0]):
            for r in range(z.shape[1]):
                device(alpha[b], z[b, r], f[b, r], loo, baseline, out[b, r])

    rng = np.random.default_rng(11)
    B, R, n, K, C = 4, 3, 5, 6, 7
    alpha = rng.normal(size=(B, K, C)) * 3
    alpha[0, 0] = [50.0, 0, 0, 0, 0, 0, 0]
    alpha[1, 1] = [-50.0, 2, 2, -50, 2, 1, 2]
    alpha[2, 2] = 0.0
    z = rng.integers(0, C, (B, R, n, K))
    f = rng.normal(size=(B, R, n)) * 10
    alpha, f = alpha.astype(dtype), f.astype(dtype)
    want = np.empty((B, R, K, C), dtype)
    one_by_one(alpha, z, f, loo, 0.7, want)
    got = np.empty_like(want)
    cpu._combine_categorical(alpha, z, f, loo, 0.7, got)
    assert np.array_equal(got, want)
