"""Numba CUDA kernels of the control-variate family: NVIL, MuProp, double control variates
(formulas in :mod:`reference.estimators.control_variates.numpy_reference`; device functions in
:mod:`reference.estimators.control_variates.device`).

One thread per replicate in grid-stride loops, explicit signatures registered for PTX
compilation, preallocated outputs; the host wrappers do the transfers. MuProp's query point
``mu`` and double CV's float copies of the samples are prepared on the host, as on the CPU.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float64, int64

from reference import _cuda
from reference._cuda import FLOATS, arr, kernel, launch
from reference.contract import Answers, Backend, Queries

from .cpu import mu_points
from .device import build
from .numpy_reference import nvil_scale

CV = build(cuda.jit(device=True), _cuda.CORE)
nvil_bernoulli = CV.nvil_bernoulli
nvil_categorical = CV.nvil_categorical
muprop_bernoulli = CV.muprop_bernoulli
muprop_categorical = CV.muprop_categorical
double_cv_bernoulli = CV.double_cv_bernoulli


def _nvil_bern(phi, z, f, shift, scale, out):
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        nvil_bernoulli(phi[b], z[b, r], f[b, r], shift, scale, out[b, r])


def _nvil_cat(alpha, z, f, shift, scale, out):
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        nvil_categorical(alpha[b], z[b, r], f[b, r], shift, scale, out[b, r])


def _muprop_bern(phi, z, f, f_mu, d_mu, out):
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        muprop_bernoulli(phi[b], z[b, r], f[b, r], f_mu[b, r, 0], d_mu[b, r, 0], out[b, r])


def _muprop_cat(alpha, z, f, f_mu, d_mu, p, out):
    # p (B * R, C) float64: the device function's scratch, a row per work item
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        muprop_categorical(alpha[b], z[b, r], f[b, r], f_mu[b, r, 0], d_mu[b, r, 0], p[t],
                           out[b, r])


def _dcv_bern(phi, z, f, d, alpha_cv, out):
    B, R = z.shape[0], z.shape[1]
    for t in range(cuda.grid(1), B * R, cuda.gridsize(1)):
        b, r = t // R, t % R
        double_cv_bernoulli(phi[b], z[b, r], f[b, r], d[b, r], alpha_cv, out[b, r])


nvil_bern_kernel = kernel("cv_nvil_bernoulli", [
    (arr(f, 2), arr(int64, 4), arr(f, 3), float64, float64, arr(f, 3)) for f in FLOATS
])(_nvil_bern)
nvil_cat_kernel = kernel("cv_nvil_categorical", [
    (arr(f, 3), arr(int64, 4), arr(f, 3), float64, float64, arr(f, 4)) for f in FLOATS
])(_nvil_cat)
muprop_bern_kernel = kernel("cv_muprop_bernoulli", [
    (arr(f, 2), arr(int64, 4), arr(f, 3), arr(f, 3), arr(f, 4), arr(f, 3)) for f in FLOATS
])(_muprop_bern)
muprop_cat_kernel = kernel("cv_muprop_categorical", [
    (arr(f, 3), arr(int64, 4), arr(f, 3), arr(f, 3), arr(f, 5), arr(float64, 2), arr(f, 4))
    for f in FLOATS
])(_muprop_cat)
dcv_bern_kernel = kernel("cv_double_cv_bernoulli", [
    (arr(f, 2), arr(int64, 4), arr(f, 3), arr(f, 4), float64, arr(f, 3)) for f in FLOATS
])(_dcv_bern)


def _run(kern, queries: Queries, params: np.ndarray, *args) -> np.ndarray:
    B, R = queries.z.shape[:2]
    d_out = cuda.device_array((B, R) + params.shape[1:], dtype=params.dtype)
    dev = [cuda.to_device(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a
           for a in args]
    launch(kern, B * R, cuda.to_device(params), *dev, d_out)
    return d_out.copy_to_host()


def _sample_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    return Queries(_cuda.sample(dist, params, noise["u"]))


def _nvil_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                  opts: dict) -> np.ndarray:
    kern = nvil_bern_kernel if dist == "bernoulli" else nvil_cat_kernel
    return _run(kern, queries, params, queries.z, answers.f_z,
                float(opts["baseline"] + opts["c"]), nvil_scale(opts["v"]))


def _muprop_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = _cuda.sample(dist, params, noise["u"])
    return Queries(z, {}, mu_points(dist, params, z.shape[1]))


def _muprop_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                    opts: dict) -> np.ndarray:
    args = (queries.z, answers.f_z, answers.f_y, answers.grad_y)
    if dist == "bernoulli":
        return _run(muprop_bern_kernel, queries, params, *args)
    B, R = queries.z.shape[:2]
    scratch = cuda.device_array((B * R, params.shape[-1]), dtype=np.float64)
    return _run(muprop_cat_kernel, queries, params, *args, scratch)


def _dcv_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = _cuda.sample(dist, params, noise["u"])
    return Queries(z, {}, z.astype(np.float64))


def _dcv_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                 opts: dict) -> np.ndarray:
    return _run(dcv_bern_kernel, queries, params, queries.z, answers.f_z, answers.grad_y,
                float(opts["alpha_cv"]))


CUDA_NVIL = Backend(_sample_queries, _nvil_combine)
CUDA_MUPROP = Backend(_muprop_queries, _muprop_combine)
CUDA_DOUBLE_CV = Backend(_dcv_queries, _dcv_combine)
