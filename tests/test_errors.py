"""Bad input gets a clear error, never a wrong answer."""

from __future__ import annotations

import numpy as np
import pytest

from reference import Answers, Queries, evaluate, get_estimator, random_table

LOO = get_estimator("reinforce_loo")
RF = get_estimator("reinforce")


def test_loo_needs_two_samples():
    with pytest.raises(ValueError, match="n >= 2"):
        LOO.options(n=1)
    with pytest.raises(ValueError, match="n >= 2"):
        LOO.draw_noise(np.random.default_rng(0), "bernoulli", (3,), 4, n=1)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_nan_logits(backend):
    alpha = np.zeros((2, 3))
    alpha[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LOO.estimate("categorical", alpha, random_table(2, 3), {"u": np.zeros((4, 2, 2))},
                     backend=backend, n=2)


def test_single_category():
    with pytest.raises(ValueError, match="C >= 2"):
        LOO.estimate("categorical", np.zeros((2, 1)), random_table(2, 2), {"u": np.zeros((4, 2, 2))})


@pytest.mark.parametrize("u_shape", [(4, 3, 2), (4, 2), (4, 2, 3), (2, 4, 2, 2)])
def test_noise_of_wrong_shape(u_shape):
    with pytest.raises(ValueError, match=r"noise\['u'\] must have shape"):
        LOO.queries("categorical", np.zeros((2, 3)), {"u": np.zeros(u_shape)}, n=2)


def test_noise_names_and_range():
    with pytest.raises(ValueError, match="takes noise"):
        LOO.queries("bernoulli", np.zeros(2), {"v": np.zeros((4, 2, 2))}, n=2)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        LOO.queries("bernoulli", np.zeros(2), {"u": np.full((4, 2, 2), 1.0)}, n=2)
    with pytest.raises(TypeError, match="mapping"):
        LOO.queries("bernoulli", np.zeros(2), np.zeros((4, 2, 2)), n=2)


def test_wrong_logit_shape_for_distribution():
    with pytest.raises(ValueError, match="at least 1 axes|K >= 1"):
        RF.queries("bernoulli", np.zeros(0), {"u": np.zeros((4, 1, 0))})


def test_unknown_names():
    with pytest.raises(TypeError, match="unknown options"):
        LOO.options(m=3)
    with pytest.raises(ValueError, match="unknown estimator"):
        get_estimator("no-such-estimator")
    with pytest.raises(ValueError, match="backend"):
        LOO.backend("tpu")
    with pytest.raises(ValueError, match="unknown distribution"):
        RF.distribution("poisson")


def test_combine_checks_answers():
    alpha = np.zeros((2, 3))
    noise = {"u": np.random.default_rng(1).random((4, 2, 2))}
    q = LOO.queries("categorical", alpha, noise, n=2)
    with pytest.raises(ValueError, match="answers.f_z must have shape"):
        LOO.combine("categorical", alpha, q, Answers(np.zeros((4, 3))), n=2)
    with pytest.raises(ValueError, match="NaN"):
        LOO.combine("categorical", alpha, q, Answers(np.full((4, 2), np.nan)), n=2)
    bad = Queries(q.z + 5)
    with pytest.raises(ValueError, match=r"entries must lie in \[0, 3\)"):
        LOO.combine("categorical", alpha, bad, Answers(np.zeros((4, 2))), n=2)


def test_objective_answer_shape_checked():
    alpha = np.zeros((2, 3))
    noise = {"u": np.random.default_rng(1).random((4, 2, 2))}
    with pytest.raises(ValueError, match="objective returned shape"):
        LOO.estimate("categorical", alpha, lambda z: np.zeros(3), noise, n=2)


def test_bad_replicate_count():
    with pytest.raises(ValueError, match="replicates"):
        LOO.draw_noise(np.random.default_rng(0), "bernoulli", (3,), 0)


# ------------------------------------- issue 16: found by a battery of bad inputs
GS = get_estimator("gumbel_softmax")


def _relaxed_setup(name="gumbel_softmax", dist="categorical"):
    est = get_estimator(name)
    params = np.array([[0.3, -0.2, 0.1], [0.0, 0.5, -1.0]]) if dist == "categorical" else \
        np.array([0.3, -0.2, 0.1])
    K, C = (params.shape[0], 2) if dist == "bernoulli" else params.shape
    f = random_table(K, C, seed=1, domain="binary" if dist == "bernoulli" else "categorical")
    noise = est.draw_noise(np.random.default_rng(0), dist, params.shape, 3)
    return est, dist, params, f, noise


@pytest.mark.parametrize("bad", ["a tuple", None, "an array"])
def test_combine_refuses_what_is_not_queries_or_answers(bad):
    est, dist, params, f, noise = _relaxed_setup()
    q = est.queries(dist, params, noise)
    a = evaluate(f, q)
    wrong = {"a tuple": (a.f_z,), None: None, "an array": q.z}[bad]
    with pytest.raises(TypeError, match="queries must be a reference.Queries"):
        est.combine(dist, params, wrong, a)
    with pytest.raises(TypeError, match="answers must be a reference.Answers"):
        est.combine(dist, params, q, wrong)
    with pytest.raises(TypeError, match="queries must be a reference.Queries"):
        evaluate(f, wrong)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("name,dist", [("gumbel_softmax", "categorical"), ("muprop", "bernoulli"),
                                       ("rebar", "categorical"), ("straight_through", "bernoulli")])
@pytest.mark.parametrize("cut", ["one short", "extra axis", "per batch"])
def test_relaxed_values_of_the_wrong_shape_are_refused(name, dist, backend, cut):
    """answers.f_y must hold one value per relaxed point: before, a short or reshaped f_y gave
    an estimate (or a Numba typing error / IndexError from inside the kernel)."""
    est, dist, params, f, noise = _relaxed_setup(name, dist)
    q = est.queries(dist, params, noise)
    a = evaluate(f, q)
    f_y = {"one short": a.f_y[..., :-1] if a.f_y.shape[-1] > 1 else a.f_y[..., :0],
           "extra axis": a.f_y[..., None], "per batch": a.f_y[:, 0]}[cut]
    with pytest.raises(ValueError, match=r"answers.f_y must have shape"):
        est.combine(dist, params, q, Answers(a.f_z, f_y, a.grad_y), backend=backend)
    if backend != "numpy":
        return  # evaluate() refuses below before any backend runs

    class Short:
        K, C = f.K, f.C

        def __call__(self, z):
            return f(z)

        def relaxed(self, y):
            fy, gy = f.relaxed(y)
            return {"one short": fy[..., :-1], "extra axis": fy[..., None],
                    "per batch": np.float64(1.0)}[cut], gy

    with pytest.raises(ValueError, match="objective.relaxed returned values of shape"):
        est.estimate(dist, params, Short(), noise)


class _Answering:
    """A user objective whose values (or relaxed pair) are replaced by ``value``."""

    def __init__(self, f, value=None, relaxed=None):
        self.f, self.K, self.C, self.value, self.relaxed_out = f, f.K, f.C, value, relaxed

    def __call__(self, z):
        v = self.f(z)
        return v if self.value is None else self.value(v)

    def relaxed(self, y):
        return self.f.relaxed(y) if self.relaxed_out is None else self.relaxed_out(self.f, y)


@pytest.mark.parametrize("value,words", [
    (lambda v: v + 1j, "must be real numbers, got dtype complex"),
    (lambda v: np.full(v.shape, "a"), "must be real numbers, got dtype <U1"),
    (lambda v: np.full(v.shape, "a", dtype=object), "must be real numbers, got an object array"),
])
def test_objective_values_must_be_real(value, words):
    """A complex answer was cast to its real part (a warning, then a wrong number); a string
    answer raised NumPy's "could not convert" without naming the objective."""
    est, dist, params, f, noise = _relaxed_setup("reinforce")
    with pytest.raises(TypeError, match=f"objective's values objective.z. {words}"):
        est.estimate(dist, params, _Answering(f, value), noise)


def test_objective_returning_none_is_refused():
    est, dist, params, f, noise = _relaxed_setup("reinforce")
    with pytest.raises(TypeError, match=r"objective\(z\) must be a real array, got None"):
        est.estimate(dist, params, _Answering(f, lambda v: None), noise)


@pytest.mark.parametrize("out", [lambda f, y: None, lambda f, y: f.relaxed(y)[0],
                                 lambda f, y: (*f.relaxed(y), 0)])
def test_relaxed_must_return_a_pair(out):
    est, dist, params, f, noise = _relaxed_setup()
    with pytest.raises(TypeError, match=r"relaxed\(y\) must return a pair"):
        est.estimate(dist, params, _Answering(f, relaxed=out), noise)


def test_object_array_of_numbers_is_a_valid_answer():
    est, dist, params, f, noise = _relaxed_setup("reinforce")
    want = est.estimate(dist, params, f, noise)
    got = est.estimate(dist, params, _Answering(f, lambda v: np.array(v.tolist(), dtype=object)),
                       noise)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name,option", [("reinforce", "baseline"), ("gumbel_softmax", "tau"),
                                         ("imle", "lambda_"), ("aimle", "beta"), ("rebar", "eta"),
                                         ("nvil", "v"), ("double_cv", "alpha_cv"),
                                         ("reinforce_loo", "n")])
@pytest.mark.parametrize("value", [True, np.bool_(False), [1.0], np.ones(2)])
def test_numeric_options_refuse_bools_and_arrays(name, option, value):
    """tau=True was read as tau = 1 (an estimate, not an error), and tau=[1.0] raised NumPy's
    "only 0-dimensional arrays can be converted" without naming the option."""
    with pytest.raises(TypeError, match=f"{option}( .*)? must be a"):
        get_estimator(name).options(**{option: value})


@pytest.mark.parametrize("K,C,word", [(0, 3, "K"), (-1, 3, "K"), (2.5, 3, "K"), ("a", 3, "K"),
                                      (True, 3, "K"), (2, 1, "C"), (2, None, "C")])
def test_cost_checks_its_sizes(K, C, word):
    """``cost`` returned a Cost for K = 0, K = 'a' or C = 1 (no such problem exists)."""
    with pytest.raises((TypeError, ValueError), match=rf"^{word} must be"):
        RF.cost(K, C)
    assert RF.cost(np.int64(2), 3, n=4).evals == 4


@pytest.mark.parametrize("shape,exc", [("abc", TypeError), ((2.5, 3), TypeError),
                                       ((2, None), TypeError), ((-1, 3), ValueError)])
def test_draw_noise_checks_params_shape(shape, exc):
    with pytest.raises(exc, match="params_shape must"):
        RF.draw_noise(np.random.default_rng(0), "categorical", shape, 2)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("name", ["ars", "arsm", "ars_plus", "arsm_plus", "arsm_plus_ce"])
def test_swap_noise_row_of_zeros_is_refused(name, backend):
    """u_pi = 0 is inside [0, 1), but a whole row of zeros makes the Dirichlet draw 0 / 0:
    before, NaN weights (numpy), an AssertionError (ARS+), a SystemError from the Numba
    dispatcher (cpu) or, for ARSM+, an estimate with a silently zeroed row."""
    est = get_estimator(name)
    noise = est.draw_noise(np.random.default_rng(0), "categorical", (2, 3), 2)
    noise["u_pi"][1, 0] = 0.0
    with pytest.raises(ValueError, match=r"noise\['u_pi'\] has a row of zeros at index \(1, 0\)"):
        est.estimate("categorical", np.zeros((2, 3)), random_table(2, 3), noise, backend=backend)



@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", ["ars", "arsm", "ars_plus", "arsm_plus", "arsm_plus_ce"])
def test_swap_noise_with_some_zeros_is_still_valid(name, backend):
    """Zeros that leave a positive entry in every row are a valid Dirichlet draw (pi_kc = 0):
    not refused, finite, and the backends agree on it."""
    est = get_estimator(name)
    noise = est.draw_noise(np.random.default_rng(0), "categorical", (2, 3), 2)
    noise["u_pi"][1, 0] = [0.0, 0.0, 0.5]
    g = est.estimate("categorical", np.zeros((2, 3)), random_table(2, 3), noise, backend=backend)
    assert np.all(np.isfinite(g))
    if backend != "numpy":
        np.testing.assert_allclose(
            g, est.estimate("categorical", np.zeros((2, 3)), random_table(2, 3), noise),
            rtol=1e-12, atol=1e-12)


# ------------------------------------------------ the oracle's entry points (issue 16)
def _problem():
    import verify

    return verify.make_problem("categorical", np.array([[0.3, -0.2, 0.1], [0.0, 0.5, -1.0]]),
                               random_table(2, 3, seed=1))


def _seeded_calls():
    import tempfile

    import verify
    from verify import golden, report

    pr = _problem()
    port = verify.backend_port("reinforce", "numpy", "categorical")

    def sampler(params, N, seed):
        return np.zeros((N, 2), np.int64)

    return {
        "mc_check": lambda s: verify.mc_check("reinforce", pr, R=10, seed=s),
        "check_port": lambda s: verify.check_port(port, "reinforce", pr, R=10, R_shared=2, seed=s),
        "check_sampler": lambda s: verify.check_sampler(sampler, "categorical", pr.params, N=10,
                                                        seed=s),
        "report_rows": lambda s: report.report_rows(["arm"], R=10, seed=s, cuda=False),
        "write_golden": lambda s: golden.write_golden(tempfile.mkdtemp(), R=2, seed=s,
                                                      names=["arm"]),
        "random_table": lambda s: random_table(2, 3, seed=s),
    }


@pytest.mark.parametrize("seed,exc", [(-1, ValueError), ("abc", TypeError),
                                      (float("nan"), TypeError), (True, TypeError)])
@pytest.mark.parametrize("call", list(_seeded_calls()))
def test_seeds_are_checked_by_name(call, seed, exc):
    """A negative or non-integer seed raised NumPy's SeedSequence error from inside
    ``default_rng`` ("expected non-negative integer"), naming nothing."""
    with pytest.raises(exc, match="seed must be a non-negative integer"):
        _seeded_calls()[call](seed)


def test_oracle_entry_points_check_their_arguments():
    import verify
    from verify import golden, report
    from verify import noise as vn

    pr = _problem()
    with pytest.raises(ValueError, match="backend must be one of"):
        verify.backend_port("reinforce", "tpu", "categorical")
    with pytest.raises(ValueError, match="unknown distribution 'nope'"):
        verify.backend_port("reinforce", "numpy", "nope")
    with pytest.raises(ValueError, match="ars supports"):
        verify.backend_port("ars", "numpy", "bernoulli")
    # an unknown name was skipped: an empty report, which fails nothing
    with pytest.raises(ValueError, match=r"unknown estimators \['nope'\]"):
        report.report_rows(["nope"], R=10, cuda=False)
    with pytest.raises(ValueError, match="R must be an integer >= 2"):
        report.report_rows(["arm"], R=1, cuda=False)
    with pytest.raises(TypeError, match="names must be a list"):
        golden.golden_entries("arm")
    for fn in (verify.config_probabilities, verify.score_matrix):
        with pytest.raises(TypeError, match="problem must be a verify.Problem"):
            fn("categorical")
    with pytest.raises(TypeError, match="problem must be a verify.Problem"):
        verify.check_port(verify.backend_port("reinforce", "numpy", "categorical"), "reinforce",
                          (pr.params, pr.objective), R=10)
    with pytest.raises(TypeError, match="problem must be a verify.Problem"):
        verify.mc_check("reinforce", (pr.params, pr.objective), R=10)
    with pytest.raises(TypeError, match="rtol must be a real number"):
        verify.check_port(verify.backend_port("reinforce", "numpy", "categorical"), "reinforce",
                          pr, R=10, rtol="1e-3")
    with pytest.raises(ValueError, match="unknown estimator"):
        get_estimator(["arm"])
    with pytest.raises(ValueError, match="k is for the k-subset law only"):
        verify.check_sampler(lambda p, N, s: np.zeros((N, 2), np.int64), "categorical", pr.params,
                             k=2, N=10)
    u = np.random.default_rng(0).random((4, 1, 2))
    with pytest.raises(TypeError, match="noise must be a mapping"):
        vn.feed("reinforce", "categorical", pr.params, u)
    with pytest.raises(ValueError, match=r"reinforce takes noise \['u'\], got \['v'\]"):
        vn.feed("reinforce", "categorical", pr.params, {"v": u})


@pytest.mark.parametrize("k,tau,word", [(0, 1.0, "k must be"), (6, 1.0, "k must be <= n"),
                                        (2.5, 1.0, "k must be an integer"),
                                        (2, float("nan"), "tau contains NaN"), (2, -1.0, "tau must be"),
                                        (2, 0.0, "tau must be")])
def test_sum_of_gamma_checks_k_and_tau(k, tau, word):
    """k = 0 raised ZeroDivisionError inside the reference; tau = nan returned NaN noise and
    tau = -1 noise of the wrong sign."""
    from verify import noise as vn

    with pytest.raises((TypeError, ValueError), match=word):
        vn.sum_of_gamma(np.full((3, 10, 5), 0.5), k, tau)


@pytest.mark.parametrize("value", [0, 10**6, -5])
def test_arsm_distinct_count_outside_its_range_is_refused(value):
    """aux['n_distinct'] (how many leading slots a caller must evaluate) of 0, -5 or a million
    went through unchecked: it cannot belong to queries with M = C(C-1)/2 + 1 slots."""
    est = get_estimator("arsm")
    alpha = np.zeros((2, 3))
    q = est.queries("categorical", alpha, est.draw_noise(np.random.default_rng(0), "categorical",
                                                         alpha.shape, 2))
    a = evaluate(random_table(2, 3), q)
    bad = Queries(q.z, {**q.aux, "n_distinct": np.full_like(q.aux["n_distinct"], value)}, q.y)
    with pytest.raises(ValueError, match=r"n_distinct'\] must hold integer counts in \[1, 4\]"):
        est.combine("categorical", alpha, bad, a)


@pytest.mark.parametrize("R,options", [(10**12, {}), (3, {"n": 10**12})])
def test_noise_larger_than_the_machine_is_refused_by_name(R, options):
    """R or n of 10**12 reached NumPy's MemoryError from inside the generator (and a size
    that nearly fits would swap); the refusal says how much and what to change."""
    with pytest.raises(ValueError, match="GiB, more than this machine's"):
        RF.draw_noise(np.random.default_rng(0), "categorical", (2, 3), R, **options)


@pytest.mark.parametrize("h", [0.0, -1e-3, float("nan"), float("inf"), "1e-3", True])
def test_finite_difference_step_is_checked(h):
    """h = 0 raised ZeroDivisionError, h = nan returned a NaN gradient."""
    import verify

    with pytest.raises(ValueError, match="h .the finite-difference step. must be"):
        verify.finite_difference_gradient("bernoulli", np.zeros(2), random_table(2, 2, seed=0), h=h)


def test_golden_directory_that_cannot_be_made_is_named(tmp_path):
    from verify import golden

    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="directory .*file/sub' cannot be created"):
        golden.write_golden(str(tmp_path / "file" / "sub"), R=2, names=["arm"])
