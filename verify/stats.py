"""Statistical checks of Monte Carlo samples against exact moments, with a set false-alarm rate.

Both tests use concentration inequalities rather than the normal approximation, because
estimators of discrete problems with extreme logits have rare, large outcomes: a test built
on the central limit theorem then raises false alarms far more often than its nominal rate
(one occurrence of a probability-``1e-7`` outcome in 2000 replicates moves the mean by many
standard errors). The ranges the inequalities need come from ``Moments.range_bound`` when the
exact-moment method provides one (then the false-alarm rate is guaranteed); otherwise the
largest deviations seen in the sample are plugged in.

* **Mean.** With the exact covariance ``Sigma = V diag(lambda) V^T``, the whitened components
  ``y_j = v_j . (g - mu) / sqrt(lambda_j)`` have mean 0 and variance 1. Each sample mean is
  tested with Bernstein's inequality,
  ``P(|ybar_j| >= t) <= 2 exp(-R t^2 / (2 + 2 M_j t / 3))``, Bonferroni over the rank.
  Directions with zero exact variance must show no deviation beyond rounding.
* **Variance.** ``v_r = (g_rp - mu_p)^2`` has mean ``Sigma_pp``; each coordinate and the trace
  is tested with the empirical Bernstein bound of Maurer & Pontil (2009),
  ``|vbar - E v| <= sqrt(2 V ln(2/d) / R) + 7 M ln(2/d) / (3 (R - 1))``.
* **Covariance.** The whitened components have ``E[y_i y_j] = 1[i = j]``: every entry of the
  whitened second-moment matrix (``i <= j`` over the rank) is tested with the same empirical
  Bernstein bound (``y_i y_j`` lies in ``[-M_i M_j, M_i M_j]``). This is what catches a port
  with the right means and variances but wrong correlations between entries.

The false-alarm rate ``alpha`` (default 1e-6) is split evenly between the three tests, and
within each by Bonferroni over its statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .moments import Moments

__all__ = ["CheckResult", "check_samples", "assert_samples"]

#: eigenvalues below this fraction of the largest count as exact zeros
_RANK_RTOL = 1e-10
#: deviations allowed in zero-variance directions, relative to the samples' magnitude
_NULL_RTOL = 1e-9
#: ... and absolutely: below this, squares underflow and float64 variances read as exactly 0
_NULL_ATOL = 1e-150


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check_samples`; ``message`` explains any failure."""

    passed: bool
    alpha: float
    replicates: int
    mean_worst_ratio: float  # largest |ybar_j| / threshold_j (fails above 1)
    variance_worst_ratio: float  # largest ratio of the variance and covariance tests (fails > 1)
    hotelling: float  # R dbar^T Sigma^+ dbar, for information (about chi2(rank) when normal)
    rank: int
    failures: list[str] = field(default_factory=list)
    message: str = ""

    def __bool__(self) -> bool:
        return self.passed


def _bernstein_threshold(R: int, M: float, sigma2: float, log_term: float) -> float:
    # smallest t with R t^2 / (2 sigma2 + 2 M t / 3) >= log_term
    a = R
    b = -2.0 * M * log_term / 3.0
    c = -2.0 * sigma2 * log_term
    return (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)


def _check_finite_moments(moments: Moments) -> None:
    """Exact moments with a NaN or an infinite entry vouch for nothing: refuse them (every
    comparison with NaN is false, so a test against them would pass any sample)."""
    parts = {"mean": moments.mean, "cov": moments.cov, "error_bound": moments.error_bound}
    if moments.range_bound is not None:
        parts["range_bound"] = moments.range_bound
    for name, value in parts.items():
        if not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
            raise ValueError(f"moments.{name} is not finite: the exact moments cannot be used "
                             f"as a reference (method: {moments.method})")
    if moments.error_bound < 0:
        raise ValueError(f"moments.error_bound must be >= 0, got {moments.error_bound}")


def check_samples(samples: np.ndarray, moments: Moments, alpha: float = 1e-6,
                  repro: str | None = None) -> CheckResult:
    """Test replicates ``samples`` (``(R, *param_shape)``) against exact ``moments``.

    Returns a :class:`CheckResult` (truthy when passed). ``repro``, if given, is appended to
    the failure message (a copy-pasteable reproduction).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    g = np.asarray(samples, dtype=np.float64)
    mu = np.asarray(moments.mean, dtype=np.float64).ravel()
    P = mu.size
    if g.ndim < 1 or int(np.prod(g.shape[1:], dtype=np.int64)) != P:
        raise ValueError(f"samples must have shape (R, *{moments.mean.shape}), got {g.shape}")
    g = g.reshape(g.shape[0], P)
    R = g.shape[0]
    if R < 2:
        raise ValueError("need at least 2 replicates")
    if not np.all(np.isfinite(g)):
        raise ValueError("samples contain NaN or inf")
    cov = np.asarray(moments.cov, dtype=np.float64)
    _check_finite_moments(moments)
    d = g - mu
    dbar = d.mean(axis=0)
    rng_b = None if moments.range_bound is None else \
        np.abs(np.asarray(moments.range_bound, dtype=np.float64)).ravel() + moments.error_bound
    failures: list[str] = []

    # ---------------------------------------------------------------- mean, whitened
    lam, V = np.linalg.eigh(0.5 * (cov + cov.T))
    lam_max = max(float(lam.max()), 0.0) if P else 0.0
    keep = lam > _RANK_RTOL * lam_max if lam_max > 0 else np.zeros(P, bool)
    rank = int(keep.sum())
    scale = float(np.abs(g).max() + np.abs(mu).max()) + moments.error_bound + 1e-300
    null_dev = np.abs(dbar @ V[:, ~keep]) if (~keep).any() else np.zeros(0)
    if null_dev.size and null_dev.max() > _NULL_RTOL * scale + _NULL_ATOL + moments.error_bound:
        failures.append(f"mean deviates by {null_dev.max():.3e} along a direction in which the "
                        "exact variance is zero")
    mean_ratio, hotelling = 0.0, 0.0
    if rank:
        Y = (d @ V[:, keep]) / np.sqrt(lam[keep])
        ybar = Y.mean(axis=0)
        hotelling = float(R * ybar @ ybar)
        M = np.abs(Y).max(axis=0)
        if rng_b is not None:
            M = np.maximum(M, (np.abs(V[:, keep]).T @ rng_b) / np.sqrt(lam[keep]))
        log_term = np.log(2 * 3 * rank / alpha)  # alpha/3 for the mean test, Bonferroni
        # moments carry an error bound: widen by it, in whitened units
        slack = moments.error_bound / np.sqrt(lam[keep])
        thr = np.array([_bernstein_threshold(R, m, 1.0, log_term) for m in M]) + slack
        ratios = np.abs(ybar) / thr
        mean_ratio = float(ratios.max())
        j = int(np.argmax(ratios))
        if mean_ratio > 1:
            failures.append(
                f"sample mean differs from the exact mean: whitened component {j} has mean "
                f"{ybar[j]:.4g} against a threshold of {thr[j]:.4g} (ratio {mean_ratio:.3g}; "
                f"Hotelling statistic {hotelling:.4g} on {rank} degrees of freedom)")

    # -------------------------------------------------------------------- variances
    v = np.concatenate([d**2, (d**2).sum(axis=1, keepdims=True)], axis=1)  # (R, P + 1)
    target = np.concatenate([np.diag(cov), [np.trace(cov)]])
    vbar = v.mean(axis=0)
    Vs = v.var(axis=0, ddof=1)
    Mv = v.max(axis=0)
    if rng_b is not None:
        Mv = np.maximum(Mv, np.concatenate([rng_b**2, [np.sum(rng_b**2)]]))
    log_v = np.log(2 * 3 * (P + 1) / alpha)
    thr_v = np.sqrt(2 * Vs * log_v / R) + 7 * Mv * log_v / (3 * (R - 1))
    thr_v = thr_v + _NULL_RTOL * scale**2 + 2 * moments.error_bound * (1 + scale)
    thr_v = np.maximum(thr_v, _NULL_ATOL**2)  # never 0/0 when every sample is exact
    ratios_v = np.abs(vbar - target) / thr_v
    var_ratio = float(ratios_v.max())
    if var_ratio > 1:
        j = int(np.argmax(ratios_v))
        what = "the trace" if j == P else f"entry {np.unravel_index(j, moments.mean.shape)}"
        failures.append(f"sample variance of {what} is {vbar[j]:.6g} against the exact "
                        f"{target[j]:.6g} (threshold {thr_v[j]:.3g}, ratio {var_ratio:.3g})")

    # ------------------------------------------------- whole covariance, whitened
    cov_ratio = 0.0
    if rank:
        iu, ju = np.triu_indices(rank)
        prods = Y[:, iu] * Y[:, ju]  # (R, pairs)
        target_w = (iu == ju).astype(np.float64)
        width = np.where(iu == ju, M[iu] ** 2, 2 * M[iu] * M[ju])
        log_w = np.log(2 * 3 * iu.size / alpha)
        Vw = prods.var(axis=0, ddof=1)
        thr_w = np.sqrt(2 * Vw * log_w / R) + 7 * width * log_w / (3 * (R - 1))
        # the exact covariance is known to within error_bound per entry (whitened units)
        sl = np.sqrt(lam[keep])
        thr_w = thr_w + moments.error_bound * (P / (sl[iu] * sl[ju]) + M[iu] / sl[ju] +
                                               M[ju] / sl[iu]) + 1e-9
        ratios_w = np.abs(prods.mean(axis=0) - target_w) / thr_w
        cov_ratio = float(ratios_w.max())
        if cov_ratio > 1:
            j = int(np.argmax(ratios_w))
            failures.append(
                f"sample covariance differs from the exact covariance: whitened entry "
                f"({iu[j]}, {ju[j]}) is {prods[:, j].mean():.4g} against {target_w[j]:.4g} "
                f"(threshold {thr_w[j]:.3g}, ratio {cov_ratio:.3g}): wrong correlations "
                "between entries")

    passed = not failures
    message = ""
    if not passed:
        message = (f"Monte Carlo check failed at false-alarm rate {alpha:g} with R={R} "
                   f"replicates ({moments.method}):\n  - " + "\n  - ".join(failures))
        if repro:
            message += "\nReproduce with:\n\n" + repro + "\n"
    return CheckResult(passed, alpha, R, mean_ratio, max(var_ratio, cov_ratio), hotelling, rank,
                       failures, message)


def assert_samples(samples: np.ndarray, moments: Moments, alpha: float = 1e-6,
                   repro: str | None = None) -> CheckResult:
    """:func:`check_samples`, raising ``AssertionError`` with the message on failure."""
    res = check_samples(samples, moments, alpha, repro)
    if not res.passed:
        raise AssertionError(res.message)
    return res
