"""Numba CPU kernels shared by every estimator: the device functions and the samplers.

Kernels take batch-flattened, C-contiguous arrays, write into preallocated outputs and return
nothing; ``prange`` loops write only their own slice, so results are the same on every run.

No ``cache=True`` on kernels that call device functions of another file: Numba's on-disk cache
is keyed on the kernel's own source file, so an edit to ``_core.py`` would leave a stale
cached kernel running the old arithmetic.

Serial twins (:func:`twin_kernel`, :func:`serial_kernels`). Every estimator's CPU kernel is a
twin kernel: compiled twice, ``parallel=True`` and serially, both without the GIL. A call runs
the serial one

* inside :func:`serial_kernels` (in the calling thread): Numba's ``workqueue`` threading layer
  takes one parallel launch at a time (a second one from another thread aborts the process),
  so code that runs on several Python threads at once (the VAE's blocks of data points,
  :meth:`reference.models.ops.CpuOps.run`) must not launch parallel kernels;
* with one Numba thread (``numba.get_num_threads() == 1``), where a parallel launch is pure
  overhead: measured 86 us per launch of an empty kernel with the ``workqueue`` layer (the
  scripts' default), 1.7 us with OpenMP, against 0.2 us for a serial call.

Both twins run the same body, each ``prange`` iteration writing only its own rows, so they
give the same numbers.
"""

from __future__ import annotations

import math
import threading
import types
from contextlib import contextmanager
from functools import partial

import mpmath
import numba
import numpy as np
import numpy.typing as npt
from numba import njit, prange
from numba import types as nbtypes
from numba.extending import intrinsic

from ._core import build

#: per-thread state: ``serial`` is set inside :func:`serial_kernels`
_LOCAL = threading.local()


@contextmanager
def serial_kernels():
    """Within this block (in this thread) twin kernels run serially: for work on several
    Python threads at once, which must not start Numba's thread pool (its ``workqueue`` layer
    takes one parallel launch at a time, and the cores are already taken)."""
    before = getattr(_LOCAL, "serial", False)
    _LOCAL.serial = True
    try:
        yield
    finally:
        _LOCAL.serial = before


def in_serial_block() -> bool:
    """True inside :func:`serial_kernels` in this thread."""
    return getattr(_LOCAL, "serial", False)


def compile_twins(fn, **options):
    """``(parallel, serial)``: ``njit(parallel=True, nogil=True, **options)`` of ``fn`` and the
    same body compiled serially (``prange`` runs as ``range``) under its own name."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                              fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    return njit(parallel=True, nogil=True, **options)(fn), njit(nogil=True, **options)(twin)


class TwinKernel:
    """A kernel with a serial twin (:func:`compile_twins`): a call runs the serial one inside
    :func:`serial_kernels` or with one Numba thread (module docstring), the parallel one
    elsewhere. ``parallel`` and ``serial`` are the two Numba dispatchers."""

    def __init__(self, fn, **options) -> None:
        self.parallel, self.serial = compile_twins(fn, **options)
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__

    def __call__(self, *args):
        serial = in_serial_block() or numba.get_num_threads() == 1
        return (self.serial if serial else self.parallel)(*args)


def twin_kernel(fn=None, **options):
    """Decorator: :class:`TwinKernel` of ``fn``, bare (``@twin_kernel``) or with Numba options."""
    if fn is None:
        return partial(twin_kernel, **options)
    return TwinKernel(fn, **options)


def _exp2_table(N: int) -> tuple[np.ndarray, np.ndarray]:
    # 2^(j/N), j < N, as an unevaluated sum hi + lo of doubles (hi rounded, lo its error)
    with mpmath.workprec(200):
        t = [mpmath.power(2, mpmath.mpf(j) / N) for j in range(N)]
        hi = [float(v) for v in t]
        lo = [float(v - mpmath.mpf(h)) for v, h in zip(t, hi, strict=True)]
    return np.array(hi), np.array(lo)


def _split_ln2(N: int) -> tuple[float, float, float]:
    # N / log 2, and log(2) / N as hi + lo with hi's low 27 significand bits cleared, so that
    # n * hi is exact for every |n| < 2^26 (Cody and Waite's reduction)
    with mpmath.workprec(200):
        c = mpmath.log(2) / N
        bits = np.array([float(c)]).view(np.int64) & ~np.int64((1 << 27) - 1)
        hi = float(bits.view(np.float64)[0])
        return float(N / mpmath.log(2)), hi, float(c - mpmath.mpf(hi))


_EXP_N = 64
_EXP2_HI, _EXP2_LO = _exp2_table(_EXP_N)
_N_OVER_LN2, _LN2_N_HI, _LN2_N_LO = _split_ln2(_EXP_N)


@intrinsic
def _float64_from_bits(typingctx, bits):
    # the float64 whose IEEE bits are the int64 ``bits`` (a bitcast, no arithmetic)
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(nbtypes.float64))

    return nbtypes.float64(nbtypes.int64), codegen


@intrinsic
def _float64_bits(typingctx, x):
    # the IEEE bits of the float64 ``x`` as an int64 (a bitcast, no arithmetic)
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(nbtypes.int64))

    return nbtypes.int64(nbtypes.float64), codegen


@njit(error_model="numpy")
def exp(x):
    """``exp(x)`` for a float64 ``x``, in plain arithmetic that LLVM vectorizes (libm's ``exp``
    is a call per element): the kernels' exponential, passed to :func:`reference._core.build`.

    Tang's table method: ``n = round(64 x / log 2)``, ``r = x - n log(2) / 64`` (Cody and
    Waite's two-part reduction, exact for the first part), ``|r| <= log(2) / 128``; then
    ``exp(x) = 2^m (T + (T p(r) + T_lo))`` with ``n = 64 m + j``, ``2^(j/64) = T + T_lo`` from
    a table, and ``p(r) = exp(r) - 1`` by its Taylor polynomial of degree 6 (remainder under
    ``3e-20``): one rounding in the last addition, so within 0.51 ulp (measured: worst 0.509
    on 3 10^6 arguments in ``[-745, 0]``, against libm's 0.504; the two differ on 0.2% of
    arguments, NumPy's SIMD ``exp`` and libm on 4.6%). ``2^m`` is two powers of two built from
    their exponent bits, so that subnormal results are rounded once. Arguments are clamped to
    ``[-800, 800]`` (0 and ``inf`` beyond, as libm); NaN gives NaN.
    """
    t = x if x > -800.0 else -800.0
    t = t if t < 800.0 else 800.0
    n = np.int64(math.floor(t * _N_OVER_LN2 + 0.5))
    fn = np.float64(n)
    r = (t - fn * _LN2_N_HI) - fn * _LN2_N_LO
    p = r + r * r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0
                                                                  + r * (1.0 / 720.0)))))
    j = n & (_EXP_N - 1)
    th = _EXP2_HI[j]
    y = th + (th * p + _EXP2_LO[j])
    m = n >> 6
    m1 = m >> 1
    y = y * _float64_from_bits((m1 + 1023) << 52) * _float64_from_bits((m - m1 + 1023) << 52)
    return y if x == x else x


#: log(2) as hi + lo, hi with its low 21 significand bits clear: ``k * _LN2_HI`` is exact for
#: every exponent ``k`` of a double
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
#: fdlibm's ``e_log.c`` (Sun Microsystems, 1993): ``R(s) = Lg1 s^2 + ... + Lg7 s^14``, a Remez
#: fit with ``|2 s + s R(s) - log((1 + s) / (1 - s))| < 2^-58.45`` on ``|s| <= 0.1716``
_LG1, _LG2, _LG3, _LG4 = (6.666666666666735130e-01, 3.999999999940941908e-01,
                          2.857142874366239149e-01, 2.222219843214978396e-01)
_LG5, _LG6, _LG7 = 1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01
#: the bits of sqrt(2) / 2, rounded down to 32 bits: the reduced argument is in [0.7071, 1.4142)
_LOG_OFF = 0x3FE6A09E00000000


@njit(error_model="numpy")
def _log_hi_lo(x):
    # log(x) = hi + lo before the last rounding (:func:`log`), for a positive finite x
    sub = x < 2.2250738585072014e-308
    ix = _float64_bits(x * 4503599627370496.0 if sub else x)  # 2^52
    tmp = ix - _LOG_OFF
    k = (tmp >> 52) - (52 if sub else 0)
    z = _float64_from_bits(ix - (tmp & np.int64(-4503599627370496)))  # exponent of k removed
    f = z - 1.0
    s = f / (2.0 + f)
    dk = np.float64(k)
    zz = s * s
    w = zz * zz
    R = zz * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
    hfsq = 0.5 * f * f
    fh = _float64_from_bits(_float64_bits(f) & np.int64(-134217728))  # low 27 bits cleared
    fl = f - fh
    hh = 0.5 * fh * fh  # f^2 / 2 = hh + hl, hh exact
    hl = 0.5 * fl * (f + fh)
    hi = f - hh
    lo = (f - hi) - hh
    kh = dk * _LN2_HI
    hi2 = kh + hi
    lo2 = (kh - hi2) + hi
    return hi2, ((lo2 + lo) - hl) + (s * (hfsq + R) + dk * _LN2_LO)


@njit(error_model="numpy")
def log(x):
    """``log(x)`` for a float64 ``x``, in plain arithmetic without tables, so that LLVM
    vectorizes the loops around it (libm's ``log`` is a call per element): the kernels'
    logarithm, passed to :func:`reference._core.build` (the Gumbel noise ``-log(-log u)``).

    fdlibm's reduction and polynomial: ``x = 2^k z``, ``z`` in ``[sqrt(2)/2, sqrt(2))`` (integer
    arithmetic on the bits; subnormal ``x`` scaled by ``2^52`` first), ``f = z - 1`` (exact),
    ``s = f / (2 + f)``, ``log(1 + f) = f - f^2/2 + s (f^2/2 + R(s))``. Where fdlibm rounds
    ``f - f^2/2`` and the sum with ``k log(2)`` (0.75 ulp measured), here ``f^2/2`` is split
    exactly (Veltkamp: ``f = fh + fl``, ``fh`` with 26 bits, ``fh^2`` exact) and both sums keep
    their rounding errors (Fast2Sum: ``|f| > f^2/2`` and ``|k log 2| > |log z|``), which are
    added back with the small terms before the one last rounding. What is left is the rounding
    of ``s (f^2/2 + R)``, up to 5% of the result at the ends of the range: within 0.68 ulp
    (measured against 120-bit values: worst 0.654 on 10^6 arguments over the whole range, 0.667
    on 10^6 at the ends of the reduction's interval; fdlibm's own 0.75). It differs from libm
    on 0.7% of arguments (NumPy's SIMD ``log`` from libm on 0.35%); where they differ from
    this, libm is within 0.52 ulp and NumPy within 0.61.
    ``log(0) = -inf``, ``log(x < 0) = NaN``, ``log(inf) = inf``, NaN gives NaN.
    """
    hi, lo = _log_hi_lo(x)
    y = hi + lo
    # flat selects, not nested ones: a nested conditional expression keeps the loop scalar
    y = y if x < np.inf else x  # inf, NaN
    y = y if x > 0.0 else -np.inf
    return y if x >= 0.0 else np.nan


@njit(error_model="numpy")
def log1p(x):
    """``log(1 + x)`` for a float64 ``x``, vectorizable as :func:`log` (libm's ``log1p`` is a
    call per element): the kernels' ``log1p``, passed to :func:`reference._core.build` (the
    stable ``logaddexp``).

    ``u = 1 + x`` rounds; its rounding error ``d`` is exact (Fast2Sum: ``d = x - (u - 1)``
    for ``|x| <= 1``, ``1 - (u - x)`` above), and ``log(1 + x) = log(u) + d / u`` to within
    ``d^2 / u^2``. The correction is added to :func:`log`'s low part before its last rounding:
    within 0.68 ulp (measured against 120-bit values: worst 0.673 on 4.75 10^5 arguments, at
    ``1 + x`` near the reduction's ends; with the correction added after the rounded
    ``log(u)``, 1.006). It differs from libm's ``log1p`` on 4.4% of them.
    ``log1p(-1) = -inf``, ``log1p(x < -1) = NaN``, ``log1p(inf) = inf``, NaN gives NaN.
    """
    u = 1.0 + x
    d = (x - (u - 1.0)) if abs(x) <= 1.0 else (1.0 - (u - x))
    hi, lo = _log_hi_lo(u)
    y = hi + (lo + d / u)
    y = y if x < np.inf else x  # inf, NaN
    y = y if x > -1.0 else -np.inf
    return y if x >= -1.0 else np.nan


#: the decorator of the shared device functions (``CORE``) and the binary and REBAR families': a float
#: division by zero gives inf or NaN, as on CUDA, instead of Numba's default
#: ``ZeroDivisionError`` check, whose branch keeps LLVM from vectorizing the loops around it
#: (ARM's pairs: 9 ms without it, 4 ms with it and :func:`exp`, per 10^6 variables, one thread).
#: The other families keep the default: with this decorator alone their categorical kernels
#: measured 10-20% slower (REINFORCE-LOO's combine, Gumbel-Softmax's queries; not explained),
#: though REINFORCE's categorical row, inlined (INLINE_DEVICE) into a kernel with this error
#: model, measured 7% faster than called under the default (905-927 against 969-995 ns a
#: replicate, one thread, n = 2)
DEVICE = partial(njit, error_model="numpy")
#: DEVICE, compiled into its caller in Numba's IR (``inline="always"``): for the rows a kernel
#: calls once per replicate on short rows, where each call's array views cost a
#: reference-count pair (about 4 ns a view); the kernel takes NumPy's error model too, so that
#: the inlined loops still vectorize
INLINE_DEVICE = partial(DEVICE, inline="always")
CORE = build(DEVICE, exp=exp, log=log, log1p=log1p)
sigmoid = CORE.sigmoid
sample_bernoulli_row = CORE.sample_bernoulli_row
sample_categorical_row = CORE.sample_categorical_row
row_argmax = CORE.row_argmax


#: the Bernoulli row inlined into the sampler (INLINE_DEVICE; one thread, 65 536 replicates of
#: 16 variables: 48 -> 41 ns a replicate, the same samples)
_sample_bernoulli_row_inline = INLINE_DEVICE(CORE.sample_bernoulli_row.py_func)


@twin_kernel(error_model="numpy")
def _sample_bernoulli(phi, u, z):
    # phi (B, K), u (B, M, K) -> z (B, M, K)
    B, M = u.shape[0], u.shape[1]
    for t in prange(B * M):
        b, m = t // M, t % M
        _sample_bernoulli_row_inline(phi[b], u[b, m], z[b, m])


#: samples drawn per cached CDF in the categorical sampler (one task of its parallel loop)
_CHUNK = 64


@njit
def _categorical_cdf(alpha, cum):
    # alpha (K, C) -> cum (K, C): running sums S_c of exp(alpha_kc - max_c alpha_kc), left to
    # right: the very sums that sample_categorical_row recomputes for every sample (its max is
    # softmax_stats', that is row_argmax's; softmax_stats' total is not needed here)
    K, C = alpha.shape[0], alpha.shape[1]
    for k in range(K):
        m, _ = row_argmax(alpha, k)
        for c in range(C):  # the exps first, in a loop of their own, where they vectorize
            cum[k, c] = exp(alpha[k, c] - m)
        running = 0.0
        for c in range(C):
            running += cum[k, c]
            cum[k, c] = running


@njit
def _sample_from_cdf(cum, u, z):
    # z_k = min{c : u_k S_{C-1} < S_c} (C - 1 if none), as sample_categorical_row, counted
    # without a branch on the noise: S is non-decreasing, so the c with not (threshold < S_c)
    # are a prefix, and their count is that minimum (C when none: capped at C - 1). NaN
    # sums make the threshold NaN (S_{C-1} is NaN), where the row's answer is C - 1
    K, C = cum.shape[0], cum.shape[1]
    for k in range(K):
        threshold = u[k] * cum[k, C - 1]
        below = 0
        for c in range(C):
            below += threshold >= cum[k, c]
        z[k] = min(below, C - 1) if threshold == threshold else C - 1


#: tasks of a parallel loop that share one scratch array where a task is a single replicate
#: (an allocation in a compiled loop costs about 24 ns: a tenth of REINFORCE's categorical
#: combine with five of them per replicate, 5% of the categorical sampler at one sample)
SCRATCH_GROUP = 32


@twin_kernel
def _sample_categorical(alpha, u, z):
    # alpha (B, K, C), u (B, M, K) -> z (B, M, K). The softmax sums of a row are computed once
    # per chunk of _CHUNK samples instead of once per sample (C exps instead of up to 2 C per
    # variable and sample); the decisions are those of sample_categorical_row, bit for bit.
    # Tasks (b, chunk) in groups of SCRATCH_GROUP where a b has one chunk, sharing cum
    B, M = u.shape[0], u.shape[1]
    K, C = alpha.shape[1], alpha.shape[2]
    nch = (M + _CHUNK - 1) // _CHUNK
    ntask = B * nch
    group = SCRATCH_GROUP if nch == 1 else 1
    for g in prange((ntask + group - 1) // group):
        cum = np.empty((K, C))
        for t in range(g * group, min(ntask, (g + 1) * group)):
            b, ch = t // nch, t % nch
            _categorical_cdf(alpha[b], cum)
            for m in range(ch * _CHUNK, min(M, (ch + 1) * _CHUNK)):
                _sample_from_cdf(cum, u[b, m], z[b, m])


@twin_kernel
def _onehot(z, out):
    # z (N, K) -> out (N, K, C): 1.0 where c = z[n, k], else 0.0 (no 1.0 for z outside [0, C))
    N, K, C = out.shape[0], out.shape[1], out.shape[2]
    for n in prange(N):
        for k in range(K):
            zk = z[n, k]
            for c in range(C):
                out[n, k, c] = 1.0 if c == zk else 0.0


def onehot(z: np.ndarray, C: int) -> np.ndarray:
    """One-hot float64 ``(..., K, C)`` of integer configurations ``z`` ``(..., K)``: what
    ``(z[..., None] == np.arange(C)).astype(np.float64)`` gives (the NumPy references' relaxed
    points of hard samples), without its boolean temporary: 8 ms against NumPy's 20 for
    ``2^20`` rows at ``C = 8``, one thread."""
    z2 = np.ascontiguousarray(z.reshape(-1, z.shape[-1]))
    out = np.empty(z2.shape + (int(C),))
    _onehot(z2, out)
    return out.reshape(z.shape + (int(C),))


#: the byte alignment of the outputs that :func:`empty_aligned` gives (a cache line)
ALIGN = 64


def empty_aligned(shape: tuple[int, ...], dtype: npt.DTypeLike = np.float64) -> np.ndarray:
    """``np.empty(shape, dtype)`` (C order) whose data start on a 64-byte boundary, for the
    kernels' outputs: NumPy's allocator aligns to 16 bytes, and on this project's machine (AMD
    Zen 4) a packed store loop into an array 16 bytes off a 32-byte boundary ran up to 3 times
    slower. Measured (one thread): ARM's combine, 16 doubles written per replicate, 11.7 ns a
    replicate into an aligned output against 18.0 into one at 16 mod 32 (65,536 replicates;
    the same loop in cache, 5.5 against 16 ns). The array is a view of a ``uint8`` buffer
    ``ALIGN`` bytes longer than its data."""
    dt = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    buf = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = -buf.ctypes.data % ALIGN
    return buf[start:start + nbytes].view(dt).reshape(shape)


def sample(dist: str, params: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Configurations from uniforms: params ``(B, K[, C])``, u ``(B, *S, K)`` -> int64 ``(B, *S, K)``."""
    u3 = np.ascontiguousarray(u.reshape(u.shape[0], -1, u.shape[-1]))
    z = np.empty(u3.shape, dtype=np.int64)
    kernel = _sample_bernoulli if dist == "bernoulli" else _sample_categorical
    kernel(params, u3, z)
    return z.reshape(u.shape)
