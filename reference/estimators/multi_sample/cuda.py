"""Numba CUDA kernels for VIMCO, the unordered set estimator and CARMS (formulas in
:mod:`reference.estimators.multi_sample.numpy_reference`; device functions in
:mod:`reference.estimators.multi_sample.device`). One thread per replicate; scratch arrays
are allocated on the device by the host wrappers (no local arrays of a fixed size)."""

from __future__ import annotations

import numpy as np
from numba import cuda, float64, int64

from reference import _cuda
from reference._cuda import FLOATS, arr, kernel, launch
from reference.contract import Backend, Queries

from .device import build
from .numpy_reference import all_subsets, category_log_probs, logit_table, n_categories

MS = build(cuda.jit(device=True), _cuda.CORE)
vimco_signals = MS.vimco_signals
weighted_scores_bernoulli = MS.weighted_scores_bernoulli
weighted_scores_categorical = MS.weighted_scores_categorical
gumbel_top = MS.gumbel_top
indices_to_configs = MS.indices_to_configs
unord_row = MS.unord_row
joint_table = MS.joint_table
inclusion = MS.inclusion
wor_weights = MS.wor_weights
carms_ratio_row = MS.carms_ratio_row
carms_sample_row = MS.carms_sample_row
carms_grad_bernoulli = MS.carms_grad_bernoulli
carms_grad_categorical = MS.carms_grad_categorical


def _vimco_bernoulli(phi, z, f, w, out):
    # phi (B, K), z (B, R, n, K), f (B, R, n), scratch w (B, R, n) -> out (B, R, K)
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        vimco_signals(f[b, r], w[b, r])
        weighted_scores_bernoulli(phi[b], z[b, r], w[b, r], out[b, r])


def _vimco_categorical(alpha, z, f, w, out):
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        vimco_signals(f[b, r], w[b, r])
        weighted_scores_categorical(alpha[b], z[b, r], w[b, r], out[b, r])


def _joint_tables(log_p, lq):
    # log_p (B, K, C) -> lq (B, C**K); one thread per batch element
    for b in range(cuda.grid(1), log_p.shape[0], cuda.gridsize(1)):
        joint_table(log_p[b], lq[b])


def _unord_queries(log_q, u, C, g, idx, val, z):
    # log_q (B, N) joint table, u (B, R, N) -> idx, val (B, R, n), z (B, R, n, K); g (B * R,
    # N) float64 scratch, a row per work item
    B, R = u.shape[0], u.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        gumbel_top(log_q[b], u[b, r], idx[b, r], val[b, r], g[t])
        indices_to_configs(idx[b, r], C, z[b, r])


def _unord_bernoulli(phi, log_q, z, f, lp, logG, w, out):
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        unord_row(log_q[b], z[b, r], f[b, r], 2, lp[b, r], logG[b, r], w[b, r])
        weighted_scores_bernoulli(phi[b], z[b, r], w[b, r], out[b, r])


def _unord_categorical(alpha, log_q, z, f, lp, logG, w, out):
    B, R = z.shape[0], z.shape[1]
    C = alpha.shape[2]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        unord_row(log_q[b], z[b, r], f[b, r], C, lp[b, r], logG[b, r], w[b, r])
        weighted_scores_categorical(alpha[b], z[b, r], w[b, r], out[b, r])


def _wor_tables(lq, sets, logps, logpi, acc, lp, logG, top, E):
    # one thread per batch element: log pi of every configuration, from log q
    for b in range(cuda.grid(1), lq.shape[0], cuda.gridsize(1)):
        inclusion(lq[b], sets, logps[b], logpi[b], acc[b], lp[b], logG[b], top[b], E[b])


def _wor_bernoulli(phi, lq, logpi, z, f, baseline, w, out):
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        wor_weights(lq[b], logpi[b], z[b, r], f[b, r], baseline, 2, w[b, r])
        weighted_scores_bernoulli(phi[b], z[b, r], w[b, r], out[b, r])


def _wor_categorical(alpha, lq, logpi, z, f, baseline, w, out):
    B, R = z.shape[0], z.shape[1]
    C = alpha.shape[2]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        wor_weights(lq[b], logpi[b], z[b, r], f[b, r], baseline, C, w[b, r])
        weighted_scores_categorical(alpha[b], z[b, r], w[b, r], out[b, r])


joint_tables_kernel = kernel("joint_tables", [
    (arr(float64, 3), arr(float64, 2))])(_joint_tables)
vimco_bernoulli_kernel = kernel("vimco_bernoulli", [
    (arr(f, 2), arr(int64, 4), arr(f, 3), arr(float64, 3), arr(f, 3)) for f in FLOATS
])(_vimco_bernoulli)
vimco_categorical_kernel = kernel("vimco_categorical", [
    (arr(f, 3), arr(int64, 4), arr(f, 3), arr(float64, 3), arr(f, 4)) for f in FLOATS
])(_vimco_categorical)
unord_queries_kernel = kernel("unord_queries", [
    (arr(float64, 2), arr(f, 3), int64, arr(float64, 2), arr(int64, 3), arr(float64, 3),
     arr(int64, 4)) for f in FLOATS
])(_unord_queries)
unord_bernoulli_kernel = kernel("unord_bernoulli", [
    (arr(f, 2), arr(float64, 2), arr(int64, 4), arr(f, 3), arr(float64, 3), arr(float64, 3),
     arr(float64, 3), arr(f, 3)) for f in FLOATS
])(_unord_bernoulli)
unord_categorical_kernel = kernel("unord_categorical", [
    (arr(f, 3), arr(float64, 2), arr(int64, 4), arr(f, 3), arr(float64, 3), arr(float64, 3),
     arr(float64, 3), arr(f, 4)) for f in FLOATS
])(_unord_categorical)


wor_tables_kernel = kernel("wor_tables", [
    (arr(float64, 2), arr(int64, 2), arr(float64, 2), arr(float64, 2), arr(float64, 2),
     arr(float64, 2), arr(float64, 2), arr(int64, 2), arr(float64, 3))
])(_wor_tables)
wor_bernoulli_kernel = kernel("wor_bernoulli", [
    (arr(f, 2), arr(float64, 2), arr(float64, 2), arr(int64, 4), arr(f, 3), float64,
     arr(float64, 3), arr(f, 3)) for f in FLOATS
])(_wor_bernoulli)
wor_categorical_kernel = kernel("wor_categorical", [
    (arr(f, 3), arr(float64, 2), arr(float64, 2), arr(int64, 4), arr(f, 3), float64,
     arr(float64, 3), arr(f, 4)) for f in FLOATS
])(_wor_categorical)


def _vimco_q(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    return Queries(_cuda.sample(dist, params, noise["u"]))


def _vimco_c(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    z, f = queries.z, answers.f_z
    d_out = cuda.device_array(z.shape[:2] + params.shape[1:], dtype=params.dtype)
    d_w = cuda.device_array(f.shape, dtype=np.float64)
    kern = vimco_bernoulli_kernel if dist == "bernoulli" else vimco_categorical_kernel
    launch(kern, z.shape[0] * z.shape[1], cuda.to_device(params), cuda.to_device(z),
           cuda.to_device(f), d_w, d_out)
    return d_out.copy_to_host()


def _unord_q(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    u = noise["u"]
    n = opts["n"]
    d_log_q = joint_tables(dist, params)
    d_idx = cuda.device_array(u.shape[:2] + (n,), dtype=np.int64)
    d_val = cuda.device_array(u.shape[:2] + (n,), dtype=np.float64)
    d_z = cuda.device_array(u.shape[:2] + (n, params.shape[1]), dtype=np.int64)
    d_g = cuda.device_array((u.shape[0] * u.shape[1], u.shape[2]), dtype=np.float64)
    launch(unord_queries_kernel, u.shape[0] * u.shape[1], d_log_q,
           cuda.to_device(u), n_categories(dist, params), d_g, d_idx, d_val, d_z)
    return Queries(d_z.copy_to_host())


def _unord_c(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    z, f = queries.z, answers.f_z
    n = z.shape[2]
    d_log_q = joint_tables(dist, params)
    d_lp = cuda.device_array(f.shape, dtype=np.float64)
    d_w = cuda.device_array(f.shape, dtype=np.float64)
    d_logG = cuda.device_array(f.shape[:2] + (2**n,), dtype=np.float64)
    d_out = cuda.device_array(z.shape[:2] + params.shape[1:], dtype=params.dtype)
    kern = unord_bernoulli_kernel if dist == "bernoulli" else unord_categorical_kernel
    launch(kern, z.shape[0] * z.shape[1], cuda.to_device(params), d_log_q,
           cuda.to_device(z), cuda.to_device(f), d_lp, d_logG, d_w, d_out)
    return d_out.copy_to_host()


def _wor_c(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    z, f = queries.z, answers.f_z
    n = z.shape[2]
    d_lq = joint_tables(dist, params)
    B, N = d_lq.shape
    sets = all_subsets(N, n)
    d_logpi, d_acc = (cuda.device_array((B, N), dtype=np.float64) for _ in range(2))
    launch(wor_tables_kernel, B, d_lq, cuda.to_device(sets),
           cuda.device_array((B, sets.shape[0]), dtype=np.float64), d_logpi, d_acc,
           cuda.device_array((B, n), dtype=np.float64),
           cuda.device_array((B, 2**n), dtype=np.float64),
           cuda.device_array((B, min(n + 1, N)), dtype=np.int64),
           cuda.device_array((B, min(n + 1, N), N), dtype=np.float64))
    d_w = cuda.device_array(f.shape, dtype=np.float64)
    d_out = cuda.device_array(z.shape[:2] + params.shape[1:], dtype=params.dtype)
    kern = wor_bernoulli_kernel if dist == "bernoulli" else wor_categorical_kernel
    launch(kern, z.shape[0] * z.shape[1], cuda.to_device(params), d_lq, d_logpi,
           cuda.to_device(z), cuda.to_device(f), float(opts["baseline"]), d_w, d_out)
    return d_out.copy_to_host()


def joint_tables(dist: str, params: np.ndarray):
    """``log q`` of every configuration on the device, float64 ``(B, C**K)`` (the arithmetic of
    :func:`~reference.estimators.multi_sample.numpy_reference.joint_log_probs`)."""
    log_p = np.ascontiguousarray(category_log_probs(dist, params))
    B, K, C = log_p.shape
    d_lq = cuda.device_array((B, C**K), dtype=np.float64)
    launch(joint_tables_kernel, B, cuda.to_device(log_p), d_lq)
    return d_lq


CUDA_VIMCO = Backend(_vimco_q, _vimco_c)
CUDA_WOR = Backend(_unord_q, _wor_c)
CUDA_UNORD = Backend(_unord_q, _unord_c)


# ------------------------------------------------------------------------------------ CARMS
# every array float64 (float32 parameters and noise are widened on the host; the output is
# cast back to the parameters' dtype)
def _carms_ratio(table, n, order, bnd, P, ratio):
    # one thread per (batch element, variable)
    B, K = table.shape[0], table.shape[1]
    for t in range(cuda.grid(1), B * K, cuda.gridsize(1)):
        b, k = t // K, t % K
        carms_ratio_row(table[b], k, n, order[b, k], bnd[b, k], P[b, k], ratio[b, k])


def _carms_queries(table, u, u_perm, order, running, z):
    B, R = u.shape[0], u.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        carms_sample_row(table[b], u[b, r], u_perm[b, r], order[b, r], running[b, r], z[b, r])


def _carms_bernoulli(phi, ratio, z, f, w, out):
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        carms_grad_bernoulli(phi[b], ratio[b], z[b, r], f[b, r], w[b, r], out[b, r])


def _carms_categorical(alpha, ratio, z, f, w, out):
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        carms_grad_categorical(alpha[b], ratio[b], z[b, r], f[b, r], w[b, r], out[b, r])


carms_ratio_kernel = kernel("carms_ratio", [
    (arr(float64, 3), int64, arr(int64, 3), arr(float64, 4), arr(float64, 4), arr(float64, 4))
])(_carms_ratio)
carms_queries_kernel = kernel("carms_queries", [
    (arr(float64, 3), arr(float64, 4), arr(float64, 3), arr(int64, 3), arr(float64, 3),
     arr(int64, 4))
])(_carms_queries)
carms_bernoulli_kernel = kernel("carms_bernoulli", [
    (arr(float64, 2), arr(float64, 4), arr(int64, 4), arr(float64, 3), arr(float64, 3),
     arr(float64, 3))
])(_carms_bernoulli)
carms_categorical_kernel = kernel("carms_categorical", [
    (arr(float64, 3), arr(float64, 4), arr(int64, 4), arr(float64, 3), arr(float64, 3),
     arr(float64, 4))
])(_carms_categorical)


def _carms_q(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    table = np.ascontiguousarray(logit_table(dist, params), dtype=np.float64)
    u = np.ascontiguousarray(noise["u"], dtype=np.float64)
    u_perm = np.ascontiguousarray(noise["u_perm"], dtype=np.float64)
    B, R, n, K = u.shape
    C = table.shape[2]
    d_z = cuda.device_array((B, R, n, K), dtype=np.int64)
    launch(carms_queries_kernel, B * R, cuda.to_device(table), cuda.to_device(u),
           cuda.to_device(u_perm), cuda.device_array((B, R, C), dtype=np.int64),
           cuda.device_array((B, R, C), dtype=np.float64), d_z)
    return Queries(d_z.copy_to_host())


def _carms_c(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    z, f = queries.z, np.ascontiguousarray(answers.f_z, dtype=np.float64)
    n = z.shape[2]
    p64 = np.ascontiguousarray(params, dtype=np.float64)
    table = np.ascontiguousarray(logit_table(dist, p64), dtype=np.float64)
    B, K, C = table.shape
    d_ratio = cuda.device_array((B, K, C, C), dtype=np.float64)
    launch(carms_ratio_kernel, B * K, cuda.to_device(table), n,
           cuda.device_array((B, K, C), dtype=np.int64),
           cuda.device_array((B, K, 4, C), dtype=np.float64),
           cuda.device_array((B, K, C, C), dtype=np.float64), d_ratio)
    d_out = cuda.device_array(z.shape[:2] + params.shape[1:], dtype=np.float64)
    kern = carms_bernoulli_kernel if dist == "bernoulli" else carms_categorical_kernel
    launch(kern, z.shape[0] * z.shape[1], cuda.to_device(p64), d_ratio,
           cuda.to_device(np.ascontiguousarray(z, dtype=np.int64)), cuda.to_device(f),
           cuda.device_array(f.shape, dtype=np.float64), d_out)
    return d_out.copy_to_host().astype(params.dtype, copy=False)


CUDA_CARMS = Backend(_carms_q, _carms_c)
