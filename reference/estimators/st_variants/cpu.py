"""Numba CPU kernels of the straight-through variants (formulas in
:mod:`reference.estimators.st_variants.numpy_reference`).

Kernels take batch-flattened C-contiguous arrays, write into preallocated outputs and return
nothing; each ``prange`` iteration writes only its own slice. The one-hot points of the
samples are :func:`reference._cpu.onehot`'s. No on-disk cache: the kernels call device
functions of another file (see :mod:`reference._cpu`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from reference import _cpu
from reference.contract import Answers, Backend, Queries

from .device import build
from .numpy_reference import gap_flags

P = build(njit, _cpu.CORE)
gr_categorical = P.gr_categorical
gr_perturb_row = P.gr_perturb_row
gst_categorical = P.gst_categorical
reinmax_categorical = P.reinmax_categorical


# ------------------------------------------------------------------------ kernels
@_cpu.twin_kernel
def _gr_perturb(alpha, z, u, x):
    # alpha (B, K, C), z (B, N, K), u (B, N, m, K, C) -> x (B, N, m, K, C)
    B, N, mm = u.shape[0], u.shape[1], u.shape[2]
    for t in prange(B * N * mm):
        b, r = t // (N * mm), t % (N * mm)
        i, j = r // mm, r % mm
        gr_perturb_row(alpha[b], z[b, i], u[b, i, j], x[b, i, j])


@_cpu.twin_kernel
def _gr_cat(alpha, x, dy, tau, detach, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        w = np.empty((3, alpha.shape[2]))  # the device function's scratch, per task
        gr_categorical(alpha[b], x[b, r], dy[b, r], tau, detach, w, out[b, r])


@_cpu.twin_kernel
def _gst_cat(alpha, z, dy, tau, gap, adaptive, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        w = np.empty((2, alpha.shape[2]))
        gst_categorical(alpha[b], z[b, r], dy[b, r], tau, gap, adaptive, w, out[b, r])


@_cpu.twin_kernel
def _reinmax_cat(alpha, z, dy, tau, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        w = np.empty((2, alpha.shape[2]))
        reinmax_categorical(alpha[b], z[b, r], dy[b, r], tau, w, out[b, r])


# ------------------------------------------------------------------- host wrappers
def _gr_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    u = noise["u"]  # (B, R, n, m, K, C)
    B, R, n, mm, K, C = u.shape
    z = _cpu.sample(dist, params, noise["u_z"])  # (B, R, n, K)
    x = np.empty((B, R * n, mm, K, C), dtype=params.dtype)
    _gr_perturb(params, np.ascontiguousarray(z.reshape(B, R * n, K)),
                np.ascontiguousarray(u.reshape(B, R * n, mm, K, C)), x)
    return Queries(z, {"perturbed": x.reshape(u.shape)}, _cpu.onehot(z, C))


def _gr_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                opts: dict) -> np.ndarray:
    dy = answers.grad_y
    out = np.empty(dy.shape[:2] + params.shape[1:], dtype=params.dtype)
    _gr_cat(params, queries.aux["perturbed"], dy, float(opts["tau"]), bool(opts["detach_gumbels"]),
            out)
    return out


def _sample_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = _cpu.sample(dist, params, noise["u"])
    return Queries(z, {}, _cpu.onehot(z, params.shape[-1]))


def _gst_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                 opts: dict) -> np.ndarray:
    dy = answers.grad_y
    out = np.empty(dy.shape[:2] + params.shape[1:], dtype=params.dtype)
    _gst_cat(params, queries.z, dy, float(opts["tau"]), *gap_flags(opts), out)
    return out


def _reinmax_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                     opts: dict) -> np.ndarray:
    dy = answers.grad_y
    out = np.empty(dy.shape[:2] + params.shape[1:], dtype=params.dtype)
    _reinmax_cat(params, queries.z, dy, float(opts["tau"]), out)
    return out


CPU_GUMBEL_RAO = Backend(_gr_queries, _gr_combine)
CPU_GST = Backend(_sample_queries, _gst_combine)
CPU_REINMAX = Backend(_sample_queries, _reinmax_combine)
