"""The enumeration oracle: gradient against finite differences, probabilities, speed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from numba import njit

import verify
from reference import JitObjective, random_table
from verify import strategies as vst


@given(vst.problems(max_abs=10.0))
def test_gradient_matches_finite_differences(problem):
    g = verify.exact_gradient(problem)
    fd = verify.finite_difference_gradient(problem)
    scale = max(1.0, np.abs(problem.f_table()).max())
    assert np.abs(g - fd).max() <= 1e-8 * scale


@given(vst.problems(max_abs=50.0))
def test_probabilities_sum_to_one(problem):
    q = verify.config_probabilities(problem)
    assert np.all(np.isfinite(q)) and abs(q.sum() - 1) < 1e-12
    assert np.all(np.isfinite(verify.exact_gradient(problem)))


def test_gradient_matches_score_formula(rng):
    pr = verify.make_problem("categorical", rng.normal(size=(2, 3)), random_table(2, 3, 7))
    q = verify.config_probabilities(pr).ravel()
    S = verify.score_matrix(pr)
    assert np.allclose(S.T @ (q * pr.f_table().ravel()), verify.exact_gradient(pr).ravel(),
                       atol=1e-15)


@njit
def _weighted_ones(z, data):
    s = 0.0
    for k in range(z.shape[0]):
        s += data[k] * z[k] - 0.1 * data[k] * z[k] * z[(k + 1) % z.shape[0]]
    return s


def test_twenty_binary_variables(rng):
    # 2^20 states; the time from cold is measured by scripts/bench_oracle.py, not asserted here
    K = 20
    w = rng.normal(size=K)
    obj = JitObjective(_weighted_ones, w, K=K, C=2, domain="binary")
    phi = rng.normal(size=K)
    g = verify.exact_gradient("bernoulli", phi, obj)
    # independent check of one entry: the objective's dependence on z_0 is linear given the rest
    assert g.shape == (K,) and np.all(np.isfinite(g))
    p = 1 / (1 + np.exp(-phi))
    # d/dphi_0 E[f] = p0 (1 - p0) (E[f | z0 = 1] - E[f | z0 = 0])
    #               = p0 (1 - p0) w0 (1 - 0.1 p1) - 0.1 w_19 p_19 ... (pairwise terms touching z_0)
    expect = p[0] * (1 - p[0]) * (w[0] - 0.1 * w[0] * p[1] - 0.1 * w[K - 1] * p[K - 1])
    assert abs(g[0] - expect) < 1e-12


def test_problem_validation():
    with pytest.raises(ValueError, match="K=3"):
        verify.make_problem("categorical", np.zeros((2, 3)), random_table(3, 3))
    with pytest.raises(ValueError, match="binary objective"):
        verify.make_problem("bernoulli", np.zeros(2), random_table(2, 2, domain="categorical"))
    with pytest.raises(ValueError, match="one problem at a time"):
        verify.make_problem("bernoulli", np.zeros((2, 2)), random_table(2, 2))
