"""The swap family's moments in arbitrary precision (``mpmath``), for certifying
:func:`verify.moments.swap.swap_moments` (its float64 path and its ``dps`` mode) at extreme
logits: :func:`race_moments_mp`.

A module of its own because it uses both the exponential races
(:mod:`verify.moments.races`) and the polytope cells of :mod:`verify.moments.swap`, which
itself imports the races: kept in either, it would close an import circle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import Moments
from .races import _pair_closed_mp, _pair_quad, swap_coefficients
from .swap import _ars_plus_tensors, dimension_tables

__all__ = ["race_moments_mp"]


def race_moments_mp(dist: Any, params: object, objective: Any, *, shared_j: bool,
                    dps: int = 50, quadrature: bool = False, weight: str = "plain") -> Moments:
    """Moments of ARS (``shared_j``) or ARSM in arbitrary precision, for certifying
    :func:`verify.moments.swap.swap_moments` at extreme logits; with ``weight="sym"`` or
    ``"ce"`` the reduced variants (ARSM+; ARS+ with ``shared_j``, ARSM+CE without).

    Reduced variants: the per-dimension law comes from polytope cells with ``mpmath``
    vertices at ``dps + 3 spread / ln 10`` digits (``spread`` the largest logit range of a
    row): the common refinement of every swap and every ``(j, l)`` interval
    (:func:`verify.moments.swap.dimension_tables`) for ARSM+ and ARSM+CE, ARS+'s per-``(j,
    l)`` arrangements for ARS+ (the common refinement costs minutes there), and is
    contracted in the centred form below. The cell
    code (:mod:`verify.moments.polytope`) is shared with the float64 path and the ``dps``
    mode of ``swap_moments``: what this certifies is the rounding and the contraction, while
    the geometry is certified by the mean (checked against ``exact_gradient_mp``).

    Every weight works at ``dps + 3 spread / ln 10`` digits: the centred contraction below
    cancels terms of order 1 down to entries of order ``e^(-2 spread)``. The pair laws are
    evaluated in ``mpmath`` at that precision from the logits taken as exact
    (:func:`_pair_closed_mp`, the closed form written out again scalar by scalar), or with
    ``quadrature=True`` in float64 by adaptive quadrature over ``u / t`` (:func:`_pair_quad`,
    an independent route to the same integrals; moderate logits only). The moments are then
    contracted in the *centred* form ``E[g_kc] = sum_j gamma_j sum_m D[c, m] E[W_kj
    f(Z[m, j])]``, ``E[g g^T] = sum Gamma D D E[W W f f]`` with ``D = I - 11^T / C`` (not the
    difference form of ``swap_moments``; in float64 it loses every digit of the small entries
    at logits ``+-20``) in ``mpmath``, and rounded to float64 at the end. Small problems only
    (``K = 2``, ``C = 4``: seconds for ARS, about a minute for ARSM)."""
    import itertools

    import mpmath

    from ..exact import make_problem

    pr = make_problem(dist, params, objective)
    K, C = pr.K, pr.C
    # guard digits for every weight: the centred contraction cancels terms of order 1 down to
    # entries of order e^(-spread) (mean) and e^(-2 spread) (covariance). The races once ran
    # at ``dps`` alone: at dps = 40 and a spread of 96 their smallest mean entry was 20% off
    # (the float64 path and exact_gradient_mp agreed with each other)
    spread = float((pr.params.max(axis=-1) - pr.params.min(axis=-1)).max())
    work = dps + int(np.ceil(3 * spread / np.log(10)))
    if weight != "plain":
        with mpmath.workdps(work):
            return _cells_moments_mp(pr, shared_j, weight, work)
    ctx = mpmath.mp.clone()
    ctx.dps = work
    f = pr.f_table()
    fm = {x: ctx.mpf(float(f[x])) for x in itertools.product(range(C), repeat=K)}
    refs = [(j, j) for j in range(C)] if shared_j else list(itertools.product(range(C), repeat=2))
    tabs = []  # per dimension: {(m, j, p, q): (P, L, L', Q) as dicts (x, y) -> mpf}
    for k in range(K):
        row = [ctx.mpf(float(x)) for x in pr.params[k]]
        w_mp = np.array([max(row) - x for x in row], dtype=object)  # log w, exact
        w = pr.params[k].max() - pr.params[k]
        sig = [[[j if r == m else m if r == j else r for r in range(C)] for j in range(C)]
               for m in range(C)]
        tk = {}
        for j, q in refs:
            for m in range(C):
                for p in range(C):
                    if quadrature:
                        P, Ej, Eq, Ejq = (np.vectorize(ctx.mpf, otypes=[object])(v) for v in
                                          _pair_quad(swap_coefficients(w, m, j),
                                                     swap_coefficients(w, p, q), j, q))
                    else:
                        law = _pair_closed_mp(ctx, swap_coefficients(w_mp, m, j),
                                              swap_coefficients(w_mp, p, q), j, q)
                        P, Ej, Eq, Ejq = (np.array([[law[a, b][i] for b in range(C)]
                                                    for a in range(C)], dtype=object)
                                          for i in range(4))
                    L = P - Ej
                    L_ = P - Eq
                    Q = P - Ej - Eq + ctx.mpf(C) / (C + 1) * Ejq
                    tab = {}
                    for a in range(C):
                        for b in range(C):
                            tab[sig[m][j][a], sig[p][q][b]] = (P[a, b], L[a, b], L_[a, b], Q[a, b])
                    tk[m, j, p, q] = tab
        tabs.append(tk)
    return _centred_contraction(ctx, pr, fm, tabs, refs, shared_j,
                                f"pair laws {'by quadrature' if quadrature else 'in closed form'}, "
                                f"centred contraction in mpmath ({work} digits)")


def _cells_moments_mp(pr: Any, shared_j: bool, weight: str, dps: int) -> Moments:
    """:func:`race_moments_mp` for the reduced weights (call inside ``mpmath.workdps``)."""
    import itertools

    import mpmath

    ctx = mpmath.mp
    K, C = pr.K, pr.C
    f = pr.f_table()
    fm = {x: ctx.mpf(float(f[x])) for x in itertools.product(range(C), repeat=K)}
    refs = [(j, j) for j in range(C)] if shared_j else list(itertools.product(range(C), repeat=2))
    tabs = []
    for k in range(K):
        row = pr.params[k]
        if weight == "ce" and shared_j and C > 2 and np.any(row != row[0]):
            # ARS+: the per-(j, l) arrangements (the common refinement of every pair costs
            # as much as ARSM+CE's, minutes in mpmath); the contraction below is still the
            # centred one, at another precision than the dps mode's
            T = _ars_plus_tensors(row, dps)
            tabs.append({(m, j, p, j): {(x, y): (T["P2"][m, j, p, j, x, y],
                                                 T["L2"][m, j, p, j, x, y],
                                                 T["L2"][p, j, m, j, y, x],
                                                 T["Q2"][m, j, p, j, x, y])
                                        for x in range(C) for y in range(C)}
                         for m in range(C) for j in range(C) for p in range(C)})
            continue
        tab = dimension_tables(row, weight, dps)
        Z, P, L, Q = tab["Z"], tab["P"], tab["L"], tab["Q"]
        tk: dict = {}
        for j, q in refs:
            for m in range(C):
                for p in range(C):
                    d: dict = {}
                    for n in range(Z.shape[0]):
                        key = (int(Z[n, m, j]), int(Z[n, p, q]))
                        new = (P[n], L[n, j], L[n, q], Q[n, j, q])
                        old = d.get(key)
                        d[key] = new if old is None else tuple(
                            a + b for a, b in zip(old, new, strict=True))
                    tk[m, j, p, q] = d
        tabs.append(tk)
    return _centred_contraction(ctx, pr, fm, tabs, refs, shared_j,
                                f"polytope cells (common refinement) in mpmath at {dps} "
                                f"digits, centred contraction")


def _centred_contraction(ctx: Any, pr: Any, fm: dict, tabs: list, refs: list, shared_j: bool,
                         method: str) -> Moments:
    """The centred contraction of :func:`race_moments_mp` from per-dimension tables
    ``{(m, j, p, q): {(x, y): (P, L_j, L_q, Q)}}``, in ``ctx``'s precision."""
    import itertools

    K, C = pr.K, pr.C
    D = [[ctx.mpf(int(c == m)) - ctx.mpf(1) / C for m in range(C)] for c in range(C)]
    configs = list(itertools.product(range(C), repeat=K))

    def pair_sum(key: tuple, which: list[int], second: bool) -> Any:
        total = ctx.mpf(0)
        for x in configs:
            for y in configs:
                prod = fm[x] * fm[y] if second else fm[x]
                for i in range(K):
                    e = tabs[i][key].get((x[i], y[i]))
                    prod = prod * e[which[i]] if e is not None else 0
                    if prod == 0:
                        break
                total += prod
        return total

    mean = [[ctx.mpf(0)] * C for _ in range(K)]
    for k in range(K):
        for j in range(C):
            for m in range(C):
                # E[W_kj f(Z[m, j])]: the pair (m, j) with itself, weight of j in dimension k
                v = pair_sum((m, j, m, j), [1 if i == k else 0 for i in range(K)], False)
                for c in range(C):
                    mean[k][c] += D[c][m] * v / C
    P_ = K * C
    cov = [[ctx.mpf(0)] * P_ for _ in range(P_)]
    for k, k2 in itertools.product(range(K), repeat=2):
        which = [3 if i == k == k2 else 1 if i == k else 2 if i == k2 else 0 for i in range(K)]
        for j, q in refs:
            gamma = ctx.mpf(1) / C if shared_j else ctx.mpf(1) / C**2
            X = {(m, p): pair_sum((m, j, p, q), which, True)
                 for m in range(C) for p in range(C)}
            for c in range(C):
                for c2 in range(C):
                    s = ctx.fsum(D[c][m] * D[c2][p] * X[m, p] for m in range(C) for p in range(C))
                    cov[k * C + c][k2 * C + c2] += gamma * s
    mu = [x for row in mean for x in row]
    cov = [[cov[a][b] - mu[a] * mu[b] for b in range(P_)] for a in range(P_)]
    return Moments(np.array([[float(x) for x in row] for row in mean]),
                   np.array([[float(x) for x in row] for row in cov]), method)
