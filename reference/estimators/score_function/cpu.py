"""Numba CPU kernels for REINFORCE and REINFORCE-LOO (formulas in
:mod:`reference.estimators.score_function.numpy_reference`).

No on-disk cache: the kernels call device functions of another file (see :mod:`reference._cpu`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from reference import _cpu
from reference.contract import Backend, Queries

from .device import build

SCORE = build(njit, _cpu.CORE)
score_combine_bernoulli = SCORE.score_combine_bernoulli
score_combine_categorical = SCORE.score_combine_categorical


@njit(parallel=True)
def _combine_bernoulli(phi, z, f, loo, baseline, out):
    # phi (B, K), z (B, R, n, K), f (B, R, n) -> out (B, R, K)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        score_combine_bernoulli(phi[b], z[b, r], f[b, r], loo, baseline, out[b, r])


@njit(parallel=True)
def _combine_categorical(alpha, z, f, loo, baseline, out):
    # alpha (B, K, C), z (B, R, n, K), f (B, R, n) -> out (B, R, K, C)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        score_combine_categorical(alpha[b], z[b, r], f[b, r], loo, baseline, out[b, r])


def _queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    return Queries(_cpu.sample(dist, params, noise["u"]))


def _combine(loo: bool):
    def combine(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
        z, f = queries.z, answers.f_z
        out = np.empty(z.shape[:2] + params.shape[1:], dtype=params.dtype)
        kernel = _combine_bernoulli if dist == "bernoulli" else _combine_categorical
        kernel(params, z, f, loo, float(opts.get("baseline", 0.0)), out)
        return out

    return combine


CPU_REINFORCE = Backend(_queries, _combine(False))
CPU_LOO = Backend(_queries, _combine(True))
