"""Numba CUDA kernels of the VAE layers and the CUDA ops (formulas in :mod:`reference.models.layers`).

Every kernel is registered with explicit signatures through :func:`reference._cuda.kernel`, so
``python -m reference.ptx`` compiles it to PTX without a GPU. Kernels use grid-stride loops,
write into preallocated device arrays and return nothing; :class:`CudaOps` allocates and
launches. The element arithmetic comes from :mod:`reference.models._layers_core`, compiled for
the device, so it is the CPU kernels' arithmetic.

Matrix products: ``C = op(A) op(B)`` with ``op`` the identity or the transpose, a tiled kernel
with ``TILE x TILE`` blocks staging tiles of ``A`` and ``B`` in shared memory; every entry sums
its products in increasing ``k`` in float64, then rounds once to the output's dtype.
``TILE`` is 16 on a GPU and 4 under the CUDA simulator (where each thread is a Python thread);
the sum order, hence the result, does not depend on it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import boolean, cuda, float64, int64
from numba import config as numba_config

from .. import _cuda
from .. import config as cfg
from .._cuda import FLOATS, arr, kernel, launch
from ._blocks import SerialBlocks
from ._layers_core import build

CORE = build(cuda.jit(device=True), _cuda.CORE)
lrelu = CORE.lrelu
lrelu_grad = CORE.lrelu_grad
loglik_grad_row = CORE.loglik_grad_row
onehot_linear_elem = CORE.onehot_linear_elem
adam_elem = CORE.adam_elem

TILE = 4 if numba_config.ENABLE_CUDASIM else 16


def _matmul(A, B, out, transA, transB):
    # out (M, N) = op(A) (M, Kd) @ op(B) (Kd, N); one block per TILE x TILE tile of out,
    # grid-stride over tiles; shared tiles of op(A) and op(B)
    sA = cuda.shared.array((TILE, TILE), dtype=A.dtype)
    sB = cuda.shared.array((TILE, TILE), dtype=B.dtype)
    M, N = out.shape
    Kd = A.shape[0] if transA else A.shape[1]
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    tiles_m = (M + TILE - 1) // TILE
    tiles_n = (N + TILE - 1) // TILE
    for tm in range(cuda.blockIdx.y, tiles_m, cuda.gridDim.y):
        for tn in range(cuda.blockIdx.x, tiles_n, cuda.gridDim.x):
            i = tm * TILE + ty
            j = tn * TILE + tx
            acc = 0.0  # float64 accumulation
            for k0 in range(0, Kd, TILE):
                ka = k0 + tx
                if i < M and ka < Kd:
                    sA[ty, tx] = A[ka, i] if transA else A[i, ka]
                else:
                    sA[ty, tx] = 0
                kb = k0 + ty
                if kb < Kd and j < N:
                    sB[ty, tx] = B[j, kb] if transB else B[kb, j]
                else:
                    sB[ty, tx] = 0
                cuda.syncthreads()
                for kk in range(TILE):
                    acc += sA[ty, kk] * sB[kk, tx]
                cuda.syncthreads()
            if i < M and j < N:
                out[i, j] = acc


def _bias_act(y, b, act, slope):
    N, O = y.shape
    for t in range(cuda.grid(1), N * O, cuda.gridsize(1)):
        n, j = t // O, t % O
        a = y[n, j] + b[j]
        y[n, j] = lrelu(a, slope) if act else a


def _act_backward(h, dh, slope):
    N, O = h.shape
    for t in range(cuda.grid(1), N * O, cuda.gridsize(1)):
        n, j = t // O, t % O
        dh[n, j] = lrelu_grad(h[n, j], dh[n, j], slope)


def _column_sums(dy, out):
    # one thread per column, rows summed in order in float64
    N, O = dy.shape
    for j in range(cuda.grid(1), O, cuda.gridsize(1)):
        acc = 0.0
        for n in range(N):
            acc += dy[n, j]
        out[j] = acc


def _onehot_linear(z, W, b, C, act, slope, out):
    N, O = out.shape
    for t in range(cuda.grid(1), N * O, cuda.gridsize(1)):
        n, j = t // O, t % O
        out[n, j] = onehot_linear_elem(z[n], W, b, C, act, slope, j)


def _onehot_linear_backward(z, dy, C, dW):
    # thread (k, j) owns dW[k C : k C + C, j]: zero it, then add dy[n, j] at row k C + z[n, k]
    N, K = z.shape
    O = dy.shape[1]
    for t in range(cuda.grid(1), K * O, cuda.gridsize(1)):
        k, j = t // O, t % O
        for c in range(C):
            dW[k * C + c, j] = 0
        for n in range(N):
            dW[k * C + z[n, k], j] += dy[n, j]


def _loglik_grad(logits, x, G, scale, f, dlogits):
    for n in range(cuda.grid(1), logits.shape[0], cuda.gridsize(1)):
        f[n] = loglik_grad_row(logits[n], x[n // G], scale, True, dlogits[n])


def _loglik(logits, x, G, f):
    for n in range(cuda.grid(1), logits.shape[0], cuda.gridsize(1)):
        f[n] = loglik_grad_row(logits[n], x[n // G], 0.0, False, logits[n])


def _adam(p, g, m, v, lr, b1, b2, eps, c1, c2):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        adam_elem(p, g, m, v, i, lr, b1, b2, eps, c1, c2)


def _scale(a, s):
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[i] *= s


matmul_kernel = kernel("vae_matmul", [
    (arr(f, 2), arr(f, 2), arr(f, 2), boolean, boolean) for f in FLOATS])(_matmul)
bias_act_kernel = kernel("vae_bias_act", [
    (arr(f, 2), arr(f, 1), boolean, float64) for f in FLOATS])(_bias_act)
act_backward_kernel = kernel("vae_act_backward", [
    (arr(f, 2), arr(f, 2), float64) for f in FLOATS])(_act_backward)
column_sums_kernel = kernel("vae_column_sums", [
    (arr(f, 2), arr(f, 1)) for f in FLOATS])(_column_sums)
onehot_linear_kernel = kernel("vae_onehot_linear", [
    (arr(int64, 2), arr(f, 2), arr(f, 1), int64, boolean, float64, arr(f, 2))
    for f in FLOATS])(_onehot_linear)
onehot_linear_backward_kernel = kernel("vae_onehot_linear_backward", [
    (arr(int64, 2), arr(f, 2), int64, arr(f, 2)) for f in FLOATS])(_onehot_linear_backward)
loglik_grad_kernel = kernel("vae_loglik_grad", [
    (arr(f, 2), arr(f, 2), int64, float64, arr(float64, 1), arr(f, 2)) for f in FLOATS])(_loglik_grad)
loglik_kernel = kernel("vae_loglik", [
    (arr(f, 2), arr(f, 2), int64, arr(float64, 1)) for f in FLOATS])(_loglik)
adam_kernel = kernel("vae_adam", [
    (arr(f, 1), arr(f, 1), arr(f, 1), arr(f, 1), float64, float64, float64, float64, float64, float64)
    for f in FLOATS])(_adam)
scale_kernel = kernel("vae_scale", [(arr(f, 1), float64) for f in FLOATS])(_scale)


def matmul(A, B, out, transA: bool = False, transB: bool = False) -> None:
    """``out = op(A) op(B)`` on the device (host wrapper: launch geometry only)."""
    M, N = out.shape
    tiles_m, tiles_n = math.ceil(M / TILE), math.ceil(N / TILE)
    cap = int(cfg.CUDA_MAX_BLOCKS)  # the kernel grid-strides over the tiles beyond the grid
    grid = (max(1, min(tiles_n, cap)), max(1, min(tiles_m, cap, 65535)))
    matmul_kernel[grid, (TILE, TILE)](A, B, out, transA, transB)


class CudaOps(SerialBlocks):
    """The ops of :mod:`reference.models.ops` on device arrays (float32 or float64)."""

    name = "cuda"

    def __init__(self, dtype: type = np.float32) -> None:
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.dtype = np.dtype(dtype)

    def asarray(self, a):
        a = np.asarray(a)
        dt = np.int64 if np.issubdtype(a.dtype, np.integer) else self.dtype
        return cuda.to_device(np.ascontiguousarray(a, dtype=dt))

    def to_host(self, a) -> np.ndarray:
        return a.copy_to_host()

    def zeros(self, shape: tuple[int, ...]):
        return cuda.to_device(np.zeros(shape, self.dtype))

    def _empty(self, shape: tuple[int, ...]):
        return cuda.device_array(shape, dtype=self.dtype)

    def linear(self, x, W, b, act, slope, sparse_input=False):  # the hint is for the CPU
        y = self._empty((x.shape[0], W.shape[1]))
        matmul(x, W, y)
        launch(bias_act_kernel, y.size, y, b, bool(act), float(slope))
        return y

    def linear_backward(self, x, W, dy, need_dx, sparse_input=False):
        dW = self._empty(W.shape)
        matmul(x, dy, dW, transA=True)
        db = self._empty((W.shape[1],))
        launch(column_sums_kernel, W.shape[1], dy, db)
        dx = None
        if need_dx:
            dx = self._empty((dy.shape[0], W.shape[0]))
            matmul(dy, W, dx, transB=True)
        return dx, dW, db

    def act_backward(self, h, dh, slope):
        launch(act_backward_kernel, h.size, h, dh, float(slope))
        return dh

    def onehot_linear(self, z, W, b, C, act, slope):
        y = self._empty((z.shape[0], W.shape[1]))
        launch(onehot_linear_kernel, y.size, z, W, b, int(C), bool(act), float(slope), y)
        return y

    def onehot_linear_backward(self, z, dy, C):
        dW = self._empty((z.shape[1] * C, dy.shape[1]))
        launch(onehot_linear_backward_kernel, z.shape[1] * dy.shape[1], z, dy, int(C), dW)
        db = self._empty((dy.shape[1],))
        launch(column_sums_kernel, dy.shape[1], dy, db)
        return dW, db

    def loglik_grad(self, logits, x, G, scale):
        f = cuda.device_array(logits.shape[0], dtype=np.float64)
        launch(loglik_grad_kernel, logits.shape[0], logits, x, int(G), float(scale), f, logits)
        return f.copy_to_host(), logits

    def loglik(self, logits, x, G):
        f = cuda.device_array(logits.shape[0], dtype=np.float64)
        launch(loglik_kernel, logits.shape[0], logits, x, int(G), f)
        return f.copy_to_host()

    def scale_(self, a, s):
        launch(scale_kernel, a.size, a.reshape(a.size), float(s))

    def adam(self, p, g, m, v, t, lr, b1, b2, eps):
        flat = [a.reshape(a.size) for a in (p, g, m, v)]
        launch(adam_kernel, p.size, *flat, float(lr), float(b1), float(b2), float(eps),
               1.0 - b1**t, 1.0 - b2**t)
