"""Multi-sample estimators: VIMCO, the unordered set estimator (sampling without replacement)
and CARMS (antithetic samples through a Dirichlet copula).

All use ``n`` configurations per replicate and only values of ``f`` at them, and each
estimate is a weighted sum of the samples' scores ``grad log q(z_i)`` of the factorial
distribution, computed accurate relative to themselves at saturated logits on every backend
(:meth:`reference.distributions.Distribution.score`). They differ from
the other families in what they assume of the samples: VIMCO's target is not ``E_q[f]``, and
the unordered set estimator's samples are not independent.

VIMCO (Mnih & Rezende 2016, arXiv 1602.06725, eq. 4-9, the geometric-mean variant)
----------------------------------------------------------------------------------
Target: the multi-sample bound ``L(theta) = E_{z_1..n iid q}[log (1/n) sum_i exp f(z_i)]``
(for a VAE, ``f`` is the log importance weight); the record declares it
(``Estimator.target``) and the oracle differentiates it exactly
(:func:`verify.moments.multi_sample.vimco_target_gradient`). With ``Lhat = log (1/n) sum_j
exp f_j`` and ``Lhat_{-i}`` the same with ``f_i`` replaced by the geometric mean of the
others, ``fbar_{-i} = 1/(n-1) sum_{j != i} f_j`` (the paper's eq. 9), the estimate is
``g = sum_i (Lhat - Lhat_{-i}) grad log q(z_i)``, ``n >= 2``. ``Lhat_{-i}`` does not depend on
``z_i``, so ``g`` is unbiased for ``grad L``. (The paper's second term,
``sum_i wtilde_i grad f(z_i)``, is zero here: our ``f`` does not depend on the parameters; a
model whose ``f`` does adds that term itself.)
Arithmetic, shared by every backend: ``m = max_j f_j``, ``S = sum_j exp(f_j - m)`` (j in
order), ``m_i = max_{j != i} f_j``, ``fbar_{-i}`` summed in order skipping ``i``,
``S_i = sum_{j != i} exp(f_j - m_i) + exp(fbar_{-i} - m_i)``,
``Lhat - Lhat_{-i} = (m + log S) - (m_i + log S_i)`` (the ``- log n`` cancels; shifting by
``m_i`` keeps ``S_i >= 1`` when ``f_i`` dominates, so nothing underflows to ``log 0``).
Noise ``u`` ``(*batch, R, n, K)`` Uniform[0, 1), the samples ``z_i = sample(params, u_i)``
(inverse CDF, :mod:`reference.distributions`). Queries ``z`` ``(*batch, R, n, K)``. Cost ``n``.

Unordered set estimator (Kool, van Hoof & Welling 2020, arXiv 2002.06043, eq. 7-10)
-----------------------------------------------------------------------------------
Samples: ``n`` distinct configurations ``S`` drawn without replacement from ``q`` on the
joint space of ``N = C**K`` configurations, by Gumbel-top-k: configuration ``x`` (index
``x = sum_k z_k C**(K-1-k)``, :meth:`Distribution.enumerate_configs`) gets
``G_x = log q(x) - log(-log u_x)`` (``u_x = 0`` gives ``-inf``) with
``log q(x) = sum_k log p_k(z_k)`` added over ``k`` in order and
``log p_k(c) = (alpha_kc - m_k) - log sum_c' exp(alpha_kc' - m_k)``, ``m_k = max_c alpha_kc``
(Bernoulli: ``alpha_k = (0, phi_k)``), and ``S`` is the ``n`` largest
``G_x`` (ties to the lower index), in decreasing order of ``G``. Noise ``u``
``(*batch, R, N)`` Uniform[0, 1): ``N`` uniforms per replicate, so the joint space must be small
(``N <= MAX_JOINT``). Queries ``z`` ``(*batch, R, n, K)``. Cost ``n`` evaluations.

With ``p(S)`` the probability of the unordered sample and ``p^{D\\A}(U)`` that of drawing the
set ``U`` first when sampling without replacement from the domain without ``A``:

* ``R(S, s) = p^{D\\{s}}(S \\ {s}) / p(S)`` (leave-one-out ratio),
* ``R2(S, s, s') = p^{D\\{s,s'}}(S \\ {s,s'}) / p^{D\\{s}}(S \\ {s})`` for ``s' != s``, 1 for
  ``s' = s``,
* ``unord`` (eq. 10, the unordered set estimator with its built-in baseline), ``n >= 2``:
  ``g = sum_{s in S} p(s) R(S, s) (f(s) - B(S, s)) grad log q(s)``,
  ``B(S, s) = sum_{s' in S} p(s') R2(S, s, s') f(s')``. Given ``s in S``, ``S \\ {s}`` is a
  sample of ``n - 1`` from the domain without ``s``, on which ``B - p(s) f(s)`` is the
  unordered set estimate of ``sum_{s' != s} p(s') f(s')``; so ``E[B | s] = E_q[f]`` for every
  ``s``, and the baseline adds no bias (it needs ``n >= 2``: with one sample there is no
  ``S \\ {s}`` to estimate from).

Every probability above is a sum over orderings, computed without the ``n!`` orderings by a
recursion over subsets: for a set ``U`` still to be drawn and outside mass ``r`` (the
probability of everything that is neither drawn nor removed),
``G(U) = sum_{v in U} p(v) / (r + p(U)) G(U \\ {v})``, ``G({}) = 1``, and
``p^{D\\A}(U) = G(U)`` with ``r = q(D \\ S)`` for every ``U = S \\ A``: the denominators are
sums of positive probabilities (never ``1 - p``, which cancels at saturated logits). All in
log space: ``log G`` over the ``2**n`` subsets of ``S`` (bit ``i`` of a mask is sample ``i``),
each term a two-pass log-sum-exp (max, then ``exp`` summed in bit order), ``log r`` the
log-sum-exp of ``log q`` over the configurations outside ``S``. Cost per replicate:
``O(N K)`` for ``log r`` and ``O(2**n n)`` for the recursion (the ratios' cost grows
exponentially with ``n``, hence ``n <= MAX_N``; the authors' code enumerates the ``n!``
orderings instead). Weights: ``p(s) R(S, s) <= 1`` since ``p(S) >= p(s) p^{D\\{s}}(S\\{s})``.

REINFORCE without replacement (``reinforce_wor``): the same samples, importance weights
----------------------------------------------------------------------------------------
``g = sum_{s in S} (p(s) / pi(s)) (f(s) - b) grad log q(s)``, ``b`` a constant baseline (0 by
default), with ``pi(s) = P(s in S) = sum_{S' ni s} p(S')`` the exact inclusion probability of
``s`` in a sample of ``n`` without replacement: the Horvitz-Thompson estimator, unbiased
because ``E[sum_{s in S} h(s) / pi(s)] = sum_x h(x)`` and ``sum_x grad q(x) = 0``. Its weights
``p(s) / pi(s) <= 1`` (``pi(s) >= p(s)``, the chance of being drawn first). Kool et al. 2020
(section 2.3) write the importance-weighted estimator with ``pi(s)`` replaced by
``P(s in S | kappa) = 1 - exp(-exp(log p(s) - kappa))``, ``kappa`` the ``(n+1)``-th largest
perturbed log-probability (priority sampling): it needs no enumeration, but its weights are
unbounded (``kappa`` can be arbitrarily large) and its fourth moment is infinite for
``n <= 3``; the exact inclusion probabilities make the estimate a function of the set alone, with
bounded weights and exact moments, at the cost of enumerating sets: ``pi`` is the sum of
``p(S)`` over all ``binom(N, n)`` subsets, ``O(binom(N, n) (N + 2**n n))`` operations per
problem (once per batch element, not per replicate), refused past ``MAX_SETS``. The unordered
set estimator is the better use of the same samples (it conditions on the set without
weighting each sample by itself); this record is there to measure by how much.
Noise and queries: those of ``unord`` (the same samples for the same noise); ``n >= 1``
(``n = 1`` is REINFORCE). Log-space throughout: ``log pi(x)`` is a two-pass log-sum-exp of
``log p(S)`` over the sets containing ``x`` (sets in lexicographic order).
CARMS (Dimitriev & Zhou 2021, arXiv 2110.14002; ARMS, arXiv 2105.14141, for two categories)
-------------------------------------------------------------------------------------------
``n >= 2`` samples per replicate, coupled per variable ``k`` through a Dirichlet copula and a
random order of the categories; every other variable is coupled independently. Per variable:

* Copula (noise ``u`` ``(*batch, R, n, K)``): ``E_i = -log1p(-u_ik)``, ``D = E_1 + ... + E_n``
  (summed in order), ``d_i = E_i / D`` (``d ~ Dirichlet(1_n)``; ``d_i = 1/n`` if ``D = 0``),
  ``v_i = 1 - (1 - d_i)**(n-1) = -expm1((n-1) log1p(-d_i))`` (the Beta(1, n-1) CDF of
  ``d_i``: each ``v_i`` is Uniform(0, 1); ``v_i = 1`` if ``d_i >= 1``). For ``n = 2``,
  ``v_2 = 1 - v_1``: the antithetic pair of ARMS.
* Order (noise ``u_perm`` ``(*batch, R, K)``): with ``M = C(C-1)/2``, the index
  ``m = min(floor(u_perm M), M - 1)`` picks the ``m``-th pair ``a < b`` in lexicographic order;
  the categories are laid out as ``b``, then the others in increasing index, then ``a`` (so
  every pair of categories sits at the two ends of the order exactly once, the family of
  orders of the authors' code, whose middle order differs). For ``C = 2`` (and Bernoulli,
  on logits ``(0, phi)``) the order is ``(1, 0)``: ``z = 1[v < sigmoid(phi)]``, ARMS's form.
* Inverse CDF in that order: ``e_c = exp(alpha_kc - max_c alpha_kc)``, running sums
  ``s_j = e_{o_0} + ... + e_{o_j}`` left to right; ``z_ik = o_j`` for the first ``j`` with
  ``v_i s_{C-1} < s_j`` (the last position if none).

Estimate, for each ``k`` (the paper's CARMS estimator, section 3; its ARMS special case for
``C = 2``; equation numbers not checked here, the paper's text was not at hand; ARMS's arXiv
number is 2105.14141, not the 2101.06520 of DESIGN.md's table). With ``n = 2`` on Bernoulli
variables it has exactly DisARM's moments (the ARMS paper's statement; a test compares the two
oracles):
``g_k = 1/(n(n-1)) sum_{i != j} r_k(z_ik, z_jk) (f(z_i) - f(z_j)) grad_k log q(z_i)``,
``r_k(a, b) = p_ka p_kb / P_k(a, b)`` with ``P_k(a, b) = P(z_ik = a, z_jk = b)`` the pair law
of the copula with the order summed out (the same for every ``i != j``), ``r = 0`` where
``P_k(a, b) = 0`` (such a pair is never drawn). Unbiased: the other variables are independent
of variable ``k``'s pair, so ``E[r (f(z_i) - f(z_j)) s(z_ik)] = sum_{a,b} p_a p_b
(h(a) - h(b)) s(a) = grad_k E_q[f]`` with ``h(a) = E[f | z_k = a]``; diagonal pairs
``a = b`` have mean zero whatever their weight, and every off-diagonal pair has
``P_k(a, b) > 0`` because some order puts ``a`` and ``b`` at the two ends.
Pair law: ``P_k(a, b) = (1/M) sum_m [S(La, Lb) - S(Ra, Lb) - S(La, Rb) + S(Ra, Rb)]`` with
``[La, Ra)`` the interval of ``a`` in order ``m`` (``La`` the sum of the normalized ``p`` before
``a`` in order, ``Ra = La + p_a``, the last ``R = 1``) and the copula's joint survival function
``S(s, t) = P(v_i > s, v_j > t) = (1 - g(s) - g(t))_+**(n-1)``,
``g(t) = -expm1(log1p(-t)/(n-1))`` (``g(1) = 1``), from
``P(d_i > x, d_j > y) = (1 - x - y)_+**(n-1)``. That inclusion-exclusion is the definition,
not the arithmetic: it cancels (absolute error a few ulps of 1 whatever the rectangle's size,
and ``1e-17`` of noise on pairs that never occur, which the ratio turns into weights of
``1e14``). Every backend computes each rectangle as a sum of non-negative terms instead
(:func:`_pair_box` for ``n >= 3``; for ``n = 2``, ``v_2 = 1 - v_1`` and the rectangle is the
length ``min(pa, pb, Ra - Ub, Tb - La)_+`` of ``[La, Ra) ∩ (1 - Rb, 1 - Lb]``,
:func:`_antithetic_box`), from the heads ``L, R`` summed from the start of the order and the
tails ``T = 1 - L``, ``U = 1 - R`` summed from its end. Arithmetic shared by all backends:
``p_c = e_c / sum_c e_c`` (sum in category order), rectangles summed over ``m`` in order,
symmetrized (``(P(a, b) + P(b, a)) / 2``: the copula is exchangeable, and the rounding of the
two would be amplified by the diagonal's large ratios), then divided by ``M``. Measured
against 50-digit mpmath: relative error of every entry at most ``2e-15`` at logits within
``+-5``, ``5e-8`` at logits ``(30, 0, -20)`` (``n = 3``), ``1e-16`` there for ``n = 2``.
Cost: ``n`` evaluations; ``O(n**2 K + n K C)`` per replicate, plus the ratio tables once per
problem, ``O(K C**4)`` (``M`` orders times ``C**2`` pairs). ``2 <= n <= CARMS_MAX_N``.
Queries ``z`` ``(*batch, R, n, K)``.

"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference._validate import finite_scalar, positive_int
from reference.contract import Backend, Cost, Estimator, NoiseSpec, Queries, backend_paths
from reference.distributions import get_distribution, log_softmax

__all__ = ["VIMCO", "UNORD", "REINFORCE_WOR", "MAX_N", "MAX_JOINT", "MAX_SETS", "all_subsets",
           "inclusion_log_probs", "vimco_signals", "joint_log_probs",
           "gumbel_top", "logit_table", "n_categories", "category_log_probs", "subset_log_probs",
           "unord_weights", "CARMS", "CARMS_MAX_N", "carms_order", "carms_order_index",
           "carms_copula_uniforms", "carms_sample", "carms_survival", "carms_pair_law",
           "carms_ratio", "carms_weights"]

#: the largest ``n`` of the unordered set estimator (its recursion has ``2**n`` subsets)
MAX_N = 8
#: the largest joint space ``C**K`` that Gumbel-top-k enumerates (one uniform per configuration)
MAX_JOINT = 2**16
#: the largest number of ``n``-subsets ``binom(C**K, n)`` whose probabilities ``reinforce_wor``
#: sums for the exact inclusion probabilities
MAX_SETS = 10**6
#: the largest ``n`` of CARMS (the pair law's survival function is a power ``n - 1``, whose
#: relative rounding error grows like ``n eps``; the exact oracle's ``2**n`` corners per tuple)
CARMS_MAX_N = 64


# --------------------------------------------------------------------------- the formulas
def vimco_signals(f_z: np.ndarray) -> np.ndarray:
    """VIMCO's learning signals ``Lhat - Lhat_{-i}`` over the last axis (the ``n >= 2``
    samples), in the arithmetic of the module docstring; shape of ``f_z``."""
    n = f_z.shape[-1]
    m = f_z.max(axis=-1)
    S = np.zeros(f_z.shape[:-1])
    for j in range(n):
        S = S + np.exp(f_z[..., j] - m)
    out = np.empty_like(f_z, dtype=np.float64)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        mi = f_z[..., others[0]]
        tot = np.zeros(f_z.shape[:-1])
        for j in others:
            mi = np.maximum(mi, f_z[..., j])
            tot = tot + f_z[..., j]
        fbar = tot / (n - 1)
        Si = np.zeros(f_z.shape[:-1])
        for j in others:
            Si = Si + np.exp(f_z[..., j] - mi)
        Si = Si + np.exp(fbar - mi)
        out[..., i] = (m + np.log(S)) - (mi + np.log(Si))
    return out


def logit_table(dist: str, params: np.ndarray) -> np.ndarray:
    """Categorical logits ``(B, K, C)``: ``alpha`` itself, or ``(0, phi_k)`` rows for
    Bernoulli (``softmax(0, phi) = (1 - sigmoid(phi), sigmoid(phi))``), so that one
    arithmetic serves both."""
    if dist == "bernoulli":
        return np.stack([np.zeros_like(params), params], axis=-1)
    return params


def n_categories(dist: str, params: np.ndarray) -> int:
    """``C`` of :func:`logit_table`: 2 for Bernoulli, else the last axis of ``params``."""
    return 2 if dist == "bernoulli" else int(params.shape[-1])


def category_log_probs(dist: str, params: np.ndarray) -> np.ndarray:
    """``log p_k(c) = (alpha_kc - max_c alpha_kc) - log sum_c exp(alpha_kc - max)``, float64
    ``(B, K, C)``, on :func:`logit_table`. The fast backends take this table as input and sum
    it into :func:`joint_log_probs` in the same order."""
    return log_softmax(logit_table(dist, params))


def joint_log_probs(dist: str, params: np.ndarray) -> np.ndarray:
    """``log q(x)`` of every configuration, ``(B, C**K)`` in the order of
    :meth:`Distribution.enumerate_configs`, summed over ``k`` in order."""
    lp = category_log_probs(dist, params)  # (B, K, C)
    K, C = lp.shape[1], lp.shape[2]
    Z = get_distribution(dist).enumerate_configs(K, C)  # (N, K)
    out = np.zeros((lp.shape[0], Z.shape[0]))
    for k in range(K):
        out = out + lp[:, k, :][:, Z[:, k]]
    return out


def gumbel_top(log_q: np.ndarray, u: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(..., m)`` and values of the ``m`` largest ``G = log q - log(-log u)``
    (``u = 0`` gives ``-inf``), in decreasing order, ties to the lower index.
    ``log_q`` ``(B, N)``, ``u`` ``(B, R, N)``."""
    with np.errstate(divide="ignore"):
        g = np.where(u > 0, log_q[:, None, :] - np.log(-np.log(np.where(u > 0, u, 0.5))), -np.inf)
    order = np.argsort(-g, axis=-1, kind="stable")[..., :m]
    return order, np.take_along_axis(g, order, axis=-1)


def _lse_terms(terms: list[np.ndarray]) -> np.ndarray:
    """Two-pass log-sum-exp of a list of arrays: max, then ``exp`` summed in list order."""
    mx = terms[0]
    for t in terms[1:]:
        mx = np.maximum(mx, t)
    fin = np.isfinite(mx)
    safe = np.where(fin, mx, 0.0)
    s = np.zeros(mx.shape)
    for t in terms:
        s = s + np.exp(t - safe)
    with np.errstate(divide="ignore"):
        return np.where(fin, safe + np.log(s), mx)


def subset_log_probs(lp: np.ndarray, log_rest: np.ndarray) -> np.ndarray:
    """``log G(U)`` for every subset ``U`` of the ``n`` samples (bit ``i`` of the mask is
    sample ``i``): the probability of drawing ``U`` first, in any order, from ``U`` plus an
    outside mass ``exp(log_rest)``. ``lp`` ``(..., n)`` log-probabilities of the samples,
    ``log_rest`` ``(...)``; returns ``(..., 2**n)``."""
    n = lp.shape[-1]
    out = np.empty(lp.shape[:-1] + (2**n,))
    out[..., 0] = 0.0
    for mask in range(1, 2**n):
        bits = [v for v in range(n) if mask >> v & 1]
        num = _lse_terms([lp[..., v] + out[..., mask ^ (1 << v)] for v in bits])
        den = _lse_terms([log_rest] + [lp[..., v] for v in bits])
        out[..., mask] = num - den
    return out


def unord_weights(lp: np.ndarray, log_rest: np.ndarray, f: np.ndarray) -> np.ndarray:
    """The unordered set estimator's per-sample weights
    ``w_s = p(s) R(S, s) (f(s) - B(S, s))`` (eq. 10), shape of ``f`` ``(..., n)``."""
    n = lp.shape[-1]
    logG = subset_log_probs(lp, log_rest)
    full = 2**n - 1
    w = np.empty(f.shape)
    for i in range(n):
        wo_i = full ^ (1 << i)
        base = np.zeros(f.shape[:-1])
        for j in range(n):
            if j == i:
                base = base + np.exp(lp[..., j]) * f[..., j]
            else:
                base = base + np.exp(lp[..., j] + logG[..., wo_i ^ (1 << j)] - logG[..., wo_i]) \
                    * f[..., j]
        w[..., i] = np.exp(lp[..., i] + logG[..., wo_i] - logG[..., full]) * (f[..., i] - base)
    return w


def all_subsets(N: int, n: int) -> np.ndarray:
    """Every ``n``-subset of ``range(N)`` as increasing rows in lexicographic order,
    int64 ``(binom(N, n), n)``; refused (``ValueError``) past :data:`MAX_SETS`."""
    from itertools import combinations
    from math import comb

    if comb(N, n) > MAX_SETS:
        raise ValueError(f"the exact inclusion probabilities sum over binom({N}, {n}) = "
                         f"{comb(N, n):.3g} subsets, more than MAX_SETS = {MAX_SETS}: use a "
                         "smaller joint space C**K or a smaller n")
    return np.array(list(combinations(range(N), n)), dtype=np.int64).reshape(-1, n)


def _log_rest_of_sets(lq: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """``log`` of the mass outside each set: lq ``(N,)``, sets ``(M, n)`` -> ``(M,)``."""
    outside = np.broadcast_to(lq, (sets.shape[0], lq.size)).copy()
    np.put_along_axis(outside, sets, -np.inf, axis=1)
    mx = outside.max(axis=1)
    fin = np.isfinite(mx)
    safe = np.where(fin, mx, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(fin, safe + np.log(np.exp(outside - safe[:, None]).sum(axis=1)), mx)


def inclusion_log_probs(dist: str, params: np.ndarray, n: int) -> np.ndarray:
    """``log pi(x)``, ``pi(x) = P(x in S)`` for a sample ``S`` of ``n`` without replacement,
    for every configuration: params ``(B, *event)`` -> ``(B, C**K)``."""
    lq_all = joint_log_probs(dist, params)
    sets = all_subsets(lq_all.shape[1], n)
    out = np.empty(lq_all.shape)
    for b, lq in enumerate(lq_all):
        log_ps = subset_log_probs(lq[sets], _log_rest_of_sets(lq, sets))[:, -1]  # (M,)
        mx = np.full(lq.size, -np.inf)
        np.maximum.at(mx, sets.ravel(), np.repeat(log_ps, n))
        acc = np.zeros(lq.size)
        np.add.at(acc, sets.ravel(), np.exp(np.repeat(log_ps, n) - mx[sets.ravel()]))
        out[b] = mx + np.log(acc)
    return out


def _config_index(z: np.ndarray, C: int) -> np.ndarray:
    K = z.shape[-1]
    return z @ (C ** np.arange(K - 1, -1, -1, dtype=np.int64))


def _unord_parts(dist: str, params: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-probabilities of the samples ``(B, R, n)`` and the log outside mass ``(B, R)``."""
    lq = joint_log_probs(dist, params)  # (B, N)
    C = n_categories(dist, params)
    idx = _config_index(z, C)  # (B, R, n)
    lp = np.take_along_axis(lq[:, None, :], idx, axis=-1)
    outside = np.broadcast_to(lq[:, None, :], idx.shape[:2] + lq.shape[-1:]).copy()
    np.put_along_axis(outside, idx, -np.inf, axis=-1)
    mx = outside.max(axis=-1)
    fin = np.isfinite(mx)
    safe = np.where(fin, mx, 0.0)
    with np.errstate(divide="ignore"):
        log_rest = np.where(fin, safe + np.log(np.exp(outside - safe[..., None]).sum(axis=-1)), mx)
    return lp, log_rest


def _score_sum(dist: str, params: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
    s = get_distribution(dist).score(params, z)  # (B, R, n, K[, C])
    w = w.reshape(w.shape + (1,) * (s.ndim - w.ndim))
    return (w * s).sum(axis=2)


def _vimco_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    return Queries(get_distribution(dist).sample(params, noise["u"]))


def _vimco_combine(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict):
    return _score_sum(dist, params, queries.z, vimco_signals(answers.f_z))


def _unord_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    lq = joint_log_probs(dist, params)
    idx, _ = gumbel_top(lq, noise["u"], opts["n"])
    K = params.shape[1]
    C = n_categories(dist, params)
    Z = get_distribution(dist).enumerate_configs(K, C)
    return Queries(Z[idx])


def _unord_combine(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict):
    lp, log_rest = _unord_parts(dist, params, queries.z)
    return _score_sum(dist, params, queries.z, unord_weights(lp, log_rest, answers.f_z))


def _wor_combine(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict):
    C = n_categories(dist, params)
    idx = _config_index(queries.z, C)  # (B, R, n)
    lq = joint_log_probs(dist, params)[:, None, :]
    lpi = inclusion_log_probs(dist, params, queries.z.shape[2])[:, None, :]
    ratio = np.exp(np.take_along_axis(lq, idx, axis=-1) - np.take_along_axis(lpi, idx, axis=-1))
    return _score_sum(dist, params, queries.z, ratio * (answers.f_z - opts["baseline"]))


NUMPY_VIMCO = Backend(_vimco_queries, _vimco_combine)
NUMPY_UNORD = Backend(_unord_queries, _unord_combine)
NUMPY_WOR = Backend(_unord_queries, _wor_combine)


# ------------------------------------------------------------------------------------ CARMS
def carms_order_index(u_perm: np.ndarray, C: int) -> np.ndarray:
    """The order's index ``m = min(floor(u_perm M), M - 1)``, ``M = C(C-1)/2``, int64."""
    M = C * (C - 1) // 2
    return np.minimum(np.floor(np.asarray(u_perm) * M), M - 1).astype(np.int64)


def carms_order(C: int, m: int) -> np.ndarray:
    """Order ``m`` of the ``C`` categories: the ``m``-th pair ``a < b`` (lexicographic) gives
    ``b``, the other categories in increasing index, ``a``; int64 ``(C,)``."""
    a = 0
    while m >= C - 1 - a:
        m -= C - 1 - a
        a += 1
    b = a + 1 + m
    return np.array([b] + [c for c in range(C) if c not in (a, b)] + [a], dtype=np.int64)


def carms_copula_uniforms(u: np.ndarray) -> np.ndarray:
    """``v`` of the module docstring from the noise ``u`` ``(..., n, K)``: Dirichlet(1_n)
    from normalized exponentials over the sample axis, mapped by the Beta(1, n-1) CDF."""
    n = u.shape[-2]
    E = -np.log1p(-u)
    D = np.zeros(E.shape[:-2] + E.shape[-1:])
    for i in range(n):
        D = D + E[..., i, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(D[..., None, :] > 0, E / np.where(D > 0, D, 1.0)[..., None, :], 1.0 / n)
        v = np.where(d >= 1.0, 1.0, -np.expm1((n - 1) * np.log1p(-np.where(d >= 1.0, 0.0, d))))
    return v


def carms_sample(table: np.ndarray, u: np.ndarray, u_perm: np.ndarray) -> np.ndarray:
    """Samples ``z`` ``(B, R, n, K)`` from logits ``table`` ``(B, K, C)``, noise ``u``
    ``(B, R, n, K)`` and ``u_perm`` ``(B, R, K)`` (module docstring)."""
    B, R, n, K = u.shape
    C = table.shape[-1]
    v = carms_copula_uniforms(u)
    e = np.exp(table - table.max(axis=-1, keepdims=True))  # (B, K, C)
    midx = carms_order_index(u_perm, C)  # (B, R, K)
    orders = np.stack([carms_order(C, m) for m in range(C * (C - 1) // 2)])  # (M, C)
    o = orders[midx]  # (B, R, K, C)
    eo = np.take_along_axis(np.broadcast_to(e[:, None], (B, R, K, C)), o, axis=-1)
    running = np.zeros(eo.shape)
    acc = np.zeros(eo.shape[:-1])
    for j in range(C):
        acc = acc + eo[..., j]
        running[..., j] = acc
    thr = v * running[:, :, None, :, -1]  # (B, R, n, K)
    pos = np.sum(~(thr[..., None] < running[:, :, None]), axis=-1)
    pos = np.minimum(pos, C - 1)
    return np.take_along_axis(np.broadcast_to(o[:, :, None], (B, R, n, K, C)), pos[..., None],
                              axis=-1)[..., 0].astype(np.int64)


def _carms_g(t: np.ndarray, n: int) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(t >= 1.0, 1.0, -np.expm1(np.log1p(-np.where(t >= 1.0, 0.0, t)) / (n - 1)))


def carms_survival(s: np.ndarray, t: np.ndarray, n: int) -> np.ndarray:
    """``S(s, t) = P(v_i > s, v_j > t) = (1 - g(s) - g(t))_+**(n-1)`` (module docstring)."""
    base = 1.0 - _carms_g(s, n) - _carms_g(t, n)
    return np.where(base > 0, np.maximum(base, 0.0) ** (n - 1), 0.0)


def _carms_probs(table: np.ndarray) -> np.ndarray:
    e = np.exp(table - table.max(axis=-1, keepdims=True))
    total = np.zeros(e.shape[:-1])
    for c in range(e.shape[-1]):
        total = total + e[..., c]
    return e / total[..., None]


def _antithetic_box(La, Ra, Ta, Ua, pa, Lb, Rb, Tb, Ub, pb):
    """``n = 2``: the length of ``[La, Ra) ∩ (1 - Rb, 1 - Lb]`` (``v_j = 1 - v_i``), with
    ``T = 1 - L`` and ``U = 1 - R`` the tail masses summed from the end of the order:
    ``min(Ra, Tb) - max(La, Ub) = min(pa, pb, Ra - Ub, Tb - La)``, the last two each computed
    as the one of two equal forms (``Ra - Ub = Rb - Ua``, ``Tb - La = Ta - Lb``) that subtracts
    the smaller numbers (:func:`_slack`), and 0 when that is not positive: no difference of
    boundaries where one interval lies inside the other."""
    X = _slack(Ub, Ra, Ua, Rb)
    Y = _slack(La, Tb, Lb, Ta)
    return np.maximum(np.minimum(np.minimum(pa, pb), np.minimum(X, Y)), 0.0)


def _slack(gs, rt, gt, rs):
    """``1 - g(s) - g(t)`` as ``r(t) - g(s)`` or ``r(s) - g(t)`` (``r = 1 - g`` from the tail
    masses, ``g`` from the head masses, both accurate), whichever subtracts smaller numbers
    (its absolute error is a few ulps of the larger operand)."""
    first = np.maximum(rt, gs) <= np.maximum(rs, gt)
    return np.where(first, rt - gs, rs - gt)


def _diffpow(x: np.ndarray, y: np.ndarray, m: int) -> np.ndarray:
    """``sum_{l=0}^{m-1} x**(m-1-l) y**l``, so that ``x**m - y**m = (x - y) _diffpow``."""
    tot = np.zeros(np.broadcast(x, y).shape)
    for ell in range(m):
        tot = tot + x ** (m - 1 - ell) * y**ell
    return tot


def _pair_box(La, Ra, Ta, Ua, pa, Lb, Rb, Tb, Ub, pb, n: int) -> np.ndarray:
    """``P(v_i in [La, Ra), v_j in [Lb, Rb))`` for ``n >= 3`` without inclusion-exclusion.

    In the Dirichlet coordinates ``d = g(v)`` the box is ``[x0, x1) x [y0, y1)`` under the
    density of ``(d_i, d_j)`` on ``s + t < 1``, whose survival function is ``h(1 - s - t)``,
    ``h(t) = t_+**m``, ``m = n - 1``. With ``x = g(L)`` from the head mass ``L`` and
    ``1 - g(L) = T**(1/m)`` from the tail mass ``T = 1 - L`` (``U = 1 - R`` the tail after the
    category; heads summed from the start of the order, tails from its end; ``g`` from the
    head when it is at most 1/2, else as ``1 - T**(1/m)`` from the tail), the widths
    ``a = x1 - x0 = T**(1/m) (-expm1(log1p(-p/T)/m))`` for ``p/T <= 1/2`` (no difference of
    boundaries), ``T**(1/m) - U**(1/m)`` otherwise (a difference of order 1), and the
    corners' slacks ``A = 1 - x0 - y0``, ``Aa = 1 - x1 - y0``, ``Ab = 1 - x0 - y1``,
    ``c = 1 - x1 - y1``, each as ``(1 - g(t)) - g(s)`` or ``(1 - g(s)) - g(t)``, whichever
    subtracts the smaller numbers (:func:`_slack`):

    * ``A <= 0``: 0; only ``A > 0``: ``A**m``;
    * ``Aa >= 0 > Ab``: ``a _diffpow(A, Aa)`` (and symmetrically);
    * ``Aa, Ab >= 0 > c`` (the corner ``(x1, y1)`` outside): split at ``s = 1 - y1``:
      ``sum_{l=1}^{m-1} binom(m, l) Ab**l b**(m-l) + (-c) _diffpow(b, Aa)``;
    * ``c >= 0`` (all inside): ``sum_{j=2}^{m} binom(m, j) c**(m-j) sum_{l=1}^{j-1}
      binom(j, l) a**l b**(j-l)`` (the mixed difference of ``h``).

    Every term is non-negative, so the result carries the relative accuracy of its inputs
    (the slacks are differences, exact to a few ulps of 1: the geometry's own condition)."""
    m = n - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        rTa, rUa, rTb, rUb = Ta ** (1.0 / m), Ua ** (1.0 / m), Tb ** (1.0 / m), Ub ** (1.0 / m)
        qa = np.where(Ta > 0, pa / np.where(Ta > 0, Ta, 1.0), 1.0)
        qb = np.where(Tb > 0, pb / np.where(Tb > 0, Tb, 1.0), 1.0)
        a = np.where(qa > 0.5, rTa - rUa, rTa * -np.expm1(np.log1p(-np.minimum(qa, 0.5)) / m))
        b = np.where(qb > 0.5, rTb - rUb, rTb * -np.expm1(np.log1p(-np.minimum(qb, 0.5)) / m))
    gLa = np.where(La <= 0.5, _carms_g(La, n), 1.0 - rTa)
    gRa = np.where(Ra <= 0.5, _carms_g(Ra, n), 1.0 - rUa)
    gLb = np.where(Lb <= 0.5, _carms_g(Lb, n), 1.0 - rTb)
    gRb = np.where(Rb <= 0.5, _carms_g(Rb, n), 1.0 - rUb)
    A = _slack(gLa, rTb, gLb, rTa)
    Aa = _slack(gRa, rTb, gLb, rUa)
    Ab = _slack(gLa, rUb, gRb, rTa)
    c = _slack(gRa, rUb, gRb, rUa)
    Ap, Aap, Abp, cp = (np.maximum(x, 0.0) for x in (A, Aa, Ab, c))
    one_corner = Ap**m
    edge_a = a * _diffpow(Ap, Aap, m)  # Aa >= 0 > Ab
    edge_b = b * _diffpow(Ap, Abp, m)  # Ab >= 0 > Aa
    part1 = np.zeros(A.shape)
    cml = 1.0
    for ell in range(1, m):
        cml = cml * (m - ell + 1) / ell
        part1 = part1 + cml * Abp**ell * b ** (m - ell)
    three = part1 + np.maximum(-c, 0.0) * _diffpow(b, Aap, m)
    inside = np.zeros(A.shape)
    cmj = 1.0
    for j in range(1, m + 1):
        cmj = cmj * (m - j + 1) / j
        if j < 2:
            continue
        inner = np.zeros(A.shape)
        cjl = 1.0
        for ell in range(1, j):
            cjl = cjl * (j - ell + 1) / ell
            inner = inner + cjl * a**ell * b ** (j - ell)
        inside = inside + cmj * cp ** (m - j) * inner
    return np.where(A <= 0, 0.0,
                    np.where(c >= 0, inside,
                             np.where((Aa >= 0) & (Ab >= 0), three,
                                      np.where(Aa >= 0, edge_a,
                                               np.where(Ab >= 0, edge_b, one_corner)))))


def carms_pair_law(table: np.ndarray, n: int) -> np.ndarray:
    """``P_k(a, b)`` of the module docstring, ``(..., K, C, C)``, from logits ``(..., K, C)``.
    ``n = 2`` (the antithetic pair ``v_j = 1 - v_i``, whose law lives on a line) by the length
    of an intersection of intervals (:func:`_antithetic_box`): inclusion-exclusion there would
    leave rounding noise of ``1e-17`` on pairs that never occur, which the ratio turns into
    weights of ``1e14``."""
    p = _carms_probs(table)
    C = p.shape[-1]
    M = C * (C - 1) // 2
    P = np.zeros(p.shape + (C,))
    for m in range(M):
        o = carms_order(C, m)
        L = np.zeros(p.shape)
        R = np.zeros(p.shape)
        acc = np.zeros(p.shape[:-1])
        for j in range(C):
            c = o[j]
            L[..., c] = acc
            acc = acc + p[..., c]
            R[..., c] = 1.0 if j == C - 1 else acc
        T = np.zeros(p.shape)
        U = np.zeros(p.shape)
        acc = np.zeros(p.shape[:-1])
        for j in range(C - 1, -1, -1):
            c = o[j]
            U[..., c] = acc
            acc = acc + p[..., c]
            T[..., c] = 1.0 if j == 0 else acc
        if n == 2:
            P = P + _antithetic_box(L[..., :, None], R[..., :, None], T[..., :, None],
                                    U[..., :, None], p[..., :, None], L[..., None, :],
                                    R[..., None, :], T[..., None, :], U[..., None, :],
                                    p[..., None, :])
            continue
        P = P + _pair_box(L[..., :, None], R[..., :, None], T[..., :, None], U[..., :, None],
                          p[..., :, None], L[..., None, :], R[..., None, :], T[..., None, :],
                          U[..., None, :], p[..., None, :], n)
    # the law is symmetric (the copula is exchangeable); the two computations of P(a, b) and
    # P(b, a) differ by rounding, which the ratio's large diagonal weights would amplify
    P = 0.5 * (P + np.swapaxes(P, -1, -2))
    return P / M


def carms_ratio(table: np.ndarray, n: int) -> np.ndarray:
    """``r_k(a, b) = p_a p_b / P_k(a, b)`` (0 where ``P_k(a, b) <= 0``), ``(..., K, C, C)``."""
    p = _carms_probs(table)
    P = carms_pair_law(table, n)
    num = p[..., :, None] * p[..., None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(P > 0, num / np.where(P > 0, P, 1.0), 0.0)


def carms_weights(ratio: np.ndarray, z: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``w_ik = 1/(n(n-1)) sum_{j != i} r_k(z_ik, z_jk) (f_i - f_j)``: ``ratio`` ``(B, K, C, C)``,
    ``z`` ``(B, R, n, K)``, ``f`` ``(B, R, n)`` -> ``(B, R, n, K)`` (sums over ``j`` in order)."""
    B, R, n, K = z.shape
    kk = np.arange(K)
    w = np.zeros(z.shape)
    for i in range(n):
        acc = np.zeros((B, R, K))
        for j in range(n):
            if j != i:
                r = ratio[np.arange(B)[:, None, None], kk[None, None, :], z[:, :, i, :], z[:, :, j, :]]
                acc = acc + r * (f[:, :, i] - f[:, :, j])[..., None]
        w[:, :, i, :] = acc / (n * (n - 1))
    return w


def _carms_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    return Queries(carms_sample(logit_table(dist, params), noise["u"], noise["u_perm"]))


def _carms_combine(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict):
    z = queries.z
    w = carms_weights(carms_ratio(logit_table(dist, params), z.shape[2]), z, answers.f_z)
    s = get_distribution(dist).score(params, z)  # (B, R, n, K[, C])
    if dist == "categorical":
        w = w[..., None]
    return (w * s).sum(axis=2)


NUMPY_CARMS = Backend(_carms_queries, _carms_combine)


# ---------------------------------------------------------------------------- the records
def _vimco_u_shape(K: int, C: int, opts: dict[str, Any]) -> tuple[int, ...]:
    return (opts["n"], K)


def _joint_u_shape(K: int, C: int, opts: dict[str, Any]) -> tuple[int, ...]:
    N = int(C) ** int(K)
    if N > MAX_JOINT:
        raise ValueError(f"sampling without replacement by Gumbel-top-k on the joint space needs "
                         f"one uniform per configuration: C**K = {C}**{K} = {N} exceeds "
                         f"MAX_JOINT = {MAX_JOINT}")
    if opts["n"] > N:
        raise ValueError(f"n = {opts['n']} distinct configurations cannot be drawn from "
                         f"C**K = {N}")
    return (N,)


def _check_vimco(opts: dict[str, Any]) -> dict[str, Any]:
    opts["n"] = positive_int(opts["n"], "n (VIMCO needs n >= 2)", 2)
    return opts


def _check_unord(opts: dict[str, Any]) -> dict[str, Any]:
    opts["n"] = positive_int(opts["n"], "n (the built-in baseline needs n >= 2)", 2)
    if opts["n"] > MAX_N:
        raise ValueError(f"n = {opts['n']} exceeds MAX_N = {MAX_N}: the leave-one-out ratios "
                         f"cost 2**n terms per replicate (the exact oracle binom(C**K, n) 2**n n)")
    return opts


def _check_wor(opts: dict[str, Any]) -> dict[str, Any]:
    opts["n"] = positive_int(opts["n"], "n", 1)
    if opts["n"] > MAX_N:
        raise ValueError(f"n = {opts['n']} exceeds MAX_N = {MAX_N}: every set probability costs "
                         "2**n terms, for each of the binom(C**K, n) sets")
    opts["baseline"] = finite_scalar(opts["baseline"], "baseline")
    return opts


VIMCO = Estimator(
    name="vimco",
    title="VIMCO: n samples, leave-one-out signals against the geometric mean of the others",
    distributions=("bernoulli", "categorical"),
    unbiased=True,
    noise=(NoiseSpec("u", "uniform", _vimco_u_shape,
                     "u[..., r, i, k]: the uniform that draws z_k of sample i of replicate r "
                     "(inverse CDF; see reference.distributions)"),),
    option_defaults={"n": 2},
    check_options=_check_vimco,
    cost_fn=lambda K, C, o: Cost(o["n"]),
    backends=backend_paths("multi_sample", "VIMCO"),
    exact_moments_path="verify.moments.multi_sample:vimco_moments",
    references="Mnih & Rezende 2016 (arXiv 1602.06725), eq. 9 (geometric-mean variant)",
    examples=({"n": 2}, {"n": 3}),
    target="E[log (1/n) sum_i exp f(z_i)], z_i iid q (the multi-sample bound)",
    target_gradient_path="verify.moments.multi_sample:vimco_target_gradient",
)

UNORD = Estimator(
    name="unord",
    title="unordered set estimator with its built-in baseline, n samples without replacement",
    distributions=("bernoulli", "categorical"),
    unbiased=True,
    noise=(NoiseSpec("u", "uniform", _joint_u_shape,
                     "u[..., r, x]: the uniform of configuration x (index sum_k z_k C**(K-1-k)); "
                     "the sample is the n largest log q(x) - log(-log u[x]) (Gumbel-top-k)"),),
    option_defaults={"n": 2},
    check_options=_check_unord,
    cost_fn=lambda K, C, o: Cost(o["n"]),
    backends=backend_paths("multi_sample", "UNORD"),
    exact_moments_path="verify.moments.multi_sample:unord_moments",
    references="Kool, van Hoof & Welling 2020 (arXiv 2002.06043), eq. 10",
    examples=({"n": 2}, {"n": 3}),
)

REINFORCE_WOR = Estimator(
    name="reinforce_wor",
    title="REINFORCE without replacement: unord's samples, weights p(s)/pi(s) (exact inclusion "
          "probabilities), constant baseline",
    distributions=("bernoulli", "categorical"),
    unbiased=True,
    noise=UNORD.noise,
    option_defaults={"n": 2, "baseline": 0.0},
    check_options=_check_wor,
    cost_fn=lambda K, C, o: Cost(o["n"]),
    backends=backend_paths("multi_sample", "WOR"),
    exact_moments_path="verify.moments.multi_sample:reinforce_wor_moments",
    references="Kool, van Hoof & Welling 2020 (arXiv 2002.06043), section 2.3; Horvitz & "
               "Thompson 1952",
    # n = 2 only: under the CUDA simulator the 41,664 sets of n = 3 on the K=3, C=4 problem
    # take minutes (tests/test_multi_sample.py runs n = 3 on every backend on smaller spaces)
    examples=({"n": 2}, {"n": 2, "baseline": 0.5}),
)


def _carms_u_shape(K: int, C: int, opts: dict[str, Any]) -> tuple[int, ...]:
    return (opts["n"], K)


def _carms_perm_shape(K: int, C: int, opts: dict[str, Any]) -> tuple[int, ...]:
    return (K,)


def _check_carms(opts: dict[str, Any]) -> dict[str, Any]:
    opts["n"] = positive_int(opts["n"], "n (CARMS needs n >= 2 samples to pair)", 2)
    if opts["n"] > CARMS_MAX_N:
        raise ValueError(f"n = {opts['n']} exceeds CARMS_MAX_N = {CARMS_MAX_N}: the pair law's "
                         "survival function (1 - g(s) - g(t))**(n-1) loses about n eps of relative "
                         "accuracy")
    return opts


CARMS = Estimator(
    name="carms",
    title="CARMS: n antithetic samples (Dirichlet copula, random order of the categories), "
          "leave-one-out pairs weighted by the exact independent/copula pair-law ratio",
    distributions=("bernoulli", "categorical"),
    unbiased=True,
    noise=(NoiseSpec("u", "uniform", _carms_u_shape,
                     "u[..., r, i, k]: E = -log1p(-u), d_k = E[:, k] / sum_i E[i, k] "
                     "(Dirichlet(1_n) over the n samples), v = 1 - (1 - d)**(n-1) (Beta(1, n-1) "
                     "CDF: uniform marginals), z_ik by inverse CDF of v_ik in the order of "
                     "u_perm"),
           NoiseSpec("u_perm", "uniform", _carms_perm_shape,
                     "u_perm[..., r, k]: m = min(floor(u_perm C(C-1)/2), C(C-1)/2 - 1) picks "
                     "the m-th pair a < b; the order is b, the others increasing, a")),
    option_defaults={"n": 2},
    check_options=_check_carms,
    cost_fn=lambda K, C, o: Cost(o["n"]),
    backends=backend_paths("multi_sample", "CARMS"),
    exact_moments_path="verify.moments.multi_sample:carms_moments",
    references="Dimitriev & Zhou 2021 (arXiv 2110.14002), CARMS, section 3 (exact pair ratio, "
               "not the authors' code's clipped one); ARMS (Dimitriev & Zhou, ICML 2021, "
               "arXiv 2105.14141) for C = 2",
    examples=({"n": 2}, {"n": 3}),
)
