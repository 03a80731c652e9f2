"""Exact moments of the multi-sample family (VIMCO, the unordered set estimator) and the exact
gradient of VIMCO's target.

VIMCO
-----
Target ``L = E[log (1/n) sum_i exp f(z_i)]`` over ``n`` i.i.d. samples. Its gradient by the
score function, ``grad L = E[Lhat sum_i s(z_i)] = n E[Lhat s(z_1)]``, is
``n sum_x q(x) s(x) (h(x) - E h)``, ``h(x) = E[log (exp f(x) + sum_{j=2..n} exp f(z_j)) / n]``:
an expectation over the ``n - 1`` other samples, which only depends on their multiset, so it
is a sum over the ``binom(N + n - 2, n - 1)`` multisets of configurations (``N = C**K``)
weighted by their multinomial probabilities, never over the ``N**(n-1)`` ordered tuples
(:func:`vimco_target_gradient`, cost ``N binom(N + n - 2, n - 1)``). :func:`vimco_target_value`
gives ``L`` the same way, for finite differences.

The estimator is a symmetric function of its ``n`` samples, so its exact mean and covariance
are sums over the ``binom(N + n - 1, n)`` multisets (:func:`vimco_moments`); the mean is
computed independently of :func:`vimco_target_gradient`, and the tests compare the two.

Unordered set estimator
-----------------------
The estimate is a function of the unordered sample ``S`` only, so its moments are the sum over
the ``binom(N, n)`` subsets of ``p(S) g(S)``, with ``p(S)`` from the same subset recursion as
the estimator (:func:`reference.estimators.multi_sample.numpy_reference.subset_log_probs`); the
tests check ``p(S)`` against the sum over the ``n!`` orderings of the successive-sampling
probabilities. Cost ``binom(N, n) 2**n n``; refused past :data:`MAX_TERMS`.

Both refuse (``ValueError``, before any work) when the number of multisets or subsets exceeds
:data:`MAX_TERMS`.
"""

from __future__ import annotations

from math import comb, lgamma
from typing import Any

import numpy as np

from reference.estimators.multi_sample.numpy_reference import (
    subset_log_probs,
    unord_weights,
    vimco_signals,
)

from ..exact import config_probabilities, configurations, make_problem, score_matrix
from . import Moments

__all__ = ["MAX_TERMS", "multisets", "vimco_target_value", "vimco_target_gradient",
           "vimco_moments", "unord_moments", "reinforce_wor_moments", "subsets"]

#: the largest number of multisets / subsets the enumerations accept
MAX_TERMS = 2_000_000


def _check_terms(count: int, what: str) -> None:
    if count > MAX_TERMS:
        raise ValueError(f"the exact oracle would enumerate {count:.3g} {what}, more than "
                         f"verify.moments.multi_sample.MAX_TERMS = {MAX_TERMS}; use a smaller "
                         "problem or n, or raise the limit")


def multisets(N: int, m: int) -> np.ndarray:
    """All multisets of size ``m`` from ``range(N)`` as sorted rows, int ``(binom(N+m-1, m), m)``."""
    rows = np.arange(N, dtype=np.int64)[:, None]
    for _ in range(m - 1):
        last = rows[:, -1]
        counts = N - last
        rep = np.repeat(rows, counts, axis=0)
        start = np.repeat(np.cumsum(counts) - counts, counts)
        nxt = np.repeat(last, counts) + np.arange(rep.shape[0]) - start
        rows = np.concatenate([rep, nxt[:, None]], axis=1)
    return rows


def subsets(N: int, m: int) -> np.ndarray:
    """All subsets of size ``m`` from ``range(N)`` as increasing rows, int ``(binom(N, m), m)``."""
    from itertools import combinations

    return np.array(list(combinations(range(N), m)), dtype=np.int64).reshape(-1, m)


def _log_multinomial(rows: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """``log P(multiset)`` of i.i.d. draws: ``log m! - sum log c_x! + sum log q``."""
    m = rows.shape[1]
    run = np.ones(rows.shape)
    for i in range(1, m):
        run[:, i] = np.where(rows[:, i] == rows[:, i - 1], run[:, i - 1] + 1, 1)
    return lgamma(m + 1) - np.log(run).sum(axis=1) + log_q[rows].sum(axis=1)


def _lse(a: np.ndarray, axis: int) -> np.ndarray:
    mx = a.max(axis=axis, keepdims=True)
    return (mx + np.log(np.exp(a - mx).sum(axis=axis, keepdims=True))).squeeze(axis)


def _vimco_h(pr, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``h(x)`` for every configuration and ``q(x)``."""
    f = pr.f_table().ravel()
    q = config_probabilities(pr).ravel()
    log_q = np.log(q) if np.all(q > 0) else np.log(np.maximum(q, 1e-320))
    N = f.size
    _check_terms(N * comb(N + n - 2, n - 1), "(configuration, multiset) pairs")
    rows = multisets(N, n - 1)
    w = np.exp(_log_multinomial(rows, log_q))  # sums to 1
    others = f[rows]  # (M, n-1)
    h = np.empty(N)
    for x in range(N):
        vals = np.concatenate([np.full((rows.shape[0], 1), f[x]), others], axis=1)
        h[x] = w @ (_lse(vals, 1) - np.log(n))
    return h, q


def vimco_target_value(dist: Any, params: object, objective: Any, n: int = 2) -> float:
    """``L = E[log (1/n) sum_i exp f(z_i)]`` exactly (sum over multisets)."""
    pr = make_problem(dist, params, objective)
    h, q = _vimco_h(pr, n)
    return float(q @ h)


def vimco_target_gradient(dist: Any, params: object, objective: Any, n: int = 2) -> np.ndarray:
    """``grad L = n sum_x q(x) s(x) (h(x) - E h)`` (module docstring), parameter shape."""
    pr = make_problem(dist, params, objective)
    h, q = _vimco_h(pr, n)
    S = score_matrix(pr)
    return (n * ((q * (h - q @ h)) @ S)).reshape(pr.params.shape)


def _moments_from(weights: np.ndarray, G: np.ndarray, shape: tuple, method: str) -> Moments:
    mean = weights @ G
    dev = G - mean
    cov = (dev * weights[:, None]).T @ dev
    rng = np.abs(dev).max(axis=0)
    return Moments(mean.reshape(shape), 0.5 * (cov + cov.T), method, range_bound=rng.reshape(shape))


def vimco_moments(dist: Any, params: object, objective: Any, n: int = 2) -> Moments:
    """Exact mean and covariance of VIMCO: a sum over the ``binom(N + n - 1, n)`` multisets of
    samples with their multinomial probabilities (the estimate is symmetric in its samples)."""
    pr = make_problem(dist, params, objective)
    f = pr.f_table().ravel()
    q = config_probabilities(pr).ravel()
    log_q = np.log(np.maximum(q, 1e-320))
    N = f.size
    _check_terms(comb(N + n - 1, n), "multisets")
    rows = multisets(N, n)
    w = np.exp(_log_multinomial(rows, log_q))
    sig = vimco_signals(f[rows])  # (M, n)
    S = score_matrix(pr)  # (N, P)
    G = np.einsum("mi,mip->mp", sig, S[rows])
    return _moments_from(w, G, pr.params.shape,
                         "exact: sum over multisets of samples (multinomial weights)")


def _sets(pr, n: int):
    """Every ``n``-subset ``(M, n)``, its log-probabilities ``lp`` ``(M, n)``, the log mass
    outside it ``(M,)``, ``log p(S)`` ``(M,)``, the subset recursion ``(M, 2**n)`` and the
    ``log q`` of every configuration."""
    lq = pr.dist.category_log_probs(pr.params)  # (K, C)
    Z = configurations(pr)
    log_q = np.zeros(Z.shape[0])
    for k in range(pr.K):
        log_q = log_q + lq[k, Z[:, k]]
    N = log_q.size
    if n > N:
        raise ValueError(f"n = {n} exceeds the C**K = {N} configurations")
    _check_terms(comb(N, n), "subsets")
    rows = subsets(N, n)
    lp = log_q[rows]
    outside = np.broadcast_to(log_q, (rows.shape[0], N)).copy()
    np.put_along_axis(outside, rows, -np.inf, axis=1)
    mx = outside.max(axis=1)
    fin = np.isfinite(mx)
    safe = np.where(fin, mx, 0.0)
    with np.errstate(divide="ignore"):
        log_rest = np.where(fin, safe + np.log(np.exp(outside - safe[:, None]).sum(axis=1)), mx)
    logG = subset_log_probs(lp, log_rest)
    return rows, lp, log_rest, logG, log_q


def unord_moments(dist: Any, params: object, objective: Any, n: int = 2) -> Moments:
    """Exact mean and covariance of the unordered set estimator: a sum over the
    ``binom(N, n)`` subsets ``S`` of ``p(S) g(S)``, ``p(S)`` by the subset recursion."""
    pr = make_problem(dist, params, objective)
    f = pr.f_table().ravel()
    rows, lp, log_rest, logG, _ = _sets(pr, n)
    wts = unord_weights(lp, log_rest, f[rows])  # (M, n)
    G = np.einsum("mi,mip->mp", wts, score_matrix(pr)[rows])
    return _moments_from(np.exp(logG[:, -1]), G, pr.params.shape,
                         "exact: sum over subsets with their without-replacement probabilities")


def reinforce_wor_moments(dist: Any, params: object, objective: Any, n: int = 2,
                          baseline: float = 0.0) -> Moments:
    """Exact mean and covariance of REINFORCE without replacement (Horvitz-Thompson weights):
    a sum over the ``binom(N, n)`` subsets; the inclusion probabilities are the sums of
    ``p(S)`` over the subsets containing each configuration (linear, not log, domain here)."""
    pr = make_problem(dist, params, objective)
    f = pr.f_table().ravel()
    rows, lp, _, logG, log_q = _sets(pr, n)
    pS = np.exp(logG[:, -1])
    incl = np.zeros(log_q.size)
    np.add.at(incl, rows.ravel(), np.repeat(pS, n))
    wts = np.exp(lp) / incl[rows] * (f[rows] - baseline)
    G = np.einsum("mi,mip->mp", wts, score_matrix(pr)[rows])
    return _moments_from(pS, G, pr.params.shape,
                         "exact: sum over subsets, Horvitz-Thompson weights with exact inclusion "
                         "probabilities")
