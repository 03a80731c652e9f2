"""The exact computations that scripts/public_ports.py uses to explain a public library's
failure are themselves checked against the oracle (no public library needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from reference import get_estimator
from verify.problems import builtin_problems

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
if str(SCRIPTS) not in sys.path:  # the script imports its neighbour _cli, as when it runs
    sys.path.append(str(SCRIPTS))
_spec = importlib.util.spec_from_file_location("public_ports", SCRIPTS / "public_ports.py")
pp = importlib.util.module_from_spec(_spec)
sys.modules["public_ports"] = pp  # its dataclasses look their module up there
_spec.loader.exec_module(pp)

BERNOULLI = builtin_problems("bernoulli")


@pytest.mark.parametrize("label,problem", BERNOULLI, ids=[b[0] for b in BERNOULLI])
@pytest.mark.parametrize("n", [1, 3])
def test_cell_moments_of_disarm_equal_the_oracle(label, problem, n):
    # the cell method with DisARM's own per-pair value reproduces the oracle's DisARM moments
    m = pp.pair_cell_moments(problem, n, lambda fb, fbt, w: 0.5 * (fb - fbt) * w, "disarm")
    ref = get_estimator("disarm").exact_moments("bernoulli", problem.params, problem.objective, n=n)
    scale = max(np.abs(ref.cov).max(), 1e-300)
    np.testing.assert_allclose(m.mean, ref.mean, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(m.cov, ref.cov, rtol=0, atol=1e-9 * scale)


def test_storch_disarm_values_match_its_moments():
    # the per-sample formula and the exact moments describe the same estimator: the formula's
    # values on many draws pass the check against the exact moments, and differ from DisARM's
    from verify import check_samples

    _, problem = BERNOULLI[4]
    est = get_estimator("disarm")
    noise = est.draw_noise(np.random.default_rng(0), "bernoulli", problem.params.shape, 4000, n=2)
    values = pp.storch_disarm_values(problem, noise)
    assert check_samples(values, pp.storch_disarm_moments(problem, 2)).passed
    ref = est.estimate("bernoulli", problem.params, problem.objective, noise, n=2)
    assert np.abs(values - ref).max() > 0.1 * np.abs(ref).max()


@pytest.mark.parametrize("label,problem", BERNOULLI, ids=[b[0] for b in BERNOULLI])
def test_numpyro_explanation_is_reinforce_plus_half_the_mean_at_zero_logits(label, problem):
    # away from phi = 0 it is REINFORCE (n = 1, baseline 0); at phi_k = 0 the mean gains
    # E[f] / 2 on coordinate k (the covariance is checked against REINFORCE where no logit is 0)
    from verify import exact_expectation

    m = pp.numpyro_bernoulli_moments(problem)
    ref = get_estimator("reinforce").exact_moments("bernoulli", problem.params,
                                                   problem.objective, n=1)
    zero = problem.params == 0.0
    expected = ref.mean + 0.5 * exact_expectation(problem) * zero
    np.testing.assert_allclose(m.mean, expected, rtol=1e-9, atol=1e-15)
    if not zero.any():
        np.testing.assert_allclose(m.cov, ref.cov, rtol=1e-9, atol=1e-15)
