"""Monte Carlo checks of a registered estimator, and the port checker.

The port protocol
-----------------
A *port* is any callable that implements a registered estimator on NumPy arrays (wrap a
PyTorch, JAX or TensorFlow implementation so it takes and returns NumPy arrays)::

    port(params, noise, objective, *, dist, **options)              # sample level
    port(params, None, objective, *, dist, R, seed, **options)      # distribution level

* ``params``: float64, **always batched**: shape ``(B, *event)`` with ``B = batch >= 1`` (event
  ``(K,)`` for ``"bernoulli"`` and ``"ksubset"``, ``(K, C)`` for ``"categorical"``), the same
  array in every call. Element 0 is the problem itself; the others shift its parameters.
* ``noise``: the dict of primitive noise arrays of the estimator's noise specification
  (``Estimator.noise``, each ``(B, R, *per_replicate_shape)``, mostly Uniform[0, 1); see
  :mod:`verify.noise` for turning them into what framework samplers consume), or ``None`` at
  the distribution level: the port then draws its own ``R`` replicates with its own sampler
  and random number generator, seeded by the integer ``seed`` as it sees fit.
* ``objective``: the problem's objective, a NumPy callable ``f(z)`` on int configurations
  ``(..., K)``; estimators that need gradients call ``objective.relaxed(y) -> (f, grad)``.
* ``dist``: ``"bernoulli"``, ``"categorical"`` or ``"ksubset"`` (a ``(2, 3)`` array can be
  either of the first two). ``options``: the estimator's options (``est.options()``).
* Returns estimates of shape ``(B, R, *event)`` in the port's own float dtype.

The keywords ``dist``, ``R``, ``seed`` and ``state`` are passed only to a port whose signature
names them (a bare ``**kwargs`` receives only the estimator's options), except that
``level="distribution"`` passes ``dist``, ``R`` and ``seed`` to a bare ``**kwargs`` too and never
feeds our noise (a port that can take neither is refused). Under ``level="both"`` a port that
does not name ``R`` and ``seed`` is a *legacy* port: its distribution level is fed fresh noise
of ours, from ``default_rng(seed + 1)`` (the protocol before ``level`` existed), and the report
says ``own_noise=False``.

Stateful estimators (``STATEFUL``: AIMLE's adaptive ``beta``, NVIL's running moments ``c,
v``): with ``check_port(..., state=S)`` the port is also passed ``state=S`` (and the options
that the state sets, e.g. ``beta=S.beta``) and must return ``(estimates, next_state)``; at the
sample level ``next_state`` must equal the reference's update on the same noise (for AIMLE
``aimle_update(S, aimle_nonzeros(...))`` with its default step sizes, over the whole batch).

:func:`check_port` checks, as ``level`` asks,

(a) sample level: the same numbers as the NumPy reference on shared noise, within a tolerance
    set by the port's dtype and scaled by the magnitudes of ``f`` and of the estimates;
(b) distribution level: the port's replicates of element 0 (of every element at
    ``level="distribution"``) pass :func:`verify.stats.check_samples` against the oracle's
    exact moments. The report states
    the smallest relative bias its sample size detects; ``R="auto"`` picks ``R`` for a
    requested one.

A check that cannot tell a correct port from one that returns zeros (every estimate on the
shared noise zero within the tolerance; a sample of zeros passing the distribution check) is
reported as *uninformative*, never as a pass. Our own Numba CPU and CUDA backends are
checked through this same path (:func:`backend_port`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from reference._validate import seed_value
from reference.contract import BACKENDS, Answers, Estimator, Queries, evaluate
from reference.registry import get_estimator

from .exact import Problem
from .moments import Moments
from .stats import CheckResult, check_samples, replicates_for_bias

__all__ = ["mc_check", "assert_mc", "check_port", "backend_port", "PortReport", "repro_source",
           "default_rtol", "StateRule", "STATEFUL", "LEVELS"]

Port = Callable[..., Any]

#: what ``check_port(level=...)`` checks: both levels, shared noise only, own noise only
LEVELS = ("both", "sample", "distribution")
#: zero-variance directions of a float64 port may deviate by this much (as check_samples)
_NULL_RTOL_F64 = 1e-9
#: pilot replicates of the NumPy reference that R="auto" uses to bound whitened magnitudes,
#: and the margin on the largest magnitude seen (the port's sample can reach further)
_PILOT_R, _PILOT_MARGIN = 4000, 1.5


def _estimator(est: str | Estimator) -> Estimator:
    return est if isinstance(est, Estimator) else get_estimator(est)


def _opts_source(options: dict[str, Any]) -> str:
    return "".join(f", {k}={v!r}" for k, v in options.items())


def repro_source(call: str, problem: Problem) -> str:
    """A self-contained snippet: imports, the problem, then ``call`` (which uses ``problem``)."""
    return ("import numpy as np\nimport reference\nimport verify\n\n"
            f"problem = {problem.source()}\n{call}")


def default_rtol(dtype: object) -> float:
    """Sample-level relative tolerance for a port computing in ``dtype``:
    ``max(1e-12, 1024 eps)``, i.e. 1e-12 for float64 (DESIGN.md section 4) and about 1.2e-4
    for float32 (rounding of every input and intermediate, compounded over a few dozen
    operations)."""
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.floating):
        dt = np.dtype(np.float64)
    return max(1e-12, 1024.0 * float(np.finfo(dt).eps))


def _null_rtol(dtype: object) -> float:
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.floating) or np.finfo(dt).eps <= np.finfo(np.float64).eps:
        return _NULL_RTOL_F64
    return default_rtol(dt)


def _accepts(port: Port, name: str) -> bool:
    """Whether ``port`` names the keyword parameter ``name`` in its signature (a bare
    ``**kwargs`` does not count: older ports forward those to the estimator as options)."""
    try:
        sig = inspect.signature(port)
    except (TypeError, ValueError):  # builtins without a signature: assume the protocol
        return True
    p = sig.parameters.get(name)
    return p is not None and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)


def _var_keyword(port: Port) -> bool:
    try:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(port).parameters.values())
    except (TypeError, ValueError):
        return True


def backend_port(estimator: str | Estimator, backend: str, dist: str) -> Port:
    """One of our backends, wrapped as a port (the estimator's convenience call). At the
    distribution level (``noise=None``) it draws its noise from ``default_rng(seed)``."""
    est = _estimator(estimator)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    dist = est.distribution(dist).name  # an unknown or unsupported dist is refused here

    def port(params: np.ndarray, noise: dict | None, objective: Any, *, R: int | None = None,
             seed: int | None = None, **options: Any) -> np.ndarray:
        given = options.pop("dist", dist)
        if given != dist:
            raise ValueError(f"this port implements {dist!r}, asked for {given!r}")
        if noise is None:
            noise = est.draw_noise(np.random.default_rng(seed), dist, np.shape(params), R,
                                   **options)
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
    exact moments; a failure's message ends with a copy-pasteable reproduction. Where the exact
    law is the point mass at 0, replicates that are all exactly 0 pass (the exact answer);
    anything else is judged by :func:`verify.stats.check_samples`."""
    est = _estimator(estimator)
    _check_problem(problem)
    seed = seed_value(seed)
    _check_int("R", R, 2)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if moments is None:
        moments = est.exact_moments(problem.dist, problem.params, problem.objective, **options)
    port = backend_port(est, backend, problem.dist.name)
    samples = _samples(est, problem, R, seed, port, options)
    call = (f"verify.assert_mc({est.name!r}, problem, R={R}, seed={seed}, backend={backend!r}, "
            f"alpha={alpha!r}{_opts_source(options)})")
    # Our own backend on a degenerate problem (the exact law is the point mass at 0, as I-MLE's
    # at saturated scores): every replicate exactly 0 is the exact answer, not a vacuous pass
    # (the port checker, which must tell a port from one returning zeros, judges otherwise).
    exact_zero = bool(np.all(samples == 0))
    return check_samples(samples, moments, alpha, repro_source(call, problem),
                         require_informative=not exact_zero)


def assert_mc(estimator: str | Estimator, problem: Problem, **kwargs: Any) -> CheckResult:
    """:func:`mc_check`, raising ``AssertionError`` with the reproduction on failure."""
    res = mc_check(estimator, problem, **kwargs)
    if not res.passed:
        raise AssertionError(res.message)
    return res


# ------------------------------------------------------------------- stateful estimators
@dataclass(frozen=True)
class StateRule:
    """How a stateful estimator's state enters a call and is updated.

    ``state_type``: the state's class. ``options(state)``: the estimator options the state
    sets. ``update(dist, params, queries, answers, options, state)``: the reference's next
    state after one call on those queries and answers (batch included).
    """

    state_type: type
    options: Callable[[Any], dict[str, Any]]
    update: Callable[..., Any]


def _aimle_update(dist: str, params: np.ndarray, q: Queries, a: Answers, opts: dict[str, Any],
                  state: Any) -> Any:
    from reference.estimators.ksubset_perturbation.numpy_reference import aimle_nonzeros
    from reference.estimators.relaxation.numpy_reference import aimle_update

    return aimle_update(state, aimle_nonzeros(dist, params, q, a, **opts))


def _nvil_update(dist: str, params: np.ndarray, q: Queries, a: Answers, opts: dict[str, Any],
                 state: Any) -> Any:
    from reference.estimators.control_variates.numpy_reference import nvil_update

    return nvil_update(state, np.asarray(a.f_z) - opts["baseline"])


def _stateful() -> dict[str, StateRule]:
    from reference.estimators.control_variates.numpy_reference import NVILState
    from reference.estimators.relaxation.numpy_reference import AIMLEState

    aimle = StateRule(AIMLEState, lambda s: {"adaptive": True, "beta": s.beta}, _aimle_update)
    return {"aimle": aimle, "aimle_ksubset": aimle,
            "nvil": StateRule(NVILState, lambda s: {"c": s.c, "v": s.v}, _nvil_update)}


#: estimator name -> how its state is passed and updated (``check_port(..., state=...)``)
STATEFUL: dict[str, StateRule] = _stateful()


def _states_equal(got: Any, want: Any, rtol: float) -> bool:
    if type(got) is not type(want):
        return False
    for f in dataclasses.fields(want):
        a, b = float(getattr(got, f.name)), float(getattr(want, f.name))
        if not abs(a - b) <= rtol * max(1.0, abs(b)):
            return False
    return True


# ------------------------------------------------------------------------ the report
@dataclass(frozen=True)
class PortReport:
    """Outcome of :func:`check_port`.

    ``passed`` means what ``level`` asked: the sample level agrees (``samples_agree``, and
    ``state_agrees`` for a stateful call) and/or the distribution check passed, and the
    reference was informative. ``samples_agree`` is ``None`` when the sample level was not
    run, ``distribution`` ``None`` when the distribution level was not run.
    """

    samples_agree: bool | None
    max_abs_diff: float
    tolerance: float
    distribution: CheckResult | None
    message: str
    level: str = "both"
    #: False when the reference cannot tell the port from one returning zeros
    informative: bool = True
    R: int | None = None  # replicates of the distribution-level check
    own_noise: bool | None = None  # the port drew its own noise at the distribution level
    state_agrees: bool | None = None
    next_state: Any = None  # the port's next state (sample level, stateful calls)
    #: why a level that ran could not tell the port from one returning zeros
    vacuous: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        ok = self.informative
        if self.level in ("both", "sample"):
            ok = ok and self.samples_agree is True and self.state_agrees is not False
        if self.level in ("both", "distribution"):
            ok = ok and self.distribution is not None and self.distribution.passed
        return bool(ok)

    @property
    def detectable_bias(self) -> np.ndarray | None:
        """Per parameter entry, the smallest relative bias of that entry the distribution
        check detects with probability >= 1 - alpha (``None`` without that check)."""
        return None if self.distribution is None else self.distribution.detectable_bias

    @property
    def detectable_scale_bias(self) -> float | None:
        """The smallest relative bias ``b`` of the whole mean (``(1 + b) mu``) detected."""
        return None if self.distribution is None else self.distribution.detectable_scale_bias

    def summary(self) -> str:
        """One paragraph: the verdict, what was checked and how sensitive it was."""
        verdict = "passed" if self.passed else ("UNINFORMATIVE" if not self.informative
                                                else "FAILED")
        lines = [f"check_port level={self.level!r}: {verdict}"]
        if self.samples_agree is not None:
            lines.append(f"  shared noise: max |port - reference| = {self.max_abs_diff:.3e} "
                         f"(tolerance {self.tolerance:.3e})"
                         + ("" if self.state_agrees is None else
                            f"; next state {'agrees' if self.state_agrees else 'DIFFERS'}"))
        if self.distribution is not None:
            d = self.distribution
            lines.append(f"  distribution ({'own' if self.own_noise else 'our'} noise, R={d.replicates}, "
                         f"false-alarm rate {d.alpha:g}): detects a relative bias of the whole "
                         f"mean >= {d.detectable_scale_bias:.3g}; per entry >= "
                         f"{np.array2string(np.asarray(d.detectable_bias), precision=3)}")
        lines.extend(f"  note: {v}" for v in self.vacuous)
        return "\n".join(lines)

    def __bool__(self) -> bool:
        return self.passed


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_problem(problem: object) -> None:
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a verify.Problem (verify.make_problem(dist, params, "
                        f"objective)), got {type(problem).__name__}")


def _real(value: object, name: str) -> float:
    """A real number for a tolerance: a string or ``None`` is refused by name (``np.isfinite``
    would raise NumPy's ufunc error)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                      np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _split(out: Any, stateful: bool, name: str) -> tuple[np.ndarray, Any]:
    if stateful:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"{name} was given a state: it must return (estimates, next_state)")
        return _estimates(out[0], name), out[1]
    return _estimates(out, name), None


def _estimates(out: Any, name: str) -> np.ndarray:
    """The port's estimates as an array: a complex, string or object answer is refused (cast to
    float64 it would drop an imaginary part or fail inside NumPy), naming the port."""
    arr = np.asarray(out)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == np.bool_):
        raise TypeError(f"{name} returned an array of dtype {arr.dtype}: a port must return real "
                        "numbers (float32 or float64)")
    return arr


def _auto_R(est: Estimator, problem: Problem, moments: Moments, bias: float, alpha: float,
            seed: int, options: dict[str, Any]) -> int:
    """``R`` at which the mean test detects a relative bias ``bias`` of the whole mean: the
    whitened magnitudes come from the moments' range bound or, without one, from a pilot of
    the NumPy reference (times a margin)."""
    if moments.range_bound is not None:
        return replicates_for_bias(moments, bias, alpha)
    g = _samples(est, problem, _PILOT_R, seed, backend_port(est, "numpy", problem.dist.name),
                 options).reshape(_PILOT_R, -1)
    cov = np.asarray(moments.cov, dtype=np.float64)
    lam, V = np.linalg.eigh(0.5 * (cov + cov.T))
    lam_max = max(float(lam.max()), 0.0)
    keep = lam > 1e-10 * lam_max if lam_max > 0 else np.zeros(lam.size, bool)
    Y = ((g - np.asarray(moments.mean).ravel()) @ V[:, keep]) / np.sqrt(lam[keep])
    return replicates_for_bias(moments, bias, alpha, M=_PILOT_MARGIN * np.abs(Y).max(axis=0))


def check_port(port: Port, estimator: str | Estimator, problem: Problem, *, level: str = "both",
               R_shared: int = 64, R: int | str = 2000, seed: int = 0,
               rtol: float | None = None, alpha: float = 1e-6, null_rtol: float | None = None,
               detect_bias: float = 0.05, batch: int = 2, state: Any = None,
               raise_on_failure: bool = False, distribution: bool | None = None,
               **options: Any) -> PortReport:
    """Check ``port`` (the protocol of the module docstring) against the NumPy reference on
    shared noise and against the exact moments.

    ``level``: ``"both"`` (default), ``"sample"`` (shared noise only) or ``"distribution"``
    (the port draws its own noise; it is never called with ours). ``passed`` means what
    ``level`` asked. ``distribution=False/True`` is the older spelling of
    ``level="sample"/"both"``.

    Every call passes ``params`` of shape ``(batch, *event)``: element 0 is ``problem``, the
    others shift its parameters by seeded normal offsets of scale 0.5 (a port that mixes up
    batch elements is caught at the sample level).

    (a) Sample level: ``R_shared`` replicates on noise from ``default_rng(seed)``. Every entry
    must satisfy ``|port - ref| <= rtol * scale`` with ``scale`` the largest magnitude among
    the reference estimates, the objective's values at the queried configurations and its
    gradients at relaxed points. ``rtol=None`` takes :func:`default_rtol` of the port's output
    dtype (1e-12 for float64, about 1.2e-4 for float32). With ``state`` (an estimator in
    :data:`STATEFUL`) the port's next state must match the reference's within the same rtol.

    (b) Distribution level: the port's ``R`` replicates of element 0 (its own noise, seed
    ``seed + 1``) must pass :func:`verify.stats.check_samples` at false-alarm rate ``alpha``
    (at ``level="distribution"``, where no shared-noise check catches mixed-up batch
    elements, every element is checked against its own exact moments at ``alpha / batch``;
    the stated detectable biases and ``R="auto"`` are element 0's);
    ``null_rtol`` is the deviation allowed in zero-variance directions (``None``: 1e-9 for
    float64 output, :func:`default_rtol` otherwise). ``R="auto"`` picks the smallest ``R`` at
    which a relative bias ``detect_bias`` of the whole mean is detected with probability
    ``>= 1 - alpha``. The report states the detectable biases of the ``R`` used.

    A level is *vacuous* when a port returning zeros would pass it (every reference estimate
    on the shared noise zero within the tolerance; a sample of zeros passing the distribution
    check). When every level that ran is vacuous the report is uninformative
    (``informative=False``, not passed), so a port returning zeros never passes; a vacuous
    level beside an informative one is listed in ``vacuous`` and the summary. Returns a
    :class:`PortReport`; ``raise_on_failure`` raises ``AssertionError`` with a
    copy-pasteable reproduction instead of returning a failed one.
    """
    est = _estimator(estimator)
    _check_problem(problem)
    seed = seed_value(seed)
    rtol = None if rtol is None else _real(rtol, "rtol")
    null_rtol = None if null_rtol is None else _real(null_rtol, "null_rtol")
    detect_bias = _real(detect_bias, "detect_bias")
    alpha = _real(alpha, "alpha")
    if distribution is not None:
        level = "both" if distribution else "sample"
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    _check_int("R_shared", R_shared, 1)
    _check_int("batch", batch, 1)
    if not (isinstance(R, str) and R == "auto"):
        _check_int("R", R, 2)
    for name, value in (("rtol", rtol), ("null_rtol", null_rtol)):
        if value is not None and not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not (np.isfinite(detect_bias) and detect_bias > 0):
        raise ValueError(f"detect_bias must be a finite number > 0, got {detect_bias!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not callable(port):
        raise TypeError(f"port must be callable, got {type(port).__name__}")
    extra: dict[str, Any] = {}
    if state is not None:
        rule = STATEFUL.get(est.name)
        if rule is None:
            raise ValueError(f"{est.name} has no state; stateful estimators: {sorted(STATEFUL)}")
        if not isinstance(state, rule.state_type):
            raise TypeError(f"state for {est.name} must be a {rule.state_type.__name__}")
        options = {**options, **rule.options(state)}
        if not _accepts(port, "state"):
            raise TypeError("a stateful check needs a port with a 'state' keyword parameter")
        extra["state"] = state
    d = problem.dist
    name = getattr(port, "__name__", "port")
    if _accepts(port, "dist"):
        extra["dist"] = d.name
    params = np.broadcast_to(problem.params, (batch,) + problem.params.shape).copy()
    if batch > 1:
        shift = np.random.default_rng([seed, 1]).normal(scale=0.5, size=params[1:].shape)
        params[1:] += shift
    lines: list[str] = []
    vacuous: dict[str, str] = {}  # level -> why a port returning zeros would pass it
    agree: bool | None = None
    diff, tol = float("nan"), float("nan")
    state_ok, next_state = None, None
    shape_bad = False
    if level in ("both", "sample"):
        noise = est.draw_noise(np.random.default_rng(seed), d, params.shape, R_shared, **options)
        q = est.queries(d, params, noise, **options)
        a = evaluate(problem.objective, q)
        ref = est.combine(d, params, q, a, **options)
        out, next_state = _split(port(params, noise, problem.objective, **extra, **options),
                                 state is not None, name)
        if out.shape != ref.shape:
            agree, diff, tol, shape_bad = False, float("inf"), 0.0, True
            lines.append(f"{name} returned shape {out.shape}, the reference {ref.shape}")
        else:
            r = default_rtol(out.dtype) if rtol is None else rtol
            mags = [np.abs(ref).max(initial=0.0), np.abs(a.f_z).max(initial=0.0)]
            if a.grad_y is not None:
                mags.append(np.abs(a.grad_y).max(initial=0.0))
            tol = r * max(max(float(m) for m in mags), 1e-300)
            o64 = out.astype(np.float64)
            diff = float(np.abs(o64 - ref).max()) if np.all(np.isfinite(o64)) else float("inf")
            agree = diff <= tol
            if not agree:
                err = np.abs(o64 - ref)
                # the first non-finite entry where there is one (nanargmax refuses all-NaN)
                bad = ~np.isfinite(err)
                flat = int(np.argmax(bad)) if bad.any() else int(np.argmax(err))
                idx = tuple(int(i) for i in np.unravel_index(flat, ref.shape))
                lines.append(f"{name} differs from the reference on shared noise by {diff:.3e} "
                             f"(tolerance {tol:.3e} = rtol {r:.3g} x scale) at index {idx}: "
                             f"{out[idx]!r} vs {ref[idx]!r}")
            if float(np.abs(ref).max(initial=0.0)) <= tol:
                vacuous["sample"] = ("every reference estimate on the shared noise is zero "
                                     "(within the tolerance), so a port returning zeros agrees")
        if state is not None:
            want = STATEFUL[est.name].update(d.name, params, q, a, est.options(**options), state)
            state_ok = _states_equal(next_state, want,
                                     default_rtol(out.dtype) if rtol is None else rtol)
            if not state_ok:
                lines.append(f"{name}'s next state {next_state!r} differs from the reference's "
                             f"{want!r}")
    dist_res, R_used, own = None, None, None
    if level in ("both", "distribution") and not shape_bad:
        # at level "distribution" no shared-noise check can catch mixed-up batch elements:
        # every element is checked against its own exact moments (alpha split between them)
        elements = range(batch) if level == "distribution" else range(1)
        a_each = alpha / len(elements)
        moments = est.exact_moments(d, problem.params, problem.objective, **options)
        R_used = _auto_R(est, problem, moments, detect_bias, a_each, seed + 2, options) \
            if R == "auto" else int(R)
        own = _accepts(port, "R") and _accepts(port, "seed")
        dist_extra = dict(extra)
        if level == "distribution" and not own:
            # asked for explicitly, this level never feeds our noise: a port with a bare
            # **kwargs gets the new protocol's keywords there, one without them is refused
            if not _var_keyword(port):
                raise TypeError(f"level='distribution' calls {name}(params, None, objective, "
                                "dist=..., R=..., seed=..., **options): the port must take "
                                "the keywords R and seed")
            own = True
            dist_extra["dist"] = d.name
        if own:
            res = port(params, None, problem.objective, R=R_used, seed=seed + 1, **dist_extra,
                       **options)
        else:  # a legacy port: fed fresh noise of ours
            noise = est.draw_noise(np.random.default_rng(seed + 1), d, params.shape, R_used,
                                   **options)
            res = port(params, noise, problem.objective, **extra, **options)
        samples, _ = _split(res, state is not None, name)
        want_shape = (batch, R_used) + problem.params.shape
        if samples.shape != want_shape:
            lines.append(f"{name} returned shape {samples.shape} at the distribution level, "
                         f"expected {want_shape}")
        elif not np.all(np.isfinite(samples)):
            lines.append(f"{name} returned non-finite estimates at the distribution level")
        else:
            nr = _null_rtol(samples.dtype) if null_rtol is None else null_rtol
            # vacuity is judged below, over both levels
            dist_res = check_samples(samples[0], moments, a_each, None, null_rtol=nr,
                                     require_informative=False)
            if not dist_res.passed:
                lines.append(dist_res.message)
            for b in elements[1:]:
                mb = est.exact_moments(d, params[b], problem.objective, **options)
                rb = check_samples(samples[b], mb, a_each, None, null_rtol=nr,
                                   require_informative=False)
                if not rb.passed:
                    lines.append(f"batch element {b}: " + rb.message)
                    if dist_res.passed:
                        dist_res = rb  # the report's verdict is that of the failing element
            # the check is only worth something if it would reject a port returning zeros
            zeros = check_samples(np.zeros(samples[0].shape), moments, a_each, None,
                                  null_rtol=nr, require_informative=False)
            if zeros.passed or not dist_res.informative:
                vacuous["distribution"] = (f"a sample of zeros passes the distribution check "
                                           f"too (exact mean and covariance zero, or too small "
                                           f"to see at R={R_used})")
    elif level == "both":
        lines.append("the distribution level was not run: the shapes disagree")
    ran = [lv for lv in ("sample", "distribution") if level in (lv, "both")]
    # informative when some level that ran would reject a port returning zeros: then such a
    # port can never pass; a vacuous level beside an informative one is noted in the summary
    informative = any(lv not in vacuous for lv in ran)
    if not informative:
        lines.append("uninformative: " + "; ".join(vacuous.values()) + ". Choose a problem "
                     "where the estimates are not all zero (or a larger R_shared / R)")
    R_src = repr(R)
    call = (f"port = ...  # your implementation (verify.port's protocol)\n"
            f"verify.check_port(port, {est.name!r}, problem, level={level!r}, "
            f"R_shared={R_shared}, R={R_src}, seed={seed}, rtol={rtol!r}, alpha={alpha!r}, "
            f"null_rtol={null_rtol!r}, detect_bias={detect_bias!r}, batch={batch}, "
            + ("" if state is None else f"state={type(state).__module__}.{state!r}, ")
            + f"raise_on_failure=True{_opts_source(options)})")
    message = ""
    if lines:
        message = "\n".join(lines) + "\nReproduce with:\n\n" + repro_source(call, problem) + "\n"
    report = PortReport(agree, diff, tol, dist_res, message, level, informative, R_used, own,
                        state_ok, next_state, tuple(vacuous.values()))
    if raise_on_failure and not report.passed:
        raise AssertionError(message or report.summary())
    return report
