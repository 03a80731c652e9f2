"""float32 on the fast paths: outputs are float32, within documented tolerance of float64.

Tolerance: the kernels accumulate in float64 and round inputs and outputs to float32, so
entries agree with the float64 reference to about 1e-6 relative to the estimates' scale; a
sample may differ only when a uniform lies within float32 rounding of a CDF boundary (the
seeds below have none).
"""

from __future__ import annotations

import numpy as np
import pytest

from reference import REGISTRY, random_table

FLOAT32_RTOL = 1e-5


@pytest.mark.parametrize("name", ["reinforce", "reinforce_loo"])
@pytest.mark.parametrize("dist", ["bernoulli", "categorical"])
@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_float32_close_to_float64(name, dist, backend, rng, small_cuda_grid):
    est = REGISTRY[name]
    shape = (2, 3) if dist == "bernoulli" else (2, 3, 4)
    params = rng.normal(size=shape)
    obj = random_table(3, 2 if dist == "bernoulli" else 4, seed=5)
    noise = est.draw_noise(rng, dist, shape, 6, n=3)
    ref = est.estimate(dist, params, obj, noise, backend="numpy", n=3)
    out = est.estimate(dist, params.astype(np.float32), obj, noise, backend=backend, n=3)
    assert out.dtype == np.float32
    assert np.abs(out - ref).max() <= FLOAT32_RTOL * np.abs(ref).max()
