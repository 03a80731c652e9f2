"""Convex cells of the probability simplex and exact integrals of quadratics over them.

Geometry for the exact moments of the swap estimators (:mod:`verify.moments.swap`). A point
of the simplex ``Delta_{C-1} = {pi in R^C : pi >= 0, sum(pi) = 1}`` is kept in its ``C``
barycentric coordinates ``pi``; every hyperplane used here is homogeneous, ``a . pi = 0``
(the swap outcomes compare products ``pi_a e^{-alpha_b}``, which is scale invariant), so a
hyperplane is a vector ``a`` of shape ``(C,)``.

A :class:`Cell` is a convex polytope inside the simplex: its vertices ``V`` (float64
``(n, C)``) and, for every vertex, the hyperplanes it lies on (``T``, bool ``(n, F)``; the
first ``C`` columns are the facets ``pi_i = 0`` of the simplex, one more column per split).
Splitting by a hyperplane keeps the vertices on each side, puts the vertices on it in both
pieces, and adds the crossing point of every edge with vertices on opposite sides. Two
vertices span an edge when they share at least ``d - 1`` hyperplanes (``d = C - 1``): every
recorded hyperplane supports the cell, so the shared ones meet it in a face that contains
both. No convex-hull code is needed, and cells far thinner than Qhull tolerates (the logits
``+-10`` give cells of width ``1e-9``) are handled exactly.

Integrals are taken against the uniform probability on the simplex (the law of
``Dirichlet(1_C)``): ``m0 = P(cell)``, ``m1 = E[pi 1{cell}]`` ``(C,)`` and
``m2 = E[pi pi^T 1{cell}]`` ``(C, C)``. The cell is triangulated by pulling: every facet is
coned from its vertex centroid over its edges, and the result coned from the cell's vertex
centroid (``d <= 3``; above, Qhull's triangulation, checked against Qhull's volume, or where
that fails :func:`_pulling` from the incidences, which the compiled path,
:mod:`verify.moments.polytope_fast`, uses for every such cell). Each simplex ``S`` with vertices
``v_0..v_d`` contributes exactly (the closed form for monomials of degree <= 2 over a
simplex)::

    P(S)                = d! vol(S) = |det(v_1 - v_0, ..., v_d - v_0)|   (in x = pi[:d])
    E[pi 1{S}]          = P(S) (sum_i v_i) / (d + 1)
    E[pi pi^T 1{S}]     = P(S) (sum_i v_i v_i^T + (sum_i v_i)(sum_i v_i)^T) / ((d + 1)(d + 2))

so every polynomial of degree <= 2 in ``pi`` integrates exactly, up to float64 rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import factorial
from typing import Any

import numpy as np

__all__ = ["Cell", "simplex_cell", "ordered_cell", "split", "refine", "cell_moments",
           "cells_moments", "sides", "side_eps", "cuts", "probability_bound", "Splitter", "SIDE_EPS"]

#: a vertex lies on the hyperplane ``a`` when ``|a . v| <= SIDE_EPS * sum_i |a_i v_i|`` (the
#: rounding error of the dot product and of the vertex, relative to the terms' magnitude)
SIDE_EPS = 1e-12

#: ``splitter(vertices, centroid, state) -> (a, state)`` (see :func:`refine`)
Splitter = Callable[[np.ndarray, np.ndarray, Any], "tuple[np.ndarray | None, Any]"]


@dataclass(frozen=True)
class Cell:
    """A convex polytope in the simplex: vertices ``V`` ``(n, C)`` and incidences ``T``."""

    V: np.ndarray
    T: np.ndarray

    @property
    def centroid(self) -> np.ndarray:
        """The vertex centroid, an interior point of a full-dimensional cell."""
        return self.V.sum(axis=0) * (1.0 / self.V.shape[0])  # np.mean's overhead, not its work


def simplex_cell(C: int) -> Cell:
    """The whole simplex: vertices ``e_c``, each on the facets ``pi_i = 0``, ``i != c``."""
    return Cell(np.eye(C), ~np.eye(C, dtype=bool))


def ordered_cell(C: int) -> Cell:
    """The ordered simplex ``{pi_0 <= pi_1 <= ... <= pi_{C-1}}`` (probability ``1/C!``).

    Its vertices are ``v_k = (0, ..., 0, 1/(C-k), ..., 1/(C-k))`` (``k`` zeros); its facets are
    ``pi_0 = 0`` and ``pi_{i-1} = pi_i`` (``i = 1..C-1``), and ``v_k`` lies on all but the
    ``k``-th.
    """
    k = np.arange(C)
    V = np.where(k[None, :] >= k[:, None], 1.0 / (C - k)[:, None], 0.0)
    return Cell(V, ~np.eye(C, dtype=bool))


def side_eps(*arrays: np.ndarray) -> Any:
    """The relative tolerance of :func:`sides`: ``SIDE_EPS`` for float64, and for ``mpmath``
    numbers (object arrays, see :mod:`verify.moments.swap`'s ``dps``) ``2^20`` units of the
    working precision (``1e-54`` at 60 digits), far below every feature the swap cells
    resolve at logits ``+-50`` (``e^-100 ~ 1e-44``)."""
    if arrays[0].dtype == object or arrays[-1].dtype == object:
        import mpmath

        return mpmath.mp.eps * 2**20
    return SIDE_EPS


def sides(A: np.ndarray, V: np.ndarray, scale: np.ndarray | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """``(a . v, side)`` for hyperplanes ``A`` ``(..., C)`` and vertices ``V`` ``(n, C)``:
    ``side`` is -1, 0 (on the hyperplane, within rounding) or +1, shape ``(..., n)``. Float64
    or object arrays of ``mpmath`` numbers (the tolerance follows, :func:`side_eps`).
    ``scale`` (shaped like ``A``, non-negative): the magnitude of the terms ``A`` was computed
    from, when that is larger than ``|A|`` (a difference of nearly equal rows carries their
    rounding, not its own); the tolerance is taken relative to it."""
    h = A @ V.T
    tol = side_eps(A, V) * ((np.abs(A) if scale is None else scale) @ np.abs(V).T)
    return h, np.where(h > tol, 1, np.where(h < -tol, -1, 0))


def cuts(V: np.ndarray, a: np.ndarray) -> bool:
    """Whether the hyperplane ``a`` has vertices strictly on both sides."""
    _, s = sides(a, V)
    return bool(s.max() > 0 and s.min() < 0)


def _piece(V: np.ndarray, T: np.ndarray, d: int) -> Cell | None:
    keep = T.sum(axis=1) >= d  # a vertex lies on at least d facets
    V, T = V[keep], T[keep]
    # one point per incidence pattern (the first): :func:`split` makes a crossing point for
    # every pair of vertices sharing d - 1 hyperplanes, and where many hyperplanes meet (the
    # swap boundaries all pass through the simplex's lower faces) several pairs give the same
    # vertex; the copies multiply at every later cut (C = 6: cells of 10^4 to 10^6 points with
    # 15 to 100 distinct ones). Dropping them leaves the cell unchanged: points on the same
    # hyperplanes are one point where those have rank d, and none is a vertex where they don't
    _, first = np.unique(T, axis=0, return_index=True)
    if first.size < T.shape[0]:
        first = np.sort(first)
        V, T = V[first], T[first]
    if V.shape[0] < d + 1:
        return None
    return Cell(V, T)


#: the largest vertex-pair matrix :func:`split` builds (int64 entries: 2**26 is 512 MiB); a
#: cell past it raises a clear ``MemoryError`` instead of exhausting the machine's memory
MAX_PAIRS = 2**26


def split(cell: Cell, a: np.ndarray, scale: np.ndarray | None = None
          ) -> tuple[Cell | None, Cell | None]:
    """The pieces ``{a . pi <= 0}`` and ``{a . pi >= 0}`` of a cell (None where flat);
    ``scale``: see :func:`sides`."""
    V, T = cell.V, cell.T
    n, C = V.shape
    d = C - 1
    h, side = sides(a, V, scale)
    neg, pos = side < 0, side > 0
    on = side == 0
    iN, iP = np.flatnonzero(neg), np.flatnonzero(pos)
    if iN.size * iP.size > MAX_PAIRS:
        raise MemoryError(f"a cell with {iN.size} x {iP.size} vertex pairs on the two sides of a "
                          f"cut exceeds verify.moments.polytope.MAX_PAIRS = {MAX_PAIRS}: the "
                          "arrangement is too fine for exact integration on this machine")
    shared = T[iN].astype(np.int64) @ T[iP].T.astype(np.int64)  # (n_neg, n_pos)
    en, ep = np.nonzero(shared >= d - 1)  # edges that cross the hyperplane
    u, v = iN[en], iP[ep]
    # convex combination with both weights positive: relative accuracy in every coordinate
    lam_u = (h[v] / (h[v] - h[u]))[:, None]
    lam_v = (-h[u] / (h[v] - h[u]))[:, None]
    cross = lam_v * V[v] + lam_u * V[u]
    Tc = T[u] & T[v]
    col_n = np.zeros((n, 1), bool)
    new_V = np.concatenate([V[on], cross])
    new_T = np.concatenate([np.concatenate([T[on], Tc]), np.ones((new_V.shape[0], 1), bool)],
                           axis=1)
    Tn = np.concatenate([T, col_n], axis=1)
    lower = _piece(np.concatenate([V[neg], new_V]), np.concatenate([Tn[neg], new_T]), d)
    upper = _piece(np.concatenate([V[pos], new_V]), np.concatenate([Tn[pos], new_T]), d)
    return lower, upper


def probability_bound(cell: Cell) -> float:
    """An upper bound on ``P(cell)``: ``d!`` times the product of the ``d`` smallest
    coordinate ranges of its vertices (the cell lies in that box of the simplex's chart)."""
    V = cell.V
    d = V.shape[1] - 1
    ranges = V.max(axis=0) - V.min(axis=0)
    top = ranges.max()  # the d smallest of the d + 1 ranges: all but one largest
    prod = ranges.prod() / top if top > 0 else 0.0
    return float(prod) * factorial(d)


def refine(cell: Cell, splitter: Splitter, min_prob: float = 1e-24, max_cells: int = 2_000_000,
           state: Any = None) -> tuple[list[tuple[Cell, Any]], float]:
    """Split a cell until ``splitter`` accepts every piece.

    ``splitter(V, centroid, state) -> (a, state)`` returns a hyperplane ``a`` (or a pair
    ``(a, scale)``, see :func:`sides`) that
    :func:`cuts` the cell (or None to accept it) and a state handed to both pieces (what it
    learnt about the cell stays true on every piece); the root's state is None. Pieces whose
    probability is below ``min_prob`` (by :func:`probability_bound`) are accepted unsplit, so
    rounding at the scale of float64 cannot make the refinement run on; the second return
    value bounds their total probability (callers add it to their error bound). ``state``: the
    root's state (None: nothing known yet). Returns the accepted ``(cell, state)`` pairs.
    """
    stack: list[tuple[Cell, Any]] = [(cell, state)]
    done: list[tuple[Cell, Any]] = []
    unresolved = 0.0
    while stack:
        c, state = stack.pop()
        a, state = splitter(c.V, c.centroid, state)
        if a is not None:
            bound = probability_bound(c)
            if bound < min_prob:
                unresolved += bound
                a = None
        if a is None:
            done.append((c, state))
            if len(done) > max_cells:
                raise RuntimeError(f"more than {max_cells} cells; the arrangement is too fine")
            continue
        scale = None
        if isinstance(a, tuple):  # (hyperplane, scale of its rounding): see sides
            a, scale = a
        for piece in split(c, a, scale):
            if piece is not None:
                stack.append((piece, state))
    return done, unresolved


def _simplices(cell: Cell) -> np.ndarray:
    """Simplices ``(s, d + 1, C)`` that tile the cell (pulling triangulation)."""
    V, T = cell.V, cell.T
    n, C = V.shape
    d = C - 1
    if n == d + 1:  # already a simplex (common among the finest cells)
        return V[None]
    c = V.mean(axis=0)
    if d == 1:
        x = V[:, 0]
        return V[[int(np.argmin(x)), int(np.argmax(x))]][None]
    if d == 2:
        shared = T.astype(np.int64) @ T.T.astype(np.int64)
        iu, iv = np.nonzero(np.triu(shared >= 1, 1))
        return np.stack([np.broadcast_to(c, (iu.size, C)), V[iu], V[iv]], axis=1)
    if d == 3:
        Ti = T.astype(np.int64)
        shared = Ti @ Ti.T
        iu, iv = np.nonzero(np.triu(shared >= 2, 1))  # edges
        facet = Ti.sum(axis=0) >= 3  # hyperplanes that carry a 2-face
        Tf = T[:, facet]
        pf = (Tf.T.astype(np.float64) @ V) / Tf.sum(axis=0)[:, None]  # facet centroids
        both = Tf[iu] & Tf[iv]  # (edges, facets): facets that contain the edge
        e_idx, f_idx = np.nonzero(both)
        k = e_idx.size
        return np.stack([np.broadcast_to(c, (k, C)), pf[f_idx], V[iu[e_idx]], V[iv[e_idx]]],
                        axis=1)
    from scipy.spatial import ConvexHull, QhullError  # d > 3: Qhull's triangulated facets

    # Qhull's volume is right where its triangulated facets may not be: at C = 6 merged facets
    # of near-degenerate cells came back with overlapping pieces (one cell 0.2% too large, the
    # column's total probability 1 + 2e-6); such a cell, and one Qhull fails on (thin), is
    # triangulated from its incidences instead
    try:
        hull = ConvexHull(np.asarray(V[:, :d], dtype=np.float64))
    except QhullError:
        hull = None
    if hull is not None:
        facets = V[hull.simplices]
        S = np.concatenate([np.broadcast_to(c, (facets.shape[0], 1, C)), facets], axis=1)
        Sf = np.asarray(S[:, :, :d], dtype=np.float64)
        vol = float(np.abs(np.linalg.det(Sf[:, 1:] - Sf[:, :1])).sum()) / factorial(d)
        if abs(vol - hull.volume) <= 1e-9 * hull.volume:
            return S
    pulled = _pulling(V, T, d)
    if pulled is None:
        raise NotImplementedError(
            f"a cell of the {d}-simplex that Qhull cannot triangulate (too thin: extreme logits "
            f"at C = {C}) has more than 100 000 simplices by its incidences; exact cells in "
            f"more than 3 dimensions need moderate logits")
    return pulled


#: the most simplices :func:`_pulling` (and its compiled twin) makes of one cell
MAX_PULLING = 100_000


def _pulling(V: np.ndarray, T: np.ndarray, d: int, max_simplices: int = MAX_PULLING
             ) -> np.ndarray | None:
    """A triangulation of the cell ``(V, T)`` from its incidences alone (pulling), for cells
    Qhull cannot take (thin ones, d > 3) and for the compiled path's cells in d > 3
    (``polytope_fast._pulling_moments_into``, the same triangulation): cone the first vertex
    over every facet that does not hold it, each triangulated the same way one dimension down.
    A face is the set of points on one hyperplane (a column of ``T``; the cell lies on one side
    of every hyperplane it records, so those points are a face); the faces of a face are the
    maximal such sets among its points, each taken once (two cuts through the same face give
    the same set). Lower faces taken for facets, or facets through the apex, would only add
    simplices of zero volume. ``(s, d + 1, C)``, or None past ``max_simplices``."""
    out: list[np.ndarray] = []

    def cone(idx: np.ndarray, r: int, apex: list[np.ndarray]) -> bool:
        if r == 0 or idx.size == r + 1:
            out.append(np.stack(apex + [V[i] for i in idx[: r + 1]]))
            return len(out) <= max_simplices
        sub = T[idx]
        counts = sub.sum(axis=0)
        faces: dict[bytes, np.ndarray] = {}
        for k in np.flatnonzero((counts >= r) & (counts < idx.size) & ~T[idx[0]]):
            face = idx[sub[:, k]]
            faces.setdefault(face.tobytes(), face)
        sets = [set(f.tolist()) for f in faces.values()]
        for n, face in enumerate(faces.values()):
            if any(n != m and sets[n] < other for m, other in enumerate(sets)):
                continue  # a lower face, inside a facet
            if not cone(face, r - 1, apex + [V[idx[0]]]):
                return False
        return True

    if not cone(np.arange(V.shape[0]), d, []):
        return None
    return np.stack(out) if out else np.zeros((0, d + 1, V.shape[1]))


def _det(M: np.ndarray) -> np.ndarray:
    """Determinants of ``(s, d, d)`` matrices: LAPACK for float64; for object arrays of
    ``mpmath`` numbers, the cofactor expansion (``d <= 3``) or ``mpmath.det``."""
    if M.dtype != object:
        return np.linalg.det(M)
    d = M.shape[-1]
    if d == 1:
        return M[:, 0, 0]
    if d == 2:
        return M[:, 0, 0] * M[:, 1, 1] - M[:, 0, 1] * M[:, 1, 0]
    if d == 3:
        return (M[:, 0, 0] * (M[:, 1, 1] * M[:, 2, 2] - M[:, 1, 2] * M[:, 2, 1])
                - M[:, 0, 1] * (M[:, 1, 0] * M[:, 2, 2] - M[:, 1, 2] * M[:, 2, 0])
                + M[:, 0, 2] * (M[:, 1, 0] * M[:, 2, 1] - M[:, 1, 1] * M[:, 2, 0]))
    import mpmath

    out = np.empty(M.shape[0], dtype=object)
    for i in range(M.shape[0]):
        out[i] = mpmath.det(mpmath.matrix(M[i].tolist()))
    return out


def cell_moments(cell: Cell) -> tuple[float, np.ndarray, np.ndarray]:
    """``(P(cell), E[pi 1{cell}], E[pi pi^T 1{cell}])`` under the uniform law on the simplex."""
    m0, m1, m2 = cells_moments([cell])
    return float(m0[0]), m1[0], m2[0]


def cells_moments(cells: list[Cell]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`cell_moments` of many cells at once: ``(N,)``, ``(N, C)``, ``(N, C, C)``."""
    parts = [_simplices(c) for c in cells]
    C = cells[0].V.shape[1]
    d = C - 1
    owner = np.repeat(np.arange(len(cells)), [p.shape[0] for p in parts])
    S = np.concatenate(parts) if parts else np.zeros((0, d + 1, C))
    x = S[:, :, :d]
    edges = x[:, 1:, :] - x[:, :1, :]  # (s, d, d)
    prob = np.abs(_det(edges))  # d! vol(S)
    tot = S.sum(axis=1)  # (s, C)
    outer = np.einsum("svi,svj->sij", S, S) + np.einsum("si,sj->sij", tot, tot)
    N = len(cells)
    dt = S.dtype
    m0 = np.zeros(N, dtype=dt)
    m1 = np.zeros((N, C), dtype=dt)
    m2 = np.zeros((N, C, C), dtype=dt)
    np.add.at(m0, owner, prob)
    np.add.at(m1, owner, prob[:, None] * tot / (d + 1))
    np.add.at(m2, owner, prob[:, None, None] * outer / ((d + 1) * (d + 2)))
    return m0, m1, 0.5 * (m2 + m2.transpose(0, 2, 1))
