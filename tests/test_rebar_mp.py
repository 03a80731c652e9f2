"""REBAR's certified moments against an independent high-precision evaluation at saturated
logits (issue 16: the RQMC-certified families must hold their stated bound at +-50).

For one Bernoulli variable (``K = 1``) and the multilinear relaxation ``f(y) = f0 (1 - y) + f1
y``, one sample's estimate given ``b`` is ``A_b(z~) + B(z)``, with ``z`` and ``z~`` independent
given ``b``, each with the logistic law of location ``phi`` restricted to ``b``'s half-line:

* ``B(z) = eta f' s(z) (1 - s(z)) / tau`` (``s = sigmoid(. / tau)``, ``dz/dphi = 1``),
* ``A_b(z~) = [f(b) - eta f(s(z~))] (b - theta) - eta f' s(z~) (1 - s(z~)) / tau dz~/dphi``,
  where ``dz~/dphi`` (with ``b`` and ``v`` held) is taken by ``mpmath.diff`` of ``z~(phi, v) =
  phi + log(1 - u~) - log(u~)`` with the conditional uniform ``u~`` (``v theta`` given ``b =
  1``, ``theta + v (1 - theta)`` given ``b = 0``), ``v`` recovered from ``z~``.

So the mean and variance are one-dimensional integrals over ``z`` (``mpmath.quad``, 60
digits, split at ``0``, ``phi`` and multiples of ``tau``): no RQMC, no float64, and no formula
shared with the oracle (which integrates over both relaxations by scrambled Sobol points with
defensive importance sampling). The mean of this evaluation is itself checked against the exact
gradient ``theta (1 - theta) f'``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import reference
from reference.objectives import TableObjective


@functools.cache
def rebar_truth(phi: float, f0: float, f1: float, eta: float, tau: float,
                dps: int = 60) -> tuple[float, float, float]:
    """(mean, variance, exact gradient) of one REBAR sample for ``K = 1`` (module docstring)."""
    import mpmath

    ctx = mpmath.mp.clone()
    ctx.dps = dps
    phi, f0, f1, eta, tau = (ctx.mpf(x) for x in (phi, f0, f1, eta, tau))

    def sig(x):
        return 1 / (1 + ctx.exp(-x))

    theta = sig(phi)
    fp = f1 - f0

    def density(z):  # logistic, location phi
        return sig(z - phi) * sig(phi - z)

    mean, second = ctx.mpf(0), ctx.mpf(0)
    for b in (0, 1):
        q_b = theta if b else 1 - theta
        # the half-line of b, cut 60 logistic scales past its far end (relative mass e**-60)
        lo, hi = (ctx.mpf(0), max(ctx.mpf(0), phi) + 60) if b else \
            (min(ctx.mpf(0), phi) - 60, ctx.mpf(0))

        def B(z):
            s = sig(z / tau)
            return eta * fp * s * (1 - s) / tau

        def z_tilde(ph, v, b=b):
            th = sig(ph)
            ut = v * th if b else th + v * (1 - th)
            return ph + ctx.log(1 - ut) - ctx.log(ut)

        def A(zt, b=b):
            ut = sig(phi - zt)  # the conditional uniform that gives z~ at this phi
            v = ut / theta if b else (ut - theta) / (1 - theta)
            dzt = ctx.diff(lambda ph: z_tilde(ph, v), phi)
            s = sig(zt / tau)
            f_b = f1 if b else f0
            return (f_b - eta * (f0 * (1 - s) + f1 * s)) * (b - theta) \
                - eta * fp * s * (1 - s) / tau * dzt

        cuts = [phi] + [sgn * tau * k for sgn in (-1, 1) for k in (0, 1, 5, 20)]
        pts = sorted({lo, hi, *[c for c in cuts if lo < c < hi]})

        def moments(fn, pts=pts, q_b=q_b):
            m1 = ctx.quad(lambda z: fn(z) * density(z), pts) / q_b
            m2 = ctx.quad(lambda z: fn(z) ** 2 * density(z), pts) / q_b
            return m1, m2 - m1 * m1

        eA, vA = moments(A)
        eB, vB = moments(B)
        mean += q_b * (eA + eB)
        second += q_b * (vA + vB + (eA + eB) ** 2)
    return float(mean), float(second - mean * mean), float(theta * (1 - theta) * fp)


@pytest.mark.slow  # about 10-20 s per logit (mpmath quadrature with numerical derivatives)
@pytest.mark.parametrize("phi", [0.7, 5.0, -20.0, 20.0, -50.0, 50.0])
@pytest.mark.parametrize("name", ["rebar", "relax"])
def test_rebar_certified_moments_hold_their_bound_at_saturated_logits(name, phi):
    f0, f1, eta, tau = 0.3, -1.1, 0.8, 0.5
    mean, var, grad = rebar_truth(phi, f0, f1, eta, tau)
    # the independent evaluation is right: REBAR is unbiased
    assert abs(mean - grad) <= 1e-12 * abs(grad)
    obj = TableObjective(np.array([f0, f1]), "binary")
    m = reference.REGISTRY[name].exact_moments("bernoulli", np.array([phi]), obj, n=1, eta=eta,
                                               tau=tau)
    eps = 64 * np.finfo(float).eps
    assert abs(m.mean[0] - mean) <= m.error_bound + eps * abs(mean), (m.mean, mean, m.error_bound)
    assert abs(m.cov[0, 0] - var) <= m.error_bound + eps * var, (m.cov, var, m.error_bound)
    # and the bound says something: at most a hundredth of the quantities it bounds
    assert m.error_bound <= 1e-2 * min(abs(mean), var)
