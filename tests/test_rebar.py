"""REBAR and RELAX, Bernoulli and categorical: the special cases on shared noise (eta = 0 is
REINFORCE, RELAX with the default surrogate is REBAR), the conditional relaxation (its law, by
a statistical test for the categorical one), the oracle's independent integrand, unbiasedness
for every eta, temperature and surrogate Hypothesis draws, option errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import verify
from reference import binary_quadratic, get_estimator, random_table
from reference.contract import Queries, evaluate
from reference.distributions import sigmoid
from reference.estimators.rebar import QuadraticSurrogate
from reference.estimators.rebar.numpy_reference import rebar_points, rebar_points_categorical
from verify import strategies as vst
from verify.moments.rebar import gap_near_probability, rebar_values, rebar_values_categorical

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


def test_rebar_is_bernoulli_or_categorical():
    with pytest.raises(ValueError, match="bernoulli"):
        REBAR.exact_moments("ksubset", np.zeros(4), random_table(4, 2), eta=1.0, k=2)
    with pytest.raises(ValueError, match="categorical"):
        REBAR.distribution("ksubset")


# ------------------------------------------------------------------------- categorical
def _setup_cat(rng, K=2, C=3, R=30, n=2):
    alpha = 2.0 * rng.standard_normal((K, C))
    alpha[0, 0] = 30.0  # an extreme logit
    f = random_table(K, C, seed=9)
    noise = REBAR.draw_noise(rng, "categorical", alpha.shape, R, n=n)
    return alpha, f, noise


def test_categorical_noise_shapes():
    # the noise shape depends on the distribution: (n, K) Bernoulli, (n, K, C) categorical
    assert REBAR.noise_shapes("categorical", (5, 2, 3), 7, n=2) == \
        {"u": (5, 7, 2, 2, 3), "v": (5, 7, 2, 2, 3)}
    assert REBAR.noise_shapes("bernoulli", (5, 2), 7, n=2) == {"u": (5, 7, 2, 2), "v": (5, 7, 2, 2)}
    with pytest.raises(ValueError, match="noise"):
        REBAR.queries("categorical", np.zeros((2, 3)), {"u": np.zeros((4, 1, 2)),
                                                        "v": np.zeros((4, 1, 2))})


@pytest.mark.parametrize("backend", ["numpy", "cpu", "cuda"])
def test_categorical_rebar_with_eta_zero_is_reinforce_on_the_same_samples(rng, backend,
                                                                         small_cuda_grid):
    # the categorical sample is argmax(alpha + G(u)) (not REINFORCE's inverse CDF), so the
    # comparison feeds REINFORCE's combine phase the very samples b of REBAR's queries
    alpha, f, noise = _setup_cat(rng)
    q = REBAR.queries("categorical", alpha, noise, backend=backend, n=2, eta=0.0, tau=0.3)
    a = REBAR.combine("categorical", alpha, q, evaluate(f, q), backend=backend, n=2, eta=0.0,
                      tau=0.3)
    zq = Queries(q.z)
    b = REINFORCE.combine("categorical", alpha, zq, evaluate(f, zq), n=2, baseline=0.0)
    if backend == "numpy":
        assert np.array_equal(a, b)  # bit for bit on the reference
    assert np.allclose(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "cpu", "cuda"])
@pytest.mark.parametrize("eta,tau", [(1.0, 0.5), (-0.7, 3.0), (2.0, 0.05)])
def test_categorical_relax_with_the_default_surrogate_is_rebar(rng, backend, eta, tau,
                                                              small_cuda_grid):
    alpha, f, noise = _setup_cat(rng)
    a = RELAX.estimate("categorical", alpha, f, noise, backend=backend, n=2, eta=eta, tau=tau)
    b = REBAR.estimate("categorical", alpha, f, noise, backend=backend, n=2, eta=eta, tau=tau)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
@pytest.mark.parametrize("surrogate", [None, QuadraticSurrogate(0.8, 0.4)])
def test_categorical_backends_agree_on_shared_noise(rng, backend, surrogate, small_cuda_grid):
    alpha, f, noise = _setup_cat(rng, R=6)
    opts = {"n": 2, "eta": 0.7, "tau": 0.4, "surrogate": surrogate}
    ref = RELAX.estimate("categorical", alpha, f, noise, **opts)
    out = RELAX.estimate("categorical", alpha, f, noise, backend=backend, **opts)
    assert np.allclose(out, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    qr = RELAX.queries("categorical", alpha, noise, **opts)
    qo = RELAX.queries("categorical", alpha, noise, backend=backend, **opts)
    assert np.array_equal(qr.z, qo.z)
    assert np.allclose(qr.aux["wt"], qo.aux["wt"], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_categorical_relax_with_the_objective_as_surrogate_is_rebar(rng, backend):
    alpha, f, noise = _setup_cat(rng)
    a = RELAX.estimate("categorical", alpha, f, noise, backend=backend, n=2, eta=0.6, tau=0.7,
                       surrogate=f)
    b = REBAR.estimate("categorical", alpha, f, noise, backend=backend, n=2, eta=0.6, tau=0.7)
    assert np.allclose(a, b, rtol=0, atol=1e-13)
    q = RELAX.queries("categorical", alpha, noise, n=2, surrogate=f)
    assert q.y is None and q.aux["points"].shape == (30, 4, 2, 3)
    assert q.aux["wt"].shape == (30, 2, 2, 3)


def test_categorical_conditional_relaxation_has_the_conditional_law():
    # (b, z~) with b = argmax(alpha + G(u)) and z~ from v given b must have the law of
    # (argmax z, z) for z = alpha + G: z~_c ~ Gumbel(alpha_c) independently. Tested by
    # Kolmogorov-Smirnov on each coordinate and on the differences z~_c - z~_0 (logistic of
    # location alpha_c - alpha_0, which tests the dependence), and argmax z~ = b always.
    alpha = np.array([[1.5, -0.5, 0.0, -3.0]])
    N = 40000
    rng = np.random.default_rng(5)
    u, v = rng.random((N, 1, 4)), rng.random((N, 1, 4))
    b, _, yt, wt = rebar_points_categorical(alpha, u, v, 1.0)
    # z~ up to its shift: log(y~) with tau = 1 is z~ - lse(z~); recover z~ through the max,
    # z~_b = lse(alpha) + G(v_b), which has the law of max(z) (checked below as well)
    lse = np.log(np.exp(alpha).sum())
    zb = lse - np.log(-np.log(np.take_along_axis(v, b[..., None], -1)))
    zt = zb + np.log(wt)  # wt = exp(z~ - z~_b)
    assert np.array_equal(np.argmax(zt, axis=-1), b)
    assert np.allclose(np.log(yt), zt - zb - np.log(np.exp(zt - zb).sum(-1, keepdims=True)),
                       atol=1e-9)
    pvals = [stats.kstest(zt[:, 0, c], stats.gumbel_r(loc=alpha[0, c]).cdf).pvalue
             for c in range(4)]
    pvals += [stats.kstest(zt[:, 0, c] - zt[:, 0, 0],
                           stats.logistic(loc=alpha[0, c] - alpha[0, 0]).cdf).pvalue
              for c in range(1, 4)]
    assert min(pvals) > 1e-6, pvals
    # the samples b follow softmax(alpha)
    counts = np.bincount(b.ravel(), minlength=4)
    assert stats.chisquare(counts, N * np.exp(alpha[0] - lse)).pvalue > 1e-6
    # power: the same test rejects a wrong conditional, the maximum placed at alpha_b + G(v_b)
    # instead of lse(alpha) + G(v_b) (the other coordinates truncated below it as before)
    ab = np.take_along_axis(np.broadcast_to(alpha, v.shape), b[..., None], -1)
    zb_bad = ab - np.log(-np.log(np.take_along_axis(v, b[..., None], -1)))
    bad = np.where(np.arange(4) == b[..., None], zb_bad,
                   -np.log(-np.log(v) * np.exp(-alpha) + np.exp(-zb_bad)))
    assert min(stats.kstest(bad[:, 0, c], stats.gumbel_r(loc=alpha[0, c]).cdf).pvalue
               for c in range(4)) < 1e-6


def test_categorical_gap_probability_is_the_law_of_the_gap():
    # P(z_b - z_c < x | b) of the oracle's importance-sampling switch, against sampling
    alpha = np.array([0.3, -1.0, 2.0])
    rng = np.random.default_rng(3)
    z = alpha - np.log(-np.log(rng.random((200000, 3))))
    b = np.argmax(z, axis=-1)
    p = np.exp(alpha) / np.exp(alpha).sum()
    for bb, c, x in ((2, 1, 0.7), (0, 2, 1.5), (1, 0, 0.2)):
        sel = b == bb
        hits = (z[sel, bb] - z[sel, c] < x).sum()
        want = gap_near_probability(p[c], x)
        # binomial test at level 1e-6
        assert stats.binomtest(int(hits), int(sel.sum()), want).pvalue > 1e-6


@pytest.mark.parametrize("surrogate", [None, QuadraticSurrogate(1.5, 0.2)])
def test_categorical_oracle_integrand_matches_the_estimator_sample_by_sample(rng, surrogate):
    alpha, f, _ = _setup_cat(rng)
    alpha[0, 0] = 8.0
    U = rng.random((200, 12))
    noise = {"u": U[:, None, :6].reshape(200, 1, 2, 3), "v": U[:, None, 6:].reshape(200, 1, 2, 3)}
    opts = {"eta": 0.8, "tau": 0.4, "surrogate": surrogate}
    est = RELAX.estimate("categorical", alpha, f, noise, n=1, **opts)
    ref = rebar_values_categorical(alpha, f, U, 0.8, 0.4, surrogate)
    assert np.allclose(est[:, 0] if est.ndim == 4 else est, ref, rtol=1e-9, atol=1e-10)


def test_categorical_float32_on_the_cpu(rng):
    alpha, f, noise = _setup_cat(rng, R=8)
    ref = REBAR.estimate("categorical", alpha, f, noise, n=2)
    out = REBAR.estimate("categorical", alpha.astype(np.float32), f, noise, backend="cpu", n=2)
    assert out.dtype == np.float32
    assert np.allclose(out, ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max()))


@settings(max_examples=12, deadline=None)
@given(vst.problems(dist="categorical", K=st.integers(1, 2), C=st.integers(2, 3), max_abs=20.0),
       st.floats(-2.0, 2.0), st.floats(0.05, 5.0),
       st.one_of(st.none(), st.builds(QuadraticSurrogate, st.floats(-2, 2), st.floats(0, 1))))
def test_categorical_mean_is_the_exact_gradient(problem, eta, tau, surrogate):
    grad = verify.exact_gradient(problem)
    m = RELAX.exact_moments("categorical", problem.params, problem.objective, eta=eta, tau=tau,
                            surrogate=surrogate)
    assert m.method.startswith("certified") and "gaps" in m.method
    assert np.abs(m.mean - grad).max() <= m.error_bound + 1e-12
    if surrogate is None:
        r = REBAR.exact_moments("categorical", problem.params, problem.objective, eta=eta,
                                tau=tau)
        assert np.abs(r.mean - grad).max() <= r.error_bound + 1e-12


def test_categorical_saturated_logits_need_the_importance_sampling(monkeypatch):
    # alpha_b far above the rest: the region near the decision boundary has probability
    # ~ p_c under p(z | b) and carries the reparameterization terms. With the defensive
    # importance sampling the certified mean contains the exact gradient with a bound below
    # the gradient; without it (mixture share 0) plain RQMC misses that region in every
    # randomization and certifies a wrong mean (the failure the oracle's design answers)
    import verify.moments.rebar as vr
    from verify.exact import make_problem
    from verify.moments import relaxation

    alpha = np.array([[20.0, 0.0, -3.0]])
    f = random_table(1, 3, seed=2)
    grad = verify.exact_gradient(make_problem("categorical", alpha, f))
    monkeypatch.setattr(relaxation, "_CACHE", {})
    m = REBAR.exact_moments("categorical", alpha, f, eta=1.0, tau=0.5)
    assert np.abs(m.mean - grad).max() <= m.error_bound < 0.1 * np.abs(grad).max()
    monkeypatch.setattr(relaxation, "_CACHE", {})
    monkeypatch.setattr(vr, "mixture_fraction", lambda n: 0.0)
    plain = REBAR.exact_moments("categorical", alpha, f, eta=1.0, tau=0.5)
    assert np.abs(plain.mean - grad).max() > plain.error_bound


def test_categorical_noise_feed_gives_the_reference_relaxation(rng):
    # verify.noise.feed: b = argmax(alpha + G) and y = softmax((alpha + G) / tau) from its G
    from verify.noise import feed

    alpha, _, noise = _setup_cat(rng, R=5)
    fd = feed("rebar", "categorical", alpha, noise, n=2, tau=0.7)
    q = REBAR.queries("categorical", alpha, noise, n=2, tau=0.7)
    assert np.array_equal(fd["b"], q.z)
    x = (alpha + fd["gumbel"]) / 0.7
    y = np.exp(x - x.max(-1, keepdims=True))
    assert np.allclose(q.y[:, :2], y / y.sum(-1, keepdims=True), rtol=1e-12, atol=1e-300)


def test_the_record_keeps_no_surrogate_alive(rng):
    # phase 2 checks the queries against the reference's shapes, cached per options; an
    # option that is an object (RELAX's surrogate, which in the VAE holds the model) is not
    # cached, so the registry record does not keep it alive
    import gc
    import weakref

    phi, f, noise = _setup(rng, R=2)
    surrogate = QuadraticSurrogate(1.5, 0.2)
    RELAX.estimate("bernoulli", phi, f, noise, backend="cpu", n=2, surrogate=surrogate)
    alive = weakref.ref(surrogate)
    del surrogate
    gc.collect()
    assert alive() is None
    RELAX.estimate("bernoulli", phi, f, noise, backend="cpu", n=2, eta=0.5)  # plain: cached
    assert any(("eta", 0.5) in key[2] for key in RELAX._query_shape_cache)
