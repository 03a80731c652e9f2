"""Numba CUDA kernels of the REBAR family: REBAR and RELAX (formulas in
:mod:`reference.estimators.rebar.numpy_reference`; device functions in
:mod:`reference.estimators.rebar.device`).

One thread per sample (queries) or per replicate (combine) in grid-stride loops, explicit
signatures registered for PTX compilation, preallocated outputs; the host wrappers do the
transfers. A user surrogate (RELAX) is evaluated on the host, in NumPy, between the kernels.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float64, int64

from reference import _cuda
from reference._cuda import FLOATS, arr, kernel, launch
from reference.contract import Answers, Backend, Queries

from .device import build
from .numpy_reference import control_answers

RB = build(cuda.jit(device=True), _cuda.CORE)
rebar_row = RB.rebar_row
rebar_combine = RB.rebar_combine
rebar_row_categorical = RB.rebar_row_categorical
rebar_combine_categorical = RB.rebar_combine_categorical


def _rows(phi, u, v, tau, b, points, dzt):
    B, R, n = u.shape[0], u.shape[1], u.shape[2]
    for t in range(cuda.grid(1), B * R * n, cuda.gridsize(1)):
        bb, r, i = t // (R * n), (t // n) % R, t % n
        rebar_row(phi[bb], u[bb, r, i], v[bb, r, i], tau, b[bb, r, i], points[bb, r, i],
                  points[bb, r, n + i], dzt[bb, r, i])


def _combine_kernel(phi, b, f, cvals, dc, points, dzt, eta, tau, out):
    B, R = b.shape[0], b.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        bb, r = t // R, t % R
        rebar_combine(phi[bb], b[bb, r], f[bb, r], cvals[bb, r], dc[bb, r], points[bb, r],
                      dzt[bb, r], eta, tau, out[bb, r])


def _rows_categorical(alpha, u, v, tau, b, points, wt):
    B, R, n = u.shape[0], u.shape[1], u.shape[2]
    for t in range(cuda.grid(1), B * R * n, cuda.gridsize(1)):
        bb, r, i = t // (R * n), (t // n) % R, t % n
        rebar_row_categorical(alpha[bb], u[bb, r, i], v[bb, r, i], tau, b[bb, r, i],
                              points[bb, r, i], points[bb, r, n + i], wt[bb, r, i])


def _combine_categorical(alpha, b, f, cvals, dc, points, wt, eta, tau, out):
    B, R = b.shape[0], b.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        bb, r = t // R, t % R
        rebar_combine_categorical(alpha[bb], b[bb, r], f[bb, r], cvals[bb, r], dc[bb, r],
                                  points[bb, r], wt[bb, r], eta, tau, out[bb, r])


rows_kernel = kernel("rebar_rows", [
    (arr(f, 2), arr(f, 4), arr(f, 4), float64, arr(int64, 4), arr(f, 4), arr(f, 4))
    for f in FLOATS])(_rows)
combine_kernel = kernel("rebar_combine", [
    (arr(f, 2), arr(int64, 4), arr(f, 3), arr(f, 3), arr(f, 4), arr(f, 4), arr(f, 4), float64,
     float64, arr(f, 3)) for f in FLOATS])(_combine_kernel)
rows_categorical_kernel = kernel("rebar_rows_categorical", [
    (arr(f, 3), arr(f, 5), arr(f, 5), float64, arr(int64, 4), arr(f, 5), arr(f, 5))
    for f in FLOATS])(_rows_categorical)
combine_categorical_kernel = kernel("rebar_combine_categorical", [
    (arr(f, 3), arr(int64, 4), arr(f, 3), arr(f, 3), arr(f, 5), arr(f, 5), arr(f, 5), float64,
     float64, arr(f, 4)) for f in FLOATS])(_combine_categorical)


def _queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    u, v = noise["u"], noise["v"]
    B, R, n, K = u.shape[:4]
    d_b = cuda.device_array((B, R, n, K), dtype=np.int64)
    d_points = cuda.device_array((B, R, 2 * n) + u.shape[3:], dtype=params.dtype)
    d_jac = cuda.device_array(u.shape, dtype=params.dtype)
    kern = rows_categorical_kernel if dist == "categorical" else rows_kernel
    launch(kern, B * R * n, cuda.to_device(params), cuda.to_device(u), cuda.to_device(v),
           float(opts["tau"]), d_b, d_points, d_jac)
    b, points, jac = d_b.copy_to_host(), d_points.copy_to_host(), d_jac.copy_to_host()
    aux = {"wt": jac} if dist == "categorical" else {"dzt": jac}
    if opts.get("surrogate") is None:
        return Queries(b, aux, points)
    return Queries(b, {**aux, "points": points})


def _combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
             opts: dict) -> np.ndarray:
    cvals, dc, points = control_answers(queries, answers, opts)
    B, R = queries.z.shape[:2]
    d_out = cuda.device_array((B, R) + params.shape[1:], dtype=params.dtype)
    key = "wt" if dist == "categorical" else "dzt"
    kern = combine_categorical_kernel if dist == "categorical" else combine_kernel
    args = [params, queries.z, answers.f_z, cvals, dc, points, queries.aux[key]]
    launch(kern, B * R, *[cuda.to_device(np.ascontiguousarray(a)) for a in args],
           float(opts["eta"]), float(opts["tau"]), d_out)
    return d_out.copy_to_host()


CUDA_REBAR = Backend(_queries, _combine)
CUDA_RELAX = Backend(_queries, _combine)
