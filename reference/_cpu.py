"""Numba CPU kernels shared by every estimator: the device functions and the samplers.

Kernels take batch-flattened, C-contiguous arrays, write into preallocated outputs and return
nothing; ``prange`` loops write only their own slice, so results are the same on every run.

No ``cache=True`` on kernels that call device functions of another file: Numba's on-disk cache
is keyed on the kernel's own source file, so an edit to ``_core.py`` would leave a stale
cached kernel running the old arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._core import build

CORE = build(njit)
sigmoid = CORE.sigmoid
softmax_stats = CORE.softmax_stats
sample_bernoulli_row = CORE.sample_bernoulli_row
sample_categorical_row = CORE.sample_categorical_row
row_argmax = CORE.row_argmax


@njit(parallel=True)
def _sample_bernoulli(phi, u, z):
    # phi (B, K), u (B, M, K) -> z (B, M, K)
    B, M = u.shape[0], u.shape[1]
    for t in prange(B * M):
        b, m = t // M, t % M
        sample_bernoulli_row(phi[b], u[b, m], z[b, m])


#: samples drawn per cached CDF in the categorical sampler (one task of its parallel loop)
_CHUNK = 64


@njit
def _categorical_cdf(alpha, cum):
    # alpha (K, C) -> cum (K, C): running sums S_c of exp(alpha_kc - max_c alpha_kc), left to
    # right: the very sums that sample_categorical_row recomputes for every sample (its max is
    # softmax_stats', row_argmax's; the total softmax_stats also sums is not needed here)
    K, C = alpha.shape[0], alpha.shape[1]
    for k in range(K):
        m, _ = row_argmax(alpha, k)
        running = 0.0
        for c in range(C):
            running += math.exp(alpha[k, c] - m)
            cum[k, c] = running


@njit
def _sample_from_cdf(cum, u, z):
    # z_k = min{c : u_k S_{C-1} < S_c} (C - 1 if none), as sample_categorical_row, counted
    # without a branch on the noise: S is non-decreasing, so the c with not (threshold < S_c)
    # are a prefix, and their count is that minimum (C when none: capped at C - 1). NaN
    # sums make the threshold NaN (S_{C-1} is NaN), where the row's answer is C - 1
    K, C = cum.shape[0], cum.shape[1]
    for k in range(K):
        threshold = u[k] * cum[k, C - 1]
        below = 0
        for c in range(C):
            below += threshold >= cum[k, c]
        z[k] = min(below, C - 1) if threshold == threshold else C - 1


@njit(parallel=True)
def _sample_categorical(alpha, u, z):
    # alpha (B, K, C), u (B, M, K) -> z (B, M, K). The softmax sums of a row are computed once
    # per chunk of _CHUNK samples instead of once per sample (C exps instead of up to 2 C per
    # variable and sample); the decisions are those of sample_categorical_row, bit for bit
    B, M = u.shape[0], u.shape[1]
    K, C = alpha.shape[1], alpha.shape[2]
    nch = (M + _CHUNK - 1) // _CHUNK
    for t in prange(B * nch):
        b, ch = t // nch, t % nch
        cum = np.empty((K, C))
        _categorical_cdf(alpha[b], cum)
        for m in range(ch * _CHUNK, min(M, (ch + 1) * _CHUNK)):
            _sample_from_cdf(cum, u[b, m], z[b, m])


def sample(dist: str, params: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Configurations from uniforms: params ``(B, K[, C])``, u ``(B, *S, K)`` -> int64 ``(B, *S, K)``."""
    u3 = np.ascontiguousarray(u.reshape(u.shape[0], -1, u.shape[-1]))
    z = np.empty(u3.shape, dtype=np.int64)
    kernel = _sample_bernoulli if dist == "bernoulli" else _sample_categorical
    kernel(params, u3, z)
    return z.reshape(u.shape)
