"""The oracle's exact-moment methods, one module per estimator family, and their result type.

Each registry record names its method as ``exact_moments_path``
(``"verify.moments.<family>:<function>"``), called as
``fn(dist, params, objective, **options) -> Moments``:

============================  =================================================================
module                        estimators and method
============================  =================================================================
``score_function``            REINFORCE, REINFORCE-LOO: closed forms from single-configuration
                              moments (no ``n``-tuples)
``augment_reinforce``         AR, ARM, DisARM: exact cell integrals of the uniform thresholds
``swap``                      ARS, ARSM, ARS+, ARSM+, ARSM+CE: exact; closed-form exponential
                              races for ARS/ARSM (``races``), integration over polytope cells
                              of the simplex for the others (geometry in ``polytope``)
``relaxation``                straight-through, I-MLE/AIMLE (exact; joint argmax laws in
                              ``quadrature``), Gumbel-Softmax, ST-Gumbel-Softmax (certified RQMC)
``ksubset_perturbation``      SIMPLE (exact enumeration of subsets), I-MLE/AIMLE on k-subsets
                              (certified RQMC)
``st_variants``               GST, ReinMax (exact enumeration of z), Gumbel-Rao (enumeration of
                              z, conditional-Gumbel moments certified by RQMC)
``control_variates``          NVIL, MuProp (exact: closed form / enumeration over ``z``), double
                              control variates (exact: degree-3 U-statistic over tuples of
                              configurations)
``rebar``                     REBAR, RELAX (certified: exact sum over the sample ``b``, RQMC
                              with defensive importance sampling over the relaxations)
``multi_sample``              VIMCO and its target's gradient (exact: sums over multisets of
                              i.i.d. samples), the unordered set estimator (exact: sum over
                              subsets with their without-replacement probabilities), CARMS
                              (exact: U-statistic over the Dirichlet-copula laws of 2, 3, 4
                              samples)
============================  =================================================================

This module defines only :class:`Moments` and imports none of the family modules, so each of
them can import it without a circle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Moments"]


@dataclass(frozen=True)
class Moments:
    """Mean and covariance of one replicate of an estimator, computed without sampling.

    ``mean``: shape of the parameters, ``(K,)`` or ``(K, C)``.
    ``cov``: ``(P, P)`` with ``P = mean.size``, entries in the C-order flattening of ``mean``.
    ``method``: how they were obtained. ``error_bound``: a bound on the absolute error of
    every entry beyond float64 rounding (0 for exact methods). ``range_bound``: optional,
    shaped like ``mean``, a bound on ``|g_p - mean_p|`` over the estimator's whole support; it
    makes the statistical checks rigorous when rare outcomes carry much of the variance (they
    fall back on the largest deviation seen in the sample without it).
    """

    mean: np.ndarray
    cov: np.ndarray
    method: str
    error_bound: float = 0.0
    range_bound: np.ndarray | None = None

    @property
    def variance_trace(self) -> float:
        """``trace Cov``: the total variance of one replicate."""
        return float(np.trace(self.cov))

    @property
    def variances(self) -> np.ndarray:
        """Per-entry variances, shaped like ``mean``."""
        return np.diag(self.cov).reshape(self.mean.shape)

    def bias(self, gradient: np.ndarray) -> np.ndarray:
        """``mean - gradient``, shaped like ``mean``."""
        return self.mean - np.asarray(gradient).reshape(self.mean.shape)

    def scaled(self, replicates: int) -> Moments:
        """Moments of the average of ``replicates`` independent replicates."""
        # the average stays within the single-replicate range
        return Moments(self.mean, self.cov / replicates, self.method, self.error_bound,
                       self.range_bound)
