"""Exact or certified moments of the straight-through variants (records in
:mod:`reference.estimators.st_variants`): Gumbel-Rao, GST and ReinMax, categorical.

Every result is a :class:`verify.Moments` with its method, error bound (0 when exact up to
rounding) and a range bound. ``n`` samples per replicate divide the covariance by ``n``.

* ``gst`` and ``reinmax``: **exact**, by enumeration of the ``C**K`` configurations. Both are
  functions of the sampled ``z`` alone: GST's perturbation of the logits is a deterministic
  function of ``(alpha, z)`` for both gap choices (the constant gap and ``"p"``,
  ``-log(1 - p_z)/p_z``), and ReinMax uses no noise besides ``z``. So
  ``g(z)`` is computed at every configuration and weighted by ``q(z)``.
* ``gumbel_rao``: enumeration of ``z`` (exact), with the moments of one conditional draw
  **certified** by randomized QMC. Given ``z``, the ``m`` draws are i.i.d., and the draws of
  different variables ``k`` are independent (each uses its own exponentials), while
  ``dy = grad f(onehot(z))`` is fixed. So with ``h_k(E; z) = T(E; alpha_k, z_k)^T dy_k(z)``
  (one draw's gradient for variable ``k``),
  ``E[g | z] = (mu_k(z))_k``, ``mu_k(z) = E_E[h_k]``, and
  ``Cov(g | z) = blockdiag_k(Cov_E(h_k)) / m``; the mixture over ``z`` gives
  ``mean = sum_z q(z) mu(z)`` and
  ``Cov = sum_z q(z) (Cov(g | z) + mu(z) mu(z)^T) - mean mean^T``, all divided by ``n``.
  ``mu_k(z)`` and ``Cov_E(h_k)`` are ``C``-dimensional integrals over the exponentials
  ``E = -log U`` of the conditional construction (module docstring of the reference), taken
  by :func:`verify.moments.quadrature.rqmc_mean_cov` (32 scrambled Sobol sets of ``2**11``
  points; all ``z`` with the same ``z_k`` share the points), with the Student-t half-width
  ``h`` at confidence ``1 - 1e-6`` bounding every entry of ``mu`` and of ``Cov_E``. Propagated
  through the mixture, every entry of the mean is within ``h`` and every entry of the
  covariance within ``h + 2 (max|mu| + max|mean|) h + 2 h^2`` (the error bound reported).
  Consequently the mean does not depend on ``m`` and the variance does not increase with
  ``m``, exactly (the same certified integrals enter, ``m`` only divides the within-``z``
  term). The conditional construction is written here independently of the reference
  (``-log`` of explicit exponential sums).

Range bounds (``|g - mean|`` over the support): with ``r_k(z) = max dy_k - min dy_k``,
``|J(y) dy|_c <= y_c (1 - y_c) r <= r/4`` and ``sum_c |J(y) dy|_c <= r/2``, so one draw's
``|g_kc| <= r_k/(4 tau)`` (detached) or ``r_k/(4 tau) + p_kc r_k/(2 tau)`` (through); averages
keep the bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference.distributions import softmax

from ..exact import (
    PYTHON_STEP,
    check_enumeration_budget,
    config_probabilities,
    configurations,
    make_problem,
    mp_configurations,
    mp_mean_cov,
)
from . import Moments
from .quadrature import rqmc_mean_cov
from .relaxation import cached_moments, check_rqmc_budget, grad_at, moments_from_values

__all__ = ["gumbel_rao_moments", "gst_moments", "reinmax_moments", "gumbel_rao_conditional",
           "gst_moments_mp", "reinmax_moments_mp"]

_TINY = np.finfo(np.float64).tiny
_LOG2_POINTS = 11
_RANDOMIZATIONS = 32


def _onehot(Z: np.ndarray, C: int) -> np.ndarray:
    return (Z[..., None] == np.arange(C)).astype(np.float64)


def _jdy(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``(diag(y) - y y^T) dy`` per row, as ``y_c sum_c' y_c' (dy_c - dy_c')``: accurate in
    relative terms when ``y_c`` is near 1, where ``y_c (dy_c - <y, dy>)`` cancels (at logits
    ``+-50`` it kept no correct digit of a gradient of 1e-22)."""
    return y * np.einsum("...d,...cd->...c", y, dy[..., :, None] - dy[..., None, :])


def _enumerate(dist: Any, params: object, objective: Any, what: str, python_loop: bool = False):
    pr = make_problem(dist, params, objective)
    if pr.dist.name != "categorical":
        raise ValueError("the straight-through variants are defined for categorical logits")
    P = pr.params.size
    # dy, the Jacobian products' pairwise differences (N, K, C, C), g (N, P) and the (P, P)
    # product of the deviations
    check_enumeration_budget(what, pr.C, pr.K, floats_per_config=4 * P + 2 * P * pr.C,
                             ops_per_config=2 * P * P + 8 * P * pr.C
                             + (PYTHON_STEP * pr.K if python_loop else 0.0),
                             extra_bytes=16.0 * P * P)
    Z = configurations(pr)
    q = config_probabilities(pr).ravel()
    dy = grad_at(objective, _onehot(Z, pr.C))  # (N, K, C)
    return pr, Z, q, dy


# ------------------------------------------------------------------------ ReinMax
def reinmax_moments(dist: Any, params: object, objective: Any, tau: float = 1.0,
                    n: int = 1) -> Moments:
    """Exact moments of ReinMax (enumeration of ``z``; module docstring)."""
    def compute() -> Moments:
        pr, Z, q, dy = _enumerate(dist, params, objective, "ReinMax's exact moments")
        alpha = pr.params
        pi0 = softmax(alpha)[None]  # (1, K, C)
        pi1 = 0.5 * (softmax(alpha / tau)[None] + _onehot(Z, pr.C))  # (N, K, C)
        g = 2.0 * _jdy(pi1, dy) - 0.5 * _jdy(pi0, dy)
        return moments_from_values(q, g.reshape(len(Z), -1), n, alpha.shape,
                                   "exact: enumeration over z (ReinMax is a function of z)")
    return cached_moments("reinmax", dist, params, objective, {"tau": tau, "n": n}, compute)


# ---------------------------------------------------------------------------- GST
def _p_gap(a: np.ndarray, i: int) -> float:
    """``-log(1 - p_i) / p_i`` for ``p = softmax(a)``: ``log1p(-p_i)`` when ``p_i`` is small
    (``log`` of a number near 1 would cancel) and the log of the other categories' summed
    probability when ``p_i`` is near 1 (``1 - p_i`` would round to 0)."""
    w = np.exp(a - a.max())
    total = w.sum()
    p = w[i] / total
    if p < 0.5:
        return float(-np.log1p(-p) / p)
    return float(-np.log(np.delete(w, i).sum() / total) / p)


def gst_moments(dist: Any, params: object, objective: Any, tau: float = 1.0,
                gap: float | str = 1.0, n: int = 1) -> Moments:
    """Exact moments of gapped straight-through (enumeration of ``z``; module docstring)."""
    def compute() -> Moments:
        pr, Z, q, dy = _enumerate(dist, params, objective, "GST's exact moments",
                                  python_loop=True)
        alpha, C = pr.params, pr.C
        moved = np.empty(Z.shape + (C,))
        for idx in np.ndindex(*Z.shape):
            k, i = idx[1], int(Z[idx])
            a = alpha[k]
            amax = a.max()
            if gap == "p":
                width = _p_gap(a, i)
            else:
                width = float(gap)
            row = np.minimum(a, amax - width)
            row[i] = amax
            moved[idx] = row
        g = _jdy(softmax(moved / tau), dy) / tau
        return moments_from_values(q, g.reshape(len(Z), -1), n, alpha.shape,
                                   "exact: enumeration over z (GST's perturbation is a "
                                   "function of alpha and z)")
    return cached_moments("gst", dist, params, objective, {"tau": tau, "gap": gap, "n": n},
                          compute)


# --------------------------------------------------------------------- Gumbel-Rao
def _conditional_logits(a: np.ndarray, i: int, E: np.ndarray) -> np.ndarray:
    """``alpha + G`` with ``G`` standard Gumbel given ``argmax = i``, from exponentials
    ``E (N, C)`` (direct formula, no log-space tricks beyond a stable log-sum-exp)."""
    amax = a.max()
    lse = amax + np.log(np.exp(a - amax).sum())
    M = -np.log(E[:, i]) + lse  # (N,)
    # x_c = -log(E_c exp(-a_c) + exp(-M)), written relative to M to avoid overflow
    x = M[:, None] - np.log1p(E * np.exp(M[:, None] - a[None, :]))
    x[:, i] = M
    return x


def gumbel_rao_conditional(a: np.ndarray, i: int, dys: np.ndarray, tau: float, detach: bool,
                           U: np.ndarray) -> np.ndarray:
    """One conditional draw's gradients for one variable: logits ``a (C,)``, sample ``i``,
    gradients ``dys (D, C)`` (one row per configuration sharing ``z_k = i``), uniforms
    ``U (N, C)``; returns ``(N, D, C)``."""
    E = -np.log(np.maximum(U, _TINY))
    x = _conditional_logits(a, i, E)  # (N, C)
    y = softmax(x / tau)[:, None, :]  # (N, 1, C)
    v = _jdy(y, dys[None]) / tau  # (N, D, C)
    if detach:
        return v
    b = np.exp(x - x[:, i:i + 1])[:, None, :]
    p = softmax(a)
    return (1.0 - b) * v + p * (b * v).sum(axis=-1, keepdims=True)


def _gr_parts(dist: Any, params: object, objective: Any, tau: float, detach: bool):
    def compute():
        pr, Z, q, dy = _enumerate(dist, params, objective, "Gumbel-Rao's moments")
        alpha, K, C = pr.params, pr.K, pr.C
        # K * C integrals, each over C uniforms with D * C outputs (D = C**(K-1)
        # configurations share z_k = i): the budget of all of them together
        D_max = len(Z) // C
        check_rqmc_budget("Gumbel-Rao (one conditional draw per variable and category)", C,
                          D_max * C, _LOG2_POINTS, _RANDOMIZATIONS,
                          ops_per_point=(K * C - 1) * (float(D_max * C) ** 2 + 20.0 * C))
        keep = q > 0
        Z, q, dy = Z[keep], q[keep], dy[keep]
        N, P = len(Z), K * C
        mu = np.zeros((N, K, C))
        within = np.zeros((N, K, C, C))  # Cov_E(h_k) per configuration and variable
        half = 0.0
        for k in range(K):
            for i in range(C):
                rows = np.flatnonzero(Z[:, k] == i)
                if rows.size == 0:
                    continue
                dys = dy[rows, k]  # (D, C)
                D = len(rows)

                def fn(U, a=alpha[k], i=i, dys=dys):
                    return gumbel_rao_conditional(a, i, dys, tau, detach, U).reshape(len(U), -1)

                m_, c_, h = rqmc_mean_cov(fn, C, log2_points=_LOG2_POINTS,
                                          randomizations=_RANDOMIZATIONS, confidence=1 - 1e-6)
                half = max(half, h)
                mu[rows, k] = m_.reshape(D, C)
                c4 = c_.reshape(D, C, D, C)
                within[rows, k] = c4[np.arange(D), :, np.arange(D), :]
        r = dy.max(axis=-1) - dy.min(axis=-1)  # (N, K)
        sup = (r / (4 * tau))[..., None] * np.ones(C)
        if not detach:
            sup = sup + softmax(alpha)[None] * (r / (2 * tau))[..., None]
        return q, mu.reshape(N, P), within, half, sup.max(axis=0), (K, C)
    return cached_moments("gr_parts", dist, params, objective, {"tau": tau, "detach": detach},
                          compute)


def gumbel_rao_moments(dist: Any, params: object, objective: Any, tau: float = 1.0, m: int = 1,
                       detach_gumbels: bool = True, n: int = 1) -> Moments:
    """Moments of Gumbel-Rao: exact enumeration of ``z``, certified RQMC for one conditional
    draw (module docstring); the integrals are shared by every ``m`` and ``n``."""
    q, mu, within, half, sup, shape = _gr_parts(dist, params, objective, tau, detach_gumbels)
    K, C = shape
    P = K * C
    mean = q @ mu
    second = (mu * q[:, None]).T @ mu
    blocks = np.einsum("n,nkab->kab", q, within) / m
    for k in range(K):
        sl = slice(k * C, (k + 1) * C)
        second[sl, sl] += blocks[k]
    cov = (second - np.outer(mean, mean)) / n
    err = half + 2.0 * (float(np.abs(mu).max()) + float(np.abs(mean).max())) * half \
        + 2.0 * half * half
    rb = sup.reshape(P) + np.abs(mean)
    version = "detached" if detach_gumbels else "through the conditional Gumbels"
    return Moments(mean.reshape(shape), 0.5 * (cov + cov.T),
                   f"certified: exact enumeration over z; moments of one conditional-Gumbel draw "
                   f"({version}) by randomized QMC ({_RANDOMIZATIONS} scrambled Sobol sets of "
                   f"2^{_LOG2_POINTS} points); error bound = Student-t half-width at confidence "
                   "1 - 1e-6, propagated", err, rb.reshape(shape))


# ------------------------------------------------------------- arbitrary precision
def _mp_softmax(ctx, row: list) -> list:
    m = max(row)
    e = [ctx.exp(x - m) for x in row]
    s = ctx.fsum(e)
    return [x / s for x in e]


def _mp_jdy(ctx, y: list, dy: list) -> list:
    """``(diag(y) - y y^T) dy`` from its definition, in ``ctx``'s precision."""
    s = ctx.fsum(a * b for a, b in zip(y, dy, strict=True))
    return [a * (b - s) for a, b in zip(y, dy, strict=True)]


def _mp_function_of_z(dist: Any, params: object, objective: Any, n: int, dps: int, g_of,
                      what: str) -> Moments:
    """Moments of ``n``-sample averages of ``g(z)`` in arbitrary precision: ``g_of(ctx, alpha,
    z, dy)`` returns the ``K * C`` entries of ``g(z)`` as ``mpf`` (``alpha`` as ``mpf`` rows,
    ``dy`` the objective's float64 gradient at ``onehot(z)`` taken as exact)."""
    pr = make_problem(dist, params, objective)
    if pr.dist.name != "categorical":
        raise ValueError("the straight-through variants are defined for categorical logits")
    P = pr.params.size
    check_enumeration_budget(f"{what} in mpmath", pr.C, pr.K, floats_per_config=P * dps / 8,
                             ops_per_config=PYTHON_STEP * P * (P + 4 * pr.C))
    ctx, _, configs, qs = mp_configurations(pr, dps)
    alpha = [[ctx.mpf(float(a)) for a in row] for row in pr.params]
    dys = grad_at(objective, _onehot(np.array(configs), pr.C))
    gs = [g_of(ctx, alpha, z, [[ctx.mpf(float(x)) for x in row] for row in dy])
          for z, dy in zip(configs, dys, strict=True)]
    mean, cov = mp_mean_cov(ctx, qs, gs)
    return Moments(np.array([float(x) for x in mean]).reshape(pr.params.shape),
                   np.array([[float(x) / n for x in row] for row in cov]),
                   f"mpmath ({dps} digits): {what} from its definition, enumeration over z")


def reinmax_moments_mp(dist: Any, params: object, objective: Any, tau: float = 1.0, n: int = 1,
                       *, dps: int = 60) -> Moments:
    """:func:`reinmax_moments` in arbitrary precision (``mpmath``, ``dps`` digits):
    ``g(z) = 2 J(pi_1) dy - J(pi_0) dy / 2`` with ``pi_0 = softmax(alpha)`` and ``pi_1 =
    (softmax(alpha / tau) + onehot(z)) / 2`` from their definitions; certifies the float64
    method at extreme logits on small problems."""
    t = float(tau)

    def g_of(ctx, alpha, z, dy):
        out = []
        for k, row in enumerate(alpha):
            pi0 = _mp_softmax(ctx, row)
            soft = _mp_softmax(ctx, [a / t for a in row])
            pi1 = [(s + (1 if c == z[k] else 0)) / 2 for c, s in enumerate(soft)]
            out.extend(2 * a - b / 2 for a, b in zip(_mp_jdy(ctx, pi1, dy[k]),
                                                     _mp_jdy(ctx, pi0, dy[k]), strict=True))
        return out

    return _mp_function_of_z(dist, params, objective, n, dps, g_of, "ReinMax")


def gst_moments_mp(dist: Any, params: object, objective: Any, tau: float = 1.0,
                   gap: float | str = 1.0, n: int = 1, *, dps: int = 60) -> Moments:
    """:func:`gst_moments` in arbitrary precision (``mpmath``, ``dps`` digits): the moved
    logits ``min(alpha_c, max(alpha) - width)`` with the sample's own set to ``max(alpha)``,
    ``width`` the constant gap or ``-log(1 - p_z) / p_z``, and ``g = J(softmax(moved / tau))
    dy / tau``, from their definitions."""
    t = float(tau)

    def g_of(ctx, alpha, z, dy):
        out = []
        for k, row in enumerate(alpha):
            i = int(z[k])
            amax = max(row)
            if gap == "p":
                p = _mp_softmax(ctx, row)[i]
                width = -ctx.log1p(-p) / p  # 1 - p would round to 1 for a tiny p
            else:
                width = ctx.mpf(float(gap))
            moved = [min(a, amax - width) for a in row]
            moved[i] = amax
            y = _mp_softmax(ctx, [m / t for m in moved])
            out.extend(v / t for v in _mp_jdy(ctx, y, dy[k]))
        return out

    return _mp_function_of_z(dist, params, objective, n, dps, g_of, "GST")
