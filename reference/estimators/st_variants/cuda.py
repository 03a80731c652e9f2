"""Numba CUDA kernels of the straight-through variants (formulas in
:mod:`reference.estimators.st_variants.numpy_reference`).

Same device functions as the CPU backend (:mod:`reference.estimators.st_variants.device`), one
thread per work item in grid-stride loops, explicit signatures registered for PTX compilation,
preallocated outputs. The host wrappers do the transfers; the one-hot encoding of samples is
computed on the host, as in the other backends.
"""

from __future__ import annotations

import numpy as np
from numba import boolean, cuda, float64, int64

from reference import _cuda
from reference._cuda import FLOATS, arr, kernel, launch
from reference.contract import Answers, Backend, Queries

from .device import build
from .numpy_reference import gap_flags

P = build(cuda.jit(device=True), _cuda.CORE)
gr_categorical = P.gr_categorical
gr_perturb_row = P.gr_perturb_row
gst_categorical = P.gst_categorical
reinmax_categorical = P.reinmax_categorical


def _gr_perturb(alpha, z, u, x):
    # alpha (B, K, C), z (B, N, K), u (B, N, m, K, C) -> x (B, N, m, K, C)
    B, N, mm = u.shape[0], u.shape[1], u.shape[2]
    for t in range(cuda.grid(1), B * N * mm, cuda.gridsize(1)):
        b, r = t // (N * mm), t % (N * mm)
        i, j = r // mm, r % mm
        gr_perturb_row(alpha[b], z[b, i], u[b, i, j], x[b, i, j])


def _gr_cat(alpha, x, dy, tau, detach, w, out):
    # w (B * R, 3, C): each work item's scratch for the device function
    B, R = dy.shape[0], dy.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        gr_categorical(alpha[b], x[b, r], dy[b, r], tau, detach, w[t], out[b, r])


def _gst_cat(alpha, z, dy, tau, gap, adaptive, w, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        gst_categorical(alpha[b], z[b, r], dy[b, r], tau, gap, adaptive, w[t], out[b, r])


def _reinmax_cat(alpha, z, dy, tau, w, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        reinmax_categorical(alpha[b], z[b, r], dy[b, r], tau, w[t], out[b, r])


gr_perturb_kernel = kernel("st_variants_gr_perturb", [
    (arr(f, 3), arr(int64, 3), arr(f, 5), arr(f, 5)) for f in FLOATS
])(_gr_perturb)
gr_cat_kernel = kernel("st_variants_gr_cat", [
    (arr(f, 3), arr(f, 6), arr(f, 5), float64, boolean, arr(float64, 3), arr(f, 4))
    for f in FLOATS
])(_gr_cat)
gst_cat_kernel = kernel("st_variants_gst_cat", [
    (arr(f, 3), arr(int64, 4), arr(f, 5), float64, float64, boolean, arr(float64, 3),
     arr(f, 4)) for f in FLOATS
])(_gst_cat)
reinmax_cat_kernel = kernel("st_variants_reinmax_cat", [
    (arr(f, 3), arr(int64, 4), arr(f, 5), float64, arr(float64, 3), arr(f, 4))
    for f in FLOATS
])(_reinmax_cat)


# ------------------------------------------------------------------- host wrappers
def _onehot(z: np.ndarray, C: int) -> np.ndarray:
    return (z[..., None] == np.arange(C)).astype(np.float64)


def to_device(a: np.ndarray):
    return cuda.to_device(np.ascontiguousarray(a))


def _gr_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    u = noise["u"]  # (B, R, n, m, K, C)
    B, R, n, mm, K, C = u.shape
    z = _cuda.sample(dist, params, noise["u_z"])  # (B, R, n, K)
    d_x = cuda.device_array((B, R * n, mm, K, C), dtype=params.dtype)
    launch(gr_perturb_kernel, B * R * n * mm, to_device(params), to_device(z.reshape(B, R * n, K)),
           to_device(u.reshape(B, R * n, mm, K, C)), d_x)
    return Queries(z, {"perturbed": d_x.copy_to_host().reshape(u.shape)}, _onehot(z, C))


def _out(dy: np.ndarray, params: np.ndarray):
    return cuda.device_array(dy.shape[:2] + params.shape[1:], dtype=params.dtype)


def _scratch(dy: np.ndarray, params: np.ndarray, rows: int):
    # the combines' per-work-item scratch (B * R, rows, C), float64 (device.py)
    return cuda.device_array((dy.shape[0] * dy.shape[1], rows, params.shape[-1]))


def _gr_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                opts: dict) -> np.ndarray:
    dy = answers.grad_y
    d_out = _out(dy, params)
    launch(gr_cat_kernel, dy.shape[0] * dy.shape[1], to_device(params),
           to_device(queries.aux["perturbed"]), to_device(dy), float(opts["tau"]),
           bool(opts["detach_gumbels"]), _scratch(dy, params, 3), d_out)
    return d_out.copy_to_host()


def _sample_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = _cuda.sample(dist, params, noise["u"])
    return Queries(z, {}, _onehot(z, params.shape[-1]))


def _gst_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                 opts: dict) -> np.ndarray:
    dy = answers.grad_y
    d_out = _out(dy, params)
    launch(gst_cat_kernel, dy.shape[0] * dy.shape[1], to_device(params), to_device(queries.z),
           to_device(dy), float(opts["tau"]), *gap_flags(opts), _scratch(dy, params, 2), d_out)
    return d_out.copy_to_host()


def _reinmax_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                     opts: dict) -> np.ndarray:
    dy = answers.grad_y
    d_out = _out(dy, params)
    launch(reinmax_cat_kernel, dy.shape[0] * dy.shape[1], to_device(params), to_device(queries.z),
           to_device(dy), float(opts["tau"]), _scratch(dy, params, 2), d_out)
    return d_out.copy_to_host()


CUDA_GUMBEL_RAO = Backend(_gr_queries, _gr_combine)
CUDA_GST = Backend(_sample_queries, _gst_combine)
CUDA_REINMAX = Backend(_sample_queries, _reinmax_combine)
