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


@njit(parallel=True)
def _row_weights(alpha, w):
    # alpha (B, K, C) -> w (B, K, C)
    B, K = alpha.shape[0], alpha.shape[1]
    for t in prange(B * K):
        b, k = t // K, t % K
        row_weights(alpha[b, k], w[b, k])


@njit(parallel=True)
def _ars_queries(u_pi, u_j, u_l, plus, w, pi, z, weight):
    # u_pi (B, R, K, C), u_j (B, R), u_l (B, R, K or 1), w (B, K, C), pi scratch (B, R, K, C)
    # -> z (B, R, C, K), weight (B, R, K)
    B, R = u_pi.shape[0], u_pi.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        ars_queries_row(u_pi[b, r], u_j[b, r], u_l[b, r], plus, w[b], pi[b, r], z[b, r],
                        weight[b, r])


@njit(parallel=True)
def _arsm_queries(u_pi, u_l, mode, w, pi, z, slot, n_distinct, weight):
    # u_pi (B, R, K, C), u_l (B, R, K, C or 1), w (B, K, C), pi scratch (B, R, K, C)
    # -> z (B, R, M, K), slot (B, R, C, C), n_distinct (B, R), weight (B, R, K, C)
    B, R = u_pi.shape[0], u_pi.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        n_distinct[b, r] = arsm_queries_row(u_pi[b, r], u_l[b, r], mode, w[b], pi[b, r], z[b, r],
                                            slot[b, r], weight[b, r])


@njit(parallel=True)
def _ars_combine(f, weight, out):
    # f (B, R, C), weight (B, R, K) -> out (B, R, K, C)
    B, R = f.shape[0], f.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        ars_combine_row(f[b, r], weight[b, r], out[b, r])


@njit(parallel=True)
def _arsm_combine(f, slot, weight, out):
    # f (B, R, M), slot (B, R, C, C), weight (B, R, K, C) -> out (B, R, K, C)
    B, R = f.shape[0], f.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        arsm_combine_row(f[b, r], slot[b, r], weight[b, r], out[b, r])


def row_weight_table(alpha: np.ndarray) -> np.ndarray:
    """``w = exp(max(alpha_k) - alpha_k)`` for every row: float64 ``(B, K, C)``."""
    w = np.empty(alpha.shape, dtype=np.float64)
    _row_weights(alpha, w)
    return w


def _dummy_u_l(u_pi: np.ndarray) -> np.ndarray:
    return np.zeros(u_pi.shape[:2] + (1,) * (u_pi.ndim - 2), dtype=u_pi.dtype)


def _ars_q(plus: bool):
    def queries(dist: str, alpha: np.ndarray, noise: dict, opts: dict) -> Queries:
        check_logit_spread(alpha)
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
        check_logit_spread(alpha)
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


CPU_ARS = Backend(_ars_q(False), _ars_c)
CPU_ARS_PLUS = Backend(_ars_q(True), _ars_c)
CPU_ARSM = Backend(_arsm_q(0), _arsm_c)
CPU_ARSM_PLUS = Backend(_arsm_q(1), _arsm_c)
CPU_ARSM_PLUS_CE = Backend(_arsm_q(2), _arsm_c)
