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
                              races for ARS/ARSM/ARSM+ (``races``, ``races_sym``), integration
                              over polytope cells of the simplex for the others (geometry in
                              ``polytope``); ARS+ and ARSM+CE past their cells certified
                              (races and RQMC of what the conditional expectation changes,
                              ``swap_interval``)
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

    ``mean_error`` (shaped like ``mean``) and ``cov_error`` (``(P, P)``): optional *per-entry*
    bounds on the absolute error, float64 rounding included, for methods whose entries are not
    all accurate relative to themselves (a sum that cancels terms far larger than the entry).
    Each is the whole bound on its entry (``error_bound``'s part included). Where given they
    state what each entry is worth (:meth:`relative_error`), and the statistical checks widen
    their thresholds by them, entry by entry, instead of by ``error_bound``.
    """

    mean: np.ndarray
    cov: np.ndarray
    method: str
    error_bound: float = 0.0
    range_bound: np.ndarray | None = None
    mean_error: np.ndarray | None = None
    cov_error: np.ndarray | None = None

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
        cov_error = None if self.cov_error is None else self.cov_error / replicates
        return Moments(self.mean, self.cov / replicates, self.method, self.error_bound,
                       self.range_bound, self.mean_error, cov_error)

    def entry_errors(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-entry absolute error bounds ``(mean_error, cov_error)``, shaped like ``mean``
        and ``(P, P)``: the given ones, else ``error_bound`` in every entry."""
        shape = np.shape(self.mean)
        P = int(np.prod(shape, dtype=np.int64))
        me = np.full(shape, float(self.error_bound)) if self.mean_error is None else \
            np.maximum(np.asarray(self.mean_error, dtype=np.float64), self.error_bound)
        ce = np.full((P, P), float(self.error_bound)) if self.cov_error is None else \
            np.maximum(np.asarray(self.cov_error, dtype=np.float64), self.error_bound)
        return me, ce

    def relative_error(self) -> np.ndarray:
        """Per-entry bound on the relative error of ``mean`` (``mean_error / |mean|``, shaped
        like ``mean``; ``inf`` where the bound does not exclude 0 from an entry of 0, and 0
        where both are 0). Float64 rounding of exact methods without per-entry bounds is not
        counted (their entries are accurate to a few units of rounding)."""
        me, _ = self.entry_errors()
        mu = np.abs(np.asarray(self.mean, dtype=np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(me == 0, 0.0, me / mu)
