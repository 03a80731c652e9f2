"""Exact moments of AR, ARM and DisARM (DESIGN.md section 5.2, "uniform thresholds").

Pure NumPy, float64, no sampling. One draw of each estimator is ``g_p = F(cells) w_p(u_p)``:

* per dimension ``k`` the thresholds ``lo_k = min(s(-phi_k), s(phi_k))`` and
  ``hi_k = max(...)`` (``s`` the shared two-branch sigmoid, so the cells are those of the
  implementation) split ``[0, 1)`` into three cells ``[0, lo)``, ``[lo, hi)``, ``[hi, 1)`` on
  which ``(b1_k, b2_k)`` is constant: ``(0, 1)``, ``(m, m)`` with ``m = 1[phi_k >= 0]``, and
  ``(1, 0)``; the AR sample is ``z = b2``;
* the factor ``F`` depends only on the cells: ``f(b2)`` (AR) or ``f(b1) - f(b2)`` (ARM,
  DisARM), a tensor of shape ``(3,) * K``;
* the weight of coordinate ``p`` depends only on ``u_p``: ``1 - 2u`` (AR), ``u - 1/2`` (ARM),
  and for DisARM the constant ``-s(|phi|)/2``, ``0``, ``+s(|phi|)/2`` on the three cells.

Since the ``u_k`` are independent, with per-cell integrals ``I_j[k, c] = int_cell w_k^j du``
(``j = 0, 1, 2``; exact polynomial integrals)::

    E[g_p]       = sum_cells F     I_1[p, c_p]            prod_{k != p}    I_0[k, c_k]
    E[g_p g_q]   = sum_cells F^2   I_1[p, c_p] I_1[q, c_q] prod_{k != p,q} I_0[k, c_k]
    E[g_p^2]     = sum_cells F^2   I_2[p, c_p]            prod_{k != p}    I_0[k, c_k]

**General method** (any objective, ``K <= MAX_GENERAL_K``): contract ``F`` along every axis
``k`` with the ``(2, 3)`` matrix of rows ``I_0, I_1``; the entries of the resulting ``(2,) * K``
tensor whose index is 1 at ``p``, 0 elsewhere are the means. The covariance is summed centred
over the ``3**K`` products of cells (Precision, below): ``O(3**K K**2)`` work in blocks, DisARM
at ``K = 12`` in about 0.3 s (0.06 s with the former uncentred form; measured on a shared
2-core machine).

**Separable method** (``f(z) = sum_k h_k(z_k)``, e.g. the binary quadratic toy): then
``F = sum_k a_k(c_k)`` with ``a_k = h_k(b2_k)`` or ``h_k(b1_k) - h_k(b2_k)``, and with the
per-dimension moments ``m_k[i, j] = sum_c a_k(c)^i I_j[k, c]``, ``mu_k = m_k[1, 0]``,
``v_k = m_k[2, 0] - mu_k^2`` and sums ``S1``, ``S2 = S1^2 + sum v`` over the other
dimensions::

    E[g_p]     = m_p[1,1] + m_p[0,1] S1(not p)
    E[g_p^2]   = m_p[2,2] + 2 m_p[1,2] S1(not p) + m_p[0,2] S2(not p)
    E[g_p g_q] = m_p[2,1] m_q[0,1] + 2 m_p[1,1] m_q[1,1] + m_p[0,1] m_q[2,1]
                 + 2 (m_p[1,1] m_q[0,1] + m_p[0,1] m_q[1,1]) S1(not p,q)
                 + m_p[0,1] m_q[0,1] S2(not p,q)

``O(K^2)`` work, so ``K = 20`` (``3**20`` cells) is instant. Objectives are recognised as
separable by type (:class:`reference.objectives.BinaryQuadratic`) or by a method
``separable_terms()`` returning ``h`` of shape ``(K, 2)``, ``h[k, z_k]``.

The cells are those of the float64 implementation: near ``|phi| = 30`` the cell ``[hi, 1)``
has length ``1 - fl(s(|phi|))``, which can differ from ``s(-|phi|)`` by an ulp of 1
(``1.1e-16``), so the exact mean of the implemented estimator can differ from the true gradient
by about ``1e-16 max|f|`` in absolute terms (a relative difference of ``1e-3`` is possible in a
coordinate whose gradient is ``1e-13``). The tests compare with that absolute slack.

Precision (certified against :func:`binary_moments_mp` on the same float64 cells, logits up
to +-50, ``tests/test_certificates.py``): every entry of the mean agrees to about 1e-15
relative (plus a few ulps of its terms' absolute sum where the terms cancel, e.g. AR at
``phi = 40``, whose float64 cells make the mean exactly 0); the general method's covariance to
1e-12 of the correlation scale ``sqrt(S_pp S_qq)`` (measured 7e-16), because it is computed
centred, by the law of total covariance over the products of cells (:func:`_centred_cov`):
``E[g g^T] - mean mean^T``, the former form, kept only the digits of ``variance / mean^2`` for a
nearly deterministic coordinate. The separable method's covariance is centred too
(:func:`_separable`; certified to 1e-12 of ``sqrt(S_pp S_qq)``, measured 1.1e-15 over 180
random problems at logits up to +-50, where the former raw-moment form was off by up to
8.5e6 times that scale). The per-cell integrals of the weights are computed without cancellation (factored
differences of cubes; they lost 1e-4 at saturated logits).

With ``n`` draws averaged the covariance is divided by ``n``. ``range_bound`` bounds
``|g_p - E g_p|`` by ``max |F| sup |w_p| + |E g_p|`` over the cells of positive length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reference.distributions import sigmoid
from reference.objectives import BinaryQuadratic

from ..exact import Problem, check_budget, make_problem
from . import Moments

__all__ = ["binary_moments_mp", "ar_moments", "arm_moments", "disarm_moments", "binary_moments",
           "separable_terms", "BinaryCells",
           "binary_cells", "MAX_GENERAL_K"]

#: the general method stores tensors of 3**K float64 (K = 15: 115 MB each)
MAX_GENERAL_K = 15
_KINDS = ("ar", "arm", "disarm")
_METHODS = ("auto", "general", "separable")


@dataclass(frozen=True)
class BinaryCells:
    """Per-dimension cells: all arrays ``(K, 3)`` over the cells ``[0,lo), [lo,hi), [hi,1)``."""

    b1: np.ndarray  # int, b1_k on the cell
    b2: np.ndarray  # int, b2_k on the cell (the AR sample)
    integrals: np.ndarray  # (3, K, 3): I_j[k, c] = int_cell w_k(u)^j du, j = 0, 1, 2
    w_sup: np.ndarray  # sup of |w_k| on the cell
    positive: np.ndarray  # bool, cell of positive length
    w_mean: np.ndarray  # mean of w_k over the cell (its value at the midpoint)
    w_var: np.ndarray  # variance of w_k(u) for u uniform on the cell


def binary_cells(kind: str, phi: np.ndarray) -> BinaryCells:
    """The three cells per dimension for ``kind`` in ``("ar", "arm", "disarm")``."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    phi = np.asarray(phi, dtype=np.float64)
    a, c = sigmoid(-phi), sigmoid(phi)
    lo, hi = np.minimum(a, c), np.maximum(a, c)
    K = phi.shape[0]
    left = np.stack([np.zeros(K), lo, hi], axis=1)
    right = np.stack([lo, hi, np.ones(K)], axis=1)
    mid = (a <= c).astype(np.int64)  # on [lo, hi): b1 = b2 = 1 if phi >= 0 else 0
    b1 = np.stack([np.zeros(K, np.int64), mid, np.ones(K, np.int64)], axis=1)
    b2 = np.stack([np.ones(K, np.int64), mid, np.zeros(K, np.int64)], axis=1)
    length = right - left
    if kind == "ar":  # w = 1 - 2u
        # (1 - right) - left, not 1 - (left + right): 1 - right is exact (Sterbenz) and
        # lo + 1 would round away a tiny lo at saturated logits
        i1 = length * ((1.0 - right) - left)
        # a^3 - b^3 = (a - b)(a^2 + ab + b^2) with a - b = 2 length: no cancellation on
        # cells of width 1e-13 (saturated logits), where the difference of cubes kept 1e-4
        A, B = 1.0 - 2.0 * left, 1.0 - 2.0 * right
        i2 = length * (A * A + A * B + B * B) / 3.0
        w_sup = np.maximum(np.abs(1.0 - 2.0 * left), np.abs(1.0 - 2.0 * right))
        w_mean, w_var = (1.0 - right) - left, length * length / 3.0  # slope 2: (2 L)^2 / 12
    elif kind == "arm":  # w = u - 1/2
        i1 = length * (0.5 * ((left - 0.5) + (right - 0.5)))
        A, B = right - 0.5, left - 0.5  # factored difference of cubes, as for AR
        i2 = length * (A * A + A * B + B * B) / 3.0
        w_sup = np.maximum(np.abs(left - 0.5), np.abs(right - 0.5))
        w_mean, w_var = 0.5 * ((left - 0.5) + (right - 0.5)), length * length / 12.0
    else:  # DisARM: w = 1/2 (-1)^{b2} 1[b1 != b2] sigmoid(|phi|), constant on each cell
        s = sigmoid(np.abs(phi))
        w = 0.5 * np.stack([-s, np.zeros(K), s], axis=1)
        i1, i2, w_sup = length * w, length * w**2, np.abs(w)
        w_mean, w_var = w, np.zeros_like(w)
    return BinaryCells(b1, b2, np.stack([length, i1, i2]), w_sup, length > 0, w_mean, w_var)


# ------------------------------------------------------------------------- separability
def separable_terms(objective: Any) -> np.ndarray | None:
    """``h`` of shape ``(K, 2)`` with ``f(z) = sum_k h[k, z_k]``, or ``None`` if not known.

    Recognises :class:`reference.objectives.BinaryQuadratic` (``h[k, z] = (z - t)^2``) and any
    objective with a ``separable_terms()`` method.
    """
    if isinstance(objective, BinaryQuadratic):
        row = (np.array([0.0, 1.0]) - objective.t) ** 2
        return np.tile(row, (objective.K, 1))
    fn = getattr(objective, "separable_terms", None)
    if callable(fn):
        h = np.asarray(fn(), dtype=np.float64)
        if h.shape != (objective.K, 2):
            raise ValueError(f"separable_terms() must return shape ({objective.K}, 2), got {h.shape}")
        return h
    return None


# -------------------------------------------------------------------------- the methods
def _contract(T: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """Contract axis ``k`` of ``T`` (``(3,) * K``) with ``mats[k]`` (``(r, 3)``) for every ``k``."""
    for k in range(mats.shape[0]):
        # axis 0 of T is always the original axis k; the new axis goes last, so after K
        # steps the axes are back in their original order
        T = np.tensordot(T, mats[k], axes=([0], [1]))
    return T


def _factor_tensor(kind: str, cells: BinaryCells, f_table: np.ndarray) -> np.ndarray:
    """``F`` on every combination of cells, shape ``(3,) * K``."""
    f_b2 = f_table[np.ix_(*cells.b2)]
    if kind == "ar":
        return f_b2
    return f_table[np.ix_(*cells.b1)] - f_b2


#: the centred covariance sweeps the ``3**K`` cell products in blocks of ``3**_BLOCK_AXES``
_BLOCK_AXES = 10


def _centred_cov(F: np.ndarray, cells: BinaryCells, mean: np.ndarray) -> np.ndarray:
    """``Cov g`` by the law of total covariance over the products of cells, each with
    probability ``W = prod_k L_k``: given the cells, ``g_p = F w_p(u_p)`` has mean ``F wbar_p``
    and variance ``F^2 var_p`` (``u_p`` uniform on its cell), and the ``u`` are independent, so
    ``Cov_pq = sum W (F wbar_p - mean_p)(F wbar_q - mean_q) + 1[p = q] sum W F^2 var_p``.
    Every term is a product of accurate factors; ``E[g g^T] - mean mean^T`` (the former form)
    cancels when a coordinate is nearly deterministic (logits ``+-30..50``: variances of 1e-22
    next to squared means of 1 kept no digit).

    The sum runs over blocks: the first ``h = K - _BLOCK_AXES`` axes fixed per block (their
    cells are scalars there), the trailing ones a full grid whose per-axis patterns of
    ``wbar``, ``var`` and ``W`` are built once; each block is one ``(K, 3**t)`` matrix product."""
    K = F.ndim
    h = max(0, K - _BLOCK_AXES)
    t = K - h
    L, wbar, wvar = cells.integrals[0], cells.w_mean, cells.w_var
    W_t = np.ones(())
    for k in range(h, K):
        W_t = np.multiply.outer(W_t, L[k])
    W_t = W_t.ravel()

    def pattern(vals: np.ndarray, p: int) -> np.ndarray:  # axis p's values over the grid
        shape = [1] * t
        shape[p] = 3
        return np.broadcast_to(vals.reshape(shape), (3,) * t).ravel()

    wbar_t = np.stack([pattern(wbar[h + p], p) for p in range(t)])  # (t, 3**t)
    wvar_t = np.stack([pattern(wvar[h + p], p) for p in range(t)])
    blocks = F.reshape(3**h, 3**t)
    cov, within = np.zeros((K, K)), np.zeros(K)
    A = np.empty((K, 3**t))
    for lead in range(3**h):
        c_lead = [int(c) for c in np.unravel_index(lead, (3,) * h)] if h else []
        W = W_t * float(np.prod([L[p, c] for p, c in enumerate(c_lead)]))
        if not np.any(W > 0):
            continue
        f = blocks[lead]
        for p, c in enumerate(c_lead):
            A[p] = f * wbar[p, c] - mean[p]
        A[h:] = f * wbar_t - mean[h:, None]
        cov += (A * W) @ A.T
        ff = W * f * f
        for p, c in enumerate(c_lead):
            within[p] += ff.sum() * wvar[p, c]
        within[h:] += wvar_t @ ff
    cov[np.diag_indices(K)] += within
    return cov


def _general(kind: str, cells: BinaryCells, f_table: np.ndarray):
    K = cells.b1.shape[0]
    F = _factor_tensor(kind, cells, f_table)
    I0, I1, _ = cells.integrals
    T1 = _contract(F, np.stack([I0, I1], axis=1))  # (2,) * K
    mean = np.empty(K)
    for p in range(K):
        idx = [0] * K
        idx[p] = 1
        mean[p] = T1[tuple(idx)]
    cov = _centred_cov(F, cells, mean)
    # range: max |F| over the cells of positive length with c_p fixed, times sup |w_p| there
    absF = np.abs(F)
    for k in range(K):
        shape = [1] * K
        shape[k] = 3
        absF = absF * cells.positive[k].reshape(shape)
    g_max = np.empty(K)
    for p in range(K):
        per_cell = absF.max(axis=tuple(j for j in range(K) if j != p))
        g_max[p] = np.max(per_cell * cells.w_sup[p] * cells.positive[p])
    return mean, cov, g_max


def _sums_without_one(x: np.ndarray) -> np.ndarray:
    """``sum_{k != p} x_k`` for every ``p`` as prefix plus suffix sums: no subtraction, so the
    rounding is relative to the absolute sum of the terms kept (``total - x_p`` is not, when
    ``x_p`` dominates the total)."""
    prefix = np.concatenate([[0.0], np.cumsum(x)[:-1]])
    suffix = np.concatenate([np.cumsum(x[::-1])[::-1][1:], [0.0]])
    return prefix + suffix


def _sums_without_two(x: np.ndarray) -> np.ndarray:
    """``sum_{k != p, q} x_k`` for every pair ``p != q`` (``(K, K)``, diagonal unused), as sums
    of the three runs of ``k`` left of, between and right of the pair: no subtraction."""
    K = x.shape[0]
    prefix = np.concatenate([[0.0], np.cumsum(x)])  # prefix[i] = sum_{k < i}
    suffix = np.concatenate([np.cumsum(x[::-1])[::-1], [0.0]])  # suffix[i] = sum_{k >= i}
    # run[i, j] = sum_{i <= k < j} (0 for j <= i), each row its own cumulative sum
    run = np.cumsum(np.triu(np.broadcast_to(x, (K, K))), axis=1)  # sum_{i <= k <= j}
    out = np.zeros((K, K))
    lo, hi = np.triu_indices(K, 1)
    between = np.where(hi - 1 >= lo + 1, run[np.minimum(lo + 1, K - 1), hi - 1], 0.0)
    out[lo, hi] = prefix[lo] + between + suffix[hi + 1]
    out[hi, lo] = out[lo, hi]
    return out


def _separable(kind: str, cells: BinaryCells, h: np.ndarray):
    """Mean and *centred* covariance for ``f(z) = sum_k h_k(z_k)``: ``g_p = W_p (A_p + S_p)``
    with ``A_k = a_k(cell_k)``, ``W_p = w_p(u_p)`` and ``S_p = sum_{k != p} A_k`` independent
    of ``u_p``. With ``mu_k = E A_k``, ``var_k = Var A_k``, ``nu_p = E W_p``,
    ``c_p = Cov(W_p, A_p)``, ``s_p = sum_{k != p} mu_k`` and
    ``D_p = Cov(W_p (A_p + s_p), A_p)``:

    * ``mean_p = E[A_p W_p] + nu_p s_p``;
    * ``Cov_pq = nu_q D_p + nu_p D_q + c_p c_q + nu_p nu_q sum_{k != p, q} var_k`` (``p != q``;
      expand both in centred variables of ``u_p``, ``u_q`` and the rest: only the products
      whose every independent group appears twice survive);
    * ``Var g_p = sum_cells L [(a + s_p)^2 var_w + ((a + s_p) wbar - mean_p)^2]
      + E[W_p^2] sum_{k != p} var_k`` (law of total variance over ``u_p``'s cells).

    Every quantity is a sum over a dimension's three cells of centred products, and the sums
    over other dimensions are taken without subtraction (:func:`_sums_without_one`), so no
    ``E[g g^T] - mean mean^T`` cancels (it kept no digit of a 1e-22 variance next to a squared
    mean of 1 at logits +-50)."""
    K = h.shape[0]
    rows = np.arange(K)[:, None]
    a = h[rows, cells.b2] if kind == "ar" else h[rows, cells.b1] - h[rows, cells.b2]  # (K, 3)
    L, wbar, wvar = cells.integrals[0], cells.w_mean, cells.w_var
    mu = (L * a).sum(axis=1)
    ac = a - mu[:, None]
    var = (L * ac * ac).sum(axis=1)
    nu = (L * wbar).sum(axis=1)
    c = (L * ac * wbar).sum(axis=1)
    s = _sums_without_one(mu)
    k = a + s[:, None]  # A_p + s_p on each cell
    mean = (L * k * wbar).sum(axis=1)
    D = (L * k * ac * wbar).sum(axis=1)
    cov = np.outer(nu, D) + np.outer(D, nu) + np.outer(c, c) \
        + np.outer(nu, nu) * _sums_without_two(var)
    ew2 = (L * (wvar + wbar * wbar)).sum(axis=1)
    dev = k * wbar - mean[:, None]
    cov[np.diag_indices(K)] = (L * (k * k * wvar + dev * dev)).sum(axis=1) \
        + ew2 * _sums_without_one(var)
    # range: |F| <= |a_p(c_p)| + sum_{k != p} max |a_k| over cells of positive length
    a_max = np.where(cells.positive, np.abs(a), 0.0).max(axis=1)
    others = _sums_without_one(a_max)
    g_max = np.max((np.abs(a) + others[:, None]) * cells.w_sup * cells.positive, axis=1)
    return mean, cov, g_max


def binary_moments(kind: str, dist: Any, params: object, objective: Any, n: int = 1,
                   method: str = "auto") -> Moments:
    """Exact mean ``(K,)`` and covariance ``(K, K)`` of ``kind`` in ``("ar", "arm", "disarm")``
    with ``n`` draws (pairs) averaged.

    ``method``: ``"general"`` (any objective, ``K <= MAX_GENERAL_K``), ``"separable"``
    (objectives recognised by :func:`separable_terms`, any ``K``) or ``"auto"`` (separable
    when possible).
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    pr: Problem = make_problem(dist, params, objective)
    if pr.dist.name != "bernoulli":
        raise ValueError(f"{kind} takes Bernoulli logits, not {pr.dist.name!r}")
    cells = binary_cells(kind, pr.params)
    h = separable_terms(objective) if method in ("auto", "separable") else None
    if method == "separable" and h is None:
        raise ValueError(f"{objective!r} is not recognised as separable (see separable_terms)")
    if h is not None:
        check_budget("the separable binary moments", memory_bytes=8.0 * 12 * pr.K * pr.K,
                     operations=40.0 * pr.K * pr.K)
        mean, cov, g_max = _separable(kind, cells, h)
        how = "separable closed form, covariance centred"
    else:
        if pr.K > MAX_GENERAL_K:
            raise ValueError(f"the general method handles K <= {MAX_GENERAL_K} (3**K cells), got "
                             f"K={pr.K}; separable objectives use the fast path (raise "
                             "verify.moments.augment_reinforce.MAX_GENERAL_K deliberately to try)")
        # F, F^2 and the contractions (3**K each), the table (2**K), per chunk (m, K) arrays;
        # the centred covariance is K**2 per product of cells
        check_budget("the general binary moments",
                     memory_bytes=8.0 * (4 * 3.0**pr.K + 2.0**pr.K + 6 * 3.0**_BLOCK_AXES * pr.K),
                     operations=3.0**pr.K * (2 * pr.K * pr.K + 12 * pr.K))
        mean, cov, g_max = _general(kind, cells, pr.f_table())
        how = "tensor contraction over 3**K cells, covariance centred per cell"
    cov = cov / n
    cov = 0.5 * (cov + cov.T)
    return Moments(mean, cov, f"exact: per-dimension cell integrals, {how}",
                   range_bound=g_max + np.abs(mean))


def ar_moments(dist: Any, params: object, objective: Any, n: int = 1,
               method: str = "auto") -> Moments:
    """Exact moments of AR, ``g = f(z) (1 - 2u)``, ``n`` draws averaged."""
    return binary_moments("ar", dist, params, objective, n, method)


def arm_moments(dist: Any, params: object, objective: Any, n: int = 1,
                method: str = "auto") -> Moments:
    """Exact moments of ARM, ``g = (f(b1) - f(b2)) (u - 1/2)``, ``n`` pairs averaged."""
    return binary_moments("arm", dist, params, objective, n, method)


def disarm_moments(dist: Any, params: object, objective: Any, n: int = 1,
                   method: str = "auto") -> Moments:
    """Exact moments of DisARM (= U2G), ``n`` pairs averaged."""
    return binary_moments("disarm", dist, params, objective, n, method)


# ------------------------------------------------------------- arbitrary precision
def binary_moments_mp(kind: str, dist: Any, params: object, objective: Any, n: int = 1, *,
                      dps: int = 60, float_cells: bool = True) -> Moments:
    """:func:`binary_moments` in arbitrary precision (``mpmath``, ``dps`` digits) by a direct
    sum over the ``3**K`` products of cells with the closed-form integrals of the weights,
    rounded to float64 at the end; small ``K`` only.

    ``float_cells=True`` (default) takes the thresholds of the float64 implementation
    (``fl(sigmoid(+-phi))``) as exact, so it certifies the float64 method's arithmetic;
    ``False`` uses the true thresholds: the moments of the mathematical estimator, which differ
    at saturated logits, where ``fl(sigmoid(50))`` is 1 (module docstring)."""
    import itertools

    import mpmath

    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    pr = make_problem(dist, params, objective)
    phi, f_table, K = pr.params, pr.f_table(), pr.K
    ctx = mpmath.mp.clone()
    ctx.dps = dps

    def sig(x: float):
        if float_cells:
            return ctx.mpf(float(sigmoid(np.array([x]))[0]))
        return 1 / (1 + ctx.exp(-ctx.mpf(float(x))))

    dims = []
    for k in range(K):
        lo, hi = sorted([sig(-phi[k]), sig(phi[k])])
        cells = []
        for left, right in ((ctx.mpf(0), lo), (lo, hi), (hi, ctx.mpf(1))):
            if right <= left:
                continue
            mid = (left + right) / 2
            b1, b2 = int(mid > sig(-phi[k])), int(mid < sig(phi[k]))
            m1 = ((right - 0.5) ** 2 - (left - 0.5) ** 2) / 2  # int (u - 1/2) du
            m2 = ((right - 0.5) ** 3 - (left - 0.5) ** 3) / 3  # int (u - 1/2)^2 du
            if kind == "ar":  # w = 1 - 2u = -2 (u - 1/2)
                i1, i2 = -2 * m1, 4 * m2
            elif kind == "arm":
                i1, i2 = m1, m2
            else:
                w = (0 if b1 == b2 else (-1) ** b2) * sig(abs(phi[k])) / 2
                i1, i2 = w * (right - left), w * w * (right - left)
            cells.append((right - left, i1, i2, b1, b2))
        dims.append(cells)
    mean = [ctx.mpf(0)] * K
    second = [[ctx.mpf(0)] * K for _ in range(K)]
    for combo in itertools.product(*dims):
        if kind == "ar":
            F = ctx.mpf(float(f_table[tuple(c[4] for c in combo)]))
        else:
            F = (ctx.mpf(float(f_table[tuple(c[3] for c in combo)]))
                 - ctx.mpf(float(f_table[tuple(c[4] for c in combo)])))
        lengths = [c[0] for c in combo]
        for p in range(K):
            rest = ctx.fprod(lengths[:p] + lengths[p + 1:])
            mean[p] += F * combo[p][1] * rest
            second[p][p] += F * F * combo[p][2] * rest
            for q in range(p + 1, K):
                rest2 = ctx.fprod([x for j, x in enumerate(lengths) if j not in (p, q)])
                v = F * F * combo[p][1] * combo[q][1] * rest2
                second[p][q] += v
                second[q][p] += v
    cov = [[(second[p][q] - mean[p] * mean[q]) / n for q in range(K)] for p in range(K)]
    return Moments(np.array([float(x) for x in mean]),
                   np.array([[float(x) for x in row] for row in cov]), f"mpmath ({dps} digits)")
