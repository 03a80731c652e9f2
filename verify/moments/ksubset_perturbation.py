"""Exact or certified moments of the k-subset perturbation estimators (I-MLE/AIMLE on
k-subsets, SIMPLE); records in :mod:`reference.estimators.ksubset_perturbation`.

Every result is a :class:`verify.Moments` with its method and error bound (0 when exact up to
rounding). ``S`` samples per replicate divide the single-sample covariance by ``S``.

* ``simple``: **exact**, by enumeration. Its noise acts only through the exact sample ``z``,
  and the estimate is a function of ``z``: ``g(z) = Cov_theta(z) dy(z)`` over all
  ``binom(n, k)`` subsets (the covariance by enumeration, independent of the DP).
* ``imle_ksubset`` and ``aimle_ksubset``: **certified** by randomized quasi-Monte Carlo over
  the noise of one sample (:func:`verify.moments.quadrature.rqmc_mean_cov`; 32 scrambled Sobol
  sets of ``2**10`` points for Sum-of-Gamma noise, ``2**11`` for Gumbel), with the Student-t
  half-width at confidence ``1 - 1e-6`` (over all entries) as the error bound. (No closed form:
  top-k under Sum-of-Gamma noise has no known joint law.)

The helpers (caching, moments from enumerated values, RQMC) are the relaxation family's
(:mod:`verify.moments.relaxation`), as the estimators build on that family's formulas.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference.ksubset import check_k, gumbel, sum_of_gamma_noise, top_k

from ..exact import ksubset_probabilities, make_problem
from . import Moments
from .relaxation import cached_moments, grad_at, moments_from_values, rqmc_moments

__all__ = ["simple_moments", "ksubset_perturb_moments"]


# --------------------------------------------------------------------------- SIMPLE
def simple_moments(dist: Any, params: object, objective: Any, k: int | None = None,
                   S: int = 1) -> Moments:
    """Exact moments of SIMPLE: ``g(z) = Cov_theta(z) dy(z)`` over all ``binom(n, k)`` subsets."""
    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        check_k(k, pr.K)
        Z, p = ksubset_probabilities(pr, k)
        mu = p @ Z
        cov_z = (Z * p[:, None]).T @ Z - np.outer(mu, mu)
        dy = grad_at(objective, Z.astype(np.float64))
        m = moments_from_values(p, dy @ cov_z, S, pr.params.shape,
                                "exact: enumeration over all k-subsets")
        # exact up to rounding; the reference computes Cov by the DP, so allow for rounding
        return Moments(m.mean, m.cov, m.method, 1e-13 * max(1.0, float(np.abs(dy).max())),
                       m.range_bound)
    return cached_moments("simple", dist, params, objective, {"k": k, "S": S}, compute)


# ------------------------------------------------------- I-MLE / AIMLE (RQMC)
def ksubset_perturb_moments(dist: Any, params: object, objective: Any, k: int | None = None,
                            perturbation: str = "sum_of_gamma", tau: float = 1.0, s: int = 10,
                            lambda_: float = 1.0, S: int = 1, divide_by_lambda: bool = True,
                            target: str = "one_sided", adaptive: bool = False,
                            beta: float = 1.0) -> Moments:
    """Certified (RQMC) moments of I-MLE / AIMLE on k-subsets (top-k perturb-and-MAP)."""
    opts = dict(k=k, perturbation=perturbation, tau=tau, s=s, lambda_=lambda_, S=S,
                divide_by_lambda=divide_by_lambda, target=target, adaptive=adaptive, beta=beta)

    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        n = pr.K
        kk = check_k(k, n)
        theta = pr.params
        sog = perturbation == "sum_of_gamma"
        dim = s * n if sog else n

        def values(U: np.ndarray) -> np.ndarray:
            if sog:
                eps = sum_of_gamma_noise(U.reshape(-1, s, n), kk, tau)
            else:
                eps = tau * gumbel(U)
            x = theta + eps
            z = top_k(x, kk).astype(np.float64)
            dy = grad_at(objective, z)
            if adaptive:
                nd = np.sqrt((dy**2).sum(axis=-1))
                lam = np.where(nd > 0, beta * np.sqrt(np.sum(theta**2)) / np.where(nd > 0, nd, 1), 0.0)
            else:
                lam = np.full(len(U), float(lambda_))
            step = lam[:, None] * dy
            minus = top_k(x - step, kk)
            if target == "two_sided":
                g, w = top_k(x + step, kk) - minus, 2 * lam
            else:
                g, w = z - minus, lam
            if divide_by_lambda:
                g = g / np.where(w > 0, w, 1.0)[:, None]
            return np.where(lam[:, None] > 0, g, 0.0)

        # gammaincinv dominates the cost: fewer points for Sum-of-Gamma noise
        return rqmc_moments(values, dim, S, theta.shape,
                             f"top-k perturb-and-MAP with {perturbation} noise",
                             log2_points=10 if sog else 11)
    return cached_moments("ksub", dist, params, objective, opts, compute)
