"""Numba CPU kernels for the categorical swap family (formulas and layouts in
:mod:`reference.estimators.swap.numpy_reference`).

Kernels take batch-flattened, C-contiguous arrays, write into preallocated outputs (and the
preallocated scratch ``pi``) and return nothing; each ``prange`` iteration writes only its own
replicate's rows, so results are the same on every run.
No on-disk cache: the kernels call device functions of another file (``device.py``), and
Numba's cache is keyed on this file alone, so an edit there would leave stale kernels running.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from reference import _cpu
from reference.contract import Backend, Queries

from .device import build
from .numpy_reference import check_logit_spread, check_swap_queries

CORE_SWAP = build(njit, _cpu.CORE)
row_weights = CORE_SWAP.row_weights
ars_queries_row = CORE_SWAP.ars_queries_row
arsm_queries_row = CORE_SWAP.arsm_queries_row
ars_combine_row = CORE_SWAP.ars_combine_row
arsm_combine_row = CORE_SWAP.arsm_combine_row
dirichlet_row = CORE_SWAP.dirichlet_row
arsm_weights_row = CORE_SWAP.arsm_weights_row
first_equal_row = CORE_SWAP.first_equal_row


@_cpu.twin_kernel
def _row_weights(alpha, w):
    # alpha (B, K, C) -> w (B, K, C)
    B, K = alpha.shape[0], alpha.shape[1]
    for t in prange(B * K):
        b, k = t // K, t % K
        row_weights(alpha[b, k], w[b, k])


@_cpu.twin_kernel
def _row_spreads(alpha, out):
    # alpha (B, K, C) -> out (B,): max over k of max_c alpha - min_c alpha (exact: no rounding
    # but the one subtraction, as NumPy's max(axis=-1) - min(axis=-1))
    B, K, C = alpha.shape
    for b in prange(B):
        worst = 0.0
        for k in range(K):
            lo = alpha[b, k, 0]
            hi = lo
            for c in range(1, C):
                v = alpha[b, k, c]
                lo = v if v < lo else lo
                hi = v if v > hi else hi
            d = hi - lo
            worst = d if d > worst else worst
        out[b] = worst


def _check_spread(alpha: np.ndarray) -> None:
    """:func:`check_logit_spread` with the spread from :func:`_row_spreads` (one pass over
    ``alpha`` ``(B, K, C)``; NumPy's ``max`` and ``min`` along the short last axis took 91-95 ms
    of ARS's 425 ms at 65,536 x 16 x 8, one thread)."""
    if not alpha.size:  # no row, no spread
        return
    out = np.empty(alpha.shape[0])
    _row_spreads(alpha, out)
    check_logit_spread(alpha, float(out.max()))


@_cpu.twin_kernel
def _ars_queries(u_pi, u_j, u_l, plus, w, pi, z, weight):
    # u_pi (B, R, K, C), u_j (B, R), u_l (B, R, K or 1), w (B, K, C), pi scratch (B, R, K, C)
    # -> z (B, R, C, K), weight (B, R, K)
    B, R = u_pi.shape[0], u_pi.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        ars_queries_row(u_pi[b, r], u_j[b, r], u_l[b, r], plus, w[b], pi[b, r], z[b, r],
                        weight[b, r])


@njit
def _smallest_three(v):
    # the indices of the three smallest entries of v (C,), in (value, index) order (a tie
    # puts the lower index first, as swap_argmin's first minimum); -1 past C
    i0, i1, i2 = -1, -1, -1
    for i in range(v.shape[0]):
        x = v[i]
        if i0 < 0 or x < v[i0]:
            i0, i1, i2 = i, i0, i1
        elif i1 < 0 or x < v[i1]:
            i1, i2 = i, i1
        elif i2 < 0 or x < v[i2]:
            i2 = i
    return i0, i1, i2


@njit
def _arsm_swaps_row(pi, w, z, slot, v):
    # arsm_swaps_row (device.py) with the same results: a swap (m, j) changes the products
    # pi_i w_i at m and j only, so its argmin (first minimum) is the least in (value, index)
    # order of (pi_j w_m, m), (pi_m w_j, j) and the least unchanged product, which is the first
    # of the row's three least not at m or j. One pass over a row instead of one per swap
    # (C (C - 1) / 2 of them): every pair's configuration is written first, in pair order, then
    # the distinct ones are moved up in place (a row moves only to a place at or before its
    # own). v (C,) float64 scratch
    K, C = pi.shape[0], pi.shape[1]
    M = z.shape[0]
    for k in range(K):
        pk, wk = pi[k], w[k]
        for i in range(C):
            v[i] = pk[i] * wk[i]
        i0, i1, i2 = _smallest_three(v)
        z[0, k] = i0
        p = 1
        for m in range(C):
            for j in range(m + 1, C):
                best, bv = m, pk[j] * wk[m]
                vj = pk[m] * wk[j]
                if vj < bv:
                    best, bv = j, vj
                o = i0 if i0 != m and i0 != j else (i1 if i1 != m and i1 != j else i2)
                if o >= 0 and (v[o] < bv or (v[o] == bv and o < best)):
                    best = o
                z[p, k] = best
                p += 1
    for j in range(C):
        slot[j, j] = 0
    n, p = 1, 1
    for m in range(C):
        for j in range(m + 1, C):
            found = first_equal_row(z, p, n)
            slot[m, j] = found
            slot[j, m] = found
            if found == n:
                if n != p:
                    for k in range(K):
                        z[n, k] = z[p, k]
                n += 1
            p += 1
    for s in range(n, M):
        for k in range(K):
            z[s, k] = z[0, k]
    return n


@_cpu.twin_kernel
def _arsm_queries(u_pi, u_l, mode, w, pi, z, slot, n_distinct, weight):
    # u_pi (B, R, K, C), u_l (B, R, K, C or 1), w (B, K, C), pi scratch (B, R, K, C)
    # -> z (B, R, M, K), slot (B, R, C, C), n_distinct (B, R), weight (B, R, K, C):
    # arsm_queries_row of every replicate, its swaps by _arsm_swaps_row
    B, R, K = u_pi.shape[0], u_pi.shape[1], u_pi.shape[2]
    for t in prange(B * R):
        b, r = t // R, t % R
        for k in range(K):
            dirichlet_row(u_pi[b, r, k], pi[b, r, k])
        n_distinct[b, r] = _arsm_swaps_row(pi[b, r], w[b], z[b, r], slot[b, r],
                                           np.empty(u_pi.shape[3]))
        arsm_weights_row(u_l[b, r], mode, w[b], pi[b, r], weight[b, r])


@_cpu.twin_kernel
def _ars_combine(f, weight, out):
    # f (B, R, C), weight (B, R, K) -> out (B, R, K, C)
    B, R = f.shape[0], f.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        ars_combine_row(f[b, r], weight[b, r], out[b, r])


@njit
def _arsm_combine_row(f, slot, weight, out, d):
    # arsm_combine_row (device.py) with the same arithmetic in the same order, each value
    # computed once: fbar_j = sum_m f[slot[m, j]] once per j instead of once per (k, c, j), and
    # d[c, j] = f[slot[c, j]] - fbar_j / C once per (c, j) instead of once per k. d (C, C)
    # float64 scratch
    C = slot.shape[0]
    for j in range(C):
        fbar = 0.0
        for m in range(C):
            fbar += f[slot[m, j]]
        for c in range(C):
            d[c, j] = f[slot[c, j]] - fbar / C
    for k in range(weight.shape[0]):
        for c in range(C):
            acc = 0.0
            for j in range(C):
                acc += d[c, j] * weight[k, j]
            out[k, c] = acc / C


@_cpu.twin_kernel
def _arsm_combine(f, slot, weight, out):
    # f (B, R, M), slot (B, R, C, C), weight (B, R, K, C) -> out (B, R, K, C):
    # arsm_combine_row of every replicate (by _arsm_combine_row)
    B, R, C = f.shape[0], f.shape[1], slot.shape[2]
    for t in prange(B * R):
        b, r = t // R, t % R
        _arsm_combine_row(f[b, r], slot[b, r], weight[b, r], out[b, r], np.empty((C, C)))


def row_weight_table(alpha: np.ndarray) -> np.ndarray:
    """``w = exp(max(alpha_k) - alpha_k)`` for every row: float64 ``(B, K, C)``."""
    w = np.empty(alpha.shape, dtype=np.float64)
    _row_weights(alpha, w)
    return w


def _dummy_u_l(u_pi: np.ndarray) -> np.ndarray:
    return np.zeros(u_pi.shape[:2] + (1,) * (u_pi.ndim - 2), dtype=u_pi.dtype)


def _ars_q(plus: bool):
    def queries(dist: str, alpha: np.ndarray, noise: dict, opts: dict) -> Queries:
        _check_spread(alpha)
        u_pi = noise["u_pi"]
        B, R, K, C = u_pi.shape
        u_l = noise["u_l"] if plus else _dummy_u_l(u_pi)[..., 0]
        pi = np.empty((B, R, K, C))
        z = np.empty((B, R, C, K), dtype=np.int64)
        weight = np.empty((B, R, K), dtype=alpha.dtype)
        _ars_queries(u_pi, noise["u_j"], u_l, plus, row_weight_table(alpha), pi, z, weight)
        return Queries(z, {"weight": weight})

    return queries


def _arsm_q(mode: int):
    def queries(dist: str, alpha: np.ndarray, noise: dict, opts: dict) -> Queries:
        _check_spread(alpha)
        u_pi = noise["u_pi"]
        B, R, K, C = u_pi.shape
        M = C * (C - 1) // 2 + 1
        u_l = noise["u_l"] if mode == 2 else _dummy_u_l(u_pi)
        pi = np.empty((B, R, K, C))
        z = np.empty((B, R, M, K), dtype=np.int64)
        slot = np.empty((B, R, C, C), dtype=np.int64)
        n = np.empty((B, R), dtype=np.int64)
        weight = np.empty((B, R, K, C), dtype=alpha.dtype)
        _arsm_queries(u_pi, u_l, mode, row_weight_table(alpha), pi, z, slot, n, weight)
        return Queries(z, {"slot": slot, "n_distinct": n, "weight": weight})

    return queries


def _ars_c(dist: str, alpha: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    check_swap_queries(queries, alpha.shape, ars=True)
    f, weight = answers.f_z, queries.aux["weight"]
    out = np.empty(f.shape[:2] + alpha.shape[1:], dtype=alpha.dtype)
    _ars_combine(f, weight, out)
    return out


def _arsm_c(dist: str, alpha: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    check_swap_queries(queries, alpha.shape, ars=False)
    f, slot, weight = answers.f_z, queries.aux["slot"], queries.aux["weight"]
    out = np.empty(f.shape[:2] + alpha.shape[1:], dtype=alpha.dtype)
    _arsm_combine(f, np.ascontiguousarray(slot, dtype=np.int64), weight, out)
    return out


CPU_ARS = Backend(_ars_q(False), _ars_c, serial_twins=True)
CPU_ARS_PLUS = Backend(_ars_q(True), _ars_c, serial_twins=True)
CPU_ARSM = Backend(_arsm_q(0), _arsm_c, serial_twins=True)
CPU_ARSM_PLUS = Backend(_arsm_q(1), _arsm_c, serial_twins=True)
CPU_ARSM_PLUS_CE = Backend(_arsm_q(2), _arsm_c, serial_twins=True)
