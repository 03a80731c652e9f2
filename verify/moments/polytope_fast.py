"""Numba kernels for the swap family's polytope cells in float64 (the ``dps = 0`` path).

The same refinement as :func:`verify.moments.polytope.refine` driven by
:meth:`verify.moments.swap._Dimension.splitter`, and the same integrals as
:func:`verify.moments.polytope.cells_moments`, compiled: the Python path calls
small-array NumPy once per cell and per split (K = 3, C = 4, ARSM+CE: about 35 000 splits,
13 s of interpreter and call overhead); here each cell costs microseconds. The decisions are
the Python path's, step for step: the tolerances (``SIDE_EPS`` relative to
``sum_i |a_i v_i|``, ``same_tol`` for rows that are the same function), the choice of the
splitting hyperplane (the first violated swap group or pair, the vertex and piece rule of the
splitter), the ``min_prob`` cut-off by the same probability bound, the order of the stack. Only
the order of the float64 sums inside dot products and determinants differs (cofactors instead
of LU), so the cells and the tables agree up to rounding; the Python path stays the reference
(and the only path in ``mpmath``), and ``tests/test_swap_fast.py`` compares the two. In more
than 3 dimensions (``C >= 5``) the triangulations differ: Qhull's in Python (checked against
Qhull's volume), the pulling triangulation from the incidences here
(:func:`_pulling_moments_into`, the twin of :func:`verify.moments.polytope._pulling`), about
30 times faster than calling Qhull for every cell (ARS+ at ``K = 2, C = 6``: 131 s before, 10
s with it).

Shapes: ``F`` ``(G, C, C)`` the swap functions of :func:`verify.moments.swap._swap_functions`
(rows ``i`` of group ``g``: ``pi -> w_i pi_{sigma_g(i)}``), ``groups`` ``(G, 2)`` int64 the
transposition ``(m, j)`` of each group (``(0, 0)`` first: the identity), ``low``/``up``
``(C,) * 6`` the bound rows of ``_Dimension``, ``pairmask`` ``(C, C)`` bool the pairs
``(j, l)`` refined along.

``cache=True``: compiling these kernels takes about 20 s of CPU, more than the Python path
costs at K = 3, C = 4; Numba's on-disk cache brings a fresh process down to well under a
second. It is safe here because every kernel calls only kernels of this file (the cache is
keyed on this file) and the constants of :mod:`verify.moments.polytope` (``SIDE_EPS``,
``MAX_PAIRS``, ``MAX_PULLING``) are passed as arguments, not frozen into the compiled code.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.typed import Dict

from . import polytope

__all__ = ["refine_cells", "refine_starts"]


@njit(cache=True)
def _centroid(V):
    n, C = V.shape
    c = np.zeros(C)
    for v in range(n):
        for k in range(C):
            c[k] += V[v, k]
    return c * (1.0 / n)


@njit(cache=True)
def _dot_row(M, r, x):
    """``M[r] . x``, summed in the order of ``k``; the row is read in place (a view per row
    costs an atomic reference-count pair that Numba's pruning leaves in these loops)."""
    s = 0.0
    for k in range(x.shape[0]):
        s += M[r, k] * x[k]
    return s


@njit(cache=True)
def _height_side_row(a, V, v, eps):
    """``(a . x, side)`` of hyperplane ``a`` and vertex ``x = V[v]`` (the vertex read in
    place): side -1, 0, +1, 0 within ``eps`` relative to ``sum_k |a_k x_k|``
    (:func:`polytope.sides`)."""
    h = 0.0
    t = 0.0
    for k in range(a.shape[0]):
        h += a[k] * V[v, k]
        t += abs(a[k]) * abs(V[v, k])
    tol = eps * t
    return h, (1 if h > tol else (-1 if h < -tol else 0))


@njit(cache=True)
def _split(V, T, a, d, eps, max_pairs):
    """:func:`polytope.split` (float64, no ``scale``): returns ``(has_lower, V, T, has_upper,
    V, T)``."""
    n, C = V.shape
    F = T.shape[1]
    h = np.empty(n)
    side = np.empty(n, np.int64)
    for v in range(n):
        h[v], side[v] = _height_side_row(a, V, v, eps)
    nn = 0
    npos = 0
    non = 0
    for v in range(n):
        if side[v] < 0:
            nn += 1
        elif side[v] > 0:
            npos += 1
        else:
            non += 1
    if nn * npos > max_pairs:
        raise MemoryError("a cut's vertex pairs exceed verify.moments.polytope.MAX_PAIRS: the "
                          "arrangement is too fine for exact integration on this machine")
    iN = np.empty(nn, np.int64)
    iP = np.empty(npos, np.int64)
    io = np.empty(non, np.int64)
    a_ = 0
    b_ = 0
    c_ = 0
    for v in range(n):
        if side[v] < 0:
            iN[a_] = v
            a_ += 1
        elif side[v] > 0:
            iP[b_] = v
            b_ += 1
        else:
            io[c_] = v
            c_ += 1
    # edges crossing the hyperplane: vertex pairs sharing at least d - 1 hyperplanes
    eu = np.empty(nn * npos, np.int64)
    ev = np.empty(nn * npos, np.int64)
    ne = 0
    for x in range(nn):
        u = iN[x]
        for y in range(npos):
            w = iP[y]
            if _shared(T, u, w) >= d - 1:
                eu[ne] = u
                ev[ne] = w
                ne += 1
    m = non + ne  # vertices of both pieces: on the hyperplane, then the crossing points
    newV = np.empty((m, C))
    newT = np.zeros((m, F + 1), np.bool_)
    for r in range(non):
        v = io[r]
        for k in range(C):
            newV[r, k] = V[v, k]
        for k in range(F):
            newT[r, k] = T[v, k]
        newT[r, F] = True
    for e in range(ne):
        u = eu[e]
        w = ev[e]
        lam_u = h[w] / (h[w] - h[u])
        lam_v = -h[u] / (h[w] - h[u])
        for k in range(C):
            newV[non + e, k] = lam_v * V[w, k] + lam_u * V[u, k]
        for k in range(F):
            newT[non + e, k] = T[u, k] and T[w, k]
        newT[non + e, F] = True
    Vl, Tl, okl = _piece(V, T, iN, newV, newT, d)
    Vu, Tu, oku = _piece(V, T, iP, newV, newT, d)
    return okl, Vl, Tl, oku, Vu, Tu


@njit(cache=True)
def _first_rows(T, keep):
    """Clear ``keep`` for every row of ``T`` ``(n, F)`` equal to an earlier kept row (the
    first of each incidence pattern stays, as ``np.unique(..., return_index=True)``)."""
    n, F = T.shape
    h = np.empty(n, np.uint64)
    for r in range(n):
        x = np.uint64(1469598103934665603)
        for k in range(F):
            x = (x ^ np.uint64(T[r, k])) * np.uint64(1099511628211)
        h[r] = x
    # a row goes when an earlier kept row has its pattern: pairs of rows compared by hash
    # first (n is tens of rows; a stable sort of the hashes cost more than these compares)
    for rb in range(1, n):
        if not keep[rb]:
            continue
        for ra in range(rb):
            if keep[ra] and h[ra] == h[rb]:
                same = True
                for k in range(F):
                    if T[ra, k] != T[rb, k]:
                        same = False
                        break
                if same:
                    keep[rb] = False
                    break


@njit(cache=True)
def _piece(V, T, idx, newV, newT, d):
    """The vertices ``idx`` of the cell and the new ones, those on at least ``d`` facets, one
    per incidence pattern (:func:`polytope._piece`)."""
    C = V.shape[1]
    F = T.shape[1]
    # the candidates in output order (old, then new) with their full incidence rows
    n_old = idx.size
    nc = n_old + newV.shape[0]
    allV = np.empty((nc, C))
    allT = np.zeros((nc, F + 1), np.bool_)
    for r in range(n_old):
        for k in range(C):
            allV[r, k] = V[idx[r], k]
        for k in range(F):
            allT[r, k] = T[idx[r], k]
    for r in range(newV.shape[0]):
        for k in range(C):
            allV[n_old + r, k] = newV[r, k]
        for k in range(F + 1):
            allT[n_old + r, k] = newT[r, k]
    keep = np.zeros(nc, np.bool_)
    for r in range(nc):
        s = 0
        for k in range(F + 1):
            if allT[r, k]:
                s += 1
        keep[r] = s >= d
    _first_rows(allT, keep)
    cnt = 0
    for r in range(nc):
        cnt += keep[r]
    outV = np.empty((cnt, C))
    outT = np.zeros((cnt, F + 1), np.bool_)
    p = 0
    for r in range(nc):
        if keep[r]:
            for k in range(C):
                outV[p, k] = allV[r, k]
            for k in range(F + 1):
                outT[p, k] = allT[r, k]
            p += 1
    return outV, outT, cnt >= d + 1


@njit(cache=True)
def _probability_bound(V, fact_d):
    n, C = V.shape
    top = 0.0
    prod = 1.0
    for k in range(C):
        lo = V[0, k]
        hi = V[0, k]
        for v in range(1, n):
            lo = min(lo, V[v, k])
            hi = max(hi, V[v, k])
        r = hi - lo
        prod *= r
        top = max(top, r)
    return (prod / top if top > 0 else 0.0) * fact_d


@njit(cache=True)
def _row_best(rows, x, sign):
    """The first ``r`` maximizing ``sign * (rows[r] . x)``: ``sign = 1`` NumPy's ``argmax``,
    ``sign = -1`` its ``argmin`` (multiplying by -1 is exact, so the decisions are the same)."""
    best = 0
    bv = sign * _dot_row(rows, 0, x)
    for r in range(1, rows.shape[0]):
        v = sign * _dot_row(rows, r, x)
        if v > bv:
            bv = v
            best = r
    return best


@njit(cache=True)
def _row_best_active(rows, act, x, sign):
    """:func:`_row_best` over the rows with ``act`` set (at least one)."""
    best = -1
    bv = 0.0
    for r in range(rows.shape[0]):
        if not act[r]:
            continue
        v = sign * _dot_row(rows, r, x)
        if best < 0 or v > bv:
            bv = v
            best = r
    return best


@njit(cache=True)
def _argmin_split(F, V, c, eps, act):
    """Phase 1 of the splitter (``_Dimension._argmin_split``): ``(found, a, act)``.

    ``act`` bool ``(G, C)``: the rows of each swap that can still be its argmin somewhere in
    the cell. A row that the centroid's argmin ``star`` does not exceed at any vertex cannot
    win anywhere in the cell or its pieces, so it is dropped for them (the returned copy):
    the candidates shrink as the cells do instead of every row being tested against every
    vertex at every level of the refinement. A swap is resolved when ``star`` alone is left.
    """
    G, C, _ = F.shape
    n = V.shape[0]
    a = np.empty(C)
    act = act.copy()
    for g in range(G):
        left = 0
        for i in range(C):
            left += act[g, i]
        if left <= 1:
            continue
        star = _row_best_active(F[g], act[g], c, -1.0)
        viol = np.zeros(C, np.bool_)
        pos_at = np.zeros(n, np.bool_)
        anyv = False
        for i in range(C):
            if not act[g, i] or i == star:
                continue
            for k in range(C):
                a[k] = F[g, star, k] - F[g, i, k]
            hp = False
            hn = False
            for v in range(n):
                s = _height_side_row(a, V, v, eps)[1]
                if s > 0:
                    hp = True
                    pos_at[v] = True
                elif s < 0:
                    hn = True
            viol[i] = hp and hn
            anyv = anyv or viol[i]
            if not hp:  # star <= row i on the whole cell
                act[g, i] = False
        if anyv:
            vert = 0
            for v in range(n):
                if pos_at[v]:
                    vert = v
                    break
            i = _row_best_active(F[g], act[g], V[vert], -1.0)
            if not viol[i]:
                for i2 in range(C):
                    if viol[i2]:
                        i = i2
                        break
            for k in range(C):
                a[k] = F[g, star, k] - F[g, i, k]
            return True, a, act
    return False, a, act


@njit(cache=True)
def _outcomes(F, groups, c):
    """``Z[m, j]`` at an interior point (``_Dimension.outcomes``, ``_Column.outcomes``)."""
    G, C, _ = F.shape
    Z = np.empty((C, C), np.int64)
    for g in range(G):
        star = _row_best(F[g], c, -1.0)
        if g == 0:
            Z[:, :] = star
        else:
            m, j = groups[g, 0], groups[g, 1]
            Z[m, j] = star
            Z[j, m] = star
    return Z


@njit(cache=True)
def _bound_rows_on(Z, low, up, pairmask):
    """``_Dimension._bound_rows_on``: pairs ``(p, 2)`` and rows ``(p, 2, C*C, C)``."""
    C = Z.shape[0]
    valid = np.zeros((C, C), np.bool_)
    p = 0
    for j in range(C):
        delta = True
        for m in range(C):
            if Z[m, j] != Z[0, j]:
                delta = False
        for l in range(C):
            if pairmask[j, l] and not delta:
                valid[j, l] = True
                p += 1
    pairs = np.empty((p, 2), np.int64)
    rows = np.empty((p, 2, C * C, C))
    q = 0
    for j in range(C):
        for l in range(C):
            if valid[j, l]:
                pairs[q, 0] = j
                pairs[q, 1] = l
                for m in range(C):
                    o = Z[m, j]
                    for r in range(C):
                        for k in range(C):
                            rows[q, 0, m * C + r, k] = low[j, l, m, o, r, k]
                            rows[q, 1, m * C + r, k] = -up[j, l, m, o, r, k]
                q += 1
    return pairs, rows


@njit(cache=True)
def _distinct_rows(rows):
    """``act`` bool ``(p, 2, R)``: the first of each set of equal bound rows of ``rows``
    ``(p, 2, R, C)`` (``_bound_rows_on``). Two thirds of them repeat (ARSM+CE at C = 5: the
    bounds 0 and ``s`` that pad every swap's rows), and a repeat can never be the only
    largest, so the splitter need not test it against every vertex."""
    p, _, R, C = rows.shape
    act = np.ones((p, 2, R), np.bool_)
    h = np.empty(R, np.int64)
    for q in range(p):
        for s in range(2):
            sub = rows[q, s]
            for r in range(R):
                x = np.int64(1469598103934665603)
                for k in range(C):
                    x = (x ^ np.int64(hash(sub[r, k]))) * np.int64(1099511628211)
                h[r] = x
            order = np.argsort(h, kind="mergesort")
            for a in range(R):
                ra = order[a]
                if not act[q, s, ra]:
                    continue
                for b in range(a + 1, R):
                    rb = order[b]
                    if h[rb] != h[ra]:
                        break
                    if act[q, s, rb]:
                        same = True
                        for k in range(C):
                            if sub[ra, k] != sub[rb, k]:
                                same = False
                                break
                        if same:  # the stable sort keeps equal hashes in index order
                            act[q, s, rb] = False
    return act


@njit(cache=True)
def _bound_row_best_active(rows, q, s, act, x):
    """:func:`_row_best_active` of ``rows[q, s]`` (``act[q, s]``, ``sign = 1``) at ``x``, the
    arrays read in place: views of ``rows`` and ``act`` cost a reference-count pair each,
    several per cell and pair."""
    best = -1
    bv = 0.0
    for r in range(rows.shape[2]):
        if not act[q, s, r]:
            continue
        val = 0.0
        for k in range(x.shape[0]):
            val += rows[q, s, r, k] * x[k]
        if best < 0 or val > bv:
            bv = val
            best = r
    return best


@njit(cache=True)
def _ce_split(rows, open_, act, V, c, same_tol, eps):
    """Phase 2 of the splitter (``_Dimension.splitter``): ``(found, a, new_open, new_act)``.

    ``act`` bool ``(p, 2, R)``: the bound rows that can still be the largest somewhere in the
    cell (:func:`_argmin_split`'s rule: a row the centroid's best one exceeds or equals at
    every vertex is dropped for the cell's pieces)."""
    p, _, R, C = rows.shape
    n = V.shape[0]
    new_open = open_.copy()
    act = act.copy()
    plane = np.zeros(C)
    found = False
    A = np.empty((R, C))
    cut = np.zeros(R, np.bool_)
    neg_at = np.empty(n, np.bool_)
    for q in range(p):
        for s in range(2):
            if not open_[q, s]:
                continue
            star = _bound_row_best_active(rows, q, s, act, c)
            neg_at[:] = False
            still = False
            for r in range(R):
                cut[r] = False
                if not act[q, s, r] or r == star:
                    continue
                for k in range(C):
                    b = rows[q, s, star, k]
                    x = rows[q, s, r, k]
                    y = b - x
                    # rows that are the same function up to rounding: no hyperplane
                    A[r, k] = 0.0 if abs(y) <= same_tol * (abs(b) + abs(x)) else y
                hp = False
                hn = False
                for v in range(n):
                    # _height_side_row's test with A[r] read in place: through the helper
                    # (a view of A[r] per row, or a helper indexing A's rows) one row's
                    # refinement at ARSM+CE C = 5 took 4-6% longer
                    h = 0.0
                    t = 0.0
                    for k in range(C):
                        h += A[r, k] * V[v, k]
                        t += abs(A[r, k]) * abs(V[v, k])
                    tol = eps * t
                    if h > tol:
                        hp = True
                    elif h < -tol:
                        hn = True
                        neg_at[v] = True
                cut[r] = hp and hn
                still = still or cut[r]
                if not hn:  # row r <= star on the whole cell
                    act[q, s, r] = False
            new_open[q, s] = still
            if still and not found:
                found = True
                vert = 0
                for v in range(n):
                    if neg_at[v]:
                        vert = v
                        break
                rr = _bound_row_best_active(rows, q, s, act, V[vert])
                if not cut[rr]:
                    for r in range(R):
                        if cut[r]:
                            rr = r
                            break
                plane[:] = A[rr]
    return found, plane, new_open, act


@njit(cache=True)
def _midpoints(pairs, rows, c, C):
    """``_Dimension.midpoints``: ``mid[j, l, :]`` ``(C, C, C)``."""
    mid = np.zeros((C, C, C))
    for q in range(pairs.shape[0]):
        lo = _row_best(rows[q, 0], c, 1.0)
        neg_hi = _row_best(rows[q, 1], c, 1.0)
        for k in range(C):
            mid[pairs[q, 0], pairs[q, 1], k] = 0.5 * (rows[q, 0, lo, k] - rows[q, 1, neg_hi, k])
    return mid


@njit(cache=True)
def _ce_cell_tables(Z, mid, m0, m1, m2, out):
    """Add one cell's ARSM+CE tables to ``out`` ``(1 + C + C^2,)`` = ``[P, L, Q.ravel()]``
    (:func:`verify.moments.swap._cell_weights` with ``weight="ce"``): the cell's outcome
    matrix ``Z`` ``(C, C)``, midpoint rows ``mid`` ``(C, C, C)`` and moments ``m0``, ``m1``
    ``(C,)``, ``m2`` ``(C, C)``. ``W_jl = (1 - delta_j) u_jl . pi`` with
    ``u_jl = 1 - C mid[j, l]``; ``L_j = E[mean_l W_jl]``, ``Q_jq = E[mean_l W_jl mean_l W_ql]``
    (independent ``l``), ``Q_jj = E[mean_l W_jl^2]`` (the same ``l``)."""
    C = Z.shape[0]
    S2 = np.empty((C, C))
    for a in range(C):
        for b in range(C):
            S2[a, b] = 0.5 * (m2[a, b] + m2[b, a])
    keep = np.empty(C)
    for j in range(C):
        keep[j] = 0.0
        for m in range(C):
            if Z[m, j] != Z[0, j]:
                keep[j] = 1.0
    ubar = np.zeros((C, C))
    u = np.empty(C)
    Su = np.empty(C)
    out[0] += m0
    for j in range(C):
        sq = 0.0
        for l in range(C):
            if l == j:
                continue
            for k in range(C):
                u[k] = 1.0 - C * mid[j, l, k]
                ubar[j, k] += u[k]
            for k in range(C):
                Su[k] = 0.0
                for k2 in range(C):
                    Su[k] += S2[k, k2] * u[k2]
            for k in range(C):
                sq += u[k] * Su[k]
        for k in range(C):
            ubar[j, k] *= keep[j] / (C - 1)
        out[1 + C + j * C + j] += sq / (C - 1) * keep[j]
        lin = 0.0
        for k in range(C):
            lin += ubar[j, k] * m1[k]
        out[1 + j] += lin
    for j in range(C):
        for k in range(C):
            Su[k] = 0.0
            for k2 in range(C):
                Su[k] += S2[k, k2] * ubar[j, k2]
        for q in range(C):
            if q != j:
                v = 0.0
                for k in range(C):
                    v += ubar[q, k] * Su[k]
                out[1 + C + j * C + q] += v


@njit(cache=True)
def _det_lu(S, d):
    """``det(S[1:, :d] - S[0, :d])`` by Gaussian elimination with partial pivoting (as
    LAPACK's LU behind ``np.linalg.det``), for ``d > 3``."""
    return _det_lu_into(S, d, np.empty((d, d)))


@njit(cache=True)
def _det_lu_into(S, d, M):
    """:func:`_det_lu` with the scratch matrix ``M`` ``(d, d)`` given (overwritten)."""
    for r in range(d):
        for k in range(d):
            M[r, k] = S[r + 1, k] - S[0, k]
    det = 1.0
    for k in range(d):
        p = k
        for r in range(k + 1, d):
            if abs(M[r, k]) > abs(M[p, k]):
                p = r
        if M[p, k] == 0.0:
            return 0.0
        if p != k:
            for c in range(d):
                M[k, c], M[p, c] = M[p, c], M[k, c]
            det = -det
        det *= M[k, k]
        for r in range(k + 1, d):
            f = M[r, k] / M[k, k]
            for c in range(k + 1, d):
                M[r, c] -= f * M[k, c]
    return det


@njit(cache=True)
def _simplex_det(S, d):
    """``det(S[1:, :d] - S[0, :d])``: ``d!`` times the volume of simplex ``S`` ``(d + 1, C)`` in
    the coordinates ``0..d-1`` (the simplex's last coordinate follows from the others)."""
    if d == 1:
        return S[1, 0] - S[0, 0]
    if d == 2:
        e00 = S[1, 0] - S[0, 0]
        e01 = S[1, 1] - S[0, 1]
        e10 = S[2, 0] - S[0, 0]
        e11 = S[2, 1] - S[0, 1]
        det = e00 * e11 - e01 * e10
    elif d == 3:
        M = np.empty((3, 3))
        for r in range(3):
            for k in range(3):
                M[r, k] = S[r + 1, k] - S[0, k]
        det = (M[0, 0] * (M[1, 1] * M[2, 2] - M[1, 2] * M[2, 1])
               - M[0, 1] * (M[1, 0] * M[2, 2] - M[1, 2] * M[2, 0])
               + M[0, 2] * (M[1, 0] * M[2, 1] - M[1, 1] * M[2, 0]))
    else:
        det = _det_lu(S, d)
    return det


@njit(cache=True)
def _add_simplex(S, m0, m1, m2, idx):
    """Add simplex ``S`` ``(d + 1, C)`` to cell ``idx``'s moments (``cells_moments``)."""
    d1, C = S.shape
    d = d1 - 1
    prob = abs(_simplex_det(S, d))
    tot = np.zeros(C)
    for v in range(d1):
        for k in range(C):
            tot[k] += S[v, k]
    m0[idx] += prob
    for k in range(C):
        m1[idx, k] += prob * tot[k] / (d + 1)
    den = (d + 1) * (d + 2)
    for i in range(C):
        for k in range(C):
            o = tot[i] * tot[k]
            for v in range(d1):
                o += S[v, i] * S[v, k]
            m2[idx, i, k] += prob * o / den


@njit(cache=True)
def _shared(T, u, w):
    """How many hyperplanes vertices ``u`` and ``w`` of a cell both lie on (``T`` incidence)."""
    sh = 0
    for k in range(T.shape[1]):
        if T[u, k] and T[w, k]:
            sh += 1
    return sh


@njit(cache=True)
def _cell_moments_into(V, T, m0, m1, m2, idx, max_pairs):
    """The pulling triangulation of ``polytope._simplices`` (``d <= 3``), integrated."""
    n, C = V.shape
    d = C - 1
    if n * n > max_pairs:  # the Python path's vertex-pair matrix would not fit either
        raise MemoryError("a cell's vertex pairs exceed verify.moments.polytope.MAX_PAIRS: the "
                          "arrangement is too fine for exact integration on this machine")
    if n == d + 1:
        _add_simplex(V, m0, m1, m2, idx)
        return
    c = _centroid(V)
    S = np.empty((d + 1, C))
    if d == 1:
        lo = 0
        hi = 0
        for v in range(1, n):
            if V[v, 0] < V[lo, 0]:
                lo = v
            if V[v, 0] > V[hi, 0]:
                hi = v
        S[0] = V[lo]
        S[1] = V[hi]
        _add_simplex(S, m0, m1, m2, idx)
        return
    F = T.shape[1]
    if d == 2:
        for u in range(n):
            for w in range(u + 1, n):
                if _shared(T, u, w) >= 1:
                    S[0] = c
                    S[1] = V[u]
                    S[2] = V[w]
                    _add_simplex(S, m0, m1, m2, idx)
        return
    # d == 3: facets (hyperplanes with at least 3 vertices) coned from their centroids
    cnt = np.zeros(F, np.int64)
    for v in range(n):
        for k in range(F):
            if T[v, k]:
                cnt[k] += 1
    pf = np.zeros((F, C))
    for k in range(F):
        if cnt[k] >= 3:
            for v in range(n):
                if T[v, k]:
                    for i in range(C):
                        pf[k, i] += V[v, i]
            for i in range(C):
                pf[k, i] /= cnt[k]
    for u in range(n):
        for w in range(u + 1, n):
            if _shared(T, u, w) >= 2:
                for k in range(F):
                    if cnt[k] >= 3 and T[u, k] and T[w, k]:
                        S[0] = c
                        S[1] = pf[k]
                        S[2] = V[u]
                        S[3] = V[w]
                        _add_simplex(S, m0, m1, m2, idx)


@njit(cache=True)
def _popcount(x):
    """The number of set bits of the uint64 ``x``."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True)
def _bit_of(v):
    """Vertex ``v``'s place in a bitset of uint64 words: ``(word, mask)``."""
    return v // 64, np.uint64(1) << np.uint64(v % 64)


@njit(cache=True)
def _pulling_moments_into(V, T, m0, m1, m2, idx, max_simplices):
    """:func:`polytope._pulling`'s triangulation of the cell ``(V, T)`` (any ``d``), each
    simplex integrated into cell ``idx``'s moments: every face is coned from its first vertex
    over its facets that do not hold that vertex (the maximal vertex sets on one recorded
    hyperplane, each once), down to the edges. Depth first with an explicit stack, which holds
    a face's vertex set, its dimension ``r`` and the ``d - r`` apexes above it. Raises past
    ``max_simplices`` (the Python path's limit) instead of exhausting the machine.

    Vertex sets are bitsets of ``nw`` uint64 words (vertex ``v`` is bit ``v % 64`` of word
    ``v // 64``; one word below 65 vertices): a face's facet candidates are one ``and`` per
    hyperplane and the test that one set lies inside another one ``and not`` per word, where
    lists of vertex indices cost a loop over the face's vertices for each (8.1-8.3 us per
    cell before, 7.1-7.7 after, on 20 000 cells of ARSM+CE at C = 5). Vertices in increasing
    order, as the index lists were, so the simplices and their sums are the same."""
    n, C = V.shape
    d = C - 1
    nw = (n + 63) // 64
    # only the hyperplanes holding at least d of the cell's vertices: the vertex sets that
    # another one cuts out of a face lie in a face of the cell, so they are subsets of (or
    # equal to) the sets of these and would be dropped below; the cells' incidences record
    # every cut above them (32 columns on average at ARSM+CE C = 5, 8 to 12 of them facets)
    F = 0
    hyp = np.zeros((T.shape[1], nw), np.uint64)
    for k in range(T.shape[1]):
        cnt = 0
        for v in range(n):
            cnt += T[v, k]
        if cnt >= d:
            for v in range(n):
                if T[v, k]:
                    q, bit = _bit_of(v)
                    hyp[F, q] |= bit
            F += 1
    S = np.empty((d + 1, C))
    M = np.empty((d, d))  # _det_lu_into's scratch
    # every simplex's volume is added to its vertices' weights w and to the pair weights W of
    # its vertex pairs: its degree-2 moments are vol (sum_v v v^T + (sum_v v)(sum_v v)^T) /
    # ((d + 1)(d + 2)), so the cell's are V^T (W + diag(w)) V / ((d + 1)(d + 2)), one product
    # per cell instead of C^2 (d + 2) operations per simplex. W is symmetric and its diagonal
    # is w (the same volumes added in the same order), so only W's upper triangle is summed,
    # the diagonal standing for w, and mirrored at the end: 15 additions per simplex instead of
    # 30 at d = 4, the same sums bit for bit
    W = np.zeros((n, n))
    sv = np.empty(d + 1, np.int64)
    # the stack as arrays (a face's vertex set, r, and the d - r apexes), not a list of
    # tuples of arrays: two allocations and their reference counts per face were a fifth of
    # ARSM+CE's time at C = 5; pushed and popped in the same order
    cap = 64
    s_face = np.zeros((cap, nw), np.uint64)
    s_r = np.empty(cap, np.int64)
    s_apex = np.empty((cap, d), np.int64)
    for v in range(n):
        q, bit = _bit_of(v)
        s_face[0, q] |= bit
    s_r[0] = d
    top = 1
    face = np.empty(nw, np.uint64)
    apex = np.empty(d + 1, np.int64)
    cand = np.zeros((F, nw), np.uint64)
    ok = np.zeros(F, np.bool_)
    count = 0
    while top > 0:
        top -= 1
        r = s_r[top]
        m = 0
        for q in range(nw):
            face[q] = s_face[top, q]
            m += _popcount(face[q])
        for a in range(d - r):
            apex[a] = s_apex[top, a]
        if r == 0 or m == r + 1:
            for a in range(d - r):
                sv[a] = apex[a]
            a = d - r
            for v in range(n):
                q, bit = _bit_of(v)
                if face[q] & bit:
                    sv[a] = v
                    a += 1
            for a in range(d + 1):
                for k in range(C):
                    S[a, k] = V[sv[a], k]
            vol = abs(_simplex_det(S, d) if d <= 3 else _det_lu_into(S, d, M))
            for a in range(d + 1):
                x = sv[a]
                W[x, x] += vol
                for b in range(a + 1, d + 1):
                    y = sv[b]
                    W[min(x, y), max(x, y)] += vol
            count += 1
            if count > max_simplices:
                raise NotImplementedError(
                    "a cell has more simplices by its incidences than the pulling "
                    "triangulation's limit: exact cells in more than 3 dimensions need "
                    "moderate logits")
            continue
        v0 = 0  # the face's first vertex
        q0, bit0 = _bit_of(0)
        while not face[q0] & bit0:
            v0 += 1
            q0, bit0 = _bit_of(v0)
        # the facets: the face's vertices on hyperplane k, at least r of them, not all, and
        # not the apex (a cone from a vertex over a facet through it is flat)
        for k in range(F):
            cnt = 0
            for q in range(nw):
                cand[k, q] = face[q] & hyp[k, q]
                cnt += _popcount(cand[k, q])
            ok[k] = cnt >= r and cnt < m and not hyp[k, q0] & bit0
        # each set once (the first hyperplane that gives it), and none inside another
        for k in range(F):
            if not ok[k]:
                continue
            for k2 in range(F):
                if k2 == k or not ok[k2]:
                    continue
                sub = True
                same = True
                for q in range(nw):
                    if cand[k, q] & ~cand[k2, q]:
                        sub = False
                        break
                    if cand[k, q] != cand[k2, q]:
                        same = False
                if sub and (not same or k2 < k):
                    ok[k] = False
                    break
        apex[d - r] = v0
        for k in range(F - 1, -1, -1):  # popped in the Python path's order
            if ok[k]:
                if top == cap:
                    cap *= 2
                    s_face2 = np.empty((cap, nw), np.uint64)
                    s_face2[:top] = s_face[:top]
                    s_face = s_face2
                    s_r2 = np.empty(cap, np.int64)
                    s_r2[:top] = s_r[:top]
                    s_r = s_r2
                    s_apex2 = np.empty((cap, d), np.int64)
                    s_apex2[:top] = s_apex[:top]
                    s_apex = s_apex2
                for q in range(nw):
                    s_face[top, q] = cand[k, q]
                s_r[top] = r - 1
                for a in range(d - r + 1):
                    s_apex[top, a] = apex[a]
                top += 1
    tot = 0.0
    for v in range(n):
        tot += W[v, v]  # w[v]
    # w counts each simplex d + 1 times
    m0[idx] += tot / (d + 1)
    for i in range(C):
        s1 = 0.0
        for v in range(n):
            s1 += W[v, v] * V[v, i]
        m1[idx, i] += s1 / (d + 1)
    for v in range(n):
        W[v, v] += W[v, v]  # W + diag(w)
        for u in range(v + 1, n):
            W[u, v] = W[v, u]
    den = (d + 1) * (d + 2)
    # no test for zero pair weights: adding 0 V[u, k] (+0 or -0) leaves every sum as it is
    # (a sum that starts at +0 stays +0), and the branch mispredicted
    WV = np.zeros((n, C))
    for v in range(n):
        for u in range(n):
            wvu = W[v, u]
            for k in range(C):
                WV[v, k] += wvu * V[u, k]
    for i in range(C):
        for k in range(C):
            s2 = 0.0
            for v in range(n):
                s2 += V[v, i] * WV[v, k]
            m2[idx, i, k] += s2 / den


@njit(cache=True)
def _slot(slots, Zs, Ws, code, Z):
    """The row of outcome matrix ``Z`` (read as the int64 ``code``) in the running sums
    ``Ws`` of ARSM+CE's ``[P, L, Q]``, appended (zero) the first time it is seen."""
    if code in slots:
        return slots[code]
    C = Z.shape[0]
    slot = len(Zs)
    slots[code] = slot
    Zs.append(Z.copy())
    Ws.append(np.zeros(1 + C + C * C))
    return slot


@njit(cache=True)
def _packed(slots, Zs, Ws, C):
    """The running sums of :func:`_slot` as arrays: ``codes`` ``(n,)``, ``Z`` ``(n, C, C)``,
    ``PLQ`` ``(n, 1 + C + C^2)``."""
    n = len(Zs)
    codes = np.empty(n, np.int64)
    Z = np.empty((n, C, C), np.int64)
    PLQ = np.empty((n, 1 + C + C * C))
    for code, slot in slots.items():
        codes[slot] = code
        Z[slot] = Zs[slot]
        PLQ[slot] = Ws[slot]
    return codes, Z, PLQ


@njit(cache=True, nogil=True)
def _refine(V0, T0, F, groups, low, up, pairmask, ce, phase0, Z0, same_tol, min_prob,
            max_cells, eps, max_pairs, max_simplices, keep_cells, agg):
    """``refine(start, _Dimension.splitter)`` and the per-cell data of ``swap._cells``.

    ``phase0``: 0 (nothing known: the root's state None) or 1 (phase 2 from the swaps'
    outcomes ``Z0``). Returns the accepted cells' ``Z`` ``(N, C, C)``, ``mid``
    ``(N, C, C, C)`` (``(0, C, C, C)`` unless ``ce``), moments ``m0, m1, m2`` (the cells' own
    pulling triangulation for ``d <= 3``, :func:`_pulling_moments_into` above), the vertex and
    incidence lists (empty unless ``keep_cells``), and the unresolved probability.

    ``agg`` (``ce`` only, ``C <= 5``): no per-cell output; each cell's ``P``, ``L``, ``Q`` of
    ``swap.dimension_tables`` (:func:`_ce_cell_tables`) is added at once to its outcome
    matrix's row, and the rows are returned as ``(codes, Z, PLQ, cells)`` (``codes``:
    ``Z`` read as one base-``C`` number, first entry most significant). ARSM+CE at C = 5
    has a million cells but 700 distinct outcome matrices: its memory stays in megabytes.
    """
    C = V0.shape[1]
    d = C - 1
    fact_d = 1.0
    for i in range(2, d + 1):
        fact_d *= i
    zrows = np.zeros((0, 2, C * C, C))
    zpairs = np.zeros((0, 2), np.int64)
    zopen = np.zeros((0, 2), np.bool_)
    if phase0 == 1:
        pairs0, rows0 = _bound_rows_on(Z0, low, up, pairmask)
        open0 = np.ones((pairs0.shape[0], 2), np.bool_)
    else:
        pairs0, rows0, open0 = zpairs, zrows, zopen
    # the candidate rows still alive in each cell (see _argmin_split), handed to its pieces
    gact0 = np.ones((F.shape[0], C), np.bool_)
    ract0 = _distinct_rows(rows0)
    stack = [(V0, T0, phase0, Z0, pairs0, rows0, open0, gact0, ract0)]
    # Numba types a list from its first element: start each with one, then empty it. Each
    # accepted cell is integrated at once and only its results are kept (ARSM+CE at C = 5:
    # 900 000 cells, whose vertex lists and bound rows held gigabytes); its vertices and
    # incidences only where the caller asks for them (``keep_cells``)
    doneV = [V0]
    doneT = [T0]
    doneZ = [Z0]
    doneMid = [np.zeros((C, C, C))]
    doneM = [np.zeros(1 + C + C * C)]
    donePhase = [phase0]
    donePhase.pop()
    doneV.pop()
    doneT.pop()
    doneZ.pop()
    doneMid.pop()
    doneM.pop()
    slots = Dict.empty(key_type=types.int64, value_type=types.int64)
    aggZ = [Z0]
    aggW = [np.zeros(1 + C + C * C)]
    aggZ.pop()
    aggW.pop()
    ncells = 0
    unresolved = 0.0
    one0 = np.zeros(1)
    one1 = np.zeros((1, C))
    one2 = np.zeros((1, C, C))
    while len(stack) > 0:
        V, T, phase, Z, pairs, rows, open_, gact, ract = stack.pop()
        c = _centroid(V)
        found = False
        a = np.zeros(C)
        if phase == 0:
            found, a, gact = _argmin_split(F, V, c, eps, gact)
            if not found:
                Z = _outcomes(F, groups, c)
                if ce:
                    pairs, rows = _bound_rows_on(Z, low, up, pairmask)
                    open_ = np.ones((pairs.shape[0], 2), np.bool_)
                    ract = _distinct_rows(rows)
                    phase = 1
                else:
                    phase = 2
        if phase == 1 and not found:
            if open_.any():
                found, a, open_, ract = _ce_split(rows, open_, ract, V, c, same_tol, eps)
            if not found:
                phase = 2
        if found:
            bound = _probability_bound(V, fact_d)
            if bound < min_prob:
                unresolved += bound
                found = False
        if not found:
            if phase == 0:  # accepted below float64 resolution in phase 1
                Z = _outcomes(F, groups, c)
                if ce:
                    pairs, rows = _bound_rows_on(Z, low, up, pairmask)
            one0[0] = 0.0
            one1[:] = 0.0
            one2[:] = 0.0
            if d <= 3:
                _cell_moments_into(V, T, one0, one1, one2, 0, max_pairs)
            else:
                _pulling_moments_into(V, T, one0, one1, one2, 0, max_simplices)
            ncells += 1
            if ncells > max_cells:
                raise RuntimeError("too many cells; the arrangement is too fine")
            if agg:
                code = np.int64(0)
                for a_ in range(C):
                    for b_ in range(C):
                        code = code * C + Z[a_, b_]
                slot = _slot(slots, aggZ, aggW, code, Z)
                _ce_cell_tables(Z, _midpoints(pairs, rows, c, C), one0[0], one1[0], one2[0],
                                aggW[slot])
                continue
            doneZ.append(Z)
            donePhase.append(phase)
            if ce:
                doneMid.append(_midpoints(pairs, rows, c, C))
            mom = np.empty(1 + C + C * C)
            mom[0] = one0[0]
            mom[1 : 1 + C] = one1[0]
            mom[1 + C :] = one2[0].ravel()
            doneM.append(mom)
            if keep_cells:
                doneV.append(V)
                doneT.append(T)
            continue
        okl, Vl, Tl, oku, Vu, Tu = _split(V, T, a, d, eps, max_pairs)
        if okl:
            stack.append((Vl, Tl, phase, Z, pairs, rows, open_, gact, ract))
        if oku:
            stack.append((Vu, Tu, phase, Z, pairs, rows, open_, gact, ract))
    N = len(doneZ)
    Zs = np.empty((N, C, C), np.int64)
    mids = np.zeros((N if ce else 0, C, C, C))
    m0 = np.empty(N)
    m1 = np.empty((N, C))
    m2 = np.empty((N, C, C))
    phases = np.empty(N, np.int64)
    for i in range(N):
        Zs[i] = doneZ[i]
        phases[i] = donePhase[i]
        if ce:
            mids[i] = doneMid[i]
        mom = doneM[i]
        m0[i] = mom[0]
        m1[i] = mom[1 : 1 + C]
        m2[i] = mom[1 + C :].reshape(C, C)
    for i in range(N):
        for a_ in range(C):
            for b_ in range(a_ + 1, C):
                s = 0.5 * (m2[i, a_, b_] + m2[i, b_, a_])
                m2[i, a_, b_] = s
                m2[i, b_, a_] = s
    codes, Zagg, PLQ = _packed(slots, aggZ, aggW, C)
    return Zs, mids, m0, m1, m2, doneV, doneT, phases, unresolved, (codes, Zagg, PLQ, ncells)


@njit(cache=True, nogil=True)
def _refine_starts(Vall, Tall, offsets, widths, Z0s, known, j, l, F, groups, low, up,
                   pairmask, same_tol, min_prob, max_cells, eps, max_pairs, max_simplices):
    """:func:`_refine` (ARS+ column ``(j, l)``, ``ce``) from each of many start cells in one
    call: cell ``i`` has the vertices ``Vall[offsets[i]:offsets[i + 1]]`` and incidences
    ``Tall[offsets[i]:offsets[i + 1], :widths[i]]`` (the rest is padding: every extra column
    would be read at every split and facet search below), and starts in phase 2
    from ``Z0s[i]`` where ``known[i]`` (else phase 1). Returns the accepted cells' column
    ``Z[:, j]`` ``(N, C)``, midpoint row ``mid[j, l]`` ``(N, C)``, moments ``m0, m1, m2`` and
    the unresolved probability: what ``swap._fast_column_tables`` keeps, without a Python
    call per start cell (30 000 of them per column at C = 6 cost a quarter of the time)."""
    C = Vall.shape[1]
    zs = [np.zeros((0, C), np.int64)]
    mids = [np.zeros((0, C))]
    m0s = [np.zeros(0)]
    m1s = [np.zeros((0, C))]
    m2s = [np.zeros((0, C, C))]
    unresolved = 0.0
    total = 0
    for i in range(offsets.size - 1):
        V0 = Vall[offsets[i]:offsets[i + 1]].copy()
        T0 = Tall[offsets[i]:offsets[i + 1], : widths[i]].copy()
        Zs, mid, m0, m1, m2, _, _, _, un, _ = _refine(
            V0, T0, F, groups, low, up, pairmask, True, 1 if known[i] else 0, Z0s[i],
            same_tol, min_prob, max_cells - total, eps, max_pairs, max_simplices, False, False)
        n = m0.size
        total += n
        z = np.empty((n, C), np.int64)
        md = np.empty((n, C))
        for r in range(n):
            for m in range(C):
                z[r, m] = Zs[r, m, j]
                md[r, m] = mid[r, j, l, m]
        zs.append(z)
        mids.append(md)
        m0s.append(m0)
        m1s.append(m1)
        m2s.append(m2)
        unresolved += un
    z = np.empty((total, C), np.int64)
    md = np.empty((total, C))
    m0 = np.empty(total)
    m1 = np.empty((total, C))
    m2 = np.empty((total, C, C))
    p = 0
    for i in range(len(zs)):
        n = m0s[i].size
        z[p : p + n] = zs[i]
        md[p : p + n] = mids[i]
        m0[p : p + n] = m0s[i]
        m1[p : p + n] = m1s[i]
        m2[p : p + n] = m2s[i]
        p += n
    return z, md, m0, m1, m2, unresolved


@njit(cache=True, nogil=True)
def _refine_starts_agg(Vall, Tall, offsets, widths, Z0s, known, F, groups, low, up, pairmask,
                       same_tol, min_prob, max_cells, eps, max_pairs, max_simplices):
    """:func:`_refine` with ``agg`` (ARSM+CE, every pair) from each of many start cells
    (packed as in :func:`_refine_starts`), the rows of equal outcome matrices summed in the
    order of the start cells: ``(codes, Z, PLQ, cells, unresolved)``."""
    C = Vall.shape[1]
    slots = Dict.empty(key_type=types.int64, value_type=types.int64)
    Zs = [np.zeros((C, C), np.int64)]
    Ws = [np.zeros(1 + C + C * C)]
    Zs.pop()
    Ws.pop()
    total = 0
    unresolved = 0.0
    for i in range(offsets.size - 1):
        V0 = Vall[offsets[i]:offsets[i + 1]].copy()
        T0 = Tall[offsets[i]:offsets[i + 1], : widths[i]].copy()
        res = _refine(V0, T0, F, groups, low, up, pairmask, True, 1 if known[i] else 0, Z0s[i],
                      same_tol, min_prob, max_cells - total, eps, max_pairs, max_simplices,
                      False, True)
        unresolved += res[8]
        codes, Zc, PLQ, n = res[9]
        total += n
        for r in range(codes.size):
            w = Ws[_slot(slots, Zs, Ws, codes[r], Zc[r])]
            for k in range(w.size):
                w[k] += PLQ[r, k]
    codes, Z, PLQ = _packed(slots, Zs, Ws, C)
    return codes, Z, PLQ, total, unresolved


def refine_starts(cells: list, Zs: list, j: int | None, l: int | None, F: np.ndarray,
                  groups: np.ndarray, low: np.ndarray, up: np.ndarray, pairmask: np.ndarray,
                  same_tol: float, min_prob: float, max_cells: int = 2_000_000) -> dict:
    """:func:`refine_cells` with ``ce=True`` for one ARS+ column ``(j, l)`` from every start
    cell of ``cells`` (a list of ``(V, T)``, float64 ``(n, C)`` and bool ``(n, hyperplanes)``)
    in one compiled call; ``Zs[i]`` is the swaps' outcome matrix on cell ``i`` (phase 2 from
    there) or None. Returns ``z`` int ``(N, C)`` (``Z[:, j]`` of each accepted cell), ``mid``
    ``(N, C)`` (its midpoint row of the pair ``(j, l)``), ``m0``, ``m1``, ``m2`` and
    ``unresolved``.

    ``j = l = None``: ARSM+CE (every pair of ``pairmask``), the tables of
    ``refine_cells(aggregate=True)`` summed over the start cells' refinements: ``Z``,
    ``P``, ``L``, ``Q``, ``cells`` and ``unresolved`` (``C <= 5``)."""
    C = F.shape[1]
    if len(cells) != len(Zs) or not cells:
        raise ValueError(f"cells and Zs must be non-empty lists of one length; got "
                         f"{len(cells)}, {len(Zs)}")
    sizes = np.array([V.shape[0] for V, _ in cells], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    widths = np.array([T.shape[1] for _, T in cells], dtype=np.int64)
    width = int(widths.max())
    Vall = np.concatenate([np.asarray(V, dtype=np.float64) for V, _ in cells])
    Tall = np.zeros((int(offsets[-1]), width), np.bool_)
    for (_, T), a, b in zip(cells, offsets[:-1], offsets[1:], strict=True):
        Tall[a:b, : T.shape[1]] = T
    known = np.array([Z is not None for Z in Zs], dtype=np.bool_)
    Z0s = np.stack([np.zeros((C, C), np.int64) if Z is None else np.asarray(Z, np.int64)
                    for Z in Zs])
    geometry = (np.ascontiguousarray(F, dtype=np.float64),
                np.ascontiguousarray(groups, dtype=np.int64),
                np.ascontiguousarray(low, dtype=np.float64),
                np.ascontiguousarray(up, dtype=np.float64),
                np.ascontiguousarray(pairmask, dtype=np.bool_), float(same_tol),
                float(min_prob), int(max_cells), float(polytope.SIDE_EPS),
                int(polytope.MAX_PAIRS), int(polytope.MAX_PULLING))
    if j is None or l is None:
        if j is not None or l is not None or C ** (C * C) >= 2**63:
            raise ValueError(f"the ARSM+CE tables (j = l = None) need C <= 5; got j={j}, l={l}, "
                             f"C={C}")
        codes, Z, PLQ, n, unresolved = _refine_starts_agg(Vall, Tall, offsets, widths, Z0s,
                                                          known, *geometry)
        order = np.argsort(codes)
        Z, PLQ = Z[order], PLQ[order]
        return {"Z": Z, "P": PLQ[:, 0], "L": PLQ[:, 1 : 1 + C],
                "Q": PLQ[:, 1 + C :].reshape(-1, C, C), "cells": int(n),
                "unresolved": float(unresolved)}
    z, mid, m0, m1, m2, unresolved = _refine_starts(Vall, Tall, offsets, widths, Z0s, known,
                                                    int(j), int(l), *geometry)
    return {"z": z, "mid": mid, "m0": m0, "m1": m1, "m2": m2, "unresolved": float(unresolved)}


def refine_cells(V0: np.ndarray, T0: np.ndarray, F: np.ndarray, groups: np.ndarray,
                 low: np.ndarray | None, up: np.ndarray | None, pairmask: np.ndarray | None,
                 ce: bool, Z0: np.ndarray | None, same_tol: float, min_prob: float,
                 max_cells: int = 2_000_000, keep_cells: bool = True, aggregate: bool = False
                 ) -> dict:
    """Compiled ``polytope.refine(Cell(V0, T0), _Dimension.splitter)`` for one dimension (or
    one ARS+ column) in float64, with the per-cell outcome matrices, CE midpoint rows and
    degree-2 moments of ``verify.moments.swap._cells`` (module docstring).

    ``V0`` float64 ``(n, C)`` and ``T0`` bool ``(n, hyperplanes)``: the start cell; ``F``
    ``(G, C, C)``, ``groups`` int ``(G, 2)``, ``low``/``up`` ``(C,) * 6`` and ``pairmask`` bool
    ``(C, C)`` (CE only; None otherwise): the geometry of ``_Dimension``; ``same_tol``,
    ``min_prob``: the Python path's tolerances. ``Z0``: the swaps' outcomes known on the start
    cell (phase 2 from there), or None (phase 1). Returns ``Z``, ``mid`` (``(0, C, C, C)``
    unless ``ce``), ``m0``, ``m1``, ``m2``, ``cells`` (a list of ``(V, T)``; empty unless
    ``keep_cells``: each cell is integrated as it is accepted), ``phase0`` (bool ``(N,)``:
    accepted below ``min_prob`` before the swaps were resolved, the splitter's state None) and
    ``unresolved``.

    ``aggregate=True`` (``ce`` only, ``C <= 5``): the ARSM+CE tables of
    ``swap.dimension_tables`` summed per distinct outcome matrix inside the kernel, no cell
    kept: returns ``Z`` int ``(n, C, C)`` (lexicographic order), ``P`` ``(n,)``, ``L``
    ``(n, C)``, ``Q`` ``(n, C, C)``, ``cells`` (how many were integrated) and
    ``unresolved``."""
    V0, T0, F = np.asarray(V0), np.asarray(T0), np.asarray(F)
    if V0.ndim != 2 or T0.shape[:1] != V0.shape[:1] or T0.ndim != 2 or T0.dtype != np.bool_:
        raise ValueError(f"V0 must be (n, C) and T0 bool (n, hyperplanes); got {V0.shape}, "
                         f"{T0.shape} {T0.dtype}")
    C = V0.shape[1]
    if F.ndim != 3 or F.shape[1:] != (C, C) or np.shape(groups) != (F.shape[0], 2):
        raise ValueError(f"F must be (G, {C}, {C}) and groups (G, 2); got {F.shape}, "
                         f"{np.shape(groups)}")
    if ce and (low is None or up is None or pairmask is None):
        raise ValueError("ce=True needs the bound rows low, up and pairmask")
    if V0.dtype == object:
        raise TypeError("refine_cells is the float64 path; mpmath cells take polytope.refine")
    if aggregate and (not ce or C ** (C * C) >= 2**63):
        raise ValueError(f"aggregate=True needs ce=True and C <= 5 (outcome matrices read as "
                         f"one int64); got ce={ce}, C={C}")
    if low is None:
        low = up = np.zeros((C,) * 6)
        pairmask = np.zeros((C, C), np.bool_)
    Zs, mids, m0, m1, m2, Vs, Ts, phases, unresolved, agg = _refine(
        np.ascontiguousarray(V0, dtype=np.float64), np.ascontiguousarray(T0, dtype=np.bool_),
        np.ascontiguousarray(F, dtype=np.float64), np.ascontiguousarray(groups, dtype=np.int64),
        np.ascontiguousarray(low, dtype=np.float64), np.ascontiguousarray(up, dtype=np.float64),
        np.ascontiguousarray(pairmask, dtype=np.bool_), bool(ce), 0 if Z0 is None else 1,
        np.zeros((C, C), np.int64) if Z0 is None else np.ascontiguousarray(Z0, dtype=np.int64),
        float(same_tol), float(min_prob), int(max_cells),
        # read at each call, not at import: a caller (or a test) may change them
        float(polytope.SIDE_EPS), int(polytope.MAX_PAIRS), int(polytope.MAX_PULLING),
        bool(keep_cells and not aggregate), bool(aggregate))
    if aggregate:
        codes, Z, PLQ, ncells = agg
        order = np.argsort(codes)
        Z, PLQ = Z[order], PLQ[order]
        n = Z.shape[0]
        return {"Z": Z, "P": PLQ[:, 0], "L": PLQ[:, 1 : 1 + C],
                "Q": PLQ[:, 1 + C :].reshape(n, C, C), "cells": int(ncells),
                "unresolved": float(unresolved)}
    out = {"Z": Zs, "mid": mids, "unresolved": float(unresolved), "phase0": phases == 0,
           "m0": m0, "m1": m1, "m2": m2}
    out["cells"] = list(zip(list(Vs), list(Ts), strict=True))
    return out
