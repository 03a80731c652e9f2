"""Certified moments of REBAR and RELAX (records in :mod:`reference.estimators.rebar`),
Bernoulli and categorical.

One sample's estimate depends on the discrete sample ``b`` and on the relaxations ``z`` (from
``u``) and ``z~`` (from ``v``, given ``b``); the objective's relaxation couples the
dimensions, so there is no closed form in general. The moments are computed as

* an **exact sum over the samples** ``b`` (``C**K`` terms, ``C = 2`` for Bernoulli, weights
  ``q(b)``), and, given ``b``,
* an integral over ``(z, z~)``, which are independent given ``b`` with the same law ``p(z |
  b)``, by **randomized quasi-Monte Carlo with defensive importance sampling**.

Bernoulli: per coordinate, ``p(z | b)`` is logistic with location ``phi_k``, restricted to
``z > 0`` for ``b_k = 1`` and ``z < 0`` for ``b_k = 0``; each coordinate is drawn from the
mixture ``r = (1 - eps) p(z | b) + eps e(z)`` with ``e`` an exponential of scale ``s = 2 tau``
on the same half-line and ``eps = 2**-ceil(log2(2K))`` (the first ``1 - eps`` of each Sobol
coordinate maps to ``p`` by its inverse CDF, the rest to ``e``), and weighted by ``p / r <= 1
/ (1 - eps)``; only in the coordinates where ``p(0 < |z| < 3 tau | b) < eps`` (elsewhere
``eps = 0``: the mixture's jump costs RQMC accuracy). The mixture puts a share ``eps`` of the
points within a few ``tau`` of ``z = 0``, where the reparameterization terms ``y (1 - y) /
tau`` peak: for a logit far from 0 that region has probability ``~exp(-|phi|)`` under ``p``
and carries as much of the mean as the gradient itself, and plain RQMC over ``(u, v)`` misses
it in every randomization (and then reports a zero spread around a wrong mean; Hypothesis
found both failures, at ``phi = 11`` over the unit cube and at ``phi = 14`` with the sum over
``b`` but no importance sampling). One Sobol set of ``2K`` dimensions carries ``(z, z~)``.

Categorical: per variable, given ``b`` the relaxation is parameterized by its maximum ``M =
z_b``, a Gumbel of location ``lse(alpha)`` (independent of ``b``), and its ``C - 1`` gaps
``d_c = M - z_c > 0``, which given ``M`` are independent with density ``c0 e^d exp(-c0 (e^d -
1))``, ``c0 = exp(alpha_c - M)`` (the Gumbel of location ``alpha_c`` truncated below ``M``).
Each gap coordinate is drawn from the same kind of mixture (exponential of scale ``2 tau``,
share ``eps = 2**-ceil(log2(2 K (C - 1)))``) where ``P(d_c < 3 tau | b) = p_c (e^{3 tau} - 1)
/ (1 + p_c (e^{3 tau} - 1)) < eps`` (:func:`gap_near_probability`; the tests check it by
sampling), i.e. where category ``c`` is rarely near the decision boundary. The estimate is
split as ``A(z) + B(z~)`` (``A = eta dc(y)/dalpha``, ``B`` the rest), so that ``E[g] = E[A] +
E[B]`` and ``E[g g^T] = E[A A^T] + E[B B^T] + E[A] E[B]^T + E[B] E[A]^T``; ``z`` and ``z~``
are integrated over two independent Sobol sets of ``K C`` dimensions each (the products of
the two means stay unbiased, and the lower dimension roughly halved the RQMC spread on the
built-in problems). The same scrambled sets serve every ``b``. A test shows the importance
sampling is needed: at ``alpha = (20, 0, -3)`` plain RQMC certifies a wrong mean.

``RANDOMIZATIONS`` scrambled Sobol sets of ``2**LOG2_POINTS`` points per ``b``; the error
bound is the sum over ``b`` of ``q(b)`` times the Student-t half-width at confidence ``1 -
1e-6 / (number of b)`` (so ``1 - 1e-6`` jointly), covering every entry of the mean and of the
covariance; ``n`` samples divide the covariance by ``n``. The ``Moments.method`` string says
all this. Exact per-dimension quadrature for separable objectives is not implemented.

The integrand is written independently of the estimator's code. Bernoulli: ``dz~/dphi``
(with ``b`` fixed) is computed from ``z~`` itself, ``theta (1 - exp(-z~))`` for ``b = 1`` and
``(1 - theta) (1 - exp(z~))`` for ``b = 0`` (from ``u~ = sigmoid(phi - z~)``, the conditional
uniform ``v theta`` or ``theta + v (1 - theta)``), where the estimator uses softplus forms in
``v``. Categorical: the full ``C x C`` Jacobian ``dz~/dalpha`` is built from ``z~`` itself
(the estimator applies its rank-one form), and :func:`rebar_values_categorical` maps uniforms
to ``z~`` by the plain truncated-Gumbel formula, where the estimator uses a softplus form.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from scipy import stats
from scipy.stats import qmc

from reference.distributions import Distribution, log_sigmoid, sigmoid, softmax

from ..exact import check_budget, check_enumeration_size, config_probabilities, make_problem
from . import Moments
from .relaxation import _grad_ops, cached_moments

__all__ = ["rebar_moments", "relax_moments", "rebar_values", "rebar_values_z", "mixture_fraction",
           "rebar_values_categorical", "rebar_values_categorical_z", "gap_near_probability"]

_TINY = np.finfo(np.float64).tiny
#: randomized QMC per sample b: RANDOMIZATIONS scrambled Sobol sets of 2**LOG2_POINTS points
LOG2_POINTS = 10
RANDOMIZATIONS = 16


def _relaxed(fn: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vals, grads = fn.relaxed(y)
    return (np.broadcast_to(np.asarray(vals, dtype=np.float64), y.shape[:-1]),
            np.broadcast_to(np.asarray(grads, dtype=np.float64), y.shape))


def rebar_values_z(phi: np.ndarray, objective: Any, b: np.ndarray, z: np.ndarray,
                   zt: np.ndarray, eta: float, tau: float, surrogate: Any = None) -> np.ndarray:
    """One sample's estimate ``(N, K)`` from the sample ``b`` int ``(N, K)`` and its
    relaxations ``z``, ``z~`` ``(N, K)`` (``H(z) = H(z~) = b``). The control variate is
    ``eta * surrogate`` (``None``: the objective's relaxation)."""
    theta = sigmoid(phi)
    one = b == 1
    dzt = np.where(one, theta * -np.expm1(-np.where(one, zt, 0.0)),
                   sigmoid(-phi) * -np.expm1(np.where(one, 0.0, zt)))
    y, yt = sigmoid(z / tau), sigmoid(zt / tau)
    # b - theta as sigmoid(-phi) for b = 1 and y (1 - y) as a product of sigmoids: 1 - theta
    # and 1 - y round to 0 at saturated logits, which dropped the score term's share of the
    # mean (-2.28e-22 for a true -2.70e-22 at phi = 50, bound 2.3e-25; tests/test_rebar_mp.py)
    score = np.where(one, sigmoid(-phi), -theta)
    dy, dyt = y * sigmoid(-z / tau) / tau, yt * sigmoid(-zt / tau) / tau
    c = objective if surrogate is None else surrogate
    _, dc_y = _relaxed(c, y)
    c_yt, dc_yt = _relaxed(c, yt)
    f_b = np.asarray(objective(b), dtype=np.float64)
    return ((f_b - eta * c_yt)[:, None] * score + eta * dc_y * dy - eta * dc_yt * dyt * dzt)


def rebar_values(phi: np.ndarray, objective: Any, U: np.ndarray, eta: float, tau: float,
                 surrogate: Any = None) -> np.ndarray:
    """One sample's estimate at the noise points ``U (N, 2K)`` (``u = U[:, :K]``, ``v =
    U[:, K:]``): ``(N, K)``, through the conditional uniform ``u~`` (``v theta`` given ``b =
    1``, ``theta + v (1 - theta)`` given ``b = 0``) and ``z~ = phi + log(1 - u~) - log(u~)``."""
    K = phi.shape[0]
    u = np.clip(U[:, :K], _TINY, np.nextafter(1.0, 0.0))
    v = np.maximum(U[:, K:], _TINY)
    theta = sigmoid(phi)
    b = (u < theta).astype(np.int64)
    z = phi + np.log1p(-u) - np.log(u)
    one = b == 1
    log_ut = np.where(one, np.log(v) + log_sigmoid(phi), np.log(theta + v * sigmoid(-phi)))
    log_1ut = np.where(one, np.log1p(-v * theta), np.log1p(-v) + log_sigmoid(-phi))
    return rebar_values_z(phi, objective, b, z, phi + log_1ut - log_ut, eta, tau, surrogate)


def _half_line(phi_eff: np.ndarray, w: np.ndarray, s: float, eps: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Points ``x > 0`` from ``w`` in ``[0, 1)`` with density ``r = (1 - eps) p + eps e``,
    ``p`` the logistic density of location ``phi_eff`` restricted to ``x > 0``, ``e``
    exponential of scale ``s``; returns ``x`` and the weight ``p(x) / r(x) <= 1 / (1 - eps)``.
    ``w < 1 - eps`` maps to ``p`` by its inverse CDF, the rest to ``e``."""
    first = w < 1 - eps
    w2 = np.where(first, w / (1 - eps), (w - (1 - eps)) / np.maximum(eps, _TINY))
    # inverse CDF of p: P(X > x) = sigmoid(phi - x) / sigmoid(phi) = 1 - w2
    a = np.log1p(-w2) + log_sigmoid(phi_eff)  # log((1 - w2) sigmoid(phi))
    x_p = phi_eff - a + np.log(-np.expm1(np.minimum(a, -_TINY)))  # phi - logit(exp(a))
    x_e = -s * np.log1p(-w2)
    x = np.maximum(np.where(first, x_p, x_e), 0.0)
    log_p = log_sigmoid(x - phi_eff) + log_sigmoid(phi_eff - x) - log_sigmoid(phi_eff)
    log_e = -x / s - math.log(s)
    weight = 1.0 / ((1 - eps) + eps * np.exp(np.minimum(log_e - log_p, 700.0)))
    return x, weight


def mixture_fraction(K: int) -> float:
    """The exponential's share ``eps`` per coordinate: ``2**-ceil(log2(2K))`` (a dyadic share,
    which scrambled Sobol points stratify exactly; the product of the ``2K`` weights stays
    below ``(1 - eps)**-2K <= e**2``)."""
    return 2.0 ** -math.ceil(math.log2(2 * K))


def _conditional_rqmc(phi: np.ndarray, objective: Any, b: np.ndarray, eta: float, tau: float,
                      surrogate: Any, confidence: float
                      ) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean ``(K,)``, second moment ``(K, K)`` of one sample's estimate given ``b``, and the
    Student-t half-width covering all their entries."""
    K = phi.shape[0]
    sign = np.where(b == 1, 1.0, -1.0)
    s = 2.0 * tau
    phi_eff = sign * phi
    # the exponential only where p(z | b) itself rarely comes within 3 tau of 0
    near = (sigmoid(3 * tau - phi_eff) - sigmoid(-phi_eff)) / sigmoid(phi_eff)
    eps = np.where(near < mixture_fraction(K), mixture_fraction(K), 0.0)
    means, seconds = [], []
    for r in range(RANDOMIZATIONS):
        eng = qmc.Sobol(2 * K, scramble=True, seed=np.random.default_rng([7, r]))
        W = np.minimum(eng.random_base2(LOG2_POINTS), np.nextafter(1.0, 0.0))
        x, wx = _half_line(phi_eff, W[:, :K], s, eps)
        xt, wxt = _half_line(phi_eff, W[:, K:], s, eps)
        wt = np.prod(wx, axis=1) * np.prod(wxt, axis=1)
        bb = np.broadcast_to(b, x.shape).astype(np.int64)
        g = rebar_values_z(phi, objective, bb, sign * x, sign * xt, eta, tau, surrogate)
        means.append((wt[:, None] * g).mean(axis=0))
        seconds.append((g * wt[:, None]).T @ g / len(g))
    M, S2 = np.array(means), np.array(seconds)
    q = stats.t.ppf(0.5 + confidence / 2, RANDOMIZATIONS - 1) / math.sqrt(RANDOMIZATIONS)
    half = q * max(float(M.std(axis=0, ddof=1).max()), float(S2.std(axis=0, ddof=1).max()))
    return M.mean(axis=0), S2.mean(axis=0), half


# ------------------------------------------------------------------------- categorical
def _relaxed_cat(fn: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values ``y.shape[:-2]`` and gradients ``y.shape`` at categorical points ``y (..., K,
    C)``; per-variable values ``(..., K)`` (an additive surrogate) are summed."""
    vals, grads = fn.relaxed(y)
    vals = np.asarray(vals, dtype=np.float64)
    if vals.shape == y.shape[:-1]:
        vals = vals.sum(axis=-1)
    return (np.broadcast_to(vals, y.shape[:-2]),
            np.broadcast_to(np.asarray(grads, dtype=np.float64), y.shape))


def _softmax_grad(y: np.ndarray, dc: np.ndarray, tau: float) -> np.ndarray:
    """``d c(softmax(z / tau)) / dz`` from ``y = softmax(z / tau)`` and ``dc = dc/dy``, as
    ``y_c sum_j y_j (dc_c - dc_j) / tau`` (no cancellation when ``y_c`` is near 1, where
    ``dc_c - <y, dc>`` would round)."""
    return y * (y[..., None, :] * (dc[..., :, None] - dc[..., None, :])).sum(axis=-1) / tau


def _categorical_parts(alpha: np.ndarray, objective: Any, b: np.ndarray, z: np.ndarray,
                       zt: np.ndarray, eta: float, tau: float, surrogate: Any
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The two parts of one sample's categorical estimate, ``(N, K, C)`` each: ``A``, a
    function of ``z`` alone (``eta d c(y) / dalpha``), and ``B``, a function of ``z~`` alone
    (the score term and ``-eta d c(y~) / dalpha`` with ``b`` fixed).

    ``dz~/dalpha`` is taken from ``z~`` itself, as the full ``C x C`` matrix per variable:
    ``z~_c = -log(E_c exp(-alpha_c) + exp(-M))`` with ``M = z~_b = lse(alpha) + G`` gives
    ``dz~_c/dalpha_j = (1 - exp(z~_c - M)) 1[c = j] + exp(z~_c - M) p_j`` (and ``dM/dalpha_j =
    p_j``, the same formula at ``c = b``)."""
    p = softmax(alpha)
    y, yt = softmax(z / tau), softmax(zt / tau)
    c = objective if surrogate is None else surrogate
    _, dc_y = _relaxed_cat(c, y)
    c_yt, dc_yt = _relaxed_cat(c, yt)
    f_b = np.asarray(objective(b), dtype=np.float64)
    M = np.take_along_axis(zt, b[..., None], axis=-1)
    r = np.exp(zt - M)  # (N, K, C), 1 at b
    C = alpha.shape[-1]
    jac = np.eye(C) * -np.expm1(zt - M)[..., :, None] + r[..., :, None] * p[..., None, :]
    # onehot(b) - p with 1 - p_b as the sum of the other p_c (1 - p_b rounds to 0 when p_b
    # is near 1)
    isb = np.arange(C) == b[..., None]
    score = np.where(isb, np.where(isb, 0.0, p).sum(axis=-1, keepdims=True), -p)
    A = eta * _softmax_grad(y, dc_y, tau)
    B = (np.broadcast_to(f_b, c_yt.shape) - eta * c_yt)[:, None, None] * score \
        - eta * np.einsum("nkij,nki->nkj", jac, _softmax_grad(yt, dc_yt, tau))
    return A, B


def rebar_values_categorical_z(alpha: np.ndarray, objective: Any, b: np.ndarray, z: np.ndarray,
                               zt: np.ndarray, eta: float, tau: float,
                               surrogate: Any = None) -> np.ndarray:
    """One sample's categorical estimate ``(N, K, C)`` from ``b`` int ``(N, K)`` and the
    relaxations ``z``, ``z~`` ``(N, K, C)`` (``argmax z = argmax z~ = b``)::

        [f(b) - eta c(y~)] (onehot(b) - p) + eta dc(y)/dalpha - eta dc(y~)/dalpha

    (``y = softmax(z / tau)``, ``y~ = softmax(z~ / tau)``, ``c`` the surrogate, default the
    objective's relaxation; ``dz~/dalpha`` as in ``_categorical_parts``)."""
    A, B = _categorical_parts(alpha, objective, b, z, zt, eta, tau, surrogate)
    return A + B


def rebar_values_categorical(alpha: np.ndarray, objective: Any, U: np.ndarray, eta: float,
                             tau: float, surrogate: Any = None) -> np.ndarray:
    """One sample's categorical estimate ``(N, K, C)`` at the noise points ``U (N, 2 K C)``
    (``u = U[:, :KC]``, ``v = U[:, KC:]``, each row-major ``(K, C)``): ``z = alpha + G(u)``,
    ``b = argmax z``, ``z~_b = lse(alpha) + G(v_b)`` and ``z~_c = -log(E_c exp(-alpha_c) +
    exp(-z~_b))`` with ``E_c = -log v_c`` (the Gumbel of location ``alpha_c`` truncated below
    ``z~_b`` by its inverse CDF), written without the estimator's softplus form."""
    K, C = alpha.shape
    N = U.shape[0]
    u = np.maximum(U[:, :K * C].reshape(N, K, C), _TINY)
    v = np.maximum(U[:, K * C:].reshape(N, K, C), _TINY)
    z = alpha - np.log(-np.log(u))
    b = np.argmax(z, axis=-1)
    lse = np.log(np.exp(alpha - alpha.max(axis=-1, keepdims=True)).sum(axis=-1, keepdims=True)) \
        + alpha.max(axis=-1, keepdims=True)
    E = -np.log(v)
    M = lse - np.log(np.take_along_axis(E, b[..., None], axis=-1))
    zt = -np.log(E * np.exp(-alpha) + np.exp(-M))
    zt = np.where(np.arange(C) == b[..., None], M, zt)
    return rebar_values_categorical_z(alpha, objective, b, z, zt, eta, tau, surrogate)


def gap_near_probability(p_c: np.ndarray, x: float) -> np.ndarray:
    """``P(z_b - z_c < x | b)`` for ``c != b`` (any ``b``): ``p_c (e^x - 1) / (1 + p_c (e^x -
    1))``. Given ``b`` the maximum is ``M = lse + G`` (independent of ``b``), and given ``M``,
    ``P(z_b - z_c < x | M) = 1 - exp(-exp(alpha_c - M) (e^x - 1))``; averaging over
    ``exp(-G) ~ Exp(1)`` gives the formula."""
    c = p_c * math.expm1(x)
    return c / (1.0 + c)


def _gap(log_c0: np.ndarray, w: np.ndarray, s: float, eps: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray]:
    """Gaps ``d = M - z_c > 0`` from ``w`` in ``[0, 1)`` with density ``r = (1 - eps) p + eps
    e``: ``p(d) = c0 e^d exp(-c0 (e^d - 1))`` (the truncated Gumbel's gap given ``M``, ``c0 =
    exp(alpha_c - M)``), ``e`` exponential of scale ``s``; returns ``d`` and ``p / r``."""
    first = w < 1 - eps
    w2 = np.where(first, w / (1 - eps), (w - (1 - eps)) / np.maximum(eps, _TINY))
    tail = -np.log1p(-w2)  # Exp(1)
    c0 = np.exp(log_c0)
    d = np.where(first, np.log1p(tail / c0), s * tail)
    log_p = log_c0 + d - c0 * np.expm1(d)
    log_e = -d / s - math.log(s)
    weight = 1.0 / ((1 - eps) + eps * np.exp(np.minimum(log_e - log_p, 700.0)))
    return d, weight


def _relaxation_given_b(alpha: np.ndarray, lse: np.ndarray, b: np.ndarray, W: np.ndarray,
                        s: float, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``z (N, K, C)`` with ``argmax z = b`` and its importance weight ``(N,)`` from ``W (N, K,
    C)``: ``W[..., b_k]`` gives the max ``M_k = lse_k + G``, the other entries the gaps."""
    N, K, C = W.shape
    isb = np.arange(C) == b[:, None]  # (K, C)
    wb = np.take_along_axis(W, np.broadcast_to(b[None, :, None], (N, K, 1)), axis=-1)
    M = lse[None, :, None] - np.log(-np.log(np.maximum(wb, _TINY)))  # (N, K, 1)
    log_c0 = np.maximum(alpha[None] - M, -700.0)
    d, wgt = _gap(log_c0, W, s, eps[None])
    z = np.where(isb, M, M - d)
    return z, np.prod(np.where(isb, 1.0, wgt), axis=(1, 2))


@functools.lru_cache(maxsize=4 * RANDOMIZATIONS)
def _sobol_set(dim: int, r: int, j: int) -> np.ndarray:
    """Scrambled Sobol set ``j`` of randomization ``r``: ``2**LOG2_POINTS`` points in ``[0,
    1)**dim`` (the same sets serve every sample ``b``: each conditional integral stays
    unbiased, and the error bound adds the half-widths, whatever their correlation)."""
    eng = qmc.Sobol(dim, scramble=True, seed=np.random.default_rng([11, r, j]))
    W = np.minimum(eng.random_base2(LOG2_POINTS), np.nextafter(1.0, 0.0))
    W.setflags(write=False)
    return W


def _conditional_rqmc_categorical(alpha: np.ndarray, objective: Any, b: np.ndarray, eta: float,
                                  tau: float, surrogate: Any, confidence: float
                                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean ``(K, C)``, second moment ``(KC, KC)`` of one sample's categorical estimate given
    ``b``, and the Student-t half-width covering all their entries."""
    K, C = alpha.shape
    p = softmax(alpha)
    m = alpha.max(axis=-1)
    lse = m + np.log(np.exp(alpha - m[:, None]).sum(axis=-1))
    s = 2.0 * tau
    base = mixture_fraction(K * (C - 1))
    eps = np.where(gap_near_probability(p, 3 * tau) < base, base, 0.0)
    eps[np.arange(K), b] = 0.0
    # g = A(z) + B(z~) with z, z~ independent given b: E[g] = E[A] + E[B] and E[g g^T] =
    # E[A A^T] + E[B B^T] + E[A] E[B]^T + E[B] E[A]^T, so z and z~ are integrated over two
    # independent scrambled Sobol sets of K C dimensions each (not one set of 2 K C): the
    # products of the two means are unbiased, and the lower dimension converges faster
    means, seconds = [], []
    for r in range(RANDOMIZATIONS):
        sets = []
        for j in range(2):
            W = _sobol_set(K * C, r, j)
            sets.append(_relaxation_given_b(alpha, lse, b, W.reshape(-1, K, C), s, eps))
        (z, wz), (zt, wzt) = sets
        N = z.shape[0]
        bb = np.broadcast_to(b, (N, K)).astype(np.int64)
        A, B = _categorical_parts(alpha, objective, bb, z, zt, eta, tau, surrogate)
        A, B = A.reshape(N, K * C), B.reshape(N, K * C)
        mA, mB = (wz[:, None] * A).mean(axis=0), (wzt[:, None] * B).mean(axis=0)
        means.append(mA + mB)
        seconds.append((A * wz[:, None]).T @ A / N + (B * wzt[:, None]).T @ B / N
                       + np.outer(mA, mB) + np.outer(mB, mA))
    Mn, S2 = np.array(means), np.array(seconds)
    q = stats.t.ppf(0.5 + confidence / 2, RANDOMIZATIONS - 1) / math.sqrt(RANDOMIZATIONS)
    half = q * max(float(Mn.std(axis=0, ddof=1).max()), float(S2.std(axis=0, ddof=1).max()))
    return Mn.mean(axis=0).reshape(K, C), S2.mean(axis=0), half


def _moments(name: str, dist: Any, params: object, objective: Any, n: int, eta: float,
             tau: float, surrogate: Any) -> Moments:
    def compute() -> Moments:
        pr = make_problem(dist, params, objective)
        if pr.dist.name not in ("bernoulli", "categorical"):
            raise ValueError(f"{name} is defined for Bernoulli and categorical variables only")
        cat = pr.dist.name == "categorical"
        theta, K, C = pr.params, pr.K, pr.C
        D = K * C if cat else K  # entries of one estimate
        # one RQMC integral over 2K (Bernoulli) or 2KC (categorical) uniforms per sample b:
        # about six objective evaluations (values and gradients at z, z~ and b) per point, the
        # C x C Jacobians of z~, and a (D, D) second moment
        check_enumeration_size(C, K)
        per_b = RANDOMIZATIONS * 2.0**LOG2_POINTS * (D * D + 6 * _grad_ops(pr) + 60.0 * D
                                                     + (4.0 * K * C * C if cat else 0.0))
        check_budget(f"{name.upper()}'s certified moments ({C}**{K} samples b, RQMC for each)",
                     memory_bytes=8.0 * (2.0**LOG2_POINTS * (12 * D + (2 * K * C * C if cat else 0))
                                         + 2 * RANDOMIZATIONS * D * D + 3 * float(C)**K * D),
                     operations=float(C)**K * per_b)
        configs = Distribution.enumerate_configs(K, C)
        q = config_probabilities(pr).ravel()
        live = np.flatnonzero(q > 0)
        mean, second, err = np.zeros(D), np.zeros((D, D)), 0.0
        for idx in live:
            if cat:
                m_b, s_b, h_b = _conditional_rqmc_categorical(
                    theta, objective, configs[idx], eta, tau, surrogate, 1 - 1e-6 / len(live))
            else:
                m_b, s_b, h_b = _conditional_rqmc(theta, objective, configs[idx], eta, tau,
                                                  surrogate, 1 - 1e-6 / len(live))
            mean += q[idx] * m_b.ravel()
            second += q[idx] * s_b
            err += q[idx] * h_b
        cov = second - np.outer(mean, mean)
        # err covers the mean and the second moment; the outer product moves by 2 |mean| err + err^2
        bound = err + 2 * float(np.abs(mean).max()) * err + err * err
        over = ("z and z~ given b (independent Sobol sets; each variable's relaxation "
                "parameterized by its maximum, a Gumbel of location lse(alpha_k), and its C - 1 "
                "gaps to the maximum, truncated Gumbels), with defensive importance sampling on "
                "the gaps") if cat else \
            "(z, z~) given b with defensive importance sampling"
        return Moments(mean.reshape(theta.shape), 0.5 * (cov + cov.T) / n,
                       f"certified: exact sum over the {len(live)} samples b with q(b) > 0, "
                       f"randomized QMC over {over} "
                       f"({RANDOMIZATIONS} scrambled Sobol sets of 2^{LOG2_POINTS} points each), "
                       f"{name.upper()} eta={eta}, tau={tau}; error bound = sum of Student-t "
                       "half-widths at joint confidence 1 - 1e-6", bound)
    opts = {"n": n, "eta": eta, "tau": tau, "surrogate": surrogate}
    return cached_moments(name, dist, params, objective, opts, compute)


def rebar_moments(dist: Any, params: object, objective: Any, n: int = 1, eta: float = 1.0,
                  tau: float = 0.5) -> Moments:
    """Certified mean and covariance of REBAR with ``n`` samples (module docstring)."""
    return _moments("rebar", dist, params, objective, n, eta, tau, None)


def relax_moments(dist: Any, params: object, objective: Any, n: int = 1, eta: float = 1.0,
                  tau: float = 0.5, surrogate: Any = None) -> Moments:
    """Certified mean and covariance of RELAX with ``n`` samples and the control variate
    ``eta * surrogate`` (``None``: the objective's relaxation, i.e. REBAR)."""
    return _moments("relax", dist, params, objective, n, eta, tau, surrogate)
