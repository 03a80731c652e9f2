"""The statistical check and the port checker catch what they must and pass what they must."""

from __future__ import annotations

import numpy as np
import pytest

import verify
from reference import get_estimator, random_table
from reference.estimators.score_function.numpy_reference import loo_weights
from verify.moments import Moments
from verify.stats import replicates_for_bias


@pytest.fixture
def problem(rng):
    return verify.make_problem("categorical", rng.normal(size=(2, 3)), random_table(2, 3, 11))


def _loo_samples(problem, R, seed, n=3):
    est = get_estimator("reinforce_loo")
    noise = est.draw_noise(np.random.default_rng(seed), "categorical", problem.params.shape, R, n=n)
    return est.estimate("categorical", problem.params, problem.objective, noise, n=n)


def test_correct_samples_pass(problem):
    m = get_estimator("reinforce_loo").exact_moments("categorical", problem.params,
                                                     problem.objective, n=3)
    for seed in range(5):
        res = verify.check_samples(_loo_samples(problem, 3000, seed), m)
        assert res.passed, res.message
        assert res.rank == 4  # (K=2, C=3): each row of a categorical score sums to zero


def test_shifted_mean_fails(problem):
    m = get_estimator("reinforce_loo").exact_moments("categorical", problem.params,
                                                     problem.objective, n=3)
    g = _loo_samples(problem, 3000, 0)
    shift = np.zeros_like(m.mean)
    shift[0, 0], shift[0, 1] = 0.5 * np.sqrt(m.variance_trace), -0.5 * np.sqrt(m.variance_trace)
    res = verify.check_samples(g + shift, m)
    assert not res.passed and "sample mean" in res.message


def test_null_direction_deviation_fails(problem):
    # each row of a categorical score sums to zero exactly: a shift along (1, 1, 1) is caught
    m = get_estimator("reinforce_loo").exact_moments("categorical", problem.params,
                                                     problem.objective, n=3)
    g = _loo_samples(problem, 500, 1) + 1e-4
    res = verify.check_samples(g, m)
    assert not res.passed and "exact variance is zero" in res.message


def test_scaled_variance_fails(problem):
    m = get_estimator("reinforce_loo").exact_moments("categorical", problem.params,
                                                     problem.objective, n=3)
    g = _loo_samples(problem, 3000, 2)
    mu = m.mean.ravel()
    res = verify.check_samples(mu + 1.5 * (g.reshape(3000, -1) - mu), m)
    assert not res.passed and "variance" in res.message


def test_failure_message_reproduces(problem):
    wrong = Moments(np.zeros((2, 3)), np.eye(6) * 1e-6, "deliberately wrong")
    res = verify.mc_check("reinforce_loo", problem, R=500, seed=3, moments=wrong, n=3)
    assert not res.passed
    snippet = res.message.split("Reproduce with:\n\n", 1)[1]
    # the snippet is self-contained and recomputes the true moments, so it passes
    namespace: dict = {}
    exec(snippet, namespace)
    assert namespace["problem"].params.tolist() == problem.params.tolist()


def _port_from(combine_weights):
    """A port of REINFORCE-LOO written from scratch on NumPy, with pluggable weights."""
    from reference import CATEGORICAL

    def port(params, noise, objective, n):
        z = CATEGORICAL.sample(params, noise["u"])
        w = combine_weights(objective(z))
        s = CATEGORICAL.score(params, z)
        return (w[..., None, None] * s).sum(axis=-3)

    return port


def test_port_checker_accepts_a_correct_port(problem):
    rep = verify.check_port(_port_from(loo_weights), "reinforce_loo", problem, n=3)
    assert rep.passed, rep.message
    assert rep.max_abs_diff <= rep.tolerance


def test_port_checker_catches_wrong_normalisation(problem):
    # dividing by n instead of n - 1: wrong numbers and a biased estimator
    def wrong(f):
        return (f - f.mean(-1, keepdims=True)) / f.shape[-1]

    rep = verify.check_port(_port_from(wrong), "reinforce_loo", problem, n=3)
    assert not rep.samples_agree and not rep.distribution.passed
    assert "Reproduce with" in rep.message
    with pytest.raises(AssertionError, match="differs from the reference"):
        verify.check_port(_port_from(wrong), "reinforce_loo", problem, n=3, raise_on_failure=True)


def test_port_checker_separates_noise_from_distribution(problem):
    # a port that draws its own noise: different numbers, right distribution
    est = get_estimator("reinforce_loo")
    own = np.random.default_rng(999)

    def port(params, noise, objective, n):
        fresh = {"u": own.random(noise["u"].shape)}
        return est.estimate("categorical", params, objective, fresh, n=n)

    rep = verify.check_port(port, "reinforce_loo", problem, n=3)
    assert not rep.samples_agree
    assert rep.distribution.passed, rep.distribution.message


def test_port_checker_reports_shape_mismatch(problem):
    rep = verify.check_port(lambda params, noise, objective, n: np.zeros(3), "reinforce_loo",
                            problem, n=3, distribution=False)
    assert not rep.passed and "shape" in rep.message


def test_check_samples_validates():
    m = Moments(np.zeros(2), np.eye(2), "x")
    with pytest.raises(ValueError, match="shape"):
        verify.check_samples(np.zeros((10, 3)), m)
    with pytest.raises(ValueError, match="alpha"):
        verify.check_samples(np.zeros((10, 2)), m, alpha=0)
    with pytest.raises(ValueError, match="NaN"):
        verify.check_samples(np.full((10, 2), np.nan), m)


# ------------------------------------------------------------------ per-entry error bounds
def test_check_samples_widens_by_per_entry_bounds_entry_by_entry():
    """Issue 16: moments that know some entries only to within a bound (``mean_error``,
    ``cov_error``) let the check pass a sample whose deviation lies within that entry's bound,
    and only that entry's: a bound on another entry does not hide the deviation."""
    rng = np.random.default_rng(0)
    R = 4000
    base = Moments(np.zeros(3), np.eye(3), "test")
    shifted = rng.standard_normal((R, 3)) + np.array([0.2, 0.0, 0.0])
    assert not verify.check_samples(shifted, base).passed
    ok = Moments(np.zeros(3), np.eye(3), "test", mean_error=np.array([0.25, 0.0, 0.0]),
                 cov_error=np.zeros((3, 3)))
    assert verify.check_samples(shifted, ok).passed
    elsewhere = Moments(np.zeros(3), np.eye(3), "test", mean_error=np.array([0.0, 0.25, 0.25]),
                        cov_error=np.zeros((3, 3)))
    assert not verify.check_samples(shifted, elsewhere).passed
    wide = rng.standard_normal((R, 3)) * np.array([1.0, np.sqrt(2.5), 1.0])
    assert not verify.check_samples(wide, base).passed
    cov_ok = np.zeros((3, 3))
    cov_ok[1, 1] = 1.6
    assert verify.check_samples(wide, Moments(np.zeros(3), np.eye(3), "test",
                                              mean_error=np.zeros(3), cov_error=cov_ok)).passed
    cov_other = np.zeros((3, 3))
    cov_other[0, 0] = 1.6
    assert not verify.check_samples(wide, Moments(np.zeros(3), np.eye(3), "test",
                                                  mean_error=np.zeros(3),
                                                  cov_error=cov_other)).passed


def test_per_entry_bounds_are_validated_and_reported():
    m = Moments(np.array([1e-18, 1.0, 0.0]), np.eye(3), "test",
                mean_error=np.array([1e-17, 1e-16, 0.0]), cov_error=np.zeros((3, 3)))
    np.testing.assert_allclose(m.relative_error(), [10.0, 1e-16, 0.0])
    assert m.scaled(4).mean_error is m.mean_error
    np.testing.assert_array_equal(m.scaled(4).cov_error, m.cov_error / 4)
    me, ce = Moments(np.zeros(2), np.eye(2), "t", error_bound=1e-3).entry_errors()
    np.testing.assert_array_equal(me, [1e-3, 1e-3])
    np.testing.assert_array_equal(ce, np.full((2, 2), 1e-3))
    g = np.random.default_rng(1).standard_normal((50, 3))
    for bad, match in ((np.zeros(2), "shape"), (np.array([0.0, -1.0, 0.0]), ">= 0"),
                       (np.array([np.nan, 0.0, 0.0]), "not finite")):
        with pytest.raises(ValueError, match=match):
            verify.check_samples(g, Moments(np.zeros(3), np.eye(3), "t", mean_error=bad))


def test_check_samples_refuses_what_is_no_covariance_by_name():
    """Found by the issue 16 battery: a tuple for the moments, a covariance of the wrong shape,
    asymmetric or indefinite, a negative or misshaped range bound, complex or string samples,
    and options of the wrong type reached NumPy's errors (or passed); each is now refused by
    name."""
    rng = np.random.default_rng(0)
    s = rng.standard_normal((400, 2))
    good = Moments(np.zeros(2), np.eye(2), "t")
    assert verify.check_samples(s, good).passed
    with pytest.raises(TypeError, match="verify.Moments"):
        verify.check_samples(s, (np.zeros(2), np.eye(2)))
    bad = [(np.eye(3), "shape"), (np.array([[1.0, 0.5], [0.0, 1.0]]), "symmetric"),
           (np.array([[1.0, 2.0], [2.0, 1.0]]), "negative eigenvalue"), (np.ones(2), "shape")]
    for cov, match in bad:
        with pytest.raises(ValueError, match=match):
            verify.check_samples(s, Moments(np.zeros(2), cov, "t"))
    for rb, match in ((np.ones(3), "shape"), (np.array([1.0, -1.0]), ">= 0")):
        with pytest.raises(ValueError, match=match):
            verify.check_samples(s, Moments(np.zeros(2), np.eye(2), "t", range_bound=rb))
    with pytest.raises(TypeError, match="samples"):
        verify.check_samples(s + 1j, good)
    with pytest.raises(TypeError, match="samples"):
        verify.check_samples(s.astype(str), good)
    for kw, match in (({"alpha": "0.1"}, "alpha"), ({"alpha": None}, "alpha"),
                      ({"null_rtol": "x"}, "null_rtol")):
        with pytest.raises(TypeError, match=match):
            verify.check_samples(s, good, **kw)
    with pytest.raises(TypeError, match="error_bound"):
        verify.check_samples(s, Moments(np.zeros(2), np.eye(2), "t", error_bound="0"))
    m = Moments(np.ones(2), np.eye(2), "t")
    assert replicates_for_bias(m, 0.1, M=5.0) >= 2
    for kw, exc, match in (({"M": np.nan}, ValueError, "M"), ({"M": -1.0}, ValueError, "M"),
                           ({"M": np.ones(3)}, ValueError, "M"),
                           ({"M": 5.0, "R_max": -5}, ValueError, "R_max"),
                           ({"M": 5.0, "bias": "0.1"}, TypeError, "bias")):
        kw = dict(kw)
        bias = kw.pop("bias", 0.1)
        with pytest.raises(exc, match=match):
            replicates_for_bias(m, bias, **kw)
