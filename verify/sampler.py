"""Does a framework's sampler draw the exact law? (``check_sampler``)

A *sampler* is any callable ``sampler(params, N, seed) -> z`` that returns ``N`` i.i.d.
configurations as an integer array of shape ``(N, K)``: for ``"bernoulli"`` logits ``phi (K,)``
entries in {0, 1}; for ``"categorical"`` logits ``alpha (K, C)`` entries in ``[0, C)``; for
``"ksubset"`` scores ``theta (n,)`` binary rows with exactly ``k`` ones (``p(z) ∝
exp(theta·z)``). Wrap e.g. ``torch.distributions.Categorical(logits=...).sample((N,))``.

The test. With the exact probabilities ``p_i`` of every configuration from the oracle
(enumeration; every configuration of a small problem), the count ``n_i`` of configuration
``i`` is Binomial(``N``, ``p_i``) under the null hypothesis. Each count is tested two-sided
with its exact binomial tail, ``P(Bin(N, p_i) <= n_i)`` and ``P(Bin(N, p_i) >= n_i)`` against
``alpha / (2 M)`` (``M`` configurations, Bonferroni), so the false-alarm rate is at most
``alpha`` whatever the law. A configuration outside the support (an entry out of range, a row
with the wrong number of ones, a configuration of probability 0) fails at once.

The Gumbel top-k sampler (perturb-and-MAP) draws the law of sampling *without replacement*
proportionally to ``softmax(theta)``, not ``p``: on ``theta = (2, 1, 0, -1), k = 2`` the
probabilities differ by up to about 0.05 and ``N = 20000`` tells them apart
(``tests/test_port_protocol.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from reference._validate import seed_value
from reference.distributions import get_distribution
from reference.ksubset import check_k, enumerate_subsets, subset_log_probs

from .exact import check_enumeration_size

__all__ = ["check_sampler", "SamplerReport", "exact_law"]

Sampler = Callable[[np.ndarray, int, int], np.ndarray]


@dataclass(frozen=True)
class SamplerReport:
    """Outcome of :func:`check_sampler`: ``configs (M, K)`` and their exact ``probs`` and
    observed ``counts``; ``worst_p``: the smallest two-sided binomial p-value times ``M``."""

    passed: bool
    alpha: float
    N: int
    configs: np.ndarray
    probs: np.ndarray
    counts: np.ndarray
    worst_p: float
    message: str

    def __bool__(self) -> bool:
        return self.passed


def exact_law(dist: str, params: object, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every configuration ``(M, K)`` (int64) and its exact probability ``(M,)``: all ``C**K``
    configurations (``z_0`` slowest) of a factorial law, all ``binom(n, k)`` subsets
    (lexicographic order of ``itertools.combinations``) of a k-subset law."""
    d = get_distribution(dist)
    p = d.validate(params)
    if d.name != "ksubset" and k is not None:
        raise ValueError(f"k is for the k-subset law only; a {d.name} law takes none, got k={k!r}")
    if d.name == "ksubset":
        if p.ndim != 1:
            raise ValueError(f"theta must have shape (n,), got {p.shape}")
        k = check_k(k, p.shape[0])
        Z = enumerate_subsets(p.shape[0], k)
        lp = subset_log_probs(p, k, Z)
        return Z, np.exp(lp)
    if p.ndim != d.param_event_ndim:
        raise ValueError(f"params must have no batch axes, got shape {p.shape}")
    K, C = d.num_variables(p), d.num_categories(p)
    check_enumeration_size(C, K)
    rows = np.exp(d.category_log_probs(p))  # (K, C), from log-probabilities (no 1 - p)
    q = np.ones(())
    for row in rows:
        q = np.multiply.outer(q, row)
    return d.enumerate_configs(K, C), q.ravel()


def check_sampler(sampler: Sampler, dist: str, params: object, *, k: int | None = None,
                  N: int = 20000, seed: int = 0, alpha: float = 1e-6) -> SamplerReport:
    """Test that ``sampler(params, N, seed)`` draws the exact law of ``dist`` at ``params``
    (no batch axes; ``k`` for ``"ksubset"``), at false-alarm rate ``alpha`` (module
    docstring). Returns a :class:`SamplerReport`, truthy when passed."""
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise ValueError(f"N must be a positive integer, got {N!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not callable(sampler):
        raise TypeError(f"sampler must be callable, got {type(sampler).__name__}")
    seed = seed_value(seed)
    configs, probs = exact_law(dist, params, k)
    M, K = configs.shape
    C = int(configs.max()) + 1 if dist == "categorical" else 2
    if dist == "categorical":
        C = np.shape(params)[-1]
    z = np.asarray(sampler(np.asarray(params, dtype=np.float64), int(N), int(seed)))
    name = getattr(sampler, "__name__", "sampler")
    empty = np.zeros(M, np.int64)
    if z.shape != (N, K) or not (np.issubdtype(z.dtype, np.integer) or z.dtype == np.bool_
                                 or (np.issubdtype(z.dtype, np.floating)
                                     and np.all(z == np.round(z)))):
        return SamplerReport(False, alpha, N, configs, probs, empty, 0.0,
                             f"{name} returned {z.shape} {z.dtype}, expected integers of shape "
                             f"{(N, K)}")
    z = z.astype(np.int64)
    if z.min() < 0 or z.max() >= C:
        return SamplerReport(False, alpha, N, configs, probs, empty, 0.0,
                             f"{name} returned entries outside [0, {C})")
    if dist == "ksubset":
        bad = z.sum(axis=1) != k
        if bad.any():
            i = int(np.argmax(bad))
            return SamplerReport(False, alpha, N, configs, probs, empty, 0.0,
                                 f"{name}: sample {i} has {int(z[i].sum())} ones, not k = {k}")
        index = {tuple(r): i for i, r in enumerate(configs.tolist())}
        idx = np.array([index[tuple(r)] for r in z.tolist()], dtype=np.int64)
    else:
        idx = z @ (C ** np.arange(K - 1, -1, -1, dtype=np.int64))
    counts = np.bincount(idx, minlength=M)
    lower = binom.cdf(counts, N, probs)  # P(X <= n_i)
    upper = binom.sf(counts - 1, N, probs)  # P(X >= n_i)
    pval = np.minimum(1.0, 2.0 * np.minimum(lower, upper)) * M
    worst = int(np.argmin(pval))
    passed = bool(pval[worst] > alpha)
    message = ""
    if not passed:
        message = (f"{name} does not draw the exact {dist} law: configuration "
                   f"{configs[worst].tolist()} has exact probability {probs[worst]:.6g} but "
                   f"was drawn {counts[worst]} times in N={N} (expected {N * probs[worst]:.1f}; "
                   f"Bonferroni-adjusted p-value {pval[worst]:.3g} <= alpha={alpha:g})")
    return SamplerReport(passed, alpha, N, configs, probs, counts, float(pval[worst]), message)
