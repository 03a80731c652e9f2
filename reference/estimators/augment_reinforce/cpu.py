"""Numba CPU kernels for AR, ARM and DisARM (formulas and layouts in
:mod:`reference.estimators.augment_reinforce.numpy_reference`).

Kernels take batch-flattened, C-contiguous arrays, write into preallocated outputs and return
nothing; each ``prange`` iteration writes only its own rows.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from numba import prange

from reference import _cpu
from reference.contract import Answers, Backend, Queries

from .device import build
from .numpy_reference import aux_u, check_query_count

#: the rows inlined into the kernels (reference._cpu.INLINE_DEVICE), the kernels with NumPy's
#: error model (one thread, 65 536 replicates of 16 variables: ARM's pairs 62 -> 50 ns a
#: replicate, its combine 23-33 -> 21 ns; the same numbers bit for bit)
CORE_BINARY = build(_cpu.INLINE_DEVICE, _cpu.CORE)
_kernel = partial(_cpu.twin_kernel, error_model="numpy")
arm_pair_row = CORE_BINARY.arm_pair_row
ar_combine_row = CORE_BINARY.ar_combine_row
arm_combine_row = CORE_BINARY.arm_combine_row
disarm_combine_row = CORE_BINARY.disarm_combine_row


@_kernel
def _arm_pairs(phi, u, z):
    # phi (B, K), u (B, R, n, K) -> z (B, R, 2n, K): b1 of pair i at row 2i, b2 at 2i + 1
    B, R, n = u.shape[0], u.shape[1], u.shape[2]
    for t in prange(B * R * n):
        b, r, i = t // (R * n), (t // n) % R, t % n
        arm_pair_row(phi[b], u[b, r, i], z[b, r, 2 * i], z[b, r, 2 * i + 1])


@_kernel
def _ar_combine(u, f, out):
    # u (B, R, n, K), f (B, R, n) -> out (B, R, K)
    B, R = u.shape[0], u.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        ar_combine_row(u[b, r], f[b, r], out[b, r])


@_kernel
def _arm_combine(u, f, out):
    # u (B, R, n, K), f (B, R, 2n) -> out (B, R, K)
    B, R = u.shape[0], u.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        arm_combine_row(u[b, r], f[b, r], out[b, r])


@_kernel
def _disarm_combine(phi, z, f, out):
    # phi (B, K), z (B, R, 2n, K), f (B, R, 2n) -> out (B, R, K)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        disarm_combine_row(phi[b], z[b, r], f[b, r], out[b, r])


def pairs(phi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """ARM/DisARM queries: phi ``(B, K)``, u ``(B, R, n, K)`` -> int64 z ``(B, R, 2n, K)``."""
    B, R, n, K = u.shape
    z = np.empty((B, R, 2 * n, K), dtype=np.int64)
    _arm_pairs(phi, u, z)
    return z


def _ar_queries(dist: str, phi: np.ndarray, noise: dict, opts: dict) -> Queries:
    u = noise["u"]
    return Queries(_cpu.sample(dist, phi, u), {"u": u})


def _pair_queries(with_u: bool):
    def queries(dist: str, phi: np.ndarray, noise: dict, opts: dict) -> Queries:
        u = noise["u"]
        return Queries(pairs(phi, u), {"u": u} if with_u else {})

    return queries


def _out(queries: Queries, phi: np.ndarray) -> np.ndarray:
    # aligned (reference._cpu.empty_aligned): the combines write their rows in packed stores,
    # 18 ns a replicate into an output 16 bytes off a 32-byte boundary against 10.5-12 aligned
    # (AR's and ARM's, 65,536 replicates of 16 variables, one thread); the samplers' int64
    # outputs measured the same either way
    return _cpu.empty_aligned(queries.z.shape[:2] + phi.shape[1:], phi.dtype)


def _ar_combine_host(dist: str, phi: np.ndarray, queries: Queries, answers: Answers,
                     opts: dict) -> np.ndarray:
    check_query_count(queries, opts["n"], "AR")
    out = _out(queries, phi)
    _ar_combine(aux_u(queries, opts["n"], "AR"), answers.f_z, out)
    return out


def _arm_combine_host(dist: str, phi: np.ndarray, queries: Queries, answers: Answers,
                      opts: dict) -> np.ndarray:
    check_query_count(queries, 2 * opts["n"], "ARM")
    out = _out(queries, phi)
    _arm_combine(aux_u(queries, opts["n"], "ARM"), answers.f_z, out)
    return out


def _disarm_combine_host(dist: str, phi: np.ndarray, queries: Queries, answers: Answers,
                         opts: dict) -> np.ndarray:
    check_query_count(queries, 2 * opts["n"], "DisARM")
    out = _out(queries, phi)
    _disarm_combine(phi, queries.z, answers.f_z, out)
    return out


CPU_AR = Backend(_ar_queries, _ar_combine_host)
CPU_ARM = Backend(_pair_queries(True), _arm_combine_host)
CPU_DISARM = Backend(_pair_queries(False), _disarm_combine_host)
