"""Control-variate estimators of the ARM paper's baselines: NVIL, MuProp, double control variates.

All three estimate ``grad_params E_{z~q}[f(z)]`` (ascent direction) for factorial Bernoulli
(``phi``, ``(..., K)``, ``p = sigmoid(phi)``) or categorical (``alpha``, ``(..., K, C)``,
``p = softmax(alpha)``) variables. Their noise enters only through ``n`` i.i.d. discrete
samples per replicate, so the oracle's moments are exact
(:mod:`verify.moments.control_variates`). Write ``x(z)`` for the sample as a point of the
relaxed domain (``z`` itself for Bernoulli, ``onehot(z)`` for categorical), ``s(z) = x(z) - p =
grad log q(z)`` for its score, and ``J^T w`` for the Jacobian-transpose product of the mean
``p(params)``: ``p (1 - p) w`` for Bernoulli, ``p * (w - <p, w>)`` row by row for categorical.
Every backend computes ``s`` and ``J^T w`` accurate relative to themselves at saturated logits
(:meth:`reference.distributions.Distribution.score`; ``sigmoid(phi) sigmoid(-phi) w`` and
``p_c sum_c' p_c' (w_c - w_c')``): the subtractions ``1 - p`` and ``w_c - <p, w>`` give 0 at
``phi = 50`` where the truth is of order ``1.9e-22``.

* ``nvil`` (Mnih & Gregor 2014, arXiv 1402.0030, "Algorithm 1"): REINFORCE with a given
  baseline and NVIL's variance normalization, the state passed in explicitly:
  ``g = (1/n) sum_i (f(z_i) - b - c) s(z_i) / max(1, sqrt(v))``. ``b`` (option ``baseline``) is
  what the learned input-dependent baseline ``C_psi(x)`` returns at this input, ``c`` and
  ``v`` the running mean and variance of the centred signal ``f - b`` (options ``c``, ``v``).
  For a given state the mean is ``grad / max(1, sqrt(v))``: the normalization rescales the
  step, so the record is marked biased (unbiased exactly when ``v <= 1``).
  :func:`nvil_update` returns the next state from a mini-batch of signals (Algorithm 1:
  ``c <- a c + (1 - a) mean(l)``, ``v <- a v + (1 - a) var(l)``, ``a = 0.8``). In the paper
  the update runs on the current mini-batch *before* the signal is normalized; that makes the
  state depend on the samples, so the exact moments here are for a state held fixed.
  Public code read: tensorflow/models ``research/rebar/rebar.py`` (``get_nvil_gradient``): it
  subtracts the baseline network's output but has **no** variance normalization and no
  running mean ``c`` (``c = 0, v <= 1`` here gives the same estimate).
* ``muprop`` (Gu, Levine, Sutskever & Mnih 2016, arXiv 1511.05176):
  first-order Taylor control variate around the mean-field point ``mu = p``:
  ``g = (1/n) sum_i [f(z_i) - f(mu) - grad f(mu) . (x(z_i) - mu)] s(z_i) + J^T grad f(mu)``.
  The last term is the analytic correction ``grad_params E[grad f(mu) . (x - mu)]`` with
  ``grad f(mu)`` held fixed; unbiased for every differentiable extension ``f(y)``. Public code
  read: ``research/rebar/rebar.py`` (``get_muprop_gradient``): it scales ``f(mu)`` and the
  linear term by two learned factors in ``(0, 2)`` and subtracts a learned baseline network;
  here both factors are 1 and there is no extra baseline, as in the paper's MuProp.
* ``double_cv`` (Titsias & Shi 2022, arXiv 2111.05300), Bernoulli, ``n >= 2``: the
  leave-one-out baseline plus the global Taylor control variate built from ``grad f`` at the
  *discrete* samples ``d_j = grad_y f(z_j)`` and a scalar coefficient ``alpha_cv``:
  ``c_i = alpha_cv gbar_{-i} . s(z_i)`` with ``gbar_{-i} = (1/(n-1)) sum_{j != i} d_j``, then
  ``g = 1/(n-1) sum_i (a_i - abar) s(z_i) - alpha_cv p (1 - p) dbar`` with ``a_i = f(z_i) + c_i``,
  ``abar`` the mean of the ``a_i`` and ``dbar`` the mean of the ``d_j``. Unbiased for every
  ``alpha_cv``: ``E[c_i s_i] = alpha_cv diag(p (1 - p)) E[d]`` (``d_j`` is independent of
  ``s_i`` for ``j != i``), which the last term removes; the cross terms ``c_j s_i`` have mean 0.
  ``alpha_cv = 0`` is REINFORCE-LOO. Public code read: thjashin/double-cv ``src/networks.py``
  (``grad_type == "double_cv"``): the same formula written out for ``n = 4`` with a trainable
  coefficient ``self.alpha`` (renamed ``alpha_cv`` here: ``alpha`` is our categorical logits);
  there ``f`` is the loss ``-ELBO``, so it estimates the loss's gradient with the same
  formula. We take any ``n >= 2`` and a fixed coefficient (the code learns it). The formula
  follows that code, and the oracle confirms unbiasedness.

Equation numbers: none of the three papers' texts could be read with the project's search
tools, so none are cited. Tried (issue 10): the stored web pages of arXiv 1402.0030
(arxiv-vanity, groundai), 1511.05176 (deepai, liner, research.google pub45442) and 2111.05300
(ar5iv, scholarfeed, openreview) return only their abstracts and introductions, and the code
index holds no LaTeX source of any of them (thjashin/double-cv has code and a notebook only).
NVIL's "Algorithm 1", its running mean and variance with decay ``0.8``, is cited from memory
of the paper: the public code read has no such statistics. Every formula here is checked by
the exact oracle instead.

Noise: ``u`` of shape ``(*batch, R, n, K)``, Uniform[0, 1); sample ``i`` is
``z_i = sample(params, u[..., i, :])`` by the inverse CDF of :mod:`reference.distributions`
(the same mapping as REINFORCE, so the estimators can be compared sample by sample).

Queries: ``z`` int64 ``(*batch, R, n, K)``; relaxed points ``y``: MuProp ``(*batch, R, 1,
*event)`` holding ``mu`` (``f(mu)`` and ``grad f(mu)``), double CV ``(*batch, R, n, K)``
holding the samples as floats (only ``grad f`` is used there; the values come from
``f_z``); NVIL none.

Cost per replicate: NVIL ``n`` evaluations of ``f``; MuProp ``n + 1`` evaluations and 1
gradient (at ``mu``); double CV ``n`` evaluations and ``n`` gradients (at the samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reference._validate import finite_scalar, float_array, positive_int
from reference.contract import Answers, Backend, Cost, Estimator, NoiseSpec, Queries, backend_paths
from reference.distributions import get_distribution, sigmoid, softmax

__all__ = ["NVIL", "MUPROP", "DOUBLE_CV", "NVILState", "nvil_update", "nvil_scale", "mean_jvp"]


# --------------------------------------------------------------------------- the formulas
def nvil_scale(v: float) -> float:
    """NVIL's normalization factor ``1 / max(1, sqrt(v))``."""
    return 1.0 / max(1.0, float(np.sqrt(v)))


def mean_jvp(dist: str, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``J^T w`` for the mean map ``params -> p``: Bernoulli ``p (1 - p) w``, categorical
    ``p (w - <p, w>)`` per row. ``p`` broadcasts against ``w`` ``(..., K[, C])``.

    From ``p`` alone ``1 - p`` cannot be recovered at saturated logits (it is 0 at ``phi =
    50``); MuProp's combine computes the same product from the logits instead, accurate
    relative to itself there."""
    if dist == "bernoulli":
        return p * (1.0 - p) * w
    return p * (w - (p * w).sum(axis=-1, keepdims=True))


def _mean_jvp_accurate(dist: str, params: np.ndarray, w: np.ndarray) -> np.ndarray:
    """:func:`mean_jvp` from the logits, accurate relative to each entry's terms at saturated
    logits (the arithmetic of the fast backends): Bernoulli ``sigmoid(phi) sigmoid(-phi) w``
    (``p (1 - p)`` is 0 at ``phi = 50``, for a true 1.9e-22), categorical ``p_c sum_c' p_c'
    (w_c - w_c')`` summed over ``c'`` in order, ``p = e / S`` with ``S`` summed in order
    (``p_c (w_c - <p, w>)`` cancels for the dominant category). ``params`` broadcasts against
    ``w``."""
    if dist == "bernoulli":
        return sigmoid(params) * sigmoid(-params) * w
    e = np.exp(params - params.max(axis=-1, keepdims=True))
    p = e / np.cumsum(e, axis=-1)[..., -1:]
    p, w = np.broadcast_arrays(p, w)
    terms = p[..., None, :] * (w[..., :, None] - w[..., None, :])  # (..., c, c')
    return p * np.cumsum(terms, axis=-1)[..., -1]


def _probs(dist: str, params: np.ndarray) -> np.ndarray:
    return sigmoid(params) if dist == "bernoulli" else softmax(params)


def _points(dist: str, z: np.ndarray, C: int) -> np.ndarray:
    if dist == "bernoulli":
        return z.astype(np.float64)
    return (z[..., None] == np.arange(C)).astype(np.float64)


def _score(dist: str, params: np.ndarray, z: np.ndarray) -> np.ndarray:
    # params (B, *event), z (B, R, n, K) -> (B, R, n, *event)
    return get_distribution(dist).score(params, z)


def _expand(w: np.ndarray, like: np.ndarray) -> np.ndarray:
    return w.reshape(w.shape + (1,) * (like.ndim - w.ndim))


def _sample_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    return Queries(get_distribution(dist).sample(params, noise["u"]))


# --- NVIL
def _nvil_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                  opts: dict) -> np.ndarray:
    s = _score(dist, params, queries.z)
    n = queries.z.shape[2]
    w = (answers.f_z - (opts["baseline"] + opts["c"])) / n * nvil_scale(opts["v"])
    return (_expand(w, s) * s).sum(axis=2)


# --- MuProp
def _muprop_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = get_distribution(dist).sample(params, noise["u"])
    B, R = z.shape[:2]
    mu = _probs(dist, params)[:, None, None]
    return Queries(z, {}, np.ascontiguousarray(np.broadcast_to(mu, (B, R, 1) + params.shape[1:])))


def _muprop_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                    opts: dict) -> np.ndarray:
    s = _score(dist, params, queries.z)  # (B, R, n, *event)
    n = queries.z.shape[2]
    assert answers.f_y is not None and answers.grad_y is not None  # MuProp queries mu
    f_mu = answers.f_y[:, :, :1]  # (B, R, 1)
    d_mu = answers.grad_y[:, :, :1]  # (B, R, 1, *event)
    ev = tuple(range(3, s.ndim))
    linear = (d_mu * s).sum(axis=ev)  # grad f(mu) . (x(z_i) - mu), (B, R, n)
    w = (answers.f_z - f_mu - linear) / n
    return (_expand(w, s) * s).sum(axis=2) + _mean_jvp_accurate(dist, params[:, None], d_mu[:, :, 0])


# --- double control variates (Bernoulli)
def _dcv_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = get_distribution(dist).sample(params, noise["u"])
    return Queries(z, {}, z.astype(np.float64))


def _dcv_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                 opts: dict) -> np.ndarray:
    a_cv = opts["alpha_cv"]
    s = _score(dist, params, queries.z)  # (B, R, n, K), accurate relative to itself
    d = answers.grad_y  # (B, R, n, K)
    assert d is not None  # double CV queries grad f at the samples
    n = s.shape[2]
    d_sum = d.sum(axis=2, keepdims=True)
    g_loo = (d_sum - d) / (n - 1)  # gbar_{-i}
    c = a_cv * (g_loo * s).sum(axis=-1)  # (B, R, n)
    a = answers.f_z + c
    w = (a - a.mean(axis=2, keepdims=True)) / (n - 1)
    sp = (sigmoid(params) * sigmoid(-params))[:, None]  # p (1 - p) without 1 - p, (B, 1, K)
    return (w[..., None] * s).sum(axis=2) - a_cv * sp * d_sum[:, :, 0] / n


NUMPY_NVIL = Backend(_sample_queries, _nvil_combine)
NUMPY_MUPROP = Backend(_muprop_queries, _muprop_combine)
NUMPY_DOUBLE_CV = Backend(_dcv_queries, _dcv_combine)


# ------------------------------------------------------------------------- NVIL's state
@dataclass(frozen=True)
class NVILState:
    """NVIL's running statistics of the centred learning signal ``l = f - b``: mean ``c`` and
    variance ``v`` (Mnih & Gregor 2014, Algorithm 1). Pass them as the options ``c`` and
    ``v`` of the ``nvil`` record."""

    c: float = 0.0
    v: float = 1.0


def nvil_update(state: NVILState, signals: object, decay: float = 0.8) -> NVILState:
    """The next state from a mini-batch of centred signals ``l_i = f(z_i) - b_i`` (any shape,
    at least one entry): ``c' = decay c + (1 - decay) mean(l)``, ``v' = decay v + (1 - decay)
    var(l)`` (population variance, as ``Var`` in Algorithm 1)."""
    sig = float_array(signals, "signals")
    if sig.size == 0:
        raise ValueError("signals must not be empty")
    a = finite_scalar(decay, "decay")
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"decay must lie in [0, 1], got {a}")
    return NVILState(a * state.c + (1 - a) * float(sig.mean()),
                     a * state.v + (1 - a) * float(sig.var()))


# ---------------------------------------------------------------------------- records
def _u_shape(K: int, C: int, opts: dict[str, Any]) -> tuple[int, ...]:
    return (opts["n"], K)


_U = NoiseSpec("u", "uniform", _u_shape,
               "u[..., r, i, k]: the uniform that draws z_k of sample i of replicate r "
               "(inverse CDF; see reference.distributions)")


def _finite(x: object, name: str) -> float:
    arr = float_array(x, name)
    if arr.ndim:
        hint = (" (a per-data-point baseline is subtracted from the objective's values instead: "
                "reference.models.controls)") if name == "baseline" else ""
        raise TypeError(f"{name} must be a single number, got an array of shape {arr.shape}{hint}")
    return float(arr)


def _check_nvil(o: dict[str, Any]) -> dict[str, Any]:
    o["n"] = positive_int(o["n"], "n")
    o["baseline"] = _finite(o["baseline"], "baseline")
    o["c"] = _finite(o["c"], "c")
    o["v"] = _finite(o["v"], "v")
    if o["v"] < 0:
        raise ValueError(f"v (NVIL's running variance) must be >= 0, got {o['v']}")
    return o


def _check_muprop(o: dict[str, Any]) -> dict[str, Any]:
    o["n"] = positive_int(o["n"], "n")
    return o


def _check_dcv(o: dict[str, Any]) -> dict[str, Any]:
    o["n"] = positive_int(o["n"], "n (double control variates need n >= 2)", 2)
    o["alpha_cv"] = _finite(o["alpha_cv"], "alpha_cv")
    return o


NVIL = Estimator(
    name="nvil",
    title="NVIL: REINFORCE with a given baseline value and variance normalization (state c, v)",
    distributions=("bernoulli", "categorical"),
    unbiased=False,
    noise=(_U,),
    option_defaults={"n": 1, "baseline": 0.0, "c": 0.0, "v": 1.0},
    check_options=_check_nvil,
    cost_fn=lambda K, C, o: Cost(o["n"]),
    backends=backend_paths("control_variates", "NVIL"),
    exact_moments_path="verify.moments.control_variates:nvil_moments",
    references="Mnih & Gregor 2014 (ICML, arXiv 1402.0030)",
    examples=({"n": 1, "baseline": 0.3}, {"n": 3, "baseline": -0.2, "c": 0.1, "v": 4.0}),
)

MUPROP = Estimator(
    name="muprop",
    title="MuProp: first-order Taylor control variate at the mean-field point, with correction",
    distributions=("bernoulli", "categorical"),
    unbiased=True,
    noise=(_U,),
    option_defaults={"n": 1},
    check_options=_check_muprop,
    cost_fn=lambda K, C, o: Cost(o["n"] + 1, 1),
    backends=backend_paths("control_variates", "MUPROP"),
    exact_moments_path="verify.moments.control_variates:muprop_moments",
    references="Gu, Levine, Sutskever & Mnih 2016 (ICLR, arXiv 1511.05176)",
    examples=({"n": 1}, {"n": 3}),
)

DOUBLE_CV = Estimator(
    name="double_cv",
    title="Double control variates: leave-one-out baseline plus a global Taylor control variate",
    distributions=("bernoulli",),
    unbiased=True,
    noise=(_U,),
    option_defaults={"n": 2, "alpha_cv": 1.0},
    check_options=_check_dcv,
    cost_fn=lambda K, C, o: Cost(o["n"], o["n"]),
    backends=backend_paths("control_variates", "DOUBLE_CV"),
    exact_moments_path="verify.moments.control_variates:double_cv_moments",
    references="Titsias & Shi 2022 (AISTATS, arXiv 2111.05300)",
    examples=({"n": 2, "alpha_cv": 1.0}, {"n": 4, "alpha_cv": 0.5}),
)
