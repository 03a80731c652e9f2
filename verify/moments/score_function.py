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

from ..exact import Problem, config_probabilities, make_problem, score_matrix
from . import Moments

__all__ = ["reinforce_moments", "reinforce_loo_moments"]


def _single(problem: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``q`` ``(N,)``, ``f`` ``(N,)`` and scores ``S`` ``(N, P)`` over all configurations."""
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
    gamma = S.T @ (q * fb)
    cov = (_weighted_gram(S, q * fb**2) - np.outer(gamma, gamma)) / n
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
    gamma = S.T @ (q * fc)
    M2 = _weighted_gram(S, q * fc**2)
    M0 = _weighted_gram(S, q)
    var_f = q @ fc**2
    sigma1 = 0.25 * (M2 - np.outer(gamma, gamma))
    sigma2 = 0.5 * M2 + 0.5 * var_f * M0
    cov = 2.0 / (n * (n - 1)) * (2 * (n - 2) * sigma1 + sigma2)
    # g averages H(x, y) = (f(x) - f(y)) (s(x) - s(y)) / 2 over pairs
    h_max = 0.5 * (f.max() - f.min()) * (S.max(axis=0) - S.min(axis=0))
    return Moments(gamma.reshape(pr.params.shape), _symmetric(cov),
                   "exact: U-statistic closed form from single-configuration moments",
                   range_bound=(h_max + np.abs(gamma)).reshape(pr.params.shape))
