"""NVIL, MuProp and double control variates: the oracle against brute force over n-tuples,
the special cases, an independent transcription of the public double-CV code, option errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import verify
from reference import get_estimator, random_table
from reference.contract import Queries, evaluate
from reference.distributions import Distribution, sigmoid
from reference.estimators.control_variates import NVILState, nvil_update
from verify import strategies as vst
from verify.moments.control_variates import double_cv_moments, muprop_moments, nvil_moments

NVIL, MUPROP, DCV = (get_estimator(n) for n in ("nvil", "muprop", "double_cv"))
LOO, REINFORCE = get_estimator("reinforce_loo"), get_estimator("reinforce")


def brute_force(problem, n, estimate_tuple):
    """Mean and covariance by enumerating all n-tuples of configurations (tiny cases only).
    ``estimate_tuple(Z (n, K)) -> g (P,)``."""
    Z = Distribution.enumerate_configs(problem.K, problem.C)
    q = verify.config_probabilities(problem).ravel()
    P = problem.params.size
    mean, second = np.zeros(P), np.zeros((P, P))
    for tup in itertools.product(range(len(Z)), repeat=n):
        idx = np.array(tup)
        g = estimate_tuple(Z[idx]).ravel()
        w = np.prod(q[idx])
        mean += w * g
        second += w * np.outer(g, g)
    return mean, second - np.outer(mean, mean)


def via_reference(est, problem, **opts):
    """``Z (n, K) -> g``: the NumPy reference's combine phase on the given samples."""
    def fn(Z):
        z = Z[None, None]  # (1, R=1, n, K)
        y = None
        if est is MUPROP:
            mu = problem.dist.probs(problem.params)
            y = np.broadcast_to(mu, (1, 1, 1) + mu.shape).copy()
        elif est is DCV:
            y = Z[None, None].astype(np.float64)
        queries = Queries(z, {}, y)
        answers = evaluate(problem.objective, queries)
        return est.combine(problem.dist, problem.params[None], queries, answers, **opts)[0, 0]
    return fn


def _close(a, b, scale):
    return np.abs(np.asarray(a) - np.asarray(b)).max() <= 1e-12 * max(1.0, scale)


@pytest.mark.parametrize("dist,n,opts", [
    ("bernoulli", 2, {"baseline": 0.4, "c": -0.1, "v": 3.0}),
    ("categorical", 2, {"baseline": -0.3, "c": 0.2, "v": 0.5}),
])
def test_nvil_moments_match_brute_force(dist, n, opts):
    params = np.array([0.3, -1.2]) if dist == "bernoulli" else np.array([[0.3, -1.0, 0.5],
                                                                          [1.0, 0.0, -0.4]])
    f = random_table(2, 2 if dist == "bernoulli" else 3, seed=11)
    pr = verify.make_problem(dist, params, f)
    m = nvil_moments(dist, params, f, n=n, **opts)
    mean, cov = brute_force(pr, n, via_reference(NVIL, pr, n=n, **opts))
    assert _close(m.mean.ravel(), mean, 1.0) and _close(m.cov, cov, 1.0)
    grad = verify.exact_gradient(pr)
    assert np.allclose(m.mean, grad / max(1.0, math.sqrt(opts["v"])), rtol=0, atol=1e-14)


@pytest.mark.parametrize("dist,n", [("bernoulli", 1), ("bernoulli", 3), ("categorical", 2)])
def test_muprop_moments_match_brute_force(dist, n):
    params = np.array([0.3, -1.2]) if dist == "bernoulli" else np.array([[0.3, -1.0, 0.5],
                                                                          [1.0, 0.0, -0.4]])
    f = random_table(2, 2 if dist == "bernoulli" else 3, seed=12)
    pr = verify.make_problem(dist, params, f)
    m = muprop_moments(dist, params, f, n=n)
    mean, cov = brute_force(pr, n, via_reference(MUPROP, pr, n=n))
    assert _close(m.mean.ravel(), mean, 1.0) and _close(m.cov, cov, 1.0)


@pytest.mark.parametrize("n,alpha_cv", [(2, 1.0), (3, -0.7), (4, 0.5)])
def test_double_cv_moments_match_brute_force(n, alpha_cv):
    params = np.array([0.8, -0.5])
    f = random_table(2, 2, seed=13)
    pr = verify.make_problem("bernoulli", params, f)
    m = double_cv_moments("bernoulli", params, f, n=n, alpha_cv=alpha_cv)
    mean, cov = brute_force(pr, n, via_reference(DCV, pr, n=n, alpha_cv=alpha_cv))
    assert _close(m.mean, mean, 1.0) and _close(m.cov, cov, 1.0)


def public_code_double_cv(theta, b, f_b, grad_b, alpha):
    """A transcription of the estimator in thjashin/double-cv ``src/networks.py`` for ``n``
    samples (the code writes it out for ``n = 4``), without the sign flip of the loss:
    ``b`` (n, K), ``f_b`` (n,), ``grad_b`` (n, K)."""
    n = len(f_b)
    g_loo = [(grad_b.sum(0) - grad_b[i]) / (n - 1) for i in range(n)]
    cv = [alpha * np.sum(g_loo[i] * (b[i] - theta)) for i in range(n)]
    out = 0.0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        diff = f_b[i] + cv[i] - sum(f_b[j] + cv[j] for j in others) / (n - 1)
        out = out + diff * (b[i] - theta)
    return out / n - alpha * grad_b.mean(0) * theta * (1 - theta)


def test_double_cv_matches_the_public_code(rng):
    K, n, R = 3, 4, 20
    phi = rng.standard_normal(K)
    f = random_table(K, 2, seed=3)
    noise = DCV.draw_noise(rng, "bernoulli", phi.shape, R, n=n)
    out = DCV.estimate("bernoulli", phi, f, noise, n=n, alpha_cv=0.7)
    theta = sigmoid(phi)
    for r in range(R):
        b = (noise["u"][r] < theta).astype(np.int64)
        _, grads = f.relaxed(b.astype(np.float64))
        ref = public_code_double_cv(theta, b, f(b), grads, 0.7)
        assert np.allclose(out[r], ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_double_cv_with_zero_coefficient_is_loo(rng, backend):
    phi = rng.standard_normal(4)
    f = random_table(4, 2, seed=4)
    noise = DCV.draw_noise(rng, "bernoulli", phi.shape, 50, n=3)
    a = DCV.estimate("bernoulli", phi, f, noise, backend=backend, n=3, alpha_cv=0.0)
    b = LOO.estimate("bernoulli", phi, f, noise, backend=backend, n=3)
    assert np.allclose(a, b, rtol=0, atol=1e-14)
    ma = double_cv_moments("bernoulli", phi, f, n=3, alpha_cv=0.0)
    mb = LOO.exact_moments("bernoulli", phi, f, n=3)
    assert np.allclose(ma.cov, mb.cov, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dist", ["bernoulli", "categorical"])
def test_nvil_is_scaled_reinforce_on_the_same_noise(rng, dist):
    params = rng.standard_normal((3,) if dist == "bernoulli" else (3, 4))
    f = random_table(3, 2 if dist == "bernoulli" else 4, seed=5)
    noise = NVIL.draw_noise(rng, dist, params.shape, 40, n=2)
    a = NVIL.estimate(dist, params, f, noise, n=2, baseline=0.3, c=0.2, v=9.0)
    b = REINFORCE.estimate(dist, params, f, noise, n=2, baseline=0.5)
    assert np.allclose(a, b / 3.0, rtol=0, atol=1e-14)


def test_nvil_update_follows_algorithm_1():
    s = nvil_update(NVILState(c=1.0, v=2.0), np.array([0.0, 2.0, 4.0]), decay=0.8)
    assert s.c == pytest.approx(0.8 * 1.0 + 0.2 * 2.0)
    assert s.v == pytest.approx(0.8 * 2.0 + 0.2 * 8.0 / 3.0)
    with pytest.raises(ValueError, match="decay"):
        nvil_update(NVILState(), [1.0], decay=1.5)
    with pytest.raises(ValueError, match="empty"):
        nvil_update(NVILState(), [])


def test_muprop_is_exact_for_an_objective_linear_in_y():
    # one variable: the multilinear extension is linear, so the Taylor control variate is f
    alpha = np.array([[0.2, -0.4, 1.0, 0.0]])
    f = random_table(1, 4, seed=6)
    m = MUPROP.exact_moments("categorical", alpha, f, n=1)
    assert np.abs(m.cov).max() == 0.0
    assert np.allclose(m.mean, verify.exact_gradient("categorical", alpha, f), atol=1e-15)


@settings(max_examples=30)
@given(vst.problems(K=st.integers(1, 3), C=st.integers(2, 3), max_abs=30.0),
       st.integers(1, 4), st.floats(-3, 3), st.floats(-3, 3), st.floats(0, 10))
def test_means_are_the_exact_gradient(problem, n, baseline, c, v):
    grad = verify.exact_gradient(problem)
    tol = 1e-11 * max(1.0, np.abs(problem.f_table()).max())
    d, p, f = problem.dist.name, problem.params, problem.objective
    m = MUPROP.exact_moments(d, p, f, n=n)
    assert np.abs(m.mean - grad).max() <= tol
    m = NVIL.exact_moments(d, p, f, n=n, baseline=baseline, c=c, v=v)
    assert np.abs(m.mean - grad / max(1.0, math.sqrt(v))).max() <= tol
    if d == "bernoulli":
        m = DCV.exact_moments(d, p, f, n=n + 1, alpha_cv=baseline)
        assert np.abs(m.mean - grad).max() <= tol


@pytest.mark.parametrize("est,opts,match", [
    (DCV, {"n": 1}, "n >= 2"),
    (DCV, {"alpha_cv": float("nan")}, "alpha_cv"),
    (NVIL, {"v": -1.0}, "v"),
    (NVIL, {"baseline": float("nan")}, "baseline"),
    (NVIL, {"c": float("inf")}, "c"),
    (MUPROP, {"n": 0}, "n"),
])
def test_bad_options_raise(est, opts, match):
    with pytest.raises(ValueError, match=match):
        est.options(**opts)


def test_double_cv_is_bernoulli_only():
    with pytest.raises(ValueError, match="bernoulli"):
        DCV.exact_moments("categorical", np.zeros((2, 3)), random_table(2, 3), n=2)


@pytest.mark.parametrize("name,option", [("nvil", "baseline"), ("nvil", "c"), ("nvil", "v"),
                                         ("double_cv", "alpha_cv")])
def test_scalar_options_refuse_arrays_naming_the_option(name, option):
    with pytest.raises(TypeError, match=f"^{option} must be a single number"):
        get_estimator(name).options(**{option: np.array([1.0, 2.0])})
