"""Perturbation estimators on the k-subset distribution: I-MLE, AIMLE and SIMPLE.

Scores ``theta`` of shape ``(*batch, n)``, ``p(z) ∝ exp(theta·z)`` over binary ``z`` with
``sum(z) = k``; the subset size is the option ``k`` (required, ``1 <= k <= n``). All estimate
``grad_theta E_p[f(z)]`` (ascent direction) and are biased; they need ``dy = grad_y f`` at the
binary point ``y = z`` (``Queries.y``, float ``(*batch, R, S, n)``; ``Queries.z`` holds the
samples, int64 ``(*batch, R, S, n)``).

* ``imle_ksubset`` (Niepert, Minervini, Franceschi 2021, arXiv 2106.01798): ``z = topk(theta +
  eps)``, ``g = (z - topk(theta + eps - lambda dy)) / lambda`` (division optional). Noise
  option ``perturbation``: ``"sum_of_gamma"`` (default): ``u (S, s, n)`` uniforms, ``eps = (tau / k)
  (sum_{i=1..s} (k/i) gammaincinv(1/k, u_i) - log s)`` (:func:`reference.ksubset.sum_of_gamma_noise`);
  ``"gumbel"``: ``u (S, n)``, ``eps = tau G``, ``G = -log(-log(max(u, TINY)))``. The mapping
  from ``u`` to ``eps`` runs on the host in NumPy/SciPy for every backend
  (:func:`ksubset_noise`), so all three see the same ``theta + eps``.
* ``aimle_ksubset`` (Minervini, Franceschi, Niepert 2023, arXiv 2209.04862): the same noise,
  two-sided target ``(topk(theta + eps + lambda dy) - topk(theta + eps - lambda dy)) / (2
  lambda)`` or the one-sided one, fixed ``lambda`` or ``lambda = beta ||theta|| / ||dy||``
  (see :mod:`reference.estimators.relaxation.numpy_reference` for the adaptive rule and its explicit state).
* ``simple`` (Ahmed, Zeng, Niepert, Van den Broeck, ICLR 2023, arXiv 2210.01941): forward an
  exact sample of ``p`` from uniforms ``u (S, n)`` (sequential conditional sampling,
  :mod:`reference.ksubset`); backward ``g = J_mu(theta)^T dy = Cov_theta(z) dy`` with the exact
  marginals' Jacobian from the dynamic programme.

Per-replicate outputs are averages over the ``S`` samples. Aux arrays: ``z`` int64 ``(*batch,
R, S, n)`` is ``Queries.z``; ``perturbed`` = ``theta + eps`` float ``(*batch, R, S, n)``
(I-MLE/AIMLE).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference import ksubset as ks
from reference._validate import finite_scalar, positive_int
from reference.contract import Answers, Backend, Cost, Estimator, NoiseSpec, Queries, backend_paths

from ..relaxation.numpy_reference import (
    AIMLE,
    check_perturb_options,
    onehot,
    onehot_argmax,
    perturbation_gradients,
    perturbation_lambdas,
)

__all__ = ["IMLE_KSUBSET", "AIMLE_KSUBSET", "SIMPLE", "ksubset_noise", "ksubset_per_sample",
           "perturbed_scores", "aimle_nonzeros"]


def ksubset_noise(u: np.ndarray, opts: dict) -> np.ndarray:
    """Perturbations ``eps (..., S, n)`` from the uniforms (module docstring)."""
    if opts["perturbation"] == "sum_of_gamma":
        return ks.sum_of_gamma_noise(u, opts["k"], opts["tau"])
    return opts["tau"] * ks.gumbel(u)


def perturbed_scores(params: np.ndarray, noise: dict, opts: dict) -> np.ndarray:
    """``theta + eps``, ``(B, R, S, n)``; validates ``k <= n``. Shared by every backend."""
    ks.check_k(opts["k"], params.shape[-1])
    eps = ksubset_noise(np.asarray(noise["u"], dtype=np.float64), opts)
    return (params.astype(np.float64)[:, None, None, :] + eps).astype(params.dtype)


def ksubset_per_sample(params: np.ndarray, aux: dict, dy: np.ndarray, opts: dict) -> np.ndarray:
    """Per-sample I-MLE/AIMLE gradients ``(B, R, S, n)`` on the k-subset distribution."""
    k = opts["k"]
    lam = perturbation_lambdas(params, dy, opts)
    return perturbation_gradients(lambda x: ks.top_k(x, k).astype(np.float64), aux["perturbed"],
                                  aux["z"].astype(np.float64), dy, lam,
                                  opts.get("target", "one_sided") == "two_sided",
                                  opts.get("divide_by_lambda", True))


def _perturb_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    perturbed = perturbed_scores(params, noise, opts)
    z = ks.top_k(perturbed, opts["k"])
    return Queries(z, {"perturbed": perturbed}, z.astype(np.float64))


def _perturb_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                     opts: dict) -> np.ndarray:
    ks.check_k(opts["k"], params.shape[-1])
    aux = {"perturbed": queries.aux["perturbed"], "z": queries.z}
    return ksubset_per_sample(params, aux, answers.grad_y, opts).mean(axis=2)


def _simple_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    k = ks.check_k(opts["k"], params.shape[-1])
    u = noise["u"]  # (B, R, S, n)
    B, n = params.shape
    z = np.zeros(u.shape, dtype=np.int64)
    for b in range(B):
        z[b] = ks.sample_from_table(params[b], ks.forward_table(params[b], k), u[b].reshape(-1, n),
                                    k).reshape(u.shape[1:])
    return Queries(z, {}, z.astype(np.float64))


def _simple_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                    opts: dict) -> np.ndarray:
    cov = ks.covariance(params, opts["k"])  # (B, n, n)
    g = np.einsum("bij,brsj->brsi", cov, answers.grad_y)
    return g.mean(axis=2)


NUMPY_IMLE_KSUBSET = Backend(_perturb_queries, _perturb_combine)
NUMPY_SIMPLE = Backend(_simple_queries, _simple_combine)


# ---------------------------------------------------------------------------- records
def _perturb_shape(K: int, C: int, o: dict[str, Any]) -> tuple[int, ...]:
    return (o["S"], o["s"], K) if o["perturbation"] == "sum_of_gamma" else (o["S"], K)


def _simple_shape(K: int, C: int, o: dict[str, Any]) -> tuple[int, ...]:
    return (o["S"], K)


def _check_k_option(o: dict[str, Any]) -> dict[str, Any]:
    if o["k"] is None:
        raise ValueError("the k-subset estimators need the option k (subset size)")
    o["k"] = positive_int(o["k"], "k")
    return o


def _check_perturb(o: dict[str, Any]) -> dict[str, Any]:
    o = check_perturb_options(_check_k_option(o))
    if o["perturbation"] not in ("sum_of_gamma", "gumbel"):
        raise ValueError(f"perturbation must be 'sum_of_gamma' or 'gumbel', got {o['perturbation']!r}")
    o["s"] = positive_int(o["s"], "s")
    o["tau"] = finite_scalar(o["tau"], "tau")
    if not o["tau"] > 0:
        raise ValueError(f"tau must be > 0, got {o['tau']}")
    return o


def _check_simple(o: dict[str, Any]) -> dict[str, Any]:
    o = _check_k_option(o)
    o["S"] = positive_int(o["S"], "S")
    return o


_U_PERTURB = NoiseSpec("u", "uniform", _perturb_shape,
                       "u[..., r, s, i, j] (sum_of_gamma: i-th Gamma term of item j, by the inverse "
                       "CDF) or u[..., r, s, j] (gumbel): the perturbation of sample s, shared by "
                       "the sample and its targets")
_U_SIMPLE = NoiseSpec("u", "uniform", _simple_shape,
                      "u[..., r, s, j]: decides item j of sample s in the sequential exact sampler "
                      "(reference.ksubset)")

_NOISE_DEFAULTS = {"k": None, "perturbation": "sum_of_gamma", "tau": 1.0, "s": 10}

IMLE_KSUBSET = Estimator(
    name="imle_ksubset",
    title="I-MLE on k-subsets: top-k perturb-and-MAP (Sum-of-Gamma or Gumbel), one-sided target",
    distributions=("ksubset",),
    unbiased=False,
    noise=(_U_PERTURB,),
    option_defaults={**_NOISE_DEFAULTS, "lambda_": 1.0, "divide_by_lambda": True, "S": 1},
    check_options=_check_perturb,
    cost_fn=lambda K, C, o: Cost(o["S"], o["S"]),
    backends=backend_paths("ksubset_perturbation", "IMLE_KSUBSET"),
    exact_moments_path="verify.moments.ksubset_perturbation:ksubset_perturb_moments",
    references="Niepert, Minervini, Franceschi 2021 (NeurIPS, arXiv 2106.01798)",
    examples=({"k": 2}, {"k": 3, "perturbation": "gumbel", "lambda_": 0.5, "S": 2}),
)

AIMLE_KSUBSET = Estimator(
    name="aimle_ksubset",
    title="Adaptive I-MLE on k-subsets: two-sided target, adaptive lambda, top-k perturb-and-MAP",
    distributions=("ksubset",),
    unbiased=False,
    noise=(_U_PERTURB,),
    option_defaults={**_NOISE_DEFAULTS, "lambda_": 1.0, "target": "two_sided", "adaptive": False,
                     "beta": 1.0, "S": 1},
    check_options=_check_perturb,
    cost_fn=lambda K, C, o: Cost(o["S"], o["S"]),
    backends=backend_paths("ksubset_perturbation", "IMLE_KSUBSET"),
    exact_moments_path="verify.moments.ksubset_perturbation:ksubset_perturb_moments",
    references="Minervini, Franceschi, Niepert 2023 (AAAI, arXiv 2209.04862)",
    examples=({"k": 2}, {"k": 3, "perturbation": "gumbel", "adaptive": True, "beta": 0.5, "S": 2}),
)

SIMPLE = Estimator(
    name="simple",
    title="SIMPLE: exact k-subset sample forward, gradient of the exact marginals backward",
    distributions=("ksubset",),
    unbiased=False,
    noise=(_U_SIMPLE,),
    option_defaults={"k": None, "S": 1},
    check_options=_check_simple,
    cost_fn=lambda K, C, o: Cost(o["S"], o["S"]),
    backends=backend_paths("ksubset_perturbation", "SIMPLE"),
    exact_moments_path="verify.moments.ksubset_perturbation:simple_moments",
    references="Ahmed, Zeng, Niepert, Van den Broeck 2023 (ICLR, arXiv 2210.01941)",
    examples=({"k": 2}, {"k": 3, "S": 2}),
)


# ------------------------------------------------------------------- AIMLE's statistic
def aimle_nonzeros(dist: str, params: object, queries: Queries, answers: Answers,
                   **options: Any) -> np.ndarray:
    """Number of non-zero entries of each per-sample AIMLE gradient, int64 ``(*batch, R, S)``
    (the statistic that drives :func:`aimle_update`); ``dist`` ``"categorical"`` or
    ``"ksubset"``, the options those of the record (``aimle`` or ``aimle_ksubset``).

    It lives here, not beside :class:`AIMLEState`, because it serves both AIMLE records and
    this family builds on the categorical one (never the other way round)."""
    est = AIMLE if dist == "categorical" else AIMLE_KSUBSET
    d = est.distribution(dist)
    p = d.validate(params)
    opts = est.options(**options)
    batch = d.batch_shape(p)
    nb = len(batch)
    flat = p.reshape((-1,) + d.event_shape(p))

    def fl(a: np.ndarray) -> np.ndarray:
        return np.asarray(a).reshape((-1,) + np.asarray(a).shape[nb:])

    aux = {k: fl(v) for k, v in queries.aux.items()}
    aux["z"] = fl(queries.z)
    dy = fl(answers.grad_y)
    if dist == "categorical":
        lam = perturbation_lambdas(flat, dy, opts)
        g = perturbation_gradients(onehot_argmax, aux["perturbed"], onehot(aux["z"], p.shape[-1]),
                                   dy, lam, opts["target"] == "two_sided", True)
    else:
        g = ksubset_per_sample(flat, aux, dy, opts)
    nz = np.count_nonzero(g.reshape(g.shape[:3] + (-1,)), axis=-1)
    return nz.reshape(batch + nz.shape[1:])
