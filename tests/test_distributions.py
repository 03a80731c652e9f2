"""Distributions: the uniform -> sample mapping, log q, scores, stability, and the fast samplers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import BERNOULLI, CATEGORICAL, get_distribution
from reference.distributions import Distribution, log_softmax
from verify import strategies as vst


def test_categorical_mapping_at_cdf_boundaries():
    alpha = np.log(np.array([[0.25, 0.5, 0.25]]))
    # u * S_{C-1} < S_c decides; at u = 0.25 exactly, category 0 is not chosen
    u = np.array([[0.0], [0.2499999], [0.25], [0.7499999], [0.75], [0.9999999]])
    z = CATEGORICAL.sample(np.broadcast_to(alpha, (6, 1, 3)), u)
    assert z.ravel().tolist() == [0, 0, 1, 1, 2, 2]


def test_bernoulli_mapping():
    phi = np.zeros(1)
    u = np.array([[0.0], [0.4999], [0.5], [0.9]])
    assert BERNOULLI.sample(np.broadcast_to(phi, (4, 1)), u).ravel().tolist() == [1, 1, 0, 0]


@given(vst.logits("categorical", K=st.integers(1, 3), C=st.integers(2, 5)))
def test_log_prob_normalised_and_finite(alpha):
    K, C = alpha.shape
    Z = Distribution.enumerate_configs(K, C)
    lq = CATEGORICAL.log_prob(alpha, Z)
    assert np.all(np.isfinite(lq))
    assert abs(np.logaddexp.reduce(lq)) < 1e-12
    s = CATEGORICAL.score(alpha, Z)
    assert np.all(np.isfinite(s))
    # E_q[score] = 0
    assert np.abs((np.exp(lq)[:, None, None] * s).sum(0)).max() < 1e-12


@given(vst.logits("bernoulli", K=st.integers(1, 5)))
def test_bernoulli_log_prob_normalised_and_finite(phi):
    Z = Distribution.enumerate_configs(phi.size, 2)
    lq = BERNOULLI.log_prob(phi, Z)
    assert np.all(np.isfinite(lq)) and abs(np.logaddexp.reduce(lq)) < 1e-12
    assert np.all(np.isfinite(BERNOULLI.probs(phi)))


@pytest.mark.parametrize("dist", ["bernoulli", "categorical"])
def test_score_is_gradient_of_log_prob(dist, rng):
    d = get_distribution(dist)
    params = rng.normal(size=(3,) if dist == "bernoulli" else (3, 4))
    z = rng.integers(0, d.num_categories(params), size=3)
    h = 1e-6
    fd = np.zeros_like(params)
    for idx in np.ndindex(params.shape):
        e = np.zeros_like(params)
        e[idx] = h
        fd[idx] = (d.log_prob(params + e, z) - d.log_prob(params - e, z)) / (2 * h)
    assert np.allclose(d.score(params, z), fd, atol=1e-8)


def test_extreme_logits_have_no_nan():
    alpha = np.array([[50.0, -50.0, 0.0], [-50.0, -50.0, -50.0]])
    assert np.all(np.isfinite(log_softmax(alpha)))
    z = CATEGORICAL.sample(alpha, np.array([[0.999999, 0.5]]))
    assert z.tolist() == [[0, 1]]
    phi = np.array([50.0, -50.0])
    assert BERNOULLI.sample(phi, np.array([[0.999999, 1e-20]])).tolist() == [[1, 0]]


@pytest.mark.parametrize("dist", ["bernoulli", "categorical"])
@given(data=st.data())
def test_frequencies_match_probabilities(dist, data):
    # the mapping draws exactly q: compare empirical frequencies on a fine deterministic grid of u
    params = data.draw(vst.logits(dist, K=1, C=st.integers(2, 4), max_abs=3.0))
    d = get_distribution(dist)
    u = (np.arange(100000) + 0.5) / 100000
    z = d.sample(np.broadcast_to(params, (u.size,) + params.shape), u[:, None])
    freq = np.bincount(z[:, 0], minlength=d.num_categories(params)) / u.size
    p = d.probs(params)
    p = np.array([1 - p[0], p[0]]) if dist == "bernoulli" else p[0]
    assert np.abs(freq - p).max() <= 1.5e-5


def test_enumerate_configs_order():
    Z = Distribution.enumerate_configs(2, 3)
    assert Z.tolist()[:4] == [[0, 0], [0, 1], [0, 2], [1, 0]] and Z.shape == (9, 2)


@pytest.mark.parametrize("bad,err", [
    (np.array([[np.nan, 0.0]]), "NaN"),
    (np.array([[np.inf, 0.0]]), "infinite"),
    (np.array([[0.0]]), "C >= 2"),
    (np.array(0.0), "at least 2 axes"),
])
def test_bad_categorical_logits(bad, err):
    with pytest.raises(ValueError, match=err):
        CATEGORICAL.validate(bad)


def test_bad_uniforms():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        BERNOULLI.sample(np.zeros(2), np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        BERNOULLI.sample(np.zeros(2), np.array([[0.5, 0.5, 0.5]]))
    with pytest.raises(ValueError, match="unknown distribution"):
        get_distribution("poisson")


@pytest.mark.parametrize("dist", ["bernoulli", "categorical"])
@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_fast_samplers_match_reference(dist, backend, rng, small_cuda_grid):
    import importlib

    mod = importlib.import_module(f"reference._{backend}")
    shape = (2, 5) if dist == "bernoulli" else (2, 5, 4)
    params = rng.normal(size=shape) * 10
    params[0, 0] = 50.0
    params[1, 1] = -50.0
    u = rng.random((2, 7, 5))
    ref = get_distribution(dist).sample(params, u)
    assert np.array_equal(mod.sample(dist, np.ascontiguousarray(params), u), ref)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cpu_categorical_sampler_decides_as_the_device_function(dtype, rng):
    # the CPU sampler caches each row's running sums and counts the sums at or below the
    # threshold instead of stopping at the first above it; its decisions must be those of
    # sample_categorical_row bit for bit, here at the places where they could part: u = 0,
    # the largest u below 1, thresholds equal to a running sum (equal logits, u = c / C),
    # sums that stop growing (logits 800 below the max: exp underflows to 0), ties, and more
    # samples than one chunk of the cached sums, and a NaN logit
    from numba import njit

    from reference import _cpu

    row = _cpu.CORE.sample_categorical_row

    @njit
    def one_by_one(alpha, u, z):
        for b in range(u.shape[0]):
            for m in range(u.shape[1]):
                row(alpha[b], u[b, m], z[b, m])

    B, M, K, C = 3, 2 * _cpu._CHUNK + 5, 6, 7
    alpha = rng.normal(size=(B, K, C)) * 4
    alpha[0, 0] = 0.0  # equal logits: the running sums are 1, 2, ..., C
    alpha[0, 1] = [0.0, -800.0, 0.0, -800.0, -800.0, 0.0, -800.0]
    alpha[1, 0] = [-800.0] * 6 + [0.0]
    alpha[1, 1] = [0.0] + [-800.0] * 6
    alpha[2, 0] = [3.0, 3.0, 1.0, 3.0, 3.0, 1.0, 3.0]
    alpha[2, 1, 2] = np.nan  # refused by validation; the kernels still agree (C - 1)
    u = rng.random((B, M, K))
    u[:, 0] = 0.0
    u[:, 1] = np.nextafter(1.0, 0.0)
    u[:, 2:2 + C] = (np.arange(C) / C)[:, None]
    alpha, u = alpha.astype(dtype), u.astype(dtype)
    want = np.empty((B, M, K), np.int64)
    one_by_one(alpha, u, want)
    got = np.empty_like(want)
    _cpu._sample_categorical(alpha, u, got)
    assert np.array_equal(got, want)
    assert np.array_equal(_cpu.sample("categorical", alpha, u), want)


def test_cpu_onehot_is_the_references_bit_for_bit():
    # the CPU backends' relaxed points of hard samples (straight-through, I-MLE, the
    # straight-through variants): exactly the NumPy references' 0/1 rows, none outside [0, C)
    from reference import _cpu

    z = np.random.default_rng(2).integers(-1, 6, size=(4, 3, 2, 5))
    got = _cpu.onehot(z, 5)
    want = (z[..., None] == np.arange(5)).astype(np.float64)
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.array_equal(got, want) and got[z == 5].sum() == 0 and got[z == -1].sum() == 0
