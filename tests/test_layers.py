"""Layers of the VAEs: every backward pass against central finite differences (float64
reference), and the Numba CPU kernels against the reference (float64 and float32)."""

from __future__ import annotations

import platform
import re

import numpy as np
import pytest

from reference.models import layers as L
from reference.models.ops import CpuOps, NumpyOps

SLOPE = 0.2


def fd_grad(fn, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar ``fn`` at every entry of ``x``."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        fp = fn()
        x[i] = old - h
        fm = fn()
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def assert_fd(analytic: np.ndarray, numeric: np.ndarray, rtol: float = 1e-6) -> None:
    scale = max(1.0, np.abs(numeric).max())
    assert np.abs(analytic - numeric).max() <= rtol * scale, np.abs(analytic - numeric).max()


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    N, I, O, K, C = 5, 4, 3, 3, 4
    return dict(rng=rng, x=rng.standard_normal((N, I)), W=rng.standard_normal((I, O)),
                b=rng.standard_normal(O), w=rng.standard_normal((N, O)),
                z=rng.integers(0, C, (N, K)), Wz=rng.standard_normal((K * C, O)), K=K, C=C)


def test_linear_backward_matches_fd(data):
    x, W, b, w = data["x"], data["W"], data["b"], data["w"]

    def loss():
        return float(np.sum(w * L.linear(x, W, b)))

    dx, dW, db = L.linear_backward(x, W, w)
    assert_fd(dx, fd_grad(loss, x))
    assert_fd(dW, fd_grad(loss, W))
    assert_fd(db, fd_grad(loss, b))


def test_leaky_relu_backward_matches_fd(data):
    a = data["x"] + 0.05 * np.sign(data["x"])  # keep away from the kink at 0
    w = data["rng"].standard_normal(a.shape)

    def loss():
        return float(np.sum(w * L.leaky_relu(a, SLOPE)))

    h = L.leaky_relu(a, SLOPE)
    assert_fd(L.leaky_relu_backward(h, w, SLOPE), fd_grad(loss, a))
    assert np.all(h[a < 0] == SLOPE * a[a < 0]) and np.all(h[a > 0] == a[a > 0])


def test_onehot_linear_backward_matches_fd(data):
    z, Wz, b, w, C = data["z"], data["Wz"], data["b"], data["w"], data["C"]

    def loss():
        return float(np.sum(w * L.onehot_linear(z, Wz, b, C)))

    dW, db = L.onehot_linear_backward(z, w, C)
    assert_fd(dW, fd_grad(loss, Wz))
    assert_fd(db, fd_grad(loss, b))
    # the one-hot layer is the sum of the selected rows
    y = L.onehot_linear(z, Wz, b, C)
    for n in range(z.shape[0]):
        assert np.allclose(y[n], b + sum(Wz[k * C + z[n, k]] for k in range(z.shape[1])), 1e-14)


def test_bernoulli_loglik_grad_matches_fd(data):
    rng = data["rng"]
    x = (rng.random((2, 6)) < 0.5).astype(float)
    logits = 3 * rng.standard_normal((6, 6))  # G = 3 configurations per data row

    def loss():
        return float(np.sum(L.bernoulli_loglik(logits, x)))

    assert_fd(L.bernoulli_loglik_grad(logits, x), fd_grad(loss, logits))
    # against the direct formula log p = sum x log s(l) + (1 - x) log(1 - s(l))
    s = 1 / (1 + np.exp(-logits))
    xr = np.repeat(x, 3, axis=0)
    direct = (xr * np.log(s) + (1 - xr) * np.log(1 - s)).sum(axis=1)
    assert np.allclose(L.bernoulli_loglik(logits, x), direct, rtol=1e-12)
    assert np.all(np.isfinite(L.bernoulli_loglik(np.array([[1e4, -1e4]]), np.array([[0.0, 1.0]]))))


def test_entropy_grads_match_fd(data):
    rng = data["rng"]
    alpha = 2 * rng.standard_normal((2, 3, 4))
    assert_fd(L.categorical_entropy_grad(alpha), fd_grad(lambda: float(L.categorical_entropy(alpha).sum()),
                                                        alpha))
    p = np.exp(alpha) / np.exp(alpha).sum(-1, keepdims=True)
    assert np.allclose(L.categorical_entropy(alpha), -(p * np.log(p)).sum(axis=(-2, -1)), rtol=1e-12)
    H, dH = L.categorical_entropy_and_grad(alpha)  # the fused form of the two
    assert np.allclose(H, L.categorical_entropy(alpha), rtol=1e-13, atol=0)
    assert np.allclose(dH, L.categorical_entropy_grad(alpha), rtol=1e-12, atol=1e-15)
    phi = 2 * rng.standard_normal((2, 5))
    assert_fd(L.bernoulli_entropy_grad(phi), fd_grad(lambda: float(L.bernoulli_entropy(phi).sum()), phi))
    s = 1 / (1 + np.exp(-phi))
    assert np.allclose(L.bernoulli_entropy(phi), -(s * np.log(s) + (1 - s) * np.log(1 - s)).sum(-1),
                       rtol=1e-12)


def test_adam_first_step_is_signed_lr():
    # with zero moments, step 1 moves every entry by lr * g / (|g| + eps)
    g = np.array([0.5, -2.0, 1e-3])
    p, m, v = np.ones(3), np.zeros(3), np.zeros(3)
    L.adam_update(p, g, m, v, t=1, lr=0.01, eps=1e-8)
    assert np.allclose(p, 1 - 0.01 * g / (np.abs(g) + 1e-8), rtol=0, atol=1e-15)


# ------------------------------------------------------------------ CPU kernels vs reference
TOL = {np.float64: 1e-12, np.float32: 2e-5}  # float32: a few ulps over sums of <= 10 terms


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cpu_ops_match_reference(dtype, parallel, monkeypatch):
    from reference.models import _layers_cpu

    # tiny inputs run the serial twins; PARALLEL_MIN_WORK = 0 forces the parallel kernels
    monkeypatch.setattr(_layers_cpu, "PARALLEL_MIN_WORK", 0 if parallel else 1 << 30)
    rng = np.random.default_rng(5)
    ref, cpu = NumpyOps(), CpuOps(dtype)
    N, I, O, K, C = 7, 5, 6, 3, 4
    x = rng.standard_normal((N, I))
    W, b = rng.standard_normal((I, O)), rng.standard_normal(O)
    dy = rng.standard_normal((N, O))
    z = rng.integers(0, C, (N, K))
    Wz = rng.standard_normal((K * C, O))
    xb = (rng.random((N // 1, O)) < 0.5).astype(float)
    tol = TOL[dtype]

    def close(a, r):
        a = np.asarray(a, dtype=np.float64)
        assert a.shape == r.shape
        assert np.abs(a - r).max() <= tol * max(1.0, np.abs(r).max()), np.abs(a - r).max()

    c = cpu.asarray
    for act in (False, True):
        close(cpu.linear(c(x), c(W), c(b), act, SLOPE), ref.linear(x, W, b, act, SLOPE))
        close(cpu.onehot_linear(c(z), c(Wz), c(b), C, act, SLOPE), ref.onehot_linear(z, Wz, b, C, act,
                                                                                          SLOPE))
    for got, want in zip(cpu.linear_backward(c(x), c(W), c(dy), True)[:3],
                         ref.linear_backward(x, W, dy, True), strict=True):
        close(got, want)
    # the sparse hint skips zero inputs; any x (not only 0/1) gives the same product
    xs = np.where(rng.random((N, I)) < 0.6, 0.0, x)
    xs[0] = 0.0  # an all-zero row: the bias alone
    for act in (False, True):
        close(cpu.linear(c(xs), c(W), c(b), act, SLOPE, sparse_input=True),
              ref.linear(xs, W, b, act, SLOPE))
    for got, want in zip(cpu.linear_backward(c(xs), c(W), c(dy), True, sparse_input=True),
                         ref.linear_backward(xs, W, dy, True), strict=True):
        close(got, want)
    for got, want in zip(cpu.onehot_linear_backward(c(z), c(dy), C), ref.onehot_linear_backward(z, dy, C),
                         strict=True):
        close(got, want)
    h = ref.linear(x, W, b, True, SLOPE)
    close(cpu.act_backward(c(h), c(dy), SLOPE), ref.act_backward(h, dy, SLOPE))
    logits = 2 * rng.standard_normal((N, O))
    f, d = cpu.loglik_grad(c(logits), c(xb), 1, -0.5)
    f0, d0 = ref.loglik_grad(logits, xb, 1, -0.5)
    close(f, f0)
    close(d, d0)
    close(cpu.loglik(c(logits), c(xb), 1), f0)
    p, g = rng.standard_normal(11), rng.standard_normal(11)
    m, v = rng.standard_normal(11), rng.random(11)
    pc, mc, vc = c(p), c(m), c(v)
    cpu.adam(pc, c(g), mc, vc, 3, 1e-2, 0.9, 0.999, 1e-8)
    ref.adam(p, g, m, v, 3, 1e-2, 0.9, 0.999, 1e-8)
    for got, want in ((pc, p), (mc, m), (vc, v)):
        close(got, want)


def test_numpy_ops_is_float64_only():
    with pytest.raises(ValueError, match="float64"):
        NumpyOps(np.float32)
    with pytest.raises(ValueError, match="float32 or float64"):
        CpuOps(np.int32)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 assembly")
def test_likelihood_kernel_vectorizes():
    # the likelihood's finishing kernel divides per pixel; Numba's default error model (a
    # check that may raise ZeroDivisionError) keeps LLVM from vectorizing it, 5x slower.
    # Vectorized code has packed divisions (divpd/vdivpd on any x86 with SSE2)
    from reference.models import _layers_cpu as K

    kern = K.loglik_from_exp.serial
    logits = np.zeros((2, 600), np.float32)
    kern(logits, np.ones_like(logits), np.zeros((1, 600), np.float32), 2, 1.0, True, np.empty(2))
    asm = "\n".join(kern.inspect_asm().values())
    assert re.search(r"\bv?divpd\b", asm), "the likelihood kernel no longer vectorizes"


def test_float32_exponential_within_one_ulp():
    # the float32 likelihood's own exp(-|l|) (range reduction and Cephes' polynomial, which
    # must keep Cody and Waite's split unreassociated: reassociated it was 4.5 ulp off near
    # -87) against the float64 exponential; NumPy's float32 exp is up to 2.4 ulp off here
    from reference.models import _layers_cpu as K

    rng = np.random.default_rng(8)
    t = np.concatenate([rng.standard_normal(50_000) * 5, rng.random(20_000) * 87.3,
                        np.linspace(0, 87.3, 20_001), [0.0, 1e-30, 1e-8]]).astype(np.float32)
    t = np.where(rng.random(t.size) < 0.5, t, -t)  # either sign: the kernel takes -|l|
    e, bits = np.empty_like(t), np.empty(t.size, np.int32)
    K._exp_neg_abs32(t, e, bits)
    want = np.exp(-np.abs(t.astype(np.float64)))
    ulps = np.abs(e - want) / np.spacing(want.astype(np.float32)).astype(np.float64)
    assert ulps.max() <= 1.0, ulps.max()
    assert e[np.abs(t) == 0].tolist() == [1.0] * int(np.sum(np.abs(t) == 0))
    # past the float32 normal range 0, and NaN stays NaN
    edge = np.array([87.4, -100.0, 1e30, np.inf, np.nan], np.float32)
    e, bits = np.empty_like(edge), np.empty(edge.size, np.int32)
    K._exp_neg_abs32(edge, e, bits)
    assert e[:4].tolist() == [0.0] * 4 and np.isnan(e[4])


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_float32_likelihood_in_one_pass(parallel, monkeypatch):
    # rows wider than one product block (512) and more rows than one task (64): f and the
    # gradient against the float64 formulas of the same float32 logits. Bounds: e within 1
    # ulp moves each log(1 + e) by at most 6e-8, so f by at most D 6e-8; the sigmoid in
    # float32 is within 2 ulps, the gradient within 3e-7 |scale|
    from reference.models import _layers_cpu as K

    monkeypatch.setattr(K, "PARALLEL_MIN_WORK", 0 if parallel else 1 << 30)
    rng = np.random.default_rng(9)
    G, B, D, scale = 13, 10, 1100, -0.37
    logits = (3 * rng.standard_normal((B * G, D))).astype(np.float32)
    logits[0, :6] = [0.0, -0.0, 100.0, -100.0, 1e-8, 87.5]
    x = (rng.random((B, D)) < 0.2).astype(np.float32)
    l64 = logits.astype(np.float64)
    f0 = L.bernoulli_loglik(l64, np.repeat(x, G, axis=0).astype(np.float64))
    g0 = scale * L.bernoulli_loglik_grad(l64, np.repeat(x, G, axis=0).astype(np.float64))
    got = logits.copy()
    f = K.loglik_grad(got, x, G, scale)
    assert np.abs(f - f0).max() <= D * 6e-8, np.abs(f - f0).max()
    assert np.abs(got - g0).max() <= 3e-7 * abs(scale), np.abs(got - g0).max()
    f_only = K.loglik_grad(logits.copy(), x, G, 0.0, want_grad=False)  # its own loop's sums
    assert np.abs(f_only - f0).max() <= D * 6e-8, np.abs(f_only - f0).max()
    monkeypatch.setattr(K, "PARALLEL_MIN_WORK", 1 << 30 if parallel else 0)
    other = logits.copy()
    assert np.array_equal(K.loglik_grad(other, x, G, scale), f) and np.array_equal(other, got)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 assembly")
def test_float32_likelihood_vectorizes():
    # the float32 likelihood's exponential and sigmoid are plain arithmetic so that LLVM
    # vectorizes them: packed float32 multiplies and divisions (mulps/divps on any x86)
    from reference.models import _layers_cpu as K

    kern = K.loglik_grad32.serial
    logits = np.zeros((2, 600), np.float32)
    kern(logits, np.zeros((1, 600), np.float32), 2, 1.0, True, np.empty(2))
    asm = "\n".join(kern.inspect_asm().values())
    assert re.search(r"\bv?divps\b", asm) and re.search(r"\bv?mulps\b", asm), \
        "the float32 likelihood no longer vectorizes"


def test_cpu_ops_reuses_only_arrays_nothing_holds():
    # the outputs come from a pool: an array the caller still holds (directly, through a view
    # or inside a list) is never handed out again, one that was let go is
    rng = np.random.default_rng(6)
    cpu = CpuOps(np.float64)
    x, W, b = (cpu.asarray(rng.standard_normal(s)) for s in ((4, 3), (3, 5), (5,)))
    y1 = cpu.linear(x, W, b, False, SLOPE)
    first, keep = id(y1), y1.copy()
    y2 = cpu.linear(2 * x, W, b, False, SLOPE)
    assert y2 is not y1 and np.array_equal(y1, keep)
    view = y1[1:]
    held = [y2]
    del y1, y2
    y3 = cpu.linear(3 * x, W, b, False, SLOPE)
    assert not np.shares_memory(y3, view) and not np.shares_memory(y3, held[0])
    assert np.array_equal(view, keep[1:])
    del view
    y4 = cpu.linear(x, W, b, False, SLOPE)  # the first array is free again: reused
    assert id(y4) == first and np.array_equal(y4, keep)
    # a full pool hands out fresh arrays, still never a held one
    outs = [cpu.linear(x, W, b, False, SLOPE) for _ in range(8)]
    assert len({id(a) for a in outs + [y3, y4, held[0]]}) == 11


def test_cpu_ops_run_blocks_side_by_side():
    import threading

    from reference.models import _layers_cpu as K
    from reference.models import ops as O

    cpu = CpuOps(np.float64, threads=3)
    assert cpu.blocks(7) == [(0, 2), (2, 4), (4, 7)] and cpu.blocks(2) == [(0, 1), (1, 2)]
    assert CpuOps(np.float64, threads=1).blocks(7) == [(0, 7)]
    seen = []

    def task(i):
        def run():
            seen.append((i, threading.get_ident(), K.in_serial_block(),
                         all(lib["num_threads"] == 1 for lib in O._blas().info())))
            if i == 1:  # a nested run inside a block runs in order, in that block's thread
                assert cpu.run([lambda: threading.get_ident()] * 2) == [threading.get_ident()] * 2
            return 10 * i
        return run

    assert cpu.run([task(i) for i in range(4)]) == [0, 10, 20, 30]
    assert all(serial and one_blas_thread for _, _, serial, one_blas_thread in seen)
    assert len({ident for _, ident, _, _ in seen}) >= 2  # more than one thread did the work
    assert not K.in_serial_block()
    with cpu.session():
        assert all(lib["num_threads"] == 1 for lib in O._blas().info())
    # a failing block raises in the caller, after every block has finished
    done = []

    def slow():
        import time

        time.sleep(0.05)
        done.append(1)

    def fail():
        raise RuntimeError("block failed")

    with pytest.raises(RuntimeError, match="block failed"):
        cpu.run([fail, slow, slow])
    assert done == [1, 1]
    with pytest.raises(ValueError, match="threads"):
        CpuOps(np.float64, threads=0)


def test_cpu_ops_pool_is_shared_safely_by_blocks():
    # blocks on several threads take arrays from one pool: none is handed to two holders
    # (without the pool's lock this failed in 2 of 3 runs here: a probabilistic check)
    cpu = CpuOps(np.float64, threads=4)

    def block(tag):
        def run():
            held = []
            for _ in range(5000):
                a = cpu._empty((16,))
                a[:] = tag
                held.append(a)
                if len(held) > 3:
                    held.pop(0)
                assert all((h == tag).all() for h in held)
            return True
        return run

    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        assert cpu.run([block(t) for t in range(4)]) == [True] * 4
    finally:
        sys.setswitchinterval(interval)


def test_compiled_categorical_entropy_is_the_reference():
    from reference.models import _layers_cpu as K

    rng = np.random.default_rng(7)
    alpha = rng.standard_normal((6, 4, 5)) * np.array([1.0, 10.0, 300.0, 0.0])[None, :, None]
    alpha[0, 0] = [2.0, 2.0, -1.0, 0.5, 2.0]  # ties at the max
    H, dH = K.categorical_entropy_and_grad(alpha)
    H0, dH0 = L.categorical_entropy_and_grad(alpha)
    assert H.shape == H0.shape and dH.shape == dH0.shape
    assert np.allclose(H, H0, rtol=1e-13, atol=1e-15)
    assert np.allclose(dH, dH0, rtol=1e-12, atol=1e-15)
    assert np.isfinite(dH).all()  # p = 0 underflows at a spread of 300: no NaN from 0 * log 0


def test_cpu_ops_pickle_without_their_threads():
    # a model on the CPU backend stays picklable (Dask sends objects that hold one): the
    # copy has its own lock, an empty pool and no threads until it runs blocks
    import pickle

    cpu = CpuOps(np.float32, threads=2)
    cpu.run([lambda: None, lambda: None])  # threads and lock in use
    held = cpu.linear(cpu.asarray(np.ones((3, 2))), cpu.asarray(np.ones((2, 4))),
                      cpu.asarray(np.zeros(4)), False, SLOPE)
    copy = pickle.loads(pickle.dumps(cpu))
    assert copy.workers == 2 and copy.dtype == np.float32 and copy._pool == {}
    assert copy.run([lambda: 1, lambda: 2]) == [1, 2]
    assert np.array_equal(held, np.full((3, 4), 2.0))


def test_cpu_ops_default_workers_follow_numba_and_blas():
    # one block where BLAS was given one thread (as Dask's workers are), else Numba's count
    import numba
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        assert CpuOps().workers == 1
    assert CpuOps().workers <= numba.get_num_threads()


def test_twin_kernels_run_serially_inside_serial_kernels():
    # an estimator's twin kernel runs its serial twin inside serial_kernels (the VAE's
    # blocks call it from two threads at once, which a parallel launch of the workqueue layer
    # would abort on) and its parallel one elsewhere; both give the same numbers
    from reference import _cpu

    kern = _cpu._sample_categorical
    assert isinstance(kern, _cpu.TwinKernel)
    called = []
    rng = np.random.default_rng(3)
    alpha, u = rng.normal(size=(3, 2, 4)), rng.random((3, 5, 2))
    z_par, z_ser = (np.empty((3, 5, 2), np.int64) for _ in range(2))
    real = kern.parallel, kern.serial
    try:
        kern.parallel = lambda *a: called.append("parallel") or real[0](*a)
        kern.serial = lambda *a: called.append("serial") or real[1](*a)
        kern(alpha, u, z_par)
        with _cpu.serial_kernels():
            kern(alpha, u, z_ser)
        kern(alpha, u, z_par)
    finally:
        kern.parallel, kern.serial = real
    assert called == ["parallel", "serial", "parallel"]
    assert np.array_equal(z_par, z_ser)


def test_backends_with_serial_twins_launch_no_other_parallel_kernel():
    # a CPU backend marked serial_twins may be called from the VAE's blocks on several threads;
    # every parallel Numba kernel in its module (and in the shared samplers) must be a twin
    import importlib
    import sys

    from numba.core.registry import CPUDispatcher

    from reference import REGISTRY, _cpu

    marked = set()
    for est in REGISTRY.values():
        path = est.backends.get("cpu")
        if path and est.backend("cpu").serial_twins:
            marked.add(path.partition(":")[0])
    assert {"reference.estimators.score_function.cpu", "reference.estimators.swap.cpu"} <= marked
    for name in sorted(marked | {"reference._cpu"}):
        mod = sys.modules.get(name) or importlib.import_module(name)
        for attr, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher) and obj.targetoptions.get("parallel"):
                pytest.fail(f"{name}.{attr} is a parallel kernel without a serial twin")
    assert isinstance(importlib.import_module("reference.estimators.swap.cpu")._arsm_queries,
                      _cpu.TwinKernel)
