"""Certified moments of REBAR and RELAX (records in :mod:`reference.estimators.rebar`).

One sample's estimate depends on the discrete ``b = 1[u < theta]`` and on the logistic
variables ``z`` (from ``u``) and ``z~`` (from ``v``, given ``b``); the objective's relaxation
couples the dimensions, so there is no closed form in general. The moments are computed as

* an **exact sum over the samples** ``b`` (``2**K`` terms, weights ``q(b)``), and, given
  ``b``,
* an integral over ``(z, z~)``, which are independent given ``b`` with the same law ``p(z |
  b)`` per coordinate (logistic with location ``phi_k``, restricted to ``z > 0`` for ``b_k =
  1`` and ``z < 0`` for ``b_k = 0``), by **randomized quasi-Monte Carlo with defensive
  importance sampling**: each coordinate is drawn from the mixture ``r = (1 - eps) p(z | b) +
  eps e(z)`` with ``e`` an exponential of scale ``s = 2 tau`` on the same half-line and ``eps =
  2**-ceil(log2(2K))`` (the first ``1 - eps`` of each Sobol coordinate maps to ``p`` by its
  inverse CDF, the rest to ``e``), and weighted by ``p / r <= 1 / (1 - eps)``; only in the
  coordinates where ``p(0 < |z| < 3 tau | b) < eps`` (elsewhere ``eps = 0``: the mixture's
  jump costs RQMC accuracy). The mixture puts a share ``eps`` of the points within a few
  ``tau`` of ``z = 0``, where the reparameterization terms ``y (1 - y) / tau`` peak: for a
  logit far from
  0 that region has probability ``~exp(-|phi|)`` under ``p`` and carries as much of the mean as
  the gradient itself, and plain RQMC over ``(u, v)`` misses it in every randomization (and
  then reports a zero spread around a wrong mean; Hypothesis found both failures, at ``phi =
  11`` over the unit cube and at ``phi = 14`` with the sum over ``b`` but no importance
  sampling).

``RANDOMIZATIONS`` scrambled Sobol sets of ``2**LOG2_POINTS`` points per ``b``; the error
bound is the sum over ``b`` of ``q(b)`` times the Student-t half-width at confidence ``1 -
1e-6 / 2**K`` (so ``1 - 1e-6`` jointly), covering every entry of the mean and of the
covariance; ``n`` samples divide the covariance by ``n``. The ``Moments.method`` string says
all this. Exact per-dimension quadrature for separable objectives is not implemented.

The integrand is written independently of the estimator's code: ``dz~/dphi`` (with ``b``
fixed) is computed from ``z~`` itself, ``theta (1 - exp(-z~))`` for ``b = 1`` and ``(1 -
theta) (1 - exp(z~))`` for ``b = 0`` (from ``u~ = sigmoid(phi - z~)``, the conditional uniform
``v theta`` or ``theta + v (1 - theta)``), where the estimator uses softplus forms in ``v``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats
from scipy.stats import qmc

from reference.distributions import Distribution, log_sigmoid, sigmoid

from ..exact import check_budget, check_enumeration_size, config_probabilities, make_problem
from . import Moments
from .relaxation import _grad_ops, cached_moments

__all__ = ["rebar_moments", "relax_moments", "rebar_values", "rebar_values_z", "mixture_fraction"]

_TINY = np.finfo(np.float64).tiny
#: randomized QMC per sample b: RANDOMIZATIONS scrambled Sobol sets of 2**LOG2_POINTS points
LOG2_POINTS = 10
RANDOMIZATIONS = 16


def _relaxed(fn: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vals, grads = fn.relaxed(y)
    return (np.broadcast_to(np.asarray(vals, dtype=np.float64), y.shape[:-1]),
            np.broadcast_to(np.asarray(grads, dtype=np.float64), y.shape))


def rebar_values_z(phi: np.ndarray, objective: Any, b: np.ndarray, z: np.ndarray,
                   zt: np.ndarray, eta: float, tau: float, surrogate: Any = None) -> np.ndarray:
    """One sample's estimate ``(N, K)`` from the sample ``b`` int ``(N, K)`` and its
    relaxations ``z``, ``z~`` ``(N, K)`` (``H(z) = H(z~) = b``). The control variate is
    ``eta * surrogate`` (``None``: the objective's relaxation)."""
    theta = sigmoid(phi)
    one = b == 1
    dzt = np.where(one, theta * -np.expm1(-np.where(one, zt, 0.0)),
                   sigmoid(-phi) * -np.expm1(np.where(one, 0.0, zt)))
    y, yt = sigmoid(z / tau), sigmoid(zt / tau)
    # b - theta as sigmoid(-phi) for b = 1 and y (1 - y) as a product of sigmoids: 1 - theta
    # and 1 - y round to 0 at saturated logits, which dropped the score term's share of the
    # mean (-2.28e-22 for a true -2.70e-22 at phi = 50, bound 2.3e-25; tests/test_rebar_mp.py)
    score = np.where(one, sigmoid(-phi), -theta)
    dy, dyt = y * sigmoid(-z / tau) / tau, yt * sigmoid(-zt / tau) / tau
    c = objective if surrogate is None else surrogate
    _, dc_y = _relaxed(c, y)
    c_yt, dc_yt = _relaxed(c, yt)
    f_b = np.asarray(objective(b), dtype=np.float64)
    return ((f_b - eta * c_yt)[:, None] * score + eta * dc_y * dy - eta * dc_yt * dyt * dzt)


def rebar_values(phi: np.ndarray, objective: Any, U: np.ndarray, eta: float, tau: float,
                 surrogate: Any = None) -> np.ndarray:
    """One sample's estimate at the noise points ``U (N, 2K)`` (``u = U[:, :K]``, ``v =
    U[:, K:]``): ``(N, K)``, through the conditional uniform ``u~`` (``v theta`` given ``b =
    1``, ``theta + v (1 - theta)`` given ``b = 0``) and ``z~ = phi + log(1 - u~) - log(u~)``."""
    K = phi.shape[0]
    u = np.clip(U[:, :K], _TINY, np.nextafter(1.0, 0.0))
    v = np.maximum(U[:, K:], _TINY)
    theta = sigmoid(phi)
    b = (u < theta).astype(np.int64)
    z = phi + np.log1p(-u) - np.log(u)
    one = b == 1
    log_ut = np.where(one, np.log(v) + log_sigmoid(phi), np.log(theta + v * sigmoid(-phi)))
    log_1ut = np.where(one, np.log1p(-v * theta), np.log1p(-v) + log_sigmoid(-phi))
    return rebar_values_z(phi, objective, b, z, phi + log_1ut - log_ut, eta, tau, surrogate)


def _half_line(phi_eff: np.ndarray, w: np.ndarray, s: float, eps: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Points ``x > 0`` from ``w`` in ``[0, 1)`` with density ``r = (1 - eps) p + eps e``,
    ``p`` the logistic density of location ``phi_eff`` restricted to ``x > 0``, ``e``
    exponential of scale ``s``; returns ``x`` and the weight ``p(x) / r(x) <= 1 / (1 - eps)``.
    ``w < 1 - eps`` maps to ``p`` by its inverse CDF, the rest to ``e``."""
    first = w < 1 - eps
    w2 = np.where(first, w / (1 - eps), (w - (1 - eps)) / np.maximum(eps, _TINY))
    # inverse CDF of p: P(X > x) = sigmoid(phi - x) / sigmoid(phi) = 1 - w2
    a = np.log1p(-w2) + log_sigmoid(phi_eff)  # log((1 - w2) sigmoid(phi))
    x_p = phi_eff - a + np.log(-np.expm1(np.minimum(a, -_TINY)))  # phi - logit(exp(a))
    x_e = -s * np.log1p(-w2)
    x = np.maximum(np.where(first, x_p, x_e), 0.0)
    log_p = log_sigmoid(x - phi_eff) + log_sigmoid(phi_eff - x) - log_sigmoid(phi_eff)
    log_e = -x / s - math.log(s)
    weight = 1.0 / ((1 - eps) + eps * np.exp(np.minimum(log_e - log_p, 700.0)))
    return x, weight


def mixture_fraction(K: int) -> float:
    """The exponential's share ``eps`` per coordinate: ``2**-ceil(log2(2K))`` (a dyadic share,
    which scrambled Sobol points stratify exactly; the product of the ``2K`` weights stays
    below ``(1 - eps)**-2K <= e**2``)."""
    return 2.0 ** -math.ceil(math.log2(2 * K))


def _conditional_rqmc(phi: np.ndarray, objective: Any, b: np.ndarray, eta: float, tau: float,
                      surrogate: Any, confidence: float
                      ) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean ``(K,)``, second moment ``(K, K)`` of one sample's estimate given ``b``, and the
    Student-t half-width covering all their entries."""
    K = phi.shape[0]
    sign = np.where(b == 1, 1.0, -1.0)
    s = 2.0 * tau
    phi_eff = sign * phi
    # the exponential only where p(z | b) itself rarely comes within 3 tau of 0
    near = (sigmoid(3 * tau - phi_eff) - sigmoid(-phi_eff)) / sigmoid(phi_eff)
    eps = np.where(near < mixture_fraction(K), mixture_fraction(K), 0.0)
    means, seconds = [], []
    for r in range(RANDOMIZATIONS):
        eng = qmc.Sobol(2 * K, scramble=True, seed=np.random.default_rng([7, r]))
        W = np.minimum(eng.random_base2(LOG2_POINTS), np.nextafter(1.0, 0.0))
        x, wx = _half_line(phi_eff, W[:, :K], s, eps)
        xt, wxt = _half_line(phi_eff, W[:, K:], s, eps)
        wt = np.prod(wx, axis=1) * np.prod(wxt, axis=1)
        bb = np.broadcast_to(b, x.shape).astype(np.int64)
        g = rebar_values_z(phi, objective, bb, sign * x, sign * xt, eta, tau, surrogate)
        means.append((wt[:, None] * g).mean(axis=0))
        seconds.append((g * wt[:, None]).T @ g / len(g))
    M, S2 = np.array(means), np.array(seconds)
    q = stats.t.ppf(0.5 + confidence / 2, RANDOMIZATIONS - 1) / math.sqrt(RANDOMIZATIONS)
    half = q * max(float(M.std(axis=0, ddof=1).max()), float(S2.std(axis=0, ddof=1).max()))
    return M.mean(axis=0), S2.mean(axis=0), half


def _moments(name: str, dist: Any, params: object, objective: Any, n: int, eta: float,
             tau: float, surrogate: Any) -> Moments:
    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        if pr.dist.name != "bernoulli":
            raise ValueError(f"{name} is defined for Bernoulli variables only")
        phi, K = pr.params, pr.K
        # one RQMC integral over 2K uniforms per sample b: about six objective evaluations
        # (values and gradients at z, z~ and b) per point, and a (K, K) second moment
        check_enumeration_size(2, K)
        per_b = RANDOMIZATIONS * 2.0**LOG2_POINTS * (K * K + 6 * _grad_ops(pr) + 60.0 * K)
        check_budget(f"{name.upper()}'s certified moments (2**{K} samples b, RQMC for each)",
                     memory_bytes=8.0 * (2.0**LOG2_POINTS * 12 * K
                                         + 2 * RANDOMIZATIONS * K * K + 3 * 2.0**K * K),
                     operations=2.0**K * per_b)
        configs = Distribution.enumerate_configs(K, 2)
        q = config_probabilities(pr).ravel()
        live = np.flatnonzero(q > 0)
        mean, second, err = np.zeros(K), np.zeros((K, K)), 0.0
        for idx in live:
            m_b, s_b, h_b = _conditional_rqmc(phi, objective, configs[idx], eta, tau, surrogate,
                                              1 - 1e-6 / len(live))
            mean += q[idx] * m_b
            second += q[idx] * s_b
            err += q[idx] * h_b
        cov = second - np.outer(mean, mean)
        # err covers the mean and the second moment; the outer product moves by 2 |mean| err + err^2
        bound = err + 2 * float(np.abs(mean).max()) * err + err * err
        return Moments(mean.reshape(phi.shape), 0.5 * (cov + cov.T) / n,
                       f"certified: exact sum over the {len(live)} samples b with q(b) > 0, "
                       f"randomized QMC over (z, z~) given b with defensive importance sampling "
                       f"({RANDOMIZATIONS} scrambled Sobol sets of 2^{LOG2_POINTS} points each), "
                       f"{name.upper()} eta={eta}, tau={tau}; error bound = sum of Student-t "
                       "half-widths at joint confidence 1 - 1e-6", bound)
    opts = {"n": n, "eta": eta, "tau": tau, "surrogate": surrogate}
    return cached_moments(name, dist, params, objective, opts, compute)


def rebar_moments(dist: Any, params: object, objective: Any, n: int = 1, eta: float = 1.0,
                  tau: float = 0.5) -> Moments:
    """Certified mean and covariance of REBAR with ``n`` samples (module docstring)."""
    return _moments("rebar", dist, params, objective, n, eta, tau, None)


def relax_moments(dist: Any, params: object, objective: Any, n: int = 1, eta: float = 1.0,
                  tau: float = 0.5, surrogate: Any = None) -> Moments:
    """Certified mean and covariance of RELAX with ``n`` samples and the control variate
    ``eta * surrogate`` (``None``: the objective's relaxation, i.e. REBAR)."""
    return _moments("relax", dist, params, objective, n, eta, tau, surrogate)
