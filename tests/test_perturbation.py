"""Relaxation and perturbation estimators: identities, limits, exact laws, certified moments.

The registry-wide tests (tests/test_registry.py) already run every record's three backends on
the built-in problems; here are the family's own properties.
"""

from __future__ import annotations

import numpy as np
import pytest

import verify
from reference import get_estimator
from reference.contract import evaluate
from reference.distributions import softmax
from reference.estimators.ksubset_perturbation.numpy_reference import aimle_nonzeros
from reference.estimators.relaxation.numpy_reference import AIMLEState, aimle_update
from reference.ksubset import gumbel
from reference.objectives import SubsetQuadratic, TableObjective, random_table
from verify.exact import ksubset_gradient
from verify.moments.ksubset_perturbation import simple_moments
from verify.moments.quadrature import argmax_joint_law, argmax_joint_law_quad
from verify.moments.relaxation import imle_moments, straight_through_moments


def _linear_table(w: np.ndarray, domain: str = "categorical") -> TableObjective:
    """``f(z) = sum_k w[k, z_k]`` as a table (its multilinear extension is ``sum w * y``)."""
    K, C = w.shape
    grids = np.meshgrid(*[np.arange(C)] * K, indexing="ij")
    return TableObjective(sum(w[k][grids[k]] for k in range(K)), domain)


ALPHA = np.array([[0.5, -1.0, 0.2], [1.5, 0.0, -0.5]])
W = np.array([[1.0, -2.0, 0.5], [0.3, 0.8, -1.2]])


# ---------------------------------------------------------- sample-level identities
@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_one_sided_aimle_with_fixed_lambda_is_imle(backend, rng):
    obj = random_table(2, 3, 11)
    imle, aimle = get_estimator("imle"), get_estimator("aimle")
    noise = imle.draw_noise(rng, "categorical", ALPHA.shape, 50, S=3)
    g1 = imle.estimate("categorical", ALPHA, obj, noise, backend, lambda_=0.7, S=3)
    g2 = aimle.estimate("categorical", ALPHA, obj, noise, backend, lambda_=0.7, S=3,
                        target="one_sided")
    assert np.array_equal(g1, g2)
    theta = np.array([0.3, -0.2, 1.0, 0.0, 0.5])
    obj5 = SubsetQuadratic(np.array([1.0, 0.0, 1.0, 0.0, 0.0]))
    ik, ak = get_estimator("imle_ksubset"), get_estimator("aimle_ksubset")
    noise = ik.draw_noise(rng, "ksubset", theta.shape, 30, k=2, S=2)
    g1 = ik.estimate("ksubset", theta, obj5, noise, backend, k=2, S=2, lambda_=0.4)
    g2 = ak.estimate("ksubset", theta, obj5, noise, backend, k=2, S=2, lambda_=0.4,
                     target="one_sided")
    assert np.array_equal(g1, g2)


def test_imle_without_division_is_lambda_times_imle(rng):
    imle = get_estimator("imle")
    obj = random_table(2, 3, 12)
    noise = imle.draw_noise(rng, "categorical", ALPHA.shape, 40)
    g = imle.estimate("categorical", ALPHA, obj, noise, lambda_=0.5)
    h = imle.estimate("categorical", ALPHA, obj, noise, lambda_=0.5, divide_by_lambda=False)
    assert np.allclose(0.5 * g, h, rtol=0, atol=1e-15)


def test_batched_call_equals_per_problem_calls(rng):
    est = get_estimator("aimle")
    alpha = np.stack([ALPHA, -ALPHA, 2 * ALPHA])
    obj = random_table(2, 3, 13)
    noise = est.draw_noise(rng, "categorical", alpha.shape, 7, S=2)
    g = est.estimate("categorical", alpha, obj, noise, S=2, adaptive=True, beta=0.3)
    for b in range(3):
        one = est.estimate("categorical", alpha[b], obj, {"u": noise["u"][b]}, S=2, adaptive=True,
                           beta=0.3)
        assert np.array_equal(g[b], one)


# ------------------------------------------------------------------ exact limits
def test_imle_mean_tends_to_gradient_for_linear_objective():
    pr = verify.make_problem("categorical", ALPHA, _linear_table(W))
    grad = verify.exact_gradient(pr)
    # for a linear f the I-MLE mean is (softmax(alpha) - softmax(alpha - lambda w)) / lambda
    biases = []
    for lam in (1.0, 0.1, 0.01, 0.001):
        m = imle_moments("categorical", ALPHA, pr.objective, lambda_=lam)
        closed = (softmax(ALPHA) - softmax(ALPHA - lam * W)) / lam
        assert np.abs(m.mean - closed).max() <= 1e-12 + m.error_bound
        biases.append(np.abs(m.bias(grad)).max())
    assert all(b2 < 0.2 * b1 for b1, b2 in zip(biases, biases[1:], strict=False))  # O(lambda)
    assert biases[-1] < 2e-3 * np.abs(grad).max()  # bias = O(lambda), lambda = 1e-3
    # two-sided AIMLE: central difference, O(lambda^2)
    m = imle_moments("categorical", ALPHA, pr.objective, lambda_=0.01, target="two_sided")
    assert np.abs(m.bias(grad)).max() < 1e-4 * np.abs(grad).max()


def test_straight_through_and_simple_are_exact_for_linear_objectives():
    pr = verify.make_problem("categorical", ALPHA, _linear_table(W))
    m = straight_through_moments("categorical", ALPHA, pr.objective)
    assert np.abs(m.bias(verify.exact_gradient(pr))).max() < 1e-14
    assert m.variance_trace < 1e-25  # the estimate does not depend on z
    theta = np.array([0.2, -1.0, 0.7, 1.5, 0.0])
    w = np.array([1.0, -0.5, 0.3, 2.0, 0.0])
    lin = _linear_table(np.stack([np.zeros(5), w], axis=1), "binary")  # f(z) = w . z
    pr5 = verify.make_problem("ksubset", theta, lin)
    ms = simple_moments("ksubset", theta, lin, k=2)
    assert np.abs(ms.mean - ksubset_gradient(pr5, 2)).max() < 1e-13
    assert ms.variance_trace < 1e-25


# ------------------------------------------------------------- exact argmax laws
def test_argmax_pair_law_against_quadrature_and_marginals():
    rng = np.random.default_rng(5)
    a = rng.normal(size=3) * 2
    b = a - 1.3 * rng.normal(size=3)
    P = argmax_joint_law(np.stack([a, b]))
    assert np.abs(P.sum(axis=1) - softmax(a)).max() < 1e-15
    assert np.abs(P.sum(axis=0) - softmax(b)).max() < 1e-15
    for idx in [(0, 0), (0, 1), (2, 1), (1, 0)]:
        assert abs(argmax_joint_law_quad(np.stack([a, b]), idx) - P[idx]) < 1e-10


def test_argmax_triple_law_against_monte_carlo():
    rng = np.random.default_rng(6)
    C = 4
    a = rng.normal(size=C)
    d = rng.normal(size=C)
    P = argmax_joint_law(np.stack([a, a + d, a - d]))
    for s, vec in enumerate((a, a + d, a - d)):
        assert np.abs(P.sum(axis=tuple(j for j in range(3) if j != s)) - softmax(vec)).max() < 1e-14
    G = gumbel(rng.random((400_000, C)))
    idx = [(v + G).argmax(axis=1) for v in (a, a + d, a - d)]
    H = np.zeros((C,) * 3)
    np.add.at(H, tuple(idx), 1.0)
    H /= len(G)
    # binomial standard errors; 6 sigma over 64 cells
    assert np.all(np.abs(H - P) <= 6 * np.sqrt(P * (1 - P) / len(G)) + 1e-12)


# ------------------------------------------------- certified moments against big MC
@pytest.mark.parametrize("name,dist,opts", [
    ("aimle", "categorical", {"lambda_": 0.5}),
    ("gumbel_softmax", "categorical", {"tau": 0.7}),
    ("st_gumbel_softmax", "bernoulli", {"tau": 0.5}),
    ("imle_ksubset", "ksubset", {"k": 2, "perturbation": "gumbel"}),
])
def test_certified_moments_agree_with_large_monte_carlo(name, dist, opts):
    est = get_estimator(name)
    pr = {"categorical": verify.make_problem("categorical", ALPHA, random_table(2, 3, 21)),
          "bernoulli": verify.make_problem("bernoulli", np.array([0.4, -1.0, 2.0]),
                                           random_table(3, 2, 22)),
          "ksubset": verify.make_problem("ksubset", np.array([0.5, -0.3, 1.0, 0.0]),
                                         SubsetQuadratic(np.array([1.0, 0.0, 0.3, 0.6])))}[dist]
    m = est.exact_moments(dist, pr.params, pr.objective, **opts)
    res = verify.mc_check(est, pr, R=40_000, seed=7, backend="cpu", moments=m, **opts)
    assert res.passed, res.message
    # the stated bound is small enough to mean something
    assert m.error_bound < 0.05 * max(np.abs(m.mean).max(), np.sqrt(np.diag(m.cov)).max())


# ------------------------------------------------------------------ AIMLE's state
def test_aimle_state_update_rule():
    s0 = AIMLEState(beta=1.0, nnz_ema=1.0)
    up = aimle_update(s0, np.zeros(8), target_nnz=1.0, step=0.1)  # too sparse: beta grows
    assert up.beta == pytest.approx(1.1) and up.nnz_ema == pytest.approx(0.9)
    down = aimle_update(s0, np.full(8, 4.0), target_nnz=1.0, step=0.1, momentum=0.5)
    assert down.beta == pytest.approx(0.9) and down.last_update == pytest.approx(-0.1)
    down2 = aimle_update(down, np.full(8, 4.0), target_nnz=1.0, step=0.1, momentum=0.5)
    assert down2.last_update == pytest.approx(-0.15)
    assert aimle_update(AIMLEState(beta=0.01), np.full(3, 9.0), step=1.0).beta == 0.0


def test_aimle_nonzeros_counts_per_sample(rng):
    est = get_estimator("aimle")
    obj = random_table(2, 3, 14)
    noise = est.draw_noise(rng, "categorical", ALPHA.shape, 9, S=4)
    q = est.queries("categorical", ALPHA, noise, S=4)
    a = evaluate(obj, q)
    nz = aimle_nonzeros("categorical", ALPHA, q, a, S=4)
    assert nz.shape == (9, 4) and np.all(nz % 2 == 0) and np.all(nz <= 2 * 2)
    g = est.combine("categorical", ALPHA, q, a, S=4)
    assert np.all((nz.sum(axis=1) == 0) <= (np.abs(g).sum(axis=(1, 2)) == 0))


# -------------------------------------------------------------------- validation
def test_option_and_input_validation(rng):
    theta = np.zeros(4)
    simple = get_estimator("simple")
    with pytest.raises(ValueError, match="option k"):
        simple.draw_noise(rng, "ksubset", theta.shape, 3)
    noise = simple.draw_noise(rng, "ksubset", theta.shape, 3, k=2)
    with pytest.raises(ValueError, match="k must be <="):
        simple.queries("ksubset", theta, noise, k=5)
    with pytest.raises(ValueError, match="perturbation"):
        get_estimator("imle_ksubset").options(k=2, perturbation="normal")
    with pytest.raises(ValueError, match="tau"):
        get_estimator("gumbel_softmax").options(tau=0.0)
    with pytest.raises(ValueError, match="target"):
        get_estimator("aimle").options(target="central")
    with pytest.raises(ValueError, match="NaN"):
        get_estimator("imle").queries("categorical", np.array([[0.0, np.nan]]),
                                      {"u": np.zeros((1, 1, 1, 2))})
    with pytest.raises(ValueError, match="supports"):
        get_estimator("imle").distribution("bernoulli")
