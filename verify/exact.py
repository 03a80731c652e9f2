"""Exact expectation and gradient by enumeration of all ``C**K`` configurations.

Pure NumPy, float64, independent of the estimators' kernels. Works on one problem at a time
(parameters without batch axes). Configurations are laid out as tensors of shape ``(C,) * K``
indexed by ``[z_0, ..., z_{K-1}]`` (for Bernoulli, index 1 means ``z_k = 1``), so no
``C**K x K`` array is stored and a 20-variable binary problem takes well under a second.

Formulas (DESIGN.md section 5.1)::

    E[f]                 = sum_z q(z) f(z)
    d E[f] / d alpha_kc  = sum_z f(z) q(z) (1[z_k = c] - p_kc)
    d E[f] / d phi_k     = sum_z f(z) q(z) (z_k - sigmoid(phi_k))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reference.distributions import Distribution, get_distribution

__all__ = [
    "Problem",
    "make_problem",
    "exact_expectation",
    "exact_gradient",
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
        """Objective values at every configuration, float64 of shape ``(C,) * K``."""
        return np.asarray(self.objective.table(), dtype=np.float64)

    def source(self) -> str:
        """Python source that rebuilds this problem (for reproductions)."""
        return (f"verify.make_problem({self.dist.name!r}, np.array({self.params.tolist()!r}), "
                f"{self.objective.source()})")


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


def _as_problem(problem_or_dist: Problem | str | Distribution, params: object = None,
                objective: Any = None) -> Problem:
    if isinstance(problem_or_dist, Problem):
        return problem_or_dist
    return make_problem(problem_or_dist, params, objective)


def _category_probs(problem: Problem) -> np.ndarray:
    """``p(z_k = c)`` as a ``(K, C)`` table."""
    p = problem.dist.probs(problem.params)
    return np.stack([1.0 - p, p], axis=-1) if problem.dist.name == "bernoulli" else p


def config_probabilities(problem: Problem) -> np.ndarray:
    """``q(z)`` for every configuration, shape ``(C,) * K`` (outer product of the rows)."""
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
    w = config_probabilities(pr) * pr.f_table()
    total = w.sum()
    K = pr.K
    # marginal_k[c] = sum of q f over configurations with z_k = c
    marginals = np.stack([w.sum(axis=tuple(j for j in range(K) if j != k)) for k in range(K)])
    p = _category_probs(pr)
    grad = marginals - p * total
    return grad[:, 1] if pr.dist.name == "bernoulli" else grad


def finite_difference_gradient(problem: Problem | str | Distribution, params: object = None,
                               objective: Any = None, h: float = 1e-3) -> np.ndarray:
    """Five-point central differences of :func:`exact_expectation` (error ``O(h^4)``)."""
    pr = _as_problem(problem, params, objective)
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
    """
    Z = Distribution.enumerate_configs(problem.K, problem.C)
    return problem.dist.score(problem.params, Z).reshape(Z.shape[0], -1)


# ------------------------------------------------------------------ k-subset enumeration
def ksubset_probabilities(problem: Problem, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    """All ``binom(n, k)`` subsets ``Z (N, n)`` and ``p(z) = exp(theta·z) / sum exp(theta·z')``
    ``(N,)``, by enumeration (independent of the dynamic programme of ``reference.ksubset``)."""
    from reference.ksubset import enumerate_subsets

    if problem.dist.name != "ksubset":
        raise ValueError(f"not a k-subset problem: {problem.dist.name!r}")
    Z = enumerate_subsets(problem.K, k)
    w = Z @ problem.params
    p = np.exp(w - w.max())
    return Z, p / p.sum()


def ksubset_expectation(problem: Problem, k: int | None) -> float:
    """``E_p[f]`` over all k-subsets."""
    Z, p = ksubset_probabilities(problem, k)
    return float(p @ np.asarray(problem.objective(Z), dtype=np.float64))


def ksubset_gradient(problem: Problem, k: int | None) -> np.ndarray:
    """``grad_theta E_p[f] = sum_z p(z) f(z) (z - mu)``, ``mu = sum_z p(z) z``; shape ``(n,)``."""
    Z, p = ksubset_probabilities(problem, k)
    f = np.asarray(problem.objective(Z), dtype=np.float64)
    mu = p @ Z
    return (p * f) @ (Z - mu)
