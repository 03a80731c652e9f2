"""Backends of the VAE layers behind one small interface: NumPy reference, Numba CPU, Numba CUDA.

A backend ("ops") owns its array type and implements the layers of
:mod:`reference.models.layers`. The model (:mod:`reference.models.vae`) is written once
against this interface:

* ``asarray(host)`` / ``to_host(a)``: transfers (a copy on the host paths too, so the model
  never aliases the caller's arrays); ``zeros(shape)``.
* ``linear(x, W, b, act, slope, sparse_input=False)`` -> ``y`` (LeakyReLU applied when
  ``act``); ``linear_backward(x, W, dy, need_dx, sparse_input=False)`` -> ``(dx or None, dW,
  db)``. ``sparse_input`` is a hint that most entries of ``x`` are 0 (the binarized images
  at the encoder's input): the CPU backend then skips them instead of calling BLAS; the
  result is the same product up to rounding, whatever ``x`` holds;
  ``act_backward(h, dh, slope)`` -> ``da`` (may overwrite ``dh``).
* ``onehot_linear(z, W, b, C, act, slope)``; ``onehot_linear_backward(z, dy, C)`` -> ``(dW, db)``.
* ``loglik_grad(logits, x, G, scale)`` -> ``(f, dlogits)``: ``f`` host float64 ``(N,)`` and
  ``dlogits = scale (x - sigmoid(logits))`` (may overwrite ``logits``); ``loglik(logits, x, G)``.
* ``scale_(a, s)``: ``a *= s`` in place. ``adam(p, g, m, v, t, lr, b1, b2, eps)``: in place.
* ``workers``, ``blocks(n)``, ``run(tasks)`` and ``session()``
  (:class:`~reference.models._blocks.SerialBlocks`): independent blocks of work, run side by
  side where the backend has threads for them (the CPU backend with more than one worker),
  else in order; ``session()`` is the context of one training step's work.

The NumPy backend is float64 only (the reference); the fast backends take float32 or float64.
"""

from __future__ import annotations

import functools
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numba
import numpy as np

from . import _layers_cpu as K
from . import layers as L
from ._blocks import SerialBlocks

__all__ = ["NumpyOps", "CpuOps", "get_ops"]


def _references(pool: list, i: int) -> int:
    """Python references to ``pool[i]``, counted the same way for the calibration below and
    for every check (the count of a held array is one more, whatever the interpreter's own
    share of it is)."""
    return sys.getrefcount(pool[i])


#: the count of :func:`_references` for an array that only its pool holds
_UNHELD = _references([np.empty(1)], 0)
#: arrays kept per shape in a :class:`CpuOps` pool; a shape beyond them is allocated afresh
_POOL_PER_SHAPE = 4
#: shapes kept per pool (the pool is emptied when a new shape would exceed it)
_POOL_SHAPES = 64


@functools.cache
def _blas():
    """threadpoolctl's controller of this process's BLAS libraries (made once, at the first
    use)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def _blas_limited():
    """A context in which the BLAS libraries of this process run one thread each."""
    return _blas().limit(limits=1)


def _default_workers() -> int:
    """Numba's thread count, capped by the BLAS libraries' own: a process given one BLAS
    thread (Dask's workers are) runs one block, as it ran one BLAS thread before."""
    n = numba.get_num_threads()
    libs = _blas().info()
    if libs:
        n = min(n, max(lib["num_threads"] for lib in libs))
    return max(1, n)


def _serially(task):
    with K.serial_kernels():
        return task()


class NumpyOps(SerialBlocks):
    """The float64 reference: every method is a formula of :mod:`reference.models.layers`."""

    name = "numpy"

    def __init__(self, dtype: type = np.float64) -> None:
        if np.dtype(dtype) != np.float64:
            raise ValueError("the NumPy reference backend is float64 only")
        self.dtype = np.dtype(np.float64)

    def asarray(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        return np.array(a, dtype=np.int64 if np.issubdtype(a.dtype, np.integer) else self.dtype)

    def to_host(self, a: np.ndarray) -> np.ndarray:
        return np.array(a)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, self.dtype)

    def linear(self, x, W, b, act, slope, sparse_input=False):
        y = L.linear(x, W, b)
        return L.leaky_relu(y, slope) if act else y

    def linear_backward(self, x, W, dy, need_dx, sparse_input=False):
        dx, dW, db = L.linear_backward(x, W, dy)
        return (dx if need_dx else None), dW, db

    def act_backward(self, h, dh, slope):
        return L.leaky_relu_backward(h, dh, slope)

    def onehot_linear(self, z, W, b, C, act, slope):
        y = L.onehot_linear(z, W, b, C)
        return L.leaky_relu(y, slope) if act else y

    def onehot_linear_backward(self, z, dy, C):
        return L.onehot_linear_backward(z, dy, C)

    def loglik_grad(self, logits, x, G, scale):
        return L.bernoulli_loglik(logits, x), scale * L.bernoulli_loglik_grad(logits, x)

    def loglik(self, logits, x, G):
        return L.bernoulli_loglik(logits, x)

    def scale_(self, a, s):
        a *= s

    def adam(self, p, g, m, v, t, lr, b1, b2, eps):
        L.adam_update(p, g, m, v, t, lr, b1, b2, eps)


class CpuOps(SerialBlocks):
    """Numba CPU kernels (``_layers_cpu``) and BLAS matrix products, float32 or float64.

    The layers' outputs come from a pool of arrays that nothing else holds any longer
    (:meth:`_empty`), so that a training step reuses the memory of the previous one.

    ``threads`` (default: Numba's thread count, capped by BLAS's) is ``workers``: with more
    than one,
    :meth:`run` runs blocks of work side by side on that many Python threads, each calling
    BLAS with one thread and the kernels' serial twins (the layers' and the estimators' twin
    kernels, :func:`reference._cpu.twin_kernel`), instead of one block whose matrix
    products use several BLAS threads while everything between them runs on one core."""

    name = "cpu"

    def __init__(self, dtype: type = np.float32, threads: int | None = None) -> None:
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.dtype = np.dtype(dtype)
        self.workers = _default_workers() if threads is None else threads
        self._pool: dict = {}
        self._pool_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict:
        # pickled (a model sent to another process, or held by something that is) without
        # its threads, lock and pool, which the copy makes afresh
        state = self.__dict__.copy()
        for name in ("_pool", "_pool_lock", "_executor"):
            del state[name]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._pool, self._pool_lock, self._executor = {}, threading.Lock(), None

    def blocks(self, n: int) -> list[tuple[int, int]]:
        """``min(workers, n)`` ranges of near-equal length covering ``range(n)`` in order; one
        within a block of work (:meth:`run` runs nested blocks in order anyway)."""
        k = 1 if K.in_serial_block() else max(1, min(self.workers, n))
        edges = [n * i // k for i in range(k + 1)]
        return list(zip(edges[:-1], edges[1:], strict=True))

    def session(self):
        """With more than one worker, a context in which BLAS runs one thread (threadpoolctl,
        process-wide while it lasts), for a whole training step: its matrix products run one
        per block, side by side, and BLAS threads started by a product outside the blocks
        would keep spinning on the cores the blocks need (measured, REINFORCE-LOO step of the
        paper's VAE on two cores: 38-39 ms with the encoder's products on two BLAS threads,
        23-25 ms with BLAS on one thread for the whole step). With one worker, nothing
        changes."""
        return _blas_limited() if self.workers > 1 else nullcontext()

    def run(self, tasks):
        """The results of ``tasks`` in order, run side by side: the first in the calling
        thread, the others on this backend's threads, all with one BLAS thread and the
        kernels' serial twins. In order in the calling thread when there is one task or one
        worker, or when called from within a task (no nested blocks)."""
        if len(tasks) <= 1 or self.workers == 1 or K.in_serial_block():
            return [task() for task in tasks]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="cpu-ops")
        with _blas_limited():
            futures = [self._executor.submit(_serially, task) for task in tasks[1:]]
            try:
                first = _serially(tasks[0])
            finally:  # the other blocks finish (or fail) before this returns or raises
                rest = [f.result() for f in futures]
        return [first, *rest]

    def _empty(self, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialized array of ``shape`` and the backend's dtype for a layer's output:
        one that an earlier call returned and that nothing holds any longer (no variable, list,
        view or other array refers to it: Python's reference count says so), else a new one.

        Why: the arrays of a training step are freed at its end and allocated again at the
        next, and glibc returns large freed blocks to the system and faults them in again,
        page by page, at the next use. Measured on an ARSM step (4600 decoder rows, one
        thread, one process, 6 alternating rounds of 10 steps): 2 729 page faults a step and
        179.3 ms best / 182.6 median without the pool, none and 170.5 / 171.9 with it.
        An array the caller still holds is never handed out again, so no result is
        overwritten behind its owner's back."""
        with self._pool_lock:  # blocks of work on other threads take from the same pool
            pool = self._pool.get(shape)
            if pool is None:
                if len(self._pool) >= _POOL_SHAPES:
                    self._pool.clear()
                pool = self._pool[shape] = []
            for i in range(len(pool)):
                if _references(pool, i) == _UNHELD:
                    return pool[i]  # held by the caller from here on, before the lock opens
            a = np.empty(shape, self.dtype)
            if len(pool) < _POOL_PER_SHAPE:
                pool.append(a)
            return a

    def asarray(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        dt = np.int64 if np.issubdtype(a.dtype, np.integer) else self.dtype
        return np.array(a, dtype=dt, order="C")

    def to_host(self, a: np.ndarray) -> np.ndarray:
        return np.array(a)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, self.dtype)

    def linear(self, x, W, b, act, slope, sparse_input=False):
        y = self._empty((x.shape[0], W.shape[1]))
        if sparse_input:
            K.pick(K.sparse_linear, y.size)(x, W, b, act, slope, y)
            return y
        np.dot(x, W, out=y)
        K.pick(K.bias_act, y.size)(y, b, act, slope)
        return y

    def linear_backward(self, x, W, dy, need_dx, sparse_input=False):
        dW = self._empty(W.shape)
        if sparse_input:
            K.pick(K.sparse_linear_weight_grad, W.size)(x, dy, dW)
        else:
            np.dot(x.T, dy, out=dW)
        db = self._empty((W.shape[1],))
        K.pick(K.column_sums, dy.size)(dy, db)
        dx = None
        if need_dx:
            dx = self._empty((dy.shape[0], W.shape[0]))
            np.dot(dy, W.T, out=dx)
        return dx, dW, db

    def act_backward(self, h, dh, slope):
        K.pick(K.act_backward, h.size)(h, dh, slope)
        return dh

    def onehot_linear(self, z, W, b, C, act, slope):
        y = self._empty((z.shape[0], W.shape[1]))
        K.pick(K.onehot_linear, y.size)(z, W, b, C, act, slope, y)
        return y

    def onehot_linear_backward(self, z, dy, C):
        dW = self._empty((z.shape[1] * C, dy.shape[1]))
        K.pick(K.onehot_linear_backward, dy.size)(z, dy, C, dW)
        db = self._empty((dy.shape[1],))
        K.pick(K.column_sums, dy.size)(dy, db)
        return dW, db

    def loglik_grad(self, logits, x, G, scale):
        f = K.loglik_grad(logits, x, G, scale, True, self._loglik_scratch(logits))
        return f, logits

    def loglik(self, logits, x, G):
        return K.loglik_grad(logits, x, G, 0.0, False, self._loglik_scratch(logits))

    def _loglik_scratch(self, logits):
        # the float64 likelihood's exp(-|l|) goes through an array; the float32 one needs none
        return self._empty(logits.shape) if logits.dtype == np.float64 else None

    def scale_(self, a, s):
        a *= s

    def adam(self, p, g, m, v, t, lr, b1, b2, eps):
        K.pick(K.adam, p.size)(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), lr, b1, b2, eps,
               1.0 - b1**t, 1.0 - b2**t)


def get_ops(backend: str, dtype: type | None = None, threads: int | None = None):
    """The ops of ``backend`` (``"numpy"``, ``"cpu"`` or ``"cuda"``); float32 by default on the
    fast backends, float64 on the reference. ``threads``: the CPU backend's workers
    (:class:`CpuOps`; default Numba's thread count, capped by BLAS's); the other backends
    take none."""
    if threads is not None and backend != "cpu":
        raise ValueError(f"threads applies to the 'cpu' backend only, not {backend!r}")
    if backend == "numpy":
        return NumpyOps(np.float64 if dtype is None else dtype)
    if backend == "cpu":
        return CpuOps(np.float32 if dtype is None else dtype, threads)
    if backend == "cuda":
        from ._layers_cuda import CudaOps

        return CudaOps(np.float32 if dtype is None else dtype)
    raise ValueError(f"backend must be 'numpy', 'cpu' or 'cuda', got {backend!r}")
