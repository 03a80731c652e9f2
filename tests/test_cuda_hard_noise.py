"""CUDA kernels against the NumPy reference on noise placed at the hard points (issue 16).

``tests/test_registry.py::test_cuda_port`` compares a few replicates of random noise under the
simulator, which almost never lands on a branch point. Here every record, on each of its
distributions and option sets, gets noise drawn from a pool of hard values: 0 and the
smallest uniforms (``log`` and ``-log(-log u)`` at their ends), the largest double below 1,
the exact CDF steps of the problem (``sigmoid(+-phi)`` and the cumulative softmax sums) and
their neighbours one ulp away on each side, and 1/2; the logits are saturated (``+-50``,
``-30``), tied (equal logits in a row, equal k-subset scores) and 0. Enough replicates that
each pool value lands in each noise position about twice on average (``R = 2 * len(pool)``),
so every branch of the samplers (the comparison at a CDF step, the ``u = 0`` guard) is taken.
Phase 1 must agree exactly (discrete queries) and phase 2 to 1e-12 of the output's scale.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import reference
from reference.distributions import sigmoid, softmax

_PARAMS = {
    "bernoulli": np.array([50.0, -30.0, 0.0]),
    "categorical": np.array([[50.0, -50.0, 0.0], [0.3, 0.3, 0.3]]),
    "ksubset": np.array([50.0, -50.0, 0.0, 0.0, 1.0]),
}


def _pool(dist: str, params: np.ndarray, near_ties: bool = True) -> np.ndarray:
    if dist == "bernoulli":
        steps = np.concatenate([sigmoid(params), sigmoid(-params)])
    elif dist == "categorical":
        steps = np.cumsum(softmax(params), axis=-1).ravel()
    else:
        steps = np.array([0.5])
    steps = np.concatenate([steps, [0.25, 0.5, 0.75, 1 / 3, 2 / 3]])
    near = np.concatenate([np.nextafter(steps, 0.0), np.nextafter(steps, 1.0)]) if near_ties \
        else np.zeros(0)
    ends = [0.0, 5e-324, 1e-300, 1e-17, np.nextafter(1.0, 0.0), 1.0 - 2**-40]
    pool = np.unique(np.concatenate([steps, near, ends]))
    return pool[(pool >= 0.0) & (pool < 1.0)]


def _cases():
    for name, est in reference.REGISTRY.items():
        for dist in est.distributions:
            for i, opts in enumerate(est.examples):
                if dist == "ksubset" and "k" not in opts:
                    continue
                yield pytest.param(name, dist, dict(opts), id=f"{name}-{dist}-{i}")


def _noise(est, dist: str, params: np.ndarray, R: int, pool: np.ndarray, opts: dict,
           rng: np.random.Generator) -> dict[str, np.ndarray]:
    template = est.draw_noise(rng, dist, params.shape, R, **opts)
    return {k: rng.choice(pool, size=v.shape) for k, v in template.items()}


@pytest.mark.parametrize("name,dist,opts", list(_cases()))
def test_cuda_matches_numpy_on_hard_noise(name, dist, opts, small_cuda_grid):
    est = reference.REGISTRY[name]
    params = _PARAMS[dist]
    K = params.shape[0]
    C = params.shape[1] if dist == "categorical" else 2
    f = reference.random_table(K, C, seed=5, domain="categorical" if dist == "categorical"
                               else "binary")
    # the swap family compares Dirichlet entries built from these uniforms: two of them one ulp
    # apart make its argmin a rounding decision, which NumPy and the kernels now make with the
    # same scalar log1p (test_swap_backends_agree_on_dirichlet_entries_one_ulp_apart)
    pool = _pool(dist, params)
    # a fixed seed per case (str hashes change between processes)
    rng = np.random.default_rng(zlib.crc32(f"{name}/{dist}/{sorted(opts.items())}".encode()))
    noise = _noise(est, dist, params, 2 * len(pool), pool, opts, rng)
    q_ref = est.queries(dist, params, noise, backend="numpy", **opts)
    q_gpu = est.queries(dist, params, noise, backend="cuda", **opts)
    np.testing.assert_array_equal(q_gpu.z, q_ref.z)
    for key, ref in q_ref.aux.items():
        np.testing.assert_allclose(np.asarray(q_gpu.aux[key], dtype=np.float64),
                                   np.asarray(ref, dtype=np.float64), rtol=1e-12,
                                   atol=1e-12 * max(1.0, float(np.nanmax(np.abs(ref), initial=0))),
                                   equal_nan=True, err_msg=key)
    answers = reference.evaluate(f, q_ref)
    ref = est.combine(dist, params, q_ref, answers, backend="numpy", **opts)
    out = est.combine(dist, params, q_ref, answers, backend="cuda", **opts)
    assert np.all(np.isfinite(ref)), "the reference is not finite on this noise"
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12 * scale)


# Once a known disagreement (issue 16): NumPy's vectorized log1p(-1/3) is one ulp off the C
# library's scalar log1p that the kernels call, which flipped an argmin between pi entries one
# ulp apart. The NumPy reference now computes E = -log1p(-u) and w = exp(...) with the scalar
# functions (reference.estimators.swap.numpy_reference._libm), so the backends agree.
def test_swap_backends_agree_on_dirichlet_entries_one_ulp_apart():
    est = reference.REGISTRY["ars_plus"]
    params = _PARAMS["categorical"]
    f = reference.random_table(2, 3, seed=5, domain="categorical")
    third = 1 / 3
    noise = {"u_pi": np.array([[[np.nextafter(1.0, 0.0), 1e-17, np.nextafter(0.5, 0.0)],
                                [np.nextafter(third, 1.0), third, 0.75]]]),
             "u_j": np.array([np.nextafter(third, 1.0)]),
             "u_l": np.array([[np.nextafter(2 / 3, 1.0), np.nextafter(0.25, 0.0)]])}
    ref = est.estimate("categorical", params, f, noise, backend="numpy")
    np.testing.assert_allclose(est.estimate("categorical", params, f, noise, backend="cpu"), ref,
                               rtol=1e-12, atol=1e-12)
