"""Straight-through variants on factorial categorical variables: Gumbel-Rao, gapped
straight-through (GST) and ReinMax.

All three estimate ``grad_alpha E_{z~q}[f(z)]`` (ascent direction), ``q(z) = prod_k
softmax(alpha_k)[z_k]``, and all are *biased* (except in special cases, see the tests). Like
straight-through they evaluate ``f`` once and ``dy = grad_y f`` once, at the one-hot point
``y = onehot(z)`` of the sampled configuration (``Queries.z`` holds ``z``, ``Queries.y`` its
one-hot rows; only ``Answers.grad_y`` is used). ``n`` samples per replicate are averaged.
Categorical only: the three papers define their estimators for categorical variables (a
Bernoulli variable is the case ``C = 2`` with logits ``(0, phi)``).

Notation: ``p_k = softmax(alpha_k)``; ``J(y) = diag(y) - y y^T`` (the softmax Jacobian at
softmax value ``y``, symmetric), so ``J(y)^T dy = y (dy - <y, dy>)``; ``e_i`` the one-hot
vector of category ``i``; ``TINY`` the smallest normal float64.

Noise (uniforms in [0, 1)):

* the sample: ``u_z (n, K)`` (Gumbel-Rao) or ``u (n, K)`` (GST, ReinMax); ``z_k`` by the
  inverse CDF of ``p_k``, as in :mod:`reference.distributions`
  (``z_k = min{c : u_k S_{C-1} < S_c}``, ``S_c`` the running sums of ``exp(alpha_kc - max)``).
* Gumbel-Rao's conditional Gumbels: ``u (n, m, K, C)``, exponentials
  ``E = -log(max(u, TINY))`` (``E > 0`` always, since ``u < 1``).

**gumbel_rao** (Paulus, Maddison, Krause 2021, arXiv 2010.04838). ST-Gumbel-Softmax is
``g_STGS = (d softmax_tau(alpha + G) / d alpha)^T dy(D)``, ``D = argmax(alpha + G)``; the
Gumbel-Rao estimator replaces the Jacobian by its conditional expectation given ``D`` (the
paper's Rao-Blackwellization, estimated with ``m`` conditional Gumbel draws; the paper calls
the number of draws ``K``):
``g = (1/m) sum_j (d softmax_tau(alpha + G^j) / d alpha)^T dy(onehot(z))``, ``G^j ~ G | D = z``.
Conditional Gumbels given the argmax (the standard exponential construction, as in
nshepperd/gumbel-rao-pytorch ``conditional_gumbel`` and chijames/GST ``rao_gumbel``), per
variable ``k`` with ``i = z_k``, ``lse = log sum_c exp(alpha_kc)``:
``x_i = -log E_i + lse`` (the maximum ``M``, a Gumbel with location ``lse``, independent of
``i``), and for ``c != i``: ``x_c = -log(E_c exp(-alpha_kc) + exp(-M))``, a Gumbel with
location ``alpha_kc`` truncated at ``M`` (computed as ``-logaddexp(log E_c - alpha_kc, -M)``).
Then ``G^j = x - alpha_k``, ``y_j = softmax(x / tau)``, ``v_j = (1/tau) J(y_j) dy_k`` (the
gradient with respect to the perturbed logits ``x``), and the option ``detach_gumbels``:

* ``True`` (default): ``G^j`` held fixed, ``dx/dalpha = I``: ``g_k = (1/m) sum_j v_j``. This is
  ``E[g_STGS | D]`` estimated by Monte Carlo, so its mean equals ST-Gumbel-Softmax's for every
  ``m``, its variance is at most ST-Gumbel-Softmax's, and with ``m = 1`` it has exactly
  ST-Gumbel-Softmax's law. This is what both public codes compute (nshepperd passes
  ``logits.detach()`` to ``conditional_gumbel``; chijames/GST ``rao_gumbel`` builds the
  Gumbels from ``logits.detach()`` and adds ``logits``).
* ``False``: the total derivative through the conditional construction, as the paper's text
  states ("the total derivative ... is taken through both theta and G_k"). Differentiating the
  formulas above: ``dx_c/dalpha_c' = a_c delta_cc' + b_c p_kc'`` with
  ``b_c = exp(x_c - M)``, ``a_c = 1 - b_c`` (``a_i = 0``, ``b_i = 1``), so
  ``g_kc = (1/m) sum_j (a_c v_jc + p_kc sum_c' b_c' v_jc')``. This is *not* the
  Rao-Blackwellization of ST-Gumbel-Softmax: its mean differs from ST-GS's and, unlike the
  paper's remark, ``m = 1`` does not give ST-GS (nshepperd's README makes the same point; the
  oracle shows the difference exactly).

Cost: 1 evaluation of ``f`` and of ``grad f`` per sample, plus ``m C`` exponentials.

**gst** (gapped straight-through; Fan, Chi, Rudnicky, Ramadge, ICML 2022, arXiv 2206.07235):
ST-Gumbel-Softmax with the Gumbel noise replaced by a deterministic perturbation of the logits
that keeps the sampled category on top with a gap, read from the authors' code
(chijames/GST ``model/basic.py``, ``gst_mover`` with its default ``detach=True``):
``z ~ q`` (inverse CDF), ``i = z_k``, ``alpha_max = max_c alpha_kc``;
``alpha'_i = alpha_max`` and ``alpha'_c = min(alpha_kc, alpha_max - gap)`` for ``c != i``;
``y = softmax(alpha' / tau)``, and the perturbation is held fixed (``d alpha'/d alpha = I``):
``g_k = (1/tau) J(y) dy_k``. Option ``gap``: a positive float (the code's default ``1.0``:
"GST-1.0") or ``"p"`` ("GST-p", the code's other branch): ``gap = -log(1 - p_ki) / p_ki``.
We compute ``1 - p_ki`` as the sum of the other probabilities (no cancellation), where the
code multiplies ``p_ki`` by ``1 - 1e-5`` "for numerical stability"; the two agree except when
``p_ki`` is within about ``1e-5`` of 1 (then both gaps are large and ``y`` is one-hot to
rounding). The code also centres the perturbed logits (``logits - mean``), which changes
neither ``y`` nor the gradient (the softmax Jacobian's rows sum to zero). The estimate is a
function of ``z`` alone. Cost: 1 evaluation of ``f`` and of ``grad f`` per sample.

**reinmax** (Liu, Dong, Liu, Yu, Gao, NeurIPS 2023, arXiv 2304.08612): a second-order
(Heun's method) correction of straight-through, as the authors' code computes it
(microsoft/ReinMax ``reinmax/reinmax.py``, ``ReinMaxCore.backward``; the paper's algorithm
box, as we recall it, is the same): ``z ~ q`` with ``q = softmax(alpha)``
(untempered), ``pi_0 = p_k``, ``pi_1 = (softmax(alpha_k / tau) + e_{z_k}) / 2``,
``g_k = 2 J(pi_1) dy_k - (1/2) J(pi_0) dy_k``. The temperature enters only through the value
of ``pi_1`` (the code's ``softmax(stop_gradient(log pi_1 - theta) + theta)``, so no ``1/tau``
factor). ``tau >= 1`` is required, as the code enforces ("ReinMax prefers to set the
temperature (tau) larger or equal to 1"). The code's final ``grad - grad.mean()`` changes
nothing (each term's entries sum to zero); its gradient through the second output
``y_soft = softmax(alpha)`` is zero here since ``f`` depends on the sample only. The estimate
is a function of ``z`` alone. Cost: 1 evaluation of ``f`` and of ``grad f`` per sample.

Queries: ``z`` int64 ``(*batch, R, n, K)``, ``y = onehot(z)`` ``(*batch, R, n, K, C)``; aux
``perturbed`` ``(*batch, R, n, m, K, C)`` (Gumbel-Rao: the conditional perturbed logits
``x = alpha + G^j``).

Paper equation and section numbers are not given: the full texts were not available here
(only abstracts, the authors' code, and the paper's sentence on Gumbel-Rao's total derivative
as quoted in nshepperd's README). The formulas above follow the code; where the code and the
paper's text disagree (Gumbel-Rao's derivative) both are offered. The tests check each formula
against finite differences of the code's surrogate written independently.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference._validate import float_array, positive_int
from reference.contract import Answers, Backend, Cost, Estimator, NoiseSpec, Queries, backend_paths
from reference.distributions import get_distribution, softmax

__all__ = ["GUMBEL_RAO", "GST", "REINMAX", "conditional_perturbed", "gr_gradients",
           "gst_logits", "gap_flags", "reinmax_gradients", "onehot", "TINY"]

#: smallest positive normal float64 (guard for u = 0 in E = -log(max(u, TINY)))
TINY = 2.2250738585072014e-308


def onehot(z: np.ndarray, C: int) -> np.ndarray:
    return (z[..., None] == np.arange(C)).astype(np.float64)


def _jvp(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """``J(y)^T dy = y (dy - <y, dy>)`` per row."""
    return y * (dy - (y * dy).sum(axis=-1, keepdims=True))


def _logsumexp(a: np.ndarray) -> np.ndarray:
    mx = a.max(axis=-1, keepdims=True)
    return mx + np.log(np.exp(a - mx).sum(axis=-1, keepdims=True))


# ------------------------------------------------------------------------ Gumbel-Rao
def conditional_perturbed(alpha: np.ndarray, z: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Perturbed logits ``x = alpha + G`` with ``G`` standard Gumbel conditioned on
    ``argmax(alpha + G) = z`` (module docstring).

    ``alpha (..., K, C)`` broadcast against ``z (..., K)`` (int) and ``u (..., K, C)``
    uniforms; returns float64 ``(..., K, C)``.
    """
    E = -np.log(np.maximum(u, TINY))
    C = alpha.shape[-1]
    hit = z[..., None] == np.arange(C)
    E_i = np.take_along_axis(E, z[..., None], axis=-1)  # (..., K, 1)
    M = -np.log(E_i) + _logsumexp(alpha)
    x = -np.logaddexp(np.log(E) - alpha, -M)
    return np.where(hit, M, x)


def gr_gradients(alpha: np.ndarray, x: np.ndarray, dy: np.ndarray, tau: float,
                 detach: bool) -> np.ndarray:
    """Per-draw Gumbel-Rao gradients ``(..., m, K, C)``.

    ``alpha (..., 1, K, C)`` broadcasting against ``x (..., m, K, C)``; ``dy (..., 1, K, C)``.
    """
    y = softmax(x / tau)
    v = _jvp(y, dy) / tau
    if detach:
        return v
    b = np.exp(x - x.max(axis=-1, keepdims=True))
    p = softmax(alpha)
    return (1.0 - b) * v + p * (b * v).sum(axis=-1, keepdims=True)


def _gr_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = get_distribution(dist).sample(params, noise["u_z"])  # (B, R, n, K)
    x = conditional_perturbed(params[:, None, None, None], z[:, :, :, None], noise["u"])
    return Queries(z, {"perturbed": x}, onehot(z, params.shape[-1]))


def _gr_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                opts: dict) -> np.ndarray:
    g = gr_gradients(params[:, None, None, None], queries.aux["perturbed"],
                     answers.grad_y[:, :, :, None], opts["tau"], opts["detach_gumbels"])
    return g.mean(axis=3).mean(axis=2)


# ------------------------------------------------------------------------------ GST
def gst_logits(alpha: np.ndarray, z: np.ndarray, gap: float | str) -> np.ndarray:
    """GST's perturbed logits ``alpha'`` ``(..., K, C)`` for ``alpha (..., K, C)`` and
    samples ``z (..., K)`` (module docstring)."""
    C = alpha.shape[-1]
    hit = z[..., None] == np.arange(C)
    amax = alpha.max(axis=-1, keepdims=True)
    if gap == "p":
        e = np.exp(alpha - amax)
        rest = np.where(hit, 0.0, e).sum(axis=-1, keepdims=True)  # (1 - p_i) * total
        p_i = np.where(hit, e, 0.0).sum(axis=-1, keepdims=True) / (e.sum(axis=-1, keepdims=True))
        width = -np.log(rest / e.sum(axis=-1, keepdims=True)) / p_i
    else:
        width = float(gap)
    return np.where(hit, amax, np.minimum(alpha, amax - width))


def gap_flags(opts: dict) -> tuple[float, bool]:
    """GST's ``gap`` option as the fast kernels take it: ``(gap, adaptive)`` (CPU and CUDA)."""
    return (0.0, True) if opts["gap"] == "p" else (float(opts["gap"]), False)


def _sample_queries(dist: str, params: np.ndarray, noise: dict, opts: dict) -> Queries:
    z = get_distribution(dist).sample(params, noise["u"])  # (B, R, n, K)
    return Queries(z, {}, onehot(z, params.shape[-1]))


def _gst_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                 opts: dict) -> np.ndarray:
    a = gst_logits(params[:, None, None], queries.z, opts["gap"])
    y = softmax(a / opts["tau"])
    return (_jvp(y, answers.grad_y) / opts["tau"]).mean(axis=2)


# -------------------------------------------------------------------------- ReinMax
def reinmax_gradients(alpha: np.ndarray, z: np.ndarray, dy: np.ndarray, tau: float) -> np.ndarray:
    """``2 J(pi_1) dy - J(pi_0) dy / 2`` ``(..., K, C)``; ``alpha`` broadcasting against
    ``z (..., K)`` and ``dy (..., K, C)``."""
    pi0 = softmax(alpha)
    pi1 = 0.5 * (softmax(alpha / tau) + onehot(z, alpha.shape[-1]))
    return 2.0 * _jvp(pi1, dy) - 0.5 * _jvp(pi0, dy)


def _reinmax_combine(dist: str, params: np.ndarray, queries: Queries, answers: Answers,
                     opts: dict) -> np.ndarray:
    return reinmax_gradients(params[:, None, None], queries.z, answers.grad_y,
                             opts["tau"]).mean(axis=2)


NUMPY_GUMBEL_RAO = Backend(_gr_queries, _gr_combine)
NUMPY_GST = Backend(_sample_queries, _gst_combine)
NUMPY_REINMAX = Backend(_sample_queries, _reinmax_combine)


# ---------------------------------------------------------------------------- records
def _n_shape(K: int, C: int, o: dict[str, Any]) -> tuple[int, ...]:
    return (o["n"], K)


def _nmkc_shape(K: int, C: int, o: dict[str, Any]) -> tuple[int, ...]:
    return (o["n"], o["m"], K, C)


def _real(x: object, name: str) -> float:
    if isinstance(x, (bool, np.bool_)) or isinstance(x, str):
        raise TypeError(f"{name} must be a real number, got {x!r}")
    a = float_array(x, name)
    if a.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {a.shape}")
    return float(a)


def _check_tau(o: dict[str, Any], minimum: float = 0.0) -> dict[str, Any]:
    tau = _real(o["tau"], "tau")
    if minimum > 0.0 and not tau >= minimum:
        raise ValueError(f"tau must be >= {minimum:g} for ReinMax (as in the authors' code, "
                         f"microsoft/ReinMax), got {tau}")
    if not tau > 0.0:
        raise ValueError(f"tau must be > 0, got {tau}")
    o["tau"] = tau
    o["n"] = positive_int(o["n"], "n")
    return o


def _check_gr(o: dict[str, Any]) -> dict[str, Any]:
    o["m"] = positive_int(o["m"], "m")
    if not isinstance(o["detach_gumbels"], (bool, np.bool_)):
        raise TypeError(f"detach_gumbels must be a bool, got {o['detach_gumbels']!r}")
    o["detach_gumbels"] = bool(o["detach_gumbels"])
    return _check_tau(o)


def _check_gst(o: dict[str, Any]) -> dict[str, Any]:
    if isinstance(o["gap"], str):
        if o["gap"] != "p":
            raise ValueError(f"gap must be a positive number or 'p', got {o['gap']!r}")
    else:
        gap = _real(o["gap"], "gap")
        if not gap > 0.0:
            raise ValueError(f"gap must be > 0 (or 'p'), got {gap}")
        o["gap"] = gap
    return _check_tau(o)


def _check_reinmax(o: dict[str, Any]) -> dict[str, Any]:
    return _check_tau(o, minimum=1.0)


_U_SAMPLE = NoiseSpec("u", "uniform", _n_shape,
                      "u[..., r, i, k]: draws z_k of sample i by the inverse CDF "
                      "(reference.distributions)")

GUMBEL_RAO = Estimator(
    name="gumbel_rao",
    title="Gumbel-Rao: ST-Gumbel-Softmax Jacobian averaged over m Gumbels conditioned on z",
    distributions=("categorical",),
    unbiased=False,
    noise=(NoiseSpec("u_z", "uniform", _n_shape,
                     "u_z[..., r, i, k]: draws z_k of sample i by the inverse CDF "
                     "(reference.distributions)"),
           NoiseSpec("u", "uniform", _nmkc_shape,
                     "u[..., r, i, j, k, c]: exponential E = -log(max(u, TINY)) of conditional "
                     "Gumbel draw j of sample i (x_z = -log E_z + lse, x_c = -log(E_c e^-alpha_c "
                     "+ e^-x_z))")),
    option_defaults={"tau": 1.0, "m": 1, "detach_gumbels": True, "n": 1},
    check_options=_check_gr,
    cost_fn=lambda K, C, o: Cost(o["n"], o["n"]),
    backends=backend_paths("st_variants", "GUMBEL_RAO"),
    exact_moments_path="verify.moments.st_variants:gumbel_rao_moments",
    references="Paulus, Maddison, Krause 2021 (ICLR, arXiv 2010.04838)",
    examples=({"tau": 1.0, "m": 3}, {"tau": 0.5, "m": 2, "detach_gumbels": False, "n": 2}),
)

GST = Estimator(
    name="gst",
    title="Gapped straight-through: softmax Jacobian at logits moved so that z leads by a gap",
    distributions=("categorical",),
    unbiased=False,
    noise=(_U_SAMPLE,),
    option_defaults={"tau": 1.0, "gap": 1.0, "n": 1},
    check_options=_check_gst,
    cost_fn=lambda K, C, o: Cost(o["n"], o["n"]),
    backends=backend_paths("st_variants", "GST"),
    exact_moments_path="verify.moments.st_variants:gst_moments",
    references="Fan, Chi, Rudnicky, Ramadge 2022 (ICML, arXiv 2206.07235)",
    examples=({"tau": 1.0, "gap": 1.0}, {"tau": 0.5, "gap": "p", "n": 2}),
)

REINMAX = Estimator(
    name="reinmax",
    title="ReinMax: 2 J((softmax(alpha/tau) + onehot(z))/2) dy - J(softmax(alpha)) dy / 2",
    distributions=("categorical",),
    unbiased=False,
    noise=(_U_SAMPLE,),
    option_defaults={"tau": 1.0, "n": 1},
    check_options=_check_reinmax,
    cost_fn=lambda K, C, o: Cost(o["n"], o["n"]),
    backends=backend_paths("st_variants", "REINMAX"),
    exact_moments_path="verify.moments.st_variants:reinmax_moments",
    references="Liu, Dong, Liu, Yu, Gao 2023 (NeurIPS, arXiv 2304.08612)",
    examples=({"tau": 1.0}, {"tau": 2.0, "n": 2}),
)
