"""Numba CUDA kernels for the categorical swap family (formulas and layouts in
:mod:`reference.estimators.swap.numpy_reference`).

One thread per replicate (grid-stride loops), explicit signatures registered for PTX
compilation, preallocated outputs (and the scratch ``pi``); the host wrappers do the
transfers. The device functions are those of :mod:`reference.estimators.swap.device`, compiled with
``cuda.jit(device=True)``.
"""

from __future__ import annotations

import numpy as np
from numba import boolean, cuda, float64, int64

from reference import _cuda
from reference._cuda import FLOATS, arr, kernel, launch
from reference.contract import Backend, Queries

from .device import build
from .numpy_reference import check_logit_spread, check_swap_queries

CORE_SWAP = build(cuda.jit(device=True), _cuda.CORE)
row_weights = CORE_SWAP.row_weights
ars_queries_row = CORE_SWAP.ars_queries_row
arsm_queries_row = CORE_SWAP.arsm_queries_row
ars_combine_row = CORE_SWAP.ars_combine_row
arsm_combine_row = CORE_SWAP.arsm_combine_row


def _row_weights(alpha, w):
    # alpha (B, K, C) -> w (B, K, C); one thread per row
    B, K = alpha.shape[0], alpha.shape[1]
    for t in range(cuda.grid(1), B * K, cuda.gridsize(1)):
        b, k = t // K, t % K
        row_weights(alpha[b, k], w[b, k])


def _ars_queries(u_pi, u_j, u_l, plus, w, pi, z, weight):
    # u_pi (B, R, K, C), u_j (B, R), u_l (B, R, K or 1), w (B, K, C), pi scratch (B, R, K, C)
    # -> z (B, R, C, K), weight (B, R, K); one thread per replicate
    B, R = u_pi.shape[0], u_pi.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        ars_queries_row(u_pi[b, r], u_j[b, r], u_l[b, r], plus, w[b], pi[b, r], z[b, r],
                        weight[b, r])


def _arsm_queries(u_pi, u_l, mode, w, pi, z, slot, n_distinct, weight):
    # u_pi (B, R, K, C), u_l (B, R, K or 1, C or 1), w (B, K, C), pi scratch (B, R, K, C)
    # -> z (B, R, M, K), slot (B, R, C, C), n_distinct (B, R), weight (B, R, K, C)
    B, R = u_pi.shape[0], u_pi.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        n_distinct[b, r] = arsm_queries_row(u_pi[b, r], u_l[b, r], mode, w[b], pi[b, r], z[b, r],
                                            slot[b, r], weight[b, r])


def _ars_combine(f, weight, out):
    # f (B, R, C), weight (B, R, K) -> out (B, R, K, C)
    B, R = f.shape[0], f.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        ars_combine_row(f[b, r], weight[b, r], out[b, r])


def _arsm_combine(f, slot, weight, out):
    # f (B, R, M), slot (B, R, C, C), weight (B, R, K, C) -> out (B, R, K, C)
    B, R = f.shape[0], f.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        arsm_combine_row(f[b, r], slot[b, r], weight[b, r], out[b, r])


row_weights_kernel = kernel("swap_row_weights", [
    (arr(f, 3), arr(float64, 3)) for f in FLOATS])(_row_weights)
ars_queries_kernel = kernel("swap_ars_queries", [
    (arr(f, 4), arr(f, 2), arr(f, 3), boolean, arr(float64, 3), arr(float64, 4), arr(int64, 4),
     arr(f, 3)) for f in FLOATS])(_ars_queries)
arsm_queries_kernel = kernel("swap_arsm_queries", [
    (arr(f, 4), arr(f, 4), int64, arr(float64, 3), arr(float64, 4), arr(int64, 4),
     arr(int64, 4), arr(int64, 2), arr(f, 4)) for f in FLOATS])(_arsm_queries)
ars_combine_kernel = kernel("swap_ars_combine", [
    (arr(f, 3), arr(f, 3), arr(f, 4)) for f in FLOATS])(_ars_combine)
arsm_combine_kernel = kernel("swap_arsm_combine", [
    (arr(f, 3), arr(int64, 4), arr(f, 4), arr(f, 4)) for f in FLOATS])(_arsm_combine)


def _device_weights(alpha: np.ndarray):
    B, K = alpha.shape[:2]
    d_w = cuda.device_array(alpha.shape, dtype=np.float64)
    launch(row_weights_kernel, B * K, cuda.to_device(alpha), d_w)
    return d_w


def _ars_q(plus: bool):
    def queries(dist: str, alpha: np.ndarray, noise: dict, opts: dict) -> Queries:
        check_logit_spread(alpha)
        u_pi = noise["u_pi"]
        B, R, K, C = u_pi.shape
        u_l = noise["u_l"] if plus else np.zeros((B, R, 1), dtype=u_pi.dtype)
        d_z = cuda.device_array((B, R, C, K), dtype=np.int64)
        d_weight = cuda.device_array((B, R, K), dtype=alpha.dtype)
        d_pi = cuda.device_array((B, R, K, C), dtype=np.float64)
        launch(ars_queries_kernel, B * R, cuda.to_device(u_pi), cuda.to_device(noise["u_j"]),
               cuda.to_device(np.ascontiguousarray(u_l)), plus, _device_weights(alpha), d_pi,
               d_z, d_weight)
        return Queries(d_z.copy_to_host(), {"weight": d_weight.copy_to_host()})

    return queries


def _arsm_q(mode: int):
    def queries(dist: str, alpha: np.ndarray, noise: dict, opts: dict) -> Queries:
        check_logit_spread(alpha)
        u_pi = noise["u_pi"]
        B, R, K, C = u_pi.shape
        M = C * (C - 1) // 2 + 1
        u_l = noise["u_l"] if mode == 2 else np.zeros((B, R, 1, 1), dtype=u_pi.dtype)
        d_z = cuda.device_array((B, R, M, K), dtype=np.int64)
        d_slot = cuda.device_array((B, R, C, C), dtype=np.int64)
        d_n = cuda.device_array((B, R), dtype=np.int64)
        d_weight = cuda.device_array((B, R, K, C), dtype=alpha.dtype)
        d_pi = cuda.device_array((B, R, K, C), dtype=np.float64)
        launch(arsm_queries_kernel, B * R, cuda.to_device(u_pi),
               cuda.to_device(np.ascontiguousarray(u_l)), mode, _device_weights(alpha), d_pi,
               d_z, d_slot, d_n, d_weight)
        return Queries(d_z.copy_to_host(), {"slot": d_slot.copy_to_host(),
                                            "n_distinct": d_n.copy_to_host(),
                                            "weight": d_weight.copy_to_host()})

    return queries


def _ars_c(dist: str, alpha: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    check_swap_queries(queries, alpha.shape, ars=True)
    f, weight = answers.f_z, queries.aux["weight"]
    d_out = cuda.device_array(f.shape[:2] + alpha.shape[1:], dtype=alpha.dtype)
    launch(ars_combine_kernel, f.shape[0] * f.shape[1], cuda.to_device(f),
           cuda.to_device(weight), d_out)
    return d_out.copy_to_host()


def _arsm_c(dist: str, alpha: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    check_swap_queries(queries, alpha.shape, ars=False)
    f, slot, weight = answers.f_z, queries.aux["slot"], queries.aux["weight"]
    d_out = cuda.device_array(f.shape[:2] + alpha.shape[1:], dtype=alpha.dtype)
    launch(arsm_combine_kernel, f.shape[0] * f.shape[1], cuda.to_device(f),
           cuda.to_device(np.ascontiguousarray(slot, dtype=np.int64)), cuda.to_device(weight),
           d_out)
    return d_out.copy_to_host()


CUDA_ARS = Backend(_ars_q(False), _ars_c)
CUDA_ARS_PLUS = Backend(_ars_q(True), _ars_c)
CUDA_ARSM = Backend(_arsm_q(0), _arsm_c)
CUDA_ARSM_PLUS = Backend(_arsm_q(1), _arsm_c)
CUDA_ARSM_PLUS_CE = Backend(_arsm_q(2), _arsm_c)
