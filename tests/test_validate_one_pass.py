"""The one-pass checks of large arrays (reference._validate) answer what NumPy's answer, and the
public calls still name the bad entries of large inputs."""

from __future__ import annotations

import numpy as np
import pytest

from reference import REGISTRY
from reference._validate import ONE_PASS_MIN, all_finite, count_outside, float_array, int_config_array

N = 3 * ONE_PASS_MIN + 5  # above the threshold, with a remainder after any vector width


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 0.0])
@pytest.mark.parametrize("where", [0, 7, N - 1])
def test_all_finite_and_count_outside_match_numpy(dtype, bad, where):
    x = np.random.default_rng(where).random(N).astype(dtype)
    x[where] = bad
    x[N // 2] = 1.0 if bad == 0.0 else x[N // 2]  # 1.0 is outside [0, 1), 0.0 inside
    expect_outside = int(np.sum(~((x >= 0.0) & (x < 1.0))))
    assert all_finite(x) == bool(np.all(np.isfinite(x)))
    assert count_outside(x, 0.0, 1.0) == expect_outside
    for view in (x.reshape(-1, 1), x[::2], x[::-1]):
        assert all_finite(view) == bool(np.all(np.isfinite(view)))
        assert count_outside(view, 0.0, 1.0) == int(np.sum(~((view >= 0.0) & (view < 1.0))))


def test_count_outside_on_integers():
    z = np.random.default_rng(1).integers(0, 4, (N, 3))
    assert count_outside(z, 0, 4) == 0
    z[5, 2], z[N - 1, 0] = 4, -1
    assert count_outside(z, 0, 4) == 2
    assert count_outside(np.asfortranarray(z), 0, 4) == 2
    assert count_outside(z[:, ::2], 0, 4) == 2 and count_outside(z[:, 1:2], 0, 4) == 0


def test_large_inputs_get_the_small_inputs_errors():
    x = np.full((N, 2), 0.25)
    x[9, 1] = np.nan
    with pytest.raises(ValueError, match="contains NaN entries"):
        float_array(x, "x")
    x[9, 1] = -np.inf
    with pytest.raises(ValueError, match="contains infinite entries"):
        float_array(x.astype(np.float32), "x", allow_float32=True)
    with pytest.raises(ValueError, match=r"got range \[7, 7\]"):
        int_config_array(np.full((N, 3), 7), "z", 3, 7)
    est = REGISTRY["arm"]
    phi = np.zeros((N, 4))
    u = np.full((N, 1, 1, 4), 0.5)
    u[N - 1, 0, 0, 3] = 1.0
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\)"):
        est.queries("bernoulli", phi, {"u": u}, backend="cpu")
    u[N - 1, 0, 0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.queries("bernoulli", phi, {"u": u}, backend="cpu")
    phi[3, 2] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        est.queries("bernoulli", phi, {"u": np.full((N, 1, 1, 4), 0.5)}, backend="cpu")
