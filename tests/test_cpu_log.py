"""The CPU kernels' logarithms (:func:`reference._cpu.log`, :func:`reference._cpu.log1p`):
fdlibm's reduction and polynomial with the ``f - f^2/2`` step and the ``k log 2`` sum kept
exact, in plain arithmetic without tables, so that the loops around them vectorize (libm's are
a call per element); and the Gumbel, Gumbel-Rao and REBAR loops that rely on it."""

from __future__ import annotations

import math
import re

import mpmath
import numpy as np

from reference import _cpu


def _ulps(got: np.ndarray, x: np.ndarray, fn=mpmath.log) -> np.ndarray:
    # |got - fn(x)| in units of the spacing of the correctly rounded fn(x) (200 bits)
    out = np.empty(x.size)
    with mpmath.workprec(200):
        for i, (g, xi) in enumerate(zip(got, x, strict=True)):
            t = fn(mpmath.mpf(float(xi)))
            out[i] = float(abs(mpmath.mpf(float(g)) - t) / mpmath.mpf(np.spacing(abs(float(t)))))
    return out


def test_log_within_seven_tenths_of_an_ulp():
    # the one last rounding plus that of s (f^2/2 + R), up to 5% of the result at the ends of
    # the reduction's interval [sqrt(2)/2, sqrt(2)): 0.667 measured on 10^6 arguments there.
    # fdlibm's rounding of f - f^2/2 and of the sum with k log 2 (dropping either rounding
    # error here) is 0.75
    rng = np.random.default_rng(5)
    r2 = math.sqrt(2.0)
    x = np.concatenate([
        rng.random(1500),  # the uniforms of the Gumbel noise -log(-log u)
        -np.log(rng.random(1500)),  # and its second log
        np.exp(rng.uniform(-744.0, 709.7, 1000)),  # the whole range, subnormals included
        rng.uniform(r2 / 2 - 0.02, r2 / 2, 1500),  # the ends of the reduction's interval
        rng.uniform(r2 - 0.04, r2, 1500),
        2.0 ** rng.integers(-20, 20, 1000) * rng.uniform(r2 - 0.03, r2, 1000),
        1.0 + rng.uniform(-1e-3, 1e-3, 500),  # log(x) small: no cancellation against k log 2
    ])
    got = np.array([_cpu.log(float(v)) for v in x])
    ulps = _ulps(got, x)
    assert ulps.max() <= 0.7, (ulps.max(), x[ulps.argmax()])


def test_log_edges():
    lg = _cpu.log
    assert lg(1.0) == 0.0 and lg(2.0) == math.log(2.0) and lg(0.5) == -math.log(2.0)
    assert lg(0.0) == -np.inf and lg(-0.0) == -np.inf and lg(np.inf) == np.inf
    assert math.isnan(lg(-1.0)) and math.isnan(lg(-np.inf)) and math.isnan(lg(np.nan))
    assert math.isnan(lg(-5e-324))
    for v in (5e-324, 1e-310, 2.2250738585072014e-308, 1.7976931348623157e308):
        assert lg(v) == math.log(v), v  # subnormals are scaled by 2^52 first
    for v in (np.nextafter(1.0, 2.0), np.nextafter(1.0, 0.0)):  # log(1 + f) = f - f^2/2 + ...
        assert lg(v) == math.log(v), v


def test_gumbel_kernel_vectorizes():
    # I-MLE's perturbation: the Gumbel logs in packed code (vdivpd: the reduction's division).
    # Through the gumbel device function, or with libm's log, the loop stays scalar and the
    # kernels run about 1.6 times slower
    from reference.estimators.relaxation import cpu

    fn = cpu.perturb_row_categorical
    alpha, u = np.zeros((4, 8)), np.full((4, 8), 0.5)
    fn(alpha, u, np.empty((4, 8)), np.empty(4, np.int64))
    asm = fn.inspect_asm(fn.signatures[0])
    assert re.search(r"\bvdivpd\b", asm), "the Gumbel perturbation no longer vectorizes"


def test_log1p_within_seven_tenths_of_an_ulp():
    # log's bound: the rounding error of 1 + x is added to its low part before the last
    # rounding. Added after it (log(u) + d / u), the worst is 1.006 ulp; without it, x below
    # 2^-53 would give 0
    rng = np.random.default_rng(6)
    x = np.concatenate([
        rng.random(2500),  # exp(-|a - b|) of the stable logaddexp
        np.exp(-rng.uniform(0.0, 40.0, 1500)),
        np.exp(-rng.uniform(36.0, 745.0, 500)),  # below 2^-53: log1p(x) = x
        -rng.random(1500),
        np.exp(rng.uniform(0.0, 700.0, 1000)),
        rng.uniform(0.40, math.sqrt(2.0) - 1.0, 1000),  # 1 + x at the reduction's ends
    ])
    got = np.array([_cpu.log1p(float(v)) for v in x])
    ulps = _ulps(got, x, mpmath.log1p)
    assert ulps.max() <= 0.7, (ulps.max(), x[ulps.argmax()])


def test_log1p_edges():
    l1p = _cpu.log1p
    assert l1p(0.0) == 0.0 and l1p(1.0) == math.log(2.0) and l1p(5e-324) == 5e-324
    assert l1p(-1.0) == -np.inf and l1p(np.inf) == np.inf
    assert math.isnan(l1p(-1.5)) and math.isnan(l1p(-np.inf)) and math.isnan(l1p(np.nan))
    for v in (1e-300, 2.0**-60, -0.5, 1.7976931348623157e308, np.nextafter(-1.0, 0.0)):
        assert l1p(v) == math.log1p(v), v


def test_gumbel_rao_perturbation_vectorizes():
    # Gumbel-Rao's conditional Gumbels: three logs, an exp and a log1p per entry, packed. With
    # the stable logaddexp as a device function (not inlined there), the loop stays scalar
    from reference.estimators.st_variants import cpu

    fn = cpu.gr_perturb_row
    alpha, u = np.zeros((4, 8)), np.full((4, 8), 0.5)
    fn(alpha, np.zeros(4, np.int64), u, np.empty((4, 8)))
    asm = fn.inspect_asm(fn.signatures[0])
    assert re.search(r"\bvdivpd\b", asm), "Gumbel-Rao's perturbation no longer vectorizes"


def test_rebar_conditional_row_vectorizes():
    # REBAR's categorical z~: two logs, an exp, a log1p and two exps per entry, packed. With
    # Numba's default error model the division by tau carries a ZeroDivisionError check that
    # keeps that loop scalar (131 ns an entry against 44)
    from reference.estimators.rebar import cpu

    fn = cpu.rebar_row_categorical
    alpha, u = np.zeros((4, 8)), np.full((4, 8), 0.5)
    out = [np.empty((4, 8)) for _ in range(3)]
    fn(alpha, u, u, 0.5, np.empty(4, np.int64), *out)
    assert "division by zero" not in fn.inspect_llvm(fn.signatures[0])
    assert re.search(r"\bvdivpd\b", fn.inspect_asm(fn.signatures[0]))


def test_rebar_bernoulli_row_vectorizes():
    # REBAR's Bernoulli row: the base's logs, log1p and exps with selects for b, packed. With
    # libm's calls and a branch on b it stayed scalar (1.7 us a replicate of 16 variables
    # against 0.5)
    from reference.estimators.rebar import cpu

    fn = cpu.rebar_row
    phi, u = np.zeros(16), np.full(16, 0.5)
    fn(phi, u, u, 0.5, np.empty(16, np.int64), np.empty(16), np.empty(16), np.empty(16))
    assert re.search(r"\bvdivpd\b", fn.inspect_asm(fn.signatures[0])), \
        "REBAR's Bernoulli row no longer vectorizes"


def test_gumbel_softmax_bernoulli_row_vectorizes():
    # The Bernoulli Gumbel-Softmax row: each Gumbel's two logs in a loop of their own, packed.
    # With both Gumbels' four logs in one loop (or through gumbel) the logs are not all inlined
    # and the loop stays scalar (1.3 us a replicate of 16 variables against 0.55)
    from reference.estimators.relaxation import cpu

    fn = cpu.gs_row_bernoulli
    phi, u = np.zeros(16), np.full((16, 2), 0.5)
    fn(phi, u, 0.5, np.empty(16), np.empty(16, np.int64))
    assert re.search(r"\bvdivpd\b", fn.inspect_asm(fn.signatures[0])), \
        "the Bernoulli Gumbel-Softmax row no longer vectorizes"
