"""Numba CUDA kernels of the relaxation and perturbation family (formulas in
:mod:`reference.perturbation` and :mod:`reference.perturbation_ksubset`).

Same device functions as the CPU backend (:mod:`reference._core_perturb`), one thread per work
item in grid-stride loops, explicit signatures registered for PTX compilation, preallocated
outputs. The host wrappers do the transfers; the one-hot encoding of samples and the k-subset
perturbations ``theta + eps`` (SciPy's ``gammaincinv``) are computed on the host, as in the
other backends. The DP scratch tables of SIMPLE are allocated by the host, one per problem.
"""

from __future__ import annotations

import numpy as np
from numba import boolean, cuda, float64, int64

from . import _cuda
from . import ksubset as ks
from ._core_perturb import build
from ._cuda import FLOATS, arr, kernel, launch
from .contract import Answers, Backend, Queries
from .perturbation_ksubset import perturbed_scores

P = build(cuda.jit(device=True), _cuda.CORE)
gs_row_bernoulli = P.gs_row_bernoulli
gs_row_categorical = P.gs_row_categorical
imle_categorical = P.imle_categorical
imle_ksubset = P.imle_ksubset
jvp_bernoulli = P.jvp_bernoulli
jvp_categorical = P.jvp_categorical
ksubset_covariance = P.ksubset_covariance
ksubset_forward = P.ksubset_forward
ksubset_sample_row = P.ksubset_sample_row
perturb_row_categorical = P.perturb_row_categorical
simple_row = P.simple_row
st_bernoulli = P.st_bernoulli
st_categorical = P.st_categorical
top_k_row = P.top_k_row


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
def _onehot(z: np.ndarray, C: int) -> np.ndarray:
    return (z[..., None] == np.arange(C)).astype(np.float64)


def _dev(a: np.ndarray):
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
    launch(kern, dy.shape[0] * dy.shape[1], _dev(params), _dev(dy), d_out)
    return d_out.copy_to_host()


def relaxed(dist: str, params: np.ndarray, u: np.ndarray, tau: float):
    """Gumbel-Softmax points ``y`` and hard samples ``z`` from ``u (B, R, n, K, C)``."""
    B, R, n, K, C = u.shape
    u4 = u.reshape(B, R * n, K, C)
    d_z = cuda.device_array((B, R * n, K), dtype=np.int64)
    if dist == "bernoulli":
        d_y = cuda.device_array((B, R * n, K), dtype=params.dtype)
        launch(gs_bern_kernel, B * R * n, _dev(params), _dev(u4), float(tau), d_y, d_z)
        return d_y.copy_to_host().reshape(B, R, n, K), d_z.copy_to_host().reshape(B, R, n, K)
    d_y = cuda.device_array(u4.shape, dtype=params.dtype)
    launch(gs_cat_kernel, B * R * n, _dev(params), _dev(u4), float(tau), d_y, d_z)
    return d_y.copy_to_host().reshape(u.shape), d_z.copy_to_host().reshape(B, R, n, K)


def _gs_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    y, z = relaxed(dist, params, noise["u"], opts["tau"])
    return Queries(z, {}, y)


def _jvp(dist: str, params: np.ndarray, y: np.ndarray, dy: np.ndarray, tau: float) -> np.ndarray:
    d_out = cuda.device_array(dy.shape[:2] + params.shape[1:], dtype=params.dtype)
    kern = jvp_bern_kernel if dist == "bernoulli" else jvp_cat_kernel
    launch(kern, dy.shape[0] * dy.shape[1], _dev(y.astype(params.dtype)), _dev(dy), float(tau), d_out)
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
    launch(perturb_cat_kernel, B * R * S, _dev(params), _dev(u.reshape(B, R * S, K, C)), d_pert, d_z)
    z = d_z.copy_to_host().reshape(B, R, S, K)
    return Queries(z, {"perturbed": d_pert.copy_to_host().reshape(u.shape)}, _onehot(z, C))


def _flags(opts: dict) -> tuple:
    return (float(opts["lambda_"]), bool(opts.get("adaptive", False)), float(opts.get("beta", 1.0)),
            opts.get("target", "one_sided") == "two_sided", bool(opts.get("divide_by_lambda", True)))


def _imle_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                  opts: dict) -> np.ndarray:
    dy = answers.grad_y
    d_out = cuda.device_array(dy.shape[:2] + params.shape[1:], dtype=params.dtype)
    launch(imle_cat_kernel, dy.shape[0] * dy.shape[1], _dev(params), _dev(queries.aux["perturbed"]),
           _dev(queries.z), _dev(dy), *_flags(opts), d_out)
    return d_out.copy_to_host()


def _imle_ksubset_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    pert = np.ascontiguousarray(perturbed_scores(params, noise, opts))  # (B, R, S, n)
    B, R, S, n = pert.shape
    d_z = cuda.device_array((B, R * S, n), dtype=np.int64)
    launch(top_k_kernel, B * R * S, _dev(pert.reshape(B, R * S, n)), int(opts["k"]), d_z)
    z = d_z.copy_to_host().reshape(pert.shape)
    return Queries(z, {"perturbed": pert}, z.astype(np.float64))


def _imle_ksubset_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                          opts: dict) -> np.ndarray:
    kk = ks.check_k(opts["k"], params.shape[-1])
    dy = answers.grad_y
    d_out = cuda.device_array(dy.shape[:2] + params.shape[1:], dtype=params.dtype)
    launch(imle_ksubset_kernel, dy.shape[0] * dy.shape[1], _dev(params),
           _dev(queries.aux["perturbed"]), _dev(queries.z), _dev(dy), kk, *_flags(opts), d_out)
    return d_out.copy_to_host()


def _simple_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    B, n = params.shape
    kk = ks.check_k(opts["k"], n)
    d_theta = _dev(params.astype(np.float64))
    d_L = cuda.device_array((B, n + 1, kk + 1), dtype=np.float64)
    launch(ksubset_tables_kernel, B, d_theta, kk, d_L)
    u = noise["u"]
    M = u.shape[1] * u.shape[2]
    d_z = cuda.device_array((B, M, n), dtype=np.int64)
    launch(ksubset_sample_kernel, B * M, d_theta, d_L, kk, _dev(u.reshape(B, M, n)), d_z)
    z = d_z.copy_to_host().reshape(u.shape)
    return Queries(z, {}, z.astype(np.float64))


def _simple_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                    opts: dict) -> np.ndarray:
    B, n = params.shape
    kk = ks.check_k(opts["k"], n)
    tables = [cuda.device_array((B, n + 1, kk + 1), dtype=np.float64) for _ in range(2)]
    vecs = [cuda.device_array((B, n), dtype=np.float64) for _ in range(2)]
    d_cov = cuda.device_array((B, n, n), dtype=np.float64)
    launch(ksubset_cov_kernel, B, _dev(params.astype(np.float64)), kk, *tables, *vecs, d_cov)
    cov = d_cov.copy_to_host().astype(params.dtype)
    dy = answers.grad_y
    d_out = cuda.device_array(dy.shape[:2] + (n,), dtype=params.dtype)
    launch(simple_kernel, dy.shape[0] * dy.shape[1], _dev(cov), _dev(dy), d_out)
    return d_out.copy_to_host()


CUDA_STRAIGHT_THROUGH = Backend(_st_queries, _st_combine)
CUDA_GUMBEL_SOFTMAX = Backend(_gs_queries, _gs_combine)
CUDA_ST_GUMBEL_SOFTMAX = Backend(_stgs_queries, _stgs_combine)
CUDA_IMLE = Backend(_imle_queries, _imle_combine)
CUDA_IMLE_KSUBSET = Backend(_imle_ksubset_queries, _imle_ksubset_combine)
CUDA_SIMPLE = Backend(_simple_queries, _simple_combine)
