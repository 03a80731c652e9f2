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
   ``int_a^b dv / S^2 = (b - a) / (S(a) S(b))``; ``d = 3``: the polygon is cut into convex
   pieces on which ``S`` is affine, fan-triangulated, ``int_T dA / S^3 = |T| / (S_1 S_2 S_3)``.
   The only error is float64 rounding (:data:`LAW_ERROR` is a conservative bound).
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


def _clip(poly: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: the part of the convex polygon ``poly (N, 3)`` (rows ``(1, v2, v3)``)
    where ``a . p <= 0``."""
    if len(poly) == 0:
        return poly
    val = poly @ a
    out = []
    N = len(poly)
    for i in range(N):
        p, q = poly[i], poly[(i + 1) % N]
        vp, vq = val[i], val[(i + 1) % N]
        if vp <= 0:
            out.append(p)
        if (vp < 0 < vq) or (vq < 0 < vp):
            out.append(p + (q - p) * (vp / (vp - vq)))
    return np.array(out) if len(out) >= 3 else np.zeros((0, 3))


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 1], poly[:, 2]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


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
    # d == 3: bounding box from the one-variable constraints, then clip by all of them
    lo, hi = np.zeros(3), np.full(3, np.inf)
    for a in cons:
        for c in (1, 2):
            if a[c] != 0 and a[3 - c] == 0:
                if a[c] > 0:
                    hi[c] = min(hi[c], -a[0] / a[c])
                else:
                    lo[c] = max(lo[c], -a[0] / a[c])
    if not (np.isfinite(hi[1:]).all() and lo[1] < hi[1] and lo[2] < hi[2]):
        return 0.0
    poly = np.array([[1, lo[1], lo[2]], [1, hi[1], lo[2]], [1, hi[1], hi[2]], [1, lo[1], hi[2]]])
    for a in cons:
        poly = _clip(poly, a)
        if len(poly) == 0:
            return 0.0
    pieces = [poly]
    for t in terms:  # cut where the max of this term switches
        new = []
        for P in pieces:
            vals = P @ t.T  # (N, V)
            top = vals.max(axis=1)
            if any(np.all(vals[:, c] >= top) for c in range(vals.shape[1])):
                new.append(P)  # one term is the max at every vertex, hence everywhere
                continue
            for c in range(vals.shape[1]):  # T_c - max(others) is concave: try every term
                Q = P
                for s2 in range(len(t)):
                    if s2 != c:
                        Q = _clip(Q, t[s2] - t[c])
                        if len(Q) == 0:
                            break
                if len(Q):
                    new.append(Q)
        pieces = new
    total = 0.0
    for P in pieces:
        Sv = _S(P, 3, terms)
        for i in range(1, len(P) - 1):
            tri = P[[0, i, i + 1]]
            total += _area(tri) / (Sv[0] * Sv[i] * Sv[i + 1])
    return 2.0 * total


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
