"""Numba CUDA kernels of the relaxation and perturbation family (formulas in
:mod:`reference.estimators.relaxation.numpy_reference`).

Same device functions as the CPU backend (:mod:`reference.estimators.relaxation.device`), one
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
from .numpy_reference import imle_flags

P = build(cuda.jit(device=True), _cuda.CORE)
gs_row_bernoulli = P.gs_row_bernoulli
gs_row_categorical = P.gs_row_categorical
imle_categorical = P.imle_categorical
jvp_bernoulli = P.jvp_bernoulli
jvp_categorical = P.jvp_categorical
perturb_row_categorical = P.perturb_row_categorical
st_bernoulli = P.st_bernoulli
st_categorical = P.st_categorical


def _st_cat(alpha, dy, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        st_categorical(alpha[b], dy[b, r], out[b, r])


def _st_bern(phi, dy, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        st_bernoulli(phi[b], dy[b, r], out[b, r])


def _gs_cat(alpha, u, tau, y, z):
    # u (B, M, K, C) -> y (B, M, K, C), z (B, M, K)
    B, M = u.shape[0], u.shape[1]
    for t in range(cuda.grid(1), B * M, cuda.gridsize(1)):
        b, m = t // M, t % M
        gs_row_categorical(alpha[b], u[b, m], tau, y[b, m], z[b, m])


def _gs_bern(phi, u, tau, y, z):
    # u (B, M, K, 2) -> y (B, M, K), z (B, M, K)
    B, M = u.shape[0], u.shape[1]
    for t in range(cuda.grid(1), B * M, cuda.gridsize(1)):
        b, m = t // M, t % M
        gs_row_bernoulli(phi[b], u[b, m], tau, y[b, m], z[b, m])


def _jvp_cat(y, dy, tau, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        jvp_categorical(y[b, r], dy[b, r], tau, out[b, r])


def _jvp_bern(y, dy, tau, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        jvp_bernoulli(y[b, r], dy[b, r], tau, out[b, r])


def _perturb_cat(alpha, u, pert, z):
    # u (B, M, K, C) -> pert (B, M, K, C), z (B, M, K)
    B, M = u.shape[0], u.shape[1]
    for t in range(cuda.grid(1), B * M, cuda.gridsize(1)):
        b, m = t // M, t % M
        perturb_row_categorical(alpha[b], u[b, m], pert[b, m], z[b, m])


def _imle_cat(alpha, pert, z, dy, lambda_, adaptive, beta, two_sided, divide, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        imle_categorical(alpha[b], pert[b, r], z[b, r], dy[b, r], lambda_, adaptive, beta,
                           two_sided, divide, out[b, r])


st_cat_kernel = kernel("perturb_st_cat", [
    (arr(f, 3), arr(f, 5), arr(f, 4)) for f in FLOATS
])(_st_cat)
st_bern_kernel = kernel("perturb_st_bern", [
    (arr(f, 2), arr(f, 4), arr(f, 3)) for f in FLOATS
])(_st_bern)
gs_cat_kernel = kernel("perturb_gs_cat", [
    (arr(f, 3), arr(f, 4), float64, arr(f, 4), arr(int64, 3)) for f in FLOATS
])(_gs_cat)
gs_bern_kernel = kernel("perturb_gs_bern", [
    (arr(f, 2), arr(f, 4), float64, arr(f, 3), arr(int64, 3)) for f in FLOATS
])(_gs_bern)
jvp_cat_kernel = kernel("perturb_jvp_cat", [
    (arr(f, 5), arr(f, 5), float64, arr(f, 4)) for f in FLOATS
])(_jvp_cat)
jvp_bern_kernel = kernel("perturb_jvp_bern", [
    (arr(f, 4), arr(f, 4), float64, arr(f, 3)) for f in FLOATS
])(_jvp_bern)
perturb_cat_kernel = kernel("perturb_perturb_cat", [
    (arr(f, 3), arr(f, 4), arr(f, 4), arr(int64, 3)) for f in FLOATS
])(_perturb_cat)
imle_cat_kernel = kernel("perturb_imle_cat", [
    (arr(f, 3), arr(f, 5), arr(int64, 4), arr(f, 5), float64, boolean, float64, boolean, boolean, arr(f,
    4)) for f in FLOATS
])(_imle_cat)

# ------------------------------------------------------------------- host wrappers
def _onehot(z: np.ndarray, C: int) -> np.ndarray:
    return (z[..., None] == np.arange(C)).astype(np.float64)


def to_device(a: np.ndarray):
    return cuda.to_device(np.ascontiguousarray(a))


def _st_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = _cuda.sample(dist, params, noise["u"])
    y = z.astype(np.float64) if dist == "bernoulli" else _onehot(z, params.shape[-1])
    return Queries(z, {}, y)


def _st_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                opts: dict) -> np.ndarray:
    dy = answers.grad_y
    d_out = cuda.device_array(dy.shape[:2] + params.shape[1:], dtype=params.dtype)
    kern = st_bern_kernel if dist == "bernoulli" else st_cat_kernel
    launch(kern, dy.shape[0] * dy.shape[1], to_device(params), to_device(dy), d_out)
    return d_out.copy_to_host()


def relaxed(dist: str, params: np.ndarray, u: np.ndarray, tau: float):
    """Gumbel-Softmax points ``y`` and hard samples ``z`` from ``u (B, R, n, K, C)``."""
    B, R, n, K, C = u.shape
    u4 = u.reshape(B, R * n, K, C)
    d_z = cuda.device_array((B, R * n, K), dtype=np.int64)
    if dist == "bernoulli":
        d_y = cuda.device_array((B, R * n, K), dtype=params.dtype)
        launch(gs_bern_kernel, B * R * n, to_device(params), to_device(u4), float(tau), d_y, d_z)
        return d_y.copy_to_host().reshape(B, R, n, K), d_z.copy_to_host().reshape(B, R, n, K)
    d_y = cuda.device_array(u4.shape, dtype=params.dtype)
    launch(gs_cat_kernel, B * R * n, to_device(params), to_device(u4), float(tau), d_y, d_z)
    return d_y.copy_to_host().reshape(u.shape), d_z.copy_to_host().reshape(B, R, n, K)


def _gs_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    y, z = relaxed(dist, params, noise["u"], opts["tau"])
    return Queries(z, {}, y)


def _jvp(dist: str, params: np.ndarray, y: np.ndarray, dy: np.ndarray, tau: float) -> np.ndarray:
    d_out = cuda.device_array(dy.shape[:2] + params.shape[1:], dtype=params.dtype)
    kern = jvp_bern_kernel if dist == "bernoulli" else jvp_cat_kernel
    launch(kern, dy.shape[0] * dy.shape[1], to_device(y.astype(params.dtype)), to_device(dy), float(tau),
           d_out)
    return d_out.copy_to_host()


def _gs_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                opts: dict) -> np.ndarray:
    return _jvp(dist, params, queries.y, answers.grad_y, opts["tau"])


def _stgs_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    y_soft, z = relaxed(dist, params, noise["u"], opts["tau"])
    y = z.astype(np.float64) if dist == "bernoulli" else _onehot(z, params.shape[-1])
    return Queries(z, {"y_soft": y_soft}, y)


def _stgs_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                  opts: dict) -> np.ndarray:
    return _jvp(dist, params, queries.aux["y_soft"], answers.grad_y, opts["tau"])


def _imle_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    u = noise["u"]  # (B, R, S, K, C)
    B, R, S, K, C = u.shape
    d_pert = cuda.device_array((B, R * S, K, C), dtype=params.dtype)
    d_z = cuda.device_array((B, R * S, K), dtype=np.int64)
    launch(perturb_cat_kernel, B * R * S, to_device(params), to_device(u.reshape(B, R * S, K, C)), d_pert,
           d_z)
    z = d_z.copy_to_host().reshape(B, R, S, K)
    return Queries(z, {"perturbed": d_pert.copy_to_host().reshape(u.shape)}, _onehot(z, C))


def _imle_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                  opts: dict) -> np.ndarray:
    dy = answers.grad_y
    d_out = cuda.device_array(dy.shape[:2] + params.shape[1:], dtype=params.dtype)
    launch(imle_cat_kernel, dy.shape[0] * dy.shape[1], to_device(params), to_device(queries.aux["perturbed"]),
           to_device(queries.z), to_device(dy), *imle_flags(opts), d_out)
    return d_out.copy_to_host()


CUDA_STRAIGHT_THROUGH = Backend(_st_queries, _st_combine)
CUDA_GUMBEL_SOFTMAX = Backend(_gs_queries, _gs_combine)
CUDA_ST_GUMBEL_SOFTMAX = Backend(_stgs_queries, _stgs_combine)
CUDA_IMLE = Backend(_imle_queries, _imle_combine)
