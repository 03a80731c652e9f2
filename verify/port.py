"""Monte Carlo checks of a registered estimator, and the port checker.

A *port* is any callable that implements a registered estimator on NumPy arrays::

    port(params, noise, objective, **options) -> estimates of shape (*batch, R, *param_shape)

with ``noise`` the dict of arrays described by the estimator's noise specification (wrap a
PyTorch or JAX implementation so it takes and returns NumPy arrays). :func:`check_port` checks

(a) sample level: the same numbers as the NumPy reference on shared noise, and
(b) distribution level: fresh replicates pass :func:`verify.stats.check_samples` against the
    oracle's exact moments.

Our own Numba CPU and CUDA backends are checked through this same path
(:func:`backend_port`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from reference.contract import Estimator
from reference.registry import get_estimator

from .exact import Problem
from .moments import Moments
from .stats import CheckResult, check_samples

__all__ = ["mc_check", "assert_mc", "check_port", "backend_port", "PortReport", "repro_source"]

Port = Callable[..., np.ndarray]


def _estimator(est: str | Estimator) -> Estimator:
    return est if isinstance(est, Estimator) else get_estimator(est)


def _opts_source(options: dict[str, Any]) -> str:
    return "".join(f", {k}={v!r}" for k, v in options.items())


def repro_source(call: str, problem: Problem) -> str:
    """A self-contained snippet: imports, the problem, then ``call`` (which uses ``problem``)."""
    return ("import numpy as np\nimport reference\nimport verify\n\n"
            f"problem = {problem.source()}\n{call}")


def backend_port(estimator: str | Estimator, backend: str, dist: str) -> Port:
    """One of our backends, wrapped as a port (the estimator's convenience call)."""
    est = _estimator(estimator)

    def port(params: np.ndarray, noise: dict, objective: Any, **options: Any) -> np.ndarray:
        return est.estimate(dist, params, objective, noise, backend=backend, **options)

    port.__name__ = f"{est.name}_{backend}"
    return port


def _samples(est: Estimator, problem: Problem, R: int, seed: int, port: Port,
             options: dict[str, Any]) -> np.ndarray:
    noise = est.draw_noise(np.random.default_rng(seed), problem.dist, problem.params.shape, R,
                           **options)
    return np.asarray(port(problem.params, noise, problem.objective, **options))


def mc_check(estimator: str | Estimator, problem: Problem, *, R: int = 2000, seed: int = 0,
             backend: str = "numpy", alpha: float = 1e-6, moments: Moments | None = None,
             **options: Any) -> CheckResult:
    """Draw ``R`` replicates (noise from ``default_rng(seed)``) and check them against the
    exact moments; a failure's message ends with a copy-pasteable reproduction."""
    est = _estimator(estimator)
    if moments is None:
        moments = est.exact_moments(problem.dist, problem.params, problem.objective, **options)
    port = backend_port(est, backend, problem.dist.name)
    samples = _samples(est, problem, R, seed, port, options)
    call = (f"verify.assert_mc({est.name!r}, problem, R={R}, seed={seed}, backend={backend!r}, "
            f"alpha={alpha!r}{_opts_source(options)})")
    return check_samples(samples, moments, alpha, repro_source(call, problem))


def assert_mc(estimator: str | Estimator, problem: Problem, **kwargs: Any) -> CheckResult:
    """:func:`mc_check`, raising ``AssertionError`` with the reproduction on failure."""
    res = mc_check(estimator, problem, **kwargs)
    if not res.passed:
        raise AssertionError(res.message)
    return res


@dataclass(frozen=True)
class PortReport:
    """Outcome of :func:`check_port`."""

    samples_agree: bool
    max_abs_diff: float
    tolerance: float
    distribution: CheckResult | None  # None when the distribution-level check was not run
    message: str

    @property
    def passed(self) -> bool:
        return self.samples_agree and (self.distribution is None or self.distribution.passed)

    def __bool__(self) -> bool:
        return self.passed


def check_port(port: Port, estimator: str | Estimator, problem: Problem, *, R_shared: int = 64,
               R: int = 2000, seed: int = 0, rtol: float = 1e-12, alpha: float = 1e-6,
               batch: int = 2, distribution: bool = True, raise_on_failure: bool = False,
               **options: Any) -> PortReport:
    """Check ``port`` against the reference (shared noise) and the exact moments.

    (a) ``batch`` problems stacked on a leading axis (the first is ``problem``, the others
    shift its parameters by seeded normal offsets of scale 0.5, so that a port that mixes up
    batch elements is caught), ``R_shared`` replicates on noise from ``default_rng(seed)``:
    every entry must be within ``rtol`` times the largest reference magnitude. (b) ``R`` fresh
    replicates (``default_rng(seed + 1)``) must pass :func:`check_samples` at false-alarm rate
    ``alpha`` (skipped with ``distribution=False``, e.g. for kernels run under the slow CUDA
    simulator).
    """
    est = _estimator(estimator)
    for name, value, minimum in (("R_shared", R_shared, 1), ("R", R, 2), ("batch", batch, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if not (np.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not callable(port):
        raise TypeError(f"port must be callable, got {type(port).__name__}")
    d = problem.dist
    params = np.broadcast_to(problem.params, (batch,) + problem.params.shape).copy()
    if batch > 1:
        shift = np.random.default_rng([seed, 1]).normal(scale=0.5, size=params[1:].shape)
        params[1:] += shift
    noise = est.draw_noise(np.random.default_rng(seed), d, params.shape, R_shared, **options)
    ref = est.estimate(d, params, problem.objective, noise, backend="numpy", **options)
    out = np.asarray(port(params, noise, problem.objective, **options))
    name = getattr(port, "__name__", "port")
    lines = []
    if out.shape != ref.shape:
        agree, diff, tol = False, float("inf"), 0.0
        lines.append(f"{name} returned shape {out.shape}, the reference {ref.shape}")
    else:
        diff = float(np.abs(out - ref).max()) if np.all(np.isfinite(out)) else float("inf")
        tol = rtol * max(float(np.abs(ref).max()), 1e-300)
        agree = diff <= tol
        if not agree:
            idx = np.unravel_index(int(np.nanargmax(np.abs(out - ref))), ref.shape)
            lines.append(f"{name} differs from the reference on shared noise by {diff:.3e} "
                         f"(tolerance {tol:.3e}) at index {idx}: {out[idx]!r} vs {ref[idx]!r}")
    dist_res = None
    if distribution and out.shape == ref.shape:  # a wrong shape is already reported above
        moments = est.exact_moments(d, problem.params, problem.objective, **options)
        samples = _samples(est, problem, R, seed + 1, port, options)
        if samples.shape != (R,) + problem.params.shape:
            raise ValueError(f"{name} returned shape {samples.shape} for unbatched params, "
                             f"expected {(R,) + problem.params.shape}")
        dist_res = check_samples(samples, moments, alpha, None)
        if not dist_res.passed:
            lines.append(dist_res.message)
    call = (f"port = ...  # your implementation: port(params, noise, objective, **options)\n"
            f"verify.check_port(port, {est.name!r}, problem, R_shared={R_shared}, R={R}, "
            f"seed={seed}, rtol={rtol!r}, alpha={alpha!r}, raise_on_failure=True"
            f", distribution={distribution}{_opts_source(options)})")
    message = ""
    if lines:
        message = "\n".join(lines) + "\nReproduce with:\n\n" + repro_source(call, problem) + "\n"
    report = PortReport(agree, diff, tol, dist_res, message)
    if raise_on_failure and not report.passed:
        raise AssertionError(message)
    return report
