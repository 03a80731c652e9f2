"""Numba CPU kernels for VIMCO and the unordered set estimator (formulas in
:mod:`reference.estimators.multi_sample.numpy_reference`).

No on-disk cache: the kernels call device functions of another file (see :mod:`reference._cpu`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from reference import _cpu
from reference.contract import Backend, Queries

from .device import build
from .numpy_reference import logit_table

MS = build(njit, _cpu.CORE)
vimco_signals = MS.vimco_signals
weighted_scores_bernoulli = MS.weighted_scores_bernoulli
weighted_scores_categorical = MS.weighted_scores_categorical
gumbel_top = MS.gumbel_top
indices_to_configs = MS.indices_to_configs
unord_row = MS.unord_row


@njit(parallel=True)
def _vimco_bernoulli(phi, z, f, w, out):
    # phi (B, K), z (B, R, n, K), f (B, R, n), scratch w (B, R, n) -> out (B, R, K)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        vimco_signals(f[b, r], w[b, r])
        weighted_scores_bernoulli(phi[b], z[b, r], w[b, r], out[b, r])


@njit(parallel=True)
def _vimco_categorical(alpha, z, f, w, out):
    # alpha (B, K, C), z (B, R, n, K), f (B, R, n), scratch w (B, R, n) -> out (B, R, K, C)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        vimco_signals(f[b, r], w[b, r])
        weighted_scores_categorical(alpha[b], z[b, r], w[b, r], out[b, r])


@njit(parallel=True)
def _unord_queries(table, u, idx, val, z):
    # table (B, K, C) logits, u (B, R, N) -> idx, val (B, R, n), z (B, R, n, K)
    B, R = u.shape[0], u.shape[1]
    C = table.shape[2]
    for t in prange(B * R):
        b, r = t // R, t % R
        gumbel_top(table[b], u[b, r], idx[b, r], val[b, r])
        indices_to_configs(idx[b, r], C, z[b, r])


@njit(parallel=True)
def _unord_weights(table, z, f, lp, logG, w):
    # table (B, K, C), z (B, R, n, K), f (B, R, n); scratch lp, w (B, R, n), logG (B, R, 2**n)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        unord_row(table[b], z[b, r], f[b, r], lp[b, r], logG[b, r], w[b, r])


@njit(parallel=True)
def _scores_bernoulli(phi, z, w, out):
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        weighted_scores_bernoulli(phi[b], z[b, r], w[b, r], out[b, r])


@njit(parallel=True)
def _scores_categorical(alpha, z, w, out):
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        weighted_scores_categorical(alpha[b], z[b, r], w[b, r], out[b, r])


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
    table = np.ascontiguousarray(logit_table(dist, params))
    idx = np.empty(u.shape[:2] + (n,), dtype=np.int64)
    val = np.empty(u.shape[:2] + (n,), dtype=np.float64)
    z = np.empty(u.shape[:2] + (n, params.shape[1]), dtype=np.int64)
    _unord_queries(table, u, idx, val, z)
    return Queries(z)


def _unord_c(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
    z, f = queries.z, answers.f_z
    n = z.shape[2]
    table = np.ascontiguousarray(logit_table(dist, params))
    lp = np.empty(f.shape, dtype=np.float64)
    w = np.empty(f.shape, dtype=np.float64)
    logG = np.empty(f.shape[:2] + (2**n,), dtype=np.float64)
    _unord_weights(table, z, f, lp, logG, w)
    out = np.empty(z.shape[:2] + params.shape[1:], dtype=params.dtype)
    kernel = _scores_bernoulli if dist == "bernoulli" else _scores_categorical
    kernel(params, z, w, out)
    return out


CPU_VIMCO = Backend(_vimco_q, _vimco_c)
CPU_UNORD = Backend(_unord_q, _unord_c)
