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
  Directions with zero exact variance must show no deviation beyond rounding
  (``null_rtol`` times the samples' magnitude; a failure names the direction).
* **Power.** A mean shift of ``2 t_j`` along whitened component ``j`` (``t_j`` its threshold)
  is detected with probability at least ``1 - alpha`` by the same inequality. Translated back,
  every result states ``detectable_bias``: per parameter entry ``p``, the smallest relative
  error ``|b|`` such that a mean ``mu_p (1 + b)`` in that entry alone is detected, and
  ``detectable_scale_bias``: the smallest ``|b|`` such that the whole mean scaled by
  ``1 + b`` is detected. :func:`replicates_for_bias` inverts the latter to pick ``R``.
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

from reference._validate import finite_scalar, float_array, positive_int

from .moments import Moments

__all__ = ["CheckResult", "check_samples", "assert_samples", "replicates_for_bias",
           "direction_label"]

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
    #: per entry (shaped like the mean): smallest relative bias of that entry alone that the
    #: mean test detects with probability >= 1 - alpha (inf where the entry's mean is 0)
    detectable_bias: np.ndarray | None = None
    #: smallest relative bias ``b`` of the whole mean (``(1 + b) mu``) detected likewise
    detectable_scale_bias: float = float("inf")
    #: False when the exact mean and covariance are both zero: a port returning zeros would pass
    informative: bool = True

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
    comparison with NaN is false, so a test against them would pass any sample); so do
    moments that are no covariance: a ``cov`` not ``(P, P)``, not symmetric, or with a
    negative eigenvalue beyond rounding and the stated error bounds (the whitening would turn
    them into meaningless ratios), and a ``range_bound`` not shaped like the mean or
    negative."""
    if not isinstance(moments, Moments):
        raise TypeError(f"moments must be a verify.Moments, got {type(moments).__name__}")
    for name in ("mean", "cov", "range_bound", "mean_error", "cov_error"):
        value = getattr(moments, name)
        if value is not None:
            try:  # real numbers; non-finite ones are named below
                float_array(value, f"moments.{name}")
            except ValueError:
                pass
    if isinstance(moments.error_bound, (bool, np.bool_)) or not np.isscalar(moments.error_bound) \
            or not np.isreal(moments.error_bound):
        raise TypeError(f"moments.error_bound must be a real number, got "
                        f"{moments.error_bound!r}")
    parts = {"mean": moments.mean, "cov": moments.cov, "error_bound": moments.error_bound}
    for name in ("range_bound", "mean_error", "cov_error"):
        if getattr(moments, name) is not None:
            parts[name] = getattr(moments, name)
    for name, value in parts.items():
        if not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
            raise ValueError(f"moments.{name} is not finite: the exact moments cannot be used "
                             f"as a reference (method: {moments.method})")
    if moments.error_bound < 0:
        raise ValueError(f"moments.error_bound must be >= 0, got {moments.error_bound}")
    P = int(np.size(moments.mean))
    for name, shape in (("mean_error", np.shape(moments.mean)), ("cov_error", (P, P))):
        value = getattr(moments, name)
        if value is None:
            continue
        if np.shape(value) != shape:
            raise ValueError(f"moments.{name} must have shape {shape}, got {np.shape(value)}")
        if np.any(np.asarray(value, dtype=np.float64) < 0):
            raise ValueError(f"moments.{name} must be >= 0 in every entry")
    cov = np.asarray(moments.cov, dtype=np.float64)
    if cov.shape != (P, P):
        raise ValueError(f"moments.cov must have shape {(P, P)} (mean has {P} entries), got "
                         f"{cov.shape}")
    if moments.range_bound is not None:
        rb = np.asarray(moments.range_bound, dtype=np.float64)
        if rb.shape != np.shape(moments.mean):
            raise ValueError(f"moments.range_bound must have the mean's shape "
                             f"{np.shape(moments.mean)}, got {rb.shape}")
        if np.any(rb < 0):
            raise ValueError("moments.range_bound must be >= 0 in every entry")
    if P:
        _, ce = moments.entry_errors()
        slack = 2.0 * float(ce.max()) + 1e-300
        scale = float(np.abs(cov).max())
        if np.abs(cov - cov.T).max() > 1e-9 * scale + slack:
            raise ValueError("moments.cov is not symmetric: not a covariance matrix")
        lam_min = float(np.linalg.eigvalsh(0.5 * (cov + cov.T)).min())
        if lam_min < -(1e-8 * scale + P * slack):
            raise ValueError(f"moments.cov has a negative eigenvalue {lam_min:.3g} (largest entry "
                             f"{scale:.3g}): not a covariance matrix")


def _per_entry(moments: Moments) -> bool:
    """Whether the moments carry per-entry error bounds (else the scalar ``error_bound``
    widens every threshold alike)."""
    return moments.mean_error is not None or moments.cov_error is not None


def _mean_slack(moments: Moments, Vk: np.ndarray, sl: np.ndarray) -> np.ndarray:
    """Bound on the error of the exact mean along each whitened component (columns ``Vk``,
    scales ``sl``): ``sum_p |V_pj| e_p / sl_j`` with per-entry bounds ``e``, else
    ``error_bound / sl_j`` as before per-entry bounds existed."""
    if not _per_entry(moments):
        return moments.error_bound / sl
    me, _ = moments.entry_errors()
    return (np.abs(Vk).T @ me.ravel()) / sl


def direction_label(v: np.ndarray, shape: tuple[int, ...], top: int = 4) -> str:
    """A readable name for direction ``v`` (a unit vector over the C-order flattening of
    parameters of ``shape``): its largest entries as ``+0.707*(0, 1) -0.707*(0, 2)``."""
    v = np.asarray(v, dtype=np.float64).ravel()
    order = np.argsort(-np.abs(v), kind="stable")[:top]
    terms = [f"{v[i]:+.3g}*{tuple(int(x) for x in np.unravel_index(int(i), shape))}"
             for i in order if abs(v[i]) > 1e-12]
    more = " ..." if np.count_nonzero(np.abs(v) > 1e-12) > top else ""
    return " ".join(terms) + more


def _whiten(moments: Moments) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cov = np.asarray(moments.cov, dtype=np.float64)
    lam, V = np.linalg.eigh(0.5 * (cov + cov.T))
    lam_max = max(float(lam.max()), 0.0) if lam.size else 0.0
    keep = lam > _RANK_RTOL * lam_max if lam_max > 0 else np.zeros(lam.size, bool)
    return lam, V, keep


def _detectable(moments: Moments, lam: np.ndarray, V: np.ndarray, keep: np.ndarray,
                thr: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-entry and whole-mean relative biases that a mean shift of ``2 thr_j`` along each
    kept whitened component detects (the smallest over components)."""
    mu = np.asarray(moments.mean, dtype=np.float64).ravel()
    need = 2.0 * thr * np.sqrt(lam[keep])  # shift along v_j, in parameter units
    Vk = V[:, keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        per = need[None, :] / np.abs(mu[:, None] * Vk)  # (P, rank)
        per_entry = per.min(axis=1) if per.size else np.full(mu.size, np.inf)
        whole = need / np.abs(Vk.T @ mu) if need.size else np.zeros(0)
    per_entry = np.where(np.isfinite(per_entry), per_entry, np.inf)
    scale_bias = float(np.nanmin(whole)) if whole.size and np.isfinite(whole).any() else np.inf
    return per_entry.reshape(np.shape(moments.mean)), scale_bias


def _alpha_value(alpha: object) -> float:
    """The false-alarm rate, a real number in (0, 1)."""
    alpha = finite_scalar(alpha, "alpha")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return alpha


def replicates_for_bias(moments: Moments, bias: float, alpha: float = 1e-6, *,
                        M: np.ndarray | None = None, R_max: int = 1_000_000) -> int:
    """The smallest ``R`` at which :func:`check_samples` detects a whole-mean relative bias
    ``bias`` (a mean ``(1 + bias) mu``) with probability at least ``1 - alpha``.

    ``M``: bound on each whitened component's magnitude (``(rank,)``, as ``check_samples``
    uses; from ``moments.range_bound`` when omitted, else the caller must give one, e.g. the
    largest seen in a pilot sample). Raises ``ValueError`` when no ``R <= R_max`` suffices
    (a zero mean, or an error bound of the moments larger than the bias).
    """
    bias = finite_scalar(bias, "bias")
    if not bias > 0:
        raise ValueError(f"bias must be a finite number > 0, got {bias!r}")
    alpha = _alpha_value(alpha)
    R_max = positive_int(R_max, "R_max", 2)
    _check_finite_moments(moments)
    lam, V, keep = _whiten(moments)
    rank = int(keep.sum())
    if not rank:
        raise ValueError("the exact covariance is zero: no sample size is needed or helps")
    if M is None:
        if moments.range_bound is None:
            raise ValueError("give M (no range_bound in the moments)")
        rng_b = np.abs(np.asarray(moments.range_bound, dtype=np.float64)).ravel() + \
            moments.entry_errors()[0].ravel()
        M = (np.abs(V[:, keep]).T @ rng_b) / np.sqrt(lam[keep])
    M = float_array(M, "M")
    if M.shape not in ((), (rank,)):
        raise ValueError(f"M must be one number or one per whitened component, shape "
                         f"({rank},), got {M.shape}")
    if np.any(M <= 0):
        raise ValueError("M must be > 0 (a bound on each whitened component's magnitude)")
    M = np.broadcast_to(M, (rank,))
    log_term = np.log(2 * 3 * rank / alpha)
    slack = _mean_slack(moments, V[:, keep], np.sqrt(lam[keep]))

    def scale_bias(R: int) -> float:
        thr = np.array([_bernstein_threshold(R, m, 1.0, log_term) for m in M]) + slack
        return _detectable(moments, lam, V, keep, thr)[1]

    if scale_bias(R_max) > bias:
        raise ValueError(f"no R <= {R_max} detects a relative bias of {bias:g} (at R_max the "
                         f"smallest detectable is {scale_bias(R_max):.3g})")
    lo, hi = 1, 2
    while scale_bias(hi) > bias:
        lo, hi = hi, min(2 * hi, R_max)
    while hi - lo > 1:  # scale_bias decreases with R
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if scale_bias(mid) > bias else (lo, mid)
    return max(hi, 2)


def check_samples(samples: np.ndarray, moments: Moments, alpha: float = 1e-6,
                  repro: str | None = None, *, null_rtol: float = _NULL_RTOL,
                  require_informative: bool = True) -> CheckResult:
    """Test replicates ``samples`` (``(R, *param_shape)``) against exact ``moments``.

    Returns a :class:`CheckResult` (truthy when passed). ``repro``, if given, is appended to
    the failure message (a copy-pasteable reproduction). ``null_rtol``: the deviation allowed
    along a direction of zero exact variance, relative to the samples' magnitude (default
    ``1e-9``, for float64; a float32 computation needs about ``1e-4``).

    A reference whose exact mean and covariance are both zero is *uninformative* (any port
    returning zeros would pass): the result then has ``informative=False`` and fails, unless
    ``require_informative=False`` (the caller judges vacuity itself, as ``check_port`` does).
    """
    alpha = _alpha_value(alpha)
    null_rtol = finite_scalar(null_rtol, "null_rtol")
    if not null_rtol >= 0:
        raise ValueError(f"null_rtol must be a finite number >= 0, got {null_rtol!r}")
    _check_finite_moments(moments)
    g = float_array(samples, "samples")
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
    me, ce = moments.entry_errors()  # per-entry bounds (error_bound in every entry if none)
    me, per_entry = me.ravel(), _per_entry(moments)
    rng_b = None if moments.range_bound is None else \
        np.abs(np.asarray(moments.range_bound, dtype=np.float64)).ravel() + me
    failures: list[str] = []

    # ---------------------------------------------------------------- mean, whitened
    lam, V, keep = _whiten(moments)
    rank = int(keep.sum())
    informative = bool(np.any(mu != 0) or np.any(cov != 0))
    if not informative and require_informative:
        failures.append("uninformative: the exact mean and covariance are both zero, so a port "
                        "returning zeros would pass; choose a problem where the estimates are "
                        "not all zero")
    scale = float(np.abs(g).max() + np.abs(mu).max()) + float(me.max(initial=0.0)) + 1e-300
    null_dev = np.abs(dbar @ V[:, ~keep]) if (~keep).any() else np.zeros(0)
    null_tol = null_rtol * scale + _NULL_ATOL + (
        np.abs(V[:, ~keep]).T @ me if per_entry else moments.error_bound)
    if null_dev.size and np.any(null_dev > null_tol):
        jn = int(np.argmax(null_dev - null_tol))
        tol_n = float(np.broadcast_to(null_tol, null_dev.shape)[jn])
        failures.append(f"mean deviates by {null_dev[jn]:.3e} (tolerance {tol_n:.3e}, "
                        f"null_rtol={null_rtol:g}) along the direction "
                        f"[{direction_label(V[:, ~keep][:, jn], moments.mean.shape)}], in which "
                        "the exact variance is zero")
    mean_ratio, hotelling = 0.0, 0.0
    detectable = np.full(np.shape(moments.mean), np.inf)
    scale_bias = float("inf")
    if rank:
        Y = (d @ V[:, keep]) / np.sqrt(lam[keep])
        ybar = Y.mean(axis=0)
        hotelling = float(R * ybar @ ybar)
        M = np.abs(Y).max(axis=0)
        if rng_b is not None:
            M = np.maximum(M, (np.abs(V[:, keep]).T @ rng_b) / np.sqrt(lam[keep]))
        log_term = np.log(2 * 3 * rank / alpha)  # alpha/3 for the mean test, Bonferroni
        # moments carry an error bound: widen by it, in whitened units
        slack = _mean_slack(moments, V[:, keep], np.sqrt(lam[keep]))
        thr = np.array([_bernstein_threshold(R, m, 1.0, log_term) for m in M]) + slack
        detectable, scale_bias = _detectable(moments, lam, V, keep, thr)
        ratios = np.abs(ybar) / thr
        mean_ratio = float(ratios.max())
        j = int(np.argmax(ratios))
        if mean_ratio > 1:
            failures.append(
                f"sample mean differs from the exact mean: whitened component {j} has mean "
                f"{ybar[j]:.4g} against a threshold of {thr[j]:.4g} (ratio {mean_ratio:.3g}; "
                f"Hotelling statistic {hotelling:.4g} on {rank} degrees of freedom), "
                f"direction [{direction_label(V[:, keep][:, j], moments.mean.shape)}]")

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
    if per_entry:  # the exact variance within ce_pp, the exact mean within me_p
        dv = np.diag(ce) + 2 * me * (1 + scale) + me**2
        thr_v = thr_v + _NULL_RTOL * scale**2 + np.concatenate([dv, [dv.sum()]])
    else:
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
        if per_entry:  # per-entry bounds carried into whitened units
            Vk = np.abs(V[:, keep])
            cw = (Vk.T @ ce @ Vk) / np.outer(sl, sl)
            ew = (Vk.T @ me) / sl
            thr_w = thr_w + cw[iu, ju] + ew[iu] * M[ju] + ew[ju] * M[iu] + ew[iu] * ew[ju] + 1e-9
        else:
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
                       failures, message, detectable, scale_bias, informative)


def assert_samples(samples: np.ndarray, moments: Moments, alpha: float = 1e-6,
                   repro: str | None = None, *, null_rtol: float = _NULL_RTOL) -> CheckResult:
    """:func:`check_samples`, raising ``AssertionError`` with the message on failure."""
    res = check_samples(samples, moments, alpha, repro, null_rtol=null_rtol)
    if not res.passed:
        raise AssertionError(res.message)
    return res
