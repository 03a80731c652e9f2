"""Arbitrary-precision certificates of the float64 oracle at saturated logits (issue 16).

Every enumeration-based family's exact moments are compared per entry with an independent
``mpmath`` evaluation of the estimator's definition (60 digits) on small problems with logits
up to ``+-50``. Where the estimate ``g(z)`` is a sum of terms, float64 knows it to a few ulps of
its *condition scale* ``G(z)`` (the sum of the terms' absolute values; the objective's values
and gradients are float64 inputs), so the tolerances are

* mean: ``1e-12 |truth| + 64 eps sum_z q(z) G(z)``;
* covariance: ``1e-11 sd_a sd_b + 64 eps (G_a sd_b + sd_a G_b) + (64 eps)^2 G_a G_b`` with
  ``sd`` the true standard deviations and ``G_a = max_z G_a(z)``: a deviation ``g(z) - mean``
  carries an absolute error of a few ulps of ``G``, which enters the covariance once per
  factor. No floor is absolute in the usual sense: each scales with the entry's own terms, so a
  nearly deterministic coordinate (variance 1e-44 next to ``g ~ 1``, where the former
  uncentred forms returned 0 or noise of 1e-17) must be right to its last resolvable digit.

Families whose oracle is quadrature or RQMC (Gumbel-Softmax, ST-Gumbel-Softmax, Gumbel-Rao,
I-MLE/AIMLE on k-subsets, REBAR/RELAX) state an error bound instead; their tests check the
bound against independent computations (``tests/test_perturbation.py``, ``test_rebar.py``,
``test_st_variants.py``), and :func:`test_rqmc_bounds_hold_at_saturated_logits` checks it here at
logits ``+-50``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_binary import SeparableTable

import reference
import verify
from reference.distributions import softmax
from verify.exact import config_probabilities, configurations, score_matrix

EPS = np.finfo(float).eps
ULPS = 64 * EPS
_EXTREME = st.sampled_from([-50.0, -30.0, -20.0, -5.0, -0.5, 0.0, 0.7, 3.0, 20.0, 30.0, 50.0])


def assert_certified(m, truth, q: np.ndarray, G: np.ndarray) -> None:
    """The module docstring's tolerances; ``q (N,)`` probabilities, ``G (N, P)`` scales."""
    G = np.asarray(G, dtype=np.float64).reshape(len(q), -1)
    mean_tol = 1e-12 * np.abs(truth.mean.ravel()) + ULPS * (q @ G) + 1e-300
    err = np.abs(m.mean.ravel() - truth.mean.ravel())
    assert np.all(err <= mean_tol), (m.mean, truth.mean, err / mean_tol)
    sd = np.sqrt(np.clip(np.diag(truth.cov), 0.0, None))
    Gm = G.max(axis=0)
    tol = (1e-11 * np.outer(sd, sd) + ULPS * (np.outer(Gm, sd) + np.outer(sd, Gm))
           + ULPS**2 * np.outer(Gm, Gm) + 1e-300)
    err = np.abs(m.cov - truth.cov)
    assert np.all(err <= tol), (m.cov, truth.cov, (err / tol).max())


def _jdy_scale(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Condition scale of ``y_c sum_c' y_c' (dy_c - dy_c')``."""
    return y * np.einsum("...d,...cd->...c", y, np.abs(dy[..., :, None] - dy[..., None, :]))


@st.composite
def _categorical(draw, max_size: int = 8):
    K = draw(st.integers(1, 2))
    C = draw(st.integers(2, 4 if K == 1 else 3))
    alpha = np.array(draw(st.lists(_EXTREME, min_size=K * C, max_size=K * C))).reshape(K, C)
    f = reference.random_table(K, C, draw(st.integers(0, 99)), "categorical")
    return verify.make_problem("categorical", alpha, f)


@st.composite
def _any(draw):
    dist = draw(st.sampled_from(["bernoulli", "categorical"]))
    if dist == "categorical":
        return draw(_categorical())
    K = draw(st.integers(1, 3))
    phi = np.array(draw(st.lists(_EXTREME, min_size=K, max_size=K)))
    return verify.make_problem("bernoulli", phi, reference.random_table(K, 2, draw(st.integers(0, 99)),
                                                                        "binary"))


def _dy(pr) -> np.ndarray:
    Z = configurations(pr)
    y = (Z[..., None] == np.arange(pr.C)).astype(float) if pr.dist.name == "categorical" \
        else Z.astype(float)
    return np.broadcast_to(pr.objective.relaxed(y)[1], y.shape)


# ------------------------------------------------------------------ ST variants
@given(_categorical(), st.sampled_from([0.5, 1.0, 2.0]), st.integers(1, 2))
def test_reinmax_moments_match_mpmath(pr, tau, n):
    from verify.moments.st_variants import reinmax_moments, reinmax_moments_mp

    m = reinmax_moments(pr.dist, pr.params, pr.objective, tau=tau, n=n)
    truth = reinmax_moments_mp(pr.dist, pr.params, pr.objective, tau=tau, n=n)
    dy = _dy(pr)
    Z = configurations(pr)
    pi1 = 0.5 * (softmax(pr.params / tau)[None] + (Z[..., None] == np.arange(pr.C)))
    G = 2 * _jdy_scale(pi1, dy) + 0.5 * _jdy_scale(softmax(pr.params)[None], dy)
    assert_certified(m, truth, config_probabilities(pr).ravel(), G.reshape(len(Z), -1))


@given(_categorical(), st.sampled_from([0.5, 1.0]), st.sampled_from([1.0, 0.3, "p"]))
def test_gst_moments_match_mpmath(pr, tau, gap):
    from verify.moments.st_variants import gst_moments, gst_moments_mp

    m = gst_moments(pr.dist, pr.params, pr.objective, tau=tau, gap=gap)
    truth = gst_moments_mp(pr.dist, pr.params, pr.objective, tau=tau, gap=gap)
    dy = _dy(pr)
    Z = configurations(pr)
    # the moved logits put the sample's category on top: y <= 1 everywhere, so the scale of
    # every entry is at most the spread of its dy (a bound, not the exact scale: GST's moved
    # logits would have to be recomputed here for that)
    spread = (dy.max(axis=-1) - dy.min(axis=-1))[..., None] * np.ones(pr.C)
    y_max = np.maximum(softmax(pr.params / tau), 1.0)[None]
    G = y_max * spread / tau
    assert_certified(m, truth, config_probabilities(pr).ravel(), G.reshape(len(Z), -1))


def test_reinmax_at_50_is_accurate_where_the_old_form_cancelled():
    # the dominant category's entry: y_c (dy_c - <y, dy>) kept no correct digit here
    from verify.moments.st_variants import reinmax_moments, reinmax_moments_mp

    alpha = np.array([[50.0, -50.0, 0.0]])
    f = reference.random_table(1, 3, seed=3)
    m = reinmax_moments("categorical", alpha, f)
    truth = reinmax_moments_mp("categorical", alpha, f)
    np.testing.assert_allclose(m.mean, truth.mean, rtol=1e-13, atol=0)


# ------------------------------------------------------------------------ SIMPLE
@st.composite
def _subset_problems(draw):
    n = draw(st.integers(2, 5))
    k = draw(st.integers(1, n - 1))
    theta = np.array(draw(st.lists(_EXTREME, min_size=n, max_size=n)))
    f = reference.random_table(n, 2, draw(st.integers(0, 99)), "binary")
    return verify.make_problem("ksubset", theta, f), k


@given(_subset_problems(), st.integers(1, 2))
def test_simple_moments_match_mpmath(prk, S):
    from verify.exact import ksubset_probabilities
    from verify.moments.ksubset_perturbation import simple_moments, simple_moments_mp

    pr, k = prk
    m = simple_moments(pr.dist, pr.params, pr.objective, k=k, S=S)
    truth = simple_moments_mp(pr.dist, pr.params, pr.objective, k=k, S=S)
    Z, p = ksubset_probabilities(pr, k)
    Zb = Z.astype(bool)
    D = np.where(Zb, (p @ ~Zb)[None], (p @ Zb)[None])  # |z_i - mu_i|
    abs_cov = (D * p[:, None]).T @ D
    dy = np.broadcast_to(pr.objective.relaxed(Z.astype(float))[1], Z.shape)
    assert_certified(m, truth, p, np.abs(dy) @ abs_cov)


def test_simple_covariance_at_50_is_not_rounding_noise():
    # E[z z^T] - mu mu^T returned 0 and 1e-17 noise for a variance of 3.7e-44
    from verify.moments.ksubset_perturbation import simple_moments, simple_moments_mp

    theta = np.array([50.0, -50.0, 0.0])
    f = reference.objectives.SubsetQuadratic(np.array([0.2, 0.9, 0.4]))
    m = simple_moments("ksubset", theta, f, k=1)
    truth = simple_moments_mp("ksubset", theta, f, k=1)
    assert np.all(np.abs(truth.mean) > 0)
    np.testing.assert_allclose(m.mean, truth.mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.diag(m.cov), np.diag(truth.cov), rtol=1e-11, atol=0)


# ------------------------------------------------------------- control variates
@given(_any(), st.integers(1, 3), st.sampled_from([0.0, 0.4]), st.sampled_from([0.5, 4.0]))
def test_nvil_moments_match_mpmath(pr, n, c, v):
    from verify.moments.control_variates import nvil_moments, nvil_moments_mp

    m = nvil_moments(pr.dist, pr.params, pr.objective, n=n, baseline=0.3, c=c, v=v)
    truth = nvil_moments_mp(pr.dist, pr.params, pr.objective, n=n, baseline=0.3, c=c, v=v)
    q = config_probabilities(pr).ravel()
    f = pr.f_table().ravel()
    S = score_matrix(pr)
    G = (np.abs(f - 0.3 - c)[:, None] * np.abs(S)) / max(1.0, np.sqrt(v))
    assert_certified(m, truth, q, G)


@given(_any(), st.integers(1, 2))
def test_muprop_moments_match_mpmath(pr, n):
    from reference.distributions import sigmoid
    from verify.moments.control_variates import muprop_moments, muprop_moments_mp

    m = muprop_moments(pr.dist, pr.params, pr.objective, n=n)
    truth = muprop_moments_mp(pr.dist, pr.params, pr.objective, n=n)
    bern = pr.dist.name == "bernoulli"
    mu = sigmoid(pr.params) if bern else softmax(pr.params)
    f_mu, d_mu = pr.objective.relaxed(mu)
    d_mu = np.broadcast_to(d_mu, mu.shape)
    q = config_probabilities(pr).ravel()
    f = pr.f_table().ravel()
    S = score_matrix(pr)
    bracket = np.abs(f) + abs(float(f_mu)) + np.abs(S) @ np.abs(d_mu.ravel())
    corr = np.abs(mu * (1 - mu) * d_mu) if bern else _jdy_scale(mu, d_mu)
    G = bracket[:, None] * np.abs(S) + corr.ravel()[None]
    assert_certified(m, truth, q, G)


@given(st.lists(_EXTREME, min_size=1, max_size=2), st.integers(0, 99), st.integers(2, 3),
       st.sampled_from([0.0, 1.0, -0.7]))
def test_double_cv_moments_match_mpmath(phi, seed, n, a_cv):
    from verify.moments.control_variates import double_cv_moments, double_cv_moments_mp

    phi = np.array(phi)
    f = reference.random_table(phi.size, 2, seed, "binary")
    m = double_cv_moments("bernoulli", phi, f, n=n, alpha_cv=a_cv)
    truth = double_cv_moments_mp("bernoulli", phi, f, n=n, alpha_cv=a_cv)
    pr = verify.make_problem("bernoulli", phi, f)
    q, fs, S, d = (config_probabilities(pr).ravel(), np.abs(pr.f_table().ravel()),
                   np.abs(score_matrix(pr)), np.abs(_dy(pr)))
    pq = np.exp(np.log(q @ (configurations(pr) == 1)) + np.log(q @ (configurations(pr) == 0)))
    # scales over every n-tuple: the definition's terms (f_i + |c_i|) s_i / (n - 1) and
    # |a| p (1 - p) dbar, with |c_i| <= |a| dbar_{-i} . s_i
    qs, Gs = [], []
    for tup in np.ndindex(*(len(q),) * n):
        idx = list(tup)
        c = abs(a_cv) * (d[idx].sum(axis=0) @ S[idx].T)
        Gs.append(2 * ((fs[idx] + c)[:, None] * S[idx]).sum(axis=0) / (n - 1)
                  + abs(a_cv) * pq * d[idx].mean(axis=0))
        qs.append(np.prod(q[idx]))
    assert_certified(m, truth, np.array(qs), np.array(Gs))


# ------------------------------------------------------------- binary family (item 3)
@given(st.sampled_from(["ar", "arm", "disarm"]),
       st.lists(st.sampled_from([-50.0, -40.0, -30.0, -20.0, -0.5, 0.0, 0.7, 3.0, 30.0, 40.0,
                                 50.0]), min_size=1, max_size=3),
       st.integers(0, 50))
def test_binary_covariance_is_accurate_per_entry(kind, phi, seed):
    """The general method's covariance, now centred per cell, against mpmath on the same float64
    cells: relative to the entry's own terms, with no allowance for E[g g^T] - mean mean^T."""
    from verify.moments.augment_reinforce import binary_cells, binary_moments, binary_moments_mp

    phi = np.array(phi)
    f = reference.random_table(phi.size, 2, seed)
    m = binary_moments(kind, "bernoulli", phi, f, method="general")
    truth = binary_moments_mp(kind, "bernoulli", phi, f)
    # the mean sums F I_1 over the cells, terms of either sign (at phi = 40 the float64 cells
    # make AR's mean exactly 0, from terms of 4e-18): a few ulps of their absolute sum
    terms = 2 * np.abs(f.table()).max() * np.abs(binary_cells(kind, phi).integrals[1]).sum(axis=1)
    assert np.all(np.abs(m.mean - truth.mean) <= 1e-12 * np.abs(truth.mean) + ULPS * terms
                  + 1e-300)
    # per entry, relative to the correlation scale: the terms are products of accurate factors
    # (measured: 7e-16 at worst over 150 random problems)
    sd = np.sqrt(np.clip(np.diag(truth.cov), 0, None))
    assert np.all(np.abs(m.cov - truth.cov) <= 1e-12 * np.outer(sd, sd) + 1e-300), \
        (m.cov, truth.cov)


@given(st.sampled_from(["ar", "arm", "disarm"]),
       st.lists(st.sampled_from([-50.0, -40.0, -30.0, -20.0, -0.5, 0.0, 0.7, 3.0, 30.0, 40.0,
                                 50.0]), min_size=1, max_size=4),
       st.integers(0, 2**32 - 1))
def test_binary_separable_covariance_is_accurate_per_entry(kind, phi, seed):
    """The separable fast path (``f = sum_k h_k(z_k)``, any ``K``), centred, against mpmath on
    the same float64 cells, with the general method's tolerance (no uncentred allowance: the
    former raw-moment form missed by up to 8.5e6 sd_p sd_q at these logits)."""
    from verify.moments.augment_reinforce import binary_cells, binary_moments, binary_moments_mp

    phi = np.array(phi)
    h = np.random.default_rng(seed).uniform(-3.0, 3.0, (phi.size, 2))
    f = SeparableTable(h)
    m = binary_moments(kind, "bernoulli", phi, f, method="separable")
    truth = binary_moments_mp(kind, "bernoulli", phi, f)
    terms = 2 * np.abs(h).sum() * np.abs(binary_cells(kind, phi).integrals[1]).sum(axis=1)
    assert np.all(np.abs(m.mean - truth.mean) <= 1e-12 * np.abs(truth.mean) + ULPS * terms
                  + 1e-300)
    sd = np.sqrt(np.clip(np.diag(truth.cov), 0, None))
    assert np.all(np.abs(m.cov - truth.cov) <= 1e-12 * np.outer(sd, sd) + 1e-300), \
        (m.cov, truth.cov)


# ------------------------------------------------------- RQMC families: the stated bound
@functools.cache
def _concrete_truth(d: float, tau: float, f_diff: float) -> tuple[float, float]:
    """Mean and variance of ``y (1 - y) f_diff / tau`` with ``y = sigmoid((d + L) / tau)``, ``L``
    standard logistic: one binary Concrete coordinate (or a categorical one with ``C = 2`` and
    logit difference ``d``), by mpmath quadrature over ``u`` with ``L = log u - log(1 - u)``,
    split at the peak ``L = -d`` (an independent evaluation of the definition)."""
    import mpmath

    ctx = mpmath.mp.clone()
    ctx.dps = 40

    def g(u):
        y = 1 / (1 + ctx.exp(-(d + ctx.log(u) - ctx.log(1 - u)) / tau))
        return y * (1 - y) * f_diff / tau

    peak = 1 / (1 + ctx.exp(d))
    pts = [0, peak / 2, peak, (1 + peak) / 2, 1]
    mean = ctx.quad(g, pts)
    return float(mean), float(ctx.quad(lambda u: g(u) ** 2, pts) - mean**2)


@pytest.mark.parametrize("d", [20.0, 50.0, -50.0, 0.7])
@pytest.mark.parametrize("dist", ["bernoulli", "categorical"])
@pytest.mark.parametrize("name", ["gumbel_softmax", "st_gumbel_softmax"])
def test_rqmc_bounds_hold_at_saturated_logits(name, dist, d):
    """Gumbel-Softmax's RQMC moments used to report a spread of 0 around a mean of 0 at
    ``phi = 50`` (true mean -4e-20) and to violate their bound from ``|phi| = 20``: the region
    where ``y (1 - y)`` is not negligible has probability ``~exp(-|phi|)`` and no point fell
    there. With the defensive mixture the truth lies within the stated bound. (For one variable
    the straight-through version has the same law: ``grad f`` of a one-variable table is
    constant.)"""
    tau = 0.5
    if dist == "bernoulli":
        params, f = np.array([d]), reference.random_table(1, 2, 3, "binary")
        f_diff = float(f.table()[1] - f.table()[0])
    else:
        params, f = np.array([[0.0, d]]), reference.random_table(1, 2, 3, "categorical")
        f_diff = float(f.table()[1] - f.table()[0])
    m = reference.get_estimator(name).exact_moments(dist, params, f, tau=tau)
    mean, var = _concrete_truth(d, tau, f_diff)
    got_mean, got_var = m.mean.ravel()[-1], m.cov[-1, -1]
    assert abs(got_mean - mean) <= m.error_bound, (got_mean, mean, m.error_bound)
    assert abs(got_var - var) <= m.error_bound, (got_var, var, m.error_bound)
    # and the bound says something: within a tenth of the largest value |g| can take
    assert m.error_bound <= 0.1 * abs(f_diff) / (4 * tau)


# ------------------------------------------------------------------ I-MLE / AIMLE
def _assert_imle_matches_mpmath(alpha: list, C: int, seed: int, opts: dict) -> None:
    """I-MLE/AIMLE's float64 moments against ``imle_moments_mp`` on a random table: within the
    stated bound, and per entry: the mean within 1e-11 relative plus 64 eps of ``sqrt(E
    g_a^2)``, the covariance within 1e-9 of ``sd_a sd_b``.

    The mean's second term: a mean entry is a sum of probabilities of both signs, each exact
    to about 2e-16 relative in float64, so where they cancel its error is about 2e-16 times
    ``E |g_a|`` (at most ``sqrt(E g_a^2)``), not a fraction of the result: Hypothesis found
    ``1.94e-5`` off by ``3.4e-16`` (1.8e-11 relative; ``alpha = (2, -3, 0, -50, -50, -50)``,
    ``lambda = 0.5``, ``S = 2``, undivided, seed 5), with every law entry exact to 2.2e-16."""
    from verify.moments.relaxation import imle_moments, imle_moments_mp

    alpha = np.array(alpha).reshape(-1, C)
    f = reference.random_table(alpha.shape[0], C, seed, "categorical")
    m = imle_moments("categorical", alpha, f, **opts)
    truth = imle_moments_mp("categorical", alpha, f, **opts)
    assert np.all(np.abs(m.mean - truth.mean) <= m.error_bound)
    assert np.all(np.abs(m.cov - truth.cov) <= m.error_bound)
    sd = np.sqrt(np.clip(np.diag(truth.cov), 0, None))
    rms = np.sqrt(sd**2 + truth.mean.ravel() ** 2).reshape(truth.mean.shape)
    eps = np.finfo(np.float64).eps
    assert np.all(np.abs(m.mean - truth.mean) <= 1e-11 * np.abs(truth.mean) + 64 * eps * rms
                  + 1e-300)
    assert np.all(np.abs(m.cov - truth.cov) <= 1e-9 * np.outer(sd, sd) + 1e-300)


@given(st.integers(1, 2).flatmap(lambda K: st.lists(_EXTREME, min_size=2 * K, max_size=2 * K)),
       st.integers(0, 99),
       st.sampled_from([{}, {"target": "two_sided"},
                        {"lambda_": 0.5, "S": 2, "divide_by_lambda": False},
                        {"adaptive": True, "beta": 0.5, "target": "two_sided"},
                        {"lambda_": 3.0, "target": "two_sided"}]))
# found by Hypothesis: the former uncentred covariance gave a variance of -1.7e-21 here
@example([-50.0, -50.0], 0, {"adaptive": True, "beta": 0.5, "target": "two_sided"})
def test_imle_moments_match_mpmath_for_two_categories(alpha, seed, opts):
    """The float64 method integrates the joint argmax laws over polygons (any ``C``); for
    ``C = 2`` they are intervals of one logistic variable, an independent closed form. Measured:
    3e-13 relative on the mean, 1e-10 of ``sd_a sd_b`` on the covariance, at logits ``+-50``.
    The stated error bound must hold too."""
    _assert_imle_matches_mpmath(alpha, 2, seed, opts)


@given(st.integers(1, 2).flatmap(lambda K: st.lists(
           st.sampled_from([-50.0, -20.0, -3.0, 0.0, 0.5, 2.0, 20.0, 50.0]),
           min_size=3 * K, max_size=3 * K)),
       st.integers(0, 99),
       st.sampled_from([{}, {"lambda_": 0.5, "S": 2, "divide_by_lambda": False},
                        {"adaptive": True, "beta": 0.5}, {"lambda_": 3.0}]))
@example([-50.0, -50.0, 50.0], 0, {"adaptive": True, "beta": 0.5})
# found by Hypothesis: a mean of 1.94e-5 from cancelling probabilities (the tolerance's
# second term)
@example([2.0, -3.0, 0.0, -50.0, -50.0, -50.0], 5, {"lambda_": 0.5, "S": 2,
                                                    "divide_by_lambda": False})
def test_imle_moments_match_mpmath_for_three_categories(alpha, seed, opts):
    """``C = 3``, one-sided target: the float64 polygon integration against the exponential
    race evaluated exactly in 60 digits (``_race_pair_mp``), per entry at logits up to +-50,
    with the C = 2 test's tolerances; the stated error bound must hold too."""
    _assert_imle_matches_mpmath(alpha, 3, seed, opts)


def test_imle_race_law_mp_sums_to_the_marginals():
    """The race probabilities of every target given a sample add up to the sample's
    probability (60 digits), and match the float64 joint law."""
    import mpmath

    from verify.moments.quadrature import argmax_joint_law
    from verify.moments.relaxation import _race_pair_mp

    ctx = mpmath.mp.clone()
    ctx.dps = 60
    rng = np.random.default_rng(3)
    for _ in range(5):
        a, t = rng.normal(0, 3, 4), rng.normal(0, 3, 4)
        am, tm = [ctx.mpf(float(x)) for x in a], [ctx.mpf(float(x)) for x in t]
        law = np.array([[float(_race_pair_mp(ctx, am, tm, i, j)) for j in range(4)]
                        for i in range(4)])
        p = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
        np.testing.assert_allclose(law.sum(axis=1), p, rtol=1e-14)
        np.testing.assert_allclose(law, argmax_joint_law(np.stack([a, t])), rtol=1e-10,
                                   atol=1e-300)


@given(st.integers(1, 2).flatmap(lambda K: st.lists(
           st.sampled_from([-50.0, -20.0, -3.0, 0.0, 0.5, 2.0, 20.0, 50.0]),
           min_size=3 * K, max_size=3 * K)),
       st.integers(0, 99),
       st.sampled_from([{"target": "two_sided"},
                        {"adaptive": True, "beta": 0.5, "target": "two_sided"},
                        {"lambda_": 3.0, "target": "two_sided"}]))
@example([-50.0, -50.0, 50.0], 0, {"adaptive": True, "beta": 0.5, "target": "two_sided"})
@example([-50.0, -50.0, -50.0], 0, {"adaptive": True, "beta": 0.5, "target": "two_sided"})
# found by Hypothesis: covariances centred on rounded conditional means, 3.5e-23 for a true
# -1.1e-28 (2.4e-7 of sd_a sd_b); the shifted form gives 2.5e-27 of it
@example([-50.0, -50.0, -50.0], 80, {"adaptive": True, "beta": 0.5, "target": "two_sided"})
@example([0.0, 0.0, 0.0, 20.0, 20.0, 20.0], 1, {"target": "two_sided"})
# found by this comparison: the former float64 polygon clipping kept an absolute error only, 1.5e-3
# relative on a mean entry of -9.2e-23 (a conditional law at p(i) = 2e-23 wrong by 1.5e-5)
@example([50.0, -3.0, 20.0, 2.0, -50.0, 0.0], 85,
         {"adaptive": True, "beta": 0.5, "target": "two_sided"})
def test_imle_two_sided_moments_match_mpmath_for_three_categories(alpha, seed, opts):
    """``C = 3``, two-sided target (three argmaxes under one Gumbel vector): the float64 strip
    integration against ``_race_triple_mp`` (exact inner integral, tanh-sinh outer one, 80
    digits), per entry at logits up to +-50, with the C = 2 test's tolerances; the stated error
    bound must hold too. Measured on 161 random problems of this test's kind: at most 2.5e-13
    relative on the mean and 2.5e-13 of ``sd_a sd_b`` on the covariance."""
    _assert_imle_matches_mpmath(alpha, 3, seed, opts)


def _triple_law_mp(ctx, a, s, t) -> list:
    from verify.moments.relaxation import _race_triple_mp

    am, sm, tm = ([ctx.mpf(float(x)) for x in v] for v in (a, s, t))
    C = len(a)
    return [[[_race_triple_mp(ctx, am, sm, tm, i, j, l) for l in range(C)] for j in range(C)]
            for i in range(C)]


_TRIPLES = [  # (a, step): the vectors a, a + step, a - step, as the two-sided target has them
    ([-50.0, -50.0, 50.0], [30.0, 0.0, -1.0]),  # the former polygon gave 2.4e-44 for 1.3e-74
    ([0.0, 0.0, 0.0], [1.0, 0.0, -1.0]),  # tied logits
    ([50.0, 50.0, -50.0, -50.0], [3.0, -20.0, 0.0, 40.0]),  # tied and saturated
    ([2.0, -50.0, 0.0], [10.182740370456845, 6.740218517480650, -21.720123705785326]),
    ([-20.0, 0.5, 0.5, 20.0, -3.0], [5.0, -2.0, 2.0, -60.0, 1.0]),
]


@pytest.mark.parametrize("a,step", _TRIPLES)
def test_imle_triple_race_law_mp_sums_to_the_pairs(a, step):
    """``_race_triple_mp``'s law against what it must marginalise to, all in 60 digits: the
    sum over ``l`` is the pair law of the sample and the first target (``_race_pair_mp``, a
    closed form), the sum over ``j`` that with the second target, the sum over both
    ``softmax(a)``. At ``C = 3`` each of these sums has one term with three distinct winners
    (the quadrature route), so the identities pin that term to ~50 digits; the float64
    strips of ``argmax_joint_law`` must agree per cell to 1e-10 relative (measured: 2e-14)."""
    import mpmath

    from verify.moments.quadrature import argmax_joint_law
    from verify.moments.relaxation import _race_pair_mp

    ctx = mpmath.mp.clone()
    ctx.dps = 60
    a, step = np.array(a), np.array(step)
    s, t = a + step, a - step
    C = len(a)
    law = _triple_law_mp(ctx, a, s, t)
    am, sm, tm = ([ctx.mpf(float(x)) for x in v] for v in (a, s, t))
    z = ctx.fsum(ctx.exp(x) for x in am)
    tol = ctx.mpf(10) ** -50
    for i in range(C):
        assert abs(ctx.fsum(law[i][j][l] for j in range(C) for l in range(C))
                   - ctx.exp(am[i]) / z) <= tol * ctx.exp(am[i]) / z
        for j in range(C):
            pair_s = _race_pair_mp(ctx, am, sm, i, j)
            pair_t = _race_pair_mp(ctx, am, tm, i, j)
            assert abs(ctx.fsum(law[i][j]) - pair_s) <= tol * pair_s
            assert abs(ctx.fsum(law[i][l][j] for l in range(C)) - pair_t) <= tol * pair_t
    law64 = np.array([[[float(x) for x in row] for row in plane] for plane in law])
    np.testing.assert_allclose(argmax_joint_law(np.stack([a, s, t])), law64, rtol=1e-10,
                               atol=1e-300)


def test_imle_triple_race_law_mp_matches_float64_on_random_vectors():
    """Three unrelated logit vectors (not a sample and its targets), ``C = 4``: the 60-digit
    law and the float64 one per cell, 1e-10 relative; the marginals as above. The last triple
    has two ends of the support equal in exact arithmetic (``a_0 = a_3``): the 60-digit
    route divided by zero on the interval of rounding width between them."""
    import mpmath

    from verify.moments.quadrature import argmax_joint_law
    from verify.moments.relaxation import _race_pair_mp

    ctx = mpmath.mp.clone()
    ctx.dps = 60
    rng = np.random.default_rng(5)
    triples = [*rng.normal(0, 1.0, (1, 3, 4)), *rng.normal(0, 20.0, (1, 3, 4)),
               np.array([[0.0, 50.0, -50.0, 0.0], [0.92968266, 1.17713168, 0.68517293, 1.03672259],
                         [-1.76309173, 0.0721164, -0.11410407, -1.95419595]])]
    for a, s, t in triples:
        law = _triple_law_mp(ctx, a, s, t)
        am, sm = [ctx.mpf(float(x)) for x in a], [ctx.mpf(float(x)) for x in s]
        for i in range(4):
            for j in range(4):
                pair = _race_pair_mp(ctx, am, sm, i, j)
                assert abs(ctx.fsum(law[i][j]) - pair) <= ctx.mpf(10) ** -50 * pair
        law64 = np.array([[[float(x) for x in row] for row in plane] for plane in law])
        np.testing.assert_allclose(argmax_joint_law(np.stack([a, s, t])), law64, rtol=1e-10,
                                   atol=1e-300)


@pytest.mark.parametrize("target", ["one_sided", "two_sided"])
def test_imle_certificate_catches_a_1e_9_error_in_one_cell(monkeypatch, target):
    """The certificate is not vacuous: the same comparison fails once one cell of every float64
    joint law (a target outcome other than the sample's) is off by 1e-9 relative, and passes
    without that."""
    import verify.moments.relaxation as rel
    from verify.moments.quadrature import argmax_joint_law

    alpha, opts = [0.0, 0.5, 2.0], {"lambda_": 3.0, "target": target}
    monkeypatch.setattr(rel, "_CACHE", {})
    _assert_imle_matches_mpmath(alpha, 3, 0, opts)

    def perturbed(vectors, first=None):
        T = argmax_joint_law(vectors, first).copy()
        # the largest cell whose winners all differ: (j,) one-sided, (j, l) two-sided
        cells = [c for c in np.ndindex(T.shape) if len({first, *c}) == 1 + T.ndim]
        T[max(cells, key=lambda c: T[c])] *= 1 + 1e-9
        return T

    monkeypatch.setattr(rel, "argmax_joint_law", perturbed)
    monkeypatch.setattr(rel, "_CACHE", {})
    with pytest.raises(AssertionError):
        _assert_imle_matches_mpmath(alpha, 3, 0, opts)


@pytest.mark.parametrize("theta", [[3.0, 0.0], [20.0, 0.0], [0.0, 50.0], [50.0, -50.0]])
def test_imle_ksubset_bound_holds_at_saturated_scores(theta):
    """Top-1 of two items under Gumbel noise is the logistic closed form (the flip happens on an
    interval of ``L = G_1 - G_0``). RQMC missed flips of probability 3e-10 (gap 20) and 5e-21
    (gap 50) in every randomization and reported bound 0; the resolution floor covers them."""
    import mpmath

    ctx = mpmath.mp.clone()
    ctx.dps = 40
    theta = np.array(theta)
    b = np.array([0.9, 0.2])
    m = reference.get_estimator("imle_ksubset").exact_moments(
        "ksubset", theta, reference.objectives.SubsetQuadratic(b), k=1, perturbation="gumbel")
    cdf = lambda t: 1 / (1 + ctx.exp(-t))  # noqa: E731
    mean, second = np.zeros(2, dtype=object), np.zeros((2, 2), dtype=object)
    t0 = ctx.mpf(theta[0] - theta[1])  # item 1 wins iff L > t0 (tau = lambda = 1)
    for i in (0, 1):
        z = np.eye(2)[i]
        w = theta - 2 * (z - b)  # the target scores theta - lambda dy, dy = 2 (z - b)
        t1 = ctx.mpf(w[0] - w[1])
        lo, hi = (t0, ctx.inf) if i == 1 else (-ctx.inf, t0)
        for j in (0, 1):
            a_, b_ = (max(lo, t1), hi) if j == 1 else (lo, min(hi, t1))
            p = cdf(b_) - cdf(a_) if b_ > a_ else ctx.mpf(0)
            g = np.array([ctx.mpf(z[c] - (c == j)) for c in range(2)], dtype=object)
            mean = mean + p * g
            second = second + p * np.outer(g, g)
    cov = (second - np.outer(mean, mean)).astype(float)
    assert np.all(np.abs(m.mean - mean.astype(float)) <= m.error_bound)
    assert np.all(np.abs(m.cov - cov) <= m.error_bound)
    assert m.error_bound <= 1e-2  # and says something (sup |g| = 1 here)


@pytest.mark.parametrize("d", [20.0, 50.0, -50.0])
def test_gumbel_rao_bound_holds_at_saturated_logits(d):
    """With one variable, two categories and one conditional draw (``m = 1``), Gumbel-Rao has
    the law of Gumbel-Softmax (the draw given ``z`` completes the joint law of ``(z, G)``), so
    the same quadrature is its truth. Its stated bound holds at ``+-50``; it is absolute and
    loose there (about 7e-3 for values of 1e-21): the values are not resolved, only bounded."""
    f = reference.random_table(1, 2, 3, "categorical")
    m = reference.get_estimator("gumbel_rao").exact_moments("categorical", np.array([[0.0, d]]),
                                                            f, tau=0.5, m=1)
    mean, var = _concrete_truth(d, 0.5, float(f.table()[1] - f.table()[0]))
    assert abs(m.mean.ravel()[-1] - mean) <= m.error_bound
    assert abs(m.cov[-1, -1] - var) <= m.error_bound


# ------------------------------------------------------------------ CARMS
_MODERATE = st.sampled_from([-3.0, -1.5, -0.5, 0.0, 0.7, 1.2, 3.0])


@st.composite
def _carms_problem(draw):
    dist = draw(st.sampled_from(["bernoulli", "categorical"]))
    K = draw(st.integers(1, 2))
    C = 2 if dist == "bernoulli" else draw(st.integers(2, 3))
    shape = (K,) if dist == "bernoulli" else (K, C)
    a = np.array(draw(st.lists(_MODERATE, min_size=int(np.prod(shape)),
                               max_size=int(np.prod(shape))))).reshape(shape)
    f = reference.random_table(K, C, draw(st.integers(0, 99)),
                               "binary" if dist == "bernoulli" else "categorical")
    return verify.make_problem(dist, a, f)


@given(_carms_problem(), st.integers(2, 3))
def test_carms_moments_match_mpmath_at_moderate_logits(pr, n):
    """CARMS's float64 oracle (U-statistic over 2, 3, 4 samples; pair laws without
    inclusion-exclusion) against its definition in 60-digit mpmath (enumeration of the joint
    tuples, boxes by inclusion-exclusion), per entry, at logits in [-3, 3]."""
    from verify.moments.multi_sample import carms_moments_mp

    if pr.C ** (n * pr.K) > 729:
        n = 2
    m = reference.get_estimator("carms").exact_moments(pr.dist, pr.params, pr.objective, n=n)
    truth = carms_moments_mp(pr.dist, pr.params, pr.objective, n=n)
    scale = np.abs(truth.mean).max()
    assert np.all(np.abs(m.mean - truth.mean) <= 1e-12 * np.abs(truth.mean) + 1e-14 * scale)
    sd = np.sqrt(np.clip(np.diag(truth.cov), 0.0, None))
    assert np.all(np.abs(m.cov - truth.cov) <= 1e-11 * np.outer(sd, sd) + 1e-14 * sd.max()**2)


@pytest.mark.parametrize("dist,params", [("categorical", [[30.0, 0.0, -20.0]]),
                                         ("bernoulli", [30.0, -50.0]),
                                         ("categorical", [[50.0, -50.0, 0.0], [3.0, 20.0, -5.0]])])
def test_carms_at_saturated_logits(dist, params):
    """At logits up to +-50: with two samples (the antithetic pair, whose law the oracle
    computes from interval lengths) every entry of the mean and covariance to 1e-12 relative;
    with three, the laws of three samples are inclusion-exclusion sums (absolute error of a
    few ulps of 1), so the claim is per entry for the mean and absolute for the covariance
    (``2**3`` corners: ``64 eps`` of the objective's scale squared, plus 1e-12 of its largest
    entry)."""
    from verify.moments.multi_sample import carms_moments_mp

    params = np.array(params)
    K = params.shape[0]
    C = 2 if dist == "bernoulli" else params.shape[1]
    f = reference.random_table(K, C, 2, "binary" if dist == "bernoulli" else "categorical")
    fs = np.abs(f.values_table).max()
    rec = reference.get_estimator("carms")
    m = rec.exact_moments(dist, params, f, n=2)
    truth = carms_moments_mp(dist, params, f, n=2)
    assert np.all(np.abs(m.mean - truth.mean) <= 1e-12 * np.abs(truth.mean) + 1e-300)
    sd = np.sqrt(np.clip(np.diag(truth.cov), 0.0, None))
    assert np.all(np.abs(m.cov - truth.cov) <= 1e-12 * np.outer(sd, sd) + 1e-300)
    m = rec.exact_moments(dist, params, f, n=3)
    truth = carms_moments_mp(dist, params, f, n=3)
    assert np.all(np.abs(m.mean - truth.mean) <= 1e-9 * np.abs(truth.mean) + 64 * EPS * fs
                  * np.abs(truth.mean).max())
    assert np.abs(m.cov - truth.cov).max() <= 64 * EPS * fs**2 + 1e-12 * np.abs(truth.cov).max()
