"""Exact moments of REINFORCE and REINFORCE-LOO for any ``n``, in closed form.

Both estimators are polynomials in ``n`` i.i.d. samples, so their mean and covariance follow
from moments over a single configuration (enumerated: ``C**K`` terms), never from ``n``-tuples.
With ``s(z) = grad log q(z)``, ``gamma = E[f s]`` (the exact gradient), ``E[s] = 0`` and
``M_a = E[f^a s s^T]``:

* REINFORCE, baseline ``b``: ``g = (1/n) sum_i h(z_i)``, ``h = (f - b) s``, so
  ``E[g] = gamma`` and ``Cov g = (E[(f - b)^2 s s^T] - gamma gamma^T) / n``.
* REINFORCE-LOO: ``g = 1/(n-1) sum_i (f_i - fbar) s_i`` equals the U-statistic
  ``binom(n, 2)^-1 sum_{i<j} H(z_i, z_j)`` with the symmetric kernel
  ``H(x, y) = (f(x) - f(y)) (s(x) - s(y)) / 2``. Hoeffding's decomposition gives
  ``E[g] = gamma`` and ``Cov g = 2 / (n (n-1)) [2 (n-2) Sigma_1 + Sigma_2]`` with
  ``Sigma_1 = Cov(E[H(x, Y)]) = (E[(f - mu)^2 s s^T] - gamma gamma^T) / 4`` and
  ``Sigma_2 = Cov H = M~_2 / 2 + Var(f) E[s s^T] / 2``, where ``mu = E[f]`` and
  ``M~_2 = E[(f - mu)^2 s s^T]``. (The estimator is invariant to adding a constant to ``f``,
  so the formulas are evaluated with ``f - mu``, which is also the stable choice.)

The tests check both against brute-force enumeration over ``n``-tuples on tiny problems.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..exact import (
    PYTHON_STEP,
    Problem,
    check_budget,
    check_enumeration_budget,
    check_enumeration_size,
    config_probabilities,
    exact_gradient,
    make_problem,
    mp_configurations,
    mp_mean_cov,
    score_matrix,
)
from . import Moments

__all__ = ["reinforce_moments", "reinforce_loo_moments", "reinforce_moments_mp",
           "reinforce_loo_moments_mp"]


def _single(problem: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``q`` ``(N,)``, ``f`` ``(N,)`` and scores ``S`` ``(N, P)`` over all configurations,
    refused up front past the oracle's limits (the methods hold about four ``(N, P)`` arrays
    and form ``(P, P)`` Gram matrices from them)."""
    P = problem.params.size
    check_enumeration_budget("the score-function family's exact moments", problem.C, problem.K,
                             floats_per_config=4 * P + 4, ops_per_config=6 * P * P + 10 * P,
                             extra_bytes=32.0 * P * P)
    return (config_probabilities(problem).ravel(), problem.f_table().ravel(),
            score_matrix(problem))


def _weighted_gram(S: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum_z w(z) s(z) s(z)^T``."""
    return (S * w[:, None]).T @ S


def _symmetric(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + a.T)


def reinforce_moments(dist: Any, params: object, objective: Any, n: int = 1,
                      baseline: float = 0.0) -> Moments:
    """Exact mean ``(param shape)`` and covariance ``(P, P)`` of REINFORCE with ``n`` samples."""
    pr = make_problem(dist, params, objective)
    q, f, S = _single(pr)
    fb = f - baseline
    # the mean is the gradient for every constant b (E[s] = 0); the covariance in centred
    # form: both stay accurate in relative terms at saturated logits, where
    # E[h h^T] - gamma gamma^T and sum_z q f s would cancel
    gamma = exact_gradient(pr).ravel()
    dev = fb[:, None] * S - gamma
    cov = _weighted_gram(dev, q) / n
    # g is an average of h(z_i) = (f - b) s, so |g - gamma| <= max_z |h(z)| + |gamma|
    rng = np.abs(fb[:, None] * S).max(axis=0) + np.abs(gamma)
    return Moments(gamma.reshape(pr.params.shape), _symmetric(cov),
                   "exact: closed form from single-configuration moments",
                   range_bound=rng.reshape(pr.params.shape))


def reinforce_loo_moments(dist: Any, params: object, objective: Any, n: int = 2) -> Moments:
    """Exact mean and covariance of REINFORCE-LOO with ``n >= 2`` samples (U-statistic form)."""
    if n < 2:
        raise ValueError(f"REINFORCE-LOO needs n >= 2, got {n}")
    pr = make_problem(dist, params, objective)
    q, f, S = _single(pr)
    fc = f - q @ f
    gamma = exact_gradient(pr).ravel()
    M2 = _weighted_gram(S, q * fc**2)
    M0 = _weighted_gram(S, q)
    var_f = q @ fc**2
    # zeta_1 = Var(h1), h1(x) = (fc(x) s(x) + gamma) / 2, in centred form (no cancellation);
    # zeta_2 = Var(H) = M2/2 + var_f M0/2 is a sum of positive semi-definite terms
    sigma1 = 0.25 * _weighted_gram(fc[:, None] * S - gamma, q)
    sigma2 = 0.5 * M2 + 0.5 * var_f * M0
    cov = 2.0 / (n * (n - 1)) * (2 * (n - 2) * sigma1 + sigma2)
    # g averages H(x, y) = (f(x) - f(y)) (s(x) - s(y)) / 2 over pairs
    h_max = 0.5 * (f.max() - f.min()) * (S.max(axis=0) - S.min(axis=0))
    return Moments(gamma.reshape(pr.params.shape), _symmetric(cov),
                   "exact: U-statistic closed form from single-configuration moments",
                   range_bound=(h_max + np.abs(gamma)).reshape(pr.params.shape))


# ------------------------------------------------------------- arbitrary precision
def _mp_single(pr: Problem, dps: int):
    """``q``, ``f`` and scores ``s`` over all configurations as mpmath numbers."""
    f_table = pr.f_table()
    ctx, rows, configs, qs = mp_configurations(pr, dps)
    fs = [ctx.mpf(float(f_table[z])) for z in configs]
    if pr.dist.name == "bernoulli":
        ss = [[(1 if z[k] == 1 else 0) - rows[k][1] for k in range(pr.K)] for z in configs]
    else:
        ss = [[(1 if z[k] == c else 0) - rows[k][c] for k in range(pr.K) for c in range(pr.C)]
              for z in configs]
    return ctx, qs, fs, ss


def _to_moments(mean, cov, shape, method: str) -> Moments:
    return Moments(np.array([float(x) for x in mean]).reshape(shape),
                   np.array([[float(x) for x in row] for row in cov]), method)


def reinforce_moments_mp(dist: Any, params: object, objective: Any, n: int = 1,
                         baseline: float = 0.0, *, dps: int = 60) -> Moments:
    """:func:`reinforce_moments` in arbitrary precision (``mpmath``, ``dps`` digits), from the
    definition ``mean = sum_z q h``, ``cov = sum_z q (h - mean)(h - mean)^T / n`` with
    ``h = (f - b) s``, rounded to float64 at the end; certifies the float64 method on small
    problems (``C**K`` up to a few hundred)."""
    pr = make_problem(dist, params, objective)
    check_enumeration_budget("reinforce_moments_mp", pr.C, pr.K, floats_per_config=0,
                             ops_per_config=PYTHON_STEP * pr.params.size ** 2)
    ctx, qs, fs, ss = _mp_single(pr, dps)
    b = ctx.mpf(float(baseline))
    hs = [[(f - b) * x for x in s] for f, s in zip(fs, ss, strict=True)]
    mean, cov = mp_mean_cov(ctx, qs, hs)
    cov = [[x / n for x in row] for row in cov]
    return _to_moments(mean, cov, pr.params.shape, f"mpmath ({dps} digits): definition")


def reinforce_loo_moments_mp(dist: Any, params: object, objective: Any, n: int = 2, *,
                             dps: int = 60) -> Moments:
    """:func:`reinforce_loo_moments` in arbitrary precision: the U-statistic variance
    ``2/(n(n-1)) (2(n-2) zeta_1 + zeta_2)`` with ``zeta_1 = Var(E[H | x])`` and
    ``zeta_2 = Var(H)`` computed from their definitions over pairs of configurations,
    ``H(x, y) = (f(x) - f(y)) (s(x) - s(y)) / 2``."""
    if n < 2:
        raise ValueError(f"REINFORCE-LOO needs n >= 2, got {n}")
    pr = make_problem(dist, params, objective)
    check_enumeration_size(pr.C, pr.K)  # before the estimate: C**K may not fit a float
    N, P = pr.C ** pr.K, pr.params.size
    check_budget("reinforce_loo_moments_mp", memory_bytes=8.0 * N * N * P * (dps / 8 + 1),
                 operations=PYTHON_STEP * N * N * P * (P + 4))
    ctx, qs, fs, ss = _mp_single(pr, dps)
    H = [[[(fs[x] - fs[y]) * (ss[x][a] - ss[y][a]) / 2 for a in range(P)] for y in range(N)]
         for x in range(N)]
    pair_q = [qs[x] * qs[y] for x in range(N) for y in range(N)]
    pair_h = [H[x][y] for x in range(N) for y in range(N)]
    mean, zeta2 = mp_mean_cov(ctx, pair_q, pair_h)  # E[H] and Var(H) over pairs
    h1 = [[ctx.fsum(qs[y] * H[x][y][a] for y in range(N)) for a in range(P)] for x in range(N)]
    _, zeta1 = mp_mean_cov(ctx, qs, h1)  # E[h1] = E[H]
    c = ctx.mpf(2) / (n * (n - 1))
    cov = [[c * (2 * (n - 2) * zeta1[a][b] + zeta2[a][b]) for b in range(P)] for a in range(P)]
    return _to_moments(mean, cov, pr.params.shape, f"mpmath ({dps} digits): U-statistic definition")
