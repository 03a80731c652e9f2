"""Numba CPU kernels of the VAE layers (formulas in :mod:`reference.models.layers`).

Matrix products go to BLAS through ``numpy.dot`` with preallocated outputs; everything
else (bias and LeakyReLU, their backward pass, the one-hot layer and its scatter-add, the
Bernoulli log-likelihood and its gradient, Adam) runs in Numba kernels whose ``prange``
iterations write disjoint slices, so results are the same on every run and the same with or
without threads. Each kernel is compiled twice: ``parallel=True`` and serial (suffix
``_serial``); :func:`pick` runs the serial twin on small inputs (below ``PARALLEL_MIN_WORK``
elements), where waking a thread pool costs more than it saves, and a busy machine can make
it cost a great deal.
"""

from __future__ import annotations

import types

import numpy as np
from numba import njit, prange

from .. import _cpu
from ._layers_core import build

CORE = build(njit, _cpu.CORE)
lrelu = CORE.lrelu
lrelu_grad = CORE.lrelu_grad
loglik_grad_row = CORE.loglik_grad_row
onehot_linear_row = CORE.onehot_linear_row
adam_elem = CORE.adam_elem

#: below this many elements of work a kernel runs serially
PARALLEL_MIN_WORK = 1 << 15
_SERIAL: dict = {}


def _kernel(fn):
    """``njit(parallel=True)`` of ``fn``, with a serial twin (own cache name) in ``_SERIAL``."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                              fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    par = njit(parallel=True)(fn)
    _SERIAL[par] = njit(twin)
    return par


def pick(kernel, work: int):
    """``kernel`` itself for ``work >= PARALLEL_MIN_WORK`` elements, else its serial twin."""
    return kernel if work >= PARALLEL_MIN_WORK else _SERIAL[kernel]


@_kernel
def bias_act(y, b, act, slope):
    # y (N, O) += b (O,), then LeakyReLU in place if act
    N, O = y.shape
    for n in prange(N):
        for j in range(O):
            a = y[n, j] + b[j]
            y[n, j] = lrelu(a, slope) if act else a


@_kernel
def act_backward(h, dh, slope):
    # dh (N, O) <- dh * (1 if h > 0 else slope), in place
    N, O = h.shape
    for n in prange(N):
        for j in range(O):
            dh[n, j] = lrelu_grad(h[n, j], dh[n, j], slope)


@njit
def _column_sums_block(dy, lo, hi, out):
    # out[lo:hi] = sum_n dy[n, lo:hi], float64 accumulation, rows in order. The row is taken
    # as a slice so that the inner loop's index is a plain range index: with an offset index
    # (acc[j - lo]) Numba keeps a negative-index check that stops LLVM from vectorizing the
    # loop (measured 10x slower)
    w = hi - lo
    acc = np.zeros(w)
    for n in range(dy.shape[0]):
        row = dy[n, lo:hi]
        for j in range(w):
            acc[j] += row[j]
    for j in range(w):
        out[lo + j] = acc[j]


@_kernel
def column_sums(dy, out):
    # out (O,) = sum_n dy[n]; float64 accumulation in fixed column blocks, each summed over
    # the rows in order (the same result with any number of threads)
    O = dy.shape[1]
    nblk = (O + 127) // 128
    for blk in prange(nblk):
        _column_sums_block(dy, blk * 128, min(O, blk * 128 + 128), out)


@_kernel
def onehot_linear(z, W, b, C, act, slope, out):
    # z (N, K) int64, W (K C, O), b (O,) -> out (N, O)
    for n in prange(z.shape[0]):
        onehot_linear_row(z[n], W, b, C, act, slope, out[n])


@_kernel
def onehot_linear_backward(z, dy, C, dW):
    # dW (K C, O) = e(z)^T dy: each k owns rows k C .. k C + C - 1 of dW (no races)
    N, K = z.shape
    O = dy.shape[1]
    for k in prange(K):
        for c in range(C):
            for j in range(O):
                dW[k * C + c, j] = 0.0
        for n in range(N):
            r = k * C + z[n, k]
            for j in range(O):
                dW[r, j] += dy[n, j]


@_kernel
def loglik_grad(logits, x, G, scale, f, dlogits):
    # logits (N, D), x (B, D) with N = B G -> f (N,), dlogits (N, D) (may alias logits)
    for n in prange(logits.shape[0]):
        f[n] = loglik_grad_row(logits[n], x[n // G], scale, True, dlogits[n])


@_kernel
def loglik(logits, x, G, f):
    for n in prange(logits.shape[0]):
        f[n] = loglik_grad_row(logits[n], x[n // G], 0.0, False, logits[n])


@_kernel
def adam(p, g, m, v, lr, b1, b2, eps, c1, c2):
    # flat (P,) arrays, updated in place
    for i in prange(p.shape[0]):
        adam_elem(p, g, m, v, i, lr, b1, b2, eps, c1, c2)
