"""Numba CPU kernels of the k-subset perturbation family (formulas in
:mod:`reference.estimators.ksubset_perturbation.numpy_reference`).

Kernels take batch-flattened C-contiguous arrays, write into preallocated outputs and return
nothing; each ``prange`` iteration writes only its own slice. Host-side step shared with the
NumPy reference: the perturbations ``theta + eps``
(:func:`reference.estimators.ksubset_perturbation.numpy_reference.perturbed_scores`, which
needs SciPy's ``gammaincinv``).
No on-disk cache: the kernels call device functions of another file (see :mod:`reference._cpu`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from reference import _cpu
from reference import ksubset as ks
from reference.contract import Answers, Backend, Queries

from ..relaxation.cpu import P as RELAX
from ..relaxation.cpu import out_like
from ..relaxation.numpy_reference import imle_flags
from .device import build
from .numpy_reference import perturbed_scores

P = build(njit, RELAX)
imle_ksubset = P.imle_ksubset
ksubset_covariance = P.ksubset_covariance
ksubset_forward = P.ksubset_forward
ksubset_sample_row = P.ksubset_sample_row
simple_row = P.simple_row
top_k_row = P.top_k_row


@_cpu.twin_kernel
def _top_k(pert, kk, z):
    # pert (B, M, n) -> z (B, M, n)
    B, M = pert.shape[0], pert.shape[1]
    for t in prange(B * M):
        b, m = t // M, t % M
        top_k_row(pert[b, m], kk, z[b, m])


@_cpu.twin_kernel
def _imle_ksubset(theta, pert, z, dy, kk, lambda_, adaptive, beta, two_sided, divide, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        imle_ksubset(theta[b], pert[b, r], z[b, r], dy[b, r], kk, lambda_, adaptive, beta,
                       two_sided, divide, out[b, r])


@_cpu.twin_kernel
def _ksubset_tables(theta, kk, L):
    for b in prange(theta.shape[0]):
        ksubset_forward(theta[b], kk, -1, L[b])


@_cpu.twin_kernel
def _ksubset_sample(theta, L, kk, u, z):
    # u (B, M, n) -> z (B, M, n)
    B, M = u.shape[0], u.shape[1]
    for t in prange(B * M):
        b, m = t // M, t % M
        ksubset_sample_row(theta[b], L[b], kk, u[b, m], z[b, m])


@_cpu.twin_kernel
def _ksubset_cov(theta, kk, L, Bk, mu, cond, cov):
    for b in prange(theta.shape[0]):
        ksubset_covariance(theta[b], kk, L[b], Bk[b], mu[b], cond[b], cov[b])


@_cpu.twin_kernel
def _simple(cov, dy, out):
    B, R = dy.shape[0], dy.shape[1]
    for t in prange(B * R):
        b, r = t // R, t % R
        simple_row(cov[b], dy[b, r], out[b, r])



# ------------------------------------------------------------------- host wrappers
def _imle_ksubset_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    pert = np.ascontiguousarray(perturbed_scores(params, noise, opts))  # (B, R, S, n)
    B, R, S, n = pert.shape
    z = np.empty((B, R * S, n), dtype=np.int64)
    _top_k(pert.reshape(B, R * S, n), int(opts["k"]), z)
    z = z.reshape(pert.shape)
    return Queries(z, {"perturbed": pert}, z.astype(np.float64))


def _imle_ksubset_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                          opts: dict) -> np.ndarray:
    kk = ks.check_k(opts["k"], params.shape[-1])
    dy = answers.grad_y
    out = out_like(dy.shape[:2] + params.shape[1:], params)
    _imle_ksubset(params, queries.aux["perturbed"], queries.z, dy, kk, *imle_flags(opts), out)
    return out


def _simple_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    B, n = params.shape
    kk = ks.check_k(opts["k"], n)
    theta = params.astype(np.float64)
    L = np.empty((B, n + 1, kk + 1))
    _ksubset_tables(theta, kk, L)
    u = noise["u"]
    z = np.empty((B, u.shape[1] * u.shape[2], n), dtype=np.int64)
    _ksubset_sample(theta, L, kk, np.ascontiguousarray(u.reshape(B, -1, n)), z)
    z = z.reshape(u.shape)
    return Queries(z, {}, z.astype(np.float64))


def _simple_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                    opts: dict) -> np.ndarray:
    B, n = params.shape
    kk = ks.check_k(opts["k"], n)
    theta = params.astype(np.float64)
    L, Bk = np.empty((B, n + 1, kk + 1)), np.empty((B, n + 1, kk + 1))
    mu, cond, cov = np.empty((B, n)), np.empty((B, n)), np.empty((B, n, n))
    _ksubset_cov(theta, kk, L, Bk, mu, cond, cov)
    dy = answers.grad_y
    out = out_like(dy.shape[:2] + (n,), params)
    _simple(cov.astype(params.dtype), dy, out)
    return out


CPU_IMLE_KSUBSET = Backend(_imle_ksubset_queries, _imle_ksubset_combine)
CPU_SIMPLE = Backend(_simple_queries, _simple_combine)
