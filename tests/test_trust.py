"""The oracle never passes what it cannot vouch for (issue 16, first part).

* Phase 2 refuses queries made for other parameters or options, on every backend.
* A non-finite objective, non-finite moments or samples give a clear error, never a verdict.
* The report fails every row whose CUDA backend was not checked.
* Exact quantities are accurate in relative terms per entry at saturated logits, certified
  against arbitrary precision (mpmath).
* The enumeration refuses oversized problems up front.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
import verify
from reference import get_estimator
from reference.objectives import Objective, TableObjective
from verify import report
from verify.exact import conditional_means, exact_gradient_mp
from verify.moments import Moments
from verify.moments.score_function import (
    reinforce_loo_moments,
    reinforce_loo_moments_mp,
    reinforce_moments,
    reinforce_moments_mp,
)


# ----------------------------------------------------------- queries must belong to params
@pytest.mark.parametrize("backend", ["numpy", "cpu", "cuda"])
def test_combine_refuses_queries_made_for_other_parameters(backend, rng, small_cuda_grid):
    est = get_estimator("aimle")
    a = rng.standard_normal((2, 3))
    f = reference.random_table(2, 3, seed=0)
    noise = est.draw_noise(rng, "categorical", a.shape, 4)
    q = est.queries("categorical", a, noise, backend=backend)
    answers = reference.evaluate(f, q)
    with pytest.raises(ValueError, match="other parameters or options"):
        est.combine("categorical", np.concatenate([a, a], -1), q, answers, backend=backend)
    # made for these parameters, they are accepted
    assert est.combine("categorical", a, q, answers, backend=backend).shape == (4, 2, 3)


def _shapes(q):
    return (q.z.shape, {k: np.shape(v) for k, v in q.aux.items()},
            None if q.y is None else q.y.shape)


@pytest.mark.parametrize("name", list(reference.REGISTRY))
def test_combine_refuses_queries_for_other_options_or_sizes(name, rng):
    """Every record: queries for one option set (or one category count) are refused by phase 2
    with another, on the CPU backend whose kernels would otherwise read outside the arrays."""
    est = reference.REGISTRY[name]
    dist = est.distributions[-1]
    opts = dict(est.examples[-1])
    shape = {"bernoulli": (3,), "categorical": (2, 3), "ksubset": (5,)}[dist]
    params = rng.standard_normal(shape)
    q = est.queries(dist, params, est.draw_noise(rng, dist, shape, 2, **opts), **opts)
    K, C = (shape[0], 2) if dist != "categorical" else shape
    f = reference.random_table(K, C, seed=1)
    answers = reference.evaluate(f, q)
    if dist == "categorical":
        other = rng.standard_normal((2, 4))  # C = 4
        q4 = est.queries(dist, other, est.draw_noise(rng, dist, other.shape, 2, **opts), **opts)
        if _shapes(q4) != _shapes(q):
            with pytest.raises((ValueError, TypeError)):
                est.combine(dist, other, q, answers, backend="cpu", **opts)
        else:  # queries that do not depend on C (e.g. REINFORCE's z) are valid for C = 4 too
            assert est.combine(dist, other, q, answers, backend="cpu", **opts).shape == (2, 2, 4)
    bigger = {k: v + 1 for k, v in opts.items()
              if k in ("n", "S") and not isinstance(v, bool)}
    if bigger:
        with pytest.raises((ValueError, TypeError)):
            est.combine(dist, params, q, answers, backend="cpu", **{**opts, **bigger})


# ------------------------------------------------------------------------- NaN never passes
class _XLogX(Objective):
    """``f(z) = sum_k s_k log s_k`` with ``s = z``: NaN at 0 (0 * log 0), as users write it."""

    def __init__(self, K: int) -> None:
        self.K, self.C, self.domain = K, 2, "binary"
        self.jit_fn = None
        self.jit_data = None

    def __call__(self, z):
        z = np.asarray(z, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (z * np.log(z)).sum(axis=-1)

    def relaxed(self, y):
        y = np.asarray(y, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (y * np.log(y)).sum(axis=-1), np.log(y) + 1.0


def test_nan_objective_gives_an_error_not_an_answer():
    f = _XLogX(2)
    phi = np.array([0.3, -0.2])
    with pytest.raises(ValueError, match="not finite"):
        verify.exact_gradient("bernoulli", phi, f)
    with pytest.raises(ValueError, match="not finite"):
        verify.exact_expectation("bernoulli", phi, f)
    for name in ("reinforce", "reinforce_loo", "disarm", "straight_through"):
        with pytest.raises(ValueError, match="not finite"):
            get_estimator(name).exact_moments("bernoulli", phi, f)
    # Gumbel-Softmax only ever evaluates grad f strictly inside (0, 1), where this extension is
    # finite: its moments exist and are finite (no error is the right answer there)
    m = get_estimator("gumbel_softmax").exact_moments("bernoulli", phi, f)
    assert np.all(np.isfinite(m.mean)) and np.all(np.isfinite(m.cov))


def test_nan_ksubset_objective_gives_an_error():
    f = _XLogX(4)
    for name in ("simple", "imle_ksubset"):
        with pytest.raises(ValueError, match="not finite"):
            get_estimator(name).exact_moments("ksubset", np.zeros(4), f, k=2,
                                              **({"perturbation": "gumbel"} if name != "simple"
                                                 else {}))


@pytest.mark.parametrize("field", ["mean", "cov", "range_bound", "error_bound"])
def test_check_samples_refuses_non_finite_moments(field, rng):
    good = dict(mean=np.zeros(2), cov=np.eye(2), method="test", error_bound=0.0,
                range_bound=np.full(2, 10.0))
    bad = dict(good)
    bad[field] = np.nan if field == "error_bound" else np.full_like(good[field], np.nan)
    samples = rng.standard_normal((50, 2))
    assert verify.check_samples(samples, Moments(**good)).passed
    with pytest.raises(ValueError, match="not finite"):
        verify.check_samples(samples, Moments(**bad))


def test_check_samples_refuses_non_finite_samples(rng):
    m = Moments(np.zeros(2), np.eye(2), "test")
    s = rng.standard_normal((50, 2))
    s[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        verify.check_samples(s, m)


# ------------------------------------------------------------- the report's CUDA verdict
def _row(**kw):
    row = {"unbiased": True, "bias_max_abs": 0.0, "moment_error_bound": 0.0, "mc_check": "pass",
           "backends_agree": True, "backends_checked": ["numpy", "cpu", "cuda"],
           "cuda_mode": "simulator"}
    row.update(kw)
    return row


def test_row_without_cuda_check_is_not_ok():
    assert report.row_ok(_row())
    assert not report.row_ok(_row(cuda_mode="simulator (failed)",
                                  backends_checked=["numpy", "cpu"]))
    assert not report.row_ok(_row(cuda_mode="not installed", backends_checked=["numpy", "cpu"]))
    assert report.row_ok(_row(cuda_mode="off", backends_checked=["numpy", "cpu"]))


def test_report_fails_when_the_cuda_subprocess_crashes(monkeypatch, capsys):
    monkeypatch.setattr(report, "_cuda_results", lambda *a: ("simulator (failed)", {}))
    status = report.main(["--estimators", "reinforce", "--R", "200", "--R-shared", "4"])
    out = capsys.readouterr().out
    assert status == 1
    assert "CUDA NOT CHECKED" in out and " 0 ok" in out


def test_report_checks_its_json_path_first(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "report_rows", lambda *a, **k: pytest.fail("work was done"))
    assert report.main(["--json", str(tmp_path / "no" / "such" / "dir.json")]) == 2


# ------------------------------------------------------------ relative precision, mpmath
def test_gradient_at_phi_50_is_accurate():
    # the reproduction: marginal - p * total returned 0 here
    f = TableObjective(np.array([0.0, 1.0]), "binary")  # f(z) = z
    g = verify.exact_gradient("bernoulli", np.array([50.0]), f)
    truth = exact_gradient_mp("bernoulli", np.array([50.0]), f)
    assert truth[0] == pytest.approx(1.9287498479639178e-22, rel=1e-15)
    assert abs(g[0] - truth[0]) <= 1e-12 * truth[0]


def _gradient_condition(pr) -> np.ndarray:
    """``p_kc sum_c' p_kc' |m_kc - m_kc'|``: the size of the terms whose sum is the gradient,
    the scale of the rounding error any float64 method makes on that entry."""
    m = conditional_means(pr)
    p = np.exp(pr.dist.category_log_probs(pr.params))
    scale = p * np.einsum("kd,kcd->kc", p, np.abs(m[:, :, None] - m[:, None, :]))
    return scale[:, 1] if pr.dist.name == "bernoulli" else scale


_EXTREME = st.sampled_from([-50.0, -30.0, -20.0, -5.0, -0.5, 0.0, 0.7, 3.0, 20.0, 30.0, 50.0])


@st.composite
def _extreme_problems(draw):
    dist = draw(st.sampled_from(["bernoulli", "categorical"]))
    K = draw(st.integers(1, 3))
    C = 2 if dist == "bernoulli" else draw(st.integers(2, 4))
    shape = (K,) if dist == "bernoulli" else (K, C)
    params = np.array(draw(st.lists(_EXTREME, min_size=int(np.prod(shape)),
                                    max_size=int(np.prod(shape))))).reshape(shape)
    domain = "binary" if dist == "bernoulli" else "categorical"
    return verify.make_problem(dist, params,
                               reference.random_table(K, C, draw(st.integers(0, 99)), domain))


@given(_extreme_problems())
def test_exact_gradient_matches_mpmath_per_entry(pr):
    g, truth = verify.exact_gradient(pr), exact_gradient_mp(pr)
    assert np.all(np.abs(g - truth) <= 1e-12 * _gradient_condition(pr) + 1e-300)




@given(_extreme_problems(), st.integers(1, 4), st.sampled_from([0.0, 0.7]))
def test_reinforce_moments_match_mpmath(pr, n, b):
    m = reinforce_moments(pr.dist, pr.params, pr.objective, n=n, baseline=b)
    truth = reinforce_moments_mp(pr.dist, pr.params, pr.objective, n=n, baseline=b)
    g = exact_gradient_mp(pr)
    assert np.all(np.abs(m.mean - g) <= 1e-12 * _gradient_condition(pr) + 1e-300)
    assert np.all(np.abs(truth.mean - g) <= 1e-12 * _gradient_condition(pr) + 1e-300)
    d = np.sqrt(np.outer(np.diag(truth.cov), np.diag(truth.cov)))
    assert np.all(np.abs(m.cov - truth.cov) <= 1e-11 * d + 1e-300)


@given(_extreme_problems().filter(lambda pr: pr.params.size <= 6), st.integers(2, 5))
def test_reinforce_loo_moments_match_mpmath(pr, n):
    m = reinforce_loo_moments(pr.dist, pr.params, pr.objective, n=n)
    truth = reinforce_loo_moments_mp(pr.dist, pr.params, pr.objective, n=n)
    d = np.sqrt(np.outer(np.diag(truth.cov), np.diag(truth.cov)))
    assert np.all(np.abs(m.cov - truth.cov) <= 1e-11 * d + 1e-300)
    assert np.all(np.abs(m.mean - truth.mean) <= 1e-12 * _gradient_condition(pr) + 1e-300)


def test_reinforce_mean_at_20_is_the_gradient():
    # the finding: the mean was 43% off at logits +-20
    alpha = np.array([[20.0, -20.0, 0.0], [-20.0, 20.0, 5.0]])
    f = reference.random_table(2, 3, seed=4)
    m = reinforce_moments("categorical", alpha, f, n=2, baseline=0.3)
    truth = reinforce_moments_mp("categorical", alpha, f, n=2, baseline=0.3)
    np.testing.assert_allclose(m.mean, truth.mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.diag(m.cov), np.diag(truth.cov), rtol=1e-12, atol=0)


# ----------------------------------------------------------------- sizes refused up front
def test_enumeration_of_34_binary_variables_is_refused_up_front():
    f = reference.binary_quadratic(34, 0.45)
    with pytest.raises(ValueError, match="MAX_CONFIGURATIONS"):
        verify.exact_gradient("bernoulli", np.zeros(34), f)
    with pytest.raises(ValueError, match="MAX_CONFIGURATIONS"):
        verify.exact_expectation("bernoulli", np.zeros(34), f)


@pytest.mark.parametrize("name,limit", [("ars_plus", "MAX_RACE_C"),
                                        ("arsm_plus_ce", "MAX_RACE_C")])
def test_ce_swap_moments_past_their_c_are_refused_up_front(name, limit):
    # one such call (ARSM+CE, C = 5) asked for 206 GiB; now it is refused before any cell is
    # built (ARS+'s per-(j, l) arrangements reach C = 7: tests/test_polytope_c6.py; past the
    # cells, ARS+ and ARSM+CE are certified up to MAX_RACE_C: tests/test_swap_interval.py)
    from verify.moments import swap as moments_swap

    limit = getattr(moments_swap, limit)
    C = limit + 1
    alpha = np.linspace(-1.0, 1.0, C)[None]
    f = reference.random_table(1, C, seed=0)
    with pytest.raises(NotImplementedError, match=f"C <= {limit}"):
        get_estimator(name).exact_moments("categorical", alpha, f)


def test_polytope_refuses_a_cell_too_fine_for_memory(monkeypatch):
    from verify.moments import polytope
    from verify.moments import swap as moments_swap

    monkeypatch.setattr(polytope, "MAX_PAIRS", 4)
    moments_swap.clear_caches()
    try:
        with pytest.raises(MemoryError, match="MAX_PAIRS"):  # ARSM+CE's cells (ARSM+: races)
            get_estimator("arsm_plus_ce").exact_moments(
                "categorical", np.array([[0.3, -0.5, 1.0, 0.1]]), reference.random_table(1, 4, seed=0))
    finally:
        moments_swap.clear_caches()


# ------------------------------------------------------------- the port checker's power
def _problem():
    return verify.make_problem("categorical", np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]]),
                               reference.random_table(2, 3, seed=0))


def _reference_port(transform):
    est = get_estimator("reinforce_loo")

    def port(params, noise, objective, **options):
        return transform(est.estimate("categorical", params, objective, noise, **options))

    return port


def test_port_checker_catches_a_relative_error_of_1e_9():
    pr = _problem()
    assert verify.check_port(_reference_port(lambda g: g), "reinforce_loo", pr, n=3,
                             distribution=False).passed
    for rel in (1e-9, 1e-11):  # the default rtol is 1e-12 of the largest magnitude
        rep = verify.check_port(_reference_port(lambda g, r=rel: g * (1 + r)), "reinforce_loo",
                                pr, n=3, distribution=False)
        assert not rep.passed and rep.max_abs_diff > rep.tolerance


def test_port_checker_catches_mixed_up_batch_elements():
    # a port that computes every batch element from the first one's parameters
    est = get_estimator("reinforce_loo")

    def port(params, noise, objective, **options):
        first = np.broadcast_to(params[:1], params.shape) if params.ndim == 3 else params
        return est.estimate("categorical", np.ascontiguousarray(first), objective, noise, **options)

    assert not verify.check_port(port, "reinforce_loo", _problem(), n=3, distribution=False).passed


def test_port_checker_rejects_non_finite_output():
    rep = verify.check_port(_reference_port(lambda g: np.where(g > 0, np.nan, g)), "reinforce_loo",
                            _problem(), n=3, distribution=False)
    assert not rep.passed


@pytest.mark.parametrize("fill", [np.nan, np.inf])
def test_port_checker_fails_an_all_non_finite_port(fill):
    """A port returning NaN everywhere made the checker raise NumPy's "All-NaN slice
    encountered" (from ``nanargmax``) instead of failing the port; the failure names the
    first entry."""
    rep = verify.check_port(_reference_port(lambda g: np.full_like(g, fill)), "reinforce_loo",
                            _problem(), n=3, distribution=False)
    assert not rep.passed and "at index (0, 0, 0, 0)" in rep.message


@pytest.mark.parametrize("cast", [lambda g: g + 1e-3j, lambda g: g.astype(object),
                                  lambda g: g.astype(str)])
def test_port_checker_refuses_non_real_output(cast):
    """A complex port was cast to float64, its imaginary part dropped with a warning, and
    passed; a string port was parsed as numbers."""
    with pytest.raises(TypeError, match="a port must return real numbers"):
        verify.check_port(_reference_port(cast), "reinforce_loo", _problem(), n=3,
                          distribution=False)


# ------------------------------------------------- samplers on the exact CDF boundaries
@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_samplers_agree_with_numpy_on_cdf_boundaries(backend, small_cuda_grid):
    """Uniforms exactly on the CDF steps of equal probabilities (0, 1/4, 1/2, 3/4 for C = 4,
    1/2 for a Bernoulli at phi = 0): the rule ``z = min{c : u S < S_c}`` decides the ties."""
    est = get_estimator("reinforce")
    u_cat = np.array([0.0, 0.25, 0.5, 0.75, 0.2499999999999999, 0.7500000000000001])
    alpha = np.zeros((1, 4))
    noise = {"u": np.broadcast_to(u_cat[:, None, None], (6, 1, 1)).copy()}
    z_ref = est.queries("categorical", alpha, noise, backend="numpy", n=1).z
    assert z_ref.ravel().tolist() == [0, 1, 2, 3, 0, 3]
    np.testing.assert_array_equal(est.queries("categorical", alpha, noise, backend=backend,
                                              n=1).z, z_ref)
    phi = np.zeros(3)
    noise_b = {"u": np.array([[[0.5, 0.4999999999999999, 0.0]]])}
    zb = est.queries("bernoulli", phi, noise_b, backend="numpy", n=1).z
    assert zb.ravel().tolist() == [0, 1, 1]
    np.testing.assert_array_equal(est.queries("bernoulli", phi, noise_b, backend=backend, n=1).z,
                                  zb)


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
@pytest.mark.parametrize("name", ["arsm", "arsm_plus", "arsm_plus_ce"])
def test_arsm_slot_map_and_distinct_count_match_numpy(name, backend, rng, small_cuda_grid):
    # a deduplication bug on a fast backend (say, doubling the evaluations) changes these,
    # even where the final estimates would still agree
    est = get_estimator(name)
    alpha = rng.normal(size=(2, 3, 4)) * 2
    noise = est.draw_noise(rng, "categorical", alpha.shape, 5)
    ref = est.queries("categorical", alpha, noise, backend="numpy")
    out = est.queries("categorical", alpha, noise, backend=backend)
    np.testing.assert_array_equal(out.z, ref.z)
    for key in ("slot", "n_distinct"):
        np.testing.assert_array_equal(out.aux[key], ref.aux[key])


# ------------------------------------------------------- the statistical check itself
def test_check_samples_catches_wrong_correlations(rng):
    """Right means, right variances (so the old per-entry and trace tests pass), wrong
    correlation: the whitened second moments catch it."""
    cov = np.array([[1.0, 0.9], [0.9, 1.0]])
    m = Moments(np.zeros(2), cov, "test", range_bound=np.full(2, 6.0))
    good = rng.multivariate_normal(np.zeros(2), cov, size=4000).clip(-6, 6)
    bad = rng.standard_normal((4000, 2)).clip(-6, 6)  # uncorrelated
    assert verify.check_samples(good, m).passed
    res = verify.check_samples(bad, m)
    assert not res.passed and "correlations" in res.message


def test_check_samples_false_alarm_rate_is_controlled():
    """At alpha = 0.1, replicates of a real estimator drawn from its true law fail at most at
    the nominal rate (the bounds are conservative): 150 independent checks, at most 30 fail
    (P(Binomial(150, 0.1) > 30) < 1e-4)."""
    est = get_estimator("reinforce")
    pr = verify.make_problem("categorical", np.array([[0.5, -1.0, 2.0], [0.0, 3.0, -0.7]]),
                             reference.random_table(2, 3, seed=0))
    m = est.exact_moments("categorical", pr.params, pr.objective, n=2)
    failures = 0
    for seed in range(150):
        noise = est.draw_noise(np.random.default_rng(seed), "categorical", pr.params.shape, 300,
                               n=2)
        samples = est.estimate("categorical", pr.params, pr.objective, noise, n=2)
        failures += not verify.check_samples(samples, m, alpha=0.1).passed
    assert failures <= 30, failures


def test_check_samples_detects_a_ten_percent_bias():
    est = get_estimator("reinforce_loo")
    pr = verify.make_problem("categorical", np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]]),
                             reference.random_table(2, 3, seed=0))
    m = est.exact_moments("categorical", pr.params, pr.objective, n=4)
    noise = est.draw_noise(np.random.default_rng(0), "categorical", pr.params.shape, 20000, n=4)
    samples = est.estimate("categorical", pr.params, pr.objective, noise, n=4)
    assert verify.check_samples(samples, m).passed
    assert not verify.check_samples(samples * 1.1, m).passed


def test_subset_enumeration_is_refused_up_front():
    f = reference.random_table(1, 2)  # never evaluated: the size check comes first
    pr = verify.exact.Problem(reference.get_distribution("ksubset"), np.zeros(60), f)
    with pytest.raises(ValueError, match="MAX_CONFIGURATIONS"):
        verify.exact.ksubset_probabilities(pr, 30)


@given(_extreme_problems(), st.integers(1, 3))
def test_straight_through_moments_match_mpmath(pr, n):
    from verify.moments.relaxation import straight_through_moments, straight_through_moments_mp

    m = straight_through_moments(pr.dist, pr.params, pr.objective, n=n)
    truth = straight_through_moments_mp(pr.dist, pr.params, pr.objective, n=n)
    assert np.allclose(m.mean, truth.mean, rtol=1e-12, atol=0), (m.mean, truth.mean)
    d = np.sqrt(np.outer(np.diag(truth.cov), np.diag(truth.cov)))
    # deviations below rounding of an entry's own values count as 0 in float64 (an estimate
    # constant in z up to its last bit has variance 0 there, ~1e-167 from the same inputs here)
    g_max = (np.abs(m.mean) + m.range_bound).ravel()
    rounding = (64 * np.finfo(float).eps) ** 2 * np.outer(g_max, g_max)
    assert np.all(np.abs(m.cov - truth.cov) <= 1e-11 * d + rounding + 1e-300)


@given(st.sampled_from(["ar", "arm", "disarm"]),
       st.lists(st.sampled_from([-30.0, -20.0, -5.0, -0.5, 0.0, 0.7, 3.0, 20.0, 30.0]),
                min_size=1, max_size=3),
       st.integers(0, 50))
def test_binary_moments_match_mpmath_on_the_implementations_cells(kind, phi, seed):
    from verify.moments.augment_reinforce import binary_moments, binary_moments_mp

    phi = np.array(phi)
    f = reference.random_table(phi.size, 2, seed)
    m = binary_moments(kind, "bernoulli", phi, f, method="general")
    truth = binary_moments_mp(kind, "bernoulli", phi, f)
    assert np.all(np.abs(m.mean - truth.mean) <= 1e-12 * np.abs(truth.mean) + 1e-300)
    d = np.sqrt(np.outer(np.diag(truth.cov), np.diag(truth.cov)))
    # the covariance is E[g g^T] - mean mean^T (module docstring): rounding of that form
    uncentred = 64 * np.finfo(float).eps * np.abs(np.outer(truth.mean, truth.mean))
    assert np.all(np.abs(m.cov - truth.cov) <= 1e-12 * d + uncentred + 1e-300)
