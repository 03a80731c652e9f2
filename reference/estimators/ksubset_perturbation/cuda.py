"""Numba CUDA kernels of the k-subset perturbation family (formulas in
:mod:`reference.estimators.ksubset_perturbation.numpy_reference`).

Same device functions as the CPU backend
(:mod:`reference.estimators.ksubset_perturbation.device`), one thread per work item in
grid-stride loops, explicit signatures registered for PTX compilation, preallocated outputs.
The host wrappers do the transfers; the perturbations ``theta + eps`` (SciPy's
``gammaincinv``) are computed on the host, as in the other backends. The DP scratch tables of
SIMPLE are allocated by the host, one per problem.
"""

from __future__ import annotations

import numpy as np
from numba import boolean, cuda, float64, int64

from reference import ksubset as ks
from reference._cuda import FLOATS, arr, kernel, launch
from reference.contract import Answers, Backend, Queries

from ..relaxation.cuda import P as RELAX
from ..relaxation.cuda import to_device
from ..relaxation.numpy_reference import imle_flags
from .device import build
from .numpy_reference import perturbed_scores

P = build(cuda.jit(device=True), RELAX)
imle_ksubset = P.imle_ksubset
ksubset_covariance = P.ksubset_covariance
ksubset_forward = P.ksubset_forward
ksubset_sample_row = P.ksubset_sample_row
simple_row = P.simple_row
top_k_row = P.top_k_row


def _top_k(pert, kk, z):
    # pert (B, M, n) -> z (B, M, n)
    B, M = pert.shape[0], pert.shape[1]
    for t in range(cuda.grid(1), B * M, cuda.gridsize(1)):
        b, m = t // M, t % M
        top_k_row(pert[b, m], kk, z[b, m])


def _imle_ksubset(theta, pert, z, dy, kk, lambda_, adaptive, beta, two_sided, divide, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        imle_ksubset(theta[b], pert[b, r], z[b, r], dy[b, r], kk, lambda_, adaptive, beta,
                       two_sided, divide, out[b, r])


def _ksubset_tables(theta, kk, L):
    for b in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        ksubset_forward(theta[b], kk, -1, L[b])


def _ksubset_sample(theta, L, kk, u, z):
    # u (B, M, n) -> z (B, M, n)
    B, M = u.shape[0], u.shape[1]
    for t in range(cuda.grid(1), B * M, cuda.gridsize(1)):
        b, m = t // M, t % M
        ksubset_sample_row(theta[b], L[b], kk, u[b, m], z[b, m])


def _ksubset_cov(theta, kk, L, Bk, mu, cond, cov):
    for b in range(cuda.grid(1), theta.shape[0], cuda.gridsize(1)):
        ksubset_covariance(theta[b], kk, L[b], Bk[b], mu[b], cond[b], cov[b])


def _simple(cov, dy, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        simple_row(cov[b], dy[b, r], out[b, r])



top_k_kernel = kernel("perturb_top_k", [
    (arr(f, 3), int64, arr(int64, 3)) for f in FLOATS
])(_top_k)
imle_ksubset_kernel = kernel("perturb_imle_ksubset", [
    (arr(f, 2), arr(f, 4), arr(int64, 4), arr(f, 4), int64, float64, boolean, float64, boolean, boolean,
    arr(f, 3)) for f in FLOATS
])(_imle_ksubset)
# the DP tables are float64 whatever the scores' dtype (the host passes float64 scores; the
# float32 signature is there for callers that keep float32 scores)
ksubset_tables_kernel = kernel("perturb_ksubset_tables", [
    (arr(f, 2), int64, arr(float64, 3)) for f in FLOATS
])(_ksubset_tables)
ksubset_sample_kernel = kernel("perturb_ksubset_sample", [
    (arr(float64, 2), arr(float64, 3), int64, arr(f, 3), arr(int64, 3)) for f in FLOATS
])(_ksubset_sample)
ksubset_cov_kernel = kernel("perturb_ksubset_cov", [
    (arr(f, 2), int64, arr(float64, 3), arr(float64, 3), arr(float64, 2), arr(float64, 2),
     arr(float64, 3)) for f in FLOATS
])(_ksubset_cov)
simple_kernel = kernel("perturb_simple", [
    (arr(f, 3), arr(f, 4), arr(f, 3)) for f in FLOATS
])(_simple)


# ------------------------------------------------------------------- host wrappers
def _imle_ksubset_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    pert = np.ascontiguousarray(perturbed_scores(params, noise, opts))  # (B, R, S, n)
    B, R, S, n = pert.shape
    d_z = cuda.device_array((B, R * S, n), dtype=np.int64)
    launch(top_k_kernel, B * R * S, to_device(pert.reshape(B, R * S, n)), int(opts["k"]), d_z)
    z = d_z.copy_to_host().reshape(pert.shape)
    return Queries(z, {"perturbed": pert}, z.astype(np.float64))


def _imle_ksubset_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                          opts: dict) -> np.ndarray:
    kk = ks.check_k(opts["k"], params.shape[-1])
    dy = answers.grad_y
    d_out = cuda.device_array(dy.shape[:2] + params.shape[1:], dtype=params.dtype)
    launch(imle_ksubset_kernel, dy.shape[0] * dy.shape[1], to_device(params),
           to_device(queries.aux["perturbed"]), to_device(queries.z), to_device(dy), kk, *imle_flags(opts),
           d_out)
    return d_out.copy_to_host()


def _simple_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    B, n = params.shape
    kk = ks.check_k(opts["k"], n)
    d_theta = to_device(params.astype(np.float64))
    d_L = cuda.device_array((B, n + 1, kk + 1), dtype=np.float64)
    launch(ksubset_tables_kernel, B, d_theta, kk, d_L)
    u = noise["u"]
    M = u.shape[1] * u.shape[2]
    d_z = cuda.device_array((B, M, n), dtype=np.int64)
    launch(ksubset_sample_kernel, B * M, d_theta, d_L, kk, to_device(u.reshape(B, M, n)), d_z)
    z = d_z.copy_to_host().reshape(u.shape)
    return Queries(z, {}, z.astype(np.float64))


def _simple_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                    opts: dict) -> np.ndarray:
    B, n = params.shape
    kk = ks.check_k(opts["k"], n)
    tables = [cuda.device_array((B, n + 1, kk + 1), dtype=np.float64) for _ in range(2)]
    vecs = [cuda.device_array((B, n), dtype=np.float64) for _ in range(2)]
    d_cov = cuda.device_array((B, n, n), dtype=np.float64)
    launch(ksubset_cov_kernel, B, to_device(params.astype(np.float64)), kk, *tables, *vecs, d_cov)
    cov = d_cov.copy_to_host().astype(params.dtype)
    dy = answers.grad_y
    d_out = cuda.device_array(dy.shape[:2] + (n,), dtype=params.dtype)
    launch(simple_kernel, dy.shape[0] * dy.shape[1], to_device(cov), to_device(dy), d_out)
    return d_out.copy_to_host()


CUDA_IMLE_KSUBSET = Backend(_imle_ksubset_queries, _imle_ksubset_combine)
CUDA_SIMPLE = Backend(_simple_queries, _simple_combine)
