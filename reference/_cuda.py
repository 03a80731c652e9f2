"""Numba CUDA plumbing shared by every estimator: device functions, samplers, launches.

Imported only when a ``"cuda"`` backend is asked for, so the package works without
numba-cuda. Kernels use explicit signatures and grid-stride loops, write into preallocated
outputs and return nothing; the host wrappers here do the transfers.

``PTX_KERNELS`` lists every kernel with its Python function and signatures, so the tests can
compile each one to PTX for a given compute capability without a GPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


class KernelTimer:
    """Device time of the kernels launched through :func:`launch` inside
    :func:`kernel_timer`: a pair of CUDA events around each launch, so host work and
    transfers between launches are not counted (``scripts/bench_kernels.py``)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, Any]] = []
        self.host: list[float] = []

    @property
    def launches(self) -> int:
        return len(self.events)

    def seconds(self) -> float:
        """Total kernel time in seconds (waits for the last kernel). The simulator's events
        carry no time (``elapsed_time`` is -1): its launches run synchronously on the host,
        so their host durations are the kernel times there."""
        if not self.events:
            return 0.0
        self.events[-1][1].synchronize()
        ms = [start.elapsed_time(end) for start, end in self.events]
        if min(ms) < 0:
            return float(sum(self.host))
        return float(sum(ms)) / 1e3


#: the active timer of :func:`kernel_timer` (None: launches are not timed)
_TIMER: KernelTimer | None = None


@contextmanager
def kernel_timer() -> Iterator[KernelTimer]:
    """Time every :func:`launch` in the block with CUDA events (nested blocks: the innermost)."""
    global _TIMER
    outer, _TIMER = _TIMER, KernelTimer()
    try:
        yield _TIMER
    finally:
        _TIMER = outer


def launch(kern, n_items: int, *args) -> None:
    """Launch ``kern`` over ``n_items`` work items (grid-stride loops cover the rest)."""
    tpb = int(config.CUDA_THREADS_PER_BLOCK)
    blocks = max(1, min(math.ceil(n_items / tpb), int(config.CUDA_MAX_BLOCKS)))
    timer = _TIMER
    if timer is None:
        kern[blocks, tpb](*args)
        return
    start, end = cuda.event(), cuda.event()
    t0 = time.perf_counter()
    start.record()
    kern[blocks, tpb](*args)
    end.record()
    timer.host.append(time.perf_counter() - t0)
    timer.events.append((start, end))


def device_copy_bandwidth(nbytes: int, repeat: int) -> float:
    """Best device-to-device copy rate of a float64 array of ``nbytes``, in bytes/s (read plus
    written bytes), timed with CUDA events (host time under the simulator)."""
    src = cuda.to_device(np.random.default_rng(0).random(max(1, nbytes // 8)))
    dst = cuda.device_array_like(src)
    dst.copy_to_device(src)
    best = 0.0
    for _ in range(repeat):
        start, end = cuda.event(), cuda.event()
        t0 = time.perf_counter()
        start.record()
        dst.copy_to_device(src)
        end.record()
        end.synchronize()
        host = time.perf_counter() - t0
        ms = start.elapsed_time(end)
        seconds = ms / 1e3 if ms > 0 else host
        best = max(best, 2 * src.nbytes / seconds)
    return best


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
