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
mean, score_weight = SCORE.mean, SCORE.score_weight
row_argmax, softmax_complement = _cpu.CORE.row_argmax, _cpu.CORE.softmax_complement


@_cpu.twin_kernel
def _combine_bernoulli(phi, z, f, loo, baseline, out):
    # phi (B, K), z (B, R, n, K), f (B, R, n) -> out (B, R, K)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        score_combine_bernoulli(phi[b], z[b, r], f[b, r], loo, baseline, out[b, r])


@_cpu.INLINE_DEVICE
def _combine_categorical_row(alpha, z, f, loo, baseline, out, w, e, hit, miss, acc):
    # score_combine_categorical(alpha, z, f, loo, baseline, out) with the same arithmetic in
    # the same order, each value computed once instead of once per use: the weights w_i (n,)
    # once per row instead of once per (k, c, i), each exp(alpha_kc - m) once instead of twice
    # (softmax_rest's pass, then score_categorical_pair's), and the sums over i for all c of
    # a k side by side in acc (C,) float64, each still adding its i in increasing order.
    # Inlined into the kernel, which takes NumPy's error model (reference._cpu.DEVICE): the
    # same numbers, 7% faster than the call under the default error model
    n, K, C = z.shape[0], alpha.shape[0], alpha.shape[1]
    fbar = mean(f)
    for i in range(n):
        w[i] = score_weight(f, i, loo, baseline, fbar)
    for k in range(K):
        m, cmax = row_argmax(alpha, k)
        for c in range(C):  # a loop of its own, where the exps vectorize
            e[c] = _cpu.exp(alpha[k, c] - m)
        total = 0.0
        rest = 0.0
        for c in range(C):
            total += e[c]
            if c != cmax:
                rest += e[c]
        for c in range(C):
            hit[c] = softmax_complement(e[c], total, rest, c, cmax)
            miss[c] = -(e[c] / total)
            acc[c] = 0.0
        for i in range(n):
            zi, wi = z[i, k], w[i]
            for c in range(C):
                acc[c] += wi * (hit[c] if zi == c else miss[c])
        for c in range(C):
            out[k, c] = acc[c]


@_cpu.twin_kernel(error_model="numpy")
def _combine_categorical(alpha, z, f, loo, baseline, out):
    # alpha (B, K, C), z (B, R, n, K), f (B, R, n) -> out (B, R, K, C); the replicates in
    # groups of _cpu.SCRATCH_GROUP sharing the row's scratch
    B, R, n = z.shape[0], z.shape[1], z.shape[2]
    C = alpha.shape[2]
    N, G = B * R, _cpu.SCRATCH_GROUP
    for g in prange((N + G - 1) // G):
        w, e, hit, miss, acc = np.empty(n), np.empty(C), np.empty(C), np.empty(C), np.empty(C)
        for t in range(g * G, min(N, (g + 1) * G)):
            b, r = t // R, t % R
            _combine_categorical_row(alpha[b], z[b, r], f[b, r], loo, baseline, out[b, r], w, e,
                                     hit, miss, acc)


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


CPU_REINFORCE = Backend(_queries, _combine(False), serial_twins=True)
CPU_LOO = Backend(_queries, _combine(True), serial_twins=True)
