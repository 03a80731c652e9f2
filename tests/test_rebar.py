"""REBAR and RELAX: the special cases on shared noise (eta = 0 is REINFORCE, RELAX with the
default surrogate is REBAR), the conditional relaxation, the oracle's independent integrand,
unbiasedness for every eta, temperature and surrogate Hypothesis draws, option errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import verify
from reference import binary_quadratic, get_estimator, random_table
from reference.distributions import sigmoid
from reference.estimators.rebar import QuadraticSurrogate
from reference.estimators.rebar.numpy_reference import rebar_points
from verify import strategies as vst
from verify.moments.rebar import rebar_values

REBAR, RELAX, REINFORCE = (get_estimator(n) for n in ("rebar", "relax", "reinforce"))


def _setup(rng, K=4, R=30, n=2):
    phi = 2.0 * rng.standard_normal(K)
    phi[0] = 30.0  # an extreme logit
    f = random_table(K, 2, seed=8)
    noise = REBAR.draw_noise(rng, "bernoulli", phi.shape, R, n=n)
    return phi, f, noise


@pytest.mark.parametrize("backend", ["numpy", "cpu", "cuda"])
def test_rebar_with_eta_zero_is_reinforce_on_the_same_noise(rng, backend, small_cuda_grid):
    phi, f, noise = _setup(rng)
    a = REBAR.estimate("bernoulli", phi, f, noise, backend=backend, n=2, eta=0.0, tau=0.3)
    b = REINFORCE.estimate("bernoulli", phi, f, {"u": noise["u"]}, n=2, baseline=0.0)
    assert np.allclose(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "cpu", "cuda"])
@pytest.mark.parametrize("eta,tau", [(1.0, 0.5), (-0.7, 3.0), (2.0, 0.05)])
def test_relax_with_the_default_surrogate_is_rebar(rng, backend, eta, tau, small_cuda_grid):
    phi, f, noise = _setup(rng)
    a = RELAX.estimate("bernoulli", phi, f, noise, backend=backend, n=2, eta=eta, tau=tau)
    b = REBAR.estimate("bernoulli", phi, f, noise, backend=backend, n=2, eta=eta, tau=tau)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_relax_with_the_objective_as_surrogate_is_rebar(rng, backend):
    # the surrogate path (evaluated in the combine phase) against the objective's answers
    phi, _, noise = _setup(rng)
    f = binary_quadratic(4, 0.3)
    a = RELAX.estimate("bernoulli", phi, f, noise, backend=backend, n=2, eta=0.6, tau=0.7,
                       surrogate=f)
    b = REBAR.estimate("bernoulli", phi, f, noise, backend=backend, n=2, eta=0.6, tau=0.7)
    assert np.allclose(a, b, rtol=0, atol=1e-13)
    q = RELAX.queries("bernoulli", phi, noise, n=2, surrogate=f)
    assert q.y is None and q.aux["points"].shape == (30, 4, 4)
    assert RELAX.cost(4, 2, n=2, surrogate=f).grad_evals == 0
    assert REBAR.cost(4, 2, n=2).evals == 6 and REBAR.cost(4, 2, n=2).grad_evals == 4


def test_conditional_relaxation_has_the_conditional_law():
    # z~ = phi + log(1 - u~) - log(u~), so u~ = sigmoid(phi - z~): v theta given b = 1,
    # theta + v (1 - theta) given b = 0
    phi = np.array([-3.0, -0.5, 0.0, 1.2, 4.0])
    v = np.linspace(0.01, 0.99, 23)[:, None] * np.ones(5)
    theta = sigmoid(phi)
    for u in (np.zeros_like(v) + 1e-9, np.zeros_like(v) + 1 - 1e-9):  # b = 1, then b = 0
        b, _, yt, dzt = rebar_points(phi, u, v, 1.0)
        zt = np.log(yt) - np.log1p(-yt)  # tau = 1
        ut = sigmoid(phi - zt)
        want = np.where(b == 1, v * theta, theta + v * (1 - theta))
        assert np.allclose(ut, want, rtol=1e-9, atol=1e-12)
        # dz~/dphi by central differences with b held fixed
        h = 1e-6
        hi = rebar_points(phi + h, np.where(b == 1, 0.0, 1 - 1e-12), v, 1.0)[2]
        lo = rebar_points(phi - h, np.where(b == 1, 0.0, 1 - 1e-12), v, 1.0)[2]
        fd = ((np.log(hi) - np.log1p(-hi)) - (np.log(lo) - np.log1p(-lo))) / (2 * h)
        assert np.allclose(dzt, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("surrogate", [None, QuadraticSurrogate(1.5, 0.2)])
def test_oracle_integrand_matches_the_estimator_sample_by_sample(rng, surrogate):
    phi, f, _ = _setup(rng, K=3)
    U = rng.random((200, 6))
    noise = {"u": U[:, None, :3], "v": U[:, None, 3:]}
    opts = {"eta": 0.8, "tau": 0.4, "surrogate": surrogate}
    est = RELAX.estimate("bernoulli", phi, f, noise, n=1, **opts)
    ref = rebar_values(phi, f, U, 0.8, 0.4, surrogate)
    assert np.allclose(est, ref, rtol=1e-9, atol=1e-10)


def test_float32_on_the_cpu(rng):
    phi, f, noise = _setup(rng, R=8)
    ref = REBAR.estimate("bernoulli", phi, f, noise, n=2)
    out = REBAR.estimate("bernoulli", phi.astype(np.float32), f, noise, backend="cpu", n=2)
    assert out.dtype == np.float32
    # float32 logits move CDF boundaries and relaxed points by float32 rounding
    assert np.allclose(out, ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max()))


@settings(max_examples=20)
@given(vst.problems(dist="bernoulli", K=st.integers(1, 3), max_abs=20.0),
       st.floats(-2.0, 2.0), st.floats(0.05, 5.0),
       st.one_of(st.none(), st.builds(QuadraticSurrogate, st.floats(-2, 2), st.floats(0, 1))))
def test_mean_is_the_exact_gradient(problem, eta, tau, surrogate):
    grad = verify.exact_gradient(problem)
    m = RELAX.exact_moments("bernoulli", problem.params, problem.objective, eta=eta, tau=tau,
                            surrogate=surrogate)
    assert m.method.startswith("certified")
    assert np.abs(m.mean - grad).max() <= m.error_bound + 1e-12
    if surrogate is None:
        r = REBAR.exact_moments("bernoulli", problem.params, problem.objective, eta=eta, tau=tau)
        assert np.abs(r.mean - grad).max() <= r.error_bound + 1e-12


@pytest.mark.parametrize("est,opts,err,match", [
    (REBAR, {"tau": 0.0}, ValueError, "tau"),
    (REBAR, {"tau": -1.0}, ValueError, "tau"),
    (REBAR, {"tau": float("nan")}, ValueError, "tau"),
    (REBAR, {"eta": float("nan")}, ValueError, "eta"),
    (REBAR, {"n": 0}, ValueError, "n"),
    (RELAX, {"surrogate": "f"}, TypeError, "surrogate"),
    (RELAX, {"tau": float("inf")}, ValueError, "tau"),
])
def test_bad_options_raise(est, opts, err, match):
    with pytest.raises(err, match=match):
        est.options(**opts)


def test_rebar_is_bernoulli_only():
    with pytest.raises(ValueError, match="bernoulli"):
        REBAR.exact_moments("categorical", np.zeros((2, 3)), random_table(2, 3), eta=1.0)
