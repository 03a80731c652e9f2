"""Numba CPU kernels for VIMCO, the unordered set estimator and CARMS (formulas in
:mod:`reference.estimators.multi_sample.numpy_reference`).

No on-disk cache: the kernels call device functions of another file (see :mod:`reference._cpu`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from reference import _cpu
from reference.contract import Backend, Queries

from .device import build
from .numpy_reference import all_subsets, category_log_probs, logit_table, n_categories

MS = build(njit, _cpu.CORE)
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


@_cpu.twin_kernel
def _vimco_bernoulli(phi, z, f, w, out):
    # phi (B, K), z (B, R, n, K), f (B, R, n), scratch w (B, R, n) -> out (B, R, K)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        vimco_signals(f[b, r], w[b, r])
        weighted_scores_bernoulli(phi[b], z[b, r], w[b, r], out[b, r])


@_cpu.twin_kernel
def _vimco_categorical(alpha, z, f, w, out):
    # alpha (B, K, C), z (B, R, n, K), f (B, R, n), scratch w (B, R, n) -> out (B, R, K, C)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        vimco_signals(f[b, r], w[b, r])
        weighted_scores_categorical(alpha[b], z[b, r], w[b, r], out[b, r])


@_cpu.twin_kernel
def _joint_tables(log_p, lq):
    # log_p (B, K, C) -> lq (B, C**K)
    for b in prange(log_p.shape[0]):
        joint_table(log_p[b], lq[b])


def joint_tables(dist: str, params: np.ndarray) -> np.ndarray:
    """``log q`` of every configuration, float64 ``(B, C**K)``: the arithmetic of
    :func:`~reference.estimators.multi_sample.numpy_reference.joint_log_probs`."""
    log_p = np.ascontiguousarray(category_log_probs(dist, params))
    B, K, C = log_p.shape
    lq = np.empty((B, C**K))
    _joint_tables(log_p, lq)
    return lq


@_cpu.twin_kernel
def _unord_queries(log_q, u, C, idx, val, z):
    # log_q (B, N) joint table, u (B, R, N) -> idx, val (B, R, n), z (B, R, n, K)
    B, R = u.shape[0], u.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        g = np.empty(u.shape[2])  # the device function's scratch, per task
        gumbel_top(log_q[b], u[b, r], idx[b, r], val[b, r], g)
        indices_to_configs(idx[b, r], C, z[b, r])


@_cpu.twin_kernel
def _unord_weights(log_q, z, f, C, lp, logG, w):
    # log_q (B, N), z (B, R, n, K), f (B, R, n); scratch lp, w (B, R, n), logG (B, R, 2**n)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        unord_row(log_q[b], z[b, r], f[b, r], C, lp[b, r], logG[b, r], w[b, r])


@_cpu.twin_kernel
def _scores_bernoulli(phi, z, w, out):
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        weighted_scores_bernoulli(phi[b], z[b, r], w[b, r], out[b, r])


@_cpu.twin_kernel
def _scores_categorical(alpha, z, w, out):
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        weighted_scores_categorical(alpha[b], z[b, r], w[b, r], out[b, r])


@_cpu.twin_kernel
def _wor_tables(lq, sets, logps, logpi, acc, lp, logG, top, E):
    # per batch element, from log q (B, N): log pi (B, N); scratch logps (B, M), acc (B, N),
    # lp (B, n), logG (B, 2**n), top (B, r), E (B, r, N) with r = min(n + 1, N)
    for b in prange(lq.shape[0]):
        inclusion(lq[b], sets, logps[b], logpi[b], acc[b], lp[b], logG[b], top[b], E[b])


@_cpu.twin_kernel
def _wor_weights(lq, logpi, z, f, baseline, C, w):
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        wor_weights(lq[b], logpi[b], z[b, r], f[b, r], baseline, C, w[b, r])


def wor_tables(dist: str, params: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``log q`` and ``log pi`` of every configuration, each ``(B, C**K)`` (CPU kernels)."""
    lq = joint_tables(dist, params)
    B, N = lq.shape
    sets = all_subsets(N, n)
    logpi, acc = (np.empty((B, N)) for _ in range(2))
    r = min(n + 1, N)
    _wor_tables(lq, sets, np.empty((B, sets.shape[0])), logpi, acc, np.empty((B, n)),
                np.empty((B, 2**n)), np.empty((B, r), dtype=np.int64), np.empty((B, r, N)))
    return lq, logpi


def _vimco_q(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    return Queries(_cpu.sample(dist, params, noise["u"]))


def _vimco_c(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    z, f = queries.z, answers.f_z
    out = np.empty(z.shape[:2] + params.shape[1:], dtype=params.dtype)
    w = np.empty(f.shape, dtype=np.float64)
    kernel = _vimco_bernoulli if dist == "bernoulli" else _vimco_categorical
    kernel(params, z, f, w, out)
    return out


def _unord_q(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    u = noise["u"]
    n = opts["n"]
    log_q = joint_tables(dist, params)
    idx = np.empty(u.shape[:2] + (n,), dtype=np.int64)
    val = np.empty(u.shape[:2] + (n,), dtype=np.float64)
    z = np.empty(u.shape[:2] + (n, params.shape[1]), dtype=np.int64)
    _unord_queries(log_q, u, n_categories(dist, params), idx, val, z)
    return Queries(z)


def _unord_c(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    z, f = queries.z, answers.f_z
    n = z.shape[2]
    log_q = joint_tables(dist, params)
    lp = np.empty(f.shape, dtype=np.float64)
    w = np.empty(f.shape, dtype=np.float64)
    logG = np.empty(f.shape[:2] + (2**n,), dtype=np.float64)
    _unord_weights(log_q, z, f, n_categories(dist, params), lp, logG, w)
    out = np.empty(z.shape[:2] + params.shape[1:], dtype=params.dtype)
    kernel = _scores_bernoulli if dist == "bernoulli" else _scores_categorical
    kernel(params, z, w, out)
    return out


def _wor_c(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    z, f = queries.z, answers.f_z
    lq, logpi = wor_tables(dist, params, z.shape[2])
    C = n_categories(dist, params)
    w = np.empty(f.shape, dtype=np.float64)
    _wor_weights(lq, logpi, z, f, float(opts["baseline"]), C, w)
    out = np.empty(z.shape[:2] + params.shape[1:], dtype=params.dtype)
    kernel = _scores_bernoulli if dist == "bernoulli" else _scores_categorical
    kernel(params, z, w, out)
    return out


CPU_VIMCO = Backend(_vimco_q, _vimco_c)
CPU_WOR = Backend(_unord_q, _wor_c)
CPU_UNORD = Backend(_unord_q, _unord_c)


# ------------------------------------------------------------------------------------ CARMS
@_cpu.twin_kernel
def _carms_ratio(table, n, order, bnd, P, ratio):
    # table (B, K, C) -> P, ratio (B, K, C, C); scratch order (B, K, C) int, bnd (B, K, 4, C)
    B, K = table.shape[0], table.shape[1]
    for t in prange(B * K):
        b, k = t // K, t % K
        carms_ratio_row(table[b], k, n, order[b, k], bnd[b, k], P[b, k], ratio[b, k])


@_cpu.twin_kernel
def _carms_queries(table, u, u_perm, order, running, z):
    # table (B, K, C), u (B, R, n, K), u_perm (B, R, K); scratch order, running (B, R, C)
    B, R = u.shape[0], u.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        carms_sample_row(table[b], u[b, r], u_perm[b, r], order[b, r], running[b, r], z[b, r])


@_cpu.twin_kernel
def _carms_bernoulli(phi, ratio, z, f, w, out):
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        carms_grad_bernoulli(phi[b], ratio[b], z[b, r], f[b, r], w[b, r], out[b, r])


@_cpu.twin_kernel
def _carms_categorical(alpha, ratio, z, f, w, out):
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        carms_grad_categorical(alpha[b], ratio[b], z[b, r], f[b, r], w[b, r], out[b, r])


def carms_tables(dist: str, params: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The pair laws and ratios ``(B, K, C, C)`` of every variable (CPU kernel)."""
    table = np.ascontiguousarray(logit_table(dist, params), dtype=np.float64)
    B, K, C = table.shape
    P, ratio = np.empty((B, K, C, C)), np.empty((B, K, C, C))
    _carms_ratio(table, n, np.empty((B, K, C), dtype=np.int64), np.empty((B, K, 4, C)), P,
                 ratio)
    return P, ratio


def _carms_q(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    table = np.ascontiguousarray(logit_table(dist, params), dtype=np.float64)
    u = np.ascontiguousarray(noise["u"], dtype=np.float64)
    u_perm = np.ascontiguousarray(noise["u_perm"], dtype=np.float64)
    B, R, n, K = u.shape
    C = table.shape[2]
    z = np.empty((B, R, n, K), dtype=np.int64)
    _carms_queries(table, u, u_perm, np.empty((B, R, C), dtype=np.int64), np.empty((B, R, C)), z)
    return Queries(z)


def _carms_c(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    z, f = queries.z, np.ascontiguousarray(answers.f_z, dtype=np.float64)
    p64 = np.ascontiguousarray(params, dtype=np.float64)
    _, ratio = carms_tables(dist, p64, z.shape[2])
    out = np.empty(z.shape[:2] + params.shape[1:], dtype=np.float64)
    w = np.empty(f.shape, dtype=np.float64)
    kernel = _carms_bernoulli if dist == "bernoulli" else _carms_categorical
    kernel(p64, ratio, z, f, w, out)
    return out.astype(params.dtype, copy=False)


CPU_CARMS = Backend(_carms_q, _carms_c)
