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
  half-width at confidence ``1 - 1e-6`` (over all entries) as the error bound, plus a
  resolution floor ``RESOLUTION / M * sup |g|`` (``M`` the number of points): a flip of the
  top-k set rarer than about ``1 / M`` may fall on no point (at saturated scores the bound was
  0 and missed the truth). (No closed form: top-k under Sum-of-Gamma noise has no known joint
  law.)

The helpers (caching, moments from enumerated values, RQMC) are the relaxation family's
(:mod:`verify.moments.relaxation`), as the estimators build on that family's formulas.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from reference.ksubset import check_k, gumbel, sum_of_gamma_noise, top_k

from ..exact import PYTHON_STEP, check_budget, ksubset_probabilities, make_problem, mp_mean_cov
from . import Moments
from .relaxation import _grad_ops, cached_moments, grad_at, moments_from_values, rqmc_moments

__all__ = ["simple_moments", "ksubset_perturb_moments", "simple_moments_mp"]


# --------------------------------------------------------------------------- SIMPLE
def simple_moments(dist: Any, params: object, objective: Any, k: int | None = None,
                   S: int = 1) -> Moments:
    """Exact moments of SIMPLE: ``g(z) = Cov_theta(z) dy(z)`` over all ``binom(n, k)`` subsets."""
    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        N = math.comb(pr.K, check_k(k, pr.K))
        check_budget("SIMPLE's exact moments", memory_bytes=8.0 * N * (4 * pr.K + 4),
                     operations=6.0 * N * pr.K * pr.K)
        Z, p = ksubset_probabilities(pr, k)
        cov_z = _subset_covariance(Z, p)
        dy = grad_at(objective, Z.astype(np.float64))
        m = moments_from_values(p, dy @ cov_z, S, pr.params.shape,
                                "exact: enumeration over all k-subsets")
        # exact up to rounding; the reference computes Cov by the DP, so allow for rounding
        return Moments(m.mean, m.cov, m.method, 1e-13 * max(1.0, float(np.abs(dy).max())),
                       m.range_bound)
    return cached_moments("simple", dist, params, objective, {"k": k, "S": S}, compute)


def _subset_covariance(Z: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``Cov(z)`` under the probabilities ``p (N,)`` of the subsets ``Z (N, n)``, in centred
    form with ``z_i - mu_i`` taken as ``P(z_i = 0)`` when ``z_i = 1`` (summed over the subsets
    without ``i``) and ``-mu_i`` otherwise: every term is then accurate in relative terms, where
    ``E[z z^T] - mu mu^T`` (the former form) and ``1 - mu_i`` cancel for a nearly sure subset
    (scores ``+-50``: it returned 0 or rounding noise of 1e-17 for variances of 1e-44)."""
    Zb = Z.astype(bool)
    mu = p @ Zb
    not_mu = p @ ~Zb  # 1 - mu without cancellation
    D = np.where(Zb, not_mu[None, :], -mu[None, :])
    cov = (D * p[:, None]).T @ D
    return 0.5 * (cov + cov.T)


def simple_moments_mp(dist: Any, params: object, objective: Any, k: int | None = None,
                      S: int = 1, *, dps: int = 60) -> Moments:
    """:func:`simple_moments` in arbitrary precision (``mpmath``, ``dps`` digits), from the
    definitions ``p(z) = exp(theta . z) / sum_z' exp(theta . z')``, ``Cov_theta(z)`` as a
    centred sum over the subsets and ``g(z) = Cov_theta(z) dy(z)``, the scores and the
    objective's float64 gradients taken as exact; rounded to float64 at the end. Small ``n``
    only (``binom(n, k) <= a few hundred``)."""
    import mpmath

    pr = make_problem(dist, params, objective)
    kk = check_k(k, pr.K)
    N, n = math.comb(pr.K, kk), pr.K
    check_budget("simple_moments_mp", memory_bytes=8.0 * N * n * (dps / 8 + 1),
                 operations=PYTHON_STEP * N * n * (n + 2 * N))
    Z, _ = ksubset_probabilities(pr, kk)
    ctx = mpmath.mp.clone()
    ctx.dps = dps
    theta = [ctx.mpf(float(t)) for t in pr.params]
    e = [ctx.exp(ctx.fsum(theta[i] for i in range(n) if z[i])) for z in Z]
    total = ctx.fsum(e)
    p = [x / total for x in e]
    _, cov_z = mp_mean_cov(ctx, p, [[ctx.mpf(int(v)) for v in z] for z in Z])
    dy = grad_at(objective, Z.astype(np.float64))
    gs = [[ctx.fsum(cov_z[i][j] * ctx.mpf(float(d[j])) for j in range(n)) for i in range(n)]
          for d in dy]
    mean, cov = mp_mean_cov(ctx, p, gs)
    return Moments(np.array([float(x) for x in mean]),
                   np.array([[float(x) / S for x in row] for row in cov]),
                   f"mpmath ({dps} digits): definition over all k-subsets")


# ------------------------------------------------------- I-MLE / AIMLE (RQMC)
#: events rarer than RESOLUTION / (number of RQMC points) are taken as possibly unseen
RESOLUTION = 10.0


def _imle_sup(pr: Any, k: int, objective: Any, lambda_: float, divide: bool, target: str,
              adaptive: bool, beta: float) -> float:
    """``sup |g_i|`` over the noise: an entry of a difference of two subsets is at most 1, so
    ``1 / w`` with ``w`` the smallest divisor (``lambda`` or ``2 lambda``; with an adaptive
    ``lambda`` its smallest value over every subset ``z``, by enumeration), or 1 undivided."""
    if not divide:
        return 1.0
    if adaptive:
        Z, _ = ksubset_probabilities(pr, k)
        dy = grad_at(objective, Z.astype(np.float64))
        nd = np.sqrt((dy**2).sum(axis=-1))
        lam = beta * math.sqrt(float(np.sum(pr.params**2))) / nd[nd > 0] if np.any(nd > 0) \
            else np.array([np.inf])
        lam_min = float(lam.min()) if lam.size else math.inf
    else:
        lam_min = float(lambda_)
    w = 2 * lam_min if target == "two_sided" else lam_min
    return 1.0 / w if w > 0 else 0.0


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
        log2_points, randomizations = (10 if sog else 11), 32
        m = rqmc_moments(values, dim, S, theta.shape,
                         f"top-k perturb-and-MAP with {perturbation} noise",
                         log2_points=log2_points, randomizations=randomizations,
                         # gammaincinv costs about a thousand operations per draw
                         ops_per_point=(1e3 * dim if sog else 50.0 * n)
                         + 3 * (20.0 * n + _grad_ops(pr)))
        # The resolution floor. A flip of the top-k set that the noise causes with probability
        # below about 1 / (points * randomizations) may fall on no point at all; RQMC then
        # reports a spread of 0 around a mean of 0 (scores +-50: bound 0 for a true mean of
        # -5e-21, and at a gap of 20 the truth 3e-10 lay outside the bound). Such events move
        # the mean by at most their probability times sup |g|, so the bound adds
        # RESOLUTION / M times sup |g| (sup |g|^2 for the covariance), M the number of points.
        g_sup = _imle_sup(pr, kk, objective, lambda_, divide_by_lambda, target, adaptive, beta)
        floor = RESOLUTION / (2.0**log2_points * randomizations) * max(g_sup, g_sup**2)
        return Moments(m.mean, m.cov, m.method + f"; plus a resolution floor of {RESOLUTION} / "
                       "(points x randomizations) times sup |g| (events too rare to be sampled)",
                       m.error_bound + floor, np.full(theta.shape, 2 * g_sup))
    return cached_moments("ksub", dist, params, objective, opts, compute)
