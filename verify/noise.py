"""Feeding our noise to framework code: conversions of the primitive uniforms.

Our estimators take explicit noise, mostly Uniform[0, 1) arrays (``Estimator.noise``).
Framework code rarely takes uniforms: ``torch.distributions.Categorical.sample`` and
``torch.bernoulli`` draw their own, ``jax.random.categorical`` takes a key, a binary Concrete
takes one logistic draw, I-MLE's Sum-of-Gamma noise needs ``gammaincinv``. To run a port on our
noise (``verify.check_port``'s sample level), convert the uniforms with these functions and
hand the results to the framework code in place of its own draws (``sampler(...)`` replaced by
the given samples, ``rsample`` by ``logits + noise``...).

Every function takes float64 uniforms of any shape and returns float64 (int64 for samples);
``TINY`` is the smallest normal float64 (``u = 0`` stays finite).

=====================  ==============================================================
function               what it gives (the mapping the reference uses)
=====================  ==============================================================
``bernoulli_samples``  ``z_k = 1[u_k < sigmoid(phi_k)]``
``categorical_samples``inverse CDF: ``z_k = min{c : u_k S_{C-1} < S_c}``, ``S`` the running
                       sums of ``exp(alpha_k - max alpha_k)`` left to right
``ksubset_samples``    exact k-subset samples: items decided from the **last** to the
                       first, ``j = n-1, ..., 0``, ``z_j = 1[u_j < P(j chosen | r left)]``
                       (:mod:`reference.ksubset`)
``standard_gumbel``    ``G = -log(-log(max(u, TINY)))``
``logistic_pair``      binary Concrete's one logistic draw from our two uniforms
                       ``u[..., 2]``: ``L = G(u[..., 1]) - G(u[..., 0])``
``logistic``           ``log(max(u, TINY)) - log1p(-u)`` (law of a logistic draw; REBAR's
                       ``z = phi - logistic(u)``)
``exponential``        ``E = -log1p(-u)`` (the swap family's Dirichlet); Gumbel-Rao uses
                       ``-log(max(u, TINY))``, see ``feed``
``dirichlet``          ``pi = E / sum(E)`` summed left to right: Dirichlet(1, ..., 1)
``sum_of_gamma``       ``eps = (tau/k)(sum_i (k/i) gammaincinv(1/k, u_i) - log s)``
=====================  ==============================================================

:func:`feed` gives, for any registered estimator, every framework-ready array of one noise
dict at once (the README's table "how to feed our noise to your code" lists them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reference import ksubset as ks
from reference._validate import float_array
from reference.distributions import BERNOULLI, CATEGORICAL
from reference.estimators.multi_sample.numpy_reference import (
    carms_copula_uniforms,
    carms_order,
    carms_order_index,
)
from reference.registry import get_estimator

__all__ = ["bernoulli_samples", "categorical_samples", "ksubset_samples", "standard_gumbel",
           "logistic_pair", "logistic", "exponential", "dirichlet", "sum_of_gamma", "feed",
           "FEEDS", "TINY"]

TINY = ks.TINY


def _uniform(u: object, name: str = "u") -> np.ndarray:
    arr = float_array(u, name)
    if arr.size and (arr.min() < 0.0 or arr.max() >= 1.0):
        raise ValueError(f"{name} must lie in [0, 1)")
    return arr


def bernoulli_samples(phi: object, u: object) -> np.ndarray:
    """``phi (*batch, K)``, ``u (*batch, *sample, K)`` -> int64 ``z`` shaped like ``u``."""
    return BERNOULLI.sample(phi, u)


def categorical_samples(alpha: object, u: object) -> np.ndarray:
    """``alpha (*batch, K, C)``, ``u (*batch, *sample, K)`` -> int64 ``z`` shaped like ``u``."""
    return CATEGORICAL.sample(alpha, u)


def ksubset_samples(theta: object, u: object, k: int) -> np.ndarray:
    """``theta (*batch, n)``, ``u (*batch, *sample, n)`` -> int64 binary ``z`` shaped like
    ``u`` with ``k`` ones (items decided from ``n - 1`` down to 0)."""
    return ks.sample(theta, u, k)


def standard_gumbel(u: object) -> np.ndarray:
    """``-log(-log(max(u, TINY)))``, shaped like ``u``."""
    return ks.gumbel(_uniform(u))


def logistic_pair(u: object) -> np.ndarray:
    """``u (..., 2)`` -> ``L = G(u[..., 1]) - G(u[..., 0])`` ``(...)``: the single logistic
    draw of a binary Concrete (``y = sigmoid((phi + L) / tau)``) from our two uniforms."""
    u = _uniform(u)
    if u.ndim < 1 or u.shape[-1] != 2:
        raise ValueError(f"u must have a last axis of length 2, got {u.shape}")
    G = ks.gumbel(u)
    return G[..., 1] - G[..., 0]


def logistic(u: object) -> np.ndarray:
    """``log(max(u, TINY)) - log1p(-u)``: standard logistic from one uniform."""
    u = _uniform(u)
    return np.log(np.maximum(u, TINY)) - np.log1p(-u)


def exponential(u: object) -> np.ndarray:
    """``-log1p(-u)``: standard exponential from one uniform."""
    return -np.log1p(-_uniform(u))


def dirichlet(u: object) -> np.ndarray:
    """``u (..., C)`` -> ``pi = E / (E_0 + ... + E_{C-1})``, ``E = exponential(u)``: a
    Dirichlet(1, ..., 1) draw per row (the swap family's ``pi``)."""
    E = exponential(u)
    return E / np.cumsum(E, axis=-1)[..., -1:]


def sum_of_gamma(u: object, k: int, tau: float = 1.0) -> np.ndarray:
    """``u (..., s, n)`` -> Sum-of-Gamma perturbations ``eps (..., n)`` (I-MLE's k-subset
    noise, :func:`reference.ksubset.sum_of_gamma_noise`); ``1 <= k <= n``, ``tau > 0``
    finite, as the estimators' options."""
    arr = _uniform(u)
    if arr.ndim < 2:
        raise ValueError(f"u must have shape (..., s, n), got {arr.shape}")
    k = ks.check_k(k, arr.shape[-1])
    t = float(float_array(tau, "tau")) if np.ndim(tau) == 0 else None
    if t is None or not t > 0:
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
    return ks.sum_of_gamma_noise(arr, k, t)


# ------------------------------------------------------------------- per estimator
def _samples(dist: str, params: np.ndarray, u: np.ndarray, opts: dict) -> np.ndarray:
    if dist == "ksubset":
        return ks.sample(params, u, opts["k"])
    return (BERNOULLI if dist == "bernoulli" else CATEGORICAL).sample(params, u)


def _score_like(dist, params, noise, opts):
    return {"z": _samples(dist, params, noise["u"], opts)}


def _gumbel_softmax(dist, params, noise, opts):
    if dist == "bernoulli":
        return {"logistic": logistic_pair(noise["u"])}
    return {"gumbel": standard_gumbel(noise["u"])}


def _perturb(dist, params, noise, opts):
    return {"gumbel": standard_gumbel(noise["u"])}


def _ksubset_perturb(dist, params, noise, opts):
    if opts["perturbation"] == "sum_of_gamma":
        return {"perturbation": sum_of_gamma(noise["u"], opts["k"], opts["tau"])}
    return {"perturbation": opts["tau"] * standard_gumbel(noise["u"])}


def _swap(dist, params, noise, opts):
    from reference.estimators.swap.numpy_reference import other_index, reference_index

    C = params.shape[-1]
    out = {"dirichlet": dirichlet(noise["u_pi"])}
    if "u_j" in noise:  # ARS, ARS+: one reference category per replicate
        out["j"] = reference_index(noise["u_j"], C)
    if "u_l" in noise:
        u_l = noise["u_l"]
        if "j" in out:  # ARS+: l_k for the replicate's j, u_l (..., R, K)
            out["l"] = other_index(u_l, out["j"][..., None], C)
        else:  # ARSM+CE: l_kj for every reference j, u_l (..., R, K, C)
            out["l"] = other_index(u_l, np.arange(C), C)
    return out


def _gumbel_rao(dist, params, noise, opts):
    return {"z": _samples(dist, params, noise["u_z"], opts),
            "exponential": -np.log(np.maximum(_uniform(noise["u"]), TINY))}


def _rebar(dist, params, noise, opts):
    u = _uniform(noise["u"])
    if dist == "categorical":  # u, v (..., R, n, K, C); b = argmax(alpha + G), lowest index on ties
        G = standard_gumbel(u)
        b = np.argmax(params[..., None, None, :, :] + G, axis=-1).astype(np.int64)
        return {"b": b, "gumbel": G, "v": _uniform(noise["v"], "v")}
    return {"b": BERNOULLI.sample(params, u), "logistic": logistic(u),
            "v": _uniform(noise["v"], "v")}


def _carms(dist, params, noise, opts):
    C = 2 if dist == "bernoulli" else params.shape[-1]
    idx = carms_order_index(noise["u_perm"], C)
    orders = np.stack([carms_order(C, m) for m in range(C * (C - 1) // 2)])
    z = get_estimator("carms").queries(dist, params, noise, n=opts["n"]).z
    return {"copula_uniform": carms_copula_uniforms(noise["u"]), "order": orders[idx], "z": z}


def _without_replacement(dist, params, noise, opts):
    z = get_estimator("unord").queries(dist, params, noise, n=opts["n"]).z
    return {"gumbel_joint": standard_gumbel(noise["u"]), "z": z}


#: estimator name -> (function of (dist, params, noise, options), what each key holds)
FEEDS: dict[str, tuple[Any, str]] = {}
for _names, _fn, _doc in (
        (("reinforce", "reinforce_loo", "ar", "nvil", "muprop", "double_cv", "straight_through",
          "gst", "reinmax", "simple", "vimco"), _score_like,
         "z: the samples (categorical/Bernoulli/k-subset), int64 shaped like u"),
        (("arm", "disarm"), lambda d, p, nz, o: {"b2": BERNOULLI.sample(p, nz["u"]),
                                                 "b1": (nz["u"] > 1 - BERNOULLI.probs(p)[
                                                     ..., None, None, :]).astype(np.int64)},
         "b1 = 1[u > sigmoid(-phi)], b2 = 1[u < sigmoid(phi)] (the antithetic pair), int64"),
        (("gumbel_softmax", "st_gumbel_softmax"), _gumbel_softmax,
         "categorical gumbel (n, K, C): G, feed alpha + G; Bernoulli logistic (n, K): L, feed "
         "phi + L"),
        (("imle", "aimle"), _perturb, "gumbel (S, K, C): eps, the perturbation alpha + eps"),
        (("imle_ksubset", "aimle_ksubset"), _ksubset_perturb,
         "perturbation (S, n): eps (Sum-of-Gamma or tau G), feed theta + eps"),
        (("ars", "arsm", "ars_plus", "arsm_plus", "arsm_plus_ce"), _swap,
         "dirichlet (K, C): pi; j () (ARS, ARS+): the reference category; l (ARS+: (K,) for "
         "that j; ARSM+CE: (K, C), one per j): the other index"),
        (("gumbel_rao",), _gumbel_rao,
         "z (n, K): samples; exponential (n, m, K, C): E of the conditional Gumbels"),
        (("rebar", "relax"), _rebar,
         "Bernoulli: b (n, K): samples; logistic (n, K): L with z = phi - L; categorical: "
         "gumbel (n, K, C): G with z = alpha + G, b (n, K) = argmax z; v: the conditional "
         "relaxation's uniform (used as is)"),
        (("carms",), _carms,
         "copula_uniform (n, K): v, the Dirichlet copula's uniforms; order (K, C): the order of "
         "the categories for the inverse CDF (z_ik = order[k, j] for the first j whose "
         "cumulative probability exceeds v_ik); z (n, K): the samples"),
        (("unord", "reinforce_wor"), _without_replacement,
         "gumbel_joint (N,): one standard Gumbel per configuration of the joint space, in the "
         "order of Distribution.enumerate_configs; the sample is the n largest log q(z) + G "
         "(ties to the lower index), z (n, K) in decreasing order")):
    for _n in _names:
        FEEDS[_n] = (_fn, _doc)


def feed(estimator: str, dist: str, params: object, noise: Mapping[str, object],
         **options: Any) -> dict[str, np.ndarray]:
    """Every framework-ready array of ``noise`` for ``estimator`` on ``params`` (the shapes
    of ``Estimator.noise``: ``(*batch, R, ...)``); what each key holds is ``FEEDS[name][1]``.
    Samples are exactly those the reference queries on that noise."""
    est = get_estimator(estimator)
    d = est.distribution(dist)
    p = d.validate(params)
    opts = est.options(**options)
    if est.name not in FEEDS:
        raise ValueError(f"no noise conversion registered for {est.name}")
    if not isinstance(noise, Mapping):
        raise TypeError("noise must be a mapping from noise names to arrays")
    names = {s.name for s in est.noise}
    if set(noise) != names:
        raise ValueError(f"{est.name} takes noise {sorted(names)}, got {sorted(noise)}")
    arrays = {k: _uniform(v, f"noise[{k!r}]") for k, v in noise.items()}
    return FEEDS[est.name][0](d.name, p, arrays, opts)
