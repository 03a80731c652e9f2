"""The CPU kernels' exponential (:func:`reference._cpu.exp`): Tang's table method in plain
arithmetic, so that the loops around it vectorize; libm's ``exp`` is a call per element."""

from __future__ import annotations

import math
import re

import mpmath
import numpy as np

from reference import _cpu


def _ulps(got: np.ndarray, x: np.ndarray) -> np.ndarray:
    # |got - exp(x)| in units of the spacing of the correctly rounded exp(x) (200 bits)
    out = np.empty(x.size)
    with mpmath.workprec(200):
        for i, (g, xi) in enumerate(zip(got, x, strict=True)):
            t = mpmath.exp(mpmath.mpf(float(xi)))
            out[i] = float(abs(mpmath.mpf(float(g)) - t) / mpmath.mpf(np.spacing(float(t))))
    return out


def test_exp_within_half_an_ulp_and_a_bit():
    # one rounding in the final addition plus the table's and the polynomial's residue: within
    # 0.51 ulp (3 10^6 arguments measured 0.509). Dropping the table's low parts, or one
    # polynomial term, takes it past 0.52
    rng = np.random.default_rng(3)
    x = np.concatenate([
        -np.abs(rng.standard_normal(2000)) * 5,  # exp(-|phi|) of the sigmoids
        rng.uniform(-30.0, 0.0, 2000),  # exp(alpha - max) of the softmaxes
        rng.uniform(-745.0, 709.7, 1500),  # the whole range, subnormal results included
        rng.uniform(-1e-3, 1e-3, 500),
        np.arange(-64, 65) * math.log(2) / 64,  # the table's nodes
    ])
    got = np.array([_cpu.exp(float(v)) for v in x])
    ulps = _ulps(got, x)
    assert ulps.max() <= 0.52, (ulps.max(), x[ulps.argmax()])


def test_exp_edges():
    e = _cpu.exp
    assert e(0.0) == 1.0 and e(-0.0) == 1.0
    assert e(-np.inf) == 0.0 and e(np.inf) == np.inf and math.isnan(e(np.nan))
    assert e(-1e300) == 0.0 and e(1e300) == np.inf
    assert e(710.0) == np.inf and e(709.78) == math.exp(709.78)
    assert e(-745.2) == 0.0 and e(-745.1) == 5e-324  # the smallest subnormal, rounded once
    assert e(-708.4) == math.exp(-708.4)


def test_binary_kernels_vectorize():
    # ARM's pairs: the sigmoid's exponential and divisions in packed code (vdivpd on AVX).
    # With libm's exp, or Numba's default error model (its division check), the loop stays
    # scalar and is about twice as slow
    from reference.estimators.augment_reinforce import cpu

    fn = cpu.arm_pair_row
    phi, u = np.zeros(16), np.zeros(16)
    fn(phi, u, np.empty(16, np.int64), np.empty(16, np.int64))
    asm = fn.inspect_asm(fn.signatures[0])
    assert re.search(r"\bv?divpd\b", asm), "ARM's pair kernel no longer vectorizes"


def test_empty_aligned_gives_writable_c_arrays_on_a_cache_line():
    for shape in [(7,), (3, 4), (65, 1, 16), (2, 0, 5), (0,)]:
        for dtype in (np.float64, np.float32, np.int64):
            a = _cpu.empty_aligned(shape, dtype)
            assert a.shape == shape and a.dtype == dtype
            assert a.flags.c_contiguous and a.flags.writeable
            assert a.size == 0 or a.ctypes.data % _cpu.ALIGN == 0
            a[...] = 1  # the whole view is usable
            assert a.size == 0 or a.sum() == a.size


def test_binary_combines_write_aligned_outputs():
    from reference import get_estimator
    from reference.contract import Answers

    rng = np.random.default_rng(0)
    phi = rng.standard_normal((5, 3))
    for name in ("ar", "arm", "disarm"):
        est = get_estimator(name)
        opts = est.options(**est.examples[0])
        noise = est.draw_noise(rng, "bernoulli", phi.shape, 2, **opts)
        cpu = est.backend("cpu")
        q = cpu.queries("bernoulli", phi, noise, opts)
        g = cpu.combine("bernoulli", phi, q, Answers(rng.standard_normal(q.z.shape[:-1])), opts)
        assert g.shape == (5, 2, 3) and g.ctypes.data % _cpu.ALIGN == 0, name
