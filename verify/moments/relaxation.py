"""Exact or certified moments of the relaxation and perturbation estimators (records in
:mod:`reference.estimators.relaxation`); the k-subset ones are in
:mod:`verify.moments.ksubset_perturbation`.

Every result is a :class:`verify.Moments` with its method and error bound (0 when exact up to
rounding). ``S`` (or ``n``) samples per replicate divide the single-sample covariance by ``S``.

* ``straight_through``: **exact**, by enumeration. Its noise acts only through the discrete
  sample ``z``, and the estimate is a function of ``z``: ``g(z) = J_softmax^T dy(z)``
  (factorial ``q``, ``C**K`` configurations).
* ``imle`` and ``aimle`` (categorical, Gumbel noise): **exact** up to rounding. Given the
  configuration ``z`` (enumerated), ``dy(z)`` and ``lambda(z)`` are fixed and the targets'
  ``z'_k`` are independent across ``k`` (each depends on ``G_k`` only). Per dimension, the joint
  law of the sample and its target(s) under the shared ``G_k`` comes from
  :func:`verify.moments.quadrature.argmax_joint_law` (``V = 2`` one-sided, ``V = 3``
  two-sided), whose slice at ``z_k`` divided by ``p_k(z_k)`` is the conditional law. So
  ``E[g | z]`` is exact and ``Cov(g | z)`` is block diagonal over ``k``; the mixture over ``z``
  gives mean and covariance.
  Error bound: ``LAW_ERROR`` times the largest weight ``1/w``, per probability used.
* ``gumbel_softmax`` and ``st_gumbel_softmax``:
  **certified** by randomized quasi-Monte Carlo over the noise of one sample
  (:func:`verify.moments.quadrature.rqmc_mean_cov`; 32 scrambled Sobol sets of ``2**11``
  points), with the Student-t half-width at confidence ``1 - 1e-6`` (over all entries,
  propagated to the covariance) as the error bound. (No closed form: the soft sample enters
  smoothly.) Each Gumbel of a category that rarely competes with the top one (``exp(-(max a -
  a_c)) < eps``) is drawn from a defensive mixture with a copy shifted onto the top logit
  (share ``eps = 2**-ceil(log2(2 K C))``), and the points are importance weighted
  (:func:`_mixture_gumbels`): plain RQMC saw no point where ``y (1 - y)`` matters at saturated
  logits and violated its own bound from ``|phi| = 20`` (at ``phi = 50`` it reported mean 0 and
  bound 0 for a true mean of -4e-20); ``tests/test_certificates.py`` checks the bound against
  mpmath quadrature at ``+-50``.

Results are cached per (method, problem, options): the registry-wide tests ask for the same
moments several times.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reference.distributions import log_sigmoid, sigmoid, softmax
from reference.ksubset import gumbel
from reference.objectives import TableObjective

from ..exact import (
    PYTHON_STEP,
    check_budget,
    check_enumeration_budget,
    config_probabilities,
    configurations,
    make_problem,
    mp_configurations,
    mp_mean_cov,
)
from . import Moments
from .quadrature import LAW_ERROR, argmax_joint_law, rqmc_mean_cov

__all__ = ["straight_through_moments", "imle_moments", "gumbel_softmax_moments",
           "st_gumbel_softmax_moments", "moments_from_values", "cached_moments", "grad_at",
           "rqmc_moments", "straight_through_moments_mp", "check_rqmc_budget", "imle_moments_mp"]

_CACHE: dict[tuple, Moments] = {}
_CACHE_MAX = 256


def cached_moments(name: str, dist: Any, params: object, objective: Any, opts: dict, compute) -> Moments:
    p = np.asarray(params, dtype=np.float64)
    d = dist if isinstance(dist, str) else dist.name
    try:
        key = (name, d, p.shape, p.tobytes(), objective.source(), tuple(sorted(opts.items())))
    except (NotImplementedError, AttributeError, TypeError):
        return compute()
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = compute()
    return _CACHE[key]


def moments_from_values(q: np.ndarray, g: np.ndarray, samples: int, shape: tuple[int, ...],
                        method: str) -> Moments:
    """Moments of ``samples``-sample averages of ``g (N, P)`` taken with probabilities
    ``q (N,)``; the range bound is ``max |g - mean|`` over the support."""
    mean = q @ g
    d = g - mean
    # deviations at rounding level are zeros (e.g. an estimate that does not depend on z);
    # "rounding level" per entry, relative to that entry's own scale, so that the small but
    # real deviations of an entry whose values are all tiny (saturated logits) are kept
    scale = np.maximum(np.abs(g).max(axis=0), 1e-300)
    d[np.abs(d) <= 64 * np.finfo(float).eps * scale] = 0.0
    cov = (d * q[:, None]).T @ d / samples
    rb = np.abs(d[q > 0]).max(axis=0)
    return Moments(mean.reshape(shape), 0.5 * (cov + cov.T), method, 0.0, rb.reshape(shape))


def _grad_ops(pr: Any) -> float:
    """Operations of one ``grad_y f`` at one point: the multilinear extension of a table
    contracts the ``C**K`` table once per variable; other objectives' ``relaxed`` is
    elementwise work, a few operations per entry."""
    if type(pr.objective).relaxed is TableObjective.relaxed:
        return float(pr.K) * float(pr.C) ** pr.K
    return 10.0 * pr.K * pr.C


def grad_at(objective: Any, y: np.ndarray) -> np.ndarray:
    """``grad_y f`` at the points ``y``, broadcast to ``y.shape`` (``TableObjective.relaxed``
    drops the batch axes when ``K = 1``)."""
    g = np.broadcast_to(np.asarray(objective.relaxed(y)[1], dtype=np.float64), y.shape)
    if not np.all(np.isfinite(g)):
        raise ValueError(f"the gradient of the objective {objective!r} is not finite at some "
                         "relaxed point; the oracle has no exact answer")
    return g


def _points(dist_name: str, Z: np.ndarray, C: int) -> np.ndarray:
    if dist_name == "categorical":
        return (Z[..., None] == np.arange(C)).astype(np.float64)
    return Z.astype(np.float64)


# ----------------------------------------------------------------- straight-through
def straight_through_moments(dist: Any, params: object, objective: Any, n: int = 1) -> Moments:
    """Exact moments of straight-through with ``n`` samples (enumeration of ``C**K`` configs)."""
    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        P = pr.params.size
        # dy and the pairwise differences (N, K, C, C), g and its deviations (N, P), and the
        # (P, P) product of the deviations
        check_enumeration_budget("straight-through's exact moments", pr.C, pr.K,
                                 floats_per_config=3 * P + pr.K * pr.C * pr.C,
                                 ops_per_config=2 * P * P + 4 * pr.K * pr.C * pr.C,
                                 extra_bytes=16.0 * P * P)
        Z = configurations(pr)
        q = config_probabilities(pr).ravel()
        dy = grad_at(objective, _points(pr.dist.name, Z, pr.C))
        # forms accurate in relative terms at saturated logits: sigmoid(phi) sigmoid(-phi)
        # (not p (1 - p), which is 0 at phi = 50) and p_c sum_c' p_c' (dy_c - dy_c')
        # (not p_c (dy_c - <p, dy>), which cancels for the dominant category)
        if pr.dist.name == "bernoulli":
            g = np.exp(log_sigmoid(pr.params) + log_sigmoid(-pr.params)) * dy
        else:
            p = softmax(pr.params)
            g = p * np.einsum("kd,zkcd->zkc", p, dy[..., :, None] - dy[..., None, :])
        return moments_from_values(q, g.reshape(len(Z), -1), n, pr.params.shape,
                                   "exact: enumeration over z (straight-through is a function of z)")
    return cached_moments("st", dist, params, objective, {"n": n}, compute)


# ------------------------------------------------------------- I-MLE / AIMLE (Gumbel)
def _lambda(params: np.ndarray, dy: np.ndarray, adaptive: bool, lambda_: float,
            beta: float) -> float:
    if not adaptive:
        return float(lambda_)
    nd = math.sqrt(float(np.sum(dy**2)))
    return beta * math.sqrt(float(np.sum(params**2))) / nd if nd > 0 else 0.0


def _shifted_moments(diffs: np.ndarray, wts: np.ndarray, w: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and covariance of the outcomes ``diffs / w`` (``diffs`` ``(n, C)`` small integers,
    ``wts`` ``(n,)`` probabilities summing to 1) in shifted form: ``(base, offset, cov)`` with
    the mean ``base + offset``, ``base = diffs[a] / w`` the likeliest outcome and ``offset``
    and ``cov`` from the deviations ``(diffs - diffs[a]) / w`` (an exact difference, rounded
    once). An entry that the likeliest outcome shares with nearly all the mass has deviations
    of exactly 0 there, so its offset and covariances come from the rare outcomes alone, with
    their own relative accuracy; centring on the rounded mean carries the mean's rounding into
    every product instead."""
    a = int(np.argmax(wts))
    dev = (diffs - diffs[a]) / w
    offset = wts @ dev
    return diffs[a] / w, offset, (dev * wts[:, None]).T @ dev - np.outer(offset, offset)


def imle_moments(dist: Any, params: object, objective: Any, lambda_: float = 1.0,
                 divide_by_lambda: bool = True, S: int = 1, target: str = "one_sided",
                 adaptive: bool = False, beta: float = 1.0) -> Moments:
    """Exact moments of I-MLE / AIMLE on categorical variables with Gumbel noise (module
    docstring): enumeration over ``z``, exact per-dimension joint argmax laws."""
    opts = {"lambda_": lambda_, "divide_by_lambda": divide_by_lambda, "S": S, "target": target,
            "adaptive": adaptive, "beta": beta}

    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        alpha, K, C = pr.params, pr.K, pr.C
        # per configuration: K joint argmax laws of C**(V-1) probabilities, each a Python-level
        # piecewise integration (tens of steps), and two rank-one (P, P) updates
        V = 3 if target == "two_sided" else 2
        check_enumeration_budget("I-MLE/AIMLE's exact moments", C, K,
                                 floats_per_config=2 * K * C,
                                 ops_per_config=K * C ** (V - 1) * 30 * PYTHON_STEP
                                 + 4 * (K * C) ** 2,
                                 extra_bytes=24.0 * (K * C) ** 2)
        Z = configurations(pr)
        q = config_probabilities(pr).ravel()
        dys = grad_at(objective, _points("categorical", Z, C))
        P = K * C
        # covariance by the law of total covariance: within-z blocks plus the spread of the
        # conditional means, both in shifted form (_shifted_moments; the conditional means as
        # base + offset, their spread from differences of bases and of offsets). E[g g^T] -
        # mean mean^T, the first form, gave a variance of -1.7e-21 for a true 2.6e-27
        # (adaptive two-sided AIMLE at tied logits -50); centring on computed means left a
        # covariance of 3.5e-23 for a true -1.1e-28 (the same logits, another table): the
        # conditional means 1/w (1 - 1e-22) round to 1/w or one ulp off, and that ulp times the
        # other entry's spread was the result
        within = np.zeros((P, P))
        bases, offsets, qs = [], [], []
        max_w, n_probs = 0.0, 0
        eye = np.eye(C)
        for z, qz, dy in zip(Z, q, dys, strict=True):
            if qz == 0.0:
                continue
            lam = _lambda(alpha, dy, adaptive, lambda_, beta)
            base, offset = np.zeros(P), np.zeros(P)
            blocks = np.zeros((P, P))
            if lam > 0:
                w = (2 * lam if target == "two_sided" else lam) if divide_by_lambda else 1.0
                max_w = max(max_w, 1.0 / w)
                for kk in range(K):
                    i, a = int(z[kk]), alpha[kk]
                    sl = slice(kk * C, (kk + 1) * C)
                    if target == "two_sided":
                        T = argmax_joint_law(np.stack([a, a + lam * dy[kk], a - lam * dy[kk]]), i)
                        T = T / T.sum()
                        n_probs += C * C
                        diffs = (eye[:, None, :] - eye[None, :, :]).reshape(C * C, C)  # e_j - e_l
                        wts = T.ravel()
                    else:
                        T = argmax_joint_law(np.stack([a, a - lam * dy[kk]]), i)
                        T = T / T.sum()
                        n_probs += C
                        diffs = eye[i][None, :] - eye  # e_i - e_j
                        wts = T
                    base[sl], offset[sl], blocks[sl, sl] = _shifted_moments(diffs, wts, w)
            within += qz * blocks
            bases.append(base)
            offsets.append(offset)
            qs.append(qz)
        Bs, Os, Q = np.array(bases).reshape(-1, P), np.array(offsets).reshape(-1, P), np.array(qs)
        mean = Q @ Bs + Q @ Os
        r = int(np.argmax(Q))
        D = (Bs - Bs[r]) + (Os - Os[r])
        d = Q @ D
        cov = (within + (D * Q[:, None]).T @ D - np.outer(d, d)) / S
        # every probability carries at most LAW_ERROR (relative to its normalisation)
        err = LAW_ERROR * max_w * max(n_probs, 1) * 4
        rb = np.full(P, 2 * max_w) if max_w > 0 else np.zeros(P)
        return Moments(mean.reshape(alpha.shape), 0.5 * (cov + cov.T),
                       "exact: enumeration over z and exact joint argmax laws under shared "
                       "Gumbel noise (piecewise-rational integration)", err,
                       rb.reshape(alpha.shape))
    return cached_moments("imle", dist, params, objective, opts, compute)


# ------------------------------------------------------------------ RQMC-certified ones
def rqmc_moments(fn, dim: int, samples: int, shape: tuple[int, ...], what: str,
                  log2_points: int = 11, randomizations: int = 32,
                  ops_per_point: float = 0.0) -> Moments:
    """Moments of ``samples``-sample averages of ``fn(U)`` by :func:`rqmc_mean_cov`, refused up
    front (:func:`verify.exact.check_budget`) when the points, the ``(P, P)`` second moments of
    every randomization or their products would not fit: ``ops_per_point`` is the caller's
    estimate of one evaluation of ``fn`` at one point (objective, maps), on top of the
    ``P**2`` of the second moment."""
    check_rqmc_budget(what, dim, int(np.prod(shape)), log2_points, randomizations, ops_per_point)
    mean, cov, half = rqmc_mean_cov(fn, dim, log2_points=log2_points,
                                    randomizations=randomizations, confidence=1 - 1e-6)
    return Moments(mean.reshape(shape), cov / samples,
                   f"certified: randomized QMC ({randomizations} scrambled Sobol sets of "
                   f"2^{log2_points} points) over the noise of one sample, {what}; error bound = "
                   "Student-t half-width at confidence 1 - 1e-6", half)


def check_rqmc_budget(what: str, dim: int, P: int, log2_points: int, randomizations: int,
                      ops_per_point: float = 0.0) -> None:
    """The up-front refusal of an RQMC computation over ``dim`` uniforms with ``P`` outputs:
    the points and values of one randomization, ``2 * randomizations`` stored ``(P, P)``
    second moments, and ``P**2 + dim + ops_per_point`` operations per point."""
    points = 2.0 ** log2_points
    check_budget(f"the RQMC moments of {what}",
                 memory_bytes=8.0 * (points * (4.0 * dim + 4.0 * P)
                                     + 2.0 * randomizations * float(P) ** 2),
                 operations=randomizations * points * (float(P) ** 2 + 20.0 * dim + ops_per_point))


def _gs_mixture(pr) -> tuple[np.ndarray, np.ndarray]:
    """Per variable and category, the shift ``s_kc = max_c' a_kc' - a_kc >= 0`` of the logits
    ``a`` (``(0, phi_k)`` for Bernoulli, as the two Gumbels enter ``x = phi + G_1 - G_0``) and
    the defensive mixture weight ``eps_kc``: ``2**-ceil(log2(2 K C))`` where the category
    competes with the top one with probability about ``exp(-s) < eps`` (else 0, no mixture)."""
    a = pr.params if pr.dist.name == "categorical" else \
        np.stack([np.zeros(pr.K), pr.params], axis=1)
    shift = a.max(axis=1, keepdims=True) - a
    eps = 2.0 ** -math.ceil(math.log2(2 * pr.K * pr.C))
    return shift, np.where(np.exp(-shift) < eps, eps, 0.0)


def _mixture_gumbels(U: np.ndarray, shift: np.ndarray, eps: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Gumbels ``G (N, K, C)`` drawn from the defensive mixture ``r = (1 - eps) p + eps
    p(. - shift)`` (``p`` the standard Gumbel density; the first ``1 - eps`` of each uniform maps
    to ``p`` by its inverse CDF, the rest to the shifted copy) and the importance weights
    ``prod p / r <= (1 - eps)^-(K C)``, shape ``(N,)``. The shifted copy puts a share ``eps``
    of the points where category ``c`` competes with the top one, a region of probability about
    ``exp(-shift)`` under ``p`` that unweighted RQMC misses in every randomization (it then
    reported a spread of 0 around a mean of 0 at ``phi = 50``, whose true mean is -4e-20, and
    violated its bound from ``|phi| = 20``)."""
    V = U.reshape((-1,) + shift.shape)
    base = V < 1.0 - eps
    safe = np.where(eps > 0, eps, 1.0)
    v = np.where(base, V / (1.0 - eps), (V - (1.0 - eps)) / safe)
    G = gumbel(np.minimum(v, np.nextafter(1.0, 0.0))) + np.where(base, 0.0, shift)
    # p(g - s) / p(g) = exp(s - expm1(s) exp(-g)): 0 (not NaN) where the exponent overflows
    with np.errstate(over="ignore", invalid="ignore"):
        t = shift - np.expm1(shift) * np.exp(-G)
    ratio = np.exp(np.minimum(np.nan_to_num(t, nan=-np.inf), 700.0))
    w = 1.0 / ((1.0 - eps) + eps * ratio)
    return G, w.reshape(len(V), -1).prod(axis=1)


def _gs_values(pr, objective: Any, U: np.ndarray, tau: float, straight: bool) -> np.ndarray:
    """One sample's Gumbel-Softmax estimate at the mixture's points, as ``[w g, sqrt(w) g]``
    (``w`` the importance weight): RQMC means of the first block are ``E[g]`` and Gram
    matrices of the second ``E[g g^T]``."""
    C = pr.C
    shift, eps = _gs_mixture(pr)
    G, w = _mixture_gumbels(U, shift, eps)
    if pr.dist.name == "bernoulli":
        x = pr.params + (G[..., 1] - G[..., 0])
        y = sigmoid(x / tau)
        point = (x > 0).astype(np.float64) if straight else y
        dy = grad_at(objective, point)
        # y (1 - y) from log-sigmoids: 1 - y rounds to 0 where x / tau > 37
        g = (np.exp(log_sigmoid(x / tau) + log_sigmoid(-x / tau)) * dy / tau).reshape(len(U), -1)
    else:
        x = pr.params + G
        y = softmax(x / tau)
        point = (x.argmax(axis=-1)[..., None] == np.arange(C)).astype(np.float64) if straight \
            else y
        dy = grad_at(objective, point)
        g = (y * np.einsum("...d,...cd->...c", y, dy[..., :, None] - dy[..., None, :])
             / tau).reshape(len(U), -1)
    return np.concatenate([w[:, None] * g, np.sqrt(w)[:, None] * g], axis=1)


def _weighted_rqmc_moments(fn, dim: int, samples: int, shape: tuple[int, ...], what: str,
                           ops_per_point: float) -> Moments:
    """:func:`rqmc_moments` for an ``fn`` returning ``[w g, sqrt(w) g]`` (importance
    sampling): mean from the first block, second moment from the Gram matrix of the second.
    The half-width ``h`` covers every entry of both blocks' means and Gram matrices, so the
    covariance ``E[w g g^T] - mean mean^T`` is within ``h + 2 (|m_1| + |m_2|) h + 2 h^2``."""
    P = int(np.prod(shape))
    log2_points, randomizations = 11, 32
    check_rqmc_budget(what, dim, 2 * P, log2_points, randomizations, ops_per_point)
    mean2, cov2, half = rqmc_mean_cov(fn, dim, log2_points=log2_points,
                                      randomizations=randomizations, confidence=1 - 1e-6)
    m1, m2 = mean2[:P], mean2[P:]
    second = cov2[P:, P:] + np.outer(m2, m2)
    cov = second - np.outer(m1, m1)
    err = half + 2.0 * (float(np.abs(m1).max()) + float(np.abs(m2).max())) * half \
        + 2.0 * half * half
    return Moments(m1.reshape(shape), 0.5 * (cov + cov.T) / samples,
                   f"certified: randomized QMC ({randomizations} scrambled Sobol sets of "
                   f"2^{log2_points} points) over the noise of one sample, {what}, with defensive "
                   "importance sampling of the Gumbels where a category rarely competes; error "
                   "bound = Student-t half-width at confidence 1 - 1e-6, propagated", err)


def gumbel_softmax_moments(dist: Any, params: object, objective: Any, tau: float = 1.0,
                           n: int = 1) -> Moments:
    """Certified (RQMC) moments of Gumbel-Softmax / binary Concrete."""
    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        return _weighted_rqmc_moments(lambda U: _gs_values(pr, objective, U, tau, False),
                                      pr.K * pr.C, n, pr.params.shape, "Gumbel-Softmax",
                                      _grad_ops(pr))
    return cached_moments("gs", dist, params, objective, {"tau": tau, "n": n}, compute)


def st_gumbel_softmax_moments(dist: Any, params: object, objective: Any, tau: float = 1.0,
                              n: int = 1) -> Moments:
    """Certified (RQMC) moments of straight-through Gumbel-Softmax."""
    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        return _weighted_rqmc_moments(lambda U: _gs_values(pr, objective, U, tau, True),
                                      pr.K * pr.C, n, pr.params.shape,
                                      "straight-through Gumbel-Softmax", _grad_ops(pr))
    return cached_moments("stgs", dist, params, objective, {"tau": tau, "n": n}, compute)


def straight_through_moments_mp(dist: Any, params: object, objective: Any, n: int = 1, *,
                                dps: int = 60) -> Moments:
    """:func:`straight_through_moments` in arbitrary precision (``mpmath``, ``dps`` digits)
    from the definition ``g(z) = J_softmax(alpha)^T dy(z)`` (binary: ``p (1 - p) dy``), the
    objective's float64 gradients taken as exact; rounded to float64 at the end. Certifies the
    float64 method at extreme logits on small problems."""
    pr = make_problem(dist, params, objective)
    ctx, rows, configs, qs = mp_configurations(pr, dps)
    dy = grad_at(objective, _points(pr.dist.name, np.array(configs), pr.C))
    gs = []
    for i in range(len(configs)):
        g = []
        for k in range(pr.K):
            if pr.dist.name == "bernoulli":
                p = rows[k][1]
                g.append(p * (1 - p) * ctx.mpf(float(dy[i, k])))
            else:
                s = ctx.fsum(rows[k][c] * ctx.mpf(float(dy[i, k, c])) for c in range(pr.C))
                g.extend(rows[k][c] * (ctx.mpf(float(dy[i, k, c])) - s) for c in range(pr.C))
        gs.append(g)
    mean, cov = mp_mean_cov(ctx, qs, gs)
    return Moments(np.array([float(x) for x in mean]).reshape(pr.params.shape),
                   np.array([[float(x) / n for x in row] for row in cov]), f"mpmath ({dps} digits)")


def _race_pair_mp(ctx: Any, a: list, t: list, i: int, j: int) -> Any:
    """``P(argmax(a + G) = i, argmax(t + G) = j)`` for one standard Gumbel vector ``G``, in
    ``mpmath``. With ``G_c = -log E_c``, ``E_c`` i.i.d. exponential, ``i`` wins for ``a`` iff
    ``E_c > E_i e^{a_c - a_i}`` for every ``c``. For ``i = j`` the probability is
    ``1 / (1 + sum_{c != i} max(e^{a_c - a_i}, e^{t_c - t_i}))``. For ``i != j``, with
    ``alpha_c = e^{a_c - a_i}``, ``beta_c = e^{t_c - t_j}`` and ``r = E_j / E_i``, integrating
    ``E_i`` out leaves ``int dr / S(r)^2`` over ``alpha_j <= r <= 1 / beta_i``, ``S(r) = 1 + r +
    sum_{c != i, j} max(alpha_c, r beta_c)``, piecewise linear between the breakpoints
    ``alpha_c / beta_c``: each piece gives ``(r1 - r0) / (S(r0) S(r1))``."""
    C = len(a)
    if i == j:
        return 1 / (1 + ctx.fsum(max(ctx.exp(a[c] - a[i]), ctx.exp(t[c] - t[i]))
                                 for c in range(C) if c != i))
    al = [ctx.exp(a[c] - a[i]) for c in range(C)]
    be = [ctx.exp(t[c] - t[j]) for c in range(C)]
    lo, hi = al[j], 1 / be[i]
    if not lo < hi:
        return ctx.mpf(0)
    others = [c for c in range(C) if c not in (i, j)]
    cuts = sorted({lo, hi, *[al[c] / be[c] for c in others if lo < al[c] / be[c] < hi]})

    def S(r):
        return 1 + r + ctx.fsum(max(al[c], r * be[c]) for c in others)

    Sv = [S(r) for r in cuts]
    return ctx.fsum((cuts[k + 1] - cuts[k]) / (Sv[k] * Sv[k + 1]) for k in range(len(cuts) - 1))


def _race_mp(ctx: Any, vectors: list, winners: tuple) -> Any:
    """``P(argmax(w^s + G) = winners[s] for every s)`` for logit vectors ``w^s`` (lists of
    ``mpf``) and one standard Gumbel vector ``G``, when at most two winners are distinct.
    With ``E_c = e^{-G_c}`` i.i.d. exponential, ``w`` picks ``k`` iff ``E_c >= E_k e^{w_c -
    w_k}`` for every ``c``; integrating out every non-winner ``m`` gives ``exp(-E_{k_s}
    max_s e^{w^s_m - w^s_{k_s}})`` (the largest of the vectors' thresholds). One winner ``r``:
    ``1 / (1 + sum_{m != r} max_s e^{w^s_m - w^s_r})``. Two, ``r0 < r1``, with ``v = E_{r1} /
    E_{r0}`` (the scale ``E_{r0}`` integrated out): ``int dv / S(v)^2`` with ``S(v) = 1 + v +
    sum_m max(A_m, v B_m)`` (``A_m``, ``B_m`` the largest thresholds of the vectors won by
    ``r0``, ``r1``) over ``max_{s: r0} e^{w^s_{r1} - w^s_{r0}} <= v <= min_{s: r1} (same)``:
    ``(v1 - v0) / (S(v0) S(v1))`` per linear piece (kinks at ``A_m / B_m``)."""
    C = len(vectors[0])
    W = sorted(set(winners))
    if len(W) == 1:
        r = W[0]
        return 1 / (1 + ctx.fsum(max(ctx.exp(w[m] - w[r]) for w in vectors)
                                 for m in range(C) if m != r))
    r0, r1 = W
    by = {r: [w for w, k in zip(vectors, winners, strict=True) if k == r] for r in W}
    ratio = [ctx.exp(w[r1] - w[r0]) for w in vectors]  # e^{w_{r1} - w_{r0}} per vector
    lo = max(c for c, k in zip(ratio, winners, strict=True) if k == r0)
    hi = min(c for c, k in zip(ratio, winners, strict=True) if k == r1)
    if not lo < hi:
        return ctx.mpf(0)
    others = [m for m in range(C) if m not in W]
    A = {m: max(ctx.exp(w[m] - w[r0]) for w in by[r0]) for m in others}
    B = {m: max(ctx.exp(w[m] - w[r1]) for w in by[r1]) for m in others}
    cuts = sorted({lo, hi, *[A[m] / B[m] for m in others if lo < A[m] / B[m] < hi]})
    Sv = [1 + v + ctx.fsum(max(A[m], v * B[m]) for m in others) for v in cuts]
    return ctx.fsum((cuts[k + 1] - cuts[k]) / (Sv[k] * Sv[k + 1]) for k in range(len(cuts) - 1))


def _race_triple_mp(ctx: Any, a: list, s: list, t: list, i: int, j: int, l: int) -> Any:
    """``P(argmax(a + G) = i, argmax(s + G) = j, argmax(t + G) = l)`` for one standard Gumbel
    vector ``G`` (``a``, ``s``, ``t`` lists of ``mpf``, any ``C >= 2``), in ``ctx``'s precision.

    At most two distinct winners: the closed forms of :func:`_race_mp`. Three (``i``, ``j``,
    ``l`` distinct): with ``E_c = e^{-G_c}`` i.i.d. exponential, ``x = E_j / E_i``, ``y = E_l /
    E_i``, ``alpha_c = e^{a_c - a_i}``, ``beta_c = e^{s_c - s_j}``, ``gamma_c = e^{t_c - t_l}``,
    integrating out the non-winners ``m`` and then ``E_i`` (``int u^2 e^{-u S} du = 2 / S^3``)
    leaves ``P = 2 int dx int dy / S(x, y)^3``, ``S = 1 + x + y + sum_m max(alpha_m, x beta_m,
    y gamma_m)``, over ``alpha_j <= x <= 1 / beta_i`` and ``max(alpha_l, x beta_l) <= y <=
    min(1 / gamma_i, x / gamma_j)``. The inner integral is exact: ``S`` is linear in ``y``
    between the kinks ``max(alpha_m, x beta_m) / gamma_m``, and ``int_{y0}^{y1} dy / S^3 = (y1
    - y0) (S0 + S1) / (2 S0^2 S1^2)`` (no division by the slope, so a flat piece needs no
    special case). The outer one is tanh-sinh quadrature (``ctx.quad``) in ``log x``, split at
    every ``x`` where a line of the piece structure or of a change of scale crosses another
    (so the integrand is analytic and of one scale on each interval), each interval rescaled
    so that ``quad``'s absolute stopping rule is relative; ``ArithmeticError`` when its error
    estimate exceeds ``2**-(prec - 24)`` of the result. The float64
    :func:`verify.moments.quadrature.argmax_joint_law` describes the region the same way but
    integrates it in closed form over trapezoids; the marginal identities (sums over ``l`` are
    :func:`_race_pair_mp`, over ``j`` and ``l`` ``softmax(a)_i``) check the description."""
    if len({i, j, l}) < 3:
        return _race_mp(ctx, [a, s, t], (i, j, l))
    C = len(a)
    al = [ctx.exp(a[c] - a[i]) for c in range(C)]
    be = [ctx.exp(s[c] - s[j]) for c in range(C)]
    ga = [ctx.exp(t[c] - t[l]) for c in range(C)]
    others = [m for m in range(C) if m not in (i, j, l)]
    # y-range non-empty iff x lies in (x_lo, x_hi) (U - L is concave in x) and both constants
    # allow it
    if not (al[l] * ga[i] < 1 and be[l] * ga[j] < 1):
        return ctx.mpf(0)
    x_lo, x_hi = max(al[j], al[l] * ga[j]), min(1 / be[i], 1 / (be[l] * ga[i]))
    if not x_lo < x_hi:
        return ctx.mpf(0)

    def inner(x):  # int dy / S(x, y)^3 over the y-range at x, exactly
        lo, hi = max(al[l], x * be[l]), min(1 / ga[i], x / ga[j])
        if not lo < hi:
            return ctx.mpf(0)
        ys = [lo, *sorted(y for y in (max(al[m], x * be[m]) / ga[m] for m in others)
                          if lo < y < hi), hi]
        Sv = [1 + x + y + ctx.fsum(max(al[m], x * be[m], y * ga[m]) for m in others) for y in ys]
        return ctx.fsum((ys[k + 1] - ys[k]) * (Sv[k] + Sv[k + 1]) / (2 * (Sv[k] * Sv[k + 1])**2)
                        for k in range(len(ys) - 1))

    def phi(xi):  # the integrand in xi = log x
        x = ctx.exp(xi)
        return x * inner(x)

    # the monomials of S and of the y-bounds: constants, coefficients of x, of y; the integrand
    # changes form or scale where two of them balance: x = const / x-coefficient, or where a
    # horizontal line y = h crosses a ray y = r x
    consts = [ctx.mpf(1), *[al[m] for m in others]]
    xcoef = [ctx.mpf(1), *[be[m] for m in others]]
    ycoef = [ctx.mpf(1), *[ga[m] for m in others]]
    horiz = [k / g for k in consts for g in ycoef] + [al[l], 1 / ga[i]]
    rays = [b / g for b in xcoef for g in ycoef] + [be[l], 1 / ga[j]]
    crit = [k / b for k in consts for b in xcoef] + [h / r for h in horiz for r in rays]
    pts = sorted({ctx.log(x_lo), ctx.log(x_hi),
                  *[ctx.log(x) for x in crit if x_lo < x < x_hi]})
    total = ctx.mpf(0)
    tol = ctx.ldexp(1, -(ctx.prec - 24))
    for k in range(len(pts) - 1):
        p0, p1 = pts[k], pts[k + 1]
        # phi > 0 strictly inside: its largest value at a few points sets the scale
        scale = (p1 - p0) * max(phi(p0 + (p1 - p0) * f) for f in (0.125, 0.375, 0.5, 0.625, 0.875))
        if scale == 0 and p1 - p0 <= tol * (1 + abs(p0)):
            continue  # two ends of the support equal but for rounding: the y-range is empty
        val, err = ctx.quad(lambda xi: phi(xi) / scale, [p0, p1], error=True)  # noqa: B023
        if not err <= tol * abs(val):
            raise ArithmeticError(f"_race_triple_mp: quadrature error estimate {err} on the "
                                  f"interval [{p0}, {p1}] of log x")
        total += val * scale
    return 2 * total


def imle_moments_mp(dist: Any, params: object, objective: Any, lambda_: float = 1.0,
                    divide_by_lambda: bool = True, S: int = 1, target: str = "one_sided",
                    adaptive: bool = False, beta: float = 1.0, *, dps: int = 80) -> Moments:
    """:func:`imle_moments` in arbitrary precision (``mpmath``, ``dps`` digits), where the joint
    law of the argmaxes under shared Gumbel noise has a closed form evaluated in ``mpmath``:

    * ``C = 2`` (both targets): with ``L = G_1 - G_0`` standard logistic, vector ``w`` picks
      category 1 iff ``L > w_0 - w_1``, so every joint outcome is an interval of ``L`` and its
      probability a difference of sigmoids (a route independent of the float64 method's);
    * ``C >= 3``, one-sided target: the exponential race of :func:`_race_pair_mp` (the
      float64 method's reduction to one ratio variable, here with exact breakpoints and sums
      in ``dps`` digits: it certifies the float64 arithmetic, not the reduction, which
      ``tests/test_perturbation.py`` checks against adaptive quadrature of the Gumbel
      integrals);
    * ``C >= 3``, two-sided target: ``P(j, l | i) = P(argmax(a + G) = i, argmax(a + lambda dy
      + G) = j, argmax(a - lambda dy + G) = l) / p(i)`` by :func:`_race_triple_mp`: closed
      forms where at most two of ``i, j, l`` differ, and for three distinct winners an exact
      inner integral with tanh-sinh quadrature of the outer one (in ``log`` of a ratio of
      exponentials, split where the integrand changes form or scale, its error estimate
      checked against ``2**-(prec - 24)``): another integration than the float64 method's
      closed-form trapezoids, so it certifies the integration and not only its arithmetic.
      The gradient given ``(j, l)`` is ``(e_j - e_l) / (2 lambda)``.

    Enumeration over ``z`` as in the float64 method; ``dy`` (the objective's float64 gradients)
    and ``lambda`` are computed from float64 inputs taken as exact."""
    import mpmath

    pr = make_problem(dist, params, objective)
    if pr.dist.name != "categorical":
        raise ValueError("imle_moments_mp takes categorical logits")
    C = pr.C
    K, P = pr.K, C * pr.K
    # two-sided, C >= 3: per dimension (C - 1)(C - 2) probabilities with three winners, each
    # up to about (C - 2)**2 quadrature intervals of ~300 integrand evaluations of ~C + 5
    # mpmath steps (measured at 80 digits: 6 ms per probability at C = 3, 45 ms at C = 4,
    # 80-130 ms at C = 5; this estimate is 2-4 times those)
    quad = 300 * K * (C - 1) * (C - 2) ** 3 * (C + 5) if target == "two_sided" else 0
    check_enumeration_budget("imle_moments_mp", C, K, floats_per_config=P * dps / 8,
                             ops_per_config=PYTHON_STEP * (P * P + 16 * K * C**3 + quad))
    ctx = mpmath.mp.clone()
    ctx.dps = dps
    _, rows, configs, qs = mp_configurations(pr, dps)
    rows = [[ctx.mpf(x) for x in r] for r in rows]
    qs = [ctx.mpf(x) for x in qs]
    dys = grad_at(objective, _points("categorical", np.array(configs), C))
    alpha = pr.params

    def cdf(t):  # P(L <= t), the logistic CDF
        return 1 / (1 + ctx.exp(-t))

    def interval(lo, hi):  # P(lo < L <= hi)
        return cdf(hi) - cdf(lo) if hi > lo else ctx.mpf(0)

    def side(lo, hi, c, t):  # narrow (lo, hi] to the side of t where category c wins
        return (max(lo, t), hi) if c == 1 else (lo, min(hi, t))

    mean = [ctx.mpf(0)] * P
    second = [[ctx.mpf(0)] * P for _ in range(P)]
    for z, qz, dy in zip(configs, qs, dys, strict=True):
        lam = _lambda(alpha, dy, adaptive, lambda_, beta)
        m = [ctx.mpf(0)] * P
        block = [[ctx.mpf(0)] * P for _ in range(P)]
        if lam > 0:
            w = (2 * lam if target == "two_sided" else lam) if divide_by_lambda else 1.0
            w = ctx.mpf(w)
            for k in range(K):
                i = int(z[k])
                a = [ctx.mpf(float(x)) for x in alpha[k]]
                step = [ctx.mpf(lam) * ctx.mpf(float(x)) for x in dy[k]]
                if C > 2 and target == "two_sided":  # P(targets j, l | sample i), race
                    plus = [a[c] + step[c] for c in range(C)]
                    minus = [a[c] - step[c] for c in range(C)]
                    probs = [(_race_triple_mp(ctx, a, plus, minus, i, j, l) / rows[k][i],
                              [ctx.mpf(int(c == j) - int(c == l)) / w for c in range(C)])
                             for j in range(C) for l in range(C)]
                elif C > 2:  # one-sided: P(target j | sample i) by the exponential race
                    tgt = [a[c] - step[c] for c in range(C)]
                    probs = [(_race_pair_mp(ctx, a, tgt, i, j) / rows[k][i],
                              [ctx.mpf(int(c == i) - int(c == j)) / w for c in range(C)])
                             for j in range(C)]
                if C > 2:
                    for c in range(C):
                        m[C * k + c] = ctx.fsum(p * d[c] for p, d in probs)
                    for c in range(C):
                        for e in range(C):
                            block[C * k + c][C * k + e] = ctx.fsum(
                                p * (d[c] - m[C * k + c]) * (d[e] - m[C * k + e])
                                for p, d in probs)
                    continue
                lo, hi = side(-ctx.inf, ctx.inf, i, a[0] - a[1])
                if target == "two_sided":
                    plus = [a[c] + step[c] for c in range(2)]
                    minus = [a[c] - step[c] for c in range(2)]
                    outcomes = [((j, l), side(*side(lo, hi, j, plus[0] - plus[1]), l,
                                              minus[0] - minus[1]))
                                for j in range(2) for l in range(2)]
                else:
                    tgt = [a[c] - step[c] for c in range(2)]
                    outcomes = [((i, j), side(lo, hi, j, tgt[0] - tgt[1])) for j in range(2)]
                vals = [[ctx.mpf(0)] * 2 for _ in range(2)]
                probs = []
                for (j, l), (a_, b_) in outcomes:
                    diff = [ctx.mpf(int(c == j) - int(c == l)) / w for c in range(2)]
                    probs.append((interval(a_, b_) / rows[k][i], diff))
                for c in range(2):
                    m[2 * k + c] = ctx.fsum(p * d[c] for p, d in probs)
                for c in range(2):
                    for e in range(2):
                        vals[c][e] = ctx.fsum(p * (d[c] - m[2 * k + c]) * (d[e] - m[2 * k + e])
                                              for p, d in probs)
                        block[2 * k + c][2 * k + e] = vals[c][e]
        for a_ in range(P):
            mean[a_] += qz * m[a_]
            for b_ in range(P):
                second[a_][b_] += qz * (block[a_][b_] + m[a_] * m[b_])
    cov = [[(second[a_][b_] - mean[a_] * mean[b_]) / S for b_ in range(P)] for a_ in range(P)]
    return Moments(np.array([float(x) for x in mean]).reshape(alpha.shape),
                   np.array([[float(x) for x in row] for row in cov]),
                   f"mpmath ({dps} digits): logistic closed form of the argmax laws (C = 2), "
                   "exponential race (C >= 3)")
