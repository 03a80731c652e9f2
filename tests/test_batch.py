"""Leading batch axes: a (2, 3) batch gives what each problem gives alone, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from reference import REGISTRY
from verify.problems import builtin_problems

CASES = [pytest.param(est, dist, id=f"{est.name}-{dist}")
         for est in REGISTRY.values() for dist in est.distributions]


@pytest.mark.parametrize("backend", ["numpy", "cpu", "cuda"])
@pytest.mark.parametrize("est,dist", CASES)
def test_batch_axes(est, dist, backend, rng, small_cuda_grid):
    _, pr = builtin_problems(dist)[0]
    opts = dict(est.examples[-1])
    params = pr.params + 0.3 * rng.standard_normal((2, 3) + pr.params.shape)
    noise = est.draw_noise(rng, dist, params.shape, 3, **opts)
    out = est.estimate(dist, params, pr.objective, noise, backend=backend, **opts)
    assert out.shape == (2, 3, 3) + pr.params.shape
    for i, j in [(0, 0), (1, 2)]:
        single = est.estimate(dist, params[i, j], pr.objective,
                              {k: v[i, j] for k, v in noise.items()}, backend="numpy", **opts)
        assert np.allclose(out[i, j], single, rtol=0, atol=1e-12 * max(1.0, np.abs(single).max()))
