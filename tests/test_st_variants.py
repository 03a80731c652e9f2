"""Straight-through variants (Gumbel-Rao, GST, ReinMax): independent implementations of the
papers' and codes' formulas, identities with ST-Gumbel-Softmax, Rao-Blackwell properties,
special cases with exact values, limits, and option errors.

The registry-wide tests (tests/test_registry.py, test_batch.py) already run the three
backends of every record on the built-in problems against the oracle.
"""

from __future__ import annotations

import numpy as np
import pytest

import verify
from reference import get_estimator
from reference.distributions import get_distribution, softmax
from reference.ksubset import gumbel
from reference.objectives import RowQuadratic, categorical_toy, random_table

ALPHA = np.array([[0.5, -1.0, 0.2], [1.5, 0.0, -0.5]])
BACKENDS = ["numpy", "cpu"]


def _onehot(z: np.ndarray, C: int) -> np.ndarray:
    return (z[..., None] == np.arange(C)).astype(np.float64)


def _fd_grad(surrogate, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central finite differences of a scalar function of ``theta (K, C)``."""
    g = np.zeros_like(theta)
    for idx in np.ndindex(*theta.shape):
        e = np.zeros_like(theta)
        e[idx] = h
        g[idx] = (surrogate(theta + e) - surrogate(theta - e)) / (2 * h)
    return g


def _draw(name: str, R: int, seed: int, alpha=ALPHA, **opts) -> dict:
    return get_estimator(name).draw_noise(np.random.default_rng(seed), "categorical",
                                          alpha.shape, R, **opts)


# ------------------------------------------------ independent implementations (FD)
def _gr_surrogate_value(theta, theta0, z, u, dy, tau, detach):
    """``sum_k <dy_k, mean_j softmax(x_j / tau)>`` with the conditional Gumbels written as in
    nshepperd's ``conditional_gumbel`` (exponentials ``E = -log u``); detached: the Gumbels
    ``x(theta0) - theta0`` are held fixed."""
    E = -np.log(u)  # (m, K, C)
    D = _onehot(z, theta.shape[-1])  # (K, C)

    def x_of(t):
        Z = np.exp(t).sum(axis=-1, keepdims=True)
        Ei = (D * E).sum(axis=-1, keepdims=True)
        return D * (-np.log(E) + np.log(Z)) + (1 - D) * -np.log(E / np.exp(t) + Ei / Z)

    x = theta + (x_of(theta0) - theta0) if detach else x_of(theta)
    return float((softmax(x / tau) * dy).sum(axis=(-1, -2)).mean())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("detach", [True, False])
def test_gumbel_rao_matches_finite_differences_of_its_surrogate(backend, detach):
    est, f = get_estimator("gumbel_rao"), random_table(2, 3, 21)
    opts = {"tau": 0.7, "m": 4, "detach_gumbels": detach}
    noise = _draw("gumbel_rao", 6, 0, **opts)
    g = est.estimate("categorical", ALPHA, f, noise, backend, **opts)
    z = get_distribution("categorical").sample(ALPHA, noise["u_z"])[:, 0]  # (R, K)
    for r in range(6):
        dy = f.relaxed(_onehot(z[r], 3))[1]
        want = _fd_grad(lambda t, r=r, dy=dy: _gr_surrogate_value(
            t, ALPHA, z[r], noise["u"][r, 0], dy, 0.7, detach), ALPHA)
        np.testing.assert_allclose(g[r], want, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("gap", [1.0, 0.3, "p"])
def test_gst_matches_the_authors_steps(backend, gap):
    """``gst_mover`` step by step (move to the max, clamp the others a gap below, centre),
    the perturbation detached, the gradient by finite differences."""
    est, f = get_estimator("gst"), random_table(2, 3, 22)
    noise = _draw("gst", 8, 1)
    g = est.estimate("categorical", ALPHA, f, noise, backend, tau=0.6, gap=gap)
    z = get_distribution("categorical").sample(ALPHA, noise["u"])[:, 0]
    for r in range(8):
        D = _onehot(z[r], 3)
        probs = softmax(ALPHA)
        max_logits = ALPHA.max(axis=-1, keepdims=True)
        move = (max_logits - ALPHA) * D
        if gap == "p":
            pi = (probs * D).sum(axis=-1, keepdims=True)
            width = -np.log(1 - pi) / pi
        else:
            width = gap
        move2 = np.clip(ALPHA - max_logits + width, 0.0, None) * (1 - D)
        shift = move - move2  # detached
        dy = f.relaxed(D)[1]

        def surrogate(t, shift=shift, dy=dy):
            lg = t + shift
            lg = lg - lg.mean(axis=-1, keepdims=True)
            return float((softmax(lg / 0.6) * dy).sum())

        np.testing.assert_allclose(g[r], _fd_grad(surrogate, ALPHA), atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_reinmax_matches_algorithm_1(backend, tau):
    """The paper's Algorithm 1 / the authors' autograd function: ``pi_1 = softmax(sg(log pi_1
    - theta) + theta)``, ``pi_2 = 2 pi_1 - pi_0 / 2``; gradient of ``<dy, pi_2>`` by finite
    differences."""
    est, f = get_estimator("reinmax"), random_table(2, 3, 23)
    noise = _draw("reinmax", 8, 2)
    g = est.estimate("categorical", ALPHA, f, noise, backend, tau=tau)
    z = get_distribution("categorical").sample(ALPHA, noise["u"])[:, 0]
    for r in range(8):
        D = _onehot(z[r], 3)
        pi1 = 0.5 * (softmax(ALPHA / tau) + D)
        const = np.log(pi1) - ALPHA
        dy = f.relaxed(D)[1]

        def surrogate(t, const=const, dy=dy):
            return float(((2 * softmax(const + t) - 0.5 * softmax(t)) * dy).sum())

        np.testing.assert_allclose(g[r], _fd_grad(surrogate, ALPHA), atol=1e-8)


# ------------------------------------------------------- Gumbel-Rao and ST-Gumbel
def _stgs_noise_as_gumbel_rao(alpha: np.ndarray, u_gs: np.ndarray) -> dict:
    """GR noise (``m = 1``) whose sample and conditional Gumbels reproduce the Gumbels of
    ST-Gumbel-Softmax noise ``u_gs (R, 1, K, C)``: invert the conditional construction."""
    x = alpha + gumbel(u_gs)
    D = x.argmax(axis=-1)  # (R, 1, K)
    M = x.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(alpha).sum(axis=-1, keepdims=True))
    E = np.exp(alpha - x) * -np.expm1(x - M)  # c != D
    E = np.where(_onehot(D, alpha.shape[-1]) > 0, np.exp(lse - M), E)
    e = np.exp(alpha - alpha.max(axis=-1, keepdims=True))
    S = np.cumsum(e, axis=-1)
    lo = np.where(D > 0, np.take_along_axis(np.broadcast_to(S, x.shape), np.maximum(D - 1, 0)[..., None],
                                            -1)[..., 0], 0.0)
    hi = np.take_along_axis(np.broadcast_to(S, x.shape), D[..., None], -1)[..., 0]
    return {"u_z": 0.5 * (lo + hi) / S[..., -1], "u": np.exp(-E)[:, :, None]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_gumbel_rao_m1_detached_is_st_gumbel_softmax_on_matched_noise(backend):
    """With ``m = 1`` and the Gumbels detached, Gumbel-Rao is ST-Gumbel-Softmax: given the
    same ``(z, G)`` (the GR noise built by inverting the conditional construction), the
    estimates agree to rounding."""
    f = random_table(2, 3, 24)
    stgs, gr = get_estimator("st_gumbel_softmax"), get_estimator("gumbel_rao")
    noise = _draw("st_gumbel_softmax", 200, 3, tau=0.8)
    g1 = stgs.estimate("categorical", ALPHA, f, noise, backend, tau=0.8)
    gr_noise = _stgs_noise_as_gumbel_rao(ALPHA, noise["u"])
    g2 = gr.estimate("categorical", ALPHA, f, gr_noise, backend, tau=0.8, m=1)
    np.testing.assert_allclose(g2, g1, atol=1e-9)
    g3 = gr.estimate("categorical", ALPHA, f, gr_noise, backend, tau=0.8, m=1,
                     detach_gumbels=False)
    assert np.abs(g3 - g1).max() > 1e-3  # the total derivative is another estimator


def _close(a, b, tol):
    return np.abs(np.asarray(a) - np.asarray(b)).max() <= tol


@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_gumbel_rao_detached_has_st_gumbel_softmax_mean_and_less_variance(tau):
    f = random_table(2, 3, 25)
    st = get_estimator("st_gumbel_softmax").exact_moments("categorical", ALPHA, f, tau=tau)
    gr = get_estimator("gumbel_rao")
    m1 = gr.exact_moments("categorical", ALPHA, f, tau=tau, m=1)
    tol = st.error_bound + m1.error_bound
    # m = 1: the same law, so the same moments (two independent certified computations)
    assert _close(m1.mean, st.mean, tol) and _close(m1.cov, st.cov, tol)
    previous = m1
    for m in (2, 5, 50):
        mm = gr.exact_moments("categorical", ALPHA, f, tau=tau, m=m)
        assert np.array_equal(mm.mean, m1.mean)  # E[E[g | z]]: the same integrals for every m
        assert np.all(mm.variances <= previous.variances)  # within-z term divided by m
        assert mm.variance_trace < previous.variance_trace - 1e-4
        assert _close(mm.mean, st.mean, tol)
        assert np.all(mm.variances <= st.variances + tol)
        previous = mm


def test_gumbel_rao_through_the_gumbels_is_not_st_gumbel_softmax():
    """The paper's text says the total derivative through the conditional Gumbels reduces to
    ST-GS when one draw is used; its exact mean differs from ST-GS's beyond both bounds."""
    f = random_table(2, 3, 25)
    st = get_estimator("st_gumbel_softmax").exact_moments("categorical", ALPHA, f, tau=0.5)
    thr = get_estimator("gumbel_rao").exact_moments("categorical", ALPHA, f, tau=0.5, m=1,
                                                    detach_gumbels=False)
    assert np.abs(thr.mean - st.mean).max() > 10 * (st.error_bound + thr.error_bound)


@pytest.mark.parametrize("detach", [True, False])
def test_gumbel_rao_oracle_against_monte_carlo_with_many_draws(detach, rng):
    """``m = 8, n = 2``: the oracle's scaling of the within-z term by ``m`` and ``n``."""
    est, f = get_estimator("gumbel_rao"), categorical_toy(4)
    alpha = np.array([[0.3, -0.4, 1.0, 0.0]])
    opts = {"tau": 0.4, "m": 8, "n": 2, "detach_gumbels": detach}
    mo = est.exact_moments("categorical", alpha, f, **opts)
    noise = est.draw_noise(rng, "categorical", alpha.shape, 20000, **opts)
    samples = est.estimate("categorical", alpha, f, noise, "cpu", **opts)
    assert verify.check_samples(samples, mo).passed


def test_conditional_gumbels_keep_the_sample_on_top(rng):
    est = get_estimator("gumbel_rao")
    alpha = np.array([[30.0, -30.0, 0.0], [0.0, 0.0, 0.0]])
    noise = est.draw_noise(rng, "categorical", alpha.shape, 500, m=3)
    noise["u"][:5] = 0.0  # the guarded end of the range
    q = est.queries("categorical", alpha, noise, "numpy", m=3)
    x = q.aux["perturbed"]  # (R, 1, 3, K, C)
    assert np.all(np.isfinite(x))
    assert np.array_equal(x.argmax(axis=-1), np.broadcast_to(q.z[:, :, None], x.shape[:-1]))


# --------------------------------------------------------------- ReinMax and GST
@pytest.mark.parametrize("objective", [random_table(2, 3, 26),
                                       RowQuadratic(np.array([[0.0, 1.0, 3.0], [2.0, -1.0, 0.5]]),
                                                    0.45)])
def test_reinmax_at_tau_1_is_exact_for_quadratic_objectives(objective):
    """Heun's method is exact for quadratics: with ``tau = 1``, ``E[ReinMax]`` equals the
    exact gradient when ``f`` is quadratic in each one-hot row (the multilinear extension of
    a table is the affine case); with ``tau = 2`` it is biased, and straight-through is biased
    on the quadratic one."""
    grad = verify.exact_gradient("categorical", ALPHA, objective)
    rm = get_estimator("reinmax")
    assert _close(rm.exact_moments("categorical", ALPHA, objective, tau=1.0).mean, grad, 1e-13)
    assert np.abs(rm.exact_moments("categorical", ALPHA, objective, tau=2.0).mean - grad).max() \
        > 1e-3
    st = get_estimator("straight_through").exact_moments("categorical", ALPHA, objective)
    if isinstance(objective, RowQuadratic):
        assert np.abs(st.mean - grad).max() > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_reinmax_large_tau_limit(backend):
    """``tau -> infinity``: ``softmax(alpha / tau) -> 1/C``, so ``pi_1 -> (1/C + e_z)/2``."""
    f = random_table(2, 3, 27)
    noise = _draw("reinmax", 20, 4)
    g = get_estimator("reinmax").estimate("categorical", ALPHA, f, noise, backend, tau=1e12)
    z = get_distribution("categorical").sample(ALPHA, noise["u"])[:, 0]
    D = _onehot(z, 3)
    dy = f.relaxed(D)[1]
    pi1, pi0 = 0.5 * (1.0 / 3 + D), softmax(ALPHA)

    def jdy(y):
        return y * (dy - (y * dy).sum(axis=-1, keepdims=True))

    np.testing.assert_allclose(g, 2 * jdy(pi1) - 0.5 * jdy(pi0), atol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gst_is_straight_through_when_the_argmax_already_leads_by_the_gap(backend):
    """``alpha'`` equals ``alpha`` when the sample is the argmax and the others are at least
    ``gap`` below it, so GST with ``tau = 1`` gives straight-through's value there."""
    alpha = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    f = random_table(2, 3, 28)
    noise = _draw("gst", 300, 5, alpha=alpha)
    g_gst = get_estimator("gst").estimate("categorical", alpha, f, noise, backend, gap=1.0)
    g_st = get_estimator("straight_through").estimate("categorical", alpha, f, noise, backend)
    z = get_distribution("categorical").sample(alpha, noise["u"])[:, 0]
    leads = np.all(z == alpha.argmax(axis=-1), axis=-1)
    assert leads.sum() > 50 and (~leads).sum() > 50
    np.testing.assert_allclose(g_gst[leads], g_st[leads], atol=1e-14)
    assert np.abs(g_gst[~leads] - g_st[~leads]).max() > 1e-2


@pytest.mark.parametrize("name", ["gst", "gumbel_rao"])
def test_small_tau_limit_is_zero_and_finite(name):
    """``tau -> 0``: the softmax of the (conditional or gapped) logits becomes the one-hot
    sample, whose Jacobian vanishes; no overflow on the way."""
    f = random_table(2, 3, 29)
    est = get_estimator(name)
    for backend in BACKENDS:
        noise = _draw(name, 50, 6)
        g = est.estimate("categorical", ALPHA, f, noise, backend, tau=1e-4)
        assert np.all(np.isfinite(g)) and np.abs(g).max() < 1e-12


def test_oracles_match_brute_force_on_a_tiny_problem():
    """GST and ReinMax moments against a direct sum over the configurations, with the
    estimates taken from the NumPy reference at noise pinned to each configuration."""
    alpha = np.array([[0.2, -0.3, 0.9], [0.0, 0.5, -1.0]])
    f = random_table(2, 3, 30)
    pr = verify.make_problem("categorical", alpha, f)
    q = verify.exact.config_probabilities(pr)
    for name, opts in [("gst", {"gap": "p", "tau": 0.7}), ("reinmax", {"tau": 1.5})]:
        est = get_estimator(name)
        vals, probs = [], []
        for z in np.ndindex(3, 3):
            # a uniform inside z's inverse-CDF interval, per variable
            u = np.array([(softmax(alpha[k])[: z[k]].sum() + 0.5 * softmax(alpha[k])[z[k]])
                          for k in range(2)])
            vals.append(est.estimate("categorical", alpha, f, {"u": u[None, None]}, **opts)[0])
            probs.append(q[z])
        vals, probs = np.array(vals).reshape(9, -1), np.array(probs)
        mean = probs @ vals
        cov = ((vals - mean) * probs[:, None]).T @ (vals - mean)
        mo = est.exact_moments("categorical", alpha, f, **opts)
        np.testing.assert_allclose(mo.mean.ravel(), mean, atol=1e-14)
        np.testing.assert_allclose(mo.cov, cov, atol=1e-14)


# ------------------------------------------------------------------------ options
@pytest.mark.parametrize("name, opts, exc, words", [
    ("gumbel_rao", {"tau": 0.0}, ValueError, "tau"),
    ("gumbel_rao", {"tau": -1.0}, ValueError, "tau"),
    ("gumbel_rao", {"tau": float("nan")}, ValueError, "tau"),
    ("gumbel_rao", {"m": 0}, ValueError, "m must"),
    ("gumbel_rao", {"m": 2.5}, TypeError, "m must"),
    ("gumbel_rao", {"detach_gumbels": 1}, TypeError, "detach_gumbels"),
    ("gumbel_rao", {"n": 0}, ValueError, "n must"),
    ("gst", {"gap": 0.0}, ValueError, "gap"),
    ("gst", {"gap": float("nan")}, ValueError, "gap"),
    ("gst", {"gap": "q"}, ValueError, "gap"),
    ("gst", {"tau": float("inf")}, ValueError, "tau"),
    ("reinmax", {"tau": 0.5}, ValueError, "ReinMax"),
    ("reinmax", {"tau": float("nan")}, ValueError, "tau"),
    ("reinmax", {"tau": "1"}, TypeError, "tau"),
])
def test_bad_options_raise_naming_the_option(name, opts, exc, words):
    est = get_estimator(name)
    with pytest.raises(exc, match=words):
        est.options(**opts)
    with pytest.raises(exc, match=words):
        est.exact_moments("categorical", ALPHA, random_table(2, 3, 0), **opts)


@pytest.mark.parametrize("name", ["gumbel_rao", "gst", "reinmax"])
def test_bernoulli_is_rejected(name):
    with pytest.raises(ValueError, match="categorical"):
        get_estimator(name).draw_noise(np.random.default_rng(0), "bernoulli", (3,), 2)


@pytest.mark.parametrize("name, opts", [
    ("straight_through", {"n": 3}),
    ("gst", {"tau": 0.7, "gap": 1.0, "n": 3}),
    ("gst", {"tau": 0.5, "gap": "p", "n": 3}),
    ("reinmax", {"tau": 2.0, "n": 3}),
    ("gumbel_rao", {"tau": 0.5, "m": 2, "detach_gumbels": False, "n": 3}),
    ("gumbel_rao", {"tau": 1.0, "m": 3, "n": 2}),
])
def test_combines_over_several_samples_agree_across_backends(name, opts, small_cuda_grid):
    # the registry's examples mostly take one sample; the fast combines sum a row's samples
    # with the row's softmax kept (straight-through: p (D - <p, D>) / n with D the sum of the
    # dy; the others: a scratch row per softmax), so n > 1 is checked on shared noise here
    est = get_estimator(name)
    alpha = 1.5 * np.random.default_rng(11).normal(size=(3, 4))
    pr = verify.make_problem("categorical", alpha, random_table(3, 4, 12))
    for backend in ("cpu", "cuda"):
        verify.check_port(verify.backend_port(est, backend, "categorical"), est, pr,
                          R_shared=6, seed=5, distribution=False, raise_on_failure=True, **opts)
