"""Certified moments of REBAR and RELAX (records in :mod:`reference.estimators.rebar`).

The estimate of one sample is a function of ``(u, v)`` in ``[0, 1)^{2K}``: the discrete
``b = 1[u < theta]`` and the smooth relaxations ``z``, ``z~`` enter together, and the
objective's relaxation couples the dimensions, so there is no closed form in general. The
discrete part is summed exactly: for each of the ``2**K`` samples ``b``, with weight
``q(b)``, ``u_k`` is uniform on ``b_k``'s cell (``[0, theta_k)`` or ``[theta_k, 1)``) and the
estimate is a smooth function of ``(u, v)`` there, integrated by randomized quasi-Monte
Carlo (:func:`verify.moments.quadrature.rqmc_mean_cov`: ``RANDOMIZATIONS`` scrambled Sobol
sets of ``2**LOG2_POINTS`` points per ``b``), with the Student-t half-width at confidence
``1 - 1e-6 / 2**K`` per ``b`` (so ``1 - 1e-6`` jointly); the bounds add up with the weights
``q(b)`` and cover every entry of the mean and the covariance. (Plain RQMC over ``[0,
1)^{2K}`` misses outcomes of probability below ``2**-LOG2_POINTS`` in most sets and can then
report a zero spread, hence a zero bound around a wrong mean: the exact sum over ``b``
removes that failure.) ``n`` samples divide the covariance by ``n``. The
``Moments.method`` string says all this. Exact per-dimension quadrature for separable
objectives is not implemented.

The integrand is written here independently of the estimator's code: the conditional
relaxation is computed from the conditional uniform (``u~ = v theta`` given ``b = 1``, ``u~ =
theta + v (1 - theta)`` given ``b = 0``, ``z~ = phi + log(1 - u~) - log(u~)``), and ``dz~/dphi
= 1 + theta (1 - theta) d/dtheta [log(1 - u~) - log(u~)]`` by the chain rule, where the
estimator uses the equivalent softplus forms.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference.distributions import Distribution, log_sigmoid, sigmoid

from ..exact import config_probabilities, make_problem
from . import Moments
from .quadrature import rqmc_mean_cov
from .relaxation import cached_moments

__all__ = ["rebar_moments", "relax_moments", "rebar_values"]

_TINY = np.finfo(np.float64).tiny
#: randomized QMC per sample b: RANDOMIZATIONS scrambled Sobol sets of 2**LOG2_POINTS points
LOG2_POINTS = 10
RANDOMIZATIONS = 16


def _relaxed(fn: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vals, grads = fn.relaxed(y)
    return (np.broadcast_to(np.asarray(vals, dtype=np.float64), y.shape[:-1]),
            np.broadcast_to(np.asarray(grads, dtype=np.float64), y.shape))


def rebar_values(phi: np.ndarray, objective: Any, U: np.ndarray, eta: float, tau: float,
                 surrogate: Any = None) -> np.ndarray:
    """One sample's estimate at the points ``U (N, 2K)`` (``u = U[:, :K]``, ``v = U[:, K:]``):
    ``(N, K)``. The control variate is ``eta * surrogate`` (``surrogate=None``: the
    objective's relaxation)."""
    K = phi.shape[0]
    u = np.clip(U[:, :K], _TINY, np.nextafter(1.0, 0.0))
    v = np.maximum(U[:, K:], _TINY)
    theta = sigmoid(phi)
    b = (u < theta).astype(np.int64)
    z = phi + np.log1p(-u) - np.log(u)
    one = b == 1
    # conditional uniform u~ and logs of u~ and 1 - u~, stable for logits up to 50
    log_ut = np.where(one, np.log(v) + log_sigmoid(phi),
                      np.log(theta + v * sigmoid(-phi)))
    log_1ut = np.where(one, np.log1p(-v * theta), np.log1p(-v) + log_sigmoid(-phi))
    zt = phi + log_1ut - log_ut
    ut = np.exp(log_ut)
    # d/dtheta [log(1 - u~) - log(u~)]: b = 1, u~ = v theta; b = 0, u~ = theta + v (1 - theta)
    d_theta = np.where(one, -v / np.exp(log_1ut) - 1.0 / theta,
                       -(1.0 - v) / np.exp(log_1ut) - (1.0 - v) / ut)
    dzt = 1.0 + theta * (1.0 - theta) * d_theta
    y, yt = sigmoid(z / tau), sigmoid(zt / tau)
    c = objective if surrogate is None else surrogate
    _, dc_y = _relaxed(c, y)
    c_yt, dc_yt = _relaxed(c, yt)
    f_b = np.asarray(objective(b), dtype=np.float64)
    return ((f_b - eta * c_yt)[:, None] * (b - theta) + eta * dc_y * y * (1 - y) / tau
            - eta * dc_yt * yt * (1 - yt) / tau * dzt)


def _moments(name: str, dist: Any, params: object, objective: Any, n: int, eta: float,
             tau: float, surrogate: Any) -> Moments:
    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        if pr.dist.name != "bernoulli":
            raise ValueError(f"{name} is defined for Bernoulli variables only")
        phi, K = pr.params, pr.K
        theta = sigmoid(phi)
        configs = Distribution.enumerate_configs(K, 2)
        q = config_probabilities(pr).ravel()
        live = np.flatnonzero(q > 0)
        mean, second, err_m, err_s = np.zeros(K), np.zeros((K, K)), 0.0, 0.0
        for idx in live:
            b = configs[idx].astype(bool)

            def fn(W: np.ndarray, b: np.ndarray = b) -> np.ndarray:
                # u uniform on b's cell: [0, theta) for b = 1, [theta, 1) for b = 0
                u = np.where(b, W[:, :K] * theta, theta + W[:, :K] * sigmoid(-phi))
                return rebar_values(phi, objective, np.concatenate([u, W[:, K:]], axis=1),
                                    eta, tau, surrogate)

            m_b, c_b, h_b = rqmc_mean_cov(fn, 2 * K, log2_points=LOG2_POINTS,
                                          randomizations=RANDOMIZATIONS,
                                          confidence=1 - 1e-6 / len(live))
            mean += q[idx] * m_b
            second += q[idx] * (c_b + np.outer(m_b, m_b))
            # h_b covers m_b and c_b; m_b m_b^T moves by at most 2 |m_b| h_b + h_b^2
            err_m += q[idx] * h_b
            err_s += q[idx] * (h_b + 2 * float(np.abs(m_b).max()) * h_b + h_b * h_b)
        cov = second - np.outer(mean, mean)
        err = max(err_m, err_s + 2 * float(np.abs(mean).max()) * err_m + err_m**2)
        return Moments(mean.reshape(phi.shape), 0.5 * (cov + cov.T) / n,
                       f"certified: exact sum over the {len(live)} samples b with q(b) > 0, "
                       f"randomized QMC over (u, v) given b ({RANDOMIZATIONS} scrambled Sobol "
                       f"sets of 2^{LOG2_POINTS} points each), {name.upper()} eta={eta}, "
                       f"tau={tau}; error bound = sum of Student-t half-widths at joint "
                       "confidence 1 - 1e-6", err)
    opts = {"n": n, "eta": eta, "tau": tau, "surrogate": surrogate}
    return cached_moments(name, dist, params, objective, opts, compute)


def rebar_moments(dist: Any, params: object, objective: Any, n: int = 1, eta: float = 1.0,
                  tau: float = 0.5) -> Moments:
    """Certified (RQMC) mean and covariance of REBAR with ``n`` samples (module docstring)."""
    return _moments("rebar", dist, params, objective, n, eta, tau, None)


def relax_moments(dist: Any, params: object, objective: Any, n: int = 1, eta: float = 1.0,
                  tau: float = 0.5, surrogate: Any = None) -> Moments:
    """Certified (RQMC) mean and covariance of RELAX with ``n`` samples and the control
    variate ``eta * surrogate`` (``None``: the objective's relaxation, i.e. REBAR)."""
    return _moments("relax", dist, params, objective, n, eta, tau, surrogate)
