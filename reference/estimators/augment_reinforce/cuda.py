"""Numba CUDA kernels for AR, ARM and DisARM (formulas and layouts in
:mod:`reference.estimators.augment_reinforce.numpy_reference`).

One thread per work item (a pair for the queries, a replicate for the combination) in
grid-stride loops; kernels write into preallocated device outputs and return nothing; the
host wrappers do the transfers. Signatures are explicit (float64 and float32 logits).
"""

from __future__ import annotations

import numpy as np
from numba import cuda, int64

from reference import _cuda
from reference._cuda import FLOATS, arr, kernel, launch
from reference.contract import Answers, Backend, Queries

from .device import build
from .numpy_reference import aux_u, check_query_count

CORE_BINARY = build(cuda.jit(device=True), _cuda.CORE)
arm_pair_row = CORE_BINARY.arm_pair_row
ar_combine_row = CORE_BINARY.ar_combine_row
arm_combine_row = CORE_BINARY.arm_combine_row
disarm_combine_row = CORE_BINARY.disarm_combine_row


def _arm_pairs(phi, u, z):
    # phi (B, K), u (B, R, n, K) -> z (B, R, 2n, K); one thread per pair
    B, R, n = u.shape[0], u.shape[1], u.shape[2]
    for t in range(cuda.grid(1), B * R * n, cuda.gridsize(1)):
        b, r, i = t // (R * n), (t // n) % R, t % n
        arm_pair_row(phi[b], u[b, r, i], z[b, r, 2 * i], z[b, r, 2 * i + 1])


def _ar_combine(u, f, out):
    # u (B, R, n, K), f (B, R, n) -> out (B, R, K); one thread per replicate
    B, R = u.shape[0], u.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        ar_combine_row(u[b, r], f[b, r], out[b, r])


def _arm_combine(u, f, out):
    # u (B, R, n, K), f (B, R, 2n) -> out (B, R, K)
    B, R = u.shape[0], u.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        arm_combine_row(u[b, r], f[b, r], out[b, r])


def _disarm_combine(phi, z, f, out):
    # phi (B, K), z (B, R, 2n, K), f (B, R, 2n) -> out (B, R, K)
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        disarm_combine_row(phi[b], z[b, r], f[b, r], out[b, r])


arm_pairs_kernel = kernel("binary_arm_pairs", [
    (arr(f, 2), arr(f, 4), arr(int64, 4)) for f in FLOATS])(_arm_pairs)
ar_combine_kernel = kernel("binary_ar_combine", [
    (arr(f, 4), arr(f, 3), arr(f, 3)) for f in FLOATS])(_ar_combine)
arm_combine_kernel = kernel("binary_arm_combine", [
    (arr(f, 4), arr(f, 3), arr(f, 3)) for f in FLOATS])(_arm_combine)
disarm_combine_kernel = kernel("binary_disarm_combine", [
    (arr(f, 2), arr(int64, 4), arr(f, 3), arr(f, 3)) for f in FLOATS])(_disarm_combine)


def pairs(phi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """ARM/DisARM queries on the device: phi ``(B, K)``, u ``(B, R, n, K)`` -> z ``(B, R, 2n, K)``."""
    B, R, n, K = u.shape
    d_z = cuda.device_array((B, R, 2 * n, K), dtype=np.int64)
    launch(arm_pairs_kernel, B * R * n, cuda.to_device(phi), cuda.to_device(u), d_z)
    return d_z.copy_to_host()


def _ar_queries(dist: str, phi: np.ndarray, noise: dict, opts: dict) -> Queries:
    u = noise["u"]
    return Queries(_cuda.sample(dist, phi, u), {"u": u})


def _pair_queries(with_u: bool):
    def queries(dist: str, phi: np.ndarray, noise: dict, opts: dict) -> Queries:
        u = noise["u"]
        return Queries(pairs(phi, u), {"u": u} if with_u else {})

    return queries


def _run(kern, queries: Queries, phi: np.ndarray, *args) -> np.ndarray:
    B, R = queries.z.shape[:2]
    d_out = cuda.device_array((B, R) + phi.shape[1:], dtype=phi.dtype)
    launch(kern, B * R, *[cuda.to_device(np.ascontiguousarray(a)) for a in args], d_out)
    return d_out.copy_to_host()


def _ar_combine_host(dist: str, phi: np.ndarray, queries: Queries, answers: Answers,
                     opts: dict) -> np.ndarray:
    check_query_count(queries, opts["n"], "AR")
    return _run(ar_combine_kernel, queries, phi, aux_u(queries, opts["n"], "AR"), answers.f_z)


def _arm_combine_host(dist: str, phi: np.ndarray, queries: Queries, answers: Answers,
                      opts: dict) -> np.ndarray:
    check_query_count(queries, 2 * opts["n"], "ARM")
    return _run(arm_combine_kernel, queries, phi, aux_u(queries, opts["n"], "ARM"), answers.f_z)


def _disarm_combine_host(dist: str, phi: np.ndarray, queries: Queries, answers: Answers,
                         opts: dict) -> np.ndarray:
    check_query_count(queries, 2 * opts["n"], "DisARM")
    return _run(disarm_combine_kernel, queries, phi, phi, queries.z, answers.f_z)


CUDA_AR = Backend(_ar_queries, _ar_combine_host)
CUDA_ARM = Backend(_pair_queries(True), _arm_combine_host)
CUDA_DISARM = Backend(_pair_queries(False), _disarm_combine_host)
