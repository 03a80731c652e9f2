"""REBAR and RELAX on factorial Bernoulli variables: unbiased estimators whose control variate
comes from a continuous relaxation.

Both estimate ``grad_phi E_{b~q}[f(b)]`` (ascent direction), ``q`` factorial Bernoulli with
logits ``phi`` ``(..., K)``, ``theta = sigmoid(phi)``. The categorical versions (REBAR's
appendix, RELAX section 3.2) are not implemented.

Noise, per sample ``i`` of a replicate: two uniforms ``u``, ``v`` ``(K,)`` (arrays ``u``, ``v``
of shape ``(*batch, R, n, K)``, Uniform[0, 1); ``log`` of a uniform is taken at
``max(u, TINY)``, ``TINY`` the smallest normal float64, so ``u = 0`` stays finite).

* The sample: ``b = 1[u < theta]``, the project's Bernoulli sampler
  (:mod:`reference.distributions`), so REBAR with ``eta = 0`` is REINFORCE on the same ``u``.
* Its logistic relaxation: ``z = phi + log(1 - u) - log(u)``, so that ``b = H(z) = 1[z > 0]``.
* The conditional relaxation ``z~ ~ p(z | b)`` from ``v``: given ``b = 1`` the uniform is
  ``v theta`` and ``z~ = softplus(phi + log(1 - v)) - log(v)``; given ``b = 0`` it is
  ``theta + v (1 - theta)`` and ``z~ = log(1 - v) - softplus(log(v) - phi)``. With ``b`` held
  fixed, ``dz~/dphi = sigmoid(phi + log(1 - v))`` (``b = 1``) or ``sigmoid(log(v) - phi)``
  (``b = 0``); ``dz/dphi = 1``.
* Relaxed points (temperature ``tau``, the papers' ``lambda``): ``y = sigmoid(z / tau)`` and
  ``y~ = sigmoid(z~ / tau)``, in ``(0, 1)^K``.

Estimators, averaged over the ``n`` samples of a replicate (``c`` a surrogate of the
relaxed point, ``dc`` its gradient in ``y``; the chain rule through ``y = sigmoid(z / tau)``
gives ``d/dphi_k c = dc_k y_k (1 - y_k) / tau * dz_k/dphi_k``):

* ``rebar`` (Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein 2017, arXiv 1703.07370; the
  single-sample estimator with the conditional marginalization ``z~ ~ p(z | b)``): ``c = eta f``,
  ``g = [f(b) - eta f(y~)] (b - theta) + eta d/dphi f(y) - eta d/dphi f(y~)``.
  Unbiased for every ``eta`` and ``tau > 0``; ``eta = 0`` is REINFORCE without baseline.
* ``relax`` (Grathwohl, Choi, Wu, Roeder & Duvenaud 2018, arXiv 1711.00123; the estimator
  for discrete variables with the conditional ``z~``):
  ``g = [f(b) - c(y~)] (b - theta) + d/dphi c(y) - d/dphi c(y~)`` with ``c = eta s``;
  ``s`` is the option ``surrogate``: ``None`` (default) means ``s = f``, which is REBAR on
  the same noise. Unbiased for every differentiable surrogate.

The surrogate protocol (option ``surrogate``): any object with a method
``relaxed(y) -> (values, grads)`` like :mod:`reference.objectives`: ``y`` float64 of shape
``(..., K)`` with entries in ``(0, 1)`` (the relaxed points ``sigmoid(z / tau)``), ``values``
of shape ``(...)``, ``grads = d c / d y`` of the shape of ``y``. The surrogate is a function
of ``y``; as ``y = sigmoid(z / tau)`` is one-to-one for a fixed ``tau``, every differentiable
``c(z)`` of the paper can be written this way, and the estimator applies ``dy/dz = y (1 - y)
/ tau`` itself (RELAX needs ``dc/dz`` at ``z`` and at ``z~``). It is part of the estimator,
not of the objective: with a surrogate, the objective is asked for values at ``b`` only
(``f`` need not be differentiable), and the combine phase evaluates the surrogate on the
points in ``Queries.aux["points"]``. :class:`QuadraticSurrogate` is a small example.

Queries: ``z`` int64 ``(*batch, R, n, K)`` (the ``b``); relaxed points ``(*batch, R, 2n, K)``,
``[y_1..y_n, y~_1..y~_n]``: in ``Queries.y`` when the objective is the surrogate (REBAR,
RELAX without surrogate), else in ``aux["points"]``; ``aux["dzt"]`` ``(*batch, R, n, K)``
holds ``dz~/dphi``.

Cost per replicate: REBAR ``n`` evaluations of ``f`` at ``b`` and ``2n`` relaxed evaluations
(values and gradients at ``y`` and ``y~``; the value at ``y`` is not used): ``Cost(3n, 2n)``.
RELAX with a surrogate: ``Cost(n, 0)`` for the objective, plus ``2n`` surrogate evaluations
with gradients.

Equation numbers: the papers' texts were not available to us (only a draft of the RELAX
paper, ``paper/generalized_rebar.tex`` of duvenaud/relax, whose REBAR formula is the one
above), so none are cited; the oracle confirms unbiasedness for every ``eta``, ``tau`` and
surrogate the tests draw.

Public code read, and where our formula differs:

* tensorflow/models ``research/rebar/rebar.py`` (``_random_sample``, ``_u_to_v``,
  ``_create_gumbel_control_variate``, ``get_rebar_gradient``): ``z = log_alpha + log u - log(1
  - u)``, ``b = 1[z > 0]``, i.e. ``b = 1[u > 1 - theta]``; we use ``1 - u`` in place of ``u``
  (same law) so ``b`` follows the project's sampler. By default the code *ties* ``v`` to
  ``u`` (``_u_to_v``: ``v`` is ``u`` itself, with the gradient of the conditional sample);
  we draw ``v`` independently as in the paper. The code also subtracts a learned baseline
  network from ``f(b)`` and multiplies the control variate by a learned ``eta`` per layer
  (``2 sigmoid(.)``), ``_u_to_v`` clips at ``eps = 1e-8`` and the logs go through
  ``U.safe_log_prob`` (``utils.py``, not read); here ``eta`` and ``tau`` are given, there is
  no extra baseline, and only ``log(0)`` is guarded (by ``TINY``). Signs: the
  code minimizes ``-ELBO``; ours is the ascent direction of ``E[f]``.
* google-research ``disarm/binary/networks.py`` (``get_relax_parameters``, read as an
  excerpt; the same code is in thjashin/double-cv ``src/networks.py``): the same ``z``,
  ``b = 1[z > 0]`` and ``v' = b (v theta + 1 - theta) + (1 - b) v (1 - theta)``, ``z~ =
  logits + logit(v')``, with a learned temperature and scaling factor (the double-cv copy's
  ``logit_func`` clips probabilities at ``1e-6``); we reach the same law
  with ``1 - u``, ``1 - v`` in place of ``u``, ``v`` and compute ``z~`` in the softplus form
  above (stable for logits up to 50). duvenaud/relax ``relax-autograd/relax.py`` was not read
  (DESIGN.md notes that it relaxes ``sigmoid((theta + logit u)/tau)`` with ``theta`` a
  probability).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reference._validate import float_array, positive_int
from reference.contract import Answers, Backend, Cost, Estimator, NoiseSpec, Queries, backend_paths
from reference.distributions import sigmoid

__all__ = ["REBAR", "RELAX", "QuadraticSurrogate", "rebar_points", "surrogate_answers", "TINY"]

#: smallest positive normal float64, the guard of ``log(u)`` at ``u = 0``
TINY = 2.2250738585072014e-308


# --------------------------------------------------------------------------- the formulas
def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))`` in the two-branch form of the device code."""
    x = np.asarray(x, dtype=np.float64)
    pos = x > 0
    return np.where(pos, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(np.minimum(x, 0.0))))


def rebar_points(phi: np.ndarray, u: np.ndarray, v: np.ndarray, tau: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sample and its relaxations from ``u, v`` ``(..., K)``; ``phi`` broadcasts.

    Returns ``b`` int64, ``y = sigmoid(z/tau)``, ``y~ = sigmoid(z~/tau)`` and ``dz~/dphi``,
    all of the shape of ``u``.
    """
    theta = sigmoid(phi)
    b = (u < theta).astype(np.int64)
    lu = np.log(np.maximum(u, TINY))
    z = phi + np.log1p(-u) - lu
    lv, l1v = np.log(np.maximum(v, TINY)), np.log1p(-v)
    zt = np.where(b == 1, softplus(phi + l1v) - lv, l1v - softplus(lv - phi))
    dzt = np.where(b == 1, sigmoid(phi + l1v), sigmoid(lv - phi))
    return b, sigmoid(z / tau), sigmoid(zt / tau), dzt


def surrogate_answers(surrogate: Any, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``surrogate.relaxed(points)``: values ``points.shape[:-1]`` and gradients
    ``points.shape``, float64, checked for shape and finiteness."""
    vals, grads = surrogate.relaxed(points)
    vals = np.broadcast_to(float_array(vals, "surrogate values"), points.shape[:-1])
    grads = np.broadcast_to(float_array(grads, "surrogate gradients"), points.shape)
    return np.ascontiguousarray(vals), np.ascontiguousarray(grads)


def _queries_numpy(dist: str, phi: np.ndarray, noise: dict, opts: dict) -> Queries:
    # phi (B, K); u, v (B, R, n, K)
    b, y, yt, dzt = rebar_points(phi[:, None, None], noise["u"], noise["v"], opts["tau"])
    points = np.concatenate([y, yt], axis=2)  # (B, R, 2n, K)
    if opts.get("surrogate") is None:
        return Queries(b, {"dzt": dzt}, points)
    return Queries(b, {"dzt": dzt, "points": points})


def control_answers(queries: Queries, answers: Answers, opts: dict
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The surrogate's values ``(B, R, 2n)`` and gradients ``(B, R, 2n, K)`` at the relaxed
    points, and those points: from the objective's answers, or from the surrogate."""
    if opts.get("surrogate") is None:
        assert answers.f_y is not None and answers.grad_y is not None and queries.y is not None
        return answers.f_y, answers.grad_y, queries.y
    points = queries.aux["points"]
    vals, grads = surrogate_answers(opts["surrogate"], np.asarray(points, dtype=np.float64))
    return vals.astype(points.dtype), grads.astype(points.dtype), points


def _combine_numpy(dist: str, phi: np.ndarray, queries: Queries, answers: Answers,
                   opts: dict) -> np.ndarray:
    eta, tau = opts["eta"], opts["tau"]
    cvals, dc, points = control_answers(queries, answers, opts)
    n = queries.z.shape[2]
    theta = sigmoid(phi)[:, None, None]
    y, yt = points[:, :, :n], points[:, :, n:]
    w = (answers.f_z - eta * cvals[:, :, n:])[..., None]
    g = w * (queries.z - theta) + eta * dc[:, :, :n] * y * (1.0 - y) / tau \
        - eta * dc[:, :, n:] * yt * (1.0 - yt) / tau * queries.aux["dzt"]
    return g.sum(axis=2) / n


NUMPY_REBAR = Backend(_queries_numpy, _combine_numpy)
NUMPY_RELAX = Backend(_queries_numpy, _combine_numpy)


# ------------------------------------------------------------------- an example surrogate
class QuadraticSurrogate:
    """``c(y) = scale * sum_k (y_k - t)^2`` for any ``K``, gradient ``2 scale (y - t)``: a
    small surrogate with the protocol of the ``surrogate`` option."""

    def __init__(self, scale: float = 1.0, t: float = 0.5) -> None:
        self.scale = float(float_array(scale, "scale"))
        self.t = float(float_array(t, "t"))

    def relaxed(self, y: object) -> tuple[np.ndarray, np.ndarray]:
        y = float_array(y, "y")
        return self.scale * ((y - self.t) ** 2).sum(axis=-1), 2.0 * self.scale * (y - self.t)

    def __repr__(self) -> str:
        return f"reference.estimators.rebar.QuadraticSurrogate({self.scale!r}, {self.t!r})"


# ---------------------------------------------------------------------------- records
def _nk_shape(K: int, C: int, o: dict[str, Any]) -> tuple[int, ...]:
    return (o["n"], K)


_U = NoiseSpec("u", "uniform", _nk_shape,
               "u[..., r, i, k]: b_k = 1[u < sigmoid(phi_k)] and z_k = phi_k + log(1 - u) - log(u)")
_V = NoiseSpec("v", "uniform", _nk_shape,
               "v[..., r, i, k]: the conditional relaxation z~_k given b_k (module docstring)")


def _check(o: dict[str, Any]) -> dict[str, Any]:
    o["n"] = positive_int(o["n"], "n")
    o["eta"] = float(float_array(o["eta"], "eta"))
    o["tau"] = float(float_array(o["tau"], "tau"))
    if not o["tau"] > 0:
        raise ValueError(f"tau (the temperature) must be > 0, got {o['tau']}")
    if "surrogate" in o and o["surrogate"] is not None and \
            not callable(getattr(o["surrogate"], "relaxed", None)):
        raise TypeError("surrogate must be None or an object with a method relaxed(y) -> "
                        "(values, gradients)")
    return o


def _cost(o: Mapping[str, Any]) -> Cost:
    if o.get("surrogate") is None:
        return Cost(3 * o["n"], 2 * o["n"])
    return Cost(o["n"], 0)


_TUCKER = ("Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein 2017 (NeurIPS, arXiv 1703.07370)")

REBAR = Estimator(
    name="rebar",
    title="REBAR: REINFORCE with the relaxation's control variate eta f(sigma(z~/tau)), unbiased",
    distributions=("bernoulli",),
    unbiased=True,
    noise=(_U, _V),
    option_defaults={"n": 1, "eta": 1.0, "tau": 0.5},
    check_options=_check,
    cost_fn=lambda K, C, o: _cost(o),
    backends=backend_paths("rebar", "REBAR"),
    exact_moments_path="verify.moments.rebar:rebar_moments",
    references=_TUCKER,
    examples=({"eta": 1.0, "tau": 0.5}, {"eta": 0.3, "tau": 2.0, "n": 2}),
)

RELAX = Estimator(
    name="relax",
    title="RELAX: REBAR's structure with a user surrogate c (default: eta f, which is REBAR)",
    distributions=("bernoulli",),
    unbiased=True,
    noise=(_U, _V),
    option_defaults={"n": 1, "eta": 1.0, "tau": 0.5, "surrogate": None},
    check_options=_check,
    cost_fn=lambda K, C, o: _cost(o),
    backends=backend_paths("rebar", "RELAX"),
    exact_moments_path="verify.moments.rebar:relax_moments",
    references="Grathwohl, Choi, Wu, Roeder & Duvenaud 2018 (ICLR, arXiv 1711.00123); " + _TUCKER,
    examples=({}, {"surrogate": QuadraticSurrogate(0.8, 0.4), "tau": 1.0, "n": 2}),
)
