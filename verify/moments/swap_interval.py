"""ARS+'s interval variance by randomized quasi-Monte Carlo, with ``pi_j`` integrated out: what
the exponential races do not give ARS+ beyond ``C = MAX_ARS_PLUS_C``; and ARSM+CE's
corrections to ARSM+'s tables beyond ``MAX_CE_C`` (:func:`ce_correction_tables`).

Used by :mod:`verify.moments.swap` (rows of distinct logits up to ``MAX_RACE_C``). Ours;
checked in ``tests/test_swap_interval.py`` against the polytope cells.

Why only this term. For a reference ``j`` and ``l != j``, hold ``pi_i`` (``i`` not in ``{j,
l}``) and ``s = pi_j + pi_l`` fixed: ``t = pi_j`` is uniform on ``[0, s]`` and every swap ``(m,
j)`` is a function of ``t`` that is constant on the pieces between at most ``2 C``
breakpoints; ARS+'s ``[lo, hi]`` is the piece that holds ``t`` (the row of swaps never returns
to a value it left, see below). So ``(lo + hi) / 2 = E[pi_j | row, rest]``, and for the weight
``W = (1 - delta_j)(1 - C (lo + hi) / 2)`` of ARS+ (``delta_j``, the row and the indicators are
functions of the row)::

    E[W 1{Z[m,j] = x, Z[p,j] = y}]   = the symmetry-only L2 (exact races, races_sym.py)
    E[W^2 1{Z[m,j] = x, Z[p,j] = y}] = the symmetry-only Q2 - C^2 / 12 V[j, m, p, x, y]
    V[j, m, p, x, y] = mean_l E[(1 - delta_j) (hi - lo)^2 1{Z[m,j] = x, Z[p,j] = y}]

(the conditional variance of ``pi_j`` on its piece is ``(hi - lo)^2 / 12``). ``V`` is what
this module estimates.

The integrand. With ``pi = e / S``, ``e_r`` i.i.d. ``Exp(1)``, ``S = sum e_r``, write ``T = e_j
+ e_l`` and ``t = e_j``, uniform on ``[0, T]`` given everything else. The swap ``(m, j)`` has
two values that move with ``t``: ``alpha t`` at position ``A`` (where ``pi_j`` sits) and
``beta (T - t)`` at ``B`` (where ``pi_l`` sits), and the minimum ``R`` of the others at ``r``:

* ``m = j``: ``A = j, alpha = w_j, B = l, beta = w_l``; ``m = l``: ``A = l, alpha = w_l, B = j,
  beta = w_j``; both with ``R = min_{i not in {j, l}} w_i e_i``;
* otherwise ``A = m, alpha = w_m, B = l, beta = w_l``, ``R = min(w_j e_m, min_{i not in {j, l,
  m}} w_i e_i)`` (``r = j`` when ``w_j e_m`` wins).

So ``Z[m, j](t)`` is ``A`` then ``B`` with the breakpoint ``c = beta T / (alpha + beta)`` when
``R > alpha c``, else ``A`` on ``[0, R / alpha)``, ``r`` up to ``T - R / beta``, then ``B``:
each swap leaves a value for good, so a piece is where the whole row is constant. Given the
rest, ``E[(hi - lo)^2 g(row)] = (1 / T) sum_pieces |I|^3 g(row_I)`` in units of ``e``, and
``hi - lo = |I| / S``: the sampled value of one point is ``sum_pieces |I|^3 (1 - delta_I)
1{...} / (T S^2)``, an integral over ``t`` done exactly (Rao-Blackwellized), which leaves the
``C`` exponentials to the scrambled Sobol points (``e = -log(1 - u)``). The mean over ``l`` is
sampled too: one more coordinate of each point picks one ``l`` for every ``j`` (uniform over
``l != j``, independent of the exponentials). At ``C = 10`` that made a point 8 times cheaper
than visiting every ``l``, and at equal time the randomizations' spread 1.8 times smaller.
Cost: each line ``(j, l)`` is swept once; at each of its about ``2 C`` breakpoints the ``C``
pairs with the swap that changes add their stretch's sum, so about ``2 C^2`` per line and
``2 C^3`` per point (``C`` lines).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from numba import njit
from scipy.stats import qmc

__all__ = ["interval_variance_tables", "ce_correction_tables"]


@njit(cache=True, nogil=True)
def _line(e: np.ndarray, w: np.ndarray, j: int, l: int, A: np.ndarray, B: np.ndarray,
          r: np.ndarray, lo_bp: np.ndarray, hi_bp: np.ndarray) -> None:
    """Every swap ``(m, j)`` along the line ``(j, l)`` (module docstring), into ``(C,)``
    arrays: the outcomes ``A[m]`` (small ``t``), ``r[m]`` (the rest's winner) and ``B[m]``
    (large ``t``), and the breakpoints ``lo_bp[m] <= hi_bp[m]`` in units of ``e`` (``A`` below
    ``lo_bp``, ``B`` above ``hi_bp``, equal when ``r`` never wins)."""
    C = e.size
    T = e[j] + e[l]
    # the two smallest w_i e_i outside {j, l}
    R0, R1 = np.inf, np.inf
    r0, r1 = -1, -1
    for i in range(C):
        if i == j or i == l:
            continue
        v = w[i] * e[i]
        if v < R0:
            R1, r1 = R0, r0
            R0, r0 = v, i
        elif v < R1:
            R1, r1 = v, i
    for m in range(C):
        if m == j:
            A[m], al, B[m], be, R, r[m] = j, w[j], l, w[l], R0, r0
        elif m == l:
            A[m], al, B[m], be, R, r[m] = l, w[l], j, w[j], R0, r0
        else:
            A[m], al, B[m], be = m, w[m], l, w[l]
            if r0 != m:
                R, r[m] = R0, r0
            else:
                R, r[m] = R1, r1
            bj = w[j] * e[m]
            if bj < R:
                R, r[m] = bj, j
        c = be * T / (al + be)
        if R > al * c:  # A, then B
            lo_bp[m] = c
            hi_bp[m] = c
        else:  # A, then the rest's winner r, then B
            lo_bp[m] = R / al
            hi_bp[m] = T - R / be


@njit(cache=True, nogil=True)
def _interval_points(E: np.ndarray, ks: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """Add, for every point (row of ``E`` ``(N, C)``, i.i.d. ``Exp(1)`` values) and every
    reference ``j``, the sampled ``V`` (module docstring) of the line ``(j, l)``, ``l = (j + 1
    + ks[n]) mod C`` (``ks`` ``(N,)`` in ``[0, C - 2]``, uniform: ``l`` uniform over the others)
    into ``out`` ``(C, C, C, C, C)``, ordered ``[j, m, x, p, y]``, ``m <= p`` only. ``w``
    ``(C,)``: ``exp(max(alpha) - alpha)``.

    Each line ``(j, l)`` is swept once along ``t``, the pieces' values summed into ``cum`` as
    it goes; a pair of swaps ``(m, p)`` adds its stretch's sum (a difference of ``cum``) only
    when one of the two changes, and at the end: about ``2 C`` breakpoints times ``C`` pairs
    per line, not a term per piece and pair."""
    N, C = E.shape
    A = np.empty(C, np.int64)
    B = np.empty(C, np.int64)
    r = np.empty(C, np.int64)
    lo_bp = np.empty(C)
    hi_bp = np.empty(C)
    bps = np.empty(2 * C + 2)
    ids = np.empty(2 * C + 2, np.int64)
    cum = np.empty(2 * C + 2)
    cur = np.empty(C, np.int64)  # Z[m, j] on the current piece
    since = np.empty(C, np.int64)  # the piece where it took that value
    count = np.empty(C, np.int64)  # how many swaps give each outcome on the current piece
    for n in range(N):
        e = E[n]
        S = 0.0
        for i in range(C):
            S += e[i]
        for j in range(C):
            l = (j + 1 + ks[n]) % C
            T = e[j] + e[l]
            _line(e, w, j, l, A, B, r, lo_bp, hi_bp)
            # the breakpoints, sorted with who they belong to (m: lo_bp[m], C + m: hi_bp[m])
            nb = 0
            bps[nb], ids[nb] = 0.0, -1
            nb += 1
            for m in range(C):
                bps[nb], ids[nb] = lo_bp[m], m
                nb += 1
                if hi_bp[m] != lo_bp[m]:
                    bps[nb], ids[nb] = hi_bp[m], C + m
                    nb += 1
            bps[nb], ids[nb] = T, -2
            nb += 1
            for k in range(1, nb - 1):  # insertion sort: about 2 C values, mostly in order
                v, d = bps[k], ids[k]
                i = k - 1
                while i >= 1 and bps[i] > v:
                    bps[i + 1], ids[i + 1] = bps[i], ids[i]
                    i -= 1
                bps[i + 1], ids[i + 1] = v, d
            scale = 1.0 / (T * S * S)
            count[:] = 0
            for m in range(C):
                cur[m] = A[m]
                since[m] = 0
                count[A[m]] += 1
            cum[0] = 0.0
            for k in range(nb - 1):
                if k > 0:  # breakpoint k: swap m changes; its pairs' stretches end here
                    d = ids[k]
                    m = d if d < C else d - C
                    x = cur[m]
                    for p in range(C):
                        s0 = since[m] if since[m] > since[p] else since[p]
                        val = cum[k] - cum[s0]
                        if val != 0.0:
                            if p >= m:
                                out[j, m, x, p, cur[p]] += val
                            else:
                                out[j, p, cur[p], m, x] += val
                    z = B[m] if (d >= C or hi_bp[m] == lo_bp[m]) else r[m]
                    count[x] -= 1
                    count[z] += 1
                    cur[m] = z
                    since[m] = k
                length = bps[k + 1] - bps[k]
                val = 0.0
                if length > 0.0 and count[cur[0]] != C:  # delta_j = 0
                    val = length * length * length * scale
                cum[k + 1] = cum[k] + val
            last = nb - 1
            for m in range(C):
                for p in range(m, C):
                    s0 = since[m] if since[m] > since[p] else since[p]
                    val = cum[last] - cum[s0]
                    if val != 0.0:
                        out[j, m, cur[m], p, cur[p]] += val


@njit(cache=True, nogil=True)
def _ce_point_values(E: np.ndarray, w: np.ndarray, Z: np.ndarray, delta: np.ndarray,
                     a: np.ndarray, dq: np.ndarray) -> None:
    """What each point (row of ``E`` ``(N, C)``, i.i.d. ``Exp(1)``) adds to ARSM+CE's
    corrections, into ``Z`` ``(N, C, C)`` (the swaps' outcomes ``Z[n, m, j]``), ``delta``
    ``(N, C)`` (row ``j`` constant), ``a`` ``(N, C)`` (``mid_j - pi_j``) and ``dq`` ``(N, C,
    C)`` (``(1 - C mid_j)(1 - C mid_q) - (1 - C pi_j)(1 - C pi_q)`` where neither row is
    constant and ``q != j``, else 0); rows ``j`` with ``delta`` are not filled. ``w`` ``(C,)``:
    ``exp(max(alpha) - alpha)``."""
    N, C = E.shape
    A = np.empty(C, np.int64)
    B = np.empty(C, np.int64)
    r = np.empty(C, np.int64)
    lo_bp = np.empty(C)
    hi_bp = np.empty(C)
    b = np.empty(C)
    b_pi = np.empty(C)
    for n in range(N):
        e = E[n]
        S = 0.0
        for i in range(C):
            S += e[i]
        for j in range(C):  # the swaps: the first index of the smallest value wins
            for m in range(C):
                best, arg = np.inf, -1
                for i in range(C):
                    src = m if i == j else (j if i == m else i)
                    v = w[i] * e[src]
                    if v < best:
                        best, arg = v, i
                Z[n, m, j] = arg
        for j in range(C):
            delta[n, j] = True
            for m in range(1, C):
                if Z[n, m, j] != Z[n, 0, j]:
                    delta[n, j] = False
            if delta[n, j]:
                continue
            # the piece of t = e_j on the line (j, l), for every l: [lo, hi] (module docstring)
            t = e[j]
            acc = 0.0
            for l in range(C):
                if l == j:
                    continue
                _line(e, w, j, l, A, B, r, lo_bp, hi_bp)
                lo, hi = 0.0, e[j] + e[l]
                for m in range(C):
                    for bp in (lo_bp[m], hi_bp[m]):
                        if bp <= t:
                            lo = max(lo, bp)
                        else:
                            hi = min(hi, bp)
                acc += 0.5 * (lo + hi)
            mid = acc / ((C - 1) * S)  # mean over l, in units of pi
            a[n, j] = mid - t / S
            b[j] = 1.0 - C * mid
            b_pi[j] = 1.0 - C * t / S
        for j in range(C):
            if delta[n, j]:
                continue
            for q in range(C):
                dq[n, j, q] = 0.0 if (delta[n, q] or q == j) \
                    else b[j] * b[q] - b_pi[j] * b_pi[q]


@njit(cache=True, nogil=True)
def _ce_accumulate(Z: np.ndarray, delta: np.ndarray, a: np.ndarray, dq: np.ndarray,
                   D: np.ndarray, DQ: np.ndarray) -> None:
    """Add the points' values (:func:`_ce_point_values`) into ``D`` and ``DQ`` ``(C,) * 6``,
    ordered ``[j, m, x, p, q, y]``: ``D[j, m, Z[m, j], p, q, Z[p, q]] += a[j]`` and ``DQ[...]
    += dq[j, q]`` for every ``m``, ``p`` and ``q != j`` of every point whose row ``j`` is not
    constant.

    The points are sorted by their row ``j``, ``Z[:, j]``. A group of ``k >= C`` equal rows is
    summed into one ``(C, C, C)`` block (``[p, q, y]``, 8 KB at ``C = 10``: it stays in the
    first-level cache), which is then added once to each of the row's ``C`` places ``(m,
    Z[m, j])``: ``k C^2 + C^4`` terms, the ``C^4`` contiguous, where its points' own terms
    would be ``k C^3`` scattered writes; a smaller group writes those. At ``C = 10`` the
    ``2^13`` points of a set have 180 to 2 700 distinct rows per ``j``; a set took 0.16 s
    here, 0.34 to 0.52 s with every point's terms written (same run, 2-core machine)."""
    N, C = delta.shape
    codes = np.empty(N, np.int64)
    SD = np.zeros((C, C, C))
    SQ = np.zeros((C, C, C))
    for j in range(C):
        for n in range(N):
            code = np.int64(-1)  # rows with delta sort first and are skipped
            if not delta[n, j]:
                code = 0
                for m in range(C):
                    code = code * C + Z[n, m, j]
            codes[n] = code
        order = np.argsort(codes, kind="mergesort")
        start = 0
        while start < N:
            n0 = order[start]
            stop = start
            while stop < N and codes[order[stop]] == codes[n0]:
                stop += 1
            if codes[n0] >= 0 and stop - start < C:  # a small group: its points' terms
                for k in range(start, stop):
                    n = order[k]
                    an = a[n, j]
                    for m in range(C):
                        x = Z[n, m, j]
                        for p in range(C):
                            for q in range(C):
                                if q == j:
                                    continue
                                y = Z[n, p, q]
                                D[j, m, x, p, q, y] += an
                                DQ[j, m, x, p, q, y] += dq[n, j, q]
            elif codes[n0] >= 0:
                SD[:] = 0.0
                SQ[:] = 0.0
                for k in range(start, stop):
                    n = order[k]
                    an = a[n, j]
                    for p in range(C):
                        for q in range(C):
                            if q == j:
                                continue
                            y = Z[n, p, q]
                            SD[p, q, y] += an
                            SQ[p, q, y] += dq[n, j, q]
                for m in range(C):
                    x = Z[n0, m, j]
                    for p in range(C):
                        for q in range(C):
                            for y in range(C):
                                D[j, m, x, p, q, y] += SD[p, q, y]
                                DQ[j, m, x, p, q, y] += SQ[p, q, y]
            start = stop


#: points per chunk of :func:`_ce_points` (its per-point values: ``2 C^2 + 2 C`` numbers each;
#: larger chunks make larger groups of equal rows in :func:`_ce_accumulate`)
_CE_CHUNK = 8192


def _ce_points(E: np.ndarray, w: np.ndarray, D: np.ndarray, DQ: np.ndarray) -> None:
    """ARSM+CE's corrections to ARSM+'s tables on the entries ``q != j``, summed over the
    points (rows of ``E`` ``(N, C)``, i.i.d. ``Exp(1)``) into ``D`` and ``DQ`` ``(C,) * 6``,
    ordered ``[j, m, x, p, q, y]`` (:func:`ce_correction_tables` gives them as ``[m, j, p, q,
    x, y]``), in chunks of ``_CE_CHUNK`` points: :func:`_ce_point_values`, then
    :func:`_ce_accumulate`. ``w`` ``(C,)``: ``exp(max(alpha) - alpha)``."""
    N, C = E.shape
    for start in range(0, N, _CE_CHUNK):
        chunk = E[start:start + _CE_CHUNK]
        n = chunk.shape[0]
        Z = np.empty((n, C, C), np.int64)
        delta = np.empty((n, C), np.bool_)
        a = np.zeros((n, C))
        dq = np.zeros((n, C, C))
        _ce_point_values(chunk, w, Z, delta, a, dq)
        _ce_accumulate(Z, delta, a, dq, D, DQ)


def _uniforms(d: int, log2_points: int, seed: tuple[int, ...]) -> np.ndarray:
    """One scrambled Sobol set of ``2**log2_points`` points in ``d`` dimensions ``(N, d)``,
    below 1."""
    eng = qmc.Sobol(d, scramble=True, seed=np.random.default_rng(list(seed)))
    return np.minimum(eng.random_base2(log2_points), np.nextafter(1.0, 0.0))


def _interval_table(w: np.ndarray, log2_points: int, seed: tuple[int, ...]) -> np.ndarray:
    """``V`` ``[j, m, p, x, y]`` from one scrambled Sobol set in ``C + 1`` dimensions
    (:func:`_interval_points`): the first ``C`` as ``Exp(1)`` values, the last picks each
    point's lines (``l`` uniform over ``l != j``)."""
    C = w.size
    U = _uniforms(C + 1, log2_points, seed)
    ks = np.minimum((U[:, C] * (C - 1)).astype(np.int64), C - 2)
    out = np.zeros((C,) * 5)
    _interval_points(-np.log1p(-U[:, :C]), ks, w, out)
    out = out.transpose(0, 1, 3, 2, 4) / U.shape[0]  # [j, m, p, x, y]
    # the kernel fills m <= p; the table is symmetric under (m, x) <-> (p, y)
    upper = np.triu(np.ones((C, C), dtype=bool), 1)[None, :, :, None, None]
    return np.where(upper.transpose(0, 2, 1, 3, 4), out.transpose(0, 2, 1, 4, 3), out)


def _one_randomization(args: tuple[np.ndarray, int, int, int]) -> np.ndarray:
    w, log2_points, seed, r = args
    return _interval_table(w, log2_points, (seed, r))


def ce_correction_tables(alpha_row: np.ndarray, *, log2_points: int, seed: tuple[int, ...],
                         interval_log2_points: int | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ARSM+CE's tables beyond ARSM+'s, from two scrambled Sobol sets (``seed``): ``(D, DQ,
    V)``.

    ARSM+CE's weight is ``W_j = (1 - delta_j)(1 - C mid_j)``, ``mid_j`` the mean over ``l != j``
    of the midpoints of ``[lo, hi]`` (an ``l`` per reference, independent across references),
    ARSM+'s ``(1 - delta_j)(1 - C pi_j)``. So, indexed ``[m, j, p, q, x, y]`` with ``1{...} =
    1{Z[m,j] = x, Z[p,q] = y}``::

        L2_CE = L2_sym - C D,  D = E[(1 - delta_j)(mid_j - pi_j) 1{...}]   (0 where q = j)
        Q2_CE = Q2_sym + DQ (q != j),  DQ = E[(1 - delta_j)(1 - delta_q)
                ((1 - C mid_j)(1 - C mid_q) - (1 - C pi_j)(1 - C pi_q)) 1{...}]
        Q2_CE = Q2_sym - C^2 / 12 V (q = j, the same l: ARS+'s, :func:`interval_variance_tables`)

    ``D`` vanishes where ``q = j`` because the indicator is then a function of the row ``j``
    (given which ``pi_j`` is uniform on its piece). ``D`` and ``DQ`` are sampled at each of
    ``2**log2_points`` points (``(C,) * 6`` float64); ``V`` ``[j, m, p, x, y]`` integrates
    ``pi_j`` out on its pieces, on a set of its own of ``2**interval_log2_points`` points
    (default ``log2_points``; its points cost about a ninth of the others' at ``C = 10``, see
    the module docstring). Each is an unbiased estimate.
    """
    a = np.asarray(alpha_row, dtype=np.float64)
    if a.ndim != 1 or a.size < 3 or not np.all(np.isfinite(a)):
        raise ValueError("alpha_row must be a finite (C,) row with C >= 3")
    C = a.size
    w = np.exp(a.max() - a)
    seed = tuple(int(v) for v in seed)
    E = -np.log1p(-_uniforms(C, int(log2_points), seed))
    D = np.zeros((C,) * 6)
    DQ = np.zeros((C,) * 6)
    _ce_points(E, w, D, DQ)
    order = (1, 0, 3, 4, 2, 5)  # [j, m, x, p, q, y] -> [m, j, p, q, x, y]
    lines = int(log2_points if interval_log2_points is None else interval_log2_points)
    return (D.transpose(order) / E.shape[0], DQ.transpose(order) / E.shape[0],
            _interval_table(w, lines, (*seed, 1)))


def interval_variance_tables(alpha_row: np.ndarray, *, log2_points: int = 13,
                             randomizations: int = 16, seed: int = 0, first: int = 0,
                             mapper: Callable[[Callable, list], Iterable] = map) -> np.ndarray:
    """ARS+'s ``V[j, m, p, x, y] = mean_l E[(1 - delta_j)(hi - lo)^2 1{Z[m,j] = x, Z[p,j] =
    y}]`` (module docstring), one estimate per randomization.

    ``alpha_row`` ``(C,)`` logits of one dimension. Each of ``randomizations`` independent
    scrambled Sobol sets of ``2**log2_points`` points in ``C + 1`` dimensions (the last picks
    one ``l`` per point and reference) gives an unbiased estimate of the whole table. Returns
    ``(randomizations, C, C, C, C, C)`` float64: the randomizations ``first, first + 1, ...``
    of ``seed`` (randomization ``r`` is the same table whichever call gives it).
    ``mapper`` runs the randomizations (``map``, or a pool's); the result does not depend on
    it.
    """
    a = np.asarray(alpha_row, dtype=np.float64)
    if a.ndim != 1 or a.size < 3 or not np.all(np.isfinite(a)):
        raise ValueError("alpha_row must be a finite (C,) row with C >= 3")
    w = np.exp(a.max() - a)
    if int(randomizations) < 1 or int(first) < 0:
        raise ValueError("randomizations must be >= 1 and first >= 0")
    items = [(w, int(log2_points), int(seed), r)
             for r in range(int(first), int(first) + int(randomizations))]
    return np.stack(list(mapper(_one_randomization, items)))
