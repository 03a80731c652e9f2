"""The port protocol of issue 15: levels, own-noise ports, verdicts that depend on the dtype and
say how much bias they could see, uninformative references, stateful estimators, golden
vectors, the sampler check and the noise conversions. Every expected value comes from the
oracle or the NumPy reference, never from a copied run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import reference
import verify
from reference import get_estimator
from reference.contract import evaluate
from reference.distributions import softmax
from reference.estimators.ksubset_perturbation.numpy_reference import aimle_nonzeros
from reference.estimators.relaxation.numpy_reference import AIMLEState, aimle_update
from verify import golden, noise
from verify.problems import builtin_problems

LOO = get_estimator("reinforce_loo")


def _problem():
    return verify.make_problem("categorical", np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]]),
                               reference.random_table(2, 3, seed=0))


def _own_noise_loo(scale=1.0):
    """REINFORCE-LOO written from scratch with its own sampler (Gumbel-max) and its own RNG;
    it refuses our noise, so it can only be checked at the distribution level."""

    def port(params, noise, objective, *, dist, R, seed, n):
        assert dist == "categorical" and noise is None
        rng = np.random.default_rng([seed, 777])
        B, K, C = params.shape
        z = np.argmax(params[:, None, None] + rng.gumbel(size=(B, R, n, K, C)), axis=-1)
        f = objective(z)  # (B, R, n)
        s = (z[..., None] == np.arange(C)) - softmax(params)[:, None, None]
        w = (f - f.mean(axis=-1, keepdims=True)) / (n - 1)
        return scale * (w[..., None, None] * s).sum(axis=2)

    return port


# ------------------------------------------------------------------ levels and own noise
def test_own_noise_port_passes_the_distribution_level():
    rep = verify.check_port(_own_noise_loo(), "reinforce_loo", _problem(), level="distribution",
                            n=3)
    assert rep.passed, rep.message
    assert rep.samples_agree is None and rep.own_noise and rep.R == 2000
    # the report says how large a bias it could have seen
    assert rep.detectable_bias.shape == (2, 3) and 0 < rep.detectable_scale_bias < np.inf
    assert "detects a relative bias" in rep.summary()


def test_auto_R_detects_the_requested_bias():
    pr = _problem()
    good = verify.check_port(_own_noise_loo(), "reinforce_loo", pr, level="distribution",
                             R="auto", detect_bias=0.05, n=3)
    assert good.passed, good.message
    assert good.detectable_scale_bias <= 0.05
    # at the default R, a 5% bias is below what the check can see
    default = verify.check_port(_own_noise_loo(), "reinforce_loo", pr, level="distribution",
                                n=3)
    assert default.detectable_scale_bias > 0.05 and good.R > default.R
    bad = verify.check_port(_own_noise_loo(0.95), "reinforce_loo", pr, level="distribution",
                            R=good.R, n=3)
    assert not bad.passed and "sample mean" in bad.message


def test_sample_level_never_runs_the_distribution_level():
    rep = verify.check_port(verify.backend_port("reinforce_loo", "numpy", "categorical"),
                            "reinforce_loo", _problem(), level="sample", n=3)
    assert rep.passed and rep.distribution is None and rep.samples_agree


def test_level_is_checked():
    with pytest.raises(ValueError, match="level"):
        verify.check_port(_own_noise_loo(), "reinforce_loo", _problem(), level="all", n=3)


def test_distribution_level_checks_every_batch_element():
    # a port that computes every batch element from the first one's parameters
    def first_only(params, noise, objective, *, dist, R, seed, n):
        return _own_noise_loo()(np.broadcast_to(params[:1], params.shape).copy(), noise,
                                objective, dist=dist, R=R, seed=seed, n=n)

    rep = verify.check_port(first_only, "reinforce_loo", _problem(), level="distribution", n=3)
    assert not rep.passed and "batch element 1" in rep.message


def test_distribution_level_never_feeds_our_noise():
    calls = []

    def kwargs_port(params, noise, objective, **kw):  # the protocol through a bare **kwargs
        calls.append((noise, kw["dist"], kw["R"], kw["seed"]))
        return _own_noise_loo()(params, noise, objective, **kw)

    rep = verify.check_port(kwargs_port, "reinforce_loo", _problem(), level="distribution", n=3)
    assert rep.passed and rep.own_noise, rep.message
    assert calls == [(None, "categorical", 2000, 1)]
    with pytest.raises(TypeError, match="R and seed"):
        verify.check_port(lambda params, noise, objective, n: None, "reinforce_loo", _problem(),
                          level="distribution", n=3)


# ------------------------------------------------------------------ dtype tolerances
def _reference_port(dtype, rel=0.0):
    def port(params, noise, objective, *, dist, **options):
        g = LOO.estimate(dist, params, objective, noise, **options)
        return (g * (1 + rel)).astype(dtype)

    return port


def test_float32_reference_passes_with_default_tolerances():
    rep = verify.check_port(_reference_port(np.float32), "reinforce_loo", _problem(), n=3)
    assert rep.passed, rep.message
    # the tolerance came from the dtype: float64's would have refused the same numbers
    strict = verify.check_port(_reference_port(np.float32), "reinforce_loo", _problem(),
                               level="sample", rtol=1e-12, n=3)
    assert not strict.passed
    # and it still catches an error well above float32 rounding
    off = verify.check_port(_reference_port(np.float32, 1e-3), "reinforce_loo", _problem(),
                            level="sample", n=3)
    assert not off.passed and "differs from the reference" in off.message


@pytest.mark.slow  # compiling the float32 kernels takes several seconds each
@pytest.mark.parametrize("name,opts", [("reinforce_loo", {"n": 3}), ("gumbel_softmax",
                                                                     {"tau": 0.5})])
def test_float32_cpu_kernels_pass_with_default_tolerances(name, opts):
    est = get_estimator(name)

    def port(params, noise, objective, *, dist, **options):
        n32 = {k: v.astype(np.float32) for k, v in noise.items()}
        return est.estimate(dist, params.astype(np.float32), objective, n32, backend="cpu",
                            **options)

    rep = verify.check_port(port, name, _problem(), R=1000, **opts)
    assert rep.passed, rep.message


# ----------------------------------------------------------- honest, informative verdicts
def test_zero_port_on_all_zero_reference_is_not_a_pass():
    # I-MLE at saturated logits: every reference estimate is zero
    pr = verify.make_problem("categorical", np.array([[-30.0, 0.0, 30.0], [30.0, -30.0, 0.0]]),
                             reference.random_table(2, 3, seed=1))

    def zeros(params, noise, objective, *, dist, R=None, seed=None, **options):
        r = R if noise is None else noise["u"].shape[1]
        return np.zeros((params.shape[0], r) + params.shape[1:])

    for level in ("both", "sample", "distribution"):
        rep = verify.check_port(zeros, "imle", pr, level=level, batch=1, R=500)
        assert not rep.passed and not rep.informative, level
        assert "uninformative" in rep.message
    # the reference itself is no better off: uninformative, not passed
    ref = verify.check_port(verify.backend_port("imle", "numpy", "categorical"), "imle", pr,
                            batch=1, R=500)
    assert not ref.passed and not ref.informative


def test_mc_check_of_our_reference_on_a_point_mass_at_zero():
    # adaptive I-MLE with beta = 0.5 at logits 0 (||theta|| = 0, so lambda = 0): the exact law
    # is the point mass at 0 and our reference returns exactly 0 on every replicate, which is
    # the exact answer (a row of the report), not a vacuous pass
    pr = verify.make_problem("categorical", np.zeros((1, 10)),
                             reference.categorical_toy(10))
    opts = {"adaptive": True, "beta": 0.5, "S": 2}
    m = reference.get_estimator("aimle").exact_moments(pr.dist, pr.params, pr.objective, **opts)
    assert not np.any(m.mean) and not np.any(m.cov)
    assert verify.mc_check("aimle", pr, R=500, **opts).passed
    # replicates that are not all zero are still judged, and fail against a point mass at 0
    off = np.zeros((500,) + pr.params.shape)
    off[7, 0, 1] = 1e-3
    assert not verify.check_samples(off, m).passed


def test_null_direction_is_named_and_its_tolerance_is_a_parameter():
    # categorical scores sum to zero over each row: (1, 1, 1) / sqrt(3) has zero variance
    def shifted(params, noise, objective, *, dist, R, seed, **options):
        assert noise is None
        own = LOO.draw_noise(np.random.default_rng([seed, 5]), dist, params.shape, R, **options)
        return LOO.estimate(dist, params, objective, own, **options) + 1e-6

    rep = verify.check_port(shifted, "reinforce_loo", _problem(), level="distribution", n=3)
    assert not rep.passed
    msg = rep.distribution.message
    assert "exact variance is zero" in msg and "null_rtol=1e-09" in msg
    assert "*(0, 0)" in msg or "*(1, 0)" in msg  # the direction, by parameter entries
    loose = verify.check_port(shifted, "reinforce_loo", _problem(), level="distribution",
                              null_rtol=1e-3, n=3)
    assert loose.passed, loose.message


# ------------------------------------------------------------------------ stateful AIMLE
def _aimle_port(update=True):
    est = get_estimator("aimle")

    def port(params, noise, objective, *, dist, state, **options):
        q = est.queries(dist, params, noise, **options)
        a = evaluate(objective, q)
        g = est.combine(dist, params, q, a, **options)
        nxt = aimle_update(state, aimle_nonzeros(dist, params, q, a, **options)) if update \
            else state
        return g, nxt

    return port


def test_stateful_aimle_state_in_and_out():
    state = AIMLEState(beta=0.7, nnz_ema=2.0, last_update=1e-4)
    rep = verify.check_port(_aimle_port(), "aimle", _problem(), state=state, S=2, R=1000)
    assert rep.passed, rep.message
    assert rep.state_agrees and isinstance(rep.next_state, AIMLEState)
    assert rep.next_state != state
    stale = verify.check_port(_aimle_port(update=False), "aimle", _problem(), state=state, S=2,
                              level="sample")
    assert rep.samples_agree and not stale.passed and stale.state_agrees is False
    assert "next state" in stale.message
    with pytest.raises(ValueError, match="no state"):
        verify.check_port(_aimle_port(), "imle", _problem(), state=state)


def test_stateful_nvil_state_in_and_out():
    from reference.estimators.control_variates import NVILState, nvil_update

    est = get_estimator("nvil")

    def port(params, noise, objective, *, dist, state, **options):
        assert (options["c"], options["v"]) == (state.c, state.v)  # the state sets them
        q = est.queries(dist, params, noise, **options)
        a = evaluate(objective, q)
        nxt = nvil_update(state, a.f_z - options["baseline"])
        return est.combine(dist, params, q, a, **options), nxt

    state = NVILState(c=0.2, v=2.5)
    rep = verify.check_port(port, "nvil", _problem(), state=state, n=3, baseline=0.1, R=1000)
    assert rep.passed and rep.state_agrees, rep.message
    with pytest.raises(TypeError, match="NVILState"):
        verify.check_port(port, "nvil", _problem(), state=AIMLEState(), n=3)


# --------------------------------------------------------------------------- power stats
def test_replicates_for_bias_is_the_smallest_sufficient_R():
    from verify.stats import _detectable, _whiten, replicates_for_bias  # noqa: PLC2701

    m = LOO.exact_moments("categorical", _problem().params, _problem().objective, n=3)
    lam, V, keep = _whiten(m)
    M = np.full(int(keep.sum()), 6.0)
    R = replicates_for_bias(m, 0.05, M=M)
    log_term = np.log(2 * 3 * keep.sum() / 1e-6)

    def scale_bias(r):
        from verify.stats import _bernstein_threshold

        thr = np.array([_bernstein_threshold(r, x, 1.0, log_term) for x in M])
        return _detectable(m, lam, V, keep, thr)[1]

    assert scale_bias(R) <= 0.05 < scale_bias(R - 1)
    with pytest.raises(ValueError, match="bias"):
        replicates_for_bias(m, 0.0, M=M)


# -------------------------------------------------------------------------- golden files
def test_golden_entries_cover_every_registered_estimator():
    names = {e[0] for e in golden.golden_entries()}
    assert names == set(reference.REGISTRY)
    with pytest.raises(ValueError, match="unknown"):
        golden.golden_entries(["nope"])


def test_golden_files_reproduce_the_reference(tmp_path):
    # estimators with exact moments (fast), one with relaxed queries, one on k-subsets
    names = ["reinforce_loo", "straight_through", "simple"]
    manifest = golden.write_golden(str(tmp_path), R=4, names=names)
    assert len(manifest["entries"]) == len(golden.golden_entries(names))
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    for e in on_disk["entries"]:
        assert {"estimator", "dist", "options", "problem", "file"} <= set(e)
        z = np.load(tmp_path / e["file"])
        est = get_estimator(e["estimator"])
        noise_ = {k[len("noise_"):]: z[k] for k in z.files if k.startswith("noise_")}
        assert set(noise_) == {s.name for s in est.noise}
        # rebuild the objective from the stored table alone (the language-neutral path)
        K = z["configs"].shape[1]
        C = z["params"].shape[-1] if e["dist"] == "categorical" else 2
        opts = dict(est.examples[e["example"]])
        q = est.queries(e["dist"], z["params"], noise_, **opts)
        table = reference.TableObjective(z["f"].reshape((C,) * K))
        f_z = table(q.z)
        assert np.array_equal(q.z, z["queries_z"])
        a = reference.Answers(f_z, *((z["relaxed_f"], z["relaxed_grad"]) if "relaxed_y" in z.files
                                     else (None, None)))
        g = est.combine(e["dist"], z["params"], q, a, **opts)
        assert np.allclose(g, z["estimates"], rtol=1e-12, atol=0), e["file"]
        assert z["cov"].shape == (z["mean"].size,) * 2


@pytest.mark.slow
def test_golden_cli_writes_every_estimator(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-m", "verify", "golden", str(tmp_path), "--quiet"],
                   check=True, env=env)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {e["estimator"] for e in manifest["entries"]} == set(reference.REGISTRY)
    assert all((tmp_path / e["file"]).exists() for e in manifest["entries"])


# --------------------------------------------------------------------- the sampler check
def _inverse_cdf_categorical(params, N, seed):
    return noise.categorical_samples(params, np.random.default_rng(seed).random((N,) +
                                                                               params.shape[:-1]))


def test_sampler_check_accepts_exact_samplers():
    alpha = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]])
    assert verify.check_sampler(_inverse_cdf_categorical, "categorical", alpha)

    def gumbel_max(params, N, seed):
        g = np.random.default_rng(seed).gumbel(size=(N,) + params.shape)
        return np.argmax(params + g, axis=-1)

    assert verify.check_sampler(gumbel_max, "categorical", alpha, seed=1)

    def bern(params, N, seed):
        return noise.bernoulli_samples(params, np.random.default_rng(seed).random((N,) +
                                                                                params.shape))

    assert verify.check_sampler(bern, "bernoulli", np.array([0.3, -2.0, 1.0]))

    def exact_ksubset(params, N, seed):
        u = np.random.default_rng(seed).random((N, params.shape[0]))
        return noise.ksubset_samples(params, u, 2)

    theta = np.array([2.0, 1.0, 0.0, -1.0])
    rep = verify.check_sampler(exact_ksubset, "ksubset", theta, k=2)
    assert rep.passed, rep.message
    assert np.isclose(rep.probs.sum(), 1.0) and rep.counts.sum() == rep.N


def test_sampler_check_tells_gumbel_top_k_from_the_exact_k_subset_law():
    def gumbel_top_k(params, N, seed):
        g = np.random.default_rng(seed).gumbel(size=(N,) + params.shape)
        return reference.ksubset.top_k(params + g, 2)

    rep = verify.check_sampler(gumbel_top_k, "ksubset", np.array([2.0, 1.0, 0.0, -1.0]), k=2)
    assert not rep.passed and "does not draw the exact ksubset law" in rep.message


def test_sampler_check_catches_wrong_laws_and_invalid_samples():
    alpha = np.array([[0.5, -1.0, 2.0]])
    assert not verify.check_sampler(lambda p, N, s: _inverse_cdf_categorical(-p, N, s),
                                    "categorical", alpha)
    assert not verify.check_sampler(lambda p, N, s: np.full((N, 1), 3), "categorical", alpha)
    assert not verify.check_sampler(lambda p, N, s: np.ones((N, 4), np.int64), "ksubset",
                                    np.zeros(4), k=2)
    with pytest.raises(ValueError, match="N"):
        verify.check_sampler(_inverse_cdf_categorical, "categorical", alpha, N=0)


# --------------------------------------------------------------------- noise conversions
def _cases():
    for name, est in reference.REGISTRY.items():
        for dist in est.distributions:
            for opts in est.examples:
                yield name, dist, dict(opts), builtin_problems(dist)[0][1]


@pytest.mark.parametrize("name,dist,opts,pr", list(_cases()),
                         ids=lambda x: x if isinstance(x, str) else "")
def test_noise_conversions_match_the_reference(name, dist, opts, pr):
    est = get_estimator(name)
    nz = est.draw_noise(np.random.default_rng(3), dist, pr.params.shape, 5, **opts)
    out = noise.feed(name, dist, pr.params, nz, **opts)
    assert out and all(np.all(np.isfinite(v)) for v in out.values())
    q = est.queries(dist, pr.params, nz, **opts)
    o = est.options(**opts)
    if "z" in out and out["z"].shape == q.z.shape:
        assert np.array_equal(out["z"], q.z)
    if "b" in out:
        assert np.array_equal(out["b"], q.z)
    if "gumbel" in out and "perturbed" in q.aux:
        assert np.allclose(q.aux["perturbed"], pr.params + out["gumbel"], rtol=1e-15, atol=0)
    if "perturbation" in out:
        assert np.allclose(q.aux["perturbed"], pr.params + out["perturbation"], rtol=1e-14,
                           atol=1e-14)
    if name == "gumbel_softmax" and dist == "bernoulli":
        y = 1 / (1 + np.exp(-(pr.params + out["logistic"]) / o["tau"]))
        assert np.allclose(q.y, y, rtol=1e-12, atol=1e-15)
    if name == "st_gumbel_softmax" and dist == "categorical":
        assert np.array_equal(np.argmax(pr.params + out["gumbel"], axis=-1), q.z)
    if "dirichlet" in out:
        assert np.allclose(out["dirichlet"].sum(axis=-1), 1.0)


def test_every_registered_estimator_has_a_noise_conversion():
    assert set(noise.FEEDS) == set(reference.REGISTRY)
