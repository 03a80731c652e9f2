"""Tests run for every registered estimator: one record in the registry is one more row here.

For each (estimator, distribution, options) and built-in problem:
* the exact mean equals the exact gradient of the record's target (unbiased estimators), to
  rounding: ``E_q[f]`` unless the record declares another (VIMCO's multi-sample bound);
* the NumPy reference passes the Monte Carlo check against the exact moments;
* the CPU kernel and the CUDA kernel (simulator without a GPU) go through the port checker:
  same numbers as the reference on shared noise, and (CPU) the exact moments in distribution.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_port_ok

import verify
from reference import REGISTRY
from verify.problems import builtin_problems

CASES = [
    pytest.param(est, dist, opts, id=f"{est.name}-{dist}-{'-'.join(f'{k}{v}' for k, v in opts.items())}")
    for est in REGISTRY.values()
    for dist in est.distributions
    for opts in est.examples
]


def _problems(dist):
    return builtin_problems(dist)


@pytest.mark.parametrize("est,dist,opts", CASES)
def test_exact_mean_is_gradient(est, dist, opts):
    for label, pr in _problems(dist):
        m = est.exact_moments(dist, pr.params, pr.objective, **opts)
        assert m.cov.shape == (pr.params.size,) * 2
        assert np.allclose(m.cov, m.cov.T, rtol=0, atol=1e-14 * max(1.0, np.abs(m.cov).max()))
        assert np.linalg.eigvalsh(m.cov).min() >= -1e-12 * max(1.0, np.abs(m.cov).max()), label
        if est.unbiased:
            grad = est.target_gradient(dist, pr.params, pr.objective, **opts)
            err = np.abs(m.mean - grad).max()
            assert err <= 1e-12 * max(1.0, np.abs(grad).max()) + m.error_bound, (label, err)


@pytest.mark.parametrize("est,dist,opts", CASES)
def test_reference_passes_mc_check(est, dist, opts):
    record = est
    for i, (_, pr) in enumerate(_problems(dist)):
        m = record.exact_moments(pr.dist, pr.params, pr.objective, **opts)
        if not (np.any(m.mean != 0) or np.any(m.cov != 0)):
            # a degenerate problem (saturated scores: the estimator is identically zero) gives
            # the statistical check nothing to test (it reports "uninformative"); the exact
            # answer there is that every replicate is exactly zero
            noise = record.draw_noise(np.random.default_rng(100 + i), pr.dist, pr.params.shape,
                                      3000, **opts)
            g = record.estimate(pr.dist, pr.params, pr.objective, noise, **opts)
            assert np.all(g == 0), f"{est.name}: nonzero estimates where the exact law is a point mass at 0"
            continue
        verify.assert_mc(est, pr, R=3000, seed=100 + i, backend="numpy", moments=m, **opts)


@pytest.mark.parametrize("est,dist,opts", CASES)
def test_cpu_port(est, dist, opts):
    for i, (_, pr) in enumerate(_problems(dist)):
        assert_port_ok(verify.check_port(verify.backend_port(est, "cpu", dist), est, pr, R=2000,
                                         seed=i, **opts))


@pytest.mark.parametrize("est,dist,opts", CASES)
def test_cuda_port(est, dist, opts, small_cuda_grid):
    # Under the simulator every thread is a Python thread: sample-level agreement on a few
    # replicates only; the distribution-level check runs on a real GPU.
    from conftest import HAS_GPU

    for i, (_, pr) in enumerate(_problems(dist)[:2]):
        assert_port_ok(verify.check_port(verify.backend_port(est, "cuda", dist), est, pr,
                                         R_shared=5, seed=i, distribution=HAS_GPU, **opts))


@pytest.mark.parametrize("est", list(REGISTRY.values()), ids=lambda e: e.name)
def test_record_is_complete(est):
    assert est.name and est.title and est.references
    assert set(est.backends) == {"numpy", "cpu", "cuda"}
    for backend in ("numpy", "cpu"):
        b = est.backend(backend)
        assert callable(b.queries) and callable(b.combine)
    assert callable(est.exact_moments_path and __import__("importlib").import_module(
        est.exact_moments_path.partition(":")[0]).__dict__[est.exact_moments_path.partition(":")[2]])
    for opts in est.examples:
        cost = est.cost(3, 4, **opts)
        assert cost.evals >= 0 and cost.grad_evals >= 0
