"""Numba CPU kernels of the REBAR family: REBAR and RELAX (formulas in
:mod:`reference.estimators.rebar.numpy_reference`).

Kernels take batch-flattened C-contiguous arrays, write into preallocated outputs and return
nothing; each ``prange`` iteration writes only its own sample or replicate. A user surrogate
(RELAX) is evaluated on the host, in NumPy, between the two kernels.
No on-disk cache: the kernels call device functions of another file (see :mod:`reference._cpu`).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from reference import _cpu
from reference.contract import Answers, Backend, Queries

from .device import build
from .numpy_reference import control_answers

#: NumPy's error model (``_cpu.DEVICE``), as the binary family's: with Numba's default, the
#: division by ``tau`` in the categorical row's loop carries a ``ZeroDivisionError`` check that
#: keeps the loop scalar (that row: 131 ns per entry with the vectorizable exp and logs, 44
#: ns with this; ``tau > 0`` is validated on the host)
RB = build(_cpu.DEVICE, _cpu.CORE)
rebar_row = RB.rebar_row
rebar_combine = RB.rebar_combine
rebar_row_categorical = RB.rebar_row_categorical
rebar_combine_categorical = RB.rebar_combine_categorical


@_cpu.twin_kernel
def _rows(phi, u, v, tau, b, points, dzt):
    # phi (B, K), u, v (B, R, n, K) -> b, dzt (B, R, n, K), points (B, R, 2n, K)
    B, R, n = u.shape[0], u.shape[1], u.shape[2]
    for t in prange(B * R * n):
        bb, r, i = t // (R * n), (t // n) % R, t % n
        rebar_row(phi[bb], u[bb, r, i], v[bb, r, i], tau, b[bb, r, i], points[bb, r, i],
                  points[bb, r, n + i], dzt[bb, r, i])


@_cpu.twin_kernel
def _combine_kernel(phi, b, f, cvals, dc, points, dzt, eta, tau, out):
    B, R = b.shape[0], b.shape[1]
    for t in prange(B * R):
        bb, r = t // R, t % R
        rebar_combine(phi[bb], b[bb, r], f[bb, r], cvals[bb, r], dc[bb, r], points[bb, r],
                      dzt[bb, r], eta, tau, out[bb, r])


@_cpu.twin_kernel
def _rows_categorical(alpha, u, v, tau, b, points, wt):
    # alpha (B, K, C), u, v (B, R, n, K, C) -> b (B, R, n, K), wt (B, R, n, K, C),
    # points (B, R, 2n, K, C)
    B, R, n = u.shape[0], u.shape[1], u.shape[2]
    for t in prange(B * R * n):
        bb, r, i = t // (R * n), (t // n) % R, t % n
        rebar_row_categorical(alpha[bb], u[bb, r, i], v[bb, r, i], tau, b[bb, r, i],
                              points[bb, r, i], points[bb, r, n + i], wt[bb, r, i])


@_cpu.twin_kernel
def _combine_categorical(alpha, b, f, cvals, dc, points, wt, eta, tau, out):
    B, R = b.shape[0], b.shape[1]
    for t in prange(B * R):
        bb, r = t // R, t % R
        rebar_combine_categorical(alpha[bb], b[bb, r], f[bb, r], cvals[bb, r], dc[bb, r],
                                  points[bb, r], wt[bb, r], eta, tau, out[bb, r])


def _queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    u, v = noise["u"], noise["v"]
    B, R, n, K = u.shape[:4]
    b = np.empty((B, R, n, K), dtype=np.int64)
    points = np.empty((B, R, 2 * n) + u.shape[3:], dtype=params.dtype)
    jac = np.empty(u.shape, dtype=params.dtype)
    if dist == "categorical":
        _rows_categorical(params, u, v, float(opts["tau"]), b, points, jac)
        aux = {"wt": jac}
    else:
        _rows(params, u, v, float(opts["tau"]), b, points, jac)
        aux = {"dzt": jac}
    if opts.get("surrogate") is None:
        return Queries(b, aux, points)
    return Queries(b, {**aux, "points": points})


def _combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
             opts: dict) -> np.ndarray:
    cvals, dc, points = control_answers(queries, answers, opts)
    out = np.empty(queries.z.shape[:2] + params.shape[1:], dtype=params.dtype)
    kern, key = (_combine_categorical, "wt") if dist == "categorical" else (_combine_kernel, "dzt")
    kern(params, queries.z, answers.f_z, np.ascontiguousarray(cvals), np.ascontiguousarray(dc),
         np.ascontiguousarray(points), np.ascontiguousarray(queries.aux[key]),
         float(opts["eta"]), float(opts["tau"]), out)
    return out


CPU_REBAR = Backend(_queries, _combine)
CPU_RELAX = Backend(_queries, _combine)
