"""Exact moments of the categorical swap estimators (ARS, ARSM, ARS+, ARSM+, ARSM+ with the
conditional expectation), by exact integration over polytopes of the simplex.

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

Method. (1) Per dimension: the simplex is split into convex cells on which every swapped
argmin ``Z_k[m, j]`` is constant (hyperplanes ``w_a pi_b = w_c pi_d``) and, for the
conditional expectation, on which the active pieces of ``lo`` (a max of linear functions of
``pi``) and ``hi`` (a min) are constant for every ``(j, l)``; cells are refined only where a
vertex test shows that something varies (:func:`verify.moments.polytope.refine`). On each cell the
weights are linear in ``pi``, so ``P(cell)``, ``E[W_j 1{cell}]`` and
``E[W_j W_j' 1{cell}]`` follow exactly from the cell's moments of degree <= 2
(:func:`verify.moments.polytope.cell_moments`: fan triangulation and the closed form over simplices).
The ``l`` average is taken inside: ``E[W_j W_j']`` uses ``mean_l W_jl`` for ``j != j'``
(independent ``l``) and ``mean_l W_jl^2`` for ``j = j'`` (the same ``l``).
(2) Across dimensions, which are independent given ``j`` (and the ``l``), the moments are
multilinear in per-dimension tables::

    P1_k[m,j,x]           = P(Z_k[m,j] = x)
    L1_k[m,j,x]           = E[W_kj 1{Z_k[m,j] = x}]
    P2_k[m,j,p,q,x,y]     = P(Z_k[m,j] = x, Z_k[p,q] = y)
    L2_k[m,j,p,q,x,y]     = E[W_kj 1{Z_k[m,j] = x, Z_k[p,q] = y}]
    Q2_k[m,j,p,q,x,y]     = E[W_kj W_kq 1{Z_k[m,j] = x, Z_k[p,q] = y}]

and, with ``D = I - 11^T / C``::

    E[g_kc]        = sum_j gamma_j sum_m D[c,m] sum_x f(x) L1_k[m,j,x_k] prod_{i != k} P1_i[m,j,x_i]
    E[g_kc g_k'c'] = sum_{j,q} Gamma[j,q] sum_{m,p} D[c,m] D[c',p] sum_{x,y} f(x) f(y)
                     prod_i T_i[m,j,p,q,x_i,y_i]

with ``T_i = Q2_i`` if ``i = k = k'``, ``L2_i`` (weight of ``j``) if ``i = k != k'``, its
transpose (weight of ``q``) if ``i = k' != k``, else ``P2_i``; ``Gamma = 11^T / C^2`` for the
ARSM family and ``I / C`` for the ARS family (one shared ``j``). Nothing is sampled: the only
errors are float64 rounding and cells too thin for float64 (dropped; their probability
``1 - sum P(cell)`` enters ``error_bound``).

Rows of equal logits (any ``C``, e.g. the categorical toy with ``C = 10``): the law is
invariant under every relabelling of the categories, so the cells are built in the ordered
simplex ``{pi_0 <= ... <= pi_{C-1}}`` only and each per-dimension table ``T`` is replaced by
``sum_sigma T[sigma(i_1), ..., sigma(i_n)]``, computed from the equality pattern of the
indices (a tuple's orbit is every tuple with its pattern, each reached ``(C - b)!`` times,
``b`` distinct labels).

Scope and cost: rows with distinct logits need ``C <= 5`` (``MAX_GENERIC_C``; the cells grow
fast with ``C``), and ``C <= 4`` with the conditional expectation (``MAX_CE_C``: at ``C = 5``
its arrangement needs more memory than a machine has, one call asked for 206 GiB, so it is
refused up front); any ``K`` (the contraction costs ``C^{2K + 4}``). Measured: K = 3, C = 4 with
the conditional expectation (about 12 000 cells per dimension) takes 10-20 s; without it,
under a second. Exact up to float64 rounding; ``error_bound`` covers the probability of
cells below float64 resolution and the rounding of the total probability.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from functools import lru_cache
from math import factorial
from typing import Any

import numpy as np

from ..exact import Problem, make_problem
from . import Moments
from .polytope import cells_moments, ordered_cell, refine, sides, simplex_cell

__all__ = ["swap_moments", "ars_moments", "arsm_moments", "ars_plus_moments",
           "arsm_plus_moments", "arsm_plus_ce_moments", "dimension_tables"]

#: largest C handled for rows with distinct logits (rows of equal logits: any C)
MAX_GENERIC_C = 5
#: the same with the conditional-expectation weights (ARS+, ARSM+CE), whose cells also split
#: along the interval bounds of every pair (j, l)
MAX_CE_C = 4

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
    F = np.zeros((len(pairs), C, C))
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
    p = np.zeros(C)
    q = np.zeros((C, C))  # q[i] is a linear function of pi
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

    def __init__(self, alpha_row: np.ndarray, ce: bool) -> None:
        a = np.asarray(alpha_row, dtype=np.float64)
        self.C = C = a.size
        # w_i = exp(-alpha_i), scaled so the largest is 1 (only ratios matter)
        self.w = np.exp(a.min() - a)
        self.F = _swap_functions(self.w)  # (G, C, C)
        self.ce = ce
        if ce:
            e = np.eye(C)
            low = np.zeros((C, C, C, C, C, C))
            up = np.zeros((C, C, C, C, C, C))
            for j in range(C):
                for l in range(C):
                    up[j, l] = e[j] + e[l]
                    if l == j:
                        continue
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
        a = np.where(np.abs(a) <= 1e-13 * (np.abs(best) + np.abs(sub)), 0.0, a)
        _, side = sides(a, V)  # (q, R, n)
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
        return a[q, r], (Z, pairs, rows, new_open)

    def midpoints(self, state: Any, c: np.ndarray) -> np.ndarray:
        """``mid[j, l, :]``: ``(lo + hi) / 2`` as a linear function of ``pi`` on the cell
        (zero where ``l = j`` or ``delta_j = 1``)."""
        _, pairs, rows = state
        mid = np.zeros((self.C, self.C, self.C))
        if rows.shape[0]:
            star = np.argmax(rows @ c, axis=-1)  # (p, 2)
            p = np.arange(rows.shape[0])
            lo, neg_hi = rows[p, 0, star[:, 0]], rows[p, 1, star[:, 1]]
            mid[pairs[:, 0], pairs[:, 1]] = 0.5 * (lo - neg_hi)
        return mid


@lru_cache(maxsize=64)
def _cells(alpha_key: tuple[float, ...], ce: bool) -> dict[str, Any]:
    """The cells of one dimension: outcome matrices ``Z`` ``(N, C, C)``, moments ``m0``
    ``(N,)``, ``m1`` ``(N, C)``, ``m2`` ``(N, C, C)``, midpoint rows ``mid`` ``(N, C, C, C)``
    (CE only), and ``unresolved``, a bound on the probability not integrated exactly
    (cells below float64 resolution, and the rounding of the total)."""
    dim = _Dimension(np.array(alpha_key), ce)
    # equal logits: every relabelling of the categories leaves the law invariant, so the
    # ordered simplex (probability 1/C!) suffices; the tables are symmetrized later
    symmetric = bool(np.all(np.array(alpha_key) == alpha_key[0])) and dim.C > 2
    start = ordered_cell(dim.C) if symmetric else simplex_cell(dim.C)
    cells, unresolved = refine(start, dim.splitter)
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
            "unresolved": unresolved + abs(1.0 - total)}


def dimension_tables(alpha_row: np.ndarray, weight: str) -> dict[str, Any]:
    """Per-dimension tables for one row of logits, aggregated over distinct outcomes.

    Returns ``Z`` int ``(n, C, C)`` (distinct outcome matrices), ``P`` ``(n,)``,
    ``L`` ``(n, C)`` = ``E[W_j 1{Z}]``, ``Q`` ``(n, C, C)`` = ``E[W_j W_j' 1{Z}]``, and
    ``unresolved`` (see :func:`_cells`).
    """
    if weight not in WEIGHTS:
        raise ValueError(f"weight must be one of {WEIGHTS}, got {weight!r}")
    a = np.asarray(alpha_row, dtype=np.float64)
    C = a.size
    cells = _cells(tuple((a - a.max()).tolist()), weight == "ce")
    Z, m0, m1, m2 = cells["Z"], cells["m0"], cells["m1"], cells["m2"]
    N = Z.shape[0]
    ones, eye = np.ones(C), np.eye(C)
    keep = np.ones((N, C)) if weight == "plain" else (~np.all(Z == Z[:, :1, :], axis=1)) * 1.0
    if weight == "ce":
        u = ones - C * cells["mid"]  # (N, j, l, C): W_jl = u . pi
        others = ~eye.astype(bool)  # l != j
        ubar = (u * others[None, :, :, None]).sum(axis=2) / (C - 1) * keep[:, :, None]
        Q = np.einsum("njc,ncd,nkd->njk", ubar, m2, ubar)
        sq = np.einsum("njlc,ncd,njld->njl", u, m2, u)
        diag = (sq * others).sum(axis=2) / (C - 1) * keep
        Q[:, np.arange(C), np.arange(C)] = diag
    else:
        ubar = (ones - C * eye)[None] * keep[:, :, None]  # (N, j, C)
        Q = np.einsum("njc,ncd,nkd->njk", ubar, m2, ubar)
    L = np.einsum("njc,nc->nj", ubar, m1)
    # aggregate cells with the same outcome matrix
    keys, inverse = np.unique(Z.reshape(N, -1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    n = keys.shape[0]
    P = np.zeros(n)
    Ls = np.zeros((n, C))
    Qs = np.zeros((n, C, C))
    np.add.at(P, inverse, m0)
    np.add.at(Ls, inverse, L)
    np.add.at(Qs, inverse, Q)
    return {"Z": keys.reshape(n, C, C), "P": P, "L": Ls, "Q": Qs,
            "unresolved": cells["unresolved"], "symmetric": cells["symmetric"]}


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
    Z = tab["Z"]
    O = (Z[..., None] == np.arange(C)).astype(np.float64)  # (n, m, j, x)
    P, L, Q = tab["P"], tab["L"], tab["Q"]
    P1 = np.einsum("n,nmjx->mjx", P, O)
    L1 = np.einsum("nj,nmjx->mjx", L, O)
    P2 = np.einsum("n,nmjx,npqy->mjpqxy", P, O, O)
    L2 = np.einsum("nj,nmjx,npqy->mjpqxy", L, O, O)
    Q2 = np.einsum("njq,nmjx,npqy->mjpqxy", Q, O, O)
    out = {"P1": P1, "L1": L1, "P2": P2, "L2": L2, "Q2": Q2}
    if tab["symmetric"]:  # cells cover the ordered simplex only: add every relabelling
        out = {k: _symmetrize(v) for k, v in out.items()}
    return out


def _contract(f: np.ndarray, factors: Iterable[np.ndarray], second: bool) -> np.ndarray:
    """``sum_x f(x) prod_i T_i[..., x_i]`` (or with ``f(x) f(y)`` and ``T_i[..., x_i, y_i]``)."""
    factors = list(factors)
    K = len(factors)
    xs, ys = string.ascii_lowercase[:K], string.ascii_uppercase[:K]
    if second:
        terms = [xs, ys] + [f"mjpq{xs[i]}{ys[i]}" for i in range(K)]
        spec = ",".join(terms) + "->mjpq"
        return np.einsum(spec, f, f, *factors, optimize=True)
    terms = [xs] + [f"mj{xs[i]}" for i in range(K)]
    return np.einsum(",".join(terms) + "->mj", f, *factors, optimize=True)


def swap_moments(dist: Any, params: object, objective: Any, *, weight: str, shared_j: bool
                 ) -> Moments:
    """Exact mean and covariance of a swap estimator (module docstring).

    ``weight``: ``"plain"``, ``"sym"`` or ``"ce"``; ``shared_j``: True for the ARS family
    (one reference ``j`` drawn uniformly), False for the ARSM family (average over ``j``).
    """
    pr: Problem = make_problem(dist, params, objective)
    if pr.dist.name != "categorical":
        raise ValueError("the swap estimators take categorical logits")
    K, C = pr.K, pr.C
    for k in range(K):
        row = pr.params[k]
        if C > MAX_GENERIC_C and np.any(row != row[0]):
            raise NotImplementedError(
                f"exact swap moments need C <= {MAX_GENERIC_C} (the cells of the simplex grow like "
                f"C^(2C)) unless every logit of a row is the same; row {k} of alpha has C={C}")
        if weight == "ce" and C > MAX_CE_C and np.any(row != row[0]):
            raise NotImplementedError(
                f"exact moments with the conditional expectation (ARS+, ARSM+CE) need C <= "
                f"{MAX_CE_C} unless every logit of a row is the same (at C = 5 the cells of the "
                f"arrangement need hundreds of GiB); row {k} of alpha has C={C}")
    f = pr.f_table()
    f = f - f.mean()  # the estimators are invariant to a constant shift of f
    tabs = [dimension_tables(pr.params[k], weight) for k in range(K)]
    T = [_tensors(t, C) for t in tabs]
    D = np.eye(C) - 1.0 / C
    gamma = np.full(C, 1.0 / C)
    Gamma = np.eye(C) / C if shared_j else np.full((C, C), 1.0 / C**2)

    mean = np.zeros((K, C))
    for k in range(K):
        M = _contract(f, [T[i]["L1"] if i == k else T[i]["P1"] for i in range(K)], False)
        mean[k] = D @ (M @ gamma)
    second = np.zeros((K, C, K, C))
    for k in range(K):
        for k2 in range(K):
            facs = []
            for i in range(K):
                if i == k and i == k2:
                    facs.append(T[i]["Q2"])
                elif i == k:
                    facs.append(T[i]["L2"])
                elif i == k2:
                    facs.append(T[i]["L2"].transpose(2, 3, 0, 1, 5, 4))
                else:
                    facs.append(T[i]["P2"])
            X = _contract(f, facs, True)  # (m, j, p, q)
            second[k, :, k2, :] = np.einsum("jq,cm,dp,mjpq->cd", Gamma, D, D, X)
    P = K * C
    S = second.reshape(P, P)
    mu = mean.ravel()
    cov = S - np.outer(mu, mu)
    cov = 0.5 * (cov + cov.T)
    spread = float(f.max() - f.min())
    rng = spread * (C - 1) + np.abs(mean)
    dropped = max(t["unresolved"] for t in tabs)
    # a dropped cell moves the first moment by at most its probability times |g|, and the
    # second by its probability times g^2 (|g| <= spread (C - 1))
    err = K * dropped * (spread * (C - 1)) ** 2 * 2 + K * dropped * spread * (C - 1)
    name = {"plain": "", "sym": " with the symmetry factor",
            "ce": " with the symmetry factor and the interval conditional expectation"}[weight]
    method = (f"exact: per-dimension polytope cells of the simplex (swap argmins{name}), "
              f"degree-2 simplex integrals, tensor contraction across dimensions")
    return Moments(mean, cov, method, float(err), rng)


def ars_moments(dist: Any, params: object, objective: Any) -> Moments:
    """Exact moments of ARS (one reference ``j`` drawn uniformly)."""
    return swap_moments(dist, params, objective, weight="plain", shared_j=True)


def arsm_moments(dist: Any, params: object, objective: Any) -> Moments:
    """Exact moments of ARSM (average over every reference ``j``)."""
    return swap_moments(dist, params, objective, weight="plain", shared_j=False)


def ars_plus_moments(dist: Any, params: object, objective: Any) -> Moments:
    """Exact moments of ARS+ (symmetry and interval conditional expectation, one ``j``)."""
    return swap_moments(dist, params, objective, weight="ce", shared_j=True)


def arsm_plus_moments(dist: Any, params: object, objective: Any) -> Moments:
    """Exact moments of ARSM+ (ARSM with the symmetry factor)."""
    return swap_moments(dist, params, objective, weight="sym", shared_j=False)


def arsm_plus_ce_moments(dist: Any, params: object, objective: Any) -> Moments:
    """Exact moments of ARSM with both reductions for every ``j``."""
    return swap_moments(dist, params, objective, weight="ce", shared_j=False)
