"""The estimator contract (DESIGN.md section 3): explicit noise, two phases, a registry record.

Every estimator is a pure function of the parameters, the objective's answers and explicit
noise. Nothing inside draws random numbers.

* ``draw_noise`` draws the named primitive noise arrays from a ``numpy.random.Generator``.
* Phase 1, ``queries``: where the objective must be evaluated, a :class:`Queries`.
* ``evaluate``: the objective's answers at those queries, an :class:`Answers`.
* Phase 2, ``combine``: per-replicate gradient estimates, shape ``(*batch, R, *param_shape)``.
* ``estimate`` runs the three steps with a given objective.

Each phase runs on one of three backends, ``"numpy"`` (the float64 reference), ``"cpu"``
(Numba ``njit``) or ``"cuda"`` (Numba CUDA; loaded lazily, so the package imports without
numba-cuda). All three take the same inputs and agree on the same noise.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validate import count_outside, float_array, int_config_array, positive_int, shape_tuple
from .distributions import Distribution, get_distribution

__all__ = ["NoiseSpec", "Backend", "Queries", "Answers", "Cost", "Estimator", "BACKENDS", "evaluate",
           "backend_paths"]

BACKENDS = ("numpy", "cpu", "cuda")


@dataclass(frozen=True)
class NoiseSpec:
    """One named array of primitive noise.

    ``law`` is ``"uniform"`` (i.i.d. Uniform[0, 1)); ``shape`` maps
    ``(K, C, options)`` to the per-replicate shape, so that the full array has shape
    ``(*batch, R, *shape(K, C, options))``; ``doc`` states how the estimator uses it.

    A record whose noise shape depends on the distribution (REBAR's ``u`` is ``(n, K)`` for
    Bernoulli logits and ``(n, K, C)`` for categorical ones, and a Bernoulli ``C`` is 2, so
    ``(K, C)`` cannot tell them apart) sets ``by_dist=True``: its ``shape`` is then called as
    ``shape(K, C, options, dist)`` with ``dist`` the distribution's name. Every caller goes
    through :meth:`shape_for`, which passes ``dist`` only then, so the three-argument specs
    keep working unchanged.
    """

    name: str
    law: str
    shape: Callable[..., tuple[int, ...]]  # (K, C, options[, dist]) -> per-replicate shape
    doc: str
    by_dist: bool = False
    #: an extra check of the full array (``check(array, label)``), raising ``ValueError``
    #: naming ``label`` for noise inside the law's range that the estimator cannot use
    check: Callable[[np.ndarray, str], None] | None = None

    def shape_for(self, dist: str, K: int, C: int, options: Mapping[str, Any]
                  ) -> tuple[int, ...]:
        """The per-replicate shape for ``K`` variables with ``C`` categories of the
        distribution named ``dist`` (``"bernoulli"``, ``"categorical"``, ``"ksubset"``)."""
        if self.by_dist:
            return tuple(self.shape(K, C, options, dist))
        return tuple(self.shape(K, C, options))

    def draw(self, rng: np.random.Generator, full_shape: tuple[int, ...]) -> np.ndarray:
        if self.law == "uniform":
            return rng.random(full_shape)
        raise NotImplementedError(f"noise law {self.law!r}")


@dataclass(frozen=True)
class Backend:
    """One backend of one estimator: its two phases on batch-flattened arrays.

    ``serial_twins``: the phases may be called from several threads at once inside
    :func:`reference._cpu.serial_kernels` (the CPU VAE's blocks of data points then run them,
    :class:`reference.models.vae.VAE`): their kernels run serially and without the GIL there,
    and their host code keeps no shared state. Every estimator's CPU kernel is a twin kernel
    (:func:`reference._cpu.twin_kernel`, ``tests/test_twins.py``); the flag is set on the
    families whose blocks' numbers are checked against one call (score function and swap,
    ``tests/test_vae.py``), False elsewhere."""

    queries: Callable[..., Queries]
    combine: Callable[..., np.ndarray]
    serial_twins: bool = False


@dataclass(frozen=True)
class Queries:
    """Phase 1 output.

    ``z``: int64 ``(*batch, R, M, K)``, configurations where ``f`` is needed (``M`` may be 0).
    ``y``: float ``(*batch, R, M2, *event)`` relaxed points where ``f`` and ``grad_y f`` are
    needed (``event`` is ``(K,)`` for binary, ``(K, C)`` for categorical), or ``None``.
    ``aux``: arrays phase 2 needs besides the answers (estimator specific, documented there).
    """

    z: np.ndarray
    aux: Mapping[str, np.ndarray] = field(default_factory=dict)
    y: np.ndarray | None = None


@dataclass(frozen=True)
class Answers:
    """The objective's answers to :class:`Queries`.

    ``f_z``: float ``(*batch, R, M)``; ``f_y``: ``(*batch, R, M2)`` and ``grad_y``:
    ``(*batch, R, M2, *event)`` when the queries hold relaxed points, else ``None``.
    """

    f_z: np.ndarray
    f_y: np.ndarray | None = None
    grad_y: np.ndarray | None = None


@dataclass(frozen=True)
class Cost:
    """Objective evaluations (and gradient evaluations) per replicate."""

    evals: int
    grad_evals: int = 0


def evaluate(objective: Any, queries: Queries) -> Answers:
    """Answer the queries: ``objective(z)`` (vectorized over leading axes) at the
    configurations and ``objective.relaxed(y)`` (values and gradients) at relaxed points.

    What the objective returns is checked here, naming it: real numbers (a complex, string or
    ``None`` answer is refused, never cast), of shape ``z.shape[:-1]``, ``y.shape[:-event]``
    and ``y.shape``."""
    if not isinstance(queries, Queries):
        raise TypeError(f"queries must be a reference.Queries (from Estimator.queries), got "
                        f"{type(queries).__name__}")
    if not callable(objective):
        raise TypeError(f"objective must be callable on configurations, got {type(objective).__name__}")
    K = getattr(objective, "K", None)
    if K is not None and queries.z.ndim and K != queries.z.shape[-1]:
        raise ValueError(f"the objective is for K={K} variables but the queries have "
                         f"K={queries.z.shape[-1]}")
    f_z = _real_answer(objective(queries.z), "the objective's values objective(z)")
    if f_z.shape != queries.z.shape[:-1]:
        raise ValueError(f"objective returned shape {f_z.shape}, expected {queries.z.shape[:-1]}")
    if queries.y is None:
        return Answers(f_z)
    if not callable(getattr(objective, "relaxed", None)):
        raise TypeError("this estimator needs f and grad f at relaxed points: the objective must "
                        "have a method relaxed(y) -> (values, gradients) (see reference.objectives)")
    out = objective.relaxed(queries.y)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"objective.relaxed(y) must return a pair (values, gradients), got "
                        f"{type(out).__name__}")
    f_y = _real_answer(out[0], "the values of objective.relaxed(y)")
    grad_y = _real_answer(out[1], "the gradients of objective.relaxed(y)")
    # y is (*batch, R, M2, *event) and z (*batch, R, M, K): the values drop the event axes
    want_f = queries.y.shape[: queries.z.ndim - 1]
    if f_y.shape != want_f:
        raise ValueError(f"objective.relaxed returned values of shape {f_y.shape}, "
                         f"expected {want_f}")
    if grad_y.shape != queries.y.shape:
        raise ValueError(f"objective.relaxed returned gradients of shape {grad_y.shape}, "
                         f"expected {queries.y.shape}")
    return Answers(f_z, f_y, grad_y)


def _real_answer(value: object, name: str) -> np.ndarray:
    """``value`` as float64, refusing ``None`` and non-real dtypes (``np.asarray(.., float64)``
    would drop an imaginary part with a warning, or fail deep inside on strings)."""
    if value is None:
        raise TypeError(f"{name} must be a real array, got None")
    arr = np.asarray(value)
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be real numbers, got an object array that does not "
                            "convert to float") from None
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _physical_memory() -> float:
    """This machine's memory in bytes (``inf`` where the OS does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return float("inf")


def backend_paths(family: str, name: str) -> dict[str, str]:
    """The ``Estimator.backends`` mapping by the project's layout: the family folder
    ``reference/estimators/<family>/`` holds ``numpy_reference.py`` (``NUMPY_<name>``),
    ``cpu.py`` (``CPU_<name>``) and ``cuda.py`` (``CUDA_<name>``)."""
    base = f"reference.estimators.{family}"
    return {"numpy": f"{base}.numpy_reference:NUMPY_{name}",
            "cpu": f"{base}.cpu:CPU_{name}",
            "cuda": f"{base}.cuda:CUDA_{name}"}


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _plain(v: Any) -> bool:
    """``v`` is a value (None, a bool, number or string, or a tuple of them), not an object
    that a cache key would keep alive."""
    if isinstance(v, tuple):
        return all(_plain(x) for x in v)
    return v is None or isinstance(v, (bool, int, float, complex, str, bytes, np.generic))


@dataclass(frozen=True)
class Estimator:
    """A registry record: everything the project knows about one estimator.

    ``backends`` maps a backend name to ``"module:object"``; the object has
    ``queries(dist, params, noise, options) -> Queries`` and
    ``combine(dist, params, queries, answers, options) -> ndarray``, both called on arrays
    whose batch axes are flattened into one leading axis ``B``. ``exact_moments`` is the
    ``"module:function"`` of the oracle's method in ``verify/``, called as
    ``fn(dist, params, objective, **options) -> verify.Moments``.

    ``target`` says what the estimator's mean should be the gradient of, and
    ``target_gradient_path`` is the ``"module:function"`` of the oracle's exact gradient of
    that target, called as ``fn(dist, params, objective, **options) -> ndarray`` (parameter
    shape). Almost every estimator targets ``E_q[f(z)]`` (the defaults); a multi-sample
    objective such as VIMCO's ``E[log (1/n) sum_i exp f(z_i)]`` declares its own, and the
    registry-wide tests and the report measure bias against it (:meth:`target_gradient`).
    """

    name: str
    title: str
    distributions: tuple[str, ...]
    unbiased: bool
    noise: tuple[NoiseSpec, ...]
    option_defaults: Mapping[str, Any]
    check_options: Callable[[dict[str, Any]], dict[str, Any]]
    cost_fn: Callable[[int, int, Mapping[str, Any]], Cost]
    backends: Mapping[str, str]
    exact_moments_path: str
    references: str = ""
    #: option sets that the registry-wide tests and the verification report run
    examples: tuple[Mapping[str, Any], ...] = ({},)
    #: what the mean estimates the gradient of, and the oracle's exact gradient of it
    target: str = "E_q[f(z)]"
    target_gradient_path: str = "verify.exact:expectation_gradient"
    _query_shape_cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ---------------------------------------------------------------------- plumbing
    def options(self, **options: Any) -> dict[str, Any]:
        """Defaults merged with ``options``; unknown names raise ``TypeError``."""
        unknown = set(options) - set(self.option_defaults)
        if unknown:
            raise TypeError(f"{self.name} got unknown options {sorted(unknown)}; "
                            f"it takes {sorted(self.option_defaults)}")
        for key, value in options.items():
            default = self.option_defaults[key]
            # a numeric option given True would silently be 1 (tau=True): refused here, by
            # name, for every record (arrays: each family's finite_scalar)
            if isinstance(default, (int, float)) and not isinstance(default, bool) and \
                    isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{self.name}: option {key} must be a number, got {value!r}")
        return self.check_options({**self.option_defaults, **options})

    def distribution(self, dist: str | Distribution) -> Distribution:
        d = get_distribution(dist)
        if d.name not in self.distributions:
            raise ValueError(f"{self.name} supports {self.distributions}, not {d.name!r}")
        return d

    def backend(self, backend: str) -> Any:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        return _resolve(self.backends[backend])

    def exact_moments(self, dist: str | Distribution, params: object, objective: Any, *,
                      dps: int | None = None, **options: Any) -> Any:
        """The oracle's exact mean and covariance (see ``verify``).

        ``dps``: where the oracle has an arbitrary-precision mode (the swap family,
        :func:`verify.moments.swap.swap_moments`), run it with ``dps`` decimal digits and round
        once at the end: accurate per entry where float64 is not (saturated logits), at a
        much higher cost. Records without such a mode refuse ``dps`` (their ``*_mp`` functions
        in ``verify.moments`` certify small problems instead)."""
        d = self.distribution(dist)
        fn = _resolve(self.exact_moments_path)
        extra: dict[str, Any] = {}
        if dps is not None:
            if "dps" not in inspect.signature(fn).parameters:
                raise ValueError(f"{self.name}: the oracle has no arbitrary-precision mode "
                                 "(dps); see the *_mp functions of verify.moments")
            if isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or dps < 16:
                raise ValueError(f"dps must be an integer >= 16 (decimal digits), got {dps!r}")
            extra["dps"] = int(dps)
        m = fn(d, params, objective, **self.options(**options), **extra)
        for part in ("mean", "cov"):
            if not np.all(np.isfinite(getattr(m, part))):
                raise ValueError(f"{self.name}: the exact {part} is not finite (is the objective or "
                                 "its gradient finite everywhere?); no exact answer exists")
        return m

    def target_gradient(self, dist: str | Distribution, params: object, objective: Any,
                        **options: Any) -> np.ndarray:
        """The oracle's exact gradient of this record's :attr:`target` (parameter shape): the
        reference an unbiased estimator's exact mean must equal."""
        d = self.distribution(dist)
        g = np.asarray(_resolve(self.target_gradient_path)(d, params, objective,
                                                           **self.options(**options)))
        if not np.all(np.isfinite(g)):
            raise ValueError(f"{self.name}: the exact target gradient is not finite")
        return g

    def cost(self, K: int, C: int, **options: Any) -> Cost:
        """Objective (and gradient) evaluations per replicate for ``K`` variables with ``C``
        categories (``C = 2`` for Bernoulli and k-subset parameters)."""
        K = positive_int(K, "K", 1)
        C = positive_int(C, "C", 2)
        return self.cost_fn(K, C, self.options(**options))

    def _params(self, d: Distribution, params: object, backend: str) -> np.ndarray:
        return d.validate(params, allow_float32=backend != "numpy")

    # ------------------------------------------------------------------------- noise
    def noise_shapes(self, dist: str | Distribution, params_shape: tuple[int, ...], R: int,
                     **options: Any) -> dict[str, tuple[int, ...]]:
        """Full shape of each noise array for parameters of shape ``params_shape``."""
        d = self.distribution(dist)
        opts = self.options(**options)
        if isinstance(R, bool) or not isinstance(R, (int, np.integer)) or R < 1:
            raise ValueError(f"R (replicates) must be a positive integer, got {R!r}")
        dummy = np.zeros(shape_tuple(params_shape, "params_shape"))
        d.validate(dummy)
        K, C = d.num_variables(dummy), d.num_categories(dummy)
        batch = d.batch_shape(dummy)
        return {s.name: batch + (int(R),) + s.shape_for(d.name, K, C, opts) for s in self.noise}

    def draw_noise(self, rng: np.random.Generator, dist: str | Distribution,
                   params_shape: tuple[int, ...], R: int, **options: Any) -> dict[str, np.ndarray]:
        """Draw every noise array (float64) for ``R`` replicates from ``rng`` (a
        ``numpy.random.Generator``, e.g. ``np.random.default_rng(seed)``)."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                            f"got {type(rng).__name__}")
        shapes = self.noise_shapes(dist, params_shape, R, **options)
        need = 8 * sum(int(np.prod(v, dtype=object)) for v in shapes.values())
        if need > _physical_memory():  # refused by name, not NumPy's MemoryError (or swapping)
            raise ValueError(f"{self.name}: noise for R = {R} replicates with options {options} "
                             f"would take {need / 2**30:.3g} GiB, more than this machine's "
                             f"{_physical_memory() / 2**30:.3g} GiB of memory; draw fewer replicates at a "
                             "time, or use smaller sample-count options")
        return {s.name: s.draw(rng, shapes[s.name]) for s in self.noise}

    def _check_noise(self, d: Distribution, params: np.ndarray, noise: Mapping[str, object],
                     opts: dict[str, Any]) -> tuple[dict[str, np.ndarray], int]:
        if not isinstance(noise, Mapping):
            raise TypeError("noise must be a mapping from noise names to arrays")
        names = {s.name for s in self.noise}
        if set(noise) != names:
            raise ValueError(f"{self.name} takes noise {sorted(names)}, got {sorted(noise)}")
        batch = d.batch_shape(params)
        K, C = d.num_variables(params), d.num_categories(params)
        out, R = {}, None
        for s in self.noise:
            arr = float_array(noise[s.name], f"noise[{s.name!r}]")
            per = s.shape_for(d.name, K, C, opts)
            ok = arr.ndim == len(batch) + 1 + len(per) and arr.shape[: len(batch)] == batch \
                and arr.shape[len(batch) + 1:] == per
            if not ok:
                raise ValueError(f"noise[{s.name!r}] must have shape (*batch, R, *{per}) with "
                                 f"batch {batch}, got {arr.shape}")
            r = arr.shape[len(batch)]
            if R is not None and r != R:
                raise ValueError("all noise arrays must have the same number of replicates R")
            R = r
            if s.law == "uniform" and arr.size and count_outside(arr, 0.0, 1.0):
                raise ValueError(f"noise[{s.name!r}] must lie in [0, 1)")
            if s.check is not None and arr.size:
                s.check(arr, f"noise[{s.name!r}]")
            arr = arr.astype(params.dtype, copy=False)
            B = int(np.prod(batch, dtype=np.int64))
            out[s.name] = np.ascontiguousarray(arr.reshape((B,) + arr.shape[len(batch):]))
        if R is None or R < 1:
            raise ValueError("noise must carry at least one replicate")
        return out, R

    # ------------------------------------------------------------------------ phases
    def queries(self, dist: str | Distribution, params: object, noise: Mapping[str, object],
                backend: str = "numpy", **options: Any) -> Queries:
        """Phase 1: the configurations to evaluate, ``Queries.z`` of shape ``(*batch, R, M, K)``."""
        d = self.distribution(dist)
        params = self._params(d, params, backend)
        opts = self.options(**options)
        flat_noise, _ = self._check_noise(d, params, noise, opts)
        batch = d.batch_shape(params)
        B = int(np.prod(batch, dtype=np.int64))
        flat_params = np.ascontiguousarray(params.reshape((B,) + d.event_shape(params)))
        # an empty batch has empty answers on every backend: the reference computes their shapes
        q = self.backend(backend if B else "numpy").queries(d.name, flat_params, flat_noise, opts)
        return Queries(q.z.reshape(batch + q.z.shape[1:]),
                       {k: v.reshape(batch + v.shape[1:]) for k, v in q.aux.items()},
                       None if q.y is None else q.y.reshape(batch + q.y.shape[1:]))

    def combine(self, dist: str | Distribution, params: object, queries: Queries,
                answers: Answers, backend: str = "numpy", **options: Any) -> np.ndarray:
        """Phase 2: per-replicate estimates of shape ``(*batch, R, *param_shape)``."""
        if not isinstance(queries, Queries):
            raise TypeError(f"queries must be a reference.Queries (from Estimator.queries), got "
                            f"{type(queries).__name__}")
        if not isinstance(answers, Answers):
            raise TypeError(f"answers must be a reference.Answers (from reference.evaluate), got "
                            f"{type(answers).__name__}")
        d = self.distribution(dist)
        params = self._params(d, params, backend)
        opts = self.options(**options)
        batch = d.batch_shape(params)
        K, C = d.num_variables(params), d.num_categories(params)
        z = int_config_array(queries.z, "queries.z", K, C)
        if z.ndim != len(batch) + 3 or z.shape[: len(batch)] != batch:
            raise ValueError(f"queries.z must have shape (*batch, R, M, K) with batch {batch}, "
                             f"got {z.shape}")
        f_z = float_array(answers.f_z, "answers.f_z", allow_float32=backend != "numpy")
        if f_z.shape != z.shape[:-1]:
            raise ValueError(f"answers.f_z must have shape {z.shape[:-1]}, got {f_z.shape}")
        nb = len(batch)
        B = int(np.prod(batch, dtype=np.int64))  # explicit: -1 is ambiguous for empty arrays

        def flat(a: object, name: str, floating: bool = True) -> np.ndarray | None:
            if a is None:
                return None
            a = float_array(a, name, allow_float32=backend != "numpy") if floating else \
                np.asarray(a)
            if a.shape[:nb] != batch:
                raise ValueError(f"{name} must start with the batch shape {batch}, got {a.shape}")
            out = a.reshape((B,) + a.shape[nb:])
            return np.ascontiguousarray(out, dtype=params.dtype if floating else None)

        if (queries.y is None) != (answers.grad_y is None) or \
                (answers.grad_y is None) != (answers.f_y is None):
            raise ValueError("relaxed queries need answers.f_y and answers.grad_y, and only then")
        if queries.y is not None and np.shape(answers.grad_y) != np.shape(queries.y):
            raise ValueError(f"answers.grad_y must have shape {np.shape(queries.y)}, "
                             f"got {np.shape(answers.grad_y)}")
        # one value per relaxed point: y is (*batch, R, M2, *event), f_y (*batch, R, M2)
        if queries.y is not None and np.shape(answers.f_y) != np.shape(queries.y)[: z.ndim - 1]:
            raise ValueError(f"answers.f_y must have shape {np.shape(queries.y)[: z.ndim - 1]}, "
                             f"got {np.shape(answers.f_y)}")
        fq = Queries(np.ascontiguousarray(z.reshape((B,) + z.shape[nb:])),
                     {k: flat(v, f"queries.aux[{k!r}]", np.issubdtype(np.asarray(v).dtype,
                                                                    np.floating))
                      for k, v in queries.aux.items()},
                     flat(queries.y, "queries.y"))
        fa = Answers(flat(f_z, "answers.f_z"), flat(answers.f_y, "answers.f_y"),
                     flat(answers.grad_y, "answers.grad_y"))
        flat_params = np.ascontiguousarray(params.reshape((B,) + d.event_shape(params)))
        if B:
            self._check_queries_belong(d, flat_params, fq, opts)
        g = self.backend(backend if B else "numpy").combine(d.name, flat_params, fq, fa, opts)
        return g.reshape(batch + g.shape[1:])

    def _expected_queries(self, d: Distribution, one: np.ndarray, opts: dict[str, Any]) -> Queries:
        """Phase 1 of the NumPy reference for one problem ``one (1, *event)`` and one
        replicate: the per-replicate shapes and dtypes that phase 2 must be given."""
        # cached only for options of plain values: an object among them (RELAX's surrogate,
        # which holds its model) would be kept alive by this record for as long as the process
        key = (d.name, one.shape, tuple(sorted(opts.items()))) if all(
            _plain(v) for v in opts.values()) else None
        if key is not None and key in self._query_shape_cache:
            return self._query_shape_cache[key]
        K, C = d.num_variables(one), d.num_categories(one)
        rng = np.random.default_rng(0)
        noise = {s.name: s.draw(rng, (1, 1) + s.shape_for(d.name, K, C, opts)) for s in self.noise}
        q = self.backend("numpy").queries(d.name, one.astype(np.float64), noise, opts)
        if key is not None:
            if len(self._query_shape_cache) > 256:
                self._query_shape_cache.clear()
            self._query_shape_cache[key] = q
        return q

    def _check_queries_belong(self, d: Distribution, flat_params: np.ndarray, fq: Queries,
                              opts: dict[str, Any]) -> None:
        """Phase 2 must be given queries made for these parameters and options: every array
        has the reference's per-replicate shape, the same ``R`` and the same dtype kind (a
        mismatch would make the fast kernels read outside their arrays)."""
        ref = self._expected_queries(d, flat_params[:1], opts)
        R = fq.z.shape[1] if fq.z.ndim >= 2 else -1

        def check(name: str, got: np.ndarray | None, want: np.ndarray | None) -> None:
            if (got is None) != (want is None):
                raise ValueError(f"{self.name}: {name} is {'missing' if got is None else 'unexpected'}"
                                 " for these parameters and options")
            if got is None or want is None:
                return
            per_got, per_want = tuple(got.shape[2:]), tuple(want.shape[2:])
            if name == "queries.z" and got.ndim == want.ndim and per_got != per_want:
                raise ValueError(
                    f"{self.name} with these parameters and options needs {per_want[0]} "
                    f"configurations per replicate (queries.z of shape (*batch, R, "
                    f"{per_want[0]}, {per_want[1]})), got {per_got[0]} of length {per_got[1]}: "
                    "were the queries made for other parameters or options?")
            if got.ndim != want.ndim or got.shape[1] != R or per_got != per_want:
                raise ValueError(
                    f"{self.name}: {name} has shape {tuple(got.shape[1:])} per batch element, but "
                    f"queries for these parameters and options have (R, *{per_want}) with "
                    f"R = {R}: were the queries made for other parameters or options?")
            if np.asarray(got).dtype.kind != np.asarray(want).dtype.kind and not (
                    want.dtype.kind in "iub" and got.dtype.kind in "iub"):
                raise TypeError(f"{self.name}: {name} must have dtype kind "
                                f"{want.dtype.kind!r}, got {got.dtype}")

        check("queries.z", fq.z, ref.z)
        if set(fq.aux) != set(ref.aux):
            raise ValueError(f"{self.name}: queries.aux must hold {sorted(ref.aux)}, got "
                             f"{sorted(fq.aux)}")
        for k in ref.aux:
            check(f"queries.aux[{k!r}]", np.asarray(fq.aux[k]), np.asarray(ref.aux[k]))
        check("queries.y", fq.y, ref.y)

    def estimate(self, dist: str | Distribution, params: object,
                 objective: Any, noise: Mapping[str, object],
                 backend: str = "numpy", **options: Any) -> np.ndarray:
        """Both phases with ``objective``: estimates of shape ``(*batch, R, *param_shape)``."""
        d = self.distribution(dist)
        p = d.validate(params, allow_float32=True)
        K, C = d.num_variables(p), d.num_categories(p)
        oK, oC = getattr(objective, "K", None), getattr(objective, "C", None)
        if (oK is not None and oK != K) or (oC is not None and oC != C):
            raise ValueError(f"the objective is for K={oK}, C={oC} but the parameters give "
                             f"K={K}, C={C}")
        q = self.queries(dist, params, noise, backend, **options)
        return self.combine(dist, params, q, evaluate(objective, q), backend, **options)
