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

CARMS
-----
The ``n`` samples are independent across variables, so their law is the product over ``k`` of
the per-variable law of the ``n``-tuple ``(z_1k, ..., z_nk)``. That law is averaged over the
``M = C(C-1)/2`` orders of the categories; for one order each tuple is a box
``prod_i [L_i, R_i)`` for the copula's uniforms ``v``, whose probability is the
inclusion-exclusion over the ``2**n`` corners of the joint survival function
``P(v_i > t_i for all i) = (1 - sum_i g(t_i))_+**(n-1)``,
``g(t) = 1 - (1 - t)**(1/(n-1))`` (``d ~ Dirichlet(1_n)`` has
``P(d_i > s_i for all i) = (1 - sum_i s_i)_+**(n-1)``; any ``m`` of the ``n`` coordinates have
the same formula over ``m`` terms, exponent still ``n - 1``). The estimate is a U-statistic of
exchangeable samples, so :func:`carms_moments` needs only the laws of 2, 3 and 4 of the samples
(per variable :func:`carms_tuple_law` with ``m = 2, 3, 4``, product over variables): cost
``O((C**K)**4 P)`` whatever ``n``. :func:`carms_moments_tuples` sums over all ``C**(n K)``
joint tuples instead (an independent check for small ``n``). Both evaluate the estimate with
the reference's formula
(:func:`reference.estimators.multi_sample.numpy_reference.carms_weights`, whose pair ratio
comes from the two-dimensional pair law; the tests check the laws against each other and
against Monte Carlo of the sampler).
Rounding: the law of two samples (the estimator's pair law, the mean and the covariance
terms ``T1``, ``T2`` of :func:`carms_moments`) is computed without inclusion-exclusion
(:func:`reference.estimators.multi_sample.numpy_reference._pair_box`, and interval lengths for
``n = 2``): every term non-negative, relative accuracy to a few ulps except where a corner of
the box lies within rounding of the support's boundary. The laws of three and four samples
(``T3``..``T7``, ``n >= 3``) and of whole ``n``-tuples (:func:`carms_moments_tuples`) are
signed sums of ``2**m`` terms at most 1: absolute error about ``2**m m eps``, relative
accuracy lost for boxes far below that (saturated logits); ``tests/test_certificates.py``
measures both against mpmath.
Cost (U-statistic form) ``K M 16 C**4`` for the laws and ``(C**K)**4 P + (C**K)**3 P**2`` for
the moments; the enumeration ``K M 2**n C**n n + C**(n K) (n**2 K + n P)``; both refused up
front through :func:`verify.exact.check_budget`.
"""

from __future__ import annotations

from math import comb, lgamma
from typing import Any

import numpy as np

from reference.estimators.multi_sample.numpy_reference import (
    _carms_g,
    carms_order,
    carms_ratio,
    carms_weights,
    logit_table,
    subset_log_probs,
    unord_weights,
    vimco_signals,
)

from ..exact import (
    check_budget,
    check_enumeration_size,
    config_probabilities,
    configurations,
    make_problem,
    score_matrix,
)
from . import Moments

__all__ = ["MAX_TERMS", "multisets", "vimco_target_value", "vimco_target_gradient",
           "vimco_moments", "unord_moments", "reinforce_wor_moments", "subsets", "carms_tuple_law",
           "carms_moments", "carms_moments_tuples", "carms_table", "carms_moments_mp", "carms_code_ratio",
           "carms_code_moments", "CARMS_MP_MAX_TUPLES"]

#: the largest number of joint tuples ``C**(n K)`` the mpmath certificate enumerates
CARMS_MP_MAX_TUPLES = 5000

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


def carms_table(pr) -> np.ndarray:
    """The problem's logits as a ``(K, C)`` table (Bernoulli: rows ``(0, phi_k)``)."""
    return logit_table(pr.dist.name, np.asarray(pr.params, dtype=np.float64)[None])[0]


def carms_tuple_law(table_row: np.ndarray, n: int,
                    m: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The law of ``m`` (default ``n``) of the ``n`` samples of one variable,
    ``(z_1k, ..., z_mk)``, from its logits ``(C,)``: the tuples ``(C**m, m)`` (lexicographic)
    and their probabilities ``(C**m,)``, averaged over the ``C(C-1)/2`` orders (module
    docstring; the survival function of ``m`` of the ``n`` Dirichlet coordinates is
    ``(1 - sum_{i <= m} s_i)_+**(n-1)``, so every ``m <= n`` uses the same formula)."""
    from itertools import product

    m_ = n if m is None else int(m)
    if not 1 <= m_ <= n:
        raise ValueError(f"m must be in [1, n = {n}], got {m}")
    row = np.asarray(table_row, dtype=np.float64)
    if m_ == 2:  # pairs: the reference's cancellation-free pair law (no inclusion-exclusion)
        from reference.estimators.multi_sample.numpy_reference import carms_pair_law

        C = row.size
        tuples = np.array(list(product(range(C), repeat=2)), dtype=np.int64)
        return tuples, carms_pair_law(row[None, None], n)[0, 0].ravel()
    e = np.exp(row - row.max())
    total = 0.0
    for c in range(row.size):
        total += e[c]
    p = e / total
    C = p.size
    M = C * (C - 1) // 2
    tuples = np.array(list(product(range(C), repeat=m_)), dtype=np.int64).reshape(-1, m_)
    law = np.zeros(tuples.shape[0])
    for m in range(M):
        o = carms_order(C, m)
        L, R = np.zeros(C), np.zeros(C)
        acc = 0.0
        for j in range(C):
            L[o[j]] = acc
            acc += p[o[j]]
            R[o[j]] = 1.0 if j == C - 1 else acc
        gL, gR = _carms_g(L[tuples], n), _carms_g(R[tuples], n)
        box = np.zeros(tuples.shape[0])
        for mask in range(2**m_):
            bits = np.array([mask >> i & 1 for i in range(m_)], dtype=bool)
            base = 1.0 - np.where(bits, gR, gL).sum(axis=1)
            term = np.where(base > 0, np.maximum(base, 0.0) ** (n - 1), 0.0)
            box = box + (-term if bits.sum() % 2 else term)
        law = law + box
    return tuples, law / M


def _carms_budget(pr, n: int) -> None:
    K, C = pr.K, pr.C
    P = pr.params.size
    T = float(min(C ** (n * K), 10**300))  # exact integer power, capped before float
    per = float(min(C**n, 10**300))
    check_budget(f"the exact CARMS moments (C**(n K) = {C}**{n * K} = {T:.3g} joint tuples)",
                 memory_bytes=8.0 * T * (P + 3 * n * K + 4) + 8.0 * K * per * (n + 4),
                 operations=K * (C * (C - 1) / 2) * 2.0**n * per * n + T * (n * n * K + n * P + K))


def carms_moments_tuples(dist: Any, params: object, objective: Any, n: int = 2) -> Moments:
    """Exact mean and covariance of CARMS by enumeration: a sum over the ``C**(n K)`` joint
    tuples of samples (the product of the per-variable laws of :func:`carms_tuple_law`), each
    with the reference's estimate (module docstring). An independent check of
    :func:`carms_moments` for small ``n``."""
    pr = make_problem(dist, params, objective)
    check_enumeration_size(pr.C, pr.K)
    _carms_budget(pr, n)
    return _carms_sum(pr, n, carms_ratio(carms_table(pr)[None], n)[0])


def _joint_law(pr, n: int, m: int) -> np.ndarray:
    """The law of ``m`` of the ``n`` samples on the joint space: ``(N,) * m``, the product over
    variables of :func:`carms_tuple_law` (``N = C**K``, configuration indices)."""
    Z = configurations(pr)
    table = carms_table(pr)
    C = pr.C
    out = np.ones((Z.shape[0],) * m)
    for k in range(pr.K):
        _, law = carms_tuple_law(table[k], n, m)
        Lk = law.reshape((C,) * m)
        idx = tuple(Z[:, k].reshape((1,) * i + (-1,) + (1,) * (m - 1 - i)) for i in range(m))
        out = out * Lk[idx]
    return out


def carms_moments(dist: Any, params: object, objective: Any, n: int = 2) -> Moments:
    """Exact mean and covariance of CARMS at any ``n``, without the ``C**(n K)`` tuples.

    ``g = 1/(n(n-1)) sum_{i != j} h(Z_i, Z_j)`` with ``h_p(a, b) = r_k(a_k, b_k) (f(a) - f(b))
    s_p(a_k)`` (``k`` the variable of entry ``p``) is a U-statistic of exchangeable samples, so
    ``g - mu`` is the same average of ``h' = h - mu`` and its covariance is
    ``1/(n(n-1)) [T1 + T2 + (n-2)(T3 + T4 + T5 + T6) + (n-2)(n-3) T7]``, one term per pattern
    of shared samples between two ordered pairs: ``T1 = E[h'(A,B) h'(A,B)^T]``,
    ``T2 = E[h'(A,B) h'(B,A)^T]``, ``T3..T6 = E[h'(A,B) h'(A,C)^T]``, ``(B,C)``, ``(C,A)``,
    ``(C,B)``, ``T7 = E[h'(A,B) h'(C,D)^T]``, under the joint law of 2, 3 or 4 of the ``n``
    samples (:func:`carms_tuple_law` with ``m = 2, 3, 4``, product over variables). Cost
    ``O(N**4 P)`` with ``N = C**K`` (``N**3 P**2`` for the 3-sample terms), independent of
    ``n``; refused past the budget (:func:`verify.exact.check_budget`)."""
    pr = make_problem(dist, params, objective)
    check_enumeration_size(pr.C, pr.K)
    N, P, K = pr.C ** pr.K, pr.params.size, pr.K
    mmax = min(n, 4)
    check_budget(f"the exact CARMS moments (N = C**K = {N} configurations, laws of up to "
                 f"{mmax} samples)",
                 memory_bytes=8.0 * (N**mmax + 3 * N * N * P + N**min(mmax, 3) * 2),
                 operations=float(N) ** mmax * (K + P) + float(N) ** min(mmax, 3) * P * P * 4
                 + K * pr.C**2 * 16 * pr.C**4)
    f = pr.f_table().ravel()
    S = score_matrix(pr)  # (N, P)
    Z = configurations(pr)
    ratio = carms_ratio(carms_table(pr)[None], n)[0]  # (K, C, C)
    kp = np.arange(P) // (P // K)
    Rfull = ratio[np.arange(K)[None, None, :], Z[:, None, :], Z[None, :, :]]  # (N, N, K)
    H = Rfull[:, :, kp] * (f[:, None] - f[None, :])[:, :, None] * S[:, None, :]  # (N, N, P)
    L2 = _joint_law(pr, n, 2)
    mean = np.einsum("ab,abp->p", L2, H)
    Hc = H - mean
    T = np.einsum("ab,abp,abq->pq", L2, Hc, Hc) + np.einsum("ab,abp,baq->pq", L2, Hc, Hc)
    if n >= 3:
        L3 = _joint_law(pr, n, 3)
        T3 = (np.einsum("abc,abp,acq->pq", L3, Hc, Hc) + np.einsum("abc,abp,bcq->pq", L3, Hc, Hc)
              + np.einsum("abc,abp,caq->pq", L3, Hc, Hc)
              + np.einsum("abc,abp,cbq->pq", L3, Hc, Hc))
        T = T + (n - 2) * T3
    if n >= 4:
        H2 = Hc.reshape(N * N, P)
        L4 = _joint_law(pr, n, 4).reshape(N * N, N * N)
        T = T + (n - 2) * (n - 3) * (H2.T @ (L4 @ H2))
    cov = T / (n * (n - 1))
    rng = np.abs(Hc).max(axis=(0, 1))
    return Moments(mean.reshape(pr.params.shape), 0.5 * (cov + cov.T),
                   "exact: U-statistic over 2, 3 and 4 of the samples (Dirichlet-copula box "
                   "probabilities by inclusion-exclusion, averaged over the orders)",
                   range_bound=rng.reshape(pr.params.shape))


def _carms_sum(pr, n: int, ratio: np.ndarray) -> Moments:
    """:func:`carms_moments` with a given pair weight table ``ratio`` ``(K, C, C)``."""
    K, C = pr.K, pr.C
    P = pr.params.size
    f = pr.f_table().ravel()
    S = score_matrix(pr)
    table = carms_table(pr)
    per_tuples, per_law = [], []
    for k in range(K):
        tu, law = carms_tuple_law(table[k], n)
        keep = law > 0
        per_tuples.append(tu[keep])
        per_law.append(law[keep])
    prob = np.ones(1)
    idx = np.zeros((1, 0), dtype=np.int64)
    for k in range(K):
        mk = per_law[k].size
        prob = (prob[:, None] * per_law[k][None, :]).ravel()
        idx = np.concatenate([np.repeat(idx, mk, axis=0),
                              np.tile(np.arange(mk), idx.shape[0])[:, None]], axis=1)
    z = np.stack([per_tuples[k][idx[:, k]] for k in range(K)], axis=-1)  # (T, n, K)
    x = z @ (C ** np.arange(K - 1, -1, -1, dtype=np.int64))
    w = carms_weights(ratio[None], z[None], f[x][None])[0]  # (T, n, K)
    kp = np.arange(P) // (P // K)
    G = np.einsum("tip,tip->tp", w[:, :, kp], S[x])
    return _moments_from(prob, G, pr.params.shape,
                         "exact: sum over the joint tuples of samples (Dirichlet-copula box "
                         "probabilities by inclusion-exclusion, averaged over the orders)")


def carms_code_ratio(p: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """The pair weight of the authors' code (alekdimi/carms at commit c3f3c65, ``vae.py``,
    ``CategoricalVAE.matrix_grad``, the ``tf.clip_by_value`` line, about line 72):
    ``clip((p_a p_b + 1e-3) / (P(a, b) + 1e-3), 0.01, 10)`` with ``P`` the pair law, in place
    of the exact ``p_a p_b / P(a, b)``. ``p`` ``(..., C)``, ``joint`` ``(..., C, C)``."""
    return np.clip((p[..., :, None] * p[..., None, :] + 1e-3) / (joint + 1e-3), 0.01, 10.0)


def carms_code_moments(dist: Any, params: object, objective: Any, n: int = 2) -> Moments:
    """Exact mean and covariance of our CARMS sampler with the authors' code's smoothed and
    clipped pair weight (:func:`carms_code_ratio`, with our exact pair law) in place of the
    exact ratio: the same enumeration as :func:`carms_moments`, to measure that weight's bias."""
    from reference.estimators.multi_sample.numpy_reference import carms_pair_law

    pr = make_problem(dist, params, objective)
    check_enumeration_size(pr.C, pr.K)
    _carms_budget(pr, n)
    table = carms_table(pr)
    e = np.exp(table - table.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return _carms_sum(pr, n, carms_code_ratio(p, carms_pair_law(table, n)))


def carms_moments_mp(dist: Any, params: object, objective: Any, n: int = 2, *,
                     dps: int = 60) -> Moments:
    """:func:`carms_moments` in arbitrary precision (``mpmath``, ``dps`` digits) from the
    definitions, for certificates on small problems: the probabilities from the float64
    logits taken as exact, the boundaries ``L, R``, ``g``, every box by inclusion-exclusion,
    the pair law by the two-dimensional formula, the ratio, the weights, the score and the
    moments, all in ``mpf``. Refused past :data:`CARMS_MP_MAX_TUPLES` joint tuples."""
    from itertools import product

    from ..exact import mp_configurations, mp_mean_cov

    pr = make_problem(dist, params, objective)
    K, C = pr.K, pr.C
    if C ** (n * K) > CARMS_MP_MAX_TUPLES:
        raise ValueError(f"the mpmath CARMS certificate would enumerate C**(n K) = "
                         f"{C ** (n * K)} joint tuples, more than CARMS_MP_MAX_TUPLES = "
                         f"{CARMS_MP_MAX_TUPLES}")
    ctx, rows, _, _ = mp_configurations(pr, dps)
    f = [ctx.mpf(float(v)) for v in pr.f_table().ravel()]
    one = ctx.mpf(1)

    def g(t):
        return one if t >= 1 else 1 - (1 - t) ** (one / (n - 1))

    def surv(ts):
        base = 1 - ctx.fsum(g(t) for t in ts)
        return base ** (n - 1) if base > 0 else ctx.mpf(0)

    M = C * (C - 1) // 2
    bounds = []  # per variable, per order: (L, R) lists
    for k in range(K):
        per = []
        for m in range(M):
            o = carms_order(C, m)
            L, R = [None] * C, [None] * C
            acc = ctx.mpf(0)
            for j in range(C):
                L[o[j]] = acc
                acc = acc + rows[k][o[j]]
                R[o[j]] = one if j == C - 1 else acc
            per.append((L, R))
        bounds.append(per)

    def box(k, cs):
        tot = ctx.mpf(0)
        for L, R in bounds[k]:
            for mask in range(2**len(cs)):
                ts = [R[c] if mask >> i & 1 else L[c] for i, c in enumerate(cs)]
                sgn = -1 if bin(mask).count("1") % 2 else 1
                tot += sgn * surv(ts)
        return tot / M

    ratio = []
    for k in range(K):
        rk = [[None] * C for _ in range(C)]
        for a in range(C):
            for b in range(C):
                Pab = box(k, (a, b))  # the pair's box: the same survival function
                rk[a][b] = rows[k][a] * rows[k][b] / Pab if Pab > 0 else ctx.mpf(0)
        ratio.append(rk)
    per_law = []
    for k in range(K):
        per_law.append([(cs, box(k, cs)) for cs in product(range(C), repeat=n)])
    weights, values = [], []
    for combo in product(*[range(len(per_law[k])) for k in range(K)]):
        prob = ctx.fprod(per_law[k][combo[k]][1] for k in range(K))
        if prob <= 0:
            continue
        z = [[per_law[k][combo[k]][0][i] for k in range(K)] for i in range(n)]
        fz = [f[int(np.ravel_multi_index(tuple(zi), (C,) * K))] for zi in z]
        g_out = []
        for k in range(K):
            w = [ctx.fsum(ratio[k][z[i][k]][z[j][k]] * (fz[i] - fz[j])
                          for j in range(n) if j != i) / (n * (n - 1)) for i in range(n)]
            if pr.dist.name == "bernoulli":
                g_out.append(ctx.fsum(w[i] * (z[i][k] - rows[k][1]) for i in range(n)))
            else:
                for c in range(C):
                    g_out.append(ctx.fsum(w[i] * ((1 if z[i][k] == c else 0) - rows[k][c])
                                          for i in range(n)))
        weights.append(prob)
        values.append(g_out)
    mean, cov = mp_mean_cov(ctx, weights, values)
    return Moments(np.array([float(x) for x in mean]).reshape(pr.params.shape),
                   np.array([[float(x) for x in row] for row in cov]),
                   f"mpmath ({dps} digits): sum over the joint tuples of samples")

