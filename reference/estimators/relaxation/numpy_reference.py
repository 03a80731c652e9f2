"""Relaxation and perturbation estimators on factorial Bernoulli and categorical variables.

All estimate ``grad_params E_{z~q}[f(z)]`` (ascent direction) and are *biased* (except in
special cases); they need the gradient ``dy = grad_y f`` of a differentiable extension of ``f``
(``objective.relaxed``), asked for through the relaxed points ``Queries.y``. ``Queries.z``
holds the sampled configurations (``f`` there equals ``f_y`` at the one-hot points; only
``grad_y`` is used). Per-replicate outputs are averages over the ``n`` (or ``S``) samples of a
replicate.

Noise (uniforms in [0, 1); ``G = gumbel(u) = -log(-log(max(u, TINY)))``, ``TINY`` the smallest
normal float64, so ``u = 0`` stays finite):

* ``straight_through``: ``u (n, K)``; ``z = sample(params, u)`` (inverse CDF, see
  :mod:`reference.distributions`). Estimate ``J_softmax(alpha)^T dy`` at ``y = onehot(z)``:
  ``g_kc = p_kc (dy_kc - sum_c' p_kc' dy_kc')``; binary ``g_k = p_k (1 - p_k) dy_k``.
  (Bengio, Léonard, Courville 2013, arXiv 1308.3432.)
* ``gumbel_softmax`` (Jang, Gu, Poole 2017, arXiv 1611.01144; Maddison, Mnih, Teh 2017,
  arXiv 1611.00712): ``u (n, K, C)``; categorical ``y = softmax((alpha + G) / tau)``,
  ``g = (1/tau) J(y)^T dy(y)`` with ``J(y) = diag(y) - y y^T``. Binary Concrete with the same
  noise layout (``C = 2``): logistic noise ``L = G_1 - G_0`` (the difference of two Gumbels,
  which has the law of ``log u - log(1 - u)``; two uniforms so that one noise spec serves both
  distributions: the contract's shape function sees only ``K`` and ``C``), ``y = sigmoid((phi +
  L) / tau)``, ``g = (1/tau) y (1 - y) dy(y)``.
* ``st_gumbel_softmax``: the same noise; ``z = argmax(alpha + G)`` (ties: lowest index;
  binary ``z = 1[phi + L > 0]``), ``dy`` at ``onehot(z)``, ``g = (1/tau) J(y_soft)^T dy``.
* ``imle`` (Niepert, Minervini, Franceschi 2021, arXiv 2106.01798), categorical: ``u (S, K,
  C)``, ``eps = G``, ``z = argmax(alpha + eps)``, target ``z' = argmax(alpha + eps - lambda dy)``
  (the *same* ``eps``), ``g = (onehot(z) - onehot(z')) / lambda``; ``divide_by_lambda=False``
  omits the division (as some public code does; then it estimates ``lambda`` times the
  gradient).
* ``aimle`` (Minervini, Franceschi, Niepert, AAAI 2023, arXiv 2209.04862): two-sided target
  ``g = (onehot(argmax(alpha + eps + lambda dy)) - onehot(argmax(alpha + eps - lambda dy)))
  / (2 lambda)`` (``target="one_sided"`` gives I-MLE's ``(onehot(z) - onehot(z'))/lambda``).
  Adaptive ``lambda`` (as in the authors' public code ``imle/target.py``): ``lambda = beta
  ||alpha|| / ||dy||`` per sample (Frobenius norms of one problem's ``alpha`` and one sample's
  ``dy``; the public code takes them over the whole mini-batch), and a sample with
  ``lambda = 0`` or ``dy = 0`` contributes 0. ``beta`` is the state, passed in as an option;
  :func:`aimle_update` returns the next state from the per-sample numbers of non-zero entries
  (:func:`aimle_nonzeros`).

Queries: ``z`` int64 ``(*batch, R, n, K)``, ``y`` the points where ``grad f`` is needed; aux
``perturbed`` = ``alpha + G`` ``(*batch, R, S, K, C)`` (I-MLE/AIMLE), ``y_soft``
(ST-Gumbel-Softmax).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reference._validate import finite_scalar, float_array, positive_int
from reference.contract import Answers, Backend, Cost, Estimator, NoiseSpec, Queries, backend_paths
from reference.distributions import get_distribution, sigmoid, softmax
from reference.ksubset import gumbel

__all__ = ["STRAIGHT_THROUGH", "GUMBEL_SOFTMAX", "ST_GUMBEL_SOFTMAX", "IMLE", "AIMLE",
           "AIMLEState", "aimle_update", "onehot", "onehot_argmax", "softmax_jvp", "relaxed_sample",
           "perturbation_gradients", "imle_flags"]


# ------------------------------------------------------------------------ the formulas
def onehot(z: np.ndarray, C: int) -> np.ndarray:
    return (z[..., None] == np.arange(C)).astype(np.float64)


def softmax_jvp(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``J(y)^T dy`` with ``J(y) = diag(y) - y y^T`` per row: ``y (dy - <y, dy>)``."""
    return y * (dy - (y * dy).sum(axis=-1, keepdims=True))


def relaxed_sample(dist: str, params: np.ndarray, u: np.ndarray, tau: float) -> np.ndarray:
    """Gumbel-Softmax / binary Concrete points from ``u (B, R, n, K, C)``; params ``(B, K[, C])``.

    Categorical ``softmax((alpha + G)/tau)`` ``(B, R, n, K, C)``; binary ``sigmoid((phi + G_1 -
    G_0)/tau)`` ``(B, R, n, K)``.
    """
    G = gumbel(u)
    if dist == "bernoulli":
        logistic = G[..., 1] - G[..., 0]
        return sigmoid((params[:, None, None, :] + logistic) / tau)
    return softmax((params[:, None, None] + G) / tau)


def _hard(dist: str, params: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``argmax(alpha + G)`` (binary ``1[phi + G_1 - G_0 > 0]``), int64 ``(B, R, n, K)``."""
    G = gumbel(u)
    if dist == "bernoulli":
        return (params[:, None, None, :] + (G[..., 1] - G[..., 0]) > 0).astype(np.int64)
    return np.argmax(params[:, None, None] + G, axis=-1).astype(np.int64)


def _points(dist: str, z: np.ndarray, C: int) -> np.ndarray:
    return z.astype(np.float64) if dist == "bernoulli" else onehot(z, C)


# --- straight-through
def _st_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = get_distribution(dist).sample(params, noise["u"])  # (B, R, n, K)
    return Queries(z, {}, _points(dist, z, params.shape[-1]))


def _st_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                opts: dict) -> np.ndarray:
    dy = answers.grad_y
    if dist == "bernoulli":
        # p (1 - p) as sigmoid(phi) sigmoid(-phi): 1 - p is 0 at phi = 50 (the fast backends'
        # sigmoid_prime)
        sp = (sigmoid(params) * sigmoid(-params))[:, None, None, :]
        return (sp * dy).mean(axis=2)
    p = softmax(params)[:, None, None]
    return softmax_jvp(p, dy).mean(axis=2)


# --- Gumbel-Softmax and its straight-through variant
def _gs_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    y = relaxed_sample(dist, params, noise["u"], opts["tau"])
    return Queries(_hard(dist, params, noise["u"]), {}, y)


def _jvp(dist: str, y: np.ndarray, dy: np.ndarray, tau: float) -> np.ndarray:
    if dist == "bernoulli":
        return (y * (1.0 - y) * dy / tau).mean(axis=2)
    return (softmax_jvp(y, dy) / tau).mean(axis=2)


def _gs_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                opts: dict) -> np.ndarray:
    return _jvp(dist, queries.y, answers.grad_y, opts["tau"])


def _stgs_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    y_soft = relaxed_sample(dist, params, noise["u"], opts["tau"])
    z = _hard(dist, params, noise["u"])
    return Queries(z, {"y_soft": y_soft}, _points(dist, z, params.shape[-1]))


def _stgs_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                  opts: dict) -> np.ndarray:
    return _jvp(dist, queries.aux["y_soft"], answers.grad_y, opts["tau"])


# --- I-MLE and AIMLE (categorical)
def _perturb_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    perturbed = params[:, None, None] + gumbel(noise["u"])  # (B, R, S, K, C)
    z = np.argmax(perturbed, axis=-1).astype(np.int64)
    return Queries(z, {"perturbed": perturbed}, onehot(z, params.shape[-1]))


def perturbation_lambdas(params: np.ndarray, dy: np.ndarray, opts: dict) -> np.ndarray:
    """Per-sample ``lambda`` ``(B, R, S)``: ``lambda_`` or ``beta ||theta_b|| / ||dy||``
    (0 where ``dy = 0``). ``params (B, *event)``, ``dy (B, R, S, *event)``."""
    B, R, S = dy.shape[:3]
    if not opts.get("adaptive", False):
        return np.full((B, R, S), float(opts["lambda_"]))
    ev = tuple(range(3, dy.ndim))
    flat = params.reshape(B, int(np.prod(params.shape[1:], dtype=np.int64)))  # B may be 0
    norm_theta = np.sqrt((flat**2).sum(axis=1))[:, None, None]
    norm_dy = np.sqrt((dy**2).sum(axis=ev))
    safe = np.where(norm_dy > 0, norm_dy, 1.0)
    return np.where(norm_dy > 0, opts["beta"] * norm_theta / safe, 0.0)


def perturbation_gradients(map_fn, perturbed: np.ndarray, z: np.ndarray, dy: np.ndarray,
                           lam: np.ndarray, two_sided: bool, divide: bool) -> np.ndarray:
    """Per-sample I-MLE/AIMLE gradients ``(B, R, S, *event)``.

    ``map_fn(x)`` returns the MAP state (one-hot rows or a binary k-subset) of scores ``x``;
    ``z`` the MAP state of ``perturbed``. One-sided: ``(z - MAP(perturbed - lambda dy)) /
    lambda``; two-sided: ``(MAP(perturbed + lambda dy) - MAP(perturbed - lambda dy)) / (2
    lambda)``. Samples with ``lambda = 0`` give 0.
    """
    lam_b = lam.reshape(lam.shape + (1,) * (dy.ndim - 3))
    step = lam_b * dy
    minus = map_fn(perturbed - step)
    diff = map_fn(perturbed + step) - minus if two_sided else z - minus
    width = 2.0 * lam_b if two_sided else lam_b
    if divide:
        diff = diff / np.where(width > 0, width, 1.0)
    return np.where(lam_b > 0, diff, 0.0)


def imle_flags(opts: dict) -> tuple[float, bool, float, bool, bool]:
    """The I-MLE/AIMLE options as the fast kernels take them: ``(lambda_, adaptive, beta,
    two_sided, divide_by_lambda)`` (shared by the CPU and CUDA backends of both families)."""
    return (float(opts["lambda_"]), bool(opts.get("adaptive", False)), float(opts.get("beta", 1.0)),
            opts.get("target", "one_sided") == "two_sided", bool(opts.get("divide_by_lambda", True)))


def onehot_argmax(x: np.ndarray) -> np.ndarray:
    return onehot(np.argmax(x, axis=-1), x.shape[-1])


def _imle_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                  opts: dict) -> np.ndarray:
    dy = answers.grad_y
    lam = perturbation_lambdas(params, dy, opts)
    z = onehot(queries.z, params.shape[-1])
    g = perturbation_gradients(onehot_argmax, queries.aux["perturbed"], z, dy, lam,
                               opts.get("target", "one_sided") == "two_sided",
                               opts.get("divide_by_lambda", True))
    return g.mean(axis=2)


NUMPY_STRAIGHT_THROUGH = Backend(_st_queries, _st_combine)
NUMPY_GUMBEL_SOFTMAX = Backend(_gs_queries, _gs_combine)
NUMPY_ST_GUMBEL_SOFTMAX = Backend(_stgs_queries, _stgs_combine)
NUMPY_IMLE = Backend(_perturb_queries, _imle_combine)


# ------------------------------------------------------------------- AIMLE's λ state
@dataclass(frozen=True)
class AIMLEState:
    """AIMLE's adaptive state: ``beta`` (``lambda = beta ||theta|| / ||dy||``), the moving
    average ``nnz_ema`` of non-zero entries per sample, and the last ``beta`` update."""

    beta: float = 1.0
    nnz_ema: float = 1.0
    last_update: float = 0.0


def aimle_update(state: AIMLEState, nonzeros: np.ndarray, *, target_nnz: float = 1.0,
                 step: float = 1e-4, momentum: float = 0.0, decay: float = 0.9) -> AIMLEState:
    """The next state after one step (the rule of the authors' code, ``imle/target.py``).

    ``ema' = decay ema + (1 - decay) mean(nonzeros)``; ``update = (+step if ema' < target_nnz
    else -step) + momentum last_update``; ``beta' = max(beta + update, 0)``. ``nonzeros``: the
    number of non-zero entries of each per-sample gradient (:func:`aimle_nonzeros`).
    """
    nz = float_array(nonzeros, "nonzeros")
    if nz.size == 0:
        raise ValueError("nonzeros must not be empty")
    ema = decay * state.nnz_ema + (1.0 - decay) * float(nz.mean())
    update = (step if ema < target_nnz else -step) + momentum * state.last_update
    return AIMLEState(max(state.beta + update, 0.0), ema, update)


# ---------------------------------------------------------------------------- records
def _n_shape(K: int, C: int, o: dict[str, Any]) -> tuple[int, ...]:
    return (o["n"], K)


def _nkc_shape(K: int, C: int, o: dict[str, Any]) -> tuple[int, ...]:
    return (o["n"], K, C)


def _skc_shape(K: int, C: int, o: dict[str, Any]) -> tuple[int, ...]:
    return (o["S"], K, C)


def _positive_float(x: object, name: str) -> float:
    v = finite_scalar(x, name)
    if not v > 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    return v


def _check_n(o: dict[str, Any]) -> dict[str, Any]:
    o["n"] = positive_int(o["n"], "n")
    return o


def _check_tau(o: dict[str, Any]) -> dict[str, Any]:
    o["tau"] = _positive_float(o["tau"], "tau")
    return _check_n(o)


def check_perturb_options(o: dict[str, Any]) -> dict[str, Any]:
    """Validate I-MLE/AIMLE options (shared with the k-subset records)."""
    o["S"] = positive_int(o["S"], "S")
    o["lambda_"] = _positive_float(o["lambda_"], "lambda_")
    if "divide_by_lambda" in o and not isinstance(o["divide_by_lambda"], (bool, np.bool_)):
        raise TypeError("divide_by_lambda must be a bool")
    if "target" in o and o["target"] not in ("one_sided", "two_sided"):
        raise ValueError(f"target must be 'one_sided' or 'two_sided', got {o['target']!r}")
    if "adaptive" in o:
        if not isinstance(o["adaptive"], (bool, np.bool_)):
            raise TypeError("adaptive must be a bool")
        o["beta"] = finite_scalar(o["beta"], "beta")
        if o["beta"] < 0:
            raise ValueError(f"beta must be >= 0, got {o['beta']}")
    return o


_U_ST = NoiseSpec("u", "uniform", _n_shape,
                  "u[..., r, i, k]: draws z_k of sample i by the inverse CDF (reference.distributions)")
_U_GS = NoiseSpec("u", "uniform", _nkc_shape,
                  "u[..., r, i, k, c]: Gumbel G_kc = -log(-log(max(u, TINY))) of sample i; binary: "
                  "logistic noise G_k1 - G_k0")
_U_PERTURB = NoiseSpec("u", "uniform", _skc_shape,
                       "u[..., r, s, k, c]: Gumbel perturbation eps_kc = -log(-log(max(u, TINY))) of "
                       "sample s, shared by the sample and its targets")

_JANG = ("Jang, Gu, Poole 2017 (arXiv 1611.01144); Maddison, Mnih, Teh 2017 (arXiv 1611.00712)")

STRAIGHT_THROUGH = Estimator(
    name="straight_through",
    title="Straight-through: J_softmax(alpha)^T grad f at onehot(z), z ~ q",
    distributions=("bernoulli", "categorical"),
    unbiased=False,
    noise=(_U_ST,),
    option_defaults={"n": 1},
    check_options=_check_n,
    cost_fn=lambda K, C, o: Cost(o["n"], o["n"]),
    backends=backend_paths("relaxation", "STRAIGHT_THROUGH"),
    exact_moments_path="verify.moments.relaxation:straight_through_moments",
    references="Bengio, Léonard, Courville 2013 (arXiv 1308.3432)",
    examples=({"n": 1}, {"n": 3}),
)

GUMBEL_SOFTMAX = Estimator(
    name="gumbel_softmax",
    title="Gumbel-Softmax / binary Concrete relaxation with temperature tau",
    distributions=("bernoulli", "categorical"),
    unbiased=False,
    noise=(_U_GS,),
    option_defaults={"tau": 1.0, "n": 1},
    check_options=_check_tau,
    cost_fn=lambda K, C, o: Cost(o["n"], o["n"]),
    backends=backend_paths("relaxation", "GUMBEL_SOFTMAX"),
    exact_moments_path="verify.moments.relaxation:gumbel_softmax_moments",
    references=_JANG,
    examples=({"tau": 1.0}, {"tau": 0.5, "n": 2}),
)

ST_GUMBEL_SOFTMAX = Estimator(
    name="st_gumbel_softmax",
    title="Straight-through Gumbel-Softmax: grad f at onehot(argmax(alpha + G)), soft Jacobian",
    distributions=("bernoulli", "categorical"),
    unbiased=False,
    noise=(_U_GS,),
    option_defaults={"tau": 1.0, "n": 1},
    check_options=_check_tau,
    cost_fn=lambda K, C, o: Cost(o["n"], o["n"]),
    backends=backend_paths("relaxation", "ST_GUMBEL_SOFTMAX"),
    exact_moments_path="verify.moments.relaxation:st_gumbel_softmax_moments",
    references=_JANG,
    examples=({"tau": 1.0}, {"tau": 0.5, "n": 2}),
)

IMLE = Estimator(
    name="imle",
    title="I-MLE with Gumbel perturb-and-MAP and the one-sided target theta - lambda dy",
    distributions=("categorical",),
    unbiased=False,
    noise=(_U_PERTURB,),
    option_defaults={"lambda_": 1.0, "divide_by_lambda": True, "S": 1},
    check_options=check_perturb_options,
    cost_fn=lambda K, C, o: Cost(o["S"], o["S"]),
    backends=backend_paths("relaxation", "IMLE"),
    exact_moments_path="verify.moments.relaxation:imle_moments",
    references="Niepert, Minervini, Franceschi 2021 (NeurIPS, arXiv 2106.01798)",
    examples=({"lambda_": 1.0}, {"lambda_": 0.5, "S": 2, "divide_by_lambda": False}),
)

AIMLE = Estimator(
    name="aimle",
    title="Adaptive I-MLE: two-sided target and adaptive lambda (Gumbel perturb-and-MAP)",
    distributions=("categorical",),
    unbiased=False,
    noise=(_U_PERTURB,),
    option_defaults={"lambda_": 1.0, "target": "two_sided", "adaptive": False, "beta": 1.0,
                     "S": 1},
    check_options=check_perturb_options,
    cost_fn=lambda K, C, o: Cost(o["S"], o["S"]),
    backends=backend_paths("relaxation", "IMLE"),
    exact_moments_path="verify.moments.relaxation:imle_moments",
    references="Minervini, Franceschi, Niepert 2023 (AAAI, arXiv 2209.04862)",
    examples=({"lambda_": 1.0}, {"target": "one_sided", "lambda_": 0.5},
              {"adaptive": True, "beta": 0.5, "S": 2}),
)
