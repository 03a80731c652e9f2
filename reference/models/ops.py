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

The NumPy backend is float64 only (the reference); the fast backends take float32 or float64.
"""

from __future__ import annotations

import numpy as np

from . import _layers_cpu as K
from . import layers as L

__all__ = ["NumpyOps", "CpuOps", "get_ops"]


class NumpyOps:
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


class CpuOps:
    """Numba CPU kernels (``_layers_cpu``) and BLAS matrix products, float32 or float64."""

    name = "cpu"

    def __init__(self, dtype: type = np.float32) -> None:
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.dtype = np.dtype(dtype)
        self._buffers: dict = {}

    def asarray(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        dt = np.int64 if np.issubdtype(a.dtype, np.integer) else self.dtype
        return np.array(a, dtype=dt, order="C")

    def to_host(self, a: np.ndarray) -> np.ndarray:
        return np.array(a)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, self.dtype)

    def linear(self, x, W, b, act, slope, sparse_input=False):
        y = np.empty((x.shape[0], W.shape[1]), self.dtype)
        if sparse_input:
            K.pick(K.sparse_linear, y.size)(x, W, b, act, slope, y)
            return y
        np.dot(x, W, out=y)
        K.pick(K.bias_act, y.size)(y, b, act, slope)
        return y

    def linear_backward(self, x, W, dy, need_dx, sparse_input=False):
        dW = np.empty(W.shape, self.dtype)
        if sparse_input:
            K.pick(K.sparse_linear_weight_grad, W.size)(x, dy, dW)
        else:
            np.dot(x.T, dy, out=dW)
        db = np.empty(W.shape[1], self.dtype)
        K.pick(K.column_sums, dy.size)(dy, db)
        dx = None
        if need_dx:
            dx = np.empty((dy.shape[0], W.shape[0]), self.dtype)
            np.dot(dy, W.T, out=dx)
        return dx, dW, db

    def act_backward(self, h, dh, slope):
        K.pick(K.act_backward, h.size)(h, dh, slope)
        return dh

    def onehot_linear(self, z, W, b, C, act, slope):
        y = np.empty((z.shape[0], W.shape[1]), self.dtype)
        K.pick(K.onehot_linear, y.size)(z, W, b, C, act, slope, y)
        return y

    def onehot_linear_backward(self, z, dy, C):
        dW = np.empty((z.shape[1] * C, dy.shape[1]), self.dtype)
        K.pick(K.onehot_linear_backward, dy.size)(z, dy, C, dW)
        db = np.empty(dy.shape[1], self.dtype)
        K.pick(K.column_sums, dy.size)(dy, db)
        return dW, db

    def _scratch(self, like: np.ndarray) -> np.ndarray:
        # one reused buffer per shape and dtype for exp(-|l|): a fresh array of megabytes is
        # touched page by page (measured in ARSM training steps, 4600 x 784 float32 logits, one
        # thread, 6 alternating rounds: the likelihood took 4.9 ms best / 5.7 median a step
        # with the reused buffer, 6.5 / 8.3 with a fresh one)
        key = (like.shape, like.dtype)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) >= 8:
                self._buffers.clear()
            buf = self._buffers[key] = np.empty_like(like)
        return buf

    def loglik_grad(self, logits, x, G, scale):
        f = K.loglik_grad(logits, x, G, scale, True, self._scratch(logits))
        return f, logits

    def loglik(self, logits, x, G):
        return K.loglik_grad(logits, x, G, 0.0, False, self._scratch(logits))

    def scale_(self, a, s):
        a *= s

    def adam(self, p, g, m, v, t, lr, b1, b2, eps):
        K.pick(K.adam, p.size)(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), lr, b1, b2, eps,
               1.0 - b1**t, 1.0 - b2**t)


def get_ops(backend: str, dtype: type | None = None):
    """The ops of ``backend`` (``"numpy"``, ``"cpu"`` or ``"cuda"``); float32 by default on the
    fast backends, float64 on the reference."""
    if backend == "numpy":
        return NumpyOps(np.float64 if dtype is None else dtype)
    if backend == "cpu":
        return CpuOps(np.float32 if dtype is None else dtype)
    if backend == "cuda":
        from ._layers_cuda import CudaOps

        return CudaOps(np.float32 if dtype is None else dtype)
    raise ValueError(f"backend must be 'numpy', 'cpu' or 'cuda', got {backend!r}")
