"""Score-function estimators: REINFORCE and REINFORCE with the leave-one-out baseline.

Both estimate ``grad_params E_{z~q}[f(z)]`` for factorial Bernoulli (``phi``, ``(..., K)``) or
categorical (``alpha``, ``(..., K, C)``) distributions from ``n`` i.i.d. samples per replicate.
They need only values of ``f`` on discrete configurations (no derivatives, no relaxation).

* REINFORCE (Williams 1992), constant baseline ``b`` (0 by default):
  ``g = (1/n) sum_i (f(z_i) - b) grad log q(z_i)``. Unbiased for every constant ``b``.
* REINFORCE-LOO (Kool, van Hoof, Welling 2019, "Buy 4 REINFORCE samples, get a baseline for
  free!"; also Salimans & Knowles 2014), ``n >= 2``:
  ``g = 1/(n-1) sum_i (f(z_i) - fbar) grad log q(z_i)``, ``fbar = (1/n) sum_j f(z_j)``.
  Each sample's baseline is the mean of the other ``n - 1`` values, so it is unbiased.

Scores: ``grad_{phi_k} log q(z) = z_k - sigmoid(phi_k)``;
``grad_{alpha_kc} log q(z) = 1[z_k = c] - softmax(alpha_k)_c``; every backend computes them
accurate relative to themselves (:meth:`reference.distributions.Distribution.score`:
``sigmoid(-phi_k)`` for ``z_k = 1``, ``1 - p_kc`` as the sum of the other categories' terms),
so at ``phi = 50``, ``z = 1`` a replicate is ``f * 1.9e-22 / n``, not 0.

Noise: ``u`` of shape ``(*batch, R, n, K)``, Uniform[0, 1); sample ``i`` of replicate ``r`` is
``z = sample(params, u[r, i])`` with the mapping of :mod:`reference.distributions`.
Queries: ``z`` of shape ``(*batch, R, n, K)``. Cost: ``n`` evaluations of ``f`` per replicate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference._validate import finite_scalar, positive_int
from reference.contract import Backend, Cost, Estimator, NoiseSpec, Queries, backend_paths
from reference.distributions import get_distribution

__all__ = ["REINFORCE", "REINFORCE_LOO", "reinforce_weights", "loo_weights"]


# --------------------------------------------------------------------------- the formulas
def reinforce_weights(f_z: np.ndarray, baseline: float) -> np.ndarray:
    """``w_i = (f_i - b) / n`` over the last axis (the ``n`` samples)."""
    return (f_z - baseline) / f_z.shape[-1]


def loo_weights(f_z: np.ndarray) -> np.ndarray:
    """``w_i = (f_i - fbar) / (n - 1)`` over the last axis, ``fbar`` the mean of all ``n``."""
    n = f_z.shape[-1]
    return (f_z - f_z.mean(axis=-1, keepdims=True)) / (n - 1)


def _queries_numpy(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    # params (B, K[, C]); u (B, R, n, K) -> z (B, R, n, K)
    return Queries(get_distribution(dist).sample(params, noise["u"]))


def _combine_numpy(weights_fn):
    def combine(dist: str, params: np.ndarray, queries: Queries, answers, opts: dict) -> np.ndarray:
        d = get_distribution(dist)
        w = weights_fn(answers.f_z, opts)  # (B, R, n)
        s = d.score(params, queries.z)  # (B, R, n, K[, C])
        w = w.reshape(w.shape + (1,) * (s.ndim - w.ndim))
        return (w * s).sum(axis=2)

    return combine


NUMPY_REINFORCE = Backend(_queries_numpy,
                          _combine_numpy(lambda f, o: reinforce_weights(f, o["baseline"])))
NUMPY_LOO = Backend(_queries_numpy, _combine_numpy(lambda f, o: loo_weights(f)))


# ---------------------------------------------------------------------------- the records
def _u_shape(K: int, C: int, opts: dict[str, Any]) -> tuple[int, ...]:
    return (opts["n"], K)


_U = NoiseSpec("u", "uniform", _u_shape,
               "u[..., r, i, k]: the uniform that draws z_k of sample i of replicate r "
               "(inverse CDF; see reference.distributions)")


def _check_reinforce(opts: dict[str, Any]) -> dict[str, Any]:
    opts["n"] = positive_int(opts["n"], "n", 1)
    opts["baseline"] = finite_scalar(opts["baseline"], "baseline")
    return opts


def _check_loo(opts: dict[str, Any]) -> dict[str, Any]:
    opts["n"] = positive_int(opts["n"], "n (REINFORCE-LOO needs n >= 2)", 2)
    return opts


REINFORCE = Estimator(
    name="reinforce",
    title="REINFORCE (score function) with n samples and a constant baseline",
    distributions=("bernoulli", "categorical"),
    unbiased=True,
    noise=(_U,),
    option_defaults={"n": 1, "baseline": 0.0},
    check_options=_check_reinforce,
    cost_fn=lambda K, C, o: Cost(o["n"]),
    backends=backend_paths("score_function", "REINFORCE"),
    exact_moments_path="verify.moments.score_function:reinforce_moments",
    references="Williams 1992 (Machine Learning 8); Glynn 1990",
    examples=({"n": 1}, {"n": 3, "baseline": 0.5}),
)

REINFORCE_LOO = Estimator(
    name="reinforce_loo",
    title="REINFORCE with the leave-one-out baseline, n >= 2 samples",
    distributions=("bernoulli", "categorical"),
    unbiased=True,
    noise=(_U,),
    option_defaults={"n": 2},
    check_options=_check_loo,
    cost_fn=lambda K, C, o: Cost(o["n"]),
    backends=backend_paths("score_function", "LOO"),
    exact_moments_path="verify.moments.score_function:reinforce_loo_moments",
    references="Kool, van Hoof, Welling 2019 (ICLR workshop, 'Buy 4 REINFORCE samples'); "
               "Salimans & Knowles 2014 (arXiv 1401.1022)",
    examples=({"n": 2}, {"n": 5}),
)
