"""Exact moments of the categorical swap estimators (ARS, ARSM, ARS+, ARSM+, ARSM+ with the
conditional expectation): exponential races in closed form (ARS, ARSM, ARSM+) and exact
integration over polytopes of the simplex (the reduced variants); ARS+ and ARSM+CE past
their cells certified (races and RQMC).

Setting (see :mod:`reference.estimators.swap.numpy_reference` for the estimators). Per dimension ``k``,
``pi_k ~ Dirichlet(1_C)`` (uniform on the simplex), independently across ``k``; with
``w_ki = exp(-alpha_ki)``, the swapped argmin for the transposition ``sigma = (m j)`` is
``Z_k[m, j] = argmin_i w_ki pi_{k, sigma(i)}`` (``Z_k[j, j] = z_k``, ``Z_k`` symmetric). Each
estimator has the form ::

    g_kc = sum_j gamma_j A^j_c W_kj,    A^j_c = f(Z[c, j]) - (1/C) sum_m f(Z[m, j]),

with ``f(Z[m, j]) = f(Z_0[m, j], ..., Z_{K-1}[m, j])`` and a per-dimension weight ``W_kj``:
``1 - C pi_kj`` (ARS, ARSM), times ``1 - delta_kj`` (symmetry), or
``(1 - delta_kj)(1 - C (lo_kjl + hi_kjl)/2)`` (conditional expectation, ``l`` uniform among
the other ``C - 1`` categories, independently per dimension and per ``j``). ARS draws one
``j`` uniformly (``gamma = e_j``, then averaged over ``j``); ARSM sums with
``gamma_j = 1/C``.

Method. Everything is assembled from per-dimension *pair tables* (``[m, j, p, q, x, y]``)::

    P2_k = P(Z_k[m,j] = x, Z_k[p,q] = y)
    L2_k = E[W_kj 1{Z_k[m,j] = x, Z_k[p,q] = y}]
    Q2_k = E[W_kj W_kq 1{Z_k[m,j] = x, Z_k[p,q] = y}]

(1) Per dimension, by weight:

* plain (ARS, ARSM), any ``C <= MAX_RACE_C``: closed-form exponential races for every pair
  of swaps (:mod:`verify.moments.races`: ``pi`` as normalized exponentials; no cells),
  accurate relative to each entry at any logits;
* ARSM+ (the symmetry factor), float64, any ``C <= MAX_RACE_C``: the plain tables minus
  corrections on the events ``delta_j = 1`` (:mod:`verify.moments.races_sym`: at most three
  race winners, or boxes when ``j`` is the argmax), with rounding bounds for their signed
  terms (``err_L2``, ``err_Q2``, used by :func:`_table_eps`); equal to the cells to 1e-15
  where both exist (``tests/test_swap_races_sym.py``). The cells below remain ARSM+'s
  ``mpmath`` path;
* ARS+ (conditional expectation, one ``j``): for each ``(j, l)`` separately, the simplex is
  split into convex cells on which the swaps ``(m, j)`` and the active pieces of ``lo`` (a max
  of linear functions of ``pi``) and ``hi`` (a min) of the pair ``(j, l)`` are constant
  (:func:`verify.moments.polytope.refine`); the ``C (C - 1)`` small arrangements replace the
  common refinement of all pairs (K = 3, C = 4: about 2 000 cells per dimension instead of
  12 000);
* ARSM+, ARSM+CE: one arrangement for every swap (and every ``(j, l)``), cells refined only
  where a vertex test shows that something varies.
* ARS+ past its cells (rows of distinct logits, ``MAX_ARS_PLUS_C < C <= MAX_RACE_C``),
  **certified**, not exact: given ``pi`` outside ``{j, l}``, ``s`` and the row of swaps,
  ``pi_j`` is uniform on ``[lo, hi]``, so ARS+'s ``L2`` (entries ``q = j``, all it uses) is
  ARSM+'s (races, exact) and its ``Q2`` is ARSM+'s minus ``C^2 / 12`` times the interval
  variance ``V = mean_l E[(1 - delta_j)(hi - lo)^2 1{...}]``, which
  :mod:`verify.moments.swap_interval` estimates by randomized QMC with ``pi_j`` integrated
  out exactly on its pieces (``ARS_PLUS_RQMC_RANDOMIZATIONS`` scrambled Sobol sets of
  ``2**ARS_PLUS_RQMC_LOG2_POINTS`` points). The mean stays exact; the covariance is linear
  in each dimension's ``V`` (block ``(k, k)`` only), so every randomization gives a whole
  covariance and their spread a Student-t half-width at confidence
  ``RQMC_CONFIDENCE``, the largest over the entries being ``error_bound``
  (:func:`_interval_half_width`). Measured at ``C = 10``, logits ``1.5 N(0, 1)``: 5e-4 (``K =
  2``, 36 s) and 3e-4 (``K = 3``, 53 s) of the largest entry on 2 cores (every row's races
  and randomizations side by side on the threads, :func:`_ars_plus_interval_tensors`).
* ARSM+CE past its cells (``MAX_CE_C < C <= MAX_RACE_C``), **certified** the same way: its
  tables are ARSM+'s plus corrections (:func:`verify.moments.swap_interval.ce_correction_tables`:
  ``L2`` where ``q != j``, ``Q2`` everywhere, ``V`` where ``q = j``), so the mean stays exact.
  The cross-dimension terms multiply two dimensions' estimates, so every dimension has its
  own points; the second moment is contracted once from the dimensions' mean tables, and the
  half-width is that of each randomization's first-order deviation
  (:func:`_ce_certified_moments`). Measured at ``C = 10``: 1.5e-3 (``K = 2``, 25 s) and
  1.0e-3 (``K = 3``, 56 s) of the largest entry on 2 cores.

On each cell the weights are linear in ``pi``, so ``P(cell)``, ``E[W_j 1{cell}]`` and
``E[W_j W_j' 1{cell}]`` follow exactly from the cell's moments of degree <= 2
(:func:`verify.moments.polytope.cell_moments`: fan triangulation and the closed form over simplices).
The ``l`` average is taken inside: ``E[W_j W_j']`` uses ``mean_l W_jl`` for ``j != j'``
(independent ``l``) and ``mean_l W_jl^2`` for ``j = j'`` (the same ``l``).

(2) Across dimensions, which are independent given ``j`` (and the ``l``), in *difference
form*: with ``A^j_c = (1/C) sum_m (f(Z[c, j]) - f(Z[m, j]))`` and ``f(Z[m, j]) =
f(Z_0[m, j], ..., Z_{K-1}[m, j])``::

    E[g_kc] = (1/C^2) sum_{j,m} sum_{x,y} (f(x) - f(y)) L2_k[c,j,m,j,x_k,y_k]
                                         prod_{i != k} P2_i[c,j,m,j,x_i,y_i]

and, by the polarization ``(a - b)(c - d) = ((a - d)^2 + (b - c)^2 - (a - c)^2 - (b - d)^2)/2``,
``E[g_kc g_k'c']`` is a combination of ::

    S(a, j; b, q) = sum_{x,y} (f(x) - f(y))^2 prod_i T_i[a,j,b,q,x_i,y_i]

with ``T_i = Q2_i`` if ``i = k = k'``, ``L2_i`` (weight of ``j``) if ``i = k != k'``, its
transpose (weight of ``q``) if ``i = k' != k``, else ``P2_i``; ``Gamma = I / C`` (ARS family,
only ``q = j``) or ``11^T / C^2`` (ARSM family). Configurations where the two swaps agree
contribute exactly 0, so the large, nearly equal terms that ``E[g g^T]`` built from
``f(x) f(y)`` subtracts never appear (at logits ``+-20`` that form lost every digit of the
small entries). What remains: the mean of a category of probability ``e^-40`` is a sum over
``j, m`` of terms of order 1 that cancel (each reference ``j`` alone is unbiased), so entries
far below the largest one carry an absolute error of a few ``1e-17`` (checked against
``race_moments_mp``, an ``mpmath`` evaluation, in ``tests/test_swap_scale.py``).

Precision (issue 16). In float64 the entries far below the largest are *not* accurate
relative to themselves at large logit spreads, for two reasons that no rearrangement of the
float64 sums removes: (i) the contraction's sum over ``(j, m)`` cancels terms up to about
``e^spread`` times the entry (measured at logits ``+-20``: ``sum |terms| / |entry|`` up to
``6e16`` for the mean), and (ii) for the cell methods, the cells are as thin as
``e^-spread`` and their boundaries are differences of rows whose coefficients differ by
``e^spread``, so vertex classification and volumes lose ``2 spread / ln 10`` digits (at
``+-20``, float64 ARS+ is off by ``2e-3`` relative on a mean entry of ``4e-8`` whose sum
has no cancellation at all). ``dps=N`` runs the *same* computation with every number an
``mpmath`` number at ``N + 3 spread / ln 10`` digits, the logits and ``f`` taken as exact,
and rounds once at the end: every entry keeps about ``N`` digits (checked per entry to
1e-6 at logits ``+-20`` and ``+-50`` against :func:`verify.moments.swap_mp.race_moments_mp`
with ``weight``, and the mean against ``exact_gradient_mp``, in
``tests/test_swap_scale.py``). Small problems only (``C <= 4``, ``C^K <= 64``), and slow
(``K = 2, C = 4`` at ``+-20``, one CPU: ARS 0.5 s, ARSM 2 s, ARSM+ 7 s, ARS+ 1 min,
ARSM+CE many minutes). The float64 default states what each entry is worth: per-entry
bounds on the absolute error of the mean and the covariance (``Moments.mean_error``,
``cov_error``; :func:`_entry_bounds`), which the statistical checks use entry by entry.

Rows of equal logits (any ``C``, e.g. the categorical toy with ``C = 10``), for the cell
methods: the law is invariant under every relabelling of the categories, so the cells are
built in the ordered simplex ``{pi_0 <= ... <= pi_{C-1}}`` only and each per-dimension table
``T`` is replaced by ``sum_sigma T[sigma(i_1), ..., sigma(i_n)]``, computed from the equality
pattern of the indices (a tuple's orbit is every tuple with its pattern, each reached
``(C - b)!`` times, ``b`` distinct labels).

Scope and cost: ARS, ARSM and ARSM+ any logits with ``C <= MAX_RACE_C`` (12; ARSM+'s tables
about 8 s per row at ``C = 10``); ARS+ exact for ``C <= MAX_ARS_PLUS_C`` and certified up to
``MAX_RACE_C`` (above; exact: its per-``(j,
l)`` arrangements, about 0.35 s of CPU per dimension at ``C = 5``, 4 s at ``C = 6`` and
45 s at ``C = 7``, the references ``j`` on the numba threads (:func:`_threaded`), cells in
4-D to 6-D triangulated from their incidences by the compiled
kernels; the Python path triangulates them by Qhull, checked against Qhull's own volume, and
from their incidences where that disagrees or Qhull fails
(:func:`verify.moments.polytope._pulling`): moderate logits; at ``C = 8`` one column of
cells takes about 17 s, so a dimension about 16 min, and one 7-D cell of ``random_problem(1,
8)`` passed ``polytope.MAX_PULLING`` simplices); ARSM+CE ``C <=
MAX_CE_C`` (5: the common refinement of every pair, 980 000 cells at ``C = 5``, about 27 s
of CPU and 0.2 GiB per dimension: each cell's tables are added to its outcome matrix's as
the cell is accepted, :func:`_ce_tables`; keeping the cells took 3.2 GiB, and before they were
integrated as they are accepted one call asked for 206 GiB). The
contraction costs
``C^(2K + 4)`` (``C^(2K + 3)`` for the ARS family). In float64 the cells are refined and
integrated by compiled kernels,
:mod:`verify.moments.polytope_fast`, with the same rules as :func:`refine` and
:meth:`_Dimension.splitter` (``_FAST``; the Python path is the reference they are tested
against, and the ``mpmath`` path). Timings: ``scripts/swap_scale.py`` and
the README. ``error_bound`` covers the probability of cells below float64 resolution and the
rounding of the total probability (0 for the races).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from math import factorial
from typing import Any

import numpy as np

from ..exact import Problem, check_budget, check_enumeration_size, make_problem
from . import Moments
from .polytope import Cell, cells_moments, ordered_cell, refine, sides, simplex_cell
from .races import race_pair_tables, race_pair_tables_mp
from .races_sym import sym_pair_tables
from .swap_interval import ce_correction_tables, interval_variance_tables

__all__ = ["swap_moments", "ars_moments", "arsm_moments", "ars_plus_moments",
           "arsm_plus_moments", "arsm_plus_ce_moments", "dimension_tables", "clear_caches"]

#: largest C handled by the cells for rows with distinct logits (rows of equal logits: any C):
#: the ``mpmath`` path of ARSM+ and the cells that :func:`dimension_tables` exposes; in float64,
#: ARSM+ uses the races of :mod:`verify.moments.races_sym` up to ``MAX_RACE_C``
MAX_GENERIC_C = 5
#: the same with the conditional-expectation weights for every reference (ARSM+CE), whose
#: cells also split along the interval bounds of every pair (j, l) (C = 5: 980 000 cells, 27 s
#: of CPU and 0.2 GiB per dimension, the tables summed per outcome matrix in the kernel); past
#: it, up to MAX_RACE_C, ARSM+CE is certified (races and RQMC, :func:`_ce_certified_moments`)
MAX_CE_C = 5
#: the same for ARS+, whose per-``(j, l)`` arrangements stay small (CPU per dimension at
#: moderate logits: C = 5 about 0.35 s; C = 6 about 4 s; C = 7 about 45 s and 0.55 GiB; one
#: column of C = 8 took 17 s, a dimension would take about 16 min, and one of its 7-D cells
#: passed polytope.MAX_PULLING simplices); past it, up to MAX_RACE_C, ARS+ is certified (races
#: and RQMC, :func:`_ars_plus_interval_tensors`)
MAX_ARS_PLUS_C = 7
#: nominal operations (at ``verify.exact.OPERATIONS_PER_SECOND``) of one dimension's cells,
#: by weight and ``C`` (measured CPU times of the compiled float64 path rounded up, moderate
#: logits; thin cells at extreme logits cost a few times more; per dimension -, 0.27 s,
#: 0.07 s, 0.35 s, 5 s, 56 s in this order, where the Python path took -, 3 s, 0.4 s, 8.7 s,
#: 65 s, -): what the
#: up-front time estimate adds to the contraction's. The ``mpmath`` path (``dps``) is bounded
#: by its own scope (:func:`_check_mp_scope`); ARSM+ in float64 costs its races
#: (``_SYM_RACE_OPERATIONS``)
_CELL_OPERATIONS = {("ce", 3): 1e7, ("ce", 4): 5e7, ("ars_plus", 4): 2e7, ("ars_plus", 5): 5e7,
                    ("ars_plus", 6): 7e8, ("ars_plus", 7): 7e9, ("ce", 5): 3e9}
#: largest C for ARS, ARSM and ARSM+ (any logits): exponential races, pair tables of C^6 entries
MAX_RACE_C = 12
#: nominal operations of ARSM+'s race tables for one row of distinct logits, per ``C^5`` (the
#: symmetry events ``D_j^x`` joined with one more race; measured C = 10: about 8 s)
_SYM_RACE_OPERATIONS = 1e4
#: nominal operations per multiply-add of the contraction across dimensions: it runs as
#: matrix products (measured K = 3, C = 10, ARSM family: 0.66 s for 1e10 multiply-adds on 2
#: cores, 0.0066 at ``OPERATIONS_PER_SECOND``), and the envelopes of :func:`_entry_bounds`
#: repeat it up to ``K + 1`` times per block pattern; margin for slower BLAS
_CONTRACTION_OPERATIONS = 0.05

#: weights of the per-dimension tables: plain ``1 - C pi_j``, with the symmetry factor, or
#: with both reductions (conditional expectation)
WEIGHTS = ("plain", "sym", "ce")


# ----------------------------------------------------------------------------- one dimension
def _pairs(C: int) -> list[tuple[int, int]]:
    """The swaps with distinct outcomes: the identity ``(0, 0)`` and every pair ``m < j``."""
    return [(0, 0)] + [(m, j) for m in range(C) for j in range(m + 1, C)]


def _transposition(C: int, m: int, j: int) -> np.ndarray:
    sigma = np.arange(C)
    sigma[m], sigma[j] = j, m
    return sigma


def _swap_functions(w: np.ndarray) -> np.ndarray:
    """``F[g, i, :]``: the linear function ``pi -> w_i pi_{sigma_g(i)}`` of swap group ``g``."""
    C = w.size
    pairs = _pairs(C)
    F = np.zeros((len(pairs), C, C), dtype=w.dtype)
    for g, (m, j) in enumerate(pairs):
        sigma = _transposition(C, m, j)
        F[g, np.arange(C), sigma] = w
    return F


def _outcome_matrix(args: np.ndarray, C: int) -> np.ndarray:
    """Symmetric ``Z[m, j]`` from the argmins of the swap groups of :func:`_pairs`."""
    Z = np.full((C, C), args[0])
    for g, (m, j) in enumerate(_pairs(C)[1:], start=1):
        Z[m, j] = Z[j, m] = args[g]
    return Z


def _bound_rows(w: np.ndarray, j: int, l: int, m: int, a: int) -> tuple[list, list]:
    """Lower and upper bounds on ``t = pi_j`` (as linear functions of ``pi``) implied by the
    observation ``Z[m, j] = a``, with ``pi_i`` for ``i not in {j, l}`` and ``s = pi_j + pi_l``
    fixed. Mirrors ``reference.estimators.swap.numpy_reference.ce_interval``: the value at
    position ``i`` of the swapped vector is ``p_i t + q_i``; ``v_a <= v_i`` gives
    ``(p_a - p_i) t <= q_i - q_a``."""
    C = w.size
    sigma = _transposition(C, m, j)
    p = np.zeros(C, dtype=w.dtype)
    q = np.zeros((C, C), dtype=w.dtype)  # q[i] is a linear function of pi
    for i in range(C):
        src = sigma[i]
        if src == j:
            p[i] = w[i]
        elif src == l:
            p[i] = -w[i]
            q[i, j] = q[i, l] = w[i]  # w_i s
        else:
            q[i, src] = w[i]
    lower, upper = [], []
    for i in range(C):
        dp = p[a] - p[i]
        if dp > 0:
            upper.append((q[i] - q[a]) / dp)
        elif dp < 0:
            lower.append((q[i] - q[a]) / dp)
    return lower, upper


class _Dimension:
    """The geometry of one dimension: the swap functions and, for the conditional
    expectation, the bound rows ``LOW/UP[j, l, m, a, i, :]`` (the bound on ``t = pi_j`` from
    comparing position ``a``, the observed ``Z[m, j]``, with position ``i``; constraints that
    do not bound ``t`` are padded with the always-present bounds ``0`` and ``s``)."""

    def __init__(self, alpha_row: np.ndarray, ce: bool,
                 only: tuple[int, int] | None = None, dps: int = 0) -> None:
        a = np.asarray(alpha_row, dtype=np.float64)
        self.C = C = a.size
        # w_i = exp(-alpha_i), scaled so the largest is 1 (only ratios matter); dps > 0: in
        # mpmath at dps digits (object arrays; the logits taken as exact)
        self.w = _weights(a, dps)
        self.dps = dps
        #: rows closer than this (relative) are the same function up to rounding
        self.same_tol = _same_tol(dps)
        self.F = _swap_functions(self.w)  # (G, C, C)
        self.ce = ce
        if ce:
            e = np.eye(C)
            dt = self.w.dtype
            low = np.zeros((C, C, C, C, C, C), dtype=dt)
            up = np.zeros((C, C, C, C, C, C), dtype=dt)
            for j in range(C):
                for l in range(C):
                    up[j, l] = e[j] + e[l]
                    if l == j or (only is not None and (j, l) != only):
                        continue  # ``only``: the one pair a caller refines along
                    for m in range(C):
                        for out in range(C):
                            lo_rows, hi_rows = _bound_rows(self.w, j, l, m, out)
                            for r, row in enumerate(lo_rows):
                                low[j, l, m, out, r] = row
                            for r, row in enumerate(hi_rows):
                                up[j, l, m, out, r] = row
            self.low, self.up = low, up
            jj, ll, mm = np.meshgrid(np.arange(C), np.arange(C), np.arange(C), indexing="ij")
            self._idx = (jj, ll, mm)
            self._pairs = ~np.eye(C, dtype=bool)  # (j, l) with l != j

    # ---------------------------------------------------------------- what varies on a cell
    def outcomes(self, point: np.ndarray) -> np.ndarray:
        """``Z[m, j]`` at an interior point."""
        return _outcome_matrix(np.argmin(self.F @ point, axis=1), self.C)

    def _argmin_split(self, V: np.ndarray, c: np.ndarray) -> np.ndarray | None:
        vals_c = self.F @ c  # (G, C)
        star = np.argmin(vals_c, axis=1)
        G = self.F.shape[0]
        A = self.F[np.arange(G), star][:, None, :] - self.F  # (G, C, C): > 0 where i beats star
        _, side = sides(A, V)
        viol = (side.max(axis=-1) > 0) & (side.min(axis=-1) < 0)
        if not viol.any():
            return None
        # split along the boundary with the argmin at a vertex where the centre's loses
        g = int(np.flatnonzero(viol.any(axis=1))[0])
        vert = int(np.argmax((side[g] > 0).any(axis=0)))
        i = int(np.argmin(self.F[g] @ V[vert]))
        if not viol[g, i]:
            i = int(np.flatnonzero(viol[g])[0])
        return A[g, i]

    def _interval_rows(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every lower and upper bound row for every ``(j, l)``: ``(C, C, C*C, C)`` each."""
        jj, ll, mm = self._idx
        obs = Z[mm, jj]  # obs[j, l, m] = Z[m, j]
        C = self.C
        return (self.low[jj, ll, mm, obs].reshape(C, C, C * C, C),
                self.up[jj, ll, mm, obs].reshape(C, C, C * C, C))

    def delta(self, Z: np.ndarray) -> np.ndarray:
        """``delta_j = 1`` when every ``Z[m, j]`` (over ``m``) is the same."""
        return np.all(Z == Z[:1, :], axis=0)

    def _bound_rows_on(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``(j, l)`` pairs with ``delta_j = 0`` (``(p, 2)`` ints) and their rows
        ``(p, 2, R, C)``: lower rows, and the negated upper rows (``hi = -max(-rows)``)."""
        valid = self._pairs & ~self.delta(Z)[:, None]
        lower, upper = self._interval_rows(Z)
        return np.argwhere(valid), np.stack([lower, -upper], axis=2)[valid]

    def splitter(self, V: np.ndarray, c: np.ndarray, state: Any) -> tuple[np.ndarray | None, Any]:
        """Phase 1 (state None): split until every swapped argmin is constant. Phase 2 (CE):
        split until, for every pair and side still unresolved, the piece of ``lo`` (``hi``)
        active at the centroid is active at every vertex; resolved entries stay resolved on
        the pieces. The final state is ``(Z, pairs, rows)``."""
        if state is None:
            a = self._argmin_split(V, c)
            if a is not None:
                return a, None
            Z = self.outcomes(c)
            if not self.ce:
                return None, (Z, None, None)
            pairs, rows = self._bound_rows_on(Z)
            state = (Z, pairs, rows, np.ones(rows.shape[:2], bool))
        Z, pairs, rows, open_ = state
        if not open_.any():
            return None, (Z, pairs, rows)
        sub = rows[open_]  # (q, R, C)
        q_idx = np.arange(sub.shape[0])
        star = np.argmax(sub @ c, axis=-1)
        best = sub[q_idx, star][:, None, :]
        a = best - sub  # >= 0 on the part of the cell where the piece at c stays active
        # rows that are the same function up to rounding differ by noise, not by a hyperplane
        mag = np.abs(best) + np.abs(sub)
        a = np.where(np.abs(a) <= self.same_tol * mag, 0.0, a)
        # in mpmath the tolerance follows the rows' magnitude (their rounding, not the
        # difference's: at logits +-50 the rows differ by e^100 in scale); float64 as before
        scale = mag if self.dps else None
        _, side = sides(a, V, scale)  # (q, R, n)
        cut = (side.max(axis=-1) > 0) & (side.min(axis=-1) < 0)  # (q, R)
        still = cut.any(axis=1)
        if not still.any():
            return None, (Z, pairs, rows)
        new_open = open_.copy()
        new_open[open_] = still
        # split along the boundary with the piece that is largest at a vertex where the
        # centre's piece is not: both pieces are active in the cell, so the cut is needed
        q = int(np.flatnonzero(still)[0])
        vert = int(np.argmax((side[q] < 0).any(axis=0)))
        r = int(np.argmax(sub[q] @ V[vert]))
        if not cut[q, r]:
            r = int(np.flatnonzero(cut[q])[0])
        plane = a[q, r] if scale is None else (a[q, r], scale[q, r])
        return plane, (Z, pairs, rows, new_open)

    def midpoints(self, state: Any, c: np.ndarray) -> np.ndarray:
        """``mid[j, l, :]``: ``(lo + hi) / 2`` as a linear function of ``pi`` on the cell
        (zero where ``l = j`` or ``delta_j = 1``)."""
        _, pairs, rows = state
        mid = np.zeros((self.C, self.C, self.C), dtype=self.w.dtype)
        if rows.shape[0]:
            star = np.argmax(rows @ c, axis=-1)  # (p, 2)
            p = np.arange(rows.shape[0])
            lo, neg_hi = rows[p, 0, star[:, 0]], rows[p, 1, star[:, 1]]
            mid[pairs[:, 0], pairs[:, 1]] = 0.5 * (lo - neg_hi)
        return mid


def _weights(a: np.ndarray, dps: int) -> np.ndarray:
    """``w = exp(min(a) - a)`` (float64), or with ``dps > 0`` in ``mpmath`` at ``dps`` digits
    (an object array; the float64 logits taken as exact)."""
    if not dps:
        return np.exp(a.min() - a)
    import mpmath

    with mpmath.workdps(dps):
        lo = mpmath.mpf(float(a.min()))
        return np.array([mpmath.exp(lo - mpmath.mpf(float(x))) for x in a], dtype=object)


def _same_tol(dps: int) -> Any:
    if not dps:
        return 1e-13
    import mpmath

    return mpmath.mpf(10) ** (8 - dps)


def _min_prob(dps: int) -> float:
    """Cells below this probability bound are accepted unsplit (:func:`refine`): float64
    rounding, or far below anything resolved at ``dps`` digits."""
    return 1e-24 if not dps else 1e-200


#: float64 cells by the compiled refinement (:mod:`verify.moments.polytope_fast`: the same
#: decisions, up to ties broken by rounding, 10 to 50 times faster); False: the Python path,
#: the reference the compiled one is tested against (``tests/test_swap_fast.py``)
_FAST = True

#: set in the threads of :func:`_threaded`: work they start runs in them, not in more threads
_WORKER = threading.local()


def _threaded(fn: Any, items: list) -> list:
    """``[fn(x) for x in items]`` on up to ``numba.get_num_threads()`` threads (the cores, or
    ``NUMBA_NUM_THREADS``), in order. The compiled refinement releases the GIL
    (``nogil=True``), so the dimensions' cells, one dimension's chunks of start cells
    (:func:`_ce_tables`) or ARS+'s references ``j`` are refined side by side (ARSM+CE K = 2,
    C = 5 on 2 cores: 28 s instead of 55 s). Calls made from inside a worker run serially
    (no nested pools)."""
    import numba

    workers = min(len(items), numba.get_num_threads())
    if workers <= 1 or getattr(_WORKER, "busy", False):
        return [fn(x) for x in items]

    def run(x: Any) -> Any:
        _WORKER.busy = True
        try:
            return fn(x)
        finally:
            _WORKER.busy = False

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, items))


def _fast_refine(dim: _Dimension, start: Cell, Z0: np.ndarray | None, keep_cells: bool = False
                 ) -> dict[str, Any]:
    """:func:`verify.moments.polytope_fast.refine_cells` for one dimension (or column) from
    ``start`` (the cells' vertices and incidences only with ``keep_cells``)."""
    from .polytope_fast import refine_cells

    groups = np.array(getattr(dim, "groups", None) or _pairs(dim.C), dtype=np.int64)
    out = refine_cells(start.V, start.T, dim.F, groups, dim.low if dim.ce else None,
                       dim.up if dim.ce else None, dim._pairs if dim.ce else None, dim.ce, Z0,
                       dim.same_tol, _min_prob(0), keep_cells=keep_cells)
    return out


def _symmetric(alpha_key: tuple[float, ...], dps: int) -> bool:
    """Rows of equal logits: every relabelling of the categories leaves the law invariant,
    so the ordered simplex (probability ``1/C!``) suffices; the tables are symmetrized later."""
    return bool(np.all(np.array(alpha_key) == alpha_key[0])) and len(alpha_key) > 2 and not dps


#: fixed number of chunks of ARSM+CE's start cells (:func:`_ce_tables_rows`), so that the
#: dimensions' refinements share the threads evenly and the sums do not depend on how many
#: there are (8: random_problem(3, 5) took 29.9-30.5 s wall on 2 cores, 4: 30.3-30.6 s)
_CE_CHUNKS = 8


def _ce_start(alpha_key: tuple[float, ...]) -> dict[str, Any]:
    """The first step of :func:`_ce_tables`: the swaps' cells (``C = 5``: 2 000 of them,
    against a million after the intervals' cuts) and their ``_CE_CHUNKS`` fixed chunks of
    start cells for the intervals' refinement."""
    from .polytope_fast import refine_cells

    dim = _Dimension(np.array(alpha_key), True)
    symmetric = _symmetric(alpha_key, 0)
    start = ordered_cell(dim.C) if symmetric else simplex_cell(dim.C)
    groups = np.array(_pairs(dim.C), dtype=np.int64)
    # the swaps' pass only feeds the second, whose unresolved probability covers every cell
    swaps = refine_cells(start.V, start.T, dim.F, groups, None, None, None, False, None,
                         dim.same_tol, _min_prob(0), keep_cells=True)
    Zs = [None if p0 else Z for Z, p0 in zip(swaps["Z"], swaps["phase0"], strict=True)]
    chunks = [list(range(c, len(Zs), _CE_CHUNKS)) for c in range(min(_CE_CHUNKS, len(Zs)))]
    return {"dim": dim, "groups": groups, "cells": swaps["cells"], "Zs": Zs, "chunks": chunks,
            "symmetric": symmetric}


def _ce_refine_chunk(prep: dict[str, Any], c: int) -> dict[str, Any]:
    """The intervals' refinement of chunk ``c`` of :func:`_ce_start`'s start cells, each
    cell's tables summed into its outcome matrix's as the cell is accepted."""
    from .polytope_fast import refine_starts

    dim, idx = prep["dim"], prep["chunks"][c]
    return refine_starts([prep["cells"][i] for i in idx], [prep["Zs"][i] for i in idx], None,
                         None, dim.F, prep["groups"], dim.low, dim.up, dim._pairs,
                         dim.same_tol, _min_prob(0))


def _ce_assemble(prep: dict[str, Any], outs: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`_ce_tables` from the chunks' sums, rows of equal outcome matrices summed in chunk
    order: the same numbers on any thread count."""
    C = prep["dim"].C
    keys, inverse = _distinct_outcomes(np.concatenate([o["Z"] for o in outs]))
    n = keys.shape[0]
    P, L, Q = np.zeros(n), np.zeros((n, C)), np.zeros((n, C, C))
    for T, name in ((P, "P"), (L, "L"), (Q, "Q")):
        np.add.at(T, inverse, np.concatenate([o[name] for o in outs]))
    total = P.sum() * (factorial(C) if prep["symmetric"] else 1)
    unresolved = sum(o["unresolved"] for o in outs)
    return {"Z": keys.reshape(n, C, C), "P": P, "L": L, "Q": Q,
            "unresolved": unresolved + abs(1.0 - float(total)), "symmetric": prep["symmetric"]}


#: :func:`_ce_tables` by row of logits (emptied when it would hold more than 64)
_CE_CACHE: dict[tuple[float, ...], dict[str, Any]] = {}


def _ce_tables_rows(alpha_keys: list[tuple[float, ...]]) -> dict[tuple[float, ...], Any]:
    """:func:`_ce_tables` of every row in ``alpha_keys``, through :data:`_CE_CACHE`: the
    missing rows' swaps' cells one row after another, then all their chunks together on the
    threads (K = 3 rows of 8 chunks on 2 threads are 24 jobs; with one row per thread the third
    row ran alone on one)."""
    out = {k: _CE_CACHE[k] for k in dict.fromkeys(alpha_keys) if k in _CE_CACHE}
    todo = [k for k in dict.fromkeys(alpha_keys) if k not in out]
    preps = [_ce_start(k) for k in todo]
    jobs = [(i, c) for i, prep in enumerate(preps) for c in range(len(prep["chunks"]))]
    outs = _threaded(lambda job: _ce_refine_chunk(preps[job[0]], job[1]), jobs)
    for i, (k, prep) in enumerate(zip(todo, preps, strict=True)):
        out[k] = _ce_assemble(prep, [o for (r, _), o in zip(jobs, outs, strict=True) if r == i])
    if todo and len(_CE_CACHE) + len(todo) > 64:
        _CE_CACHE.clear()
    _CE_CACHE.update({k: out[k] for k in todo})
    return out


def _ce_summed_in_kernel(C: int) -> bool:
    """Whether ARSM+CE's float64 cells are summed per outcome matrix in the kernel
    (:func:`_ce_tables`), each matrix read as one int64: ``C <= 5``."""
    return _FAST and C ** (C * C) < 2**63


def _ce_tables(alpha_key: tuple[float, ...]) -> dict[str, Any]:
    """:func:`dimension_tables` with ``weight="ce"`` in float64 by the compiled refinement,
    each cell's tables summed into its outcome matrix's as the cell is accepted (no cell is
    kept: ARSM+CE at C = 5 integrates a million cells into 700 rows); cached by row."""
    return _ce_tables_rows([alpha_key])[alpha_key]


@lru_cache(maxsize=64)
def _cells(alpha_key: tuple[float, ...], ce: bool, dps: int = 0) -> dict[str, Any]:
    """The cells of one dimension: outcome matrices ``Z`` ``(N, C, C)``, moments ``m0``
    ``(N,)``, ``m1`` ``(N, C)``, ``m2`` ``(N, C, C)``, midpoint rows ``mid`` ``(N, C, C, C)``
    (CE only), and ``unresolved``, a bound on the probability not integrated exactly
    (cells below float64 resolution, and the rounding of the total)."""
    dim = _Dimension(np.array(alpha_key), ce, dps=dps)
    symmetric = _symmetric(alpha_key, dps)
    start = _start(ordered_cell(dim.C) if symmetric else simplex_cell(dim.C), dps)
    if not dps and _FAST:
        fast = _fast_refine(dim, start, None)
        total = fast["m0"].sum() * (factorial(dim.C) if symmetric else 1)
        return {"Z": fast["Z"], "m0": fast["m0"], "m1": fast["m1"], "m2": fast["m2"],
                "mid": fast["mid"] if ce else None, "symmetric": symmetric,
                "unresolved": fast["unresolved"] + abs(1.0 - float(total))}
    cells, unresolved = refine(start, dim.splitter, min_prob=_min_prob(dps))
    Zs, mids = [], []
    for cell, state in cells:
        c = cell.centroid
        if state is None:  # accepted below float64 resolution in phase 1
            Z = dim.outcomes(c)
            state = (Z, *dim._bound_rows_on(Z)) if ce else (Z, None, None)
        Zs.append(state[0])
        if ce:
            mids.append(dim.midpoints(state[:3], c))
    m0, m1, m2 = cells_moments([cell for cell, _ in cells])
    total = m0.sum() * (factorial(dim.C) if symmetric else 1)
    return {"Z": np.array(Zs), "m0": m0, "m1": m1, "m2": m2,
            "mid": np.array(mids) if ce else None, "symmetric": symmetric,
            "unresolved": unresolved + abs(1.0 - float(total))}


def clear_caches() -> None:
    """Empty the per-row caches of cells and tables (timings from a cold cache; tests that
    change a module limit such as ``polytope.MAX_PAIRS``)."""
    for fn in (_cells, _column_cells, _column_tables, _race_tensors, _sym_race_tensors,
               _ars_plus_interval_tensors):
        fn.cache_clear()
    _CE_CACHE.clear()


def _start(cell: Any, dps: int) -> Any:
    """The starting cell, its vertices as ``mpmath`` numbers when ``dps > 0``."""
    if not dps:
        return cell
    import mpmath

    return type(cell)(np.vectorize(mpmath.mpf, otypes=[object])(cell.V), cell.T)


def dimension_tables(alpha_row: np.ndarray, weight: str, dps: int = 0) -> dict[str, Any]:
    """Per-dimension tables for one row of logits, aggregated over distinct outcomes.

    Returns ``Z`` int ``(n, C, C)`` (distinct outcome matrices), ``P`` ``(n,)``,
    ``L`` ``(n, C)`` = ``E[W_j 1{Z}]``, ``Q`` ``(n, C, C)`` = ``E[W_j W_j' 1{Z}]``, and
    ``unresolved`` (see :func:`_cells`). ``dps > 0``: every number an ``mpmath`` number at
    ``dps`` digits (object arrays), the call made inside ``mpmath.workdps(dps)``.
    """
    if weight not in WEIGHTS:
        raise ValueError(f"weight must be one of {WEIGHTS}, got {weight!r}")
    a = np.asarray(alpha_row, dtype=np.float64)
    C = a.size
    ce = weight == "ce"
    key = tuple((a - a.max()).tolist())
    if ce and not dps and _ce_summed_in_kernel(C):
        # beyond C = 5 only rows of equal logits have CE cells, few enough to keep: the
        # ordered simplex
        return dict(_ce_tables(key))
    cells = _cells(key, ce, dps)
    Z, m0 = cells["Z"], cells["m0"]
    N = Z.shape[0]
    L = np.empty((N, C), dtype=m0.dtype)
    Q = np.empty((N, C, C), dtype=m0.dtype)
    step = 1 << 16  # in blocks of cells: ARSM+CE at C = 5 has 900 000 of them
    for s in range(0, N, step):
        b = slice(s, min(N, s + step))
        L[b], Q[b] = _cell_weights(Z[b], cells["m1"][b], cells["m2"][b],
                                   None if cells["mid"] is None else cells["mid"][b], weight)
    keys, inverse = _distinct_outcomes(Z)
    n = keys.shape[0]
    dt = m0.dtype
    P = np.zeros(n, dtype=dt)
    Ls = np.zeros((n, C), dtype=dt)
    Qs = np.zeros((n, C, C), dtype=dt)
    np.add.at(P, inverse, m0)
    np.add.at(Ls, inverse, L)
    np.add.at(Qs, inverse, Q)
    return {"Z": keys.reshape(n, C, C), "P": P, "L": Ls, "Q": Qs,
            "unresolved": cells["unresolved"], "symmetric": cells["symmetric"]}


def _distinct_outcomes(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(Z.reshape(N, -1), axis=0, return_inverse=True)`` for outcome matrices
    ``Z`` int ``(N, C, C)`` (entries in ``range(C)``): the distinct rows ``(n, C * C)`` in
    lexicographic order and the index ``(N,)`` of each cell's. Where ``C ** (C * C)`` fits an
    int64 (``C <= 5``) each row is one mixed-radix number, first entry most significant (the
    same order), and a 1-D unique replaces the row sort (ARSM+CE at C = 5: a million cells,
    8 s by rows)."""
    N, C = Z.shape[0], Z.shape[1]
    flat = Z.reshape(N, -1)
    if C ** (C * C) >= 2**63:
        keys, inverse = np.unique(flat, axis=0, return_inverse=True)
        return keys, inverse.ravel()
    code = np.zeros(N, dtype=np.int64)
    for col in range(C * C):
        code = code * C + flat[:, col]
    first, inverse = np.unique(code, return_index=True, return_inverse=True)[1:]
    return flat[first], inverse.ravel()


def _cell_weights(Z: np.ndarray, m1: np.ndarray, m2: np.ndarray, mid: np.ndarray | None,
                  weight: str) -> tuple[np.ndarray, np.ndarray]:
    """``L = E[W_j 1{cell}]`` ``(n, C)`` and ``Q = E[W_j W_q 1{cell}]`` ``(n, C, C)`` of cells
    with outcome matrices ``Z`` ``(n, C, C)``, moments ``m1``, ``m2`` and (CE) midpoint rows
    ``mid`` ``(n, C, C, C)`` (:func:`dimension_tables`)."""
    n, C = m1.shape
    ones, eye = np.ones(C), np.eye(C)
    keep = np.ones((n, C)) if weight == "plain" else (~np.all(Z == Z[:, :1, :], axis=1)) * 1.0
    if weight == "ce":
        u = ones - C * mid  # (n, j, l, C): W_jl = u . pi
        others = ~eye.astype(bool)  # l != j
        ubar = (u * others[None, :, :, None]).sum(axis=2) / (C - 1) * keep[:, :, None]
        Q = ubar @ m2 @ ubar.transpose(0, 2, 1)
        uf = u.reshape(n, C * C, C)
        sq = np.einsum("nac,nac->na", uf @ m2, uf).reshape(n, C, C)
        diag = (sq * others).sum(axis=2) / (C - 1) * keep
        Q[:, np.arange(C), np.arange(C)] = diag
    else:
        ubar = (ones - C * eye)[None] * keep[:, :, None]  # (n, j, C)
        Q = np.einsum("njc,ncd,nkd->njk", ubar, m2, ubar)
    return np.einsum("njc,nc->nj", ubar, m1), Q


# ------------------------------------------------------------------------ across dimensions
@lru_cache(maxsize=8)
def _patterns(C: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For every index tuple in ``range(C)**n`` (C order): the id of its equality pattern
    (which positions hold equal labels), and ``(C - b)!`` with ``b`` its number of labels."""
    idx = np.indices((C,) * n).reshape(n, -1).T  # (C**n, n)
    first = np.empty_like(idx)
    for p in range(n):
        same = idx[:, : p + 1] == idx[:, p : p + 1]
        first[:, p] = np.argmax(same, axis=1)  # first position with the same label
    code = (first * (n ** np.arange(n))).sum(axis=1)
    _, pid = np.unique(code, return_inverse=True)
    blocks = (first == np.arange(n)).sum(axis=1)
    fact = np.array([factorial(C - b) if b <= C else 0 for b in range(n + 1)], dtype=np.float64)
    return pid.ravel(), fact[blocks]


def _symmetrize(T: np.ndarray) -> np.ndarray:
    """``sum_sigma T[sigma(i_1), ..., sigma(i_n)]`` over all permutations of the labels: a
    tuple's orbit is every tuple with its equality pattern, each reached ``(C - b)!`` times."""
    C, n = T.shape[0], T.ndim
    pid, fact = _patterns(C, n)
    sums = np.bincount(pid, weights=T.ravel())
    return (fact * sums[pid]).reshape(T.shape)


def _tensors(tab: dict[str, Any], C: int) -> dict[str, np.ndarray]:
    """Pair tables ``P2``, ``L2``, ``Q2`` ``(C,) * 6`` from :func:`dimension_tables`."""
    Z = tab["Z"]
    P, L, Q = tab["P"], tab["L"], tab["Q"]
    if P.dtype == object:  # mpmath numbers: scatter (einsum's object loops are far slower)
        return _tensors_scatter(Z, P, L, Q, C)
    O = (Z[..., None] == np.arange(C)).astype(np.float64)  # (n, m, j, x)
    P2 = np.einsum("n,nmjx,npqy->mjpqxy", P, O, O)
    L2 = np.einsum("nj,nmjx,npqy->mjpqxy", L, O, O)
    Q2 = np.einsum("njq,nmjx,npqy->mjpqxy", Q, O, O)
    out = {"P2": P2, "L2": L2, "Q2": Q2}
    if tab["symmetric"]:  # cells cover the ordered simplex only: add every relabelling
        out = {k: _symmetrize(v) for k, v in out.items()}
    return out


def _tensors_scatter(Z: np.ndarray, P: np.ndarray, L: np.ndarray, Q: np.ndarray, C: int
                     ) -> dict[str, np.ndarray]:
    """:func:`_tensors` for object arrays: each outcome matrix adds its ``P``, ``L[j]``,
    ``Q[j, q]`` at ``[m, j, p, q, Z[m, j], Z[p, q]]``."""
    m, j, p, q = (x.ravel() for x in np.indices((C,) * 4))
    flat = ((m * C + j) * C + p) * C + q
    out = {k: np.zeros(C**6, dtype=object) for k in ("P2", "L2", "Q2")}
    for n in range(Z.shape[0]):
        idx = (flat * C + Z[n, m, j]) * C + Z[n, p, q]
        np.add.at(out["P2"], idx, np.full(idx.size, P[n], dtype=object))
        np.add.at(out["L2"], idx, L[n, j])
        np.add.at(out["Q2"], idx, Q[n, j, q])
    return {k: v.reshape((C,) * 6) for k, v in out.items()}


class _Column(_Dimension):
    """The geometry of one reference ``j`` and one partner ``l`` (ARS+): only the swaps
    ``(m, j)`` and the interval of the pair ``(j, l)`` split the simplex. ARS+ draws one ``j``
    and one ``l`` per dimension, so its tables need nothing else, and the ``C (C - 1)``
    arrangements together have far fewer cells than the common refinement of all of them
    (K = 3, C = 4: about 2 000 cells per dimension instead of 12 000)."""

    def __init__(self, alpha_row: np.ndarray, j: int, l: int | None, dps: int = 0) -> None:
        super().__init__(alpha_row, ce=True, only=(j, -1 if l is None else l), dps=dps)
        C = self.C
        pairs = _pairs(C)
        self.groups = [(0, 0)] + [(min(m, j), max(m, j)) for m in range(C) if m != j]
        self.F = self.F[[pairs.index(g) for g in self.groups]]
        self._pairs = np.zeros((C, C), bool)
        self.j, self.l = j, l
        if l is not None:  # None: the swaps' cells only, shared by every l
            self._pairs[j, l] = True

    def _bound_rows_on(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_Dimension._bound_rows_on` for the one pair ``(j, l)`` (none when ``l`` is
        None or ``delta_j = 1``), without building the rows of every other pair."""
        C, j, l = self.C, self.j, self.l
        if l is None or np.all(Z[:, j] == Z[0, j]):
            return np.zeros((0, 2), np.int64), np.zeros((0, 2, C * C, C), self.low.dtype)
        m = np.arange(C)
        obs = Z[m, j]
        rows = np.stack([self.low[j, l, m, obs].reshape(C * C, C),
                         -self.up[j, l, m, obs].reshape(C * C, C)])
        return np.array([[j, l]]), rows[None]

    def outcomes(self, point: np.ndarray) -> np.ndarray:
        """``Z`` with column (and row) ``j`` filled; every other entry holds ``z``."""
        args = np.argmin(self.F @ point, axis=1)
        Z = np.full((self.C, self.C), args[0])
        for g, (m, j) in enumerate(self.groups[1:], start=1):
            Z[m, j] = Z[j, m] = args[g]
        return Z


@lru_cache(maxsize=16)
def _column_cells(alpha_key: tuple[float, ...], j: int, dps: int = 0
                  ) -> tuple[list, list, float]:
    """The cells on which every swap ``(m, j)`` is constant (shared by every ``l``), their
    outcome matrices (None for a cell accepted below float64 resolution), and the
    probability left unresolved."""
    if not dps and _FAST:
        fast = _fast_refine(_Column(np.array(alpha_key), j, None), simplex_cell(len(alpha_key)),
                            None, keep_cells=True)
        return ([Cell(V, T) for V, T in fast["cells"]],
                [None if p0 else Z for Z, p0 in zip(fast["Z"], fast["phase0"], strict=True)],
                fast["unresolved"])
    cells, unresolved = refine(_start(simplex_cell(len(alpha_key)), dps),
                               _Column(np.array(alpha_key), j, None, dps).splitter,
                               min_prob=_min_prob(dps))
    return ([cell for cell, _ in cells], [None if st is None else st[0] for _, st in cells],
            unresolved)


@lru_cache(maxsize=72)
def _column_tables(alpha_key: tuple[float, ...], j: int, l: int, dps: int = 0
                   ) -> dict[str, Any]:
    """``P2``, ``L2``, ``Q2`` ``(C, C, C, C)`` indexed ``[m, p, x, y]`` for the pair of swaps
    ``(m, j)``, ``(p, j)`` with the ARS+ weight of ``(j, l)``, and ``unresolved``."""
    col = _Column(np.array(alpha_key), j, l, dps)
    C = col.C
    base, base_Z, unresolved = _column_cells(alpha_key, j, dps)
    if not dps and _FAST:
        return _fast_column_tables(col, base, base_Z, unresolved)
    cells = []
    for b, Zb in zip(base, base_Z, strict=True):
        # refine the swaps' cells along the pieces of this pair's interval, starting from
        # what is known on them (the swaps' outcomes): phase 2 of the splitter
        init = None
        if Zb is not None:
            pairs, rows = col._bound_rows_on(Zb)
            init = (Zb, pairs, rows, np.ones(rows.shape[:2], bool))
        more, extra = refine(b, col.splitter, min_prob=_min_prob(dps), state=init)
        cells += more
        unresolved += extra
    m0, m1, m2 = cells_moments([cell for cell, _ in cells])
    ones = np.ones(C)
    zs = np.empty((len(cells), C), dtype=np.int64)
    lin = np.zeros(len(cells), dtype=m0.dtype)
    quad = np.zeros(len(cells), dtype=m0.dtype)
    for n, (cell, state) in enumerate(cells):
        c = cell.centroid
        if state is None:  # accepted below float64 resolution in phase 1
            Z = col.outcomes(c)
            state = (Z, *col._bound_rows_on(Z))
        z = state[0][:, j]
        zs[n] = z
        if not np.all(z == z[0]):  # delta_j = 1: the symmetry factor removes the weight
            u = ones - C * col.midpoints(state[:3], c)[j, l]  # W = u . pi on the cell
            lin[n], quad[n] = u @ m1[n], u @ m2[n] @ u
    if m0.dtype == object:  # scatter: [m, p, z_m, z_p]
        mm, pp = (x.ravel() for x in np.indices((C, C)))
        P2, L2, Q2 = (np.zeros(C**4, dtype=object) for _ in range(3))
        for n in range(len(cells)):
            idx = ((mm * C + pp) * C + zs[n, mm]) * C + zs[n, pp]
            for T, v in ((P2, m0), (L2, lin), (Q2, quad)):
                np.add.at(T, idx, np.full(idx.size, v[n], dtype=object))
        P2, L2, Q2 = (T.reshape((C,) * 4) for T in (P2, L2, Q2))
    else:
        P2, L2, Q2 = _scatter_column_tables(zs, m0, lin, quad, C)
    total = float(m0.sum())
    return {"P2": P2, "L2": L2, "Q2": Q2, "unresolved": unresolved + abs(1.0 - total)}


def _scatter_column_tables(zs: np.ndarray, m0: np.ndarray, lin: np.ndarray, quad: np.ndarray,
                           C: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P2, L2, Q2`` ``[m, p, x, y]`` (float64) from the cells' outcomes ``zs[n, m] = Z[m, j]``
    ``(N, C)`` and their integrals of ``1``, ``W`` and ``W^2`` ``(N,)``: each cell adds to the
    entries ``[m, p, zs[n, m], zs[n, p]]``."""
    m, p = np.indices((C, C)).reshape(2, -1)
    idx = (((m * C + p) * C + zs[:, m]) * C + zs[:, p]).ravel()  # (n, C^2) flat [m, p, x, y]
    return tuple(np.bincount(idx, np.repeat(v, C * C), minlength=C**4).reshape((C,) * 4)
                 for v in (m0, lin, quad))


def _fast_column_tables(col: _Column, base: list, base_Z: list, unresolved: float
                        ) -> dict[str, Any]:
    """:func:`_column_tables` by the compiled refinement (float64; ``_FAST``)."""
    from .polytope_fast import refine_starts

    C, j, l = col.C, col.j, col.l
    groups = np.array(col.groups, dtype=np.int64)
    fast = refine_starts([(b.V, b.T) for b in base], base_Z, j, l, col.F, groups, col.low,
                         col.up, col._pairs, col.same_tol, _min_prob(0))
    unresolved += fast["unresolved"]
    # once over all cells, the scatter by bincount (einsum took a fifth of the time at C = 6)
    z, p0, m1c, m2c, midc = fast["z"], fast["m0"], fast["m1"], fast["m2"], fast["mid"]
    keep = ~np.all(z == z[:, :1], axis=1)  # delta_j = 1: the symmetry factor removes W
    u = (1.0 - C * midc) * keep[:, None]  # W = u . pi on each cell
    p1 = np.einsum("nc,nc->n", u, m1c)
    p2 = np.einsum("nc,nc->n", np.matmul(m2c, u[:, :, None])[:, :, 0], u)
    P2, L2, Q2 = _scatter_column_tables(z, p0, p1, p2, C)
    return {"P2": P2, "L2": L2, "Q2": Q2, "unresolved": unresolved + abs(1.0 - float(p0.sum()))}


def _ars_plus_tensors(alpha_row: np.ndarray, dps: int = 0) -> dict[str, Any]:
    """ARS+ pair tables (entries ``q = j`` only; ``l`` averaged, the same ``l`` in ``Q2``)."""
    a = np.asarray(alpha_row, dtype=np.float64)
    C = a.size
    key = tuple((a - a.max()).tolist())
    out: dict[str, Any] = {k: np.zeros((C,) * 6, dtype=object if dps else np.float64)
                           for k in ("P2", "L2", "Q2")}
    unresolved = 0.0

    def columns(j: int) -> list[dict[str, Any]]:
        return [_column_tables(key, j, l, dps) for l in range(C) if l != j]

    per_j = _threaded(columns, list(range(C))) if _FAST and not dps else map(columns, range(C))
    for j, tables in enumerate(per_j):
        for i, t in enumerate(tables):
            if i == 0:
                out["P2"][:, j, :, j] = t["P2"]
            out["L2"][:, j, :, j] += t["L2"] / (C - 1)
            out["Q2"][:, j, :, j] += t["Q2"] / (C - 1)
            unresolved = max(unresolved, t["unresolved"])
    out["unresolved"] = unresolved
    return out


#: ARS+ beyond ``MAX_ARS_PLUS_C`` (rows of distinct logits): scrambled Sobol sets of
#: ``2**ARS_PLUS_RQMC_LOG2_POINTS`` points for its interval variance
#: (:mod:`verify.moments.swap_interval`; C = 10: about 12 us per point)
ARS_PLUS_RQMC_LOG2_POINTS = 16
ARS_PLUS_RQMC_RANDOMIZATIONS = 32
#: nominal operations of one such point per ``C^3`` (measured C = 10: 12 us)
_INTERVAL_OPERATIONS = 1.5
#: two-sided confidence of the Student-t half-width over the randomizations (ARS+ and
#: ARSM+CE past their cells; as :func:`verify.moments.relaxation.rqmc_moments`)
RQMC_CONFIDENCE = 1 - 1e-6


def _student_factor(R: int) -> float:
    """The Student-t half-width of a mean of ``R`` randomizations per unit of their standard
    deviation, at ``RQMC_CONFIDENCE``."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + RQMC_CONFIDENCE / 2, R - 1) / np.sqrt(R))


@lru_cache(maxsize=4)
def _ars_plus_interval_tensors(alpha_keys: tuple[tuple[float, ...], ...]
                               ) -> dict[tuple[float, ...], dict[str, Any]]:
    """ARS+ pair tables beyond the cells, by row key, for the rows ``alpha_keys`` (distinct
    logits, distinct keys): ``P2``, ``L2`` and the symmetry-only ``Q2`` of the races
    (:mod:`verify.moments.races_sym`, exact), minus ``C^2 / 12`` times the interval variance
    ``V`` on the entries ``q = j`` (:mod:`verify.moments.swap_interval`, RQMC: its mean over
    the randomizations); ``V_r`` keeps each randomization's ``V`` for the half-width
    (:func:`_interval_half_width`). Every row's races (one job each, first) and every row's
    randomizations run side by side on the threads (:func:`_threaded`): the races no longer
    wait for each other before the points start (``K = 3, C = 10``: three rows' races on two
    threads left one idle for a whole row's races)."""
    R = ARS_PLUS_RQMC_RANDOMIZATIONS
    jobs: list[tuple[tuple[float, ...], int | None]] = [(key, None) for key in alpha_keys]
    jobs += [(key, r) for key in alpha_keys for r in range(R)]

    def run(job: tuple[tuple[float, ...], int | None]) -> Any:
        key, r = job
        if r is None:
            return _sym_race_tensors(key)
        return interval_variance_tables(np.array(key), log2_points=ARS_PLUS_RQMC_LOG2_POINTS,
                                        randomizations=1, first=r)[0]

    done = dict(zip(jobs, _threaded(run, jobs), strict=True))
    tables = {}
    for key in alpha_keys:
        C = len(key)
        V_r = np.stack([done[key, r] for r in range(R)])
        out: dict[str, Any] = dict(done[key, None])
        Q2 = np.array(out["Q2"], dtype=np.float64)
        idx = np.arange(C)
        # Q2[m, j, p, j, x, y] -= C^2 / 12 V[j, m, p, x, y]
        Q2[:, idx, :, idx] -= C * C / 12.0 * V_r.mean(axis=0)
        out["Q2"] = Q2
        out["V_r"] = V_r
        tables[key] = out
    return tables


@lru_cache(maxsize=4)
def _sym_race_tensors(alpha_key: tuple[float, ...]) -> dict[str, Any]:
    out: dict[str, Any] = sym_pair_tables(np.array(alpha_key), _race_tensors(alpha_key, False))
    out["unresolved"] = 0.0
    return out


@lru_cache(maxsize=4)
def _race_tensors(alpha_key: tuple[float, ...], shared_j: bool, dps: int = 0
                  ) -> dict[str, Any]:
    if dps:
        out: dict[str, Any] = race_pair_tables_mp(np.array(alpha_key), shared_j)
    else:
        out = race_pair_tables(np.array(alpha_key), shared_j)
    out["unresolved"] = 0.0
    return out


def _row_key(a: np.ndarray) -> tuple[float, ...]:
    """The cache key of a row of logits: shifted to a maximum of 0 (the tables depend only on
    the differences)."""
    return tuple((a - a.max()).tolist())


def _pair_tensors(alpha_row: np.ndarray, weight: str, shared_j: bool, dps: int = 0
                  ) -> dict[str, Any]:
    """Per-dimension pair tables ``P2``, ``L2``, ``Q2`` (``[m, j, p, q, x, y]``) and
    ``unresolved``, by the cheapest exact method for the weight (module docstring); with
    ``dps > 0`` in ``mpmath`` (object arrays; call inside ``mpmath.workdps(dps)``)."""
    a = np.asarray(alpha_row, dtype=np.float64)
    key = _row_key(a)
    if weight == "plain":
        return _race_tensors(key, shared_j, dps)
    if weight == "sym" and not dps and not shared_j:
        return _sym_race_tensors(key)
    if weight == "ce" and shared_j and not np.all(a == a[0]) and a.size > MAX_ARS_PLUS_C:
        return _ars_plus_interval_tensors((key,))[key]
    if weight == "ce" and shared_j and not np.all(a == a[0]) and a.size > 2:
        return _ars_plus_tensors(a, dps)
    tab = dimension_tables(a, weight, dps)
    out: dict[str, Any] = _tensors(tab, a.size)
    out["unresolved"] = tab["unresolved"]
    return out


def _pair_contract(d: np.ndarray, factors: list[np.ndarray | None], chunk: int = 2**24,
                   free: bool = False) -> np.ndarray:
    """``sum_{x, y} d[x, y] prod_i T_i[n, x_i, y_i]`` for ``d`` ``(C,) * 2K`` (``x`` then ``y``)
    and factors ``T_i`` ``(n, C, C)``: one matrix product for the last dimension, then an
    elementwise product and sum per dimension, in chunks of ``n``. Returns ``(n,)``; with
    ``free``, the first dimension's pair is left out of the sum (``factors[0]`` is not read):
    ``(n, C, C)``, the linear map that :func:`_pair_free` gives."""
    K = len(factors)
    C = d.shape[0]
    last = factors[K - 1]
    n = last.shape[0]
    if free and K == 1:
        return np.broadcast_to(d, (n, C, C))
    # pair axes (x_i, y_i) next to each other, flattened: e_i = x_i C + y_i
    order = [a for i in range(K) for a in (i, K + i)]
    E = np.ascontiguousarray(d.transpose(order)).reshape(-1, C * C)  # (C^(2K-2), C^2)
    flat = [None if t is None else t.reshape(n, C * C) for t in factors]
    out = np.empty((n, C * C) if free else n,
                   dtype=np.result_type(d, *[t for t in factors if t is not None]))
    step = max(1, chunk // max(1, E.shape[0]))
    for s in range(0, n, step):
        sl = slice(s, min(n, s + step))
        acc = E @ flat[K - 1][sl].T  # (C^(2K-2), b)
        for i in range(K - 2, 0 if free else -1, -1):
            acc = (acc.reshape(-1, C * C, acc.shape[-1]) * flat[i][sl].T[None]).sum(axis=1)
        out[sl] = acc.T if free else acc.reshape(-1)
    return out.reshape(n, C, C) if free else out


def _pair_free(d: np.ndarray, factors: list[np.ndarray | None], i: int) -> np.ndarray:
    """The contraction of :func:`_pair_contract` as a linear map of dimension ``i``'s table:
    ``W[n, x_i, y_i] = sum over the others' (x, y) of d[x, y] prod_{i' != i} T_i'[n, x_i',
    y_i']``, ``(n, C, C)`` (``factors[i]`` is not read)."""
    K = len(factors)
    order = [i] + [a for a in range(K) if a != i]
    return _pair_contract(d.transpose(order + [K + a for a in order]),
                          [factors[a] for a in order], free=True)


def _check_scope(pr: Problem, weight: str, shared_j: bool = False) -> None:
    K, C = pr.K, pr.C
    if weight == "plain" and C > MAX_RACE_C:
        raise NotImplementedError(
            f"exact moments of ARS/ARSM need C <= {MAX_RACE_C} (their per-dimension pair tables "
            f"hold C^6 entries); alpha has C={C}")
    for k in range(K):
        row = pr.params[k]
        distinct = bool(np.any(row != row[0]))
        if weight == "sym" and C > MAX_RACE_C:
            raise NotImplementedError(
                f"exact moments with the symmetry factor (ARSM+) need C <= {MAX_RACE_C} (their "
                f"per-dimension pair tables hold C^6 entries); row {k} of alpha has C={C}")
        if weight == "ce" and shared_j and C > MAX_RACE_C and distinct:
            raise NotImplementedError(
                f"moments of ARS+ need C <= {MAX_RACE_C} unless every logit of a row is the same "
                f"(exact cells up to C = {MAX_ARS_PLUS_C}, then races and RQMC: pair tables of "
                f"C^6 entries); row {k} of alpha has C={C}")
        if weight == "ce" and not shared_j and C > MAX_RACE_C and distinct:
            raise NotImplementedError(
                f"moments with the conditional expectation for every reference (ARSM+CE) need "
                f"C <= {MAX_RACE_C} unless every logit of a row is the same (exact cells up to "
                f"C = {MAX_CE_C}, then races and RQMC: pair tables of C^6 entries); row {k} of "
                f"alpha has C={C}")


def _check_swap_budget(K: int, C: int, weight: str, shared_j: bool, distinct: int = 0
                       ) -> None:
    """Refuse up front what the contraction cannot do in the configured memory and time: it
    holds the differences ``f(x) - f(y)`` over all pairs of configurations (``C^(2K)``
    float64, twice, plus a transposed copy) and contracts them with ``K (K + 1)`` products of
    pair tables of ``C^3`` (ARS family) or ``C^4`` (ARSM family) entries each, as matrix
    products (``_CONTRACTION_OPERATIONS``); the cells of the ``distinct`` rows of distinct
    logits add their nominal cost (``_CELL_OPERATIONS``), or past the cells the races and the
    RQMC points, and for ARSM+CE the kept corrections of every randomization in memory (its
    ``K^2`` linear maps, :func:`_ce_certified_moments`, cost what the ``K (K + 1)`` products
    do)."""
    check_enumeration_size(C, K)  # C^K within MAX_CONFIGURATIONS: C^(2K) fits a float
    pairs = float(C) ** (2 * K)
    entries = float(C) ** (3 if shared_j else 4)
    key = ("ars_plus" if weight == "ce" and shared_j else weight, C)
    memory = 8.0 * 3 * pairs
    if weight == "sym" and not shared_j:
        cells = distinct * _SYM_RACE_OPERATIONS * float(C) ** 5
    elif key[0] == "ars_plus" and C > MAX_ARS_PLUS_C:
        cells = distinct * (_SYM_RACE_OPERATIONS * float(C) ** 5 + _INTERVAL_OPERATIONS
                            * float(C) ** 3 * ARS_PLUS_RQMC_RANDOMIZATIONS
                            * 2.0 ** ARS_PLUS_RQMC_LOG2_POINTS)
    elif weight == "ce" and not shared_j and C > MAX_CE_C and distinct:
        R = CE_RQMC_RANDOMIZATIONS
        cells = distinct * (_SYM_RACE_OPERATIONS * float(C) ** 5 + R * (
            2.0 ** CE_RQMC_LOG2_POINTS * _CE_POINT_OPERATIONS * float(C) ** 4
            + 2.0 ** CE_INTERVAL_LOG2_POINTS * _INTERVAL_OPERATIONS * float(C) ** 3))
        memory += 8.0 * distinct * R * (2 * float(C) ** 6 + float(C) ** 5)
    else:
        cells = distinct * _CELL_OPERATIONS.get(key, 0.0) if weight != "plain" else 0.0
    check_budget(f"exact moments of the swap estimator (weight {weight!r}) at K={K}, C={C}",
                 memory_bytes=memory,
                 operations=_CONTRACTION_OPERATIONS * K * (K + 1) * pairs * entries + cells)


def _second_roles(K: int, k: int, k2: int) -> list[tuple[str, bool]]:
    """Per dimension ``i``, the pair table of ``E[g_kc g_k'c']`` (``k' = k2``): ``Q2`` where
    ``i = k = k'``, ``L2`` (weight of the first swap's reference) where ``i = k``, ``L2`` of the
    second swap's reference (``True``: :func:`_swapped_second`) where ``i = k'``, else ``P2``."""
    return [("Q2", False) if i == k and i == k2 else ("L2", False) if i == k
            else ("L2", True) if i == k2 else ("P2", False) for i in range(K)]


def _role_table(t: dict[str, np.ndarray], role: tuple[str, bool], shared_j: bool, C: int
                ) -> np.ndarray:
    """Table ``role`` (from :func:`_second_roles`) of one dimension's flattened tables ``t``."""
    name, swapped = role
    return _swapped_second(t[name], shared_j, C) if swapped else t[name]


def _polarized(S: np.ndarray, shared_j: bool, C: int, sign: float) -> np.ndarray:
    """The ``(C, C)`` block of ``E[g_kc g_k'c']`` from the contraction ``S`` (``[a, j, b]``
    with ``q = j`` and ``Gamma = I / C`` for the ARS family, ``[a, j, b, q]`` and ``Gamma = 1 /
    C^2`` for ARSM) by the polarization: ``(t1 + t2 + sign (t3 + t4)) / (2 C)`` (``2 C^2``),
    ``sign = -1``; ``sign = +1`` on envelopes gives the bound of :func:`_entry_bounds`."""
    if shared_j:
        S = S.reshape(C, C, C)
        t1 = S.mean(axis=2).sum(axis=1)  # [c]: mean_b S[c, j, b], summed over j
        t2 = S.mean(axis=0).sum(axis=0)  # [c']
        t3 = S.sum(axis=1)  # [c, c']
        t4 = S.mean(axis=(0, 2)).sum()
        return (t1[:, None] + t2[None, :] + sign * t3 + sign * t4) / (2 * C)
    S = S.reshape(C, C, C, C)
    t1 = S.mean(axis=2).sum(axis=(1, 2))
    t2 = S.mean(axis=0).sum(axis=(0, 2))
    t3 = S.sum(axis=(1, 3))
    t4 = S.mean(axis=(0, 2)).sum()
    return (t1[:, None] + t2[None, :] + sign * t3 + sign * t4) / (2 * C**2)


def _swapped_second(L2: np.ndarray, shared_j: bool, C: int) -> np.ndarray:
    """The weight of the second swap's reference: ``L2[b, q, a, j, y, x]`` at ``[a, j, b, q, x,
    y]`` (``[b, j, a, y, x]`` at ``[a, j, b, x, y]`` when ``q = j``), flattened ``(n, C, C)``."""
    if shared_j:
        return L2.reshape(C, C, C, C, C).transpose(2, 1, 0, 4, 3).reshape(-1, C, C)
    return L2.reshape((C,) * 6).transpose(2, 3, 0, 1, 5, 4).reshape(-1, C, C)


def swap_moments(dist: Any, params: object, objective: Any, *, weight: str, shared_j: bool,
                 dps: int | None = None) -> Moments:
    """Exact mean and covariance of a swap estimator (module docstring).

    ``weight``: ``"plain"``, ``"sym"`` or ``"ce"``; ``shared_j``: True for the ARS family
    (one reference ``j`` drawn uniformly), False for the ARSM family (average over ``j``).
    ``dps``: None (float64), or a number of decimal digits: the same computation with every
    number an ``mpmath`` number (the float64 logits and objective values taken as exact),
    rounded to float64 at the end. The working precision is ``dps`` plus
    ``3 spread / ln 10`` digits (``spread`` the largest ``max - min`` of a row of logits):
    the cell boundaries are differences of rows whose coefficients differ by up to
    ``e^spread`` and are compared at vertices whose coordinates differ as much, and the
    contraction cancels terms up to ``e^spread`` times the smallest entry (module
    docstring), so every entry keeps about ``dps`` digits. Small problems only (see
    :func:`_check_mp_scope`).
    """
    pr: Problem = make_problem(dist, params, objective)
    if pr.dist.name != "categorical":
        raise ValueError("the swap estimators take categorical logits")
    if weight not in WEIGHTS:
        raise ValueError(f"weight must be one of {WEIGHTS}, got {weight!r}")
    _check_scope(pr, weight, shared_j)
    K, C = pr.K, pr.C
    distinct = sum(bool(np.any(row != row[0])) for row in pr.params)
    _check_swap_budget(K, C, weight, shared_j, distinct)
    if dps is None:
        return _swap_moments(pr, weight, shared_j, 0)
    if isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or not 20 <= dps <= 1000:
        raise ValueError(f"dps must be an int in [20, 1000] or None, got {dps!r}")
    _check_mp_scope(K, C, weight, shared_j)
    import mpmath

    spread = float((pr.params.max(axis=-1) - pr.params.min(axis=-1)).max())
    work = int(dps) + int(np.ceil(3 * spread / np.log(10)))
    with mpmath.workdps(work):
        return _swap_moments(pr, weight, shared_j, work)


#: the largest ``C`` and ``C^K`` for the ``mpmath`` mode (``dps``): minutes at ``K = 2, C = 4``
MP_MAX_C = 4
MP_MAX_CONFIGURATIONS = 64


def _check_mp_scope(K: int, C: int, weight: str, shared_j: bool) -> None:
    """Refuse up front an ``mpmath`` computation that would take more than minutes: its cost
    is the float64 one times about ``10^3`` (scalar ``mpf`` operations of a few
    microseconds instead of vectorized float64)."""
    if C > MP_MAX_C or C**K > MP_MAX_CONFIGURATIONS:
        raise NotImplementedError(
            f"the mpmath mode of the swap moments handles C <= {MP_MAX_C} and C^K <= "
            f"{MP_MAX_CONFIGURATIONS} (K = 2, C = 4 takes up to minutes); got K={K}, C={C}")


def _contract(f: np.ndarray, tabs: list[dict[str, Any]], shared_j: bool,
              second_moment: bool = True
              ) -> tuple[np.ndarray, np.ndarray, list, list, np.ndarray]:
    """Mean ``(K, C)`` and second moment ``(K, C, K, C)`` from the per-dimension pair tables
    ``tabs`` and the centred objective table ``f`` ``(C,) * K`` (module docstring, step 2);
    also the flattened tables (``diag``: entries ``q = j``; ``T``: those the second moment
    reads) and ``d2 = (f(x) - f(y))^2``. Without ``second_moment`` the second moment is
    zeros (the caller contracts it, as :func:`_ce_certified_moments`)."""
    K, C = f.ndim, f.shape[0]
    dt = f.dtype
    names = ("P2", "L2", "Q2")
    # the diagonal q = j: every pair the mean needs, and every pair of the ARS family
    diag = [{n: np.einsum("ajbjxy->ajbxy", t[n]).reshape(-1, C, C) for n in names} for t in tabs]
    T = diag if shared_j else [{n: t[n].reshape(-1, C, C) for n in names} for t in tabs]
    fx = f.reshape(f.shape + (1,) * K)
    fy = f.reshape((1,) * K + f.shape)
    d1 = fx - fy  # f(x) - f(y): zero wherever the two configurations agree
    d2 = d1 * d1

    # mean: E[g_kc] = (1/C^2) sum_{j, m} E[W_kj (f(Z[c, j]) - f(Z[m, j]))] (gamma_j = 1/C for
    # both families): pair tables give it without subtracting large, nearly equal terms
    mean = np.zeros((K, C), dtype=dt)
    for k in range(K):
        U = _pair_contract(d1, [diag[i]["L2" if i == k else "P2"] for i in range(K)])
        mean[k] = U.reshape(C, C, C).sum(axis=(1, 2)) / C**2  # [c, j, m]
    # second moment: with A^j_c = (1/C) sum_m (f_cj - f_mj) and the polarization
    # (a - b)(c - d) = ((a - d)^2 + (b - c)^2 - (a - c)^2 - (b - d)^2) / 2, every term is a
    # weighted mean of (f(Z[a, j]) - f(Z[b, q]))^2: zero wherever the two swaps agree
    second = np.zeros((K, C, K, C), dtype=dt)
    for k in range(K if second_moment else 0):
        for k2 in range(K):
            facs = [_role_table(T[i], role, shared_j, C)
                    for i, role in enumerate(_second_roles(K, k, k2))]
            second[k, :, k2, :] = _polarized(_pair_contract(d2, facs), shared_j, C, -1.0)
    return mean, second, diag, T, d2


def _swap_moments(pr: Problem, weight: str, shared_j: bool, dps: int) -> Moments:
    K, C = pr.K, pr.C
    f = pr.f_table()
    if dps:
        import mpmath

        f = np.vectorize(mpmath.mpf, otypes=[object])(f)
    f = f - f.mean()  # the estimators are invariant to a constant shift of f
    # each distinct row once; the rows' cells side by side where they are refined in float64
    rows = [tuple(pr.params[k].tolist()) for k in range(K)]
    distinct = list(dict.fromkeys(rows))
    if weight == "ce" and not shared_j and not dps and C > MAX_CE_C \
            and any(len(set(row)) > 1 for row in rows):
        return _ce_certified_moments(pr, f)

    cells = _FAST and not dps and weight == "ce"
    certified: dict[tuple[float, ...], dict[str, Any]] = {}
    if cells and shared_j and C > MAX_ARS_PLUS_C:
        # ARS+ by races and RQMC: every row's races and randomizations together on the threads
        certified = _ars_plus_interval_tensors(tuple(dict.fromkeys(
            _row_key(np.array(row)) for row in distinct if len(set(row)) > 1)))
        cells = False

    if cells and not shared_j and _ce_summed_in_kernel(C):
        # ARSM+CE's cells: every row's chunks side by side on the threads, first
        _ce_tables_rows([_row_key(np.array(row)) for row in distinct])

    def tables(row: tuple[float, ...]) -> dict[str, Any]:
        key = _row_key(np.array(row))
        return certified[key] if key in certified else _pair_tensors(np.array(row), weight,
                                                                     shared_j, dps)
    done = dict(zip(distinct, _threaded(tables, distinct) if cells else map(tables, distinct),
                    strict=True))
    tabs = [done[r] for r in rows]
    mean, second, diag, T, d2 = _contract(f, tabs, shared_j)
    P = K * C
    mu = mean.ravel()
    cov = second.reshape(P, P) - np.outer(mu, mu)
    cov = 0.5 * (cov + cov.T)
    half, trace_half = _interval_half_width(tabs, diag, d2, C) if shared_j and not dps \
        else (0.0, 0.0)
    if dps:  # round once, at the end
        mean, cov = mean.astype(np.float64), cov.astype(np.float64)
    spread = float(f.max() - f.min())
    rng = spread * (C - 1) + np.abs(mean)
    dropped = max(t["unresolved"] for t in tabs)
    # a dropped cell moves the first moment by at most its probability times |g|, and the
    # second by its probability times g^2 (|g| <= spread (C - 1))
    err = K * dropped * (spread * (C - 1)) ** 2 * 2 + K * dropped * spread * (C - 1)
    mean_error = cov_error = None
    if not dps:
        mean_error, cov_error = _entry_bounds(pr, weight, shared_j, f, tabs, diag, T, mean,
                                              second.reshape(P, P), cov)
        mean_error, cov_error = mean_error + err, cov_error + err
    if half:
        R = ARS_PLUS_RQMC_RANDOMIZATIONS
        return Moments(mean, cov, (
            f"certified: the mean exact (closed-form exponential races with the symmetry "
            f"events; ARS+'s L2 is the symmetry-only one), the covariance from the same races "
            f"minus the interval variance of pi_j by randomized QMC ({R} scrambled Sobol sets "
            f"of 2^{ARS_PLUS_RQMC_LOG2_POINTS} points, pi_j integrated out on its pieces); "
            f"error bound = Student-t half-width at confidence {RQMC_CONFIDENCE:.6g} "
            f"over every covariance entry (relative to the largest: "
            f"{half / max(float(np.abs(cov).max()), 1e-300):.2g}; the trace's own: "
            f"{trace_half:.2g}); the races' own per-entry bounds in mean_error/cov_error"),
            float(err) + half, rng, mean_error, cov_error)
    if weight == "plain" or (weight == "sym" and not dps):
        method = ("exact: closed-form exponential races for every pair of swaps (Dirichlet(1) "
                  "as normalized exponentials)"
                  + (" and for the symmetry events delta_j = 1" if weight == "sym" else "")
                  + ", contraction across dimensions in difference form")
    else:
        name = {"sym": " with the symmetry factor",
                "ce": " with the symmetry factor and the interval conditional expectation"}[weight]
        method = (f"exact: per-dimension polytope cells of the simplex (swap argmins{name}), "
                  f"degree-2 simplex integrals, contraction across dimensions in difference form")
    if dps:
        method += f", in mpmath at {dps} digits"
    else:
        worst = float(np.max(mean_error / np.maximum(np.abs(mean), 1e-300)))
        method += (f"; per-entry error bounds in mean_error/cov_error (largest relative bound "
                   f"of a mean entry {worst:.2g})")
        spread_alpha = float((pr.params.max(axis=-1) - pr.params.min(axis=-1)).max())
        if spread_alpha > LOW_PRECISION_SPREAD:
            method += (f"; float64 at a logit spread of {spread_alpha:.3g}: entries far below "
                       f"the largest are not accurate relative to themselves (dps=30 is, for "
                       f"C <= {MP_MAX_C}, C^K <= {MP_MAX_CONFIGURATIONS})")
    return Moments(mean, cov, method, float(err), rng, mean_error, cov_error)


def _interval_half_width(tabs: list[dict[str, Any]], diag: list[dict[str, np.ndarray]],
                         d2: np.ndarray, C: int) -> tuple[float, float]:
    """The Student-t half-widths (confidence ``RQMC_CONFIDENCE``) of ARS+'s
    covariance from its RQMC interval variance (:func:`_ars_plus_interval_tensors`): over
    every entry, and of the trace; ``(0, 0)`` when no dimension has one. The covariance is
    linear in each dimension's ``V`` and only its block ``(k, k)`` reads it (``Q2_k``), so
    each randomization's ``V`` gives one estimate of that block, contracted as the moments are;
    their spread gives the half-width per entry, and the largest is returned (one bound for
    all entries, as :func:`verify.moments.quadrature.rqmc_mean_cov`: an entry's own spread
    misses the rare outcomes that few points see)."""

    K = len(tabs)
    half = 0.0
    traces = 0.0
    for k, t in enumerate(tabs):
        if "V_r" not in t:
            continue
        V_r = t["V_r"]  # (R, j, m, p, x, y)
        R = V_r.shape[0]
        # the other dimensions contracted once: Wk[n, x_k, y_k] = sum over the others' (x_i,
        # y_i) of d2 prod_i P2_i[n, x_i, y_i] (n = [m, j, p], the diagonal tables' order)
        Wk = _pair_free(d2, [diag[i]["P2"] for i in range(K)], k)
        Vk = V_r.transpose(0, 2, 1, 3, 4, 5).reshape(R, C**3, C, C)
        S = (-C * C / 12.0) * np.einsum("nxy,rnxy->rn", Wk, Vk)
        blocks = np.stack([_polarized(S[r], True, C, -1.0) for r in range(R)])
        half = max(half, _student_factor(R) * float(blocks.std(axis=0, ddof=1).max()))
        # the randomizations of different rows are independent: the trace's per-randomization
        # values add up (same R for every row)
        traces = traces + np.trace(blocks, axis1=1, axis2=2)
    if np.ndim(traces) == 0:
        return half, 0.0
    return half, _student_factor(traces.size) * float(traces.std(ddof=1))


#: ARSM+CE beyond ``MAX_CE_C`` (rows of distinct logits): scrambled Sobol sets of
#: ``2**CE_RQMC_LOG2_POINTS`` points per dimension and randomization
#: (:func:`verify.moments.swap_interval.ce_correction_tables`)
CE_RQMC_LOG2_POINTS = 14
CE_RQMC_RANDOMIZATIONS = 32
#: the points of its interval variance ``V`` (a set of their own, as ARS+'s)
CE_INTERVAL_LOG2_POINTS = 14
#: nominal operations of one point of ARSM+CE's corrections per ``C^4`` (measured C = 10:
#: about 20 us with the grouped accumulation, 0.05 ms before; the interval variance's 12 us
#: are counted by ``_INTERVAL_OPERATIONS``)
_CE_POINT_OPERATIONS = 0.25


def _ce_sampled_tables(row: np.ndarray, D: np.ndarray, DQ: np.ndarray, V: np.ndarray
                       ) -> dict[str, Any]:
    """ARSM+CE's pair tables of a row of distinct logits: ARSM+'s races plus the corrections
    ``(D, DQ, V)`` of :func:`verify.moments.swap_interval.ce_correction_tables`."""
    C = row.size
    sym = _sym_race_tensors(_row_key(row))
    idx = np.arange(C)
    Q2 = sym["Q2"] + DQ
    Q2[:, idx, :, idx] -= C * C / 12.0 * V  # DQ is 0 where q = j
    return {"P2": sym["P2"], "L2": sym["L2"] - C * D, "Q2": Q2, "err_L2": sym["err_L2"],
            "err_Q2": sym["err_Q2"], "unresolved": 0.0}


def _ce_corrections(row: np.ndarray, k: int, r: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`verify.moments.swap_interval.ce_correction_tables` of the row of dimension
    ``k`` from randomization ``r``: its own points (dimensions must not share them, their
    estimates are multiplied)."""
    return ce_correction_tables(row, log2_points=CE_RQMC_LOG2_POINTS, seed=(k, r),
                                interval_log2_points=CE_INTERVAL_LOG2_POINTS)


def _ce_randomization_tables(row: np.ndarray, k: int, r: int) -> dict[str, Any]:
    """ARSM+CE's pair tables for the row of dimension ``k`` from randomization ``r`` alone;
    rows of equal logits, the exact symmetric cells."""
    if np.all(row == row[0]):
        return _pair_tensors(row, "ce", False)
    return _ce_sampled_tables(row, *_ce_corrections(row, k, r))


def _ce_certified_moments(pr: Problem, f: np.ndarray) -> Moments:
    """ARSM+CE past its cells, certified. Every randomization gives every dimension's
    corrections (independent points per dimension and randomization); the second moment is
    contracted from each dimension's mean tables over the randomizations: the contraction is
    linear in each dimension's tables and the dimensions are independent, so it is unbiased.
    Each block is contracted once with a sampled dimension's table left free
    (:func:`_pair_free`), which gives the block and, applied to each randomization's
    deviation from the mean, its first-order spread (the other dimensions at their means; the
    terms left out are products of two dimensions' deviations). The bound is the largest
    Student-t half-width of that spread over the entries, as ``error_bound``. The mean is
    exact (its entries ``q = j`` are ARSM+'s). Memory: every randomization's corrections are
    kept, ``2 C^6 + C^5`` float64 per sampled dimension."""

    K, C = pr.K, pr.C
    R = CE_RQMC_RANDOMIZATIONS
    sampled = [k for k in range(K) if np.any(pr.params[k] != pr.params[k][0])]
    jobs = [(k, r) for k in sampled for r in range(R)]

    def run(job: tuple[int, int] | None) -> Any:
        if job is None:  # ARSM+'s races of every row, in one thread beside the points
            return [_sym_race_tensors(_row_key(pr.params[k])) for k in sampled]
        return _ce_corrections(pr.params[job[0]], *job)

    runs = dict(zip(jobs, _threaded(run, [None, *jobs])[1:], strict=True))
    means = {k: [sum(runs[k, r][n] for r in range(R)) / R for n in range(3)] for k in sampled}
    tabs = [_ce_sampled_tables(pr.params[k], *means[k]) if k in sampled
            else _pair_tensors(pr.params[k], "ce", False) for k in range(K)]
    mean, second, diag, T, d2 = _contract(f, tabs, False, second_moment=False)
    # each block (k, k2) with a sampled dimension i in {k, k2} is contracted once with i's
    # table left free (W): W (i's mean table) is the block, W (Delta_i^r) is randomization
    # r's first-order deviation from it, Delta_i^r = (i's tables from r) - (i's mean tables)
    # in i's role there: -C (D_r - D) in L2, the DQ and V terms in Q2
    Ws = {}
    for k in range(K):
        for k2 in range(k, K):  # block (k2, k) is the transpose of block (k, k2)
            roles = _second_roles(K, k, k2)
            facs = [_role_table(T[i], role, False, C) for i, role in enumerate(roles)]
            free = sorted({k, k2} & set(sampled))
            for i in free:
                Ws[k, k2, i] = (_pair_free(d2, facs, i).reshape(-1, C * C), roles[i])
            S = np.einsum("nz,nz->n", Ws[k, k2, free[0]][0], facs[free[0]].reshape(-1, C * C)) \
                if free else _pair_contract(d2, facs)
            second[k, :, k2, :] = _polarized(S, False, C, -1.0)
            second[k2, :, k, :] = second[k, :, k2, :].T
    P = K * C
    second = second.reshape(P, P)
    mu = mean.ravel()
    cov = second - np.outer(mu, mu)
    cov = 0.5 * (cov + cov.T)
    idx = np.arange(C)
    dev = np.zeros((R, K, C, K, C))
    for i in sampled:
        for r in range(R):
            D, DQ, V = (runs[i, r][n] - means[i][n] for n in range(3))
            DQ[:, idx, :, idx] -= C * C / 12.0 * V
            delta = {"L2": (-C * D).reshape(-1, C, C), "Q2": DQ.reshape(-1, C, C)}
            for (k, k2, i2), (W, role) in Ws.items():
                if i2 == i:
                    S = np.einsum("nz,nz->n", W, _role_table(delta, role, False, C)
                                  .reshape(-1, C * C))
                    dev[r, k, :, k2, :] += _polarized(S, False, C, -1.0)
    for k in range(K):
        for k2 in range(k + 1, K):
            dev[:, k2, :, k, :] = dev[:, k, :, k2, :].transpose(0, 2, 1)
    q = _student_factor(R)
    half = float(q * dev.reshape(R, P, P).std(axis=0, ddof=1).max())
    trace_half = float(q * np.trace(dev.reshape(R, P, P), axis1=1, axis2=2).std(ddof=1))
    mean_error, cov_error = _entry_bounds(pr, "ce", False, f, tabs, diag, T, mean, second, cov)
    spread = float(f.max() - f.min())
    return Moments(mean, cov, (
        f"certified: the mean exact (closed-form exponential races with the symmetry events: "
        f"its entries q = j are ARSM+'s), the pair tables ARSM+'s plus the conditional "
        f"expectation's corrections by randomized QMC ({R} scrambled Sobol sets of "
        f"2^{CE_RQMC_LOG2_POINTS} points per dimension, their mean contracted once); error "
        f"bound = Student-t half-width at confidence {RQMC_CONFIDENCE:.6g} of the sets' "
        f"first-order spread over every covariance entry (relative to the largest: "
        f"{half / max(float(np.abs(cov).max()), 1e-300):.2g}; the trace's own: "
        f"{trace_half:.2g}); the races' own per-entry bounds in mean_error/cov_error"),
        half, spread * (C - 1) + np.abs(mean), mean_error, cov_error)


#: unit roundoff of float64
_U = float(np.finfo(np.float64).eps) / 2


def _table_eps(pr: Problem, weight: str, shared_j: bool, tabs: list[dict[str, Any]]
               ) -> list[np.ndarray | None]:
    """Per dimension, the *absolute* error of each probability entry of the cells' pair tables
    ``(C,) * 6`` (for ARSM+'s races, the bounds of their signed corrections, scaled to the
    probability level as ``L2`` and ``Q2`` are below), or None where there is none to add to
    the relative rounding factor of :func:`_entry_bounds` (the plain races, accurate relative to
    each entry; rows of equal logits,
    whose cells are not thin). The cells lose digits on thin cells (module docstring): where
    the races give the same probabilities (``P2`` does not depend on the weight; rows of
    distinct logits, ``C <= MAX_RACE_C``) the difference, entry by entry, is the cells'
    error, counted 4 times. ``L2`` and ``Q2`` come from the same cells with weights of
    magnitude at most ``C - 1``, continuous within an entry's region, so a misplaced boundary
    moves them by at most ``C - 1`` (``(C - 1)^2``) times what it moves ``P2``: an argument,
    not a proof, checked against the ``mpmath`` mode in ``tests/test_swap_scale.py``."""
    eps: list[np.ndarray | None] = []
    C = pr.C
    for k, t in enumerate(tabs):
        row = pr.params[k]
        if "err_L2" in t:  # ARSM+'s races: their signed corrections' rounding bounds
            eps.append(np.maximum(t["err_L2"] / (C + 1.0), t["err_Q2"] / (C + 1.0) ** 2))
            continue
        if weight == "plain" or not np.any(row != row[0]) or pr.C > MAX_RACE_C:
            eps.append(None)
            continue
        ref = _race_tensors(tuple((row - row.max()).tolist()), shared_j)["P2"]
        eps.append(4.0 * np.abs(np.asarray(t["P2"], dtype=np.float64) - ref))
    return eps


def _entry_bounds(pr: Problem, weight: str, shared_j: bool, f: np.ndarray,
                  tabs: list[dict[str, Any]], diag: list[dict[str, np.ndarray]],
                  T: list[dict[str, np.ndarray]], mean: np.ndarray, second: np.ndarray,
                  cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry bounds on the absolute error of the float64 ``mean`` ``(K, C)`` and ``cov``
    ``(P, P)`` (issue 16: the sums cancel terms up to ``e^spread`` times the small entries).

    The same contractions as the moments, run on *envelopes*: ``|f(x) - f(y)|`` (and its
    square) and, per dimension, ``P2 + eps`` for the probabilities, ``(C + 1)(P2 + eps)`` for
    ``L2`` and ``(C + 1)^2 (P2 + eps)`` for ``Q2`` (``|W| <= C - 1``; for the races, the
    rounding of ``L2 = P - E[x_j 1]`` and of ``Q2`` is relative to these). Under the standard
    model of float64 rounding a sum computed along a tree of depth ``h`` errs by at most
    ``h u sum |terms|``; the contractions sum ``C^2`` terms per dimension and the final
    reductions ``C^2`` (mean) or ``C^4`` (second moment), so the relative factors are
    ``(K C^2 + C^2 + K + 4) u`` and ``(K C^2 + C^4 + K + 8) u``, plus ``8 (C + 4) u`` for the
    races' own rounding (``16 (C + 4) u`` for the cells' integration). Added: the shift of
    ``f`` by its mean (``u (|f_x| + |f_y| + |d|)`` per difference, 0 where the values
    agree), the cells' absolute errors entry by entry (:func:`_table_eps`, first order: one
    contraction per dimension with that factor replaced by its errors), and the subtraction
    ``E[g g^T] - mu mu^T`` with the mean's bounds. The caller adds the dropped cells'
    ``error_bound``. Checked against the ``mpmath`` mode and ``race_moments_mp`` at logits up
    to +-50 in ``tests/test_swap_scale.py`` (measured: errors at most 0.005 of their bound)."""
    K, C = pr.K, pr.C
    u = _U
    eps = _table_eps(pr, weight, shared_j, tabs)
    g_tab = 8.0 * (C + 4) * u if weight == "plain" else 16.0 * (C + 4) * u
    g1 = (K * C * C + C * C + K + 4) * u + g_tab
    g2 = (K * C * C + C**4 + K + 8) * u + g_tab
    fx = f.reshape(f.shape + (1,) * K)
    fy = f.reshape((1,) * K + f.shape)
    d1 = fx - fy
    a1 = np.abs(d1)
    e1 = np.where(fx == fy, 0.0, u * (np.abs(fx) + np.abs(fy) + a1))
    d2 = d1 * d1
    e2 = 2.0 * a1 * e1 + e1 * e1 + u * d2
    scale = {"P2": 1.0, "L2": C + 1.0, "Q2": (C + 1.0) ** 2}
    e_diag = [None if e is None else np.einsum("ajbjxy->ajbxy", e).reshape(-1, C, C)
              for e in eps]
    e_full = e_diag if shared_j else [None if e is None else e.reshape(-1, C, C) for e in eps]

    def env(t: dict[str, np.ndarray], e: np.ndarray | None) -> dict[str, np.ndarray]:
        Pe = np.asarray(t["P2"], dtype=np.float64) + (0.0 if e is None else e)
        return {n: s * Pe for n, s in scale.items()}

    denv = [env(t, e) for t, e in zip(diag, e_diag, strict=True)]
    Tenv = denv if shared_j else [env(t, e) for t, e in zip(T, e_full, strict=True)]

    def contract(d: np.ndarray, extra: np.ndarray, facs: list[np.ndarray],
                 errs: list[np.ndarray | None]) -> np.ndarray:
        out = _pair_contract(d, facs)
        for i in range(K):  # first order in the tables' absolute errors
            if errs[i] is not None:
                out = out + _pair_contract(extra, [*facs[:i], errs[i], *facs[i + 1:]])
        return out

    mean_err = np.zeros((K, C))
    for k in range(K):
        facs = [denv[i]["L2" if i == k else "P2"] for i in range(K)]
        errs = [None if e_diag[i] is None else scale["L2" if i == k else "P2"] * e_diag[i]
                for i in range(K)]
        U = contract(g1 * a1 + e1, a1, facs, errs)
        mean_err[k] = U.reshape(C, C, C).sum(axis=(1, 2)) / C**2
    mean_err += 2 * u * np.abs(mean)
    P = K * C
    sec_err = np.zeros((K, C, K, C))
    # every envelope is P2 + eps scaled by its role, so a block's contraction is the product
    # of its roles' scales times one of K + 1 contractions: which dimension (if any) reads its
    # table with the second swap's reference
    unit: dict[int | None, np.ndarray] = {}
    for k in range(K):
        for k2 in range(K):
            roles = _second_roles(K, k, k2)
            swapped = next((i for i, (_, sw) in enumerate(roles) if sw), None)
            if swapped not in unit:
                facs = [_swapped_second(Tenv[i]["P2"], shared_j, C) if i == swapped
                        else Tenv[i]["P2"] for i in range(K)]
                errs = [None if e_full[i] is None else _swapped_second(e_full[i], shared_j, C)
                        if i == swapped else e_full[i] for i in range(K)]
                unit[swapped] = contract(g2 * d2 + e2, d2, facs, errs)
            factor = float(np.prod([scale[name] for name, _ in roles]))
            sec_err[k, :, k2, :] = _polarized(factor * unit[swapped], shared_j, C, 1.0)
    me = mean_err.ravel()
    mu = np.abs(mean.ravel())
    ce = (sec_err.reshape(P, P) + np.outer(mu, me) + np.outer(me, mu) + np.outer(me, me)
          + 2 * u * (np.abs(second) + np.outer(mu, mu)))
    ce = np.maximum(ce, ce.T) + u * np.abs(cov)
    return mean_err, ce


#: logit spread past which the float64 method says that small entries lose relative accuracy
#: (the contraction cancels about ``e^spread``: 1e-16 e^10 = 2e-12 of the largest entry)
LOW_PRECISION_SPREAD = 10.0


def ars_moments(dist: Any, params: object, objective: Any, *, dps: int | None = None
                ) -> Moments:
    """Exact moments of ARS (one reference ``j`` drawn uniformly); ``dps``: see
    :func:`swap_moments`."""
    return swap_moments(dist, params, objective, weight="plain", shared_j=True, dps=dps)


def arsm_moments(dist: Any, params: object, objective: Any, *, dps: int | None = None
                 ) -> Moments:
    """Exact moments of ARSM (average over every reference ``j``); ``dps``: see
    :func:`swap_moments`."""
    return swap_moments(dist, params, objective, weight="plain", shared_j=False, dps=dps)


def ars_plus_moments(dist: Any, params: object, objective: Any, *, dps: int | None = None
                     ) -> Moments:
    """Exact moments of ARS+ (symmetry and interval conditional expectation, one ``j``) for
    ``C <= MAX_ARS_PLUS_C`` or rows of equal logits; certified (exact mean, covariance within
    ``error_bound`` at confidence ``RQMC_CONFIDENCE``: races and RQMC, module
    docstring) for rows of distinct logits up to ``MAX_RACE_C``; ``dps``: see
    :func:`swap_moments` (within the cells' scope)."""
    return swap_moments(dist, params, objective, weight="ce", shared_j=True, dps=dps)


def arsm_plus_moments(dist: Any, params: object, objective: Any, *, dps: int | None = None
                      ) -> Moments:
    """Exact moments of ARSM+ (ARSM with the symmetry factor); ``dps``: see
    :func:`swap_moments`."""
    return swap_moments(dist, params, objective, weight="sym", shared_j=False, dps=dps)


def arsm_plus_ce_moments(dist: Any, params: object, objective: Any, *, dps: int | None = None
                         ) -> Moments:
    """Exact moments of ARSM with both reductions for every ``j`` for ``C <= MAX_CE_C`` or rows
    of equal logits; certified (exact mean, covariance within ``error_bound``: races and RQMC,
    module docstring) for rows of distinct logits up to ``MAX_RACE_C``; ``dps``: see
    :func:`swap_moments` (within the cells' scope)."""
    return swap_moments(dist, params, objective, weight="ce", shared_j=False, dps=dps)
