"""Exact moments of NVIL, MuProp and double control variates (records in
:mod:`reference.estimators.control_variates`).

The noise of all three enters only through ``n`` i.i.d. discrete samples, so every moment
is exact (rounding only), from sums over single configurations, pairs and triples (``C**K``,
``C**2K``, ``C**3K`` terms), never ``n``-tuples.

* ``nvil``: REINFORCE with the baseline ``b + c``, scaled by ``k = 1/max(1, sqrt(v))``, so
  ``E[g] = k gamma`` and ``Cov g = k^2 Cov_REINFORCE`` (the closed forms of
  :mod:`verify.moments.score_function`).
* ``muprop``: ``g = (1/n) sum_i h(z_i) + J^T grad f(mu)`` with ``h(z) = (f(z) - f(mu) -
  grad f(mu) . (x(z) - mu)) s(z)``, an average of i.i.d. terms plus a constant: mean and
  covariance by enumeration over ``z`` (covariance divided by ``n``).
* ``double_cv``: expanding ``c_i`` and the leave-one-out means, ``g = sum_i A(z_i) +
  sum_{i != j} B(z_i, z_j) + sum_{i, j, k distinct} T(z_i, z_j, z_k)`` with (``s``, ``d``,
  ``f`` at the arguments, ``a = alpha_cv``, ``p(1 - p)`` elementwise)::

      A(x)       = f(x) s(x) / n - a p (1 - p) d(x) / n
      B(x, y)    = [-f(y) s(x) + a (d(y) . s(x)) s(x) - a (d(x) . s(y)) s(x) / (n - 1)] / (n (n - 1))
      T(x, y, w) = -a (d(w) . s(y)) s(x) / (n (n - 1)^2)

  so ``g`` is a U-statistic of degree ``m = 3`` (``m = 2`` when ``n = 2``: no triples) with
  the symmetric kernel ``h = binom(n, m) [sum A / binom(n-1, m-1) + sum_{ordered pairs} B /
  binom(n-2, m-2) + sum_{orderings} T]``. Hoeffding's decomposition gives ``E[g] = E[h]`` and
  ``Cov g = binom(n, m)^-1 sum_{c=1..m} binom(m, c) binom(n-m, m-c) zeta_c``,
  ``zeta_c = Cov E[h | first c arguments]``, each an exact sum over ``c``-tuples of
  configurations. Memory ``C**3K x K`` floats: ``K <= 6`` in practice.

The tests check every method against brute force over ``n``-tuples on tiny problems.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reference.distributions import Distribution, log_sigmoid, sigmoid, softmax

from ..exact import (
    PYTHON_STEP,
    check_budget,
    check_enumeration_budget,
    check_enumeration_size,
    config_probabilities,
    make_problem,
    mp_configurations,
    mp_mean_cov,
    score_matrix,
)
from . import Moments
from .relaxation import cached_moments, grad_at, moments_from_values
from .score_function import reinforce_moments, reinforce_moments_mp

__all__ = ["nvil_moments", "muprop_moments", "double_cv_moments", "u_statistic_moments",
           "nvil_moments_mp", "muprop_moments_mp", "double_cv_moments_mp"]

#: largest ``N**m * P`` (configurations to the kernel degree, times parameters) accepted
MAX_KERNEL_ENTRIES = 50_000_000


def nvil_moments(dist: Any, params: object, objective: Any, n: int = 1, baseline: float = 0.0,
                 c: float = 0.0, v: float = 1.0) -> Moments:
    """Exact mean and covariance of NVIL for the given state ``(c, v)``: REINFORCE with the
    baseline ``baseline + c``, scaled by ``1 / max(1, sqrt(v))``."""
    m = reinforce_moments(dist, params, objective, n=n, baseline=baseline + c)
    k = 1.0 / max(1.0, math.sqrt(v))
    return Moments(k * m.mean, k * k * m.cov,
                   "exact: closed form from single-configuration moments (REINFORCE with "
                   "baseline b + c, scaled by 1/max(1, sqrt(v)))",
                   range_bound=None if m.range_bound is None else k * m.range_bound)


def _mean_jvp(dist_name: str, params: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``J^T w`` of the mean ``p(params)``, accurate in relative terms at saturated logits:
    ``sigmoid(phi) sigmoid(-phi) w`` from log-probabilities (``p (1 - p)`` is 0 at ``phi =
    50``) and ``p_c sum_c' p_c' (w_c - w_c')`` (``p_c (w_c - <p, w>)`` cancels for the dominant
    category)."""
    if dist_name == "bernoulli":
        return np.exp(log_sigmoid(params) + log_sigmoid(-params)) * w
    p = softmax(params)
    return p * np.einsum("...d,...cd->...c", p, w[..., :, None] - w[..., None, :])


def muprop_moments(dist: Any, params: object, objective: Any, n: int = 1) -> Moments:
    """Exact mean and covariance of MuProp with ``n`` samples (enumeration over ``z``)."""
    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        P = pr.params.size
        check_enumeration_budget("MuProp's exact moments", pr.C, pr.K,
                                 floats_per_config=6 * P, ops_per_config=2 * P * P + 10 * P,
                                 extra_bytes=16.0 * P * P)
        bern = pr.dist.name == "bernoulli"
        mu = sigmoid(pr.params) if bern else softmax(pr.params)
        f_mu = float(np.asarray(objective.relaxed(mu)[0], dtype=np.float64))
        d_mu = grad_at(objective, mu)
        q = config_probabilities(pr).ravel()
        f = pr.f_table().ravel()
        S = score_matrix(pr)  # (N, P): x(z) - mu
        linear = S @ d_mu.ravel()
        h = (f - f_mu - linear)[:, None] * S
        # an objective linear in y makes the bracket vanish: keep its rounding out of the
        # covariance (the bracket cancels terms of size |f| + |f(mu)| + |linear|)
        cancel = (np.abs(f) + abs(f_mu) + np.abs(linear))[:, None] * np.abs(S)
        h[np.abs(h) <= 64 * np.finfo(float).eps * cancel] = 0.0
        corr = _mean_jvp(pr.dist.name, pr.params, d_mu)
        g = h + corr.ravel()[None, :]
        return moments_from_values(q, g, n, pr.params.shape,
                                   "exact: enumeration over z (MuProp averages a function of "
                                   "one sample, plus a constant)")
    return cached_moments("muprop", dist, params, objective, {"n": n}, compute)


def u_statistic_moments(q: np.ndarray, h: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(P,)`` and covariance ``(P, P)`` of the U-statistic ``binom(n, m)^-1 sum_{i_1 <
    ... < i_m} h(z_{i_1}, ..., z_{i_m})`` of ``n >= m`` i.i.d. draws with probabilities
    ``q (N,)``, for a symmetric kernel given on the grid ``h (N,) * m + (P,)``, ``m`` in {1, 2,
    3} (Hoeffding's decomposition)."""
    m = h.ndim - 1
    if not 1 <= m <= 3 or n < m:
        raise ValueError(f"need a kernel of degree 1..3 and n >= degree, got {m} and {n}")
    conditional = [h]  # conditional[j]: E[h | first m - j arguments]
    for _ in range(m):
        conditional.append(np.tensordot(conditional[-1], q, axes=([conditional[-1].ndim - 2],
                                                                   [0])))
    mean = conditional[-1]
    cov = np.zeros((h.shape[-1],) * 2)
    for c in range(1, m + 1):
        hc = conditional[m - c] - mean  # (N,) * c + (P,)
        w = q
        for _ in range(c - 1):
            w = np.multiply.outer(w, q)
        flat = hc.reshape(-1, h.shape[-1])
        zeta = (flat * w.reshape(-1)[:, None]).T @ flat
        cov += math.comb(m, c) * math.comb(n - m, m - c) / math.comb(n, m) * zeta
    return mean, 0.5 * (cov + cov.T)


def _double_cv_kernel(f: np.ndarray, S: np.ndarray, D: np.ndarray, pq: np.ndarray, n: int,
                      a: float) -> np.ndarray:
    """The symmetric kernel of double CV's U-statistic (module docstring) on the grid of
    configurations: ``(N,) * m + (K,)`` with ``m = min(n, 3)``."""
    m = min(n, 3)
    A = (f[:, None] * S - a * pq[None, :] * D) / n  # (N, K)
    DS = S @ D.T  # DS[i, j] = d(x_j) . s(x_i)
    B = (-f[None, :, None] * S[:, None, :] + a * DS[:, :, None] * S[:, None, :]
         - a * DS.T[:, :, None] * S[:, None, :] / (n - 1)) / (n * (n - 1))  # B[i, j]
    if m == 2:
        return math.comb(n, 2) * ((A[:, None] + A[None, :]) / (n - 1) + B + B.transpose(1, 0, 2))
    T = -a * S[:, None, None, :] * DS[None, :, :, None] / (n * (n - 1) ** 2)  # T[i, j, k]
    perms = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
    t_sum = sum(T.transpose(p + (3,)) for p in perms)
    pairs = (B[:, :, None] + B[:, None, :] + B[None, :, :] + B.transpose(1, 0, 2)[:, :, None]
             + B.transpose(1, 0, 2)[:, None, :] + B.transpose(1, 0, 2)[None, :, :])
    singles = A[:, None, None] + A[None, :, None] + A[None, None, :]
    return math.comb(n, 3) * (singles / math.comb(n - 1, 2) + pairs / (n - 2) + t_sum)


def double_cv_moments(dist: Any, params: object, objective: Any, n: int = 2,
                      alpha_cv: float = 1.0) -> Moments:
    """Exact mean and covariance of double control variates (Bernoulli, ``n >= 2``): a
    U-statistic of degree ``min(n, 3)`` (module docstring)."""
    if n < 2:
        raise ValueError(f"double control variates need n >= 2, got {n}")

    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        if pr.dist.name != "bernoulli":
            raise ValueError("double_cv is defined for Bernoulli variables only")
        N, K = 2**pr.K, pr.K
        if N ** min(n, 3) * K > MAX_KERNEL_ENTRIES:
            raise ValueError(f"double_cv moments need (2**{K})**{min(n, 3)} x {K} kernel entries; "
                             f"K = {K} is too large for the exact oracle (raise "
                             "verify.moments.control_variates.MAX_KERNEL_ENTRIES = "
                             f"{MAX_KERNEL_ENTRIES} deliberately to try)")
        entries = float(N) ** min(n, 3) * K
        # the kernel and about six temporaries of its size; the Hoeffding sums are K**2 per
        # tuple of each degree
        check_budget("double CV's exact moments", memory_bytes=8.0 * 8 * entries,
                     operations=40.0 * entries + float(N) ** min(n, 3) * K * K)
        q = config_probabilities(pr).ravel()
        f = pr.f_table().ravel()
        S = score_matrix(pr)
        Z = Distribution.enumerate_configs(K, 2).astype(np.float64)
        D = grad_at(objective, Z).reshape(N, K)
        # p (1 - p) from log-probabilities: 1 - p rounds to 0 at phi = 50
        pq = np.exp(log_sigmoid(pr.params) + log_sigmoid(-pr.params))
        h = _double_cv_kernel(f, S, D, pq, n, float(alpha_cv))
        mean, cov = u_statistic_moments(q, h, n)
        # g averages h over tuples, so |g - E g| <= max |h - E g| over the grid
        rb = np.abs(h.reshape(-1, K) - mean).max(axis=0)
        return Moments(mean.reshape(pr.params.shape), cov,
                       f"exact: U-statistic of degree {min(n, 3)}, Hoeffding decomposition over "
                       "tuples of configurations", range_bound=rb.reshape(pr.params.shape))
    return cached_moments("double_cv", dist, params, objective, {"n": n, "alpha_cv": alpha_cv},
                          compute)


# ------------------------------------------------------------- arbitrary precision
def _mp_to_moments(mean, cov, shape, scale: float, method: str) -> Moments:
    return Moments(np.array([float(x) for x in mean]).reshape(shape),
                   np.array([[float(x) * scale for x in row] for row in cov]), method)


def nvil_moments_mp(dist: Any, params: object, objective: Any, n: int = 1,
                    baseline: float = 0.0, c: float = 0.0, v: float = 1.0, *,
                    dps: int = 60) -> Moments:
    """:func:`nvil_moments` in arbitrary precision: REINFORCE's definition in ``mpmath``
    (:func:`verify.moments.score_function.reinforce_moments_mp`) with the baseline ``b + c``,
    scaled by ``1 / max(1, sqrt(v))``."""
    m = reinforce_moments_mp(dist, params, objective, n=n, baseline=baseline + c, dps=dps)
    k = 1.0 / max(1.0, math.sqrt(v))
    return Moments(k * m.mean, k * k * m.cov, m.method + ", scaled")


def muprop_moments_mp(dist: Any, params: object, objective: Any, n: int = 1, *,
                      dps: int = 60) -> Moments:
    """:func:`muprop_moments` in arbitrary precision (``mpmath``, ``dps`` digits), from the
    definition ``g(z) = [f(z) - f(mu) - grad f(mu) . (x(z) - mu)] (x(z) - mu) + J^T grad f(mu)``
    with ``mu`` the exact mean; ``f(mu)`` and ``grad f(mu)`` are the objective's float64 values
    at the float64 ``mu`` (what the float64 method and the estimator use), taken as exact."""
    pr = make_problem(dist, params, objective)
    P = pr.params.size
    check_enumeration_budget("muprop_moments_mp", pr.C, pr.K, floats_per_config=P * dps / 8,
                             ops_per_config=PYTHON_STEP * P * (P + 4))
    bern = pr.dist.name == "bernoulli"
    mu_f = sigmoid(pr.params) if bern else softmax(pr.params)
    f_mu = float(np.asarray(objective.relaxed(mu_f)[0], dtype=np.float64))
    d_mu = grad_at(objective, mu_f).ravel()
    ctx, rows, configs, qs = mp_configurations(pr, dps)
    fs = pr.f_table()
    mu = [rows[k][1] for k in range(pr.K)] if bern else \
        [rows[k][c] for k in range(pr.K) for c in range(pr.C)]
    d = [ctx.mpf(float(x)) for x in d_mu]
    if bern:
        corr = [m * (1 - m) * x for m, x in zip(mu, d, strict=True)]
    else:
        corr = []
        for k in range(pr.K):
            sl = slice(k * pr.C, (k + 1) * pr.C)
            inner = ctx.fsum(m * x for m, x in zip(mu[sl], d[sl], strict=True))
            corr.extend(m * (x - inner) for m, x in zip(mu[sl], d[sl], strict=True))
    gs = []
    for z in configs:
        x = [ctx.mpf(int(v)) for v in z] if bern else \
            [ctx.mpf(int(z[k] == c)) for k in range(pr.K) for c in range(pr.C)]
        s_ = [a - b for a, b in zip(x, mu, strict=True)]
        bracket = ctx.mpf(float(fs[z])) - f_mu - ctx.fsum(a * b for a, b in zip(d, s_, strict=True))
        gs.append([bracket * a + b for a, b in zip(s_, corr, strict=True)])
    mean, cov = mp_mean_cov(ctx, qs, gs)
    return _mp_to_moments(mean, cov, pr.params.shape, 1.0 / n,
                          f"mpmath ({dps} digits): MuProp's definition, enumeration over z")


def double_cv_moments_mp(dist: Any, params: object, objective: Any, n: int = 2,
                         alpha_cv: float = 1.0, *, dps: int = 60) -> Moments:
    """:func:`double_cv_moments` in arbitrary precision (``mpmath``, ``dps`` digits) by brute
    force over all ``(2**K)**n`` ordered ``n``-tuples of configurations, each evaluated from the
    estimator's definition (leave-one-out means of ``f + c_i`` and of ``grad f``, module
    docstring of :mod:`reference.estimators.control_variates`): independent of the
    U-statistic kernel of :func:`double_cv_moments`. Tiny problems only (``2**(K n)`` tuples)."""
    import itertools

    if n < 2:
        raise ValueError(f"double control variates need n >= 2, got {n}")
    pr = make_problem(dist, params, objective)
    if pr.dist.name != "bernoulli":
        raise ValueError("double_cv is defined for Bernoulli variables only")
    K = pr.K
    check_enumeration_size(2, K)  # before the estimate: 2**K may not fit a float
    tuples = float(2 ** K) ** n
    check_budget("double_cv_moments_mp", memory_bytes=8.0 * tuples * K * (dps / 8 + 1),
                 operations=PYTHON_STEP * tuples * (n * n * K + K * K))
    ctx, rows, configs, qs = mp_configurations(pr, dps)
    fs = pr.f_table()
    p = [rows[k][1] for k in range(K)]
    ds = grad_at(objective, np.array(configs, dtype=np.float64))
    a_cv = ctx.mpf(float(alpha_cv))
    weights, values = [], []
    for tup in itertools.product(range(len(configs)), repeat=n):
        s_ = [[ctx.mpf(int(v)) - p[k] for k, v in enumerate(configs[i])] for i in tup]
        d = [[ctx.mpf(float(x)) for x in ds[i]] for i in tup]
        f = [ctx.mpf(float(fs[configs[i]])) for i in tup]
        d_sum = [ctx.fsum(d[i][k] for i in range(n)) for k in range(K)]
        a = [f[i] + a_cv * ctx.fsum((d_sum[k] - d[i][k]) / (n - 1) * s_[i][k] for k in range(K))
             for i in range(n)]
        a_bar = ctx.fsum(a) / n
        g = [ctx.fsum((a[i] - a_bar) * s_[i][k] for i in range(n)) / (n - 1)
             - a_cv * p[k] * (1 - p[k]) * d_sum[k] / n for k in range(K)]
        weights.append(ctx.fprod(qs[i] for i in tup))
        values.append(g)
    mean, cov = mp_mean_cov(ctx, weights, values)
    return _mp_to_moments(mean, cov, pr.params.shape, 1.0,
                          f"mpmath ({dps} digits): brute force over n-tuples")
