"""Numba CPU kernels of the control-variate family: NVIL, MuProp, double control variates
(formulas in :mod:`reference.estimators.control_variates.numpy_reference`).

Kernels take batch-flattened C-contiguous arrays, write into preallocated outputs and return
nothing; each ``prange`` iteration writes only its own replicate. Host-side steps shared
with the NumPy reference: the mean-field point ``mu`` of MuProp's query and the samples as
float points for double CV's gradient query.
No on-disk cache: the kernels call device functions of another file (see :mod:`reference._cpu`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from reference import _cpu
from reference.contract import Answers, Backend, Queries
from reference.distributions import sigmoid, softmax

from .device import build
from .numpy_reference import nvil_scale

CV = build(njit, _cpu.CORE)
nvil_bernoulli = CV.nvil_bernoulli
nvil_categorical = CV.nvil_categorical
muprop_bernoulli = CV.muprop_bernoulli
muprop_categorical = CV.muprop_categorical
double_cv_bernoulli = CV.double_cv_bernoulli


# ------------------------------------------------------------------------ kernels
@_cpu.twin_kernel
def _nvil_bern(phi, z, f, shift, scale, out):
    # phi (B, K), z (B, R, n, K), f (B, R, n) -> out (B, R, K)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        nvil_bernoulli(phi[b], z[b, r], f[b, r], shift, scale, out[b, r])


@_cpu.twin_kernel
def _nvil_cat(alpha, z, f, shift, scale, out):
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        nvil_categorical(alpha[b], z[b, r], f[b, r], shift, scale, out[b, r])


@_cpu.twin_kernel
def _muprop_bern(phi, z, f, f_mu, d_mu, out):
    # f_mu (B, R, 1), d_mu (B, R, 1, K) -> out (B, R, K)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        muprop_bernoulli(phi[b], z[b, r], f[b, r], f_mu[b, r, 0], d_mu[b, r, 0], out[b, r])


@_cpu.twin_kernel
def _muprop_cat(alpha, z, f, f_mu, d_mu, out):
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        p = np.empty(alpha.shape[2])  # the device function's scratch, per task
        muprop_categorical(alpha[b], z[b, r], f[b, r], f_mu[b, r, 0], d_mu[b, r, 0], p,
                           out[b, r])


@_cpu.twin_kernel
def _dcv_bern(phi, z, f, d, alpha_cv, out):
    # d (B, R, n, K) -> out (B, R, K)
    B, R = z.shape[0], z.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        double_cv_bernoulli(phi[b], z[b, r], f[b, r], d[b, r], alpha_cv, out[b, r])


# ------------------------------------------------------------------- host wrappers
def _out(queries: Queries, params: np.ndarray) -> np.ndarray:
    return np.empty(queries.z.shape[:2] + params.shape[1:], dtype=params.dtype)


def mu_points(dist: str, params: np.ndarray, R: int) -> np.ndarray:
    """MuProp's query: the mean-field point ``mu`` repeated, ``(B, R, 1, *event)`` float64."""
    mu = (sigmoid(params) if dist == "bernoulli" else softmax(params))[:, None, None]
    return np.ascontiguousarray(np.broadcast_to(mu, (params.shape[0], R, 1) + params.shape[1:]))


def _sample_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    return Queries(_cpu.sample(dist, params, noise["u"]))


def _nvil_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                  opts: dict) -> np.ndarray:
    out = _out(queries, params)
    kernel = _nvil_bern if dist == "bernoulli" else _nvil_cat
    kernel(params, queries.z, answers.f_z, float(opts["baseline"] + opts["c"]),
           nvil_scale(opts["v"]), out)
    return out


def _muprop_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = _cpu.sample(dist, params, noise["u"])
    return Queries(z, {}, mu_points(dist, params, z.shape[1]))


def _muprop_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                    opts: dict) -> np.ndarray:
    out = _out(queries, params)
    kernel = _muprop_bern if dist == "bernoulli" else _muprop_cat
    kernel(params, queries.z, answers.f_z, answers.f_y, answers.grad_y, out)
    return out


def _dcv_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = _cpu.sample(dist, params, noise["u"])
    return Queries(z, {}, z.astype(np.float64))


def _dcv_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                 opts: dict) -> np.ndarray:
    out = _out(queries, params)
    _dcv_bern(params, queries.z, answers.f_z, answers.grad_y, float(opts["alpha_cv"]), out)
    return out


CPU_NVIL = Backend(_sample_queries, _nvil_combine)
CPU_MUPROP = Backend(_muprop_queries, _muprop_combine)
CPU_DOUBLE_CV = Backend(_dcv_queries, _dcv_combine)
