"""Numba CPU kernels shared by every estimator: the device functions and the samplers.

Kernels take batch-flattened, C-contiguous arrays, write into preallocated outputs and return
nothing; ``prange`` loops write only their own slice, so results are the same on every run.

No ``cache=True`` on kernels that call device functions of another file: Numba's on-disk cache
is keyed on the kernel's own source file, so an edit to ``_core.py`` would leave a stale
cached kernel running the old arithmetic.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._core import build

CORE = build(njit)
sigmoid = CORE.sigmoid
softmax_stats = CORE.softmax_stats
sample_bernoulli_row = CORE.sample_bernoulli_row
sample_categorical_row = CORE.sample_categorical_row


@njit(parallel=True)
def _sample_bernoulli(phi, u, z):
    # phi (B, K), u (B, M, K) -> z (B, M, K)
    B, M = u.shape[0], u.shape[1]
    for t in prange(B * M):
        b, m = t // M, t % M
        sample_bernoulli_row(phi[b], u[b, m], z[b, m])


@njit(parallel=True)
def _sample_categorical(alpha, u, z):
    # alpha (B, K, C), u (B, M, K) -> z (B, M, K)
    B, M = u.shape[0], u.shape[1]
    for t in prange(B * M):
        b, m = t // M, t % M
        sample_categorical_row(alpha[b], u[b, m], z[b, m])


def sample(dist: str, params: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Configurations from uniforms: params ``(B, K[, C])``, u ``(B, *S, K)`` -> int64 ``(B, *S, K)``."""
    u3 = np.ascontiguousarray(u.reshape(u.shape[0], -1, u.shape[-1]))
    z = np.empty(u3.shape, dtype=np.int64)
    kernel = _sample_bernoulli if dist == "bernoulli" else _sample_categorical
    kernel(params, u3, z)
    return z.reshape(u.shape)
