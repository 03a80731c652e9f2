"""Exact expectation and gradient by enumeration of all ``C**K`` configurations.

Pure NumPy, float64, independent of the estimators' kernels. Works on one problem at a time
(parameters without batch axes). Configurations are laid out as tensors of shape ``(C,) * K``
indexed by ``[z_0, ..., z_{K-1}]`` (for Bernoulli, index 1 means ``z_k = 1``), so no
``C**K x K`` array is stored and a 20-variable binary problem takes well under a second.

Formulas (DESIGN.md section 5.1)::

    E[f]                 = sum_z q(z) f(z)
    d E[f] / d alpha_kc  = sum_z f(z) q(z) (1[z_k = c] - p_kc)
                         = p_kc sum_{c'} p_kc' (m_kc - m_kc')
    d E[f] / d phi_k     = sum_z f(z) q(z) (z_k - sigmoid(phi_k))
                         = sigmoid(phi_k) sigmoid(-phi_k) (m_k1 - m_k0)

with ``m_kc = E[f | z_k = c]`` the conditional means (each a contraction of the table with the
other variables' probabilities). The first form cancels when a probability is near 1 (at
``phi = 50`` it returns 0 where the gradient is 1.9e-22); the second is a sum of products of
probabilities, each computed from log-probabilities, and differences of conditional means, so
every entry is accurate in relative terms (up to the conditioning of ``f`` itself).
:func:`exact_gradient_mp` evaluates the first form in arbitrary precision (mpmath) to certify
the float64 answers on small problems.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from reference.distributions import Distribution, get_distribution

__all__ = [
    "Problem",
    "make_problem",
    "exact_expectation",
    "exact_gradient",
    "exact_gradient_mp",
    "expectation_gradient",
    "exact_expectation_mp",
    "conditional_means",
    "check_enumeration_size",
    "check_enumeration_budget",
    "configurations",
    "mp_configurations",
    "mp_mean_cov",
    "MAX_CONFIGURATIONS",
    "MAX_MEMORY_BYTES",
    "MAX_SECONDS",
    "OPERATIONS_PER_SECOND",
    "PYTHON_STEP",
    "check_budget",
    "finite_difference_gradient",
    "config_probabilities",
    "score_matrix",
    "ksubset_probabilities",
    "ksubset_expectation",
    "ksubset_gradient",
]


@dataclass(frozen=True)
class Problem:
    """One small problem: a distribution, its logits (no batch axes) and an objective."""

    dist: Distribution
    params: np.ndarray
    objective: Any

    @property
    def K(self) -> int:
        return self.dist.num_variables(self.params)

    @property
    def C(self) -> int:
        return self.dist.num_categories(self.params)

    def f_table(self) -> np.ndarray:
        """Objective values at every configuration, float64 of shape ``(C,) * K``; a
        ``ValueError`` if any is NaN or infinite (no exact answer exists then), and a
        ``MemoryError``-free refusal past :data:`MAX_CONFIGURATIONS` (checked before any work)."""
        check_enumeration_size(self.C, self.K)
        return _finite_values(np.asarray(self.objective.table(), dtype=np.float64),
                              self.objective)

    def source(self) -> str:
        """Python source that rebuilds this problem (for reproductions)."""
        return (f"verify.make_problem({self.dist.name!r}, np.array({self.params.tolist()!r}), "
                f"{self.objective.source()})")


#: the largest ``C**K`` the enumeration oracle accepts (a float64 table of 2**25 entries is
#: 256 MiB, and every pass over it takes about a second); raise it deliberately, e.g.
#: ``verify.exact.MAX_CONFIGURATIONS = 2**28``, on a machine with the memory for it
MAX_CONFIGURATIONS = 2**25


#: the most memory one oracle call may plan to hold at once (bytes); every method estimates its
#: largest arrays before any work and refuses past it. Raise it deliberately on a bigger
#: machine, e.g. ``verify.exact.MAX_MEMORY_BYTES = 64 * 2**30``
MAX_MEMORY_BYTES = 8 * 2**30
#: the longest one oracle call may plan to run (seconds, estimated from an operation count at
#: :data:`OPERATIONS_PER_SECOND`); raise it deliberately, e.g. ``verify.exact.MAX_SECONDS = 1e4``
MAX_SECONDS = 1800.0
#: the nominal rate the estimates assume: vectorised float64 work on one core, and about 1e3
#: such operations for one Python-level step (an mpmath operation, a polygon clip); the
#: estimates are orders of magnitude, meant to refuse the hopeless call, not to time the rest
OPERATIONS_PER_SECOND = 1e8


def check_budget(what: str, *, memory_bytes: float, operations: float) -> None:
    """Refuse up front (``ValueError``) a computation whose estimated memory exceeds
    :data:`MAX_MEMORY_BYTES` or whose estimated time (``operations`` at
    :data:`OPERATIONS_PER_SECOND`) exceeds :data:`MAX_SECONDS`. ``what`` names the computation
    in the message, which also says which limit to raise. Called by every oracle method before
    its work, with estimates of its largest arrays and its operation count."""
    mem, ops = float(memory_bytes), float(operations)
    if not (mem >= 0 and ops >= 0):  # also catches NaN from an overflowing estimate
        raise ValueError(f"{what}: invalid cost estimate (memory {mem}, operations {ops})")
    if mem > MAX_MEMORY_BYTES:
        raise ValueError(f"{what} would need about {mem / 2**30:.3g} GiB of memory, more than "
                         f"verify.exact.MAX_MEMORY_BYTES = {MAX_MEMORY_BYTES / 2**30:.3g} GiB; use a "
                         "smaller problem or raise the limit (e.g. verify.exact.MAX_MEMORY_BYTES "
                         "= 64 * 2**30)")
    seconds = ops / OPERATIONS_PER_SECOND
    if seconds > MAX_SECONDS:
        raise ValueError(f"{what} would take about {seconds:.3g} s ({ops:.3g} operations), more "
                         f"than verify.exact.MAX_SECONDS = {MAX_SECONDS:.3g} s; use a smaller "
                         "problem or raise the limit (e.g. verify.exact.MAX_SECONDS = 1e5)")


def check_enumeration_size(C: int, K: int) -> None:
    """Refuse up front (``ValueError``) when ``C**K`` exceeds :data:`MAX_CONFIGURATIONS`."""
    n = int(C) ** int(K)
    if n > MAX_CONFIGURATIONS:
        raise ValueError(f"enumerating C**K = {C}**{K} = {_count(n)} configurations exceeds "
                         f"verify.exact.MAX_CONFIGURATIONS = {MAX_CONFIGURATIONS} (the table alone "
                         f"would take {_gib(8 * n)} GiB); use a smaller problem or raise "
                         "the limit")


def _count(n: int) -> str:
    """``n`` for a message: ``1.72e+10``, or ``10^15051.5`` past the float range (formatting
    such an ``int`` as a float raised ``OverflowError`` instead of the refusal)."""
    return f"{n:.3g}" if n < 10**300 else f"10^{math.log10(n):.1f}"


def _gib(nbytes: int) -> str:
    """``nbytes`` in GiB for a message: ``0.745`` (integer division printed 0 below 1 GiB),
    and the integer quotient past the float range."""
    return f"{nbytes / 2**30:.3g}" if nbytes < 10**300 else _count(nbytes // 2**30)


#: nominal operations of one Python-level step (an mpmath operation, one polygon clip)
PYTHON_STEP = 1e3


def check_enumeration_budget(what: str, C: int, K: int, *, floats_per_config: float,
                             ops_per_config: float, extra_bytes: float = 0.0) -> int:
    """:func:`check_enumeration_size`, then :func:`check_budget` for a method that holds
    ``floats_per_config`` float64 and does ``ops_per_config`` operations per configuration
    (plus ``extra_bytes``); returns ``C**K``. Estimates in Python integers: no overflow."""
    check_enumeration_size(C, K)
    n = int(C) ** int(K)
    check_budget(what, memory_bytes=8.0 * n * floats_per_config + extra_bytes,
                 operations=float(n) * ops_per_config)
    return n


def _finite_values(values: np.ndarray, objective: Any) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ValueError(f"the objective {objective!r} is not finite at configuration "
                         f"{tuple(int(i) for i in bad)} (value {values[tuple(bad)]}); the oracle "
                         "has no exact answer for a non-finite objective")
    return values


def make_problem(dist: str | Distribution, params: object, objective: Any) -> Problem:
    """Validate and bundle a problem. ``params`` must have no batch axes."""
    d = get_distribution(dist)
    p = d.validate(params)
    if d.batch_shape(p):
        raise ValueError(f"the oracle takes one problem at a time; params shape {p.shape} has "
                         f"batch axes {d.batch_shape(p)}")
    K, C = d.num_variables(p), d.num_categories(p)
    oK, oC = getattr(objective, "K", None), getattr(objective, "C", None)
    if (oK, oC) != (K, C):
        raise ValueError(f"objective is for K={oK}, C={oC} but params give K={K}, C={C}")
    want = "categorical" if d.name == "categorical" else "binary"  # ksubset: binary objective
    if getattr(objective, "domain", want) != want:
        raise ValueError(f"a {d.name} problem needs a {want} objective, got domain "
                         f"{objective.domain!r}")
    return Problem(d, p, objective)


def _need_problem(problem: object) -> None:
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a verify.Problem (verify.make_problem(dist, params, "
                        f"objective)), got {type(problem).__name__}")


def _as_problem(problem_or_dist: Problem | str | Distribution, params: object = None,
                objective: Any = None) -> Problem:
    if isinstance(problem_or_dist, Problem):
        return problem_or_dist
    return make_problem(problem_or_dist, params, objective)


def _category_probs(problem: Problem) -> np.ndarray:
    """``p(z_k = c)`` as a ``(K, C)`` table, from log-probabilities (``1 - sigmoid(50)`` would
    round to 0; ``exp(log sigmoid(-50))`` does not)."""
    return np.exp(problem.dist.category_log_probs(problem.params))


def config_probabilities(problem: Problem) -> np.ndarray:
    """``q(z)`` for every configuration, shape ``(C,) * K`` (outer product of the rows)."""
    _need_problem(problem)
    check_enumeration_budget("the enumeration of q(z)", problem.C, problem.K,
                             floats_per_config=2, ops_per_config=2)
    rows = np.exp(problem.dist.category_log_probs(problem.params))
    q = np.ones(())
    for k in range(problem.K):
        q = np.multiply.outer(q, rows[k])
    return q


def exact_expectation(problem: Problem | str | Distribution, params: object = None,
                      objective: Any = None, *, k: int | None = None) -> float:
    """``E_q[f]`` by enumeration (k-subset problems need ``k``)."""
    pr = _as_problem(problem, params, objective)
    if pr.dist.name == "ksubset":
        return ksubset_expectation(pr, k)
    return float(np.sum(config_probabilities(pr) * pr.f_table()))


def exact_gradient(problem: Problem | str | Distribution, params: object = None,
                   objective: Any = None, *, k: int | None = None) -> np.ndarray:
    """``grad_params E_q[f]`` by enumeration; shape ``(K,)`` or ``(K, C)`` (k-subset problems:
    ``(n,)``, and they need ``k``)."""
    pr = _as_problem(problem, params, objective)
    if pr.dist.name == "ksubset":
        return ksubset_gradient(pr, k)
    m = conditional_means(pr)  # (K, C)
    p = _category_probs(pr)
    if pr.dist.name == "bernoulli":
        return p[:, 1] * p[:, 0] * (m[:, 1] - m[:, 0])
    diff = m[:, :, None] - m[:, None, :]  # [k, c, c'] = m_kc - m_kc'
    return p * np.einsum("kd,kcd->kc", p, diff)


def expectation_gradient(dist: str | Distribution, params: object, objective: Any,
                         **options: Any) -> np.ndarray:
    """``grad_params E_q[f]`` (:func:`exact_gradient`) called as a record's target gradient
    (``Estimator.target_gradient_path``, the default target): options other than the subset
    size ``k`` of k-subset problems do not change the target and are ignored."""
    return exact_gradient(make_problem(dist, params, objective), k=options.get("k"))


def conditional_means(problem: Problem) -> np.ndarray:
    """``m_kc = E[f | z_k = c]``, shape ``(K, C)``: the table contracted with the category
    probabilities of every variable but ``k`` (``K`` passes over the ``C**K`` table)."""
    check_enumeration_budget("the exact gradient by enumeration", problem.C, problem.K,
                             floats_per_config=3, ops_per_config=2 * problem.K + 4)
    f = problem.f_table()
    rows = _category_probs(problem)
    K = problem.K
    out = np.empty((K, problem.C))
    for k in range(K):
        t = np.moveaxis(f, k, 0)
        for j in reversed([j for j in range(K) if j != k]):
            t = t @ rows[j]  # contracts the last axis, which is variable j
        out[k] = t
    return out


def configurations(problem: Problem) -> np.ndarray:
    """All ``C**K`` configurations of the problem, int ``(C**K, K)`` in the C order of the
    ``(C,) * K`` tables (``Distribution.enumerate_configs``), refused up front past
    :data:`MAX_CONFIGURATIONS`: the one place the oracle's enumerations go through."""
    check_enumeration_size(problem.C, problem.K)
    return Distribution.enumerate_configs(problem.K, problem.C)


def mp_configurations(problem: Problem, dps: int = 60):
    """The arbitrary-precision set-up of the enumeration oracle: ``(ctx, rows, configs, q)``
    with ``ctx`` an ``mpmath`` context of ``dps`` digits, ``rows[k][c] = p(z_k = c)`` computed
    from the float64 logits taken as exact, ``configs`` every configuration (tuples, C order)
    and ``q[i] = q(configs[i])``, all ``mpf``."""
    import mpmath

    # every q(z) is K mpmath products; callers check their own (larger) loops as well
    check_enumeration_budget("the mpmath enumeration", problem.C, problem.K,
                             floats_per_config=problem.K + 1 + dps / 8,
                             ops_per_config=PYTHON_STEP * (problem.K + 1))
    ctx = mpmath.mp.clone()
    ctx.dps = dps
    rows = []
    for k in range(problem.K):
        if problem.dist.name == "bernoulli":
            p1 = 1 / (1 + ctx.exp(-ctx.mpf(float(problem.params[k]))))
            rows.append([1 - p1, p1])
        else:
            e = [ctx.exp(ctx.mpf(float(a))) for a in problem.params[k]]
            s = ctx.fsum(e)
            rows.append([x / s for x in e])
    configs = list(np.ndindex((problem.C,) * problem.K))
    qs = [ctx.fprod(rows[k][c] for k, c in enumerate(z)) for z in configs]
    return ctx, rows, configs, qs


def mp_mean_cov(ctx, weights: list, values: list) -> tuple[list, list]:
    """``mean_a = sum_i w_i v_ia`` and ``cov_ab = sum_i w_i (v_ia - mean_a)(v_ib - mean_b)``
    in ``ctx``'s precision (lists of ``mpf``): the definitions the ``*_mp`` certificates use."""
    P = len(values[0])
    mean = [ctx.fsum(w * v[a] for w, v in zip(weights, values, strict=True)) for a in range(P)]
    cov = [[ctx.fsum(w * (v[a] - mean[a]) * (v[b] - mean[b])
                     for w, v in zip(weights, values, strict=True)) for b in range(P)]
           for a in range(P)]
    return mean, cov


def exact_expectation_mp(problem: Problem | str | Distribution, params: object = None,
                         objective: Any = None, *, dps: int = 60):
    """``E_q[f]`` by enumeration in arbitrary precision (``mpmath`` with ``dps`` digits; the
    parameters and the objective's float64 values are taken as exact). Returns an ``mpf``.
    Bernoulli and categorical problems; for certifying the float64 oracle on small ones."""
    pr = _as_problem(problem, params, objective)
    f = pr.f_table()
    ctx, _, configs, qs = mp_configurations(pr, dps)
    return ctx.fsum(q * ctx.mpf(float(f[z])) for z, q in zip(configs, qs, strict=True))


def exact_gradient_mp(problem: Problem | str | Distribution, params: object = None,
                      objective: Any = None, *, dps: int = 60) -> np.ndarray:
    """``grad E_q[f]`` by the enumeration formula ``sum_z f(z) q(z) (1[z_k = c] - p_kc)`` in
    arbitrary precision (``mpmath``, ``dps`` significant digits), rounded to float64 at the
    end: the reference that certifies :func:`exact_gradient` at extreme logits. Same shape as
    :func:`exact_gradient`. Cost ``O(C**K K C)`` operations on mpmath numbers: small problems
    only (``C**K <= 4096`` is a few seconds)."""
    pr = _as_problem(problem, params, objective)
    if pr.dist.name == "ksubset":
        raise ValueError("exact_gradient_mp supports Bernoulli and categorical problems")
    check_enumeration_budget("exact_gradient_mp", pr.C, pr.K, floats_per_config=0,
                             ops_per_config=PYTHON_STEP * pr.K * pr.C)
    f = pr.f_table()
    ctx, rows, configs, qs = mp_configurations(pr, dps)
    K, C = pr.K, pr.C
    grad = [[ctx.mpf(0)] * C for _ in range(K)]
    for z, q in zip(configs, qs, strict=True):
        w = q * ctx.mpf(float(f[z]))
        for k in range(K):
            for c in range(C):
                grad[k][c] += w * ((1 if z[k] == c else 0) - rows[k][c])
    out = np.array([[float(g) for g in row] for row in grad])
    return out[:, 1] if pr.dist.name == "bernoulli" else out


def finite_difference_gradient(problem: Problem | str | Distribution, params: object = None,
                               objective: Any = None, h: float = 1e-3) -> np.ndarray:
    """Five-point central differences of :func:`exact_expectation` (error ``O(h^4)``);
    ``h`` a finite step > 0."""
    pr = _as_problem(problem, params, objective)
    if isinstance(h, bool) or not isinstance(h, (int, float, np.integer, np.floating)) or \
            not (math.isfinite(h) and h > 0):
        raise ValueError(f"h (the finite-difference step) must be a finite number > 0, got {h!r}")
    grad = np.zeros_like(pr.params)
    for idx in np.ndindex(pr.params.shape):
        vals = []
        for step in (-2, -1, 1, 2):
            shifted = pr.params.copy()
            shifted[idx] += step * h
            vals.append(exact_expectation(Problem(pr.dist, shifted, pr.objective)))
        grad[idx] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
    return grad


def score_matrix(problem: Problem) -> np.ndarray:
    """``grad log q(z)`` for every configuration, flattened: shape ``(C**K, P)``.

    Rows follow the lexicographic order of ``Distribution.enumerate_configs`` (the C-order
    flattening of the ``(C,) * K`` tensors); columns the C-order flattening of the parameters.
    Entries are accurate in relative terms: ``1[z_k = c] - p_kc`` is computed as the sum of
    the other categories' probabilities when ``z_k = c`` (``1 - p`` would cancel when
    ``p_kc`` is near 1) and as ``-p_kc`` otherwise; Bernoulli scores are the ``c = 1`` column.
    """
    _need_problem(problem)
    P = problem.params.size
    # Z, the boolean one-hot (N, K, C) and two float (N, P) arrays
    check_enumeration_budget("the score matrix", problem.C, problem.K,
                             floats_per_config=2 * P + problem.K * (1 + problem.C) / 8,
                             ops_per_config=4 * problem.K * problem.C)
    Z = configurations(problem)
    p = _category_probs(problem)  # (K, C)
    C = problem.C
    others = np.stack([np.delete(p, c, axis=1).sum(axis=1) for c in range(C)], axis=1)  # 1 - p
    onehot = Z[:, :, None] == np.arange(C)  # (N, K, C)
    S = np.where(onehot, others[None], -p[None])
    if problem.dist.name == "bernoulli":
        S = S[:, :, 1]
    return S.reshape(Z.shape[0], -1)


# ------------------------------------------------------------------ k-subset enumeration
def ksubset_probabilities(problem: Problem, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """All ``binom(n, k)`` subsets ``Z (N, n)`` and ``p(z) = exp(theta·z) / sum exp(theta·z')``
    ``(N,)``, by enumeration (independent of the dynamic programme of ``reference.ksubset``)."""
    from reference.ksubset import enumerate_subsets

    if problem.dist.name != "ksubset":
        raise ValueError(f"not a k-subset problem: {problem.dist.name!r}")
    from math import comb

    if isinstance(k, (int, np.integer)) and 0 <= k <= problem.K:
        N = comb(problem.K, int(k))
        if N > MAX_CONFIGURATIONS:
            raise ValueError(f"enumerating binom({problem.K}, {k}) subsets exceeds "
                             f"verify.exact.MAX_CONFIGURATIONS = {MAX_CONFIGURATIONS}")
        # Z as int64 (N, n), its scores and probabilities
        check_budget(f"enumerating binom({problem.K}, {k}) subsets",
                     memory_bytes=8.0 * N * (problem.K + 3), operations=4.0 * N * problem.K)
    Z = enumerate_subsets(problem.K, k)
    w = Z @ problem.params
    p = np.exp(w - w.max())
    return Z, p / p.sum()


def ksubset_expectation(problem: Problem, k: int | None) -> float:
    """``E_p[f]`` over all k-subsets."""
    Z, p = ksubset_probabilities(problem, k)
    return float(p @ _finite_values(np.asarray(problem.objective(Z), dtype=np.float64),
                                    problem.objective))


def ksubset_gradient(problem: Problem, k: int | None) -> np.ndarray:
    """``grad_theta E_p[f] = sum_z p(z) f(z) (z - mu)``, ``mu = sum_z p(z) z``; shape ``(n,)``."""
    Z, p = ksubset_probabilities(problem, k)
    f = _finite_values(np.asarray(problem.objective(Z), dtype=np.float64), problem.objective)
    mu = p @ Z
    return (p * f) @ (Z - mu)
