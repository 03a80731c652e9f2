"""Numba CUDA kernels for REINFORCE and REINFORCE-LOO (formulas in
:mod:`reference.estimators.score_function.numpy_reference`; device functions in
:mod:`reference.estimators.score_function.device`)."""

from __future__ import annotations

import numpy as np
from numba import boolean, cuda, float64, int64

from reference import _cuda
from reference._cuda import FLOATS, arr, kernel, launch
from reference.contract import Backend, Queries

from .device import build

SCORE = build(cuda.jit(device=True), _cuda.CORE)
score_combine_bernoulli = SCORE.score_combine_bernoulli
score_combine_categorical = SCORE.score_combine_categorical


def _combine_bernoulli(phi, z, f, loo, baseline, out):
    # phi (B, K), z (B, R, n, K), f (B, R, n) -> out (B, R, K); one thread per replicate
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        score_combine_bernoulli(phi[b], z[b, r], f[b, r], loo, baseline, out[b, r])


def _combine_categorical(alpha, z, f, loo, baseline, out):
    # alpha (B, K, C), z (B, R, n, K), f (B, R, n) -> out (B, R, K, C)
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        score_combine_categorical(alpha[b], z[b, r], f[b, r], loo, baseline, out[b, r])


combine_bernoulli_kernel = kernel("score_combine_bernoulli", [
    (arr(f, 2), arr(int64, 4), arr(f, 3), boolean, float64, arr(f, 3)) for f in FLOATS
])(_combine_bernoulli)
combine_categorical_kernel = kernel("score_combine_categorical", [
    (arr(f, 3), arr(int64, 4), arr(f, 3), boolean, float64, arr(f, 4)) for f in FLOATS
])(_combine_categorical)


def _queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    return Queries(_cuda.sample(dist, params, noise["u"]))


def _combine(loo: bool):
    def combine(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
        z, f = queries.z, answers.f_z
        d_out = cuda.device_array(z.shape[:2] + params.shape[1:], dtype=params.dtype)
        kern = combine_bernoulli_kernel if dist == "bernoulli" else combine_categorical_kernel
        launch(kern, z.shape[0] * z.shape[1], cuda.to_device(params), cuda.to_device(z),
               cuda.to_device(f), loo, float(opts.get("baseline", 0.0)), d_out)
        return d_out.copy_to_host()

    return combine


CUDA_REINFORCE = Backend(_queries, _combine(False))
CUDA_LOO = Backend(_queries, _combine(True))
