"""Integrals over Gumbel noise for the perturbation estimators: exact argmax laws and RQMC.

1. **Joint law of argmaxes under shared Gumbel noise.** For ``V`` logit vectors
   ``w^1, ..., w^V`` (each ``(C,)``) and one standard Gumbel vector ``G`` (``C`` i.i.d.
   entries), :func:`argmax_joint_law` returns ``P[i_1, ..., i_V] =
   P(argmax(w^s + G) = i_s for every s)`` for ``V <= 3``. Derivation (ours; checked in
   ``tests/test_perturbation.py`` against :func:`argmax_joint_law_quad`, against the marginal
   laws ``softmax(w^s)`` and against Monte Carlo): let ``W`` be the set of distinct winners,
   ``d = |W|``, ``r_0`` its first element. Write ``G_r = x + t_r`` for ``r`` in ``W``
   (``t_{r_0} = 0``) and ``v_r = exp(-t_r)``. Every non-winner ``m`` must satisfy
   ``G_m <= min_s (G_{i_s} + w^s_{i_s} - w^s_m)``; integrating those Gumbel CDFs and then ``x``
   (``int u^{d-1} e^{-u S} du = (d-1)!/S^d``) leaves

       P = (d-1)! * integral over the region of dv / S(v)^d,
       S(v) = sum_{r in W} v_r + sum_{m not in W} max_s v_{i_s} exp(w^s_m - w^s_{i_s}),

   over the free ``v_r`` (``r != r_0``), on the polytope where each vector's winner beats the
   other winners, ``v_{i_s} <= v_r exp(w^s_{i_s} - w^s_r)``. ``S`` is piecewise linear, so the
   integral is exact: ``d = 1``: ``P = 1/S``; ``d = 2``: segments between the kinks,
   ``int_a^b dv / S^2 = (b - a) / (S(a) S(b))``; ``d = 3``: the polygon is cut into vertical
   strips, each a stack of trapezoids on which ``S`` is affine, each trapezoid two triangles,
   ``int_T dA / S^3 = |T| / (S_1 S_2 S_3)`` (:func:`_prob_three`).
   The only error is float64 rounding (:data:`LAW_ERROR` is a conservative bound), and every
   term is a product of positive factors, so probabilities keep their relative accuracy
   (``tests/test_certificates.py`` compares them with a 60-digit evaluation by another route).
   For ``V = 2`` this is the joint law of I-MLE's sample and target, and for ``V = 3`` of
   AIMLE's sample and its two targets.

2. :func:`argmax_joint_law_quad`: the same probabilities by numerical integration over the
   Gumbel density (``scipy.integrate``), an independent check for small ``C``.

3. :func:`rqmc_mean_cov`: randomized quasi-Monte Carlo (scrambled Sobol points,
   ``scipy.stats.qmc``) for estimators whose noise enters smoothly or through high-dimensional
   maps (Gumbel-Softmax, Sum-of-Gamma), with a confidence half-width from independent
   randomizations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import product

import numpy as np
from scipy import integrate, stats
from scipy.stats import qmc

from ..exact import PYTHON_STEP, check_budget

__all__ = ["argmax_joint_law", "argmax_joint_prob", "argmax_joint_law_quad", "rqmc_mean_cov",
           "LAW_ERROR"]

#: bound on the absolute rounding error of one probability from :func:`argmax_joint_law`
LAW_ERROR = 1e-12


# ------------------------------------------------------------------ exact argmax laws
def _setup(vectors: np.ndarray, winners: tuple[int, ...]):
    W = sorted(set(winners))
    idx = {r: a for a, r in enumerate(W)}  # coordinate of v_r; coordinate 0 is v_{r0} = 1
    d = len(W)
    C = vectors.shape[1]
    # half-planes  a . v <= 0 with v = (v_{r0}=1, free...)
    cons = []
    for s, om in enumerate(winners):
        for r in W:
            if r != om:
                a = np.zeros(d)
                a[idx[om]] += 1.0
                a[idx[r]] -= math.exp(vectors[s, om] - vectors[s, r])
                cons.append(a)
    # S terms: for each non-winner m, the linear terms c_s v_{i_s}
    terms = []
    for m in range(C):
        if m in idx:
            continue
        t = np.zeros((len(winners), d))
        for s, om in enumerate(winners):
            t[s, idx[om]] = math.exp(vectors[s, m] - vectors[s, om])
        terms.append(t)
    return d, cons, terms


def _S(points: np.ndarray, d: int, terms: list[np.ndarray]) -> np.ndarray:
    """``S`` at points ``(N, d)`` (coordinate 0 equal to 1)."""
    out = points.sum(axis=1)
    for t in terms:
        out = out + (points @ t.T).max(axis=1)
    return out


def _prob_three(w: np.ndarray, i: int, j: int, l: int) -> float:
    """``P`` for three distinct winners (``w[0]`` won by ``i``, ``w[1]`` by ``j``, ``w[2]`` by
    ``l``) by vertical strips: with ``x = v_j / v_i``, ``y = v_l / v_i``, ``alpha_c = e^{w^0_c
    - w^0_i}``, ``beta_c = e^{w^1_c - w^1_j}``, ``gamma_c = e^{w^2_c - w^2_l}``, the region is
    ``alpha_j <= x <= 1 / beta_i``, ``max(alpha_l, beta_l x) <= y <= min(1 / gamma_i, x /
    gamma_j)`` and ``S = 1 + x + y + sum_m max(alpha_m, beta_m x, gamma_m y)``. Between
    consecutive ``x`` where two of the region's bounds and the kinks ``y = max(alpha_m, beta_m
    x) / gamma_m`` of ``S`` cross (or one of them turns), those lines keep their order, so the
    strip is a stack of trapezoids with vertical sides on which ``S`` is affine; each is two
    triangles with a vertical side, ``int_T dA / S^3 = |T| / (S_1 S_2 S_3)``. Every vertex is
    computed from its own lines and every area is a product of a width and a height, so each
    term has a small relative error. (The former route, a bounding box clipped by every
    constraint and fan-triangulated, had an absolute error only: at logits +-50 it returned
    2.4e-44 for a probability of 1.3e-74 and 2.2169e-23 for 2.2160e-23, conditional laws wrong
    by 39% and 1.5e-5 after the division by ``p(i)``.)"""
    C = w.shape[1]
    al, be, ga = np.exp(w[0] - w[0, i]), np.exp(w[1] - w[1, j]), np.exp(w[2] - w[2, l])
    m_ = [m for m in range(C) if m not in (i, j, l)]
    if not (al[l] * ga[i] < 1.0 and be[l] * ga[j] < 1.0):
        return 0.0
    x_lo, x_hi = max(al[j], al[l] * ga[j]), min(1.0 / be[i], 1.0 / (be[l] * ga[i]))
    if not x_lo < x_hi:
        return 0.0
    # the lines y = h and y = r x of the bounds and of the kinks of S in y, and the x where a
    # kink's own form switches; their crossings are the strips' edges
    horiz = np.r_[al[m_] / ga[m_], al[l], 1.0 / ga[i]]
    rays = np.r_[be[m_] / ga[m_], be[l], 1.0 / ga[j]]
    with np.errstate(over="ignore"):  # a crossing beyond float64 is outside (x_lo, x_hi)
        crit = np.r_[al[m_] / be[m_], np.outer(horiz, 1.0 / rays).ravel()]
    xs = np.unique(np.r_[x_lo, x_hi, crit[(crit > x_lo) & (crit < x_hi)]])

    def S(x: float, y: float) -> float:
        return 1.0 + x + y + sum(max(al[m], be[m] * x, ga[m] * y) for m in m_)

    def lines(x: float):
        # bottom, the kinks of S in y, top at x; the kinks' order is fixed within a strip
        kinks = [max(al[m], be[m] * x) / ga[m] for m in m_]
        return max(al[l], be[l] * x), kinks, min(1.0 / ga[i], x / ga[j])

    total = 0.0
    for x0, x1 in zip(xs[:-1], xs[1:], strict=True):
        xm = 0.5 * (x0 + x1)
        lo, kinks, hi = lines(xm)
        inside = sorted((k for k in range(len(m_)) if lo < kinks[k] < hi), key=lambda k: kinks[k])
        ys = []
        for x in (x0, x1):
            b, kk, t = lines(x)
            ys.append([b, *[kk[k] for k in inside], t])
        for k in range(len(ys[0]) - 1):
            b0, b1, t0, t1 = ys[0][k], ys[1][k], ys[0][k + 1], ys[1][k + 1]
            Sa, Sb, Sc, Sd = S(x0, b0), S(x1, b1), S(x1, t1), S(x0, t0)
            # divided one factor at a time: the product of three S can overflow at e^{+-200}
            total += 0.5 * (x1 - x0) * (max(t1 - b1, 0.0) / Sa / Sb / Sc
                                        + max(t0 - b0, 0.0) / Sa / Sc / Sd)
    return float(2.0 * total)


def argmax_joint_prob(vectors: object, winners: tuple[int, ...]) -> float:
    """``P(argmax(w^s + G) = winners[s] for all s)`` for ``vectors (V, C)``, ``V <= 3``."""
    w = np.asarray(vectors, dtype=np.float64)
    d, cons, terms = _setup(w, tuple(int(i) for i in winners))
    if d == 1:
        return float(1.0 / _S(np.ones((1, 1)), 1, terms)[0])
    if d == 2:
        lo, hi = 0.0, math.inf
        for a in cons:  # a0 + a1 v <= 0
            if a[1] > 0:
                hi = min(hi, -a[0] / a[1])
            elif a[1] < 0:
                lo = max(lo, -a[0] / a[1])
            elif a[0] > 0:
                return 0.0
        if not lo < hi:
            return 0.0
        brk = [lo, hi]
        for t in terms:  # kinks where two terms of one max are equal
            for s1 in range(len(t)):
                for s2 in range(s1 + 1, len(t)):
                    diff = t[s1] - t[s2]
                    if diff[1] != 0:
                        v = -diff[0] / diff[1]
                        if lo < v < hi:
                            brk.append(v)
        b = np.unique(np.array(brk))
        Sb = _S(np.stack([np.ones_like(b), b], axis=1), 2, terms)
        return float(np.sum((b[1:] - b[:-1]) / (Sb[1:] * Sb[:-1])))
    return _prob_three(w, *(int(i) for i in winners))  # d == 3: V == 3, distinct


def argmax_joint_law(vectors: object, first: int | None = None) -> np.ndarray:
    """The joint law ``(C,) * V`` of the argmaxes of ``vectors (V, C)`` (``V <= 3``) under one
    shared Gumbel vector. With ``first`` given, only the slice ``P[first, ...]`` is computed
    (shape ``(C,) * (V - 1)``), the others being left out."""
    w = np.asarray(vectors, dtype=np.float64)
    if w.ndim != 2 or not 1 <= w.shape[0] <= 3 or w.shape[1] < 2 or not np.isfinite(w).all():
        raise ValueError(f"vectors must be finite of shape (V, C) with V <= 3, C >= 2, got {w.shape}")
    V, C = w.shape
    # C**V (or C**(V-1)) probabilities, each tens of Python-level steps over O(C V) terms
    count = float(C) ** (V if first is None else V - 1)
    check_budget("argmax_joint_law", memory_bytes=8.0 * count + 64.0 * C * V,
                 operations=count * (30 * PYTHON_STEP + 50.0 * C * V))
    if first is None:
        out = np.zeros((C,) * V)
        for tup in product(range(C), repeat=V):
            out[tup] = argmax_joint_prob(w, tup)
        return out
    out = np.zeros((C,) * (V - 1))
    for tup in product(range(C), repeat=V - 1):
        out[tup] = argmax_joint_prob(w, (first,) + tup)
    return out


def argmax_joint_law_quad(vectors: object, winners: tuple[int, ...]) -> float:
    """The probability of :func:`argmax_joint_prob` by nested adaptive quadrature over the
    winners' Gumbel values (``scipy.integrate.quad``), an independent check; at most two
    distinct winners. With ``g_0`` the first winner's value and ``g_1 - g_0`` confined to the
    interval ``[lo, hi]`` where each vector's winner beats the others, the integrand is
    ``prod_{r in W} f(g_r) prod_{m not in W} F(min_s (g_{i_s} + w^s_{i_s} - w^s_m))``
    (``f``, ``F`` the Gumbel density and CDF)."""
    w = np.asarray(vectors, dtype=np.float64)
    W = sorted(set(int(i) for i in winners))
    C = w.shape[1]
    if len(W) > 2:
        raise ValueError("argmax_joint_law_quad takes at most two distinct winners")

    def log_f(g: float) -> float:
        return -g - math.exp(-g)

    def log_rest(g: dict) -> float:
        out = 0.0
        for m in range(C):
            if m not in g:
                x = min(g[om] + w[s, om] - w[s, m] for s, om in enumerate(winners))
                out += -math.exp(-x) if x > -700 else -math.inf
        return out

    opts = {"epsabs": 1e-14, "epsrel": 1e-12, "limit": 200}
    if len(W) == 1:
        r = W[0]
        return integrate.quad(lambda a: math.exp(log_f(a) + log_rest({r: a})), -8.0, 60.0, **opts)[0]
    r0, r1 = W
    lo, hi = -math.inf, math.inf  # bounds on g1 - g0
    for s, om in enumerate(winners):
        other = r1 if om == r0 else r0
        bound = w[s, om] - w[s, other]  # g_om - g_other >= -bound
        if om == r0:
            hi = min(hi, bound)
        else:
            lo = max(lo, -bound)
    if not lo < hi:
        return 0.0

    def inner(a: float) -> float:
        fn = lambda b: math.exp(log_f(a) + log_f(b) + log_rest({r0: a, r1: b}))  # noqa: E731
        return integrate.quad(fn, max(a + lo, -8.0), min(a + hi, 60.0), **opts)[0] \
            if max(a + lo, -8.0) < min(a + hi, 60.0) else 0.0

    return integrate.quad(inner, -8.0, 60.0, **opts)[0]


# --------------------------------------------------------------------------------- RQMC
def rqmc_mean_cov(fn: Callable[[np.ndarray], np.ndarray], dim: int, *, log2_points: int = 12,
                  randomizations: int = 16, seed: int = 0, confidence: float = 1 - 1e-9
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean and covariance of ``fn(U)`` for ``U`` uniform on ``[0, 1)^dim`` by RQMC.

    ``fn`` maps points ``(N, dim)`` to values ``(N, P)``. Each of ``randomizations``
    independent scrambled Sobol sets of ``2**log2_points`` points gives estimates of ``E[g]``
    and ``E[g g^T]``; their spread gives a Student-t half-width at ``confidence`` (default
    two-sided ``1 - 1e-9``). Returns ``(mean (P,), cov (P, P), half_width)``, the half-width
    covering every entry of the mean and of the covariance (whose error is at most the
    second-moment half-width plus ``2 |mean| h + h^2``).
    """
    means, seconds = [], []
    for r in range(randomizations):
        eng = qmc.Sobol(dim, scramble=True, seed=np.random.default_rng([seed, r]))
        U = eng.random_base2(log2_points)
        U = np.minimum(U, np.nextafter(1.0, 0.0))
        g = np.asarray(fn(U), dtype=np.float64)
        means.append(g.mean(axis=0))
        seconds.append(g.T @ g / g.shape[0])
    M, S2 = np.array(means), np.array(seconds)
    q = stats.t.ppf(0.5 + confidence / 2, randomizations - 1) / math.sqrt(randomizations)
    hm = q * float(M.std(axis=0, ddof=1).max())
    hs = q * float(S2.std(axis=0, ddof=1).max())
    mean = M.mean(axis=0)
    cov = S2.mean(axis=0) - np.outer(mean, mean)
    half = max(hm, hs + 2 * float(np.abs(mean).max()) * hm + hm * hm)
    return mean, 0.5 * (cov + cov.T), half
