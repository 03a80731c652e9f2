"""Numba CUDA plumbing shared by every estimator: device functions, samplers, launches.

Imported only when a ``"cuda"`` backend is asked for, so the package works without
numba-cuda. Kernels use explicit signatures and grid-stride loops, write into preallocated
outputs and return nothing; the host wrappers here do the transfers.

``PTX_KERNELS`` lists every kernel with its Python function and signatures, so the tests can
compile each one to PTX for a given compute capability without a GPU.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64, int64, types

from . import config
from ._core import build

CORE = build(cuda.jit(device=True))
sample_bernoulli_row = CORE.sample_bernoulli_row
sample_categorical_row = CORE.sample_categorical_row

#: name -> (python function, list of signatures); filled by :func:`kernel`
PTX_KERNELS: dict[str, tuple[object, list]] = {}
FLOATS = (float64, float32)


def kernel(name: str, signatures: list):
    """Register ``fn`` with its explicit ``signatures`` for PTX compilation, and return the
    lazily compiled ``cuda.jit(fn)`` (eager compilation would need a device at import time;
    the launches pass exactly these types)."""

    def wrap(fn):
        PTX_KERNELS[name] = (fn, signatures)
        return cuda.jit(fn)

    return wrap


def arr(dtype, ndim: int):
    """C-contiguous array type of ``dtype`` with ``ndim`` axes."""
    return types.Array(dtype, ndim, "C")


def launch(kern, n_items: int, *args) -> None:
    """Launch ``kern`` over ``n_items`` work items (grid-stride loops cover the rest)."""
    tpb = int(config.CUDA_THREADS_PER_BLOCK)
    blocks = max(1, min(math.ceil(n_items / tpb), int(config.CUDA_MAX_BLOCKS)))
    kern[blocks, tpb](*args)


def _sample_bernoulli(phi, u, z):
    B, M = u.shape[0], u.shape[1]
    for t in range(cuda.grid(1), B * M, cuda.gridsize(1)):
        b, m = t // M, t % M
        sample_bernoulli_row(phi[b], u[b, m], z[b, m])


def _sample_categorical(alpha, u, z):
    B, M = u.shape[0], u.shape[1]
    for t in range(cuda.grid(1), B * M, cuda.gridsize(1)):
        b, m = t // M, t % M
        sample_categorical_row(alpha[b], u[b, m], z[b, m])


sample_bernoulli_kernel = kernel("sample_bernoulli", [
    (arr(f, 2), arr(f, 3), arr(int64, 3)) for f in FLOATS])(_sample_bernoulli)
sample_categorical_kernel = kernel("sample_categorical", [
    (arr(f, 3), arr(f, 3), arr(int64, 3)) for f in FLOATS])(_sample_categorical)


def sample_device(dist: str, d_params, u: np.ndarray):
    """Sample on the device: returns a device array ``z`` of shape ``(B, M, K)``."""
    u3 = np.ascontiguousarray(u.reshape(u.shape[0], -1, u.shape[-1]))
    d_u = cuda.to_device(u3)
    d_z = cuda.device_array(u3.shape, dtype=np.int64)
    kern = sample_bernoulli_kernel if dist == "bernoulli" else sample_categorical_kernel
    launch(kern, u3.shape[0] * u3.shape[1], d_params, d_u, d_z)
    return d_z


def sample(dist: str, params: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Host wrapper: params ``(B, K[, C])``, u ``(B, *S, K)`` -> int64 ``(B, *S, K)``."""
    d_z = sample_device(dist, cuda.to_device(params), u)
    return d_z.copy_to_host().reshape(u.shape)
