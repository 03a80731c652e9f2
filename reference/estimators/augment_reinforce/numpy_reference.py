"""The binary augment-REINFORCE family: AR, ARM and DisARM (U2G), NumPy reference and records.

All three estimate ``grad_phi E_{z~q}[f(z)]`` for factorial Bernoulli logits ``phi`` of shape
``(..., K)``, ``q(z_k = 1) = sigmoid(phi_k)``, from values of ``f`` on binary configurations
only (no derivatives, no relaxation), with one uniform vector ``u ~ U[0, 1)^K`` per draw.

Formulas (DESIGN.md section 6; each verified against the enumeration gradient by the oracle,
``verify.moments.augment_reinforce``, and by hand for ``K = 1``, where all three have mean
``sigmoid(phi) sigmoid(-phi) (f(1) - f(0))``)::

    AR      z  = 1[u < sigmoid(phi)]                      g_k = f(z) (1 - 2 u_k)
    ARM     b1 = 1[u > sigmoid(-phi)], b2 = 1[u < sigmoid(phi)]
                                                          g_k = (f(b1) - f(b2)) (u_k - 1/2)
    DisARM  same b1, b2
            g_k = 1/2 (f(b1) - f(b2)) (-1)^{b2_k} 1[b1_k != b2_k] sigmoid(|phi_k|)

DisARM is ARM conditioned on the pair ``(b1, b2)``: given ``b1_k != b2_k`` the uniform
``u_k`` is uniform on ``[0, sigmoid(-|phi_k|))`` (``b2_k = 1``) or on
``(sigmoid(|phi_k|), 1)`` (``b2_k = 0``), where ``u_k - 1/2`` has mean
``-sigmoid(|phi_k|)/2`` or ``+sigmoid(|phi_k|)/2``; given ``b1_k = b2_k`` the mean is 0. So
``Var(DisARM) <= Var(ARM)`` coordinate by coordinate. The formulas of DESIGN.md needed no
correction. U2G (Yin, Ho, Yan, Qian & Zhou 2020, "Probabilistic best subset selection by
gradient-based optimization") is the same estimator as DisARM and is not registered separately.

Every option set averages ``n`` independent draws (``n`` antithetic pairs for ARM and DisARM).
Thresholds are computed with the shared two-branch sigmoid
(:func:`reference.distributions.sigmoid` here, ``reference._core`` in the kernels), so all
backends take the same decisions on the same noise.

Noise: ``u`` of shape ``(*batch, R, n, K)``, Uniform[0, 1); draw ``i`` of replicate ``r``
uses ``u[..., r, i, :]``.

Queries (``z``, int64):
* AR: ``(*batch, R, n, K)``, ``z[..., r, i, :] = 1[u[..., r, i, :] < sigmoid(phi)]`` (the
  sampling mapping of :mod:`reference.distributions`); ``aux["u"]`` is the noise.
* ARM: ``(*batch, R, 2n, K)``, ``z[..., r, 2i, :] = b1`` and ``z[..., r, 2i+1, :] = b2`` of
  pair ``i``; ``aux["u"]`` is the noise (phase 2 needs ``u`` for the weight ``u - 1/2``).
* DisARM: the same ``z`` as ARM; no aux (the weight depends on ``b1``, ``b2`` and ``phi``).

Cost per replicate: ``n`` evaluations of ``f`` (AR), ``2n`` (ARM, DisARM).

References: AR and ARM: Yin & Zhou 2019, "ARM: Augment-REINFORCE-Merge Gradient for
Stochastic Binary Networks" (arXiv 1807.11143). DisARM: Dong, Mnih & Tucker 2020, "DisARM: An
Antithetic Gradient Estimator for Binary Latent Variables" (arXiv 2006.10680); U2G: Yin, Ho,
Yan, Qian & Zhou 2020 (arXiv 2006.06448).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reference._validate import positive_int
from reference.contract import Answers, Backend, Cost, Estimator, NoiseSpec, Queries, backend_paths
from reference.distributions import sigmoid

__all__ = ["AR", "ARM", "DISARM", "ar_sample", "arm_pairs", "ar_estimate", "arm_estimate",
           "disarm_estimate", "disarm_weight"]


# --------------------------------------------------------------------------- the formulas
def ar_sample(phi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``z = 1[u < sigmoid(phi)]``; ``phi`` broadcasts against ``u`` (``(..., K)``), int64."""
    return (u < sigmoid(phi)).astype(np.int64)


def arm_pairs(phi: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The antithetic pair ``b1 = 1[u > sigmoid(-phi)]``, ``b2 = 1[u < sigmoid(phi)]`` (int64)."""
    b1 = (u > sigmoid(-phi)).astype(np.int64)
    b2 = (u < sigmoid(phi)).astype(np.int64)
    return b1, b2


def ar_estimate(f: np.ndarray, u: np.ndarray) -> np.ndarray:
    """AR averaged over draws: ``g_k = (1/n) sum_i f_i (1 - 2 u_ik)``.

    ``f``: ``(..., n)``; ``u``: ``(..., n, K)``; returns ``(..., K)``.
    """
    return (f[..., None] * (1.0 - 2.0 * u)).mean(axis=-2)


def arm_estimate(f1: np.ndarray, f2: np.ndarray, u: np.ndarray) -> np.ndarray:
    """ARM averaged over pairs: ``g_k = (1/n) sum_i (f(b1_i) - f(b2_i)) (u_ik - 1/2)``.

    ``f1 = f(b1)``, ``f2 = f(b2)``: ``(..., n)``; ``u``: ``(..., n, K)``; returns ``(..., K)``.
    """
    return ((f1 - f2)[..., None] * (u - 0.5)).mean(axis=-2)


def disarm_weight(phi: np.ndarray, b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """``(-1)^{b2_k} 1[b1_k != b2_k] sigmoid(|phi_k|)``, shaped like ``b1``."""
    sign = np.where(b2 == 1, -1.0, 1.0)
    return np.where(b1 != b2, sign, 0.0) * sigmoid(np.abs(phi))


def disarm_estimate(phi: np.ndarray, b1: np.ndarray, b2: np.ndarray, f1: np.ndarray,
                    f2: np.ndarray) -> np.ndarray:
    """DisARM averaged over pairs: ``g_k = (1/n) sum_i 1/2 (f1_i - f2_i) w_ik``.

    ``w = disarm_weight(phi, b1, b2)``; ``b1``, ``b2``: ``(..., n, K)``; ``f1``, ``f2``:
    ``(..., n)``; ``phi`` broadcasts against ``b1``; returns ``(..., K)``.
    """
    return (0.5 * (f1 - f2)[..., None] * disarm_weight(phi, b1, b2)).mean(axis=-2)


# ------------------------------------------------------ phase helpers shared by backends
def aux_u(queries: Queries, n: int, name: str) -> np.ndarray:
    """``queries.aux["u"]`` with shape ``(B, R, n, K)`` (clear error otherwise)."""
    u = queries.aux.get("u") if queries.aux else None
    B, R, _, K = queries.z.shape
    if u is None:
        raise ValueError(f"{name} needs queries.aux['u'] (the noise) in phase 2")
    if u.shape != (B, R, n, K):
        raise ValueError(f"queries.aux['u'] must have shape (*batch, R, n, K) = "
                         f"(..., {R}, {n}, {K}), got {u.shape[1:]} after the batch axes")
    return u


def check_query_count(queries: Queries, M: int, name: str) -> None:
    """Phase 2 needs ``M`` configurations per replicate (``n`` or ``2n``)."""
    if queries.z.shape[2] != M:
        raise ValueError(f"{name} with these options needs {M} configurations per replicate "
                         f"(queries.z of shape (*batch, R, {M}, K)), got {queries.z.shape[2]}")


def _ar_queries(dist: str, phi: np.ndarray, noise: dict, opts: dict) -> Queries:
    u = noise["u"]  # (B, R, n, K)
    return Queries(ar_sample(phi[:, None, None, :], u), {"u": u})


def _pair_queries(with_u: bool):
    def queries(dist: str, phi: np.ndarray, noise: dict, opts: dict) -> Queries:
        u = noise["u"]  # (B, R, n, K)
        b1, b2 = arm_pairs(phi[:, None, None, :], u)
        B, R, n, K = u.shape
        z = np.stack([b1, b2], axis=3).reshape(B, R, 2 * n, K)  # b1 at 2i, b2 at 2i + 1
        return Queries(z, {"u": u} if with_u else {})

    return queries


def _ar_combine(dist: str, phi: np.ndarray, queries: Queries, answers: Answers,
                opts: dict) -> np.ndarray:
    check_query_count(queries, opts["n"], "AR")
    return ar_estimate(answers.f_z, aux_u(queries, opts["n"], "AR"))


def _split_pairs(queries: Queries, answers: Answers, n: int, name: str):
    check_query_count(queries, 2 * n, name)
    B, R, _, K = queries.z.shape
    z = queries.z.reshape(B, R, n, 2, K)
    f = answers.f_z.reshape(B, R, n, 2)
    return z[..., 0, :], z[..., 1, :], f[..., 0], f[..., 1]


def _arm_combine(dist: str, phi: np.ndarray, queries: Queries, answers: Answers,
                 opts: dict) -> np.ndarray:
    _, _, f1, f2 = _split_pairs(queries, answers, opts["n"], "ARM")
    return arm_estimate(f1, f2, aux_u(queries, opts["n"], "ARM"))


def _disarm_combine(dist: str, phi: np.ndarray, queries: Queries, answers: Answers,
                    opts: dict) -> np.ndarray:
    b1, b2, f1, f2 = _split_pairs(queries, answers, opts["n"], "DisARM")
    return disarm_estimate(phi[:, None, None, :], b1, b2, f1, f2)


NUMPY_AR = Backend(_ar_queries, _ar_combine)
NUMPY_ARM = Backend(_pair_queries(True), _arm_combine)
NUMPY_DISARM = Backend(_pair_queries(False), _disarm_combine)


# ---------------------------------------------------------------------------- the records
def _u_shape(K: int, C: int, opts: dict[str, Any]) -> tuple[int, ...]:
    return (opts["n"], K)


_U_AR = NoiseSpec("u", "uniform", _u_shape,
                  "u[..., r, i, k]: the uniform of variable k in draw i of replicate r; "
                  "z_k = 1[u_k < sigmoid(phi_k)], weight 1 - 2 u_k")
_U_PAIR = NoiseSpec("u", "uniform", _u_shape,
                    "u[..., r, i, k]: the uniform of variable k in pair i of replicate r; "
                    "b1_k = 1[u_k > sigmoid(-phi_k)], b2_k = 1[u_k < sigmoid(phi_k)]")


def _check_n(opts: dict[str, Any]) -> dict[str, Any]:
    opts["n"] = positive_int(opts["n"], "n", 1)
    return opts


_ARM_REF = "Yin & Zhou 2019, ARM (ICLR 2019, arXiv 1807.11143)"
_DISARM_REF = ("Dong, Mnih & Tucker 2020, DisARM (NeurIPS 2020, arXiv 2006.10680); "
               "U2G: Yin, Ho, Yan, Qian & Zhou 2020 (arXiv 2006.06448), the same estimator")

AR = Estimator(
    name="ar",
    title="AR (augment-REINFORCE) for Bernoulli logits, n draws averaged",
    distributions=("bernoulli",),
    unbiased=True,
    noise=(_U_AR,),
    option_defaults={"n": 1},
    check_options=_check_n,
    cost_fn=lambda K, C, o: Cost(o["n"]),
    backends=backend_paths("augment_reinforce", "AR"),
    exact_moments_path="verify.moments.augment_reinforce:ar_moments",
    references=_ARM_REF,
    examples=({"n": 1}, {"n": 3}),
)

ARM = Estimator(
    name="arm",
    title="ARM (augment-REINFORCE-merge) for Bernoulli logits, n antithetic pairs averaged",
    distributions=("bernoulli",),
    unbiased=True,
    noise=(_U_PAIR,),
    option_defaults={"n": 1},
    check_options=_check_n,
    cost_fn=lambda K, C, o: Cost(2 * o["n"]),
    backends=backend_paths("augment_reinforce", "ARM"),
    exact_moments_path="verify.moments.augment_reinforce:arm_moments",
    references=_ARM_REF,
    examples=({"n": 1}, {"n": 2}),
)

DISARM = Estimator(
    name="disarm",
    title="DisARM (= U2G) for Bernoulli logits, n antithetic pairs averaged",
    distributions=("bernoulli",),
    unbiased=True,
    noise=(_U_PAIR,),
    option_defaults={"n": 1},
    check_options=_check_n,
    cost_fn=lambda K, C, o: Cost(2 * o["n"]),
    backends=backend_paths("augment_reinforce", "DISARM"),
    exact_moments_path="verify.moments.augment_reinforce:disarm_moments",
    references=_DISARM_REF,
    examples=({"n": 1}, {"n": 3}),
)
