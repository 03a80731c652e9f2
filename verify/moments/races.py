"""Joint laws of two swapped argmins as exponential races, in closed form, for any ``C``.

Used by :mod:`verify.moments.swap` for the estimators whose per-dimension weight is the plain
``W_j = 1 - C pi_j`` (ARS, ARSM). Ours; every step is checked in ``tests/test_swap_scale.py``
against the polytope cells of :mod:`verify.moments.polytope` and against Monte Carlo.

Setting: one dimension with logits ``alpha`` ``(C,)``, ``w_i = exp(max(alpha) - alpha_i)``,
``pi ~ Dirichlet(1_C)``, and the swap ``(m, j)``'s argmin ``Z[m, j] = argmin_i w_i
pi_{sigma(i)}`` (``sigma`` the transposition of ``m`` and ``j``). Write ``pi = x / S`` with
``x_r`` i.i.d. ``Exp(1)`` and ``S = sum_r x_r``: the argmins are scale invariant, ``S`` is
independent of ``pi`` and ``E[S] = C``, ``E[S^2] = C (C + 1)``, so for an event ``A`` of the
argmins ::

    E[pi_j 1_A] = E[x_j 1_A] / C,      E[pi_j pi_q 1_A] = E[x_j x_q 1_A] / (C (C + 1)).

Swap ``s`` reads variable ``r`` with the coefficient ``c^s_r = w_{sigma_s(r)}`` (position
``sigma_s(r)`` holds ``x_r``), so its argmin position is ``sigma_s(argmin_r c^s_r x_r)``: an
exponential race. For two swaps and winners ``a`` (of the first) and ``b`` (of the second):

* ``a = b``: given ``x_a = t``, every other ``x_r >= kappa_r t`` with
  ``kappa_r = max_s c^s_a / c^s_r``; these are independent tails, ``P = exp(-t sum kappa)``,
  ``E[x_r | x_r >= y] = y + 1``, ``E[x_r^2 | x_r >= y] = (y + 1)^2 + 1``, and
  ``int t^n exp(-R t) dt = n! / R^(n+1)`` with ``R = 1 + sum_r kappa_r``.
* ``a != b``: ``x_a = t``, ``x_b = u`` with ``u / t`` in ``[c^1_a / c^1_b, c^2_a / c^2_b]`` and
  every other ``x_r >= max(alpha_r t, beta_r u)`` (``alpha_r = c^1_a / c^1_r``,
  ``beta_r = c^2_b / c^2_r``). Cutting the wedge at the ratios ``alpha_r / beta_r`` leaves
  cones ``{s_0 (1, theta_0) + s_1 (1, theta_1)}`` on which the exponent is linear,
  ``Lambda . (t, u)``, and the weight a polynomial of degree <= 2 with non-negative
  coefficients; ``int int s_0^p s_1^q exp(-s_0 l_0 - s_1 l_1) = p! q! / (l_0^(p+1) l_1^(q+1))``
  with ``l_i = Lambda . (1, theta_i)``, times the Jacobian ``theta_1 - theta_0``.

Every term is a product and sum of non-negative numbers, so each probability and moment is
accurate to a few units of float64 rounding *relative to itself*, at any logits whose spread
keeps ``exp`` finite (no thin cells, no cancellation): the rare swap outcomes at logits
``+-50`` come out as accurately as the common ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["swap_coefficients", "race_pair_moments", "race_pair_tables", "race_pair_tables_mp",
           "BATCH_ENTRIES"]

#: entries of the largest intermediate array of one :func:`race_pair_moments` call made by
#: :func:`race_pair_tables` (C = 10: about 200 MB in all)
BATCH_ENTRIES = 2**22


def swap_coefficients(log_w: np.ndarray, m: int, j: int) -> np.ndarray:
    """``log c_r = log w_{sigma(r)}``: the log-coefficient with which the swap ``(m, j)`` reads
    ``x_r`` (``log w = max(alpha) - alpha``). Ratios of coefficients are taken as ``exp`` of
    differences of these, so that ratios equal in exact arithmetic (logits +-20: ``e^40 / e^20
    = e^20 / 1``) stay equal, instead of leaving slivers of rounding between them."""
    g = np.array(log_w, dtype=np.asarray(log_w).dtype)
    g[m], g[j] = log_w[j], log_w[m]
    return g


def _lin_product(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Product of linear forms ``(k0, kt, ku)`` as ``[1, t, u, t^2, tu, u^2]`` coefficients."""
    a0, at, au = A[..., 0], A[..., 1], A[..., 2]
    b0, bt, bu = B[..., 0], B[..., 1], B[..., 2]
    return np.stack([a0 * b0, a0 * bt + at * b0, a0 * bu + au * b0, at * bt,
                     at * bu + au * bt, au * bu], axis=-1)


def race_pair_moments(g1: np.ndarray, g2: np.ndarray, j: int, q: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``E[h 1{argmin c1 x = a, argmin c2 x = b}]`` for ``h`` in ``1, x_j, x_q, x_j x_q``.

    ``g1``, ``g2``: log-coefficients ``(N, C)`` (``c = exp(g)``) of ``N`` pairs of races over the
    same i.i.d. ``Exp(1)`` variables ``x`` ``(C,)``; ``j``, ``q``: variable indices (may be
    equal). Returns four float64 arrays ``(N, C, C)`` indexed ``[n, a, b]`` (module docstring).
    """
    g1 = np.asarray(g1, dtype=np.float64)
    g2 = np.asarray(g2, dtype=np.float64)
    N, C = g1.shape
    d1 = g1[:, :, None] - g1[:, None, :]  # [n, a, r] = log(c1_a / c1_r)
    d2 = g2[:, :, None] - g2[:, None, :]
    r = np.arange(C)
    out = [np.zeros((N, C, C)) for _ in range(4)]

    # ---- a = b: x_a = t, x_r >= kappa_r t
    kappa = np.exp(np.maximum(d1, d2))  # [n, a, r]
    kappa[:, r, r] = 0.0
    R = 1.0 + kappa.sum(axis=2)  # (N, C)

    def first(v: int) -> np.ndarray:  # E[x_v | t] = k0 + k1 t, as (N, a, 2)
        is_a = (r == v)[None, :]
        k0 = np.where(is_a, 0.0, 1.0)
        k1 = np.where(is_a, 1.0, kappa[:, :, v])
        return np.stack(np.broadcast_arrays(k0, k1), axis=-1)

    Fj, Fq = first(j), first(q)
    if j == q:  # E[x_j^2 | t]: t^2 at the winner, (kappa t + 1)^2 + 1 elsewhere
        k0, k1 = Fj[..., 0], Fj[..., 1]
        poly2 = np.stack([k0 * k0 + (r != j)[None], 2 * k0 * k1, k1 * k1], axis=-1)
    else:
        poly2 = np.stack([Fj[..., 0] * Fq[..., 0], Fj[..., 0] * Fq[..., 1] + Fj[..., 1] * Fq[..., 0],
                          Fj[..., 1] * Fq[..., 1]], axis=-1)
    # int_0^inf t^n e^{-R t} dt = n! / R^(n+1)   (x_a has density e^{-t})
    mom = np.stack([1.0 / R, 1.0 / R**2, 2.0 / R**3], axis=-1)  # (N, a, 3)
    diag = [1.0 / R, (Fj * mom[..., :2]).sum(-1), (Fq * mom[..., :2]).sum(-1),
            (poly2 * mom).sum(-1)]
    for o, d in zip(out, diag, strict=True):
        o[:, r, r] = d

    # ---- a != b: x_a = t, x_b = u = theta t, theta in [lo, hi]
    lo, hi = d1, d2  # log of the range of theta: [n, a, b] = log(c1_a / c1_b), log(c2_a / c2_b)
    lA = np.broadcast_to(d1[:, :, None, :], (N, C, C, C))  # [n, a, b, r]: log alpha_r
    lB = np.broadcast_to(d2[:, None, :, :], (N, C, C, C))  # log beta_r = log(c2_b / c2_r)
    A, B = np.exp(lA), np.exp(lB)
    other = (r[None, None, None, :] != r[None, :, None, None]) & \
            (r[None, None, None, :] != r[None, None, :, None])  # r not in {a, b}
    other = np.broadcast_to(other, (N, C, C, C))
    lo_ = lo[..., None]
    hi_ = hi[..., None]
    brk = np.where(other, np.clip(lA - lB, lo_, hi_), lo_)  # log breakpoints inside [lo, hi]
    pts = np.sort(np.concatenate([np.broadcast_to(lo_, brk.shape[:3] + (1,)), brk,
                                  np.broadcast_to(hi_, brk.shape[:3] + (1,))], axis=-1), axis=-1)
    g0, g1_ = pts[..., :-1], pts[..., 1:]  # pieces (N, a, b, P) in log theta
    live = (g1_ > g0) & (hi > lo)[..., None]
    g0 = np.where(live, g0, 0.0)
    g1_ = np.where(live, g1_, 1.0)
    th0, th1 = np.exp(g0), np.exp(g1_)
    mid = 0.5 * (g0 + g1_)
    # on a piece, x_r's lower bound is alpha_r t where theta < alpha_r / beta_r, else beta_r u
    act_a = (mid[..., None] < (lA - lB)[..., None, :]) & other[..., None, :]
    act_b = ~act_a & other[..., None, :]
    lt = np.where(act_a, A[..., None, :], 0.0)  # (N, a, b, P, r): coefficient of t
    lu = np.where(act_b, B[..., None, :], 0.0)  # coefficient of u
    Lt = 1.0 + lt.sum(-1)
    Lu = 1.0 + lu.sum(-1)
    l0 = Lt + Lu * th0
    l1 = Lt + Lu * th1
    jac = th0 * np.expm1(g1_ - g0)  # theta_1 - theta_0 without cancellation

    def lin(v: int) -> np.ndarray:  # E[x_v | t, u] as (k0, kt, ku), shape (N, a, b, P, 3)
        is_a = (r == v)[None, :, None, None]
        is_b = (r == v)[None, None, :, None]
        shape = lt.shape[:-1]
        k0 = np.where(is_a | is_b, 0.0, 1.0)
        kt = np.where(is_a, 1.0, np.where(is_b, 0.0, lt[..., v]))
        ku = np.where(is_b, 1.0, np.where(is_a, 0.0, lu[..., v]))
        return np.stack([np.broadcast_to(k0, shape), np.broadcast_to(kt, shape),
                         np.broadcast_to(ku, shape)], axis=-1)

    Lj, Lq = lin(j), lin(q)
    P2 = _lin_product(Lj, Lq)
    if j == q:  # a non-winner's second moment has 1 more than the square of its mean
        P2 = P2.copy()
        P2[..., 0] += ((r != j)[None, :, None, None] & (r != j)[None, None, :, None])
    # cone integrals J(p, q) = p! q! / (l0^(p+1) l1^(q+1)) times the Jacobian
    J00 = jac / (l0 * l1)
    J10, J01 = J00 / l0, J00 / l1
    J20, J11, J02 = 2 * J10 / l0, J10 / l1, 2 * J01 / l1
    mono = np.stack([J00, J10 + J01, th0 * J10 + th1 * J01, J20 + 2 * J11 + J02,
                     th0 * J20 + (th0 + th1) * J11 + th1 * J02,
                     th0 * th0 * J20 + 2 * th0 * th1 * J11 + th1 * th1 * J02], axis=-1)
    mono = np.where(live[..., None], mono, 0.0)
    off = ~np.eye(C, dtype=bool)
    vals = [mono[..., 0].sum(-1), (Lj * mono[..., :3]).sum((-1, -2)),
            (Lq * mono[..., :3]).sum((-1, -2)), (P2 * mono).sum((-1, -2))]
    for o, v in zip(out, vals, strict=True):
        o[:, off] = v[:, off]
    return out[0], out[1], out[2], out[3]


def race_pair_tables(alpha_row: np.ndarray, shared_j: bool = False) -> dict[str, np.ndarray]:
    """Per-dimension pair tables of the plain weight ``W_j = 1 - C pi_j`` (module docstring).

    ``alpha_row`` ``(C,)``. Returns ``P2``, ``L2``, ``Q2``, each ``(C, C, C, C, C, C)`` indexed
    ``[m, j, p, q, x, y]``: ``P(Z[m,j] = x, Z[p,q] = y)``, ``E[W_j 1{...}]`` and
    ``E[W_j W_q 1{...}]``. With ``shared_j`` only the entries with ``q = j`` are filled (the
    ARS family, one reference for every dimension), the others left 0.
    """
    a = np.asarray(alpha_row, dtype=np.float64)
    C = a.size
    w = a.max() - a  # log w
    coef = np.array([[swap_coefficients(w, m, j) for j in range(C)] for m in range(C)])  # [m,j,r]
    sig = np.array([[np.where(np.arange(C) == m, j, np.where(np.arange(C) == j, m, np.arange(C)))
                     for j in range(C)] for m in range(C)])  # [m, j, r]: position of x_r
    P2, L2, Q2 = (np.zeros((C,) * 6) for _ in range(3))
    # batches of pairs (m, p) small enough that the (N, C, C, C - 1, C) arrays of
    # race_pair_moments stay below about BATCH_ENTRIES entries (memory bounded at any C)
    per = max(1, BATCH_ENTRIES // C**5)
    allm, allp = (x.ravel() for x in np.meshgrid(np.arange(C), np.arange(C), indexing="ij"))
    batches = [(allm[s:s + per], allp[s:s + per]) for s in range(0, C * C, per)]
    for j, (mm, pp) in ((j, b) for j in range(C) for b in batches):
        for q in (range(C) if not shared_j else (j,)):
            P, Ej, Eq, Ejq = race_pair_moments(coef[mm, j], coef[pp, q], j, q)
            # E[W_j 1] = P - C E[pi_j 1] = P - E[x_j 1]; E[W_j W_q 1] likewise
            L = P - Ej
            Q = P - Ej - Eq + C / (C + 1.0) * Ejq
            # winners are variables: variable a sits at position sigma(a)
            xa = sig[mm, j]  # (N, C): position of variable a in swap (m, j)
            yb = sig[pp, q]
            n_idx = np.arange(mm.size)[:, None, None]
            X = np.broadcast_to(xa[:, :, None], P.shape)
            Y = np.broadcast_to(yb[:, None, :], P.shape)
            for T, V in ((P2, P), (L2, L), (Q2, Q)):
                blk = np.zeros((mm.size, C, C))
                blk[np.broadcast_to(n_idx, P.shape), X, Y] = V
                T[mm, j, pp, q] = blk
    return {"P2": P2, "L2": L2, "Q2": Q2}


def race_pair_tables_mp(alpha_row: np.ndarray, shared_j: bool = False) -> dict[str, np.ndarray]:
    """:func:`race_pair_tables` in ``mpmath`` at the working precision (call it inside
    ``mpmath.workdps``): object arrays of ``mpf``, the float64 logits taken as exact, every
    pair law from :func:`_pair_closed_mp`. ``C^4`` (``C^3`` with ``shared_j``) scalar pair
    laws of ``O(C^3)`` operations each: small ``C`` only (``C = 4``: about a second for the
    ARS family, a few for ARSM)."""
    import mpmath

    ctx = mpmath.mp
    a = np.asarray(alpha_row, dtype=np.float64)
    C = a.size
    row = [ctx.mpf(float(x)) for x in a]
    top = max(row)
    w_mp = np.array([top - x for x in row], dtype=object)  # log w, exact
    sig = [[[j if r == m else m if r == j else r for r in range(C)] for j in range(C)]
           for m in range(C)]
    P2, L2, Q2 = (np.full((C,) * 6, ctx.mpf(0), dtype=object) for _ in range(3))
    Cmp = ctx.mpf(C)
    for j in range(C):
        for q in (range(C) if not shared_j else (j,)):
            for m in range(C):
                g1 = swap_coefficients(w_mp, m, j)
                for p in range(C):
                    law = _pair_closed_mp(ctx, g1, swap_coefficients(w_mp, p, q), j, q)
                    for (x, y), (P, Ej, Eq, Ejq) in law.items():
                        X, Y = sig[m][j][x], sig[p][q][y]
                        P2[m, j, p, q, X, Y] = P
                        L2[m, j, p, q, X, Y] = P - Ej
                        Q2[m, j, p, q, X, Y] = P - Ej - Eq + Cmp / (C + 1) * Ejq
    return {"P2": P2, "L2": L2, "Q2": Q2}


# ------------------------------------------------------------------ independent certificate
def _theta_integrand(th: float, i: int, a: int, b: int, al: dict, be: dict, j: int, q: int
                     ) -> float:
    """Entry ``i`` of ``[P, E x_j, E x_q, E x_j x_q]``'s integrand at ``theta`` (see
    :func:`_pair_quad`); ``al``, ``be``: ``alpha_r``, ``beta_r`` of the non-winners."""
    R = 1.0 + th + sum(max(al[r], be[r] * th) for r in al)

    def ed(v: int) -> tuple[float, float]:
        if v == a:
            return 1.0, 0.0
        if v == b:
            return th, 0.0
        return max(al[v], be[v] * th), 1.0

    ej, dj = ed(j)
    eq, dq = ed(q)
    if i == 0:
        return 1.0 / R**2
    if i == 1:
        return 2 * ej / R**3 + dj / R**2
    if i == 2:
        return 2 * eq / R**3 + dq / R**2
    if j == q:  # E[x^2 | t] = t^2 e^2 + 2 t e d + 2 d
        return 6 * ej * ej / R**4 + 4 * ej * dj / R**3 + 2 * dj / R**2
    return 6 * ej * eq / R**4 + 2 * (ej * dq + dj * eq) / R**3 + dj * dq / R**2


def _pair_quad(g1: np.ndarray, g2: np.ndarray, j: int, q: int) -> np.ndarray:
    """``[P, E x_j, E x_q, E x_j x_q]`` ``(4, C, C)`` of :func:`race_pair_moments` for one pair,
    by another route: the ``a = b`` entries as there, the ``a != b`` entries by adaptive
    quadrature over ``theta = u / t`` (``scipy.integrate.quad``, breakpoints at the kinks and
    at powers of 2) of the ``t``-integrated law, with every ``max`` evaluated pointwise.
    Given ``theta``, ``E[x_v | t] = t e_v(theta) + d_v`` (``e_v = 1`` at ``a``, ``theta`` at
    ``b``, ``max(alpha_v, beta_v theta)`` elsewhere; ``d_v = 1`` off the winners) and
    ``int t^(n+1) exp(-R t) dt = (n+1)! / R^(n+2)``, ``R = 1 + theta + sum max(...)``."""
    from scipy import integrate

    C = g1.size
    out = np.zeros((4, C, C))
    P, Ej, Eq, Ejq = race_pair_moments(g1[None], g2[None], j, q)
    for t_, src in zip(out, (P, Ej, Eq, Ejq), strict=True):
        t_[np.arange(C), np.arange(C)] = src[0, np.arange(C), np.arange(C)]
    for a in range(C):
        for b in range(C):
            if a == b:
                continue
            if not g1[a] - g1[b] < g2[a] - g2[b]:
                continue
            lo, hi = np.exp(g1[a] - g1[b]), np.exp(g2[a] - g2[b])
            others = [r for r in range(C) if r not in (a, b)]
            al = {r: np.exp(g1[a] - g1[r]) for r in others}
            be = {r: np.exp(g2[b] - g2[r]) for r in others}
            kinks = [al[r] / be[r] for r in others if lo < al[r] / be[r] < hi]
            grid = 2.0 ** np.arange(np.ceil(np.log2(lo)), np.floor(np.log2(hi)) + 1)
            pts = np.unique(np.concatenate([[lo, hi], kinks, grid]))

            for i in range(4):
                total = 0.0
                for x0, x1 in zip(pts[:-1], pts[1:], strict=True):
                    total += integrate.quad(_theta_integrand, x0, x1,
                                            args=(i, a, b, al, be, j, q), epsabs=0.0,
                                            epsrel=1e-13, limit=200)[0]
                out[i, a, b] = total
    return out


def _pair_closed_mp(ctx: Any, g1: list, g2: list, j: int, q: int) -> dict:
    """:func:`race_pair_moments` for one pair in ``mpmath`` (``g1``, ``g2``: log-coefficients,
    lists of ``mpf``): ``{(a, b): (P, E x_j, E x_q, E x_j x_q)}``, written out again scalar by
    scalar."""
    C = len(g1)
    ex = ctx.exp
    out = {}
    for a in range(C):
        kap = {r: ex(max(g1[a] - g1[r], g2[a] - g2[r])) for r in range(C) if r != a}
        R = 1 + ctx.fsum(kap.values())
        mom = [1 / R, 1 / R**2, 2 / R**3]  # int t^n e^{-R t} dt

        def lin1(v: int, kap: dict = kap, a: int = a) -> tuple:  # E[x_v | t] = k0 + k1 t
            return (0, 1) if v == a else (1, kap[v])

        (j0, j1), (q0, q1) = lin1(j), lin1(q)
        if j == q:
            poly = (j0 * j0 + (j != a), 2 * j0 * j1, j1 * j1)
        else:
            poly = (j0 * q0, j0 * q1 + j1 * q0, j1 * q1)
        out[a, a] = (mom[0], j0 * mom[0] + j1 * mom[1], q0 * mom[0] + q1 * mom[1],
                     ctx.fsum(cf * mo for cf, mo in zip(poly, mom, strict=True)))
        for b in range(C):
            if b == a:
                continue
            lo, hi = g1[a] - g1[b], g2[a] - g2[b]  # log theta
            if not lo < hi:
                out[a, b] = (0, 0, 0, 0)
                continue
            others = [r for r in range(C) if r not in (a, b)]
            al = {r: ex(g1[a] - g1[r]) for r in others}
            be = {r: ex(g2[b] - g2[r]) for r in others}
            kinks = {(g1[a] - g1[r]) - (g2[b] - g2[r]) for r in others}
            pts = [ex(x) for x in sorted({lo, hi} | {k for k in kinks if lo < k < hi})]
            acc = [ctx.mpf(0)] * 4
            for th0, th1 in zip(pts[:-1], pts[1:], strict=True):
                mid = (th0 + th1) / 2
                lt = {r: (al[r] if mid * be[r] < al[r] else 0) for r in others}
                lu = {r: (be[r] if mid * be[r] >= al[r] else 0) for r in others}
                Lt, Lu = 1 + ctx.fsum(lt.values()), 1 + ctx.fsum(lu.values())
                l0, l1 = Lt + Lu * th0, Lt + Lu * th1
                J = {(p_, q_): ctx.factorial(p_) * ctx.factorial(q_) * (th1 - th0)
                     / (l0 ** (p_ + 1) * l1 ** (q_ + 1))
                     for p_ in range(3) for q_ in range(3) if p_ + q_ <= 2}
                # monomials t^e u^f with t = s0 + s1, u = th0 s0 + th1 s1
                mono = {(0, 0): J[0, 0], (1, 0): J[1, 0] + J[0, 1],
                        (0, 1): th0 * J[1, 0] + th1 * J[0, 1],
                        (2, 0): J[2, 0] + 2 * J[1, 1] + J[0, 2],
                        (1, 1): th0 * J[2, 0] + (th0 + th1) * J[1, 1] + th1 * J[0, 2],
                        (0, 2): th0**2 * J[2, 0] + 2 * th0 * th1 * J[1, 1] + th1**2 * J[0, 2]}

                def lin2(v: int, lt: dict = lt, lu: dict = lu, a: int = a, b: int = b
                         ) -> tuple:  # (k0, kt, ku)
                    return (0, 1, 0) if v == a else (0, 0, 1) if v == b else (1, lt[v], lu[v])

                A, B = lin2(j), lin2(q)
                first_j = A[0] * mono[0, 0] + A[1] * mono[1, 0] + A[2] * mono[0, 1]
                first_q = B[0] * mono[0, 0] + B[1] * mono[1, 0] + B[2] * mono[0, 1]
                prod = {(0, 0): A[0] * B[0], (1, 0): A[0] * B[1] + A[1] * B[0],
                        (0, 1): A[0] * B[2] + A[2] * B[0], (2, 0): A[1] * B[1],
                        (1, 1): A[1] * B[2] + A[2] * B[1], (0, 2): A[2] * B[2]}
                if j == q and j not in (a, b):
                    prod[0, 0] += 1
                second = ctx.fsum(prod[e] * mono[e] for e in prod)
                for i, v in enumerate((mono[0, 0], first_j, first_q, second)):
                    acc[i] += v
            out[a, b] = tuple(acc)
    return out
