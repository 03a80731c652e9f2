"""The k-subset distribution ``p(z) ∝ exp(theta·z)`` over binary ``z`` with ``sum(z) = k``.

Shapes: scores ``theta`` float64 ``(..., n)``; a configuration ``z`` is int64 ``(..., n)`` with
entries in {0, 1} and exactly ``k`` ones; ``1 <= k <= n``.

Dynamic programming in log space, ``O(n k)`` per problem (Ahmed et al., SIMPLE, ICLR 2023,
arXiv 2210.01941, section 3; the same recursion as the "conditional Poisson" sampler):

* forward table ``L[j, m] = log sum_{z_0..z_{j-1}, |z| = m} exp(theta·z)``:
  ``L[0, 0] = 0``, ``L[0, m > 0] = -inf``, ``L[j, m] = lae(L[j-1, m], L[j-1, m-1] + theta_{j-1})``
  with ``lae(a, b) = max + log1p(exp(min - max))`` (``-inf`` when both are ``-inf``);
  ``log Z = L[n, k]``.
* backward table ``Bk[j, m]``: the same over items ``j..n-1``;
  marginals ``mu_i = sum_m exp(L[i, m] + theta_i + Bk[i+1, k-1-m] - log Z)``.
* covariance ``Cov(z) = d mu / d theta`` (the Jacobian SIMPLE needs): ``Cov_ii = mu_i (1 - mu_i)``
  and ``Cov_ij = mu_i (mu^(i)_j - mu_j)`` for ``j != i``, where ``mu^(i)`` are the marginals of
  the ``(k-1)``-subset distribution on the items other than ``i`` (the law of ``z`` given
  ``z_i = 1``). ``O(n^2 k)``.

Exact sampling from uniforms ``u`` of shape ``(..., n)`` (the documented mapping every backend
follows): with ``r = k`` still to choose, for ``j = n-1, ..., 0``: if ``r = 0`` then ``z_j = 0``;
else ``p_j = exp(theta_j + L[j, r-1] - L[j+1, r])`` (the probability that item ``j`` is chosen
given that ``r`` items are chosen among ``0..j``), ``z_j = 1[u_j < p_j]``, ``r -= z_j``. When
``r = j + 1`` the recursion gives ``p_j = 1`` exactly, so exactly ``k`` items are chosen.

MAP (top-k): ``z_i = 1`` iff ``rank_i < k`` with ``rank_i = #{j : x_j > x_i or (x_j = x_i and
j < i)}`` (ties go to the lower index). Perturb-and-MAP with Gumbel noise (Gumbel top-k) samples
a *different* distribution (sampling without replacement with probabilities ``softmax(theta)``),
not ``p``; ``tests/test_ksubset.py`` shows the difference with the same chi-square test.

Sum-of-Gamma noise (Niepert, Minervini, Franceschi, I-MLE, NeurIPS 2021, arXiv 2106.01798,
eq. for the k-subset family): ``eps = (tau / k) (sum_{i=1..s} Gamma(1/k, scale k/i) - log s)``.
Mapping from uniforms (chosen for this project): ``u`` of shape ``(..., s, n)``, the ``i``-th
Gamma draw is ``(k / i) * scipy.special.gammaincinv(1/k, u[..., i-1, :])`` (inverse CDF). Every
backend calls :func:`sum_of_gamma_noise` on the host (there is no ``gammaincinv`` in Numba);
the kernels take the resulting perturbations.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from scipy.special import gammaincinv

from ._validate import float_array, int_config_array, positive_int

__all__ = [
    "check_k",
    "log_partition",
    "forward_table",
    "marginals",
    "covariance",
    "sample",
    "top_k",
    "enumerate_subsets",
    "subset_log_probs",
    "score",
    "gumbel",
    "sum_of_gamma_noise",
]

#: smallest positive normal float64: the Gumbel transform uses max(u, TINY) so u = 0 is finite
TINY = 2.2250738585072014e-308


def check_k(k: object, n: int) -> int:
    """Validate the subset size: an integer with ``1 <= k <= n``."""
    if k is None:
        raise ValueError("the k-subset distribution needs the option k (subset size)")
    k = positive_int(k, "k", 1)
    if k > n:
        raise ValueError(f"k must be <= n = {n}, got k = {k}")
    return k


def _theta(theta: object) -> np.ndarray:
    t = float_array(theta, "theta")
    if t.ndim < 1 or t.shape[-1] < 1:
        raise ValueError(f"theta must have shape (..., n) with n >= 1, got {t.shape}")
    return t


# ------------------------------------------------------------------ scalar DP (one problem)
def _lae(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` as ``max + log1p(exp(min - max))``; ``-inf`` if both are."""
    m = a if a > b else b
    if m == -math.inf:
        return -math.inf
    lo = b if a > b else a
    return m + math.log1p(math.exp(lo - m))


def _forward(theta: np.ndarray, k: int, skip: int = -1) -> np.ndarray:
    """Forward table ``L`` of shape ``(n+1, k+1)`` for one problem; item ``skip`` is left out
    (its row repeats the previous one)."""
    n = theta.shape[0]
    L = np.full((n + 1, k + 1), -math.inf)
    L[0, 0] = 0.0
    for j in range(1, n + 1):
        for m in range(k + 1):
            if j - 1 == skip:
                L[j, m] = L[j - 1, m]
            elif m == 0:
                L[j, m] = L[j - 1, m]
            else:
                L[j, m] = _lae(L[j - 1, m], L[j - 1, m - 1] + theta[j - 1])
    return L


def _backward(theta: np.ndarray, k: int, skip: int = -1) -> np.ndarray:
    """Backward table ``Bk[j, m]`` over items ``j..n-1``, shape ``(n+1, k+1)``."""
    n = theta.shape[0]
    Bk = np.full((n + 1, k + 1), -math.inf)
    Bk[n, 0] = 0.0
    for j in range(n - 1, -1, -1):
        for m in range(k + 1):
            if j == skip or m == 0:
                Bk[j, m] = Bk[j + 1, m]
            else:
                Bk[j, m] = _lae(Bk[j + 1, m], Bk[j + 1, m - 1] + theta[j])
    return Bk


def _marginals_one(theta: np.ndarray, k: int, skip: int = -1) -> np.ndarray:
    n = theta.shape[0]
    mu = np.zeros(n)
    if k == 0:
        return mu
    L, Bk = _forward(theta, k, skip), _backward(theta, k, skip)
    logz = L[n, k]
    for i in range(n):
        if i == skip:
            continue
        acc = 0.0
        for m in range(k):
            acc += math.exp(L[i, m] + theta[i] + Bk[i + 1, k - 1 - m] - logz)
        mu[i] = acc
    return mu


def _covariance_one(theta: np.ndarray, k: int) -> np.ndarray:
    n = theta.shape[0]
    mu = _marginals_one(theta, k)
    cov = np.empty((n, n))
    for i in range(n):
        cond = _marginals_one(theta, k - 1, skip=i)  # law of z given z_i = 1
        for j in range(n):
            cov[i, j] = mu[i] * (1.0 - mu[i]) if j == i else mu[i] * (cond[j] - mu[j])
    return cov


def _rows(theta: np.ndarray) -> np.ndarray:
    return theta.reshape(-1, theta.shape[-1])


def _per_row(fn, t: np.ndarray, tail: tuple[int, ...]) -> np.ndarray:
    """``fn`` on every row of ``t (..., n)``, stacked to ``(..., *tail)`` (also for no rows)."""
    rows = _rows(t)
    if rows.shape[0] == 0:
        return np.zeros(t.shape[:-1] + tail)
    return np.stack([fn(row) for row in rows]).reshape(t.shape[:-1] + tail)


# ------------------------------------------------------------------------- public API
def forward_table(theta: object, k: int) -> np.ndarray:
    """The forward table ``L`` (module docstring), float64 of shape ``(..., n+1, k+1)``."""
    t = _theta(theta)
    k = check_k(k, t.shape[-1])
    return _per_row(lambda row: _forward(row, k), t, (t.shape[-1] + 1, k + 1))


def log_partition(theta: object, k: int) -> np.ndarray:
    """``log Z = log sum_{|z| = k} exp(theta·z)``, shape ``(...)``; ``O(n k)``, log space."""
    L = forward_table(theta, k)
    return L[..., -1, -1]


def marginals(theta: object, k: int) -> np.ndarray:
    """Exact marginals ``mu_i = p(z_i = 1)``, shape ``(..., n)`` (forward-backward)."""
    t = _theta(theta)
    k = check_k(k, t.shape[-1])
    return _per_row(lambda row: _marginals_one(row, k), t, (t.shape[-1],))


def covariance(theta: object, k: int) -> np.ndarray:
    """``Cov(z) = d mu / d theta`` (symmetric), shape ``(..., n, n)``; ``O(n^2 k)``."""
    t = _theta(theta)
    n = t.shape[-1]
    k = check_k(k, n)
    return _per_row(lambda row: _covariance_one(row, k), t, (n, n))


def sample_from_table(theta: np.ndarray, L: np.ndarray, u: np.ndarray, k: int) -> np.ndarray:
    """Sequential conditional sampling for one problem: ``theta (n,)``, forward table ``L``,
    uniforms ``u (M, n)`` -> int64 ``z (M, n)`` (vectorized over the ``M`` samples)."""
    n = theta.shape[0]
    M = u.shape[0]
    z = np.zeros((M, n), dtype=np.int64)
    r = np.full(M, k, dtype=np.int64)
    for j in range(n - 1, -1, -1):
        active = r > 0
        ra = np.where(active, r, 1)
        p = np.exp(theta[j] + L[j, ra - 1] - L[j + 1, ra])
        take = active & (u[:, j] < p)
        z[:, j] = take
        r = r - take
    return z


def sample(theta: object, u: object, k: int) -> np.ndarray:
    """Exact samples of the k-subset distribution from uniforms.

    ``theta``: ``(*batch, n)``; ``u``: ``(*batch, *sample, n)`` in [0, 1). Returns int64 ``z``
    of the shape of ``u`` (mapping in the module docstring).
    """
    t = _theta(theta)
    n = t.shape[-1]
    k = check_k(k, n)
    u = float_array(u, "u")
    batch = t.shape[:-1]
    if u.ndim < t.ndim or u.shape[: len(batch)] != batch or u.shape[-1] != n:
        raise ValueError(f"u must have shape (*batch, *sample, n) = ({batch}, ..., {n}), got {u.shape}")
    if u.size and (u.min() < 0.0 or u.max() >= 1.0):
        raise ValueError("u must lie in [0, 1)")
    tr = _rows(t)
    ur = u.reshape(tr.shape[0], -1, n)
    z = np.stack([sample_from_table(tr[b], _forward(tr[b], k), ur[b], k) for b in range(tr.shape[0])])
    return z.reshape(u.shape)


def top_k(x: object, k: int) -> np.ndarray:
    """MAP of the k-subset distribution with scores ``x (..., n)``: int64 ``(..., n)``.

    ``z_i = 1[rank_i < k]``, ``rank_i = #{j : x_j > x_i or (x_j = x_i and j < i)}``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    xi, xj = x[..., :, None], x[..., None, :]
    lower = np.arange(n)[None, :] < np.arange(n)[:, None]  # [i, j]: j < i
    rank = np.sum((xj > xi) | ((xj == xi) & lower), axis=-1)
    return (rank < k).astype(np.int64)


def enumerate_subsets(n: int, k: int) -> np.ndarray:
    """All ``binom(n, k)`` subsets as int64 rows of shape ``(binom(n, k), n)``, in the
    lexicographic order of ``itertools.combinations(range(n), k)``."""
    n = positive_int(n, "n")
    k = check_k(k, n)
    combos = list(combinations(range(n), k))
    Z = np.zeros((len(combos), n), dtype=np.int64)
    for r, c in enumerate(combos):
        Z[r, list(c)] = 1
    return Z


def subset_log_probs(theta: object, k: int, Z: np.ndarray | None = None) -> np.ndarray:
    """``log p(z) = theta·z - log Z`` for the rows of ``Z`` (default: all subsets), one problem."""
    t = _theta(theta)
    if t.ndim != 1:
        raise ValueError("subset_log_probs takes one problem: theta of shape (n,)")
    Z = enumerate_subsets(t.shape[0], k) if Z is None else Z
    return Z @ t - float(log_partition(t, k))


def score(theta: object, z: object, k: int) -> np.ndarray:
    """``grad_theta log p(z) = z - mu(theta)``; ``z (*batch, *sample, n)`` -> float64 same shape."""
    t = _theta(theta)
    z = int_config_array(z, "z", t.shape[-1], 2)
    mu = marginals(t, k)
    extra = z.ndim - t.ndim
    return z - mu.reshape(t.shape[:-1] + (1,) * extra + t.shape[-1:])


# ------------------------------------------------------------------------------ noise
def gumbel(u: np.ndarray) -> np.ndarray:
    """Standard Gumbel from uniforms: ``G = -log(-log(max(u, TINY)))`` (finite at ``u = 0``)."""
    return -np.log(-np.log(np.maximum(np.asarray(u, dtype=np.float64), TINY)))


def sum_of_gamma_noise(u: np.ndarray, k: int, tau: float) -> np.ndarray:
    """Sum-of-Gamma perturbations from uniforms ``u (..., s, n)`` -> ``eps (..., n)``.

    ``eps = (tau / k) (sum_{i=1..s} (k / i) gammaincinv(1/k, u_i) - log s)``: the ``i``-th
    term is a Gamma(shape ``1/k``, scale ``k/i``) draw by the inverse CDF.
    """
    u = np.asarray(u, dtype=np.float64)
    s = u.shape[-2]
    i = np.arange(1, s + 1, dtype=np.float64)[:, None]
    g = gammaincinv(1.0 / k, u) * (k / i)
    return (tau / k) * (g.sum(axis=-2) - math.log(s))
