"""REBAR and RELAX on factorial Bernoulli and categorical variables: unbiased estimators whose
control variate comes from a continuous relaxation.

Both estimate ``grad E_{b~q}[f(b)]`` (ascent direction): ``q`` factorial Bernoulli with logits
``phi`` ``(..., K)``, ``theta = sigmoid(phi)``, or factorial categorical with logits ``alpha``
``(..., K, C)``, ``p = softmax(alpha)`` row by row.

Noise, per sample ``i`` of a replicate: two uniform arrays ``u``, ``v``, of shape ``(*batch,
R, n, K)`` for Bernoulli and ``(*batch, R, n, K, C)`` for categorical (the noise shape depends
on the distribution: ``NoiseSpec(..., by_dist=True)``), Uniform[0, 1); ``log`` of a uniform is
taken at ``max(u, TINY)``, ``TINY`` the smallest normal float64, so ``u = 0`` stays finite.

Bernoulli (per variable; ``u``, ``v`` scalars):

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

Categorical (per variable; ``u``, ``v`` of length ``C``; ``G(u) = -log(-log(max(u, TINY)))``
the standard Gumbel, ``loglog(v) = -G(v)``):

* The relaxation and the sample (Gumbel-max): ``z = alpha + G(u)``, ``b = H(z) = argmax_c z_c``
  (ties to the lowest index). This is the Gumbel-Softmax family's mapping
  (:mod:`reference.estimators.relaxation`), not the inverse-CDF sampler of REINFORCE, so
  ``eta = 0`` equals REINFORCE's combine phase *on the same samples b*.
* The conditional relaxation ``z~ ~ p(z | b)`` from ``v`` (RELAX paper, appendix B, eq. (17),
  written there for normalized ``log theta``; REBAR's appendix, which it cites, was not
  available): the maximum of ``alpha + G`` is a Gumbel of location ``lse(alpha) =
  log sum_c exp(alpha_c)``, independent of the argmax, and given the maximum the other
  coordinates are independent Gumbels of location ``alpha_c`` truncated below it, sampled by
  their inverse CDF::

      z~_b = lse(alpha) + G(v_b),   z~_c = -log(E_c exp(-alpha_c) + exp(-z~_b))  (c != b),

  ``E_c = -log v_c``. Computed as ``z~_c = z~_b - softplus(loglog(v_c) + z~_b - alpha_c)`` (the
  same number, finite for any logits). With ``b`` held fixed, ``dz~/dalpha = diag(1 - wt) +
  wt p^T`` with ``wt = exp(z~ - z~_b)`` (``wt_b = 1``; ``dz~_b/dalpha = p``); ``dz/dalpha =
  I``. The tests check the law of ``(b, z~)`` by Kolmogorov-Smirnov tests against
  independent Gumbels of locations ``alpha`` (and their differences against logistics).
* Relaxed points: ``y = softmax(z / tau)`` and ``y~ = softmax(z~ / tau) = exp(log(wt) / tau) /
  sum``, on the simplex, ``(K, C)`` per sample.

Estimators, averaged over the ``n`` samples of a replicate (``c`` a surrogate of the
relaxed point, ``dc`` its gradient in ``y``; the chain rule through ``y = sigmoid(z / tau)``
gives ``d/dphi_k c = dc_k y_k (1 - y_k) / tau * dz_k/dphi_k``, and through ``y = softmax(z /
tau)`` gives ``d/dz c = y * (dc - <y, dc>) / tau`` row by row, then ``d/dalpha c =
(dz/dalpha)^T d/dz c``; ``s(b) = grad log q(b)`` is ``b - theta`` or ``onehot(b) - p``,
computed accurate relative to itself on every backend as
:meth:`reference.distributions.Distribution.score` does: ``sigmoid(-phi)`` for ``b = 1``,
``1 - p_b`` as the sum of the other categories' terms):

* ``rebar`` (Tucker, Mnih, Maddison, Lawson & Sohl-Dickstein 2017, arXiv 1703.07370; the
  single-sample estimator with the conditional marginalization ``z~ ~ p(z | b)``): ``c = eta f``,
  ``g = [f(b) - eta f(y~)] s(b) + eta d/dparams f(y) - eta d/dparams f(y~)``.
  Unbiased for every ``eta`` and ``tau > 0``; ``eta = 0`` is REINFORCE without baseline.
* ``relax`` (Grathwohl, Choi, Wu, Roeder & Duvenaud 2018, arXiv 1711.00123, eq. (8), section
  3.2; the estimator for discrete variables with the conditional ``z~``):
  ``g = [f(b) - c(y~)] s(b) + d/dparams c(y) - d/dparams c(y~)`` with ``c = eta s``;
  ``s`` is the option ``surrogate``: ``None`` (default) means ``s = f``, which is REBAR on
  the same noise (section 4 of the RELAX paper: REBAR is RELAX with ``c_phi(z) = eta
  f(softmax_lambda(z))``). Unbiased for every differentiable surrogate (the paper's proof,
  appendix A, eqs. (12)-(16)).

The surrogate protocol (option ``surrogate``): any object with a method
``relaxed(y) -> (values, grads)`` like :mod:`reference.objectives`: ``y`` float64 of shape
``(..., K)`` (Bernoulli, entries in ``(0, 1)``: the relaxed points ``sigmoid(z / tau)``) or
``(..., K, C)`` (categorical, rows on the simplex: ``softmax(z / tau)``), ``values`` of shape
``(...)``, ``grads = d c / d y`` of the shape of ``y``; a categorical surrogate may return one
value per variable, ``(..., K)``, which are summed (an additive surrogate, as
:class:`QuadraticSurrogate`). The surrogate is a function of ``y``; as ``y`` is a one-to-one
function of ``z / tau`` (for categorical: up to the shift of ``z``, which changes neither
``b`` nor the estimator), every differentiable ``c(z)`` of the paper can be written this way,
and the estimator applies ``dy/dz`` itself (RELAX needs ``dc/dz`` at ``z`` and at ``z~``).
It is part of the estimator, not of the objective: with a surrogate, the objective is asked
for values at ``b`` only (``f`` need not be differentiable), and the combine phase evaluates
the surrogate on the points in ``Queries.aux["points"]``. :class:`QuadraticSurrogate` is a
small example.

Queries: ``z`` int64 ``(*batch, R, n, K)`` (the ``b``); relaxed points ``(*batch, R, 2n, K)``
(Bernoulli) or ``(*batch, R, 2n, K, C)`` (categorical), ``[y_1..y_n, y~_1..y~_n]``: in
``Queries.y`` when the objective is the surrogate (REBAR, RELAX without surrogate), else in
``aux["points"]``; Bernoulli ``aux["dzt"]`` ``(*batch, R, n, K)`` holds ``dz~/dphi``,
categorical ``aux["wt"]`` ``(*batch, R, n, K, C)`` holds ``wt = exp(z~ - z~_b)``.

Cost per replicate: REBAR ``n`` evaluations of ``f`` at ``b`` and ``2n`` relaxed evaluations
(values and gradients at ``y`` and ``y~``; the value at ``y`` is not used): ``Cost(3n, 2n)``.
RELAX with a surrogate: ``Cost(n, 0)`` for the objective, plus ``2n`` surrogate evaluations
with gradients. Arithmetic: ``O(n K)`` (Bernoulli) or ``O(n K C)`` (categorical) per
replicate besides the objective; float64 (float32 accepted by the fast backends, accumulated
in float64).

Equation numbers. RELAX (arXiv 1711.00123): read in its LaTeX source,
``paper/generalized_rebar.tex`` of duvenaud/relax at commit e9464a1 (the ICLR 2018 final
copy), numbers counted from its numbered ``align`` environments (we did not see the compiled
PDF): LAX eq. (5), the discrete LAX eq. (7), RELAX eq. (8) (section 3.2, "Discrete random
variables and conditional reparameterization"), the unbiasedness proof eqs. (12)-(16)
(appendix A), the Bernoulli conditional sampling (unnumbered) and the categorical one eq.
(17) (appendix B). REBAR (arXiv 1703.07370): the paper's text was not found with the search
tools (the stored pages held only its abstract: sciencestack.ai, scholarfeed, research.google
pub45960; no LaTeX source in the code index), so no REBAR equation number is cited; its
estimator is the RELAX paper's special case above, and the oracle confirms unbiasedness for
every ``eta``, ``tau`` and surrogate the tests draw.

Public code read, and where our formula differs:

* tensorflow/models ``research/rebar/rebar.py`` (``_random_sample``, ``_u_to_v``,
  ``_create_gumbel_control_variate``, ``get_rebar_gradient``), Bernoulli only:
  ``z = log_alpha + log u - log(1 - u)``, ``b = 1[z > 0]``, i.e. ``b = 1[u > 1 - theta]``; we
  use ``1 - u`` in place of ``u`` (same law) so ``b`` follows the project's sampler. By
  default the code *ties* ``v`` to ``u`` (``_u_to_v``: ``v`` is ``u`` itself, with the
  gradient of the conditional sample); we draw ``v`` independently as in the paper. The code
  also subtracts a learned baseline network from ``f(b)`` and multiplies the control variate
  by a learned ``eta`` per layer (``2 sigmoid(.)``), ``_u_to_v`` clips at ``eps = 1e-8`` and
  the logs go through ``U.safe_log_prob`` (``utils.py``, not read); here ``eta`` and ``tau``
  are given, there is no extra baseline, and only ``log(0)`` is guarded (by ``TINY``). Signs:
  the code minimizes ``-ELBO``; ours is the ascent direction of ``E[f]``.
* google-research ``disarm/binary/networks.py`` (``get_relax_parameters``, read as an
  excerpt; the same code is in thjashin/double-cv ``src/networks.py``), Bernoulli: the same
  ``z``, ``b = 1[z > 0]`` and ``v' = b (v theta + 1 - theta) + (1 - b) v (1 - theta)``, ``z~ =
  logits + logit(v')``, with a learned temperature and scaling factor (the double-cv copy's
  ``logit_func`` clips probabilities at ``1e-6``); we reach the same law with ``1 - u``,
  ``1 - v`` in place of ``u``, ``v`` and compute ``z~`` in the softplus form above (stable for
  logits up to 50). The RELAX paper's appendix B writes the same ``v'``.
* wgrathwohl/BackpropThroughTheVoidRL ``baselines/a2c/policies.py`` (``make_samples``), the
  RELAX authors' categorical code (discrete-action RL): ``z = log_softmax(logits) + G(u)``,
  ``b = argmax z`` as here (up to the shift ``lse``, which changes neither ``b`` nor the
  softmax), and the truncated Gumbels ``z~_c`` by the same inverse CDF. It differs in the
  maximum: it takes ``z~_b = log p_b + G(v_b)`` (the code's comment: "slightly biased"),
  where the law of the maximum is ``lse(log p) + G = G`` whatever ``b`` (the paper's eq. (17)
  has ``-log(-log v_b)``): a different conditional law for ``p_b < 1``, which our statistical
  test rejects (the negative control of
  ``tests/test_rebar.py::test_categorical_conditional_relaxation_has_the_conditional_law``).
  The code also adds ``eps = 1e-8`` inside both logs of each Gumbel and learns ``log_temp``.
* Bonnevie/rebar ``relaxflow/reparam.py`` (``categorical_forward``, ``categorical_backward``,
  ``CategoricalReparam``), a third-party TensorFlow REBAR/RELAX: the same ``z = alpha + G(u)``
  and the same conditional law (``z~_b = lse(alpha) + G(v_b)``, truncated Gumbels below it),
  with ``1e-16`` added inside both logs of each Gumbel and inside the truncated Gumbel's log.
  Its ``CategoricalReparam.logpdf`` is ``sum(param * b)``, which is ``log q(b)`` only when
  ``param`` holds normalized log-probabilities; with unnormalized logits, as its docstring
  allows, the score would miss the ``- p`` of ``onehot(b) - p`` (read, not run). Its
  ``coupling`` ties ``v`` to ``u`` like tensorflow/models' ``_u_to_v``; we draw ``v``
  independently.
* duvenaud/relax ``relax-autograd/relax.py`` was not read (DESIGN.md notes that it relaxes
  ``sigmoid((theta + logit u)/tau)`` with ``theta`` a probability).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reference._validate import finite_scalar, float_array, positive_int
from reference.contract import Answers, Backend, Cost, Estimator, NoiseSpec, Queries, backend_paths
from reference.distributions import BERNOULLI, CATEGORICAL, sigmoid, softmax

__all__ = ["REBAR", "RELAX", "QuadraticSurrogate", "rebar_points", "rebar_points_categorical",
           "rebar_combine_categorical", "loglog", "surrogate_answers", "TINY"]

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


def loglog(v: np.ndarray) -> np.ndarray:
    """``log(-log(max(v, TINY)))``: minus the standard Gumbel of the uniform ``v``."""
    return np.log(-np.log(np.maximum(v, TINY)))


def rebar_points_categorical(alpha: np.ndarray, u: np.ndarray, v: np.ndarray, tau: float
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The categorical sample and its relaxations from ``u, v`` ``(..., K, C)``; ``alpha``
    ``(..., K, C)`` broadcasts.

    ``z = alpha - loglog(u)`` (``alpha + G``), ``b = argmax_c z`` (ties to the lowest index),
    ``y = softmax(z / tau)``. Given ``b``: ``z~_b = lse(alpha) - loglog(v_b)`` and, for
    ``c != b``, ``z~_c = z~_b - softplus(loglog(v_c) + z~_b - alpha_c)`` (the Gumbel of
    location ``alpha_c`` truncated below ``z~_b``); ``wt = exp(z~ - z~_b)`` (1 at ``b``) and
    ``y~ = softmax(z~ / tau) = exp(log(wt) / tau) / sum``. Returns ``b`` int64 ``(..., K)``
    and ``y``, ``y~``, ``wt`` of the shape of ``u``.
    """
    x = alpha - loglog(u)
    b = np.argmax(x, axis=-1)
    xs = x / tau
    e = np.exp(xs - xs.max(axis=-1, keepdims=True))
    y = e / e.sum(axis=-1, keepdims=True)
    m = alpha.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(alpha - m).sum(axis=-1, keepdims=True))
    lv = loglog(v)
    zb = lse - np.take_along_axis(lv, b[..., None], axis=-1)
    sp = np.where(np.arange(u.shape[-1]) == b[..., None], 0.0, softplus(lv + zb - alpha))
    wt = np.exp(-sp)
    et = np.exp(-sp / tau)
    return b.astype(np.int64), y, et / et.sum(axis=-1, keepdims=True), wt


def rebar_combine_categorical(alpha: np.ndarray, b: np.ndarray, w: np.ndarray, dc_y: np.ndarray,
                              dc_yt: np.ndarray, y: np.ndarray, yt: np.ndarray, wt: np.ndarray,
                              eta: float, tau: float) -> np.ndarray:
    """One sample's categorical estimate ``(..., K, C)``: ``w (...)`` is ``f(b) - eta c(y~)``,
    ``b`` ``(..., K)``, the rest ``(..., K, C)`` (``alpha`` broadcasts)::

        w (onehot(b) - p) + eta J(y)^T dc_y / tau - eta Jt^T (J(y~)^T dc_yt / tau)

    with ``p = softmax(alpha)``, ``J(y)^T d = y * (d - <y, d>)`` and ``Jt = dz~/dalpha =
    diag(1 - wt) + wt p^T``, so ``Jt^T h = (1 - wt) h + p <wt, h>``.
    """
    C = alpha.shape[-1]
    p = softmax(alpha)
    # onehot(b) - p accurate relative to itself (1 - p_b as the other categories' sum)
    score = CATEGORICAL.score(np.broadcast_to(alpha, b.shape + (C,)), b)
    sy = (y * dc_y).sum(axis=-1, keepdims=True)
    st = (yt * dc_yt).sum(axis=-1, keepdims=True)
    h = yt * (dc_yt - st) / tau
    sw = (wt * h).sum(axis=-1, keepdims=True)
    return w[..., None, None] * score + eta * (y * (dc_y - sy) / tau) \
        - eta * ((1.0 - wt) * h + p * sw)


def surrogate_answers(surrogate: Any, points: np.ndarray, event_ndim: int = 1
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``surrogate.relaxed(points)``: values ``points.shape[:-event_ndim]`` and gradients
    ``points.shape``, float64, checked for shape (``event_ndim`` is 1 for Bernoulli points
    ``(..., K)``, 2 for categorical points ``(..., K, C)``; a categorical surrogate may also
    return one value per variable, ``(..., K)``, which are summed: an additive surrogate such
    as :class:`QuadraticSurrogate`)."""
    vals, grads = surrogate.relaxed(points)
    vals = float_array(vals, "surrogate values")
    if event_ndim == 2 and vals.shape == points.shape[:-1]:
        vals = vals.sum(axis=-1)
    vals = np.broadcast_to(vals, points.shape[:-event_ndim])
    grads = np.broadcast_to(float_array(grads, "surrogate gradients"), points.shape)
    return np.ascontiguousarray(vals), np.ascontiguousarray(grads)


def _queries_numpy(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    # Bernoulli: phi (B, K); u, v (B, R, n, K). Categorical: alpha (B, K, C); u, v (B, R, n, K, C)
    if dist == "categorical":
        b, y, yt, wt = rebar_points_categorical(params[:, None, None], noise["u"], noise["v"],
                                                opts["tau"])
        aux = {"wt": wt}
    else:
        b, y, yt, dzt = rebar_points(params[:, None, None], noise["u"], noise["v"], opts["tau"])
        aux = {"dzt": dzt}
    points = np.concatenate([y, yt], axis=2)  # (B, R, 2n, K[, C])
    if opts.get("surrogate") is None:
        return Queries(b, aux, points)
    return Queries(b, {**aux, "points": points})


def control_answers(queries: Queries, answers: Answers, opts: dict
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The surrogate's values ``(B, R, 2n)`` and gradients ``(B, R, 2n, K)`` at the relaxed
    points, and those points: from the objective's answers, or from the surrogate."""
    if opts.get("surrogate") is None:
        assert answers.f_y is not None and answers.grad_y is not None and queries.y is not None
        return answers.f_y, answers.grad_y, queries.y
    points = queries.aux["points"]
    event_ndim = points.ndim - queries.z.ndim + 1  # 1 Bernoulli (K,), 2 categorical (K, C)
    vals, grads = surrogate_answers(opts["surrogate"], np.asarray(points, dtype=np.float64),
                                    event_ndim)
    return vals.astype(points.dtype), grads.astype(points.dtype), points


def _combine_numpy(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                   opts: dict) -> np.ndarray:
    eta, tau = opts["eta"], opts["tau"]
    cvals, dc, points = control_answers(queries, answers, opts)
    n = queries.z.shape[2]
    y, yt = points[:, :, :n], points[:, :, n:]
    w = answers.f_z - eta * cvals[:, :, n:]
    if dist == "categorical":
        return rebar_combine_categorical(params[:, None, None], queries.z, w, dc[:, :, :n],
                                         dc[:, :, n:], y, yt, queries.aux["wt"], eta,
                                         tau).sum(axis=2) / n
    score = BERNOULLI.score(params, queries.z)  # b - theta, accurate relative to itself
    g = w[..., None] * score + eta * dc[:, :, :n] * y * (1.0 - y) / tau \
        - eta * dc[:, :, n:] * yt * (1.0 - yt) / tau * queries.aux["dzt"]
    return g.sum(axis=2) / n


NUMPY_REBAR = Backend(_queries_numpy, _combine_numpy)
NUMPY_RELAX = Backend(_queries_numpy, _combine_numpy)


# ------------------------------------------------------------------- an example surrogate
class QuadraticSurrogate:
    """``c(y) = scale * sum_k (y_k - t)^2`` for any ``K``, gradient ``2 scale (y - t)``: a
    small surrogate with the protocol of the ``surrogate`` option. On categorical points
    ``(..., K, C)`` it returns the per-variable values ``scale * sum_c (y_kc - t)^2``
    ``(..., K)``, which RELAX sums (``c(y) = scale * sum_kc (y_kc - t)^2``)."""

    def __init__(self, scale: float = 1.0, t: float = 0.5) -> None:
        self.scale = finite_scalar(scale, "scale")
        self.t = finite_scalar(t, "t")

    def relaxed(self, y: object) -> tuple[np.ndarray, np.ndarray]:
        y = float_array(y, "y")
        return self.scale * ((y - self.t) ** 2).sum(axis=-1), 2.0 * self.scale * (y - self.t)

    def __repr__(self) -> str:
        return f"reference.estimators.rebar.QuadraticSurrogate({self.scale!r}, {self.t!r})"


# ---------------------------------------------------------------------------- records
def _noise_shape(K: int, C: int, o: dict[str, Any], dist: str) -> tuple[int, ...]:
    return (o["n"], K, C) if dist == "categorical" else (o["n"], K)


_U = NoiseSpec("u", "uniform", _noise_shape,
               "Bernoulli u[..., r, i, k]: b_k = 1[u < sigmoid(phi_k)] and z_k = phi_k + log(1 - u) "
               "- log(u); categorical u[..., r, i, k, c]: z_kc = alpha_kc + G(u), G(u) = "
               "-log(-log(max(u, TINY))), b_k = argmax_c z_kc", by_dist=True)
_V = NoiseSpec("v", "uniform", _noise_shape,
               "v[..., r, i, k] (Bernoulli) or v[..., r, i, k, c] (categorical): the conditional "
               "relaxation z~ given b (module docstring)", by_dist=True)


def _check(o: dict[str, Any]) -> dict[str, Any]:
    o["n"] = positive_int(o["n"], "n")
    o["eta"] = finite_scalar(o["eta"], "eta")
    o["tau"] = finite_scalar(o["tau"], "tau")
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
    distributions=("bernoulli", "categorical"),
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
    distributions=("bernoulli", "categorical"),
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
