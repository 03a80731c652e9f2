"""Numba CPU kernels of the VAE layers (formulas in :mod:`reference.models.layers`).

Matrix products go to BLAS through ``numpy.dot`` with preallocated outputs; everything
else (bias and LeakyReLU, their backward pass, the one-hot layer and its scatter-add, the
Bernoulli log-likelihood and its gradient, Adam) runs in Numba kernels whose ``prange``
iterations write disjoint slices, so results are the same on every run and the same with or
without threads.

Vectorization. A per-element loop runs at SIMD width only if LLVM can vectorize it, and two
things of Numba's defaults stop it: the Python error model (a division checks its divisor
and may raise, a branch in every iteration) and the strict order of float sums (a row sum is
a chain of dependent additions). The kernels marked ``_VECTOR`` use NumPy's error model
(``x / 0`` gives ``inf``, never raised here: every divisor is positive) and allow the row
sums of the likelihood to be reassociated into SIMD lanes: the order is fixed by the
compiled code, so results are still the same on every run and with any number of threads,
but differ from a left-to-right sum by rounding. ``math.exp`` is a call into libm that no
loop around it vectorizes (Numba has no vector math library without Intel's SVML). The
float32 likelihood computes ``exp(-|l|)`` itself in plain arithmetic (range reduction and a
polynomial, :func:`_exp_neg_abs32`), which vectorizes, in the same pass as the rest; the
float64 one takes it from NumPy's SIMD ``exp`` in a separate pass (one kernel writes
``-|l|``, ``numpy.exp`` exponentiates in place, one kernel finishes). On a ``(1000, 784)``
float32 batch (one thread, this machine's AMD EPYC) the likelihood and its gradient went from
4.3 ms (libm) to about 0.8 ms (NumPy's exp); on ``(4600, 784)``, 4.3 ms that way and 2.4 ms
in one pass.

Each kernel is compiled twice: ``parallel=True`` and serial (a twin kernel); :func:`pick`
runs the serial twin on inputs below ``PARALLEL_MIN_WORK`` elements or with one Numba thread,
where waking a thread pool costs more than it saves, and a busy machine can make it cost a
great deal.
"""

from __future__ import annotations

import math
from functools import partial

import numba
import numpy as np
from numba import njit, prange

from .. import _cpu
from ._layers_core import build

#: Numba options of the kernels that must vectorize (see the module docstring)
_VECTOR = {"error_model": "numpy", "fastmath": {"reassoc", "nsz", "contract"}}
#: the shared element functions with NumPy's error model, so that Adam's division vectorizes
#: (no reassociation: they hold no sums)
CORE = build(partial(njit, error_model="numpy"), _cpu.CORE)
lrelu = CORE.lrelu
lrelu_grad = CORE.lrelu_grad
onehot_linear_row = CORE.onehot_linear_row
adam_elem = CORE.adam_elem

#: below this many elements of work a kernel runs serially. The kernels run between BLAS
#: calls, whose threads still hold the cores for a while after returning, so waking Numba's
#: pool costs more than the kernel itself: measured on 2 cores (workqueue layer), a
#: REINFORCE-LOO training step took 32.3 ms best / 33.0 median with 2^15 here and 30.3 /
#: 30.9 with 2^20 (8 alternating rounds of 10 steps each), and in an ARSM step at 2 threads
#: every kernel above 2^20 elements (4600 x 256 and larger) took longer in parallel than
#: serially at one thread (the one-hot layer 4.7 ms against 3.1 ms, the column sums 2.1
#: against 1.0). Larger batches on machines with more cores still get the parallel kernels
PARALLEL_MIN_WORK = 1 << 22

#: the layers' kernels are twin kernels (:func:`reference._cpu.twin_kernel`: ``parallel=True``
#: and serial, both without the GIL: the blocks of :meth:`CpuOps.run` call them from several
#: Python threads at once); used bare (``@_kernel``) or with Numba options
#: (``@_kernel(**_VECTOR)``)
_kernel = _cpu.twin_kernel

#: within this block (in this thread) :func:`pick` gives the serial twins, and the estimators'
#: twin kernels run serially (see :mod:`reference._cpu`)
serial_kernels = _cpu.serial_kernels
in_serial_block = _cpu.in_serial_block


def pick(kernel, work: int):
    """The twin kernel's ``parallel`` one for ``work >= PARALLEL_MIN_WORK`` elements and more
    than one Numba thread, outside :func:`serial_kernels`; else its ``serial`` one (with one
    thread a parallel
    launch is pure overhead: measured 5.7 ms against 2.4 ms for the one-hot layer of an ARSM
    step, 4600 x 256)."""
    if work >= PARALLEL_MIN_WORK and numba.get_num_threads() > 1 and not in_serial_block():
        return kernel.parallel
    return kernel.serial


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


#: columns per task of column_sums: its float64 accumulators (8 KiB) stay in L1 while each
#: row streams through; narrower blocks re-read every row once per block (128 columns: 0.70
#: ms for a (4600, 784) float32 array, against 0.29 ms with the whole row). The sums do not
#: depend on it: every column adds its rows in order
_COLUMN_BLOCK = 1024


@_kernel
def column_sums(dy, out):
    # out (O,) = sum_n dy[n]; float64 accumulation in fixed column blocks, each summed over
    # the rows in order (the same result with any number of threads)
    O = dy.shape[1]
    nblk = (O + _COLUMN_BLOCK - 1) // _COLUMN_BLOCK
    for blk in prange(nblk):
        _column_sums_block(dy, blk * _COLUMN_BLOCK, min(O, (blk + 1) * _COLUMN_BLOCK), out)


@njit
def _nonzero(v, idx):
    # the indices of the nonzero entries of v (C or strided) into idx, in increasing order;
    # returns their count
    cnt = 0
    for i in range(v.shape[0]):
        if v[i] != 0:
            idx[cnt] = i
            cnt += 1
    return cnt


@njit
def _add_scaled_rows(acc, coef, rows, idx, cnt):
    # acc += coef[i] rows[i] for i = idx[0], ..., idx[cnt - 1], added one after the other in
    # that order. Four rows share each pass over acc, as acc + a0 r0 + a1 r1 + a2 r2 + a3 r3
    # evaluated left to right: the very additions of four passes, so the same sums bit for
    # bit, with a quarter of acc's loads and stores (a (100, 784) x (784, 512) float32 product
    # at 13% nonzero inputs, one thread: 0.53 ms -> 0.35 ms; its weight gradient 0.64 ->
    # 0.37 ms)
    t = 0
    while t + 4 <= cnt:
        i0, i1, i2, i3 = idx[t], idx[t + 1], idx[t + 2], idx[t + 3]
        a0, a1, a2, a3 = coef[i0], coef[i1], coef[i2], coef[i3]
        r0, r1, r2, r3 = rows[i0], rows[i1], rows[i2], rows[i3]
        for j in range(acc.shape[0]):
            acc[j] = acc[j] + a0 * r0[j] + a1 * r1[j] + a2 * r2[j] + a3 * r3[j]
        t += 4
    while t < cnt:
        i0 = idx[t]
        a0, r0 = coef[i0], rows[i0]
        for j in range(acc.shape[0]):
            acc[j] += a0 * r0[j]
        t += 1


@_kernel
def sparse_linear(x, W, b, act, slope, out):
    # out (N, O) = b + sum_{i: x_ni != 0} x_ni W[i] in increasing i (x W + b with the zero
    # inputs skipped: binarized MNIST has about 1 pixel in 7 on, so the encoder's first layer
    # does a seventh of a product's work), then LeakyReLU in place if act
    N, I = x.shape
    for n in prange(N):
        o, xr = out[n], x[n]
        idx = np.empty(I, np.int64)
        cnt = _nonzero(xr, idx)
        for j in range(o.shape[0]):
            o[j] = b[j]
        _add_scaled_rows(o, xr, W, idx, cnt)
        if act:
            for j in range(o.shape[0]):
                o[j] = lrelu(o[j], slope)


@_kernel
def sparse_linear_weight_grad(x, dy, dW):
    # dW (I, O) = x^T dy with the zero inputs skipped: row i sums x_ni dy[n] over the n with
    # x_ni != 0, in increasing n (the same result with any number of threads)
    N, I = x.shape
    for i in prange(I):
        g, col = dW[i], x[:, i]
        idx = np.empty(N, np.int64)
        cnt = _nonzero(col, idx)
        for j in range(g.shape[0]):
            g[j] = 0.0
        _add_scaled_rows(g, col, dy, idx, cnt)


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


@_kernel(**_VECTOR)
def neg_abs(a, out):
    # out (N, D) = -|a|: the argument of NumPy's exp in the likelihood
    for n in prange(a.shape[0]):
        row, o = a[n], out[n]
        for d in range(row.shape[0]):
            o[d] = -abs(row[d])


#: inlined in Numba's IR, so that `one` and `scale` are constants or loop invariants of the
#: caller's loop (called, the float32 pass measured 3-4% slower)
@njit(inline="always", **_VECTOR)
def _loglik_row(logit, e, x, scale, want_grad, one):
    # sum_d x_d l_d - softplus(l_d) and, if want_grad, logit_d <- scale (x_d - sigmoid(l_d)) in
    # place, from e_d = exp(-|l_d|) (loglik_grad_row of _layers_core with the exp taken
    # beforehand): softplus(l) = max(l, 0) + log(1 + e), sigmoid(l) = 1 / (1 + e) for l >= 0,
    # e / (1 + e) otherwise. log(1 + e_d) is summed as the log of the product of the factors
    # 1 + e_d in (1, 2], one log per 512 pixels (no overflow in float64); the sums are float64,
    # the sigmoid is in the type of `one` and `scale` (1 and the scale as float32 for float32
    # logits: 16 lanes a division, not 8). Every block is sliced so that the loop index starts
    # at 0 (an offset index keeps a negative-index check that stops vectorization), and the
    # gradient overwrites the very slice it reads (through another array LLVM would have to
    # check for overlap)
    D = logit.shape[0]
    acc = 0.0
    logs = 0.0
    for lo in range(0, D, 512):
        hi = min(D, lo + 512)
        lb, eb, xb = logit[lo:hi], e[lo:hi], x[lo:hi]
        prod = 1.0
        if want_grad:
            for d in range(hi - lo):
                ld, ed, xd = lb[d], eb[d], xb[d]
                prod *= 1.0 + np.float64(ed)
                acc += np.float64(xd) * np.float64(ld) - (np.float64(ld) if ld > 0 else 0.0)
                lb[d] = scale * (xd - (one if ld >= 0 else ed) / (one + ed))
        else:
            for d in range(hi - lo):
                ld = lb[d]
                prod *= 1.0 + np.float64(eb[d])
                acc += np.float64(xb[d]) * np.float64(ld) - (np.float64(ld) if ld > 0 else 0.0)
        logs += math.log(prod)
    return acc - logs


@_kernel(**_VECTOR)
def loglik_from_exp(logits, e, x, G, scale, want_grad, f):
    # logits, e = exp(-|logits|) (N, D), x (B, D) with N = B G -> f (N,) and, if want_grad,
    # logits <- scale (x - sigmoid(logits)) in place
    for n in prange(logits.shape[0]):
        f[n] = _loglik_row(logits[n], e[n], x[n // G], scale, want_grad, 1.0)


#: float32 constants of :func:`_exp_neg_abs32` (typed so that no arithmetic goes to float64):
#: Cody and Waite's split of log 2 (``_LN2_HI`` has 9 significant bits, so ``k _LN2_HI`` is
#: exact for every ``|k| <= 126``) and Cephes' minimax polynomial of ``expf`` on
#: ``|r| <= log(2) / 2``
_F32 = np.float32
_LOG2E, _HALF, _ONE, _ZERO = _F32(1.4426950408889634), _F32(0.5), _F32(1.0), _F32(0.0)
_LN2_HI, _LN2_LO = _F32(0.693359375), _F32(-2.12194440e-4)
_EXP_P = tuple(_F32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
#: below this argument exp underflows the normal float32 range (log of 2^-126 is -87.34);
#: the kernel gives 0 there, an error under 1.2e-38 next to the 1 it is added to
_EXP_CUT = _F32(-87.3)
#: what may be reassociated in the exponential: nothing (the split ``(t - k hi) - k lo``
#: must be kept as written); fused multiply-adds may be formed
_EXACT_ORDER = {"error_model": "numpy", "fastmath": {"nsz", "contract"}}


@njit(**_EXACT_ORDER)
def _exp_neg_abs32(l, e, bits):
    # e = exp(-|l|) for float32 l (D,) into float32 e (D,), bits int32 (D,) scratch: k =
    # round(t / log 2), r = t - k log 2, e = p(r) 2^k with 2^k built from its exponent bits.
    # Pure arithmetic, so LLVM vectorizes it (libm's expf is a call per element); within 1
    # ulp of the float64 exponential rounded (measured on 2 10^5 arguments in [-87.3, 0];
    # NumPy's float32 exp: 2.4 ulp). NaN gives NaN
    p0, p1, p2, p3, p4, p5 = _EXP_P
    for d in range(l.shape[0]):
        t = -abs(l[d])
        t = t if t > _EXP_CUT else _EXP_CUT
        k = np.floor(t * _LOG2E + _HALF)
        r = (t - k * _LN2_HI) - k * _LN2_LO
        e[d] = (((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5) * (r * r) + r + _ONE
        bits[d] = (np.int32(k) + 127) << 23
    scale = bits.view(np.float32)
    for d in range(l.shape[0]):
        t = -abs(l[d])
        v = e[d] * scale[d]
        e[d] = v if t >= _EXP_CUT else (_ZERO if t < _EXP_CUT else t)


@njit(**_VECTOR)
def _loglik_row32(logit, x, scale, want_grad, e, bits):
    # _loglik_row for float32 logits with the exponential computed here (_exp_neg_abs32 into
    # the scratch e, bits) instead of by NumPy in a pass of its own: a row is read once
    _exp_neg_abs32(logit, e, bits)
    return _loglik_row(logit, e, x, np.float32(scale), want_grad, _ONE)


#: rows per task of loglik_grad32 (its scratch is allocated once per task)
_LOGLIK_ROWS = 64


@_kernel
def loglik_grad32(logits, x, G, scale, want_grad, f):
    # float32 logits (N, D), x (B, D) with N = B G -> f (N,) float64 and, if want_grad,
    # logits <- scale (x - sigmoid(logits)) in place
    N, D = logits.shape
    ntask = (N + _LOGLIK_ROWS - 1) // _LOGLIK_ROWS
    for task in prange(ntask):
        e = np.empty(D, np.float32)
        bits = np.empty(D, np.int32)
        for n in range(task * _LOGLIK_ROWS, min(N, (task + 1) * _LOGLIK_ROWS)):
            f[n] = _loglik_row32(logits[n], x[n // G], scale, want_grad, e, bits)


def loglik_grad(logits, x, G, scale, want_grad=True, scratch=None):
    """``f`` float64 ``(N,)`` for logits ``(N, D)`` and data ``x`` ``(B, D)``, ``N = B G``; with
    ``want_grad`` the logits are overwritten by ``scale (x - sigmoid(logits))``.

    float32: one kernel (:func:`loglik_grad32`) with its own vectorized exponential (a
    ``(4600, 784)`` batch, one thread: 4.3 ms -> 2.4 ms against the float64 path below).
    float64: ``-|l|`` by a kernel, NumPy's SIMD ``exp`` in place (into ``scratch``, an array of
    the logits' shape and dtype, allocated when ``None``), then the kernel that finishes."""
    f = np.empty(logits.shape[0])
    if logits.dtype == np.float32:
        pick(loglik_grad32, logits.size)(logits, x, G, scale, want_grad, f)
        return f
    e = np.empty_like(logits) if scratch is None else scratch
    pick(neg_abs, logits.size)(logits, e)
    np.exp(e, out=e)
    pick(loglik_from_exp, logits.size)(logits, e, x, G, scale, want_grad, f)
    return f


@_kernel
def adam(p, g, m, v, lr, b1, b2, eps, c1, c2):
    # flat (P,) arrays, updated in place
    for i in prange(p.shape[0]):
        adam_elem(p, g, m, v, i, lr, b1, b2, eps, c1, c2)


@njit(nogil=True)
def _categorical_entropy_rows(alpha, H, dH):
    # alpha (B, K, C) float64 -> H (B,) and dH (B, K, C): layers.categorical_entropy_and_grad
    # row by row, with its formulas (log p = (alpha - max) - log sum exp(alpha - max),
    # p = exp(log p), H_k = -sum_c p log p, dH = -p (log p + H_k)) and libm's exp and log
    B, K, C = alpha.shape
    p = np.empty(C)
    for b in range(B):
        total = 0.0
        for k in range(K):
            a, d = alpha[b, k], dH[b, k]
            m = a[0]
            for c in range(1, C):
                if a[c] > m:
                    m = a[c]
            s = 0.0
            for c in range(C):
                s += math.exp(a[c] - m)
            lse = math.log(s)
            Hk = 0.0
            for c in range(C):
                d[c] = (a[c] - m) - lse
                p[c] = math.exp(d[c])
                Hk -= p[c] * d[c]
            for c in range(C):
                d[c] = -p[c] * (d[c] + Hk)
            total += Hk
        H[b] = total


def categorical_entropy_and_grad(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(H, dH/dalpha)`` of :func:`reference.models.layers.categorical_entropy_and_grad` for
    float64 logits ``alpha`` ``(B, K, C)``: ``H`` ``(B,)``, ``dH`` ``(B, K, C)``. One compiled
    pass instead of about ten NumPy calls (a training step's ``(100, 20, 10)``: 0.35 ms in
    NumPy); equal to the NumPy formulas to rounding (libm's ``exp``/``log``, not NumPy's)."""
    alpha = np.ascontiguousarray(alpha, dtype=np.float64)
    H = np.empty(alpha.shape[0])
    dH = np.empty_like(alpha)
    _categorical_entropy_rows(alpha, H, dH)
    return H, dH
