"""Numba CPU kernels of the relaxation and perturbation family (formulas in
:mod:`reference.estimators.relaxation.numpy_reference`).

Kernels take batch-flattened C-contiguous arrays, write into preallocated outputs and return
nothing; each ``prange`` iteration writes only its own slice. Host-side step shared with the
NumPy reference: one-hot encoding of the samples.
No on-disk cache: the kernels call device functions of another file (see :mod:`reference._cpu`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from reference import _cpu
from reference.contract import Answers, Backend, Queries

from .device import build
from .numpy_reference import imle_flags

P = build(njit, _cpu.CORE)
gs_row_bernoulli = P.gs_row_bernoulli
gs_row_categorical = P.gs_row_categorical
imle_categorical = P.imle_categorical
jvp_bernoulli = P.jvp_bernoulli
jvp_categorical = P.jvp_categorical
perturb_row_categorical = P.perturb_row_categorical
st_bernoulli = P.st_bernoulli
st_categorical = P.st_categorical


# ------------------------------------------------------------------------ kernels
@_cpu.twin_kernel
def _st_cat(alpha, dy, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        st_categorical(alpha[b], dy[b, r], out[b, r])


@_cpu.twin_kernel
def _st_bern(phi, dy, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        st_bernoulli(phi[b], dy[b, r], out[b, r])


@_cpu.twin_kernel
def _gs_cat(alpha, u, tau, y, z):
    # u (B, M, K, C) -> y (B, M, K, C), z (B, M, K)
    B, M = u.shape[0], u.shape[1]
    for t in prange(B * M):
        b, m = t // M, t % M
        gs_row_categorical(alpha[b], u[b, m], tau, y[b, m], z[b, m])


@_cpu.twin_kernel
def _gs_bern(phi, u, tau, y, z):
    # u (B, M, K, 2) -> y (B, M, K), z (B, M, K)
    B, M = u.shape[0], u.shape[1]
    for t in prange(B * M):
        b, m = t // M, t % M
        gs_row_bernoulli(phi[b], u[b, m], tau, y[b, m], z[b, m])


@_cpu.twin_kernel
def _jvp_cat(y, dy, tau, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        jvp_categorical(y[b, r], dy[b, r], tau, out[b, r])


@_cpu.twin_kernel
def _jvp_bern(y, dy, tau, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        jvp_bernoulli(y[b, r], dy[b, r], tau, out[b, r])


@_cpu.twin_kernel
def _perturb_cat(alpha, u, pert, z):
    # u (B, M, K, C) -> pert (B, M, K, C), z (B, M, K)
    B, M = u.shape[0], u.shape[1]
    for t in prange(B * M):
        b, m = t // M, t % M
        perturb_row_categorical(alpha[b], u[b, m], pert[b, m], z[b, m])


@_cpu.twin_kernel
def _imle_cat(alpha, pert, z, dy, lambda_, adaptive, beta, two_sided, divide, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        imle_categorical(alpha[b], pert[b, r], z[b, r], dy[b, r], lambda_, adaptive, beta,
                           two_sided, divide, out[b, r])


# ------------------------------------------------------------------- host wrappers
def out_like(shape: tuple[int, ...], params: np.ndarray) -> np.ndarray:
    return np.empty(shape, dtype=params.dtype)


def _st_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = _cpu.sample(dist, params, noise["u"])
    y = z.astype(np.float64) if dist == "bernoulli" else _cpu.onehot(z, params.shape[-1])
    return Queries(z, {}, y)


def _st_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                opts: dict) -> np.ndarray:
    dy = answers.grad_y
    out = out_like(dy.shape[:2] + params.shape[1:], params)
    (_st_bern if dist == "bernoulli" else _st_cat)(params, dy, out)
    return out


def relaxed(dist: str, params: np.ndarray, u: np.ndarray, tau: float):
    """Gumbel-Softmax points ``y`` and hard samples ``z`` from ``u (B, R, n, K, C)``."""
    B, R, n, K, C = u.shape
    u4 = u.reshape(B, R * n, K, C)
    z = np.empty((B, R * n, K), dtype=np.int64)
    if dist == "bernoulli":
        y = np.empty((B, R * n, K), dtype=params.dtype)
        _gs_bern(params, u4, float(tau), y, z)
        return y.reshape(B, R, n, K), z.reshape(B, R, n, K)
    y = np.empty(u4.shape, dtype=params.dtype)
    _gs_cat(params, u4, float(tau), y, z)
    return y.reshape(u.shape), z.reshape(B, R, n, K)


def _gs_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    y, z = relaxed(dist, params, noise["u"], opts["tau"])
    return Queries(z, {}, y)


def _jvp(dist: str, params: np.ndarray, y: np.ndarray, dy: np.ndarray, tau: float) -> np.ndarray:
    out = out_like(dy.shape[:2] + params.shape[1:], params)
    (_jvp_bern if dist == "bernoulli" else _jvp_cat)(y, dy, float(tau), out)
    return out


def _gs_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                opts: dict) -> np.ndarray:
    return _jvp(dist, params, queries.y, answers.grad_y, opts["tau"])


def _stgs_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    y_soft, z = relaxed(dist, params, noise["u"], opts["tau"])
    y = z.astype(np.float64) if dist == "bernoulli" else _cpu.onehot(z, params.shape[-1])
    return Queries(z, {"y_soft": y_soft}, y)


def _stgs_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                  opts: dict) -> np.ndarray:
    return _jvp(dist, params, np.ascontiguousarray(queries.aux["y_soft"]), answers.grad_y,
                opts["tau"])


def _imle_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    u = noise["u"]  # (B, R, S, K, C)
    B, R, S, K, C = u.shape
    pert = np.empty((B, R * S, K, C), dtype=params.dtype)
    z = np.empty((B, R * S, K), dtype=np.int64)
    _perturb_cat(params, u.reshape(B, R * S, K, C), pert, z)
    z = z.reshape(B, R, S, K)
    return Queries(z, {"perturbed": pert.reshape(u.shape)}, _cpu.onehot(z, C))


def _imle_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                  opts: dict) -> np.ndarray:
    dy = answers.grad_y
    out = out_like(dy.shape[:2] + params.shape[1:], params)
    _imle_cat(params, queries.aux["perturbed"], queries.z, dy, *imle_flags(opts), out)
    return out


CPU_STRAIGHT_THROUGH = Backend(_st_queries, _st_combine)
CPU_GUMBEL_SOFTMAX = Backend(_gs_queries, _gs_combine)
CPU_ST_GUMBEL_SOFTMAX = Backend(_stgs_queries, _stgs_combine)
CPU_IMLE = Backend(_imle_queries, _imle_combine)
