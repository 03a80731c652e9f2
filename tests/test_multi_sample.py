"""The multi-sample family (VIMCO, the unordered set estimator): the oracle against brute force
over ordered tuples with independent transcriptions of the papers' formulas, VIMCO's target
gradient against finite differences of the exact target, the without-replacement law of the
Gumbel-top-k sampler, and the refusals past the stated limits."""

from __future__ import annotations

from itertools import permutations, product

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

import verify
import verify.strategies as vst
from reference import evaluate, get_estimator, random_table
from reference.estimators.multi_sample.numpy_reference import (
    MAX_JOINT,
    MAX_N,
    gumbel_top,
    joint_log_probs,
    subset_log_probs,
    unord_weights,
    vimco_signals,
)
from verify.exact import config_probabilities, make_problem, score_matrix
from verify.moments import multi_sample as ms

VIMCO = get_estimator("vimco")
UNORD = get_estimator("unord")


def _problems():
    rng = np.random.default_rng(11)
    return [
        make_problem("bernoulli", rng.normal(size=2), random_table(2, 2, 3)),
        make_problem("categorical", 1.5 * rng.normal(size=(1, 3)), random_table(1, 3, 4)),
        make_problem("categorical", 1.5 * rng.normal(size=(2, 2)), random_table(2, 2, 5, "categorical")),
    ]


PROBLEMS = _problems()


def _tuples(pr, n):
    """Every ordered n-tuple of configuration indices with its i.i.d. probability."""
    q = config_probabilities(pr).ravel()
    for t in product(range(q.size), repeat=n):
        yield np.array(t), float(np.prod(q[list(t)]))


def _mean_cov(items):
    w = np.array([p for p, _ in items])
    G = np.array([g for _, g in items])
    mean = w @ G
    dev = G - mean
    return mean, (dev * w[:, None]).T @ dev


# -------------------------------------------------------------------------------- VIMCO
def _vimco_direct(f):
    """The paper's eq. 9 written directly: Lhat - Lhat_{-i} with log-mean-exp."""
    n = f.size
    lhat = logsumexp(f) - np.log(n)
    out = np.empty(n)
    for i in range(n):
        g = f.copy()
        g[i] = np.delete(f, i).mean()
        out[i] = lhat - (logsumexp(g) - np.log(n))
    return out


@pytest.mark.parametrize("pr", PROBLEMS, ids=lambda p: p.dist.name + str(p.params.shape))
@pytest.mark.parametrize("n", [2, 3])
def test_vimco_oracle_equals_brute_force_over_tuples(pr, n):
    f = pr.f_table().ravel()
    S = score_matrix(pr)
    grad_items, est_items = [], []
    for t, p in _tuples(pr, n):
        lhat = logsumexp(f[t]) - np.log(n)
        grad_items.append((p, lhat * S[t].sum(axis=0)))
        est_items.append((p, _vimco_direct(f[t]) @ S[t]))
    target, _ = _mean_cov(grad_items)  # grad L = E[Lhat sum_i s(z_i)]
    mean, cov = _mean_cov(est_items)
    g = ms.vimco_target_gradient(pr.dist, pr.params, pr.objective, n=n)
    m = VIMCO.exact_moments(pr.dist, pr.params, pr.objective, n=n)
    assert np.allclose(g.ravel(), target, rtol=0, atol=1e-14)
    assert np.allclose(m.mean.ravel(), mean, rtol=0, atol=1e-14)
    assert np.allclose(m.cov, cov, rtol=0, atol=1e-14)
    # the target is not E_q[f]: a bias against grad E_q[f] would be reported wrongly
    assert np.abs(g - verify.exact_gradient(pr)).max() > 1e-4


@pytest.mark.parametrize("n", [2, 4])
def test_vimco_target_gradient_matches_finite_differences(n):
    pr = make_problem("categorical", np.array([[0.3, -0.8, 1.1], [0.0, 0.5, -0.4]]),
                      random_table(2, 3, 9))
    g = ms.vimco_target_gradient(pr.dist, pr.params, pr.objective, n=n)
    h = 1e-3
    fd = np.zeros_like(pr.params)
    for idx in np.ndindex(pr.params.shape):
        vals = []
        for step in (-2, -1, 1, 2):
            p = pr.params.copy()
            p[idx] += step * h
            vals.append(ms.vimco_target_value(pr.dist, p, pr.objective, n=n))
        fd[idx] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
    assert np.abs(g - fd).max() < 1e-10
    assert np.abs(g).max() > 1e-2


def test_vimco_signals_match_the_direct_formula_and_stay_finite():
    rng = np.random.default_rng(3)
    f = rng.normal(scale=5, size=(50, 4))
    assert np.allclose(vimco_signals(f), np.array([_vimco_direct(r) for r in f]), atol=1e-12)
    # one value dominating by 1000 nats: a global max shift would take log(0) for the others
    f = np.array([[1000.0, -1000.0, 0.0], [-700.0, -700.0, 700.0]])
    w = vimco_signals(f)
    assert np.all(np.isfinite(w))
    assert np.allclose(w, np.array([_vimco_direct(r) for r in f]), rtol=1e-12, atol=1e-12)


def test_vimco_backends_agree_on_extreme_values():
    est = VIMCO
    alpha = np.array([[0.0, 1.0, -1.0]])

    class Wild:
        K, C = 1, 3

        def __call__(self, z):
            return np.array([800.0, -800.0, 3.0])[z[..., 0]]

    noise = est.draw_noise(np.random.default_rng(0), "categorical", alpha.shape, 40, n=3)
    ref = est.estimate("categorical", alpha, Wild(), noise, n=3)
    assert np.all(np.isfinite(ref))
    cpu = est.estimate("categorical", alpha, Wild(), noise, backend="cpu", n=3)
    assert np.allclose(cpu, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


# ---------------------------------------------------------------- the unordered set estimator
def _p_set_orderings(p, members, removed=()):
    """p^{D \\ removed}(members): the sum over orderings of the successive probabilities."""
    total = 1.0 - sum(p[a] for a in removed)
    out = 0.0
    for order in permutations(members):
        prob, left = 1.0, total
        for x in order:
            prob *= p[x] / left
            left -= p[x]
        out += prob
    return out


def _unord_paper(p, f, S):
    """Eq. 10 of Kool et al. 2020 transcribed with orderings, independently of the recursion."""
    pS = _p_set_orderings(p, S)
    w = []
    for s in S:
        rest = [x for x in S if x != s]
        R = _p_set_orderings(p, rest, (s,)) / pS
        base = p[s] * f[s]
        for s2 in rest:
            rest2 = [x for x in S if x not in (s, s2)]
            base += p[s2] * f[s2] * _p_set_orderings(p, rest2, (s, s2)) / \
                _p_set_orderings(p, rest, (s,))
        w.append(p[s] * R * (f[s] - base))
    return pS, np.array(w)


def test_subset_recursion_equals_the_sum_over_orderings():
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(7))
    for S in ([0, 3], [1, 2, 6], [0, 2, 4, 5]):
        lp = np.log(p[S])
        rest = np.log(p[[x for x in range(7) if x not in S]].sum())
        logG = subset_log_probs(lp, np.array(rest))
        for mask in range(1, 2 ** len(S)):
            members = [S[i] for i in range(len(S)) if mask >> i & 1]
            removed = [S[i] for i in range(len(S)) if not mask >> i & 1]
            assert np.isclose(np.exp(logG[mask]), _p_set_orderings(p, members, removed),
                              rtol=1e-13, atol=0)


def test_set_probabilities_sum_to_one():
    pr = make_problem("categorical", np.array([[2.0, -1.0, 0.0, 0.5, -3.0]]),
                      random_table(1, 5, 1))
    lq = joint_log_probs("categorical", pr.params[None])[0]
    for n in (1, 2, 3, 5):
        total = 0.0
        for S in ms.subsets(5, n):
            rest = [x for x in range(5) if x not in S]
            lr = logsumexp(lq[rest]) if rest else -np.inf
            total += np.exp(subset_log_probs(lq[S], np.array(lr))[-1])
        assert abs(total - 1.0) < 1e-14


@pytest.mark.parametrize("pr", PROBLEMS, ids=lambda p: p.dist.name + str(p.params.shape))
@pytest.mark.parametrize("n", [2, 3])
def test_unord_oracle_equals_paper_formula_over_sets(pr, n):
    f = pr.f_table().ravel()
    p = config_probabilities(pr).ravel()
    S_mat = score_matrix(pr)
    items = []
    for S in ms.subsets(p.size, n):
        pS, w = _unord_paper(p, f, list(S))
        items.append((pS, w @ S_mat[S]))
        rest = [x for x in range(p.size) if x not in S]
        lr = np.log(p[rest].sum()) if rest else -np.inf
        assert np.allclose(unord_weights(np.log(p[S]), np.array(lr), f[S]), w, rtol=1e-12,
                           atol=1e-15)
    mean, cov = _mean_cov(items)
    m = UNORD.exact_moments(pr.dist, pr.params, pr.objective, n=n)
    assert np.allclose(m.mean.ravel(), mean, rtol=0, atol=1e-14)
    assert np.allclose(m.cov, cov, rtol=0, atol=1e-14)
    assert np.allclose(m.mean, verify.exact_gradient(pr), rtol=0, atol=1e-14)


def test_unord_with_the_whole_space_is_the_exact_gradient():
    # n = C**K: the sample is every configuration, so the estimate is exact and constant
    noise = UNORD.draw_noise(np.random.default_rng(1), "categorical", (1, 3), 5, n=3)
    pr1 = make_problem("categorical", np.array([[0.2, -1.0, 1.4]]), random_table(1, 3, 2))
    g = UNORD.estimate("categorical", pr1.params, pr1.objective, noise, n=3)
    assert np.allclose(g, verify.exact_gradient(pr1)[None], rtol=0, atol=1e-15)
    m = UNORD.exact_moments("categorical", pr1.params, pr1.objective, n=3)
    assert np.abs(m.cov).max() < 1e-30


def test_gumbel_top_k_draws_sets_with_their_without_replacement_probabilities():
    """Frequencies of each 2-subset of 4 configurations against p(S) (Hoeffding, 1e-6)."""
    alpha = np.array([[1.0, 0.0, -1.0, 0.5]])
    lq = joint_log_probs("categorical", alpha[None])[0]
    p = np.exp(lq)
    R = 40000
    u = np.random.default_rng(2).random((1, R, 4))
    idx, _ = gumbel_top(lq[None], u, 2)
    sets = np.sort(idx[0], axis=1)
    pairs = ms.subsets(4, 2)
    tol = np.sqrt(np.log(2 * len(pairs) / 1e-6) / (2 * R))
    for S in pairs:
        freq = np.mean((sets[:, 0] == S[0]) & (sets[:, 1] == S[1]))
        assert abs(freq - _p_set_orderings(p, list(S))) < tol
    # the first element is a draw from q itself
    for x in range(4):
        assert abs(np.mean(idx[0, :, 0] == x) - p[x]) < tol


def test_unord_refuses_past_its_limits():
    with pytest.raises(ValueError, match="MAX_N"):
        UNORD.options(n=MAX_N + 1)
    with pytest.raises(ValueError, match="n >= 2"):
        UNORD.options(n=1)
    with pytest.raises(ValueError, match="cannot be drawn"):
        UNORD.draw_noise(np.random.default_rng(0), "categorical", (1, 3), 2, n=4)
    K = int(np.log2(MAX_JOINT)) + 1
    with pytest.raises(ValueError, match="MAX_JOINT"):
        UNORD.draw_noise(np.random.default_rng(0), "bernoulli", (K,), 2, n=2)
    with pytest.raises(ValueError, match="MAX_TERMS"):
        UNORD.exact_moments("bernoulli", np.zeros(10), random_table(10, 2, 0), n=4)
    with pytest.raises(ValueError, match="MAX_TERMS"):
        VIMCO.exact_moments("bernoulli", np.zeros(8), random_table(8, 2, 0), n=4)
    with pytest.raises(ValueError, match="n >= 2"):
        VIMCO.options(n=1)


def test_unord_has_lower_variance_than_loo_on_a_peaked_distribution():
    """Without replacement the sample never repeats the mode; with a peaked q and the same
    number of evaluations the unordered set estimator beats REINFORCE-LOO here (exact)."""
    alpha = np.array([[3.0, 0.0, -0.5, -1.0]])
    f = random_table(1, 4, 8)
    un = UNORD.exact_moments("categorical", alpha, f, n=3).variance_trace
    loo = get_estimator("reinforce_loo").exact_moments("categorical", alpha, f, n=3).variance_trace
    assert un < loo


# ------------------------------------------------------------- REINFORCE without replacement
WOR = get_estimator("reinforce_wor")


def test_inclusion_probabilities_equal_sums_over_orderings():
    from reference.estimators.multi_sample.numpy_reference import inclusion_log_probs

    alpha = np.array([[1.0, -0.5, 0.0, 2.0, -2.0]])
    p = np.exp(joint_log_probs("categorical", alpha[None])[0])
    for n in (1, 2, 3, 4):
        pi = np.exp(inclusion_log_probs("categorical", alpha[None], n)[0])
        want = [sum(_p_set_orderings(p, list(S)) for S in ms.subsets(5, n) if x in S)
                for x in range(5)]
        assert np.allclose(pi, want, rtol=1e-13, atol=0)
        assert abs(pi.sum() - n) < 1e-13  # n members per sample
        assert np.all(pi >= p * (1 - 1e-15))  # hence weights p / pi <= 1


@pytest.mark.parametrize("pr", PROBLEMS, ids=lambda p: p.dist.name + str(p.params.shape))
def test_reinforce_wor_with_one_sample_is_reinforce(pr):
    a = WOR.exact_moments(pr.dist, pr.params, pr.objective, n=1, baseline=0.3)
    b = get_estimator("reinforce").exact_moments(pr.dist, pr.params, pr.objective, n=1,
                                                 baseline=0.3)
    assert np.allclose(a.mean, b.mean, rtol=0, atol=1e-14)
    assert np.allclose(a.cov, b.cov, rtol=0, atol=1e-14)


@pytest.mark.parametrize("pr", PROBLEMS, ids=lambda p: p.dist.name + str(p.params.shape))
@pytest.mark.parametrize("n", [2, 3])
def test_reinforce_wor_oracle_equals_horvitz_thompson_over_sets(pr, n):
    f = pr.f_table().ravel()
    p = config_probabilities(pr).ravel()
    S_mat = score_matrix(pr)
    sets = ms.subsets(p.size, n)
    pS = np.array([_p_set_orderings(p, list(S)) for S in sets])
    pi = np.array([pS[[x in S for S in sets]].sum() for x in range(p.size)])
    items = [(ps, (p[S] / pi[S] * (f[S] - 0.5)) @ S_mat[S]) for ps, S in zip(pS, sets, strict=True)]
    mean, cov = _mean_cov(items)
    m = WOR.exact_moments(pr.dist, pr.params, pr.objective, n=n, baseline=0.5)
    assert np.allclose(m.mean.ravel(), mean, rtol=0, atol=1e-14)
    assert np.allclose(m.cov, cov, rtol=0, atol=1e-14)
    assert np.allclose(m.mean, verify.exact_gradient(pr), rtol=0, atol=1e-14)


def test_reinforce_wor_refuses_too_many_sets():
    from reference.estimators.multi_sample.numpy_reference import MAX_SETS

    # C**K = 4096 configurations, binom(4096, 3) > MAX_SETS subsets to sum over
    alpha = np.zeros((6, 4))
    noise = WOR.draw_noise(np.random.default_rng(0), "categorical", alpha.shape, 1, n=3)
    q = WOR.queries("categorical", alpha, noise, n=3)
    answers = evaluate(random_table(6, 4, 0), q)
    with pytest.raises(ValueError, match="MAX_SETS"):
        WOR.combine("categorical", alpha, q, answers, n=3)
    assert MAX_SETS < 4096 * 4095 * 4094 // 6


@pytest.mark.parametrize("name", ["unord", "reinforce_wor"])
@pytest.mark.parametrize("dist,shape", [("categorical", (2, 3)), ("bernoulli", (3,))])
def test_without_replacement_backends_agree_for_n3(name, dist, shape, small_cuda_grid):
    # the registry's examples keep reinforce_wor at n = 2 (simulator time); n = 3 here
    from conftest import HAS_GPU

    est = get_estimator(name)
    rng = np.random.default_rng(4)
    params = rng.normal(size=shape)
    K, C = (shape[0], 2) if dist == "bernoulli" else shape
    pr = make_problem(dist, params, random_table(K, C, 6))
    opts = {"n": 3, "baseline": 0.5} if name == "reinforce_wor" else {"n": 3}
    verify.check_port(verify.backend_port(est, "cpu", dist), est, pr, R=2000, seed=3,
                      raise_on_failure=True, **opts)
    verify.check_port(verify.backend_port(est, "cuda", dist), est, pr, R_shared=4, seed=3,
                      distribution=HAS_GPU, raise_on_failure=True, **opts)


@pytest.mark.parametrize("dist,shape", [("categorical", (7, 3, 4)), ("bernoulli", (7, 5))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kernels_joint_tables_are_the_references_bit_for_bit(dist, shape, dtype, small_cuda_grid):
    # the CPU and CUDA kernels of UNORD and REINFORCE-WOR take log q of the joint space from
    # these tables: the reference's sums, in its order, not a recomputation per configuration
    from reference.estimators.multi_sample import cpu, cuda

    params = (3.0 * np.random.default_rng(8).normal(size=shape)).astype(dtype)
    params[0] = 40.0  # saturated rows
    want = joint_log_probs(dist, params)
    assert np.array_equal(cpu.joint_tables(dist, params), want)
    assert np.array_equal(cuda.joint_tables(dist, params).copy_to_host(), want)


@pytest.mark.parametrize("dist,params,n", [
    ("categorical", np.zeros((2, 2, 3)), 2),  # every configuration tied
    ("categorical", np.array([[[40.0, 0.0, -40.0], [0.0, 0.0, 0.0]]]), 3),  # saturated
    ("bernoulli", np.array([[0.7]]), 2),  # the whole space: nothing outside the one set
    ("bernoulli", np.array([[0.3, -2.0, 5.0]]), 3),
])
def test_wor_kernel_tables_equal_the_reference_inclusion_probabilities(dist, params, n):
    # the kernel reads each set's outside mass from n + 1 precomputed rows of exp(log q - max)
    from reference.estimators.multi_sample import cpu
    from reference.estimators.multi_sample.numpy_reference import inclusion_log_probs

    lq, logpi = cpu.wor_tables(dist, params, n)
    assert np.array_equal(lq, joint_log_probs(dist, params))
    want = inclusion_log_probs(dist, params, n)
    assert np.allclose(logpi, want, rtol=0, atol=1e-13)


def test_report_row_measures_bias_against_the_records_target():
    from verify.report import _row, row_ok

    row = _row(0, "vimco", "categorical", 0, 0, R=300, seed=0, R_shared=4, cuda_mode="off",
               cuda_agrees=None)
    assert "log (1/n)" in row["target"]
    assert row["bias_max_abs"] < 1e-12 and row_ok(row)
    pr = verify.problems.builtin_problems("categorical")[0][1]
    m = VIMCO.exact_moments("categorical", pr.params, pr.objective, n=2)
    assert np.abs(m.bias(verify.exact_gradient(pr))).max() > 1e-3  # E_q[f] is not its target


@given(vst.problems(K=st.integers(1, 3), C=st.integers(2, 3), max_abs=50.0), st.integers(2, 3))
@settings(max_examples=25)
def test_means_are_their_targets_gradients_at_extreme_logits(problem, n):
    """Logits up to +-50: finite moments, unbiased for each record's target (the gradient is
    computed independently of the estimators' set recursion and signals)."""
    grad = verify.exact_gradient(problem)
    tol = 1e-11 * max(1.0, np.abs(problem.f_table()).max())
    d, p, f = problem.dist.name, problem.params, problem.objective
    N = problem.C ** problem.K
    for est in (UNORD, WOR):
        if n <= N:
            m = est.exact_moments(d, p, f, n=n)
            assert np.all(np.isfinite(m.cov))
            assert np.abs(m.mean - grad).max() <= tol
    m = VIMCO.exact_moments(d, p, f, n=n)
    assert np.abs(m.mean - VIMCO.target_gradient(d, p, f, n=n)).max() <= tol
    # and the estimates themselves are finite on every backend but CUDA (simulator time)
    for est in (UNORD, WOR, VIMCO):
        if n <= N:
            noise = est.draw_noise(np.random.default_rng(0), d, p.shape, 8, n=n)
            for backend in ("numpy", "cpu"):
                assert np.all(np.isfinite(est.estimate(d, p, f, noise, backend=backend, n=n)))


# ------------------------------------------------------------------------------------ CARMS
CARMS = get_estimator("carms")


def _carms_cases():
    return [(2, np.array([0.4, -1.3, 2.0])), (3, np.array([0.4, -1.3, 2.0])),
            (4, np.array([1.0, 0.0, -0.5, 0.2])), (3, np.array([0.7, -0.7]))]


@pytest.mark.parametrize("n,row", _carms_cases())
def test_carms_tuple_law_is_a_law_with_marginals_p_and_the_pair_law(n, row):
    """The n-tuple law (n-dimensional inclusion-exclusion) sums to 1, every sample's marginal
    is p (the copula's marginals are uniform), and every pair's marginal is the estimator's
    two-dimensional pair law."""
    from reference.estimators.multi_sample.numpy_reference import carms_pair_law

    tuples, law = ms.carms_tuple_law(row, n)
    p = np.exp(row - logsumexp(row))
    C = row.size
    assert np.all(law >= -1e-15)
    assert abs(law.sum() - 1.0) < 1e-14
    for i in range(n):
        marg = np.bincount(tuples[:, i], weights=law, minlength=C)
        assert np.allclose(marg, p, rtol=1e-13, atol=1e-15)
    pair = carms_pair_law(row[None], n)[0]
    for i in range(n):
        for j in range(n):
            if i != j:
                got = np.zeros((C, C))
                np.add.at(got, (tuples[:, i], tuples[:, j]), law)
                assert np.allclose(got, pair, rtol=1e-12, atol=1e-15)
    # off-diagonal pairs have positive probability (unbiasedness needs it)
    assert np.all(pair[~np.eye(C, dtype=bool)] > 0)


@pytest.mark.parametrize("n,row", _carms_cases())
def test_carms_sampler_draws_tuples_with_the_exact_law(n, row):
    """Frequencies of the sampler's n-tuples (one variable) against the exact law: exact
    binomial tails per tuple, Bonferroni over tuples, false alarm 1e-6 in all."""
    from scipy.stats import binom

    N = 40000
    C = row.size
    noise = CARMS.draw_noise(np.random.default_rng(n * 10 + C), "categorical", (1, C), N, n=n)
    z = CARMS.queries("categorical", row[None], noise, n=n).z[:, :, 0]  # (N, n)
    tuples, law = ms.carms_tuple_law(row, n)
    code = z @ (C ** np.arange(n - 1, -1, -1))
    counts = np.bincount(code, minlength=C**n)
    assert np.all(counts[law <= 0] == 0)
    alpha = 1e-6 / law.size
    lo = binom.cdf(counts, N, np.clip(law, 0, 1))
    hi = binom.sf(counts - 1, N, np.clip(law, 0, 1))
    assert np.all(np.minimum(lo, hi) > alpha / 2), (counts, N * law)


def test_carms_with_two_samples_is_the_antithetic_pair_of_arms():
    """n = 2: the copula's uniforms are (v, 1 - v); for Bernoulli z_i = 1[v_i < sigmoid(phi)]."""
    from reference.estimators.multi_sample.numpy_reference import carms_copula_uniforms

    rng = np.random.default_rng(5)
    phi = rng.normal(size=3)
    noise = CARMS.draw_noise(rng, "bernoulli", phi.shape, 200, n=2)
    v = carms_copula_uniforms(noise["u"])
    assert np.allclose(v[:, 0] + v[:, 1], 1.0, atol=1e-15)
    z = CARMS.queries("bernoulli", phi, noise, n=2).z
    assert np.array_equal(z, (v < 1 / (1 + np.exp(-phi))).astype(np.int64))


@given(vst.problems(K=st.integers(1, 2), C=st.integers(2, 3), max_abs=50.0), st.integers(2, 3))
@settings(max_examples=15, deadline=None)
def test_carms_mean_is_the_gradient_at_any_logits(problem, n):
    """Unbiased at logits up to +-50 (absolute error relative to the largest entry; the
    per-entry relative accuracy at saturated logits is not claimed, see the oracle)."""
    grad = verify.exact_gradient(problem)
    d, p, f = problem.dist.name, problem.params, problem.objective
    m = CARMS.exact_moments(d, p, f, n=n)
    assert np.all(np.isfinite(m.cov))
    assert np.abs(m.mean - grad).max() <= 1e-11 * max(1.0, np.abs(problem.f_table()).max())
    noise = CARMS.draw_noise(np.random.default_rng(0), d, p.shape, 8, n=n)
    # the reference only (the fast backends are compared with it in test_carms_backends_agree)
    assert np.all(np.isfinite(CARMS.estimate(d, p, f, noise, n=n)))


@pytest.mark.parametrize("dist,shape,n", [("categorical", (2, 5), 4), ("bernoulli", (3,), 5),
                                          ("categorical", (1, 3), 2)])
def test_carms_backends_agree(dist, shape, n, small_cuda_grid):
    from conftest import HAS_GPU

    rng = np.random.default_rng(8)
    params = 3.0 * rng.normal(size=shape)
    K, C = (shape[0], 2) if dist == "bernoulli" else shape
    pr = make_problem(dist, params, random_table(K, C, 9))
    verify.check_port(verify.backend_port(CARMS, "cpu", dist), CARMS, pr, R=2000, seed=3,
                      distribution=C**(n * K) <= 5000, raise_on_failure=True, n=n)
    verify.check_port(verify.backend_port(CARMS, "cuda", dist), CARMS, pr, R_shared=4, seed=3,
                      distribution=HAS_GPU and C**(n * K) <= 5000, raise_on_failure=True, n=n)


def test_carms_refuses_past_its_limits():
    from reference.estimators.multi_sample.numpy_reference import CARMS_MAX_N

    alpha = np.zeros((2, 3))
    with pytest.raises(ValueError, match="n"):
        CARMS.options(n=1)
    with pytest.raises(ValueError, match="CARMS_MAX_N"):
        CARMS.options(n=CARMS_MAX_N + 1)
    with pytest.raises(ValueError, match="CARMS moments"):
        CARMS.exact_moments("categorical", np.zeros((4, 10)), random_table(4, 10, 1), n=4)
    with pytest.raises(ValueError, match="CARMS_MP_MAX_TUPLES"):
        ms.carms_moments_mp("categorical", alpha, random_table(2, 3, 1), n=5)


def test_carms_code_weight_is_biased_and_the_exact_ratio_is_not():
    """The authors' code's smoothed and clipped pair weight moves the mean off the gradient
    (by much more than rounding) on the categorical toy; the exact ratio does not."""
    from reference import categorical_toy

    pr = make_problem("categorical", np.zeros((1, 10)), categorical_toy(10))
    grad = verify.exact_gradient(pr)
    tol = 1e-13 * np.abs(grad).max()
    exact = CARMS.exact_moments(pr.dist, pr.params, pr.objective, n=2)
    code = ms.carms_code_moments(pr.dist, pr.params, pr.objective, n=2)
    assert np.abs(exact.mean - grad).max() <= tol
    assert np.abs(code.mean - grad).max() > 1e6 * tol


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("pr", PROBLEMS, ids=["bern-K2", "cat-K1C3", "cat-K2C2"])
def test_carms_u_statistic_oracle_equals_enumeration_of_tuples(pr, n):
    """The oracle's U-statistic form (laws of 2, 3, 4 samples) against the sum over every
    joint n-tuple of samples with the reference's estimate."""
    a = CARMS.exact_moments(pr.dist, pr.params, pr.objective, n=n)
    b = ms.carms_moments_tuples(pr.dist, pr.params, pr.objective, n=n)
    assert np.allclose(a.mean, b.mean, rtol=1e-12, atol=1e-15)
    assert np.allclose(a.cov, b.cov, rtol=1e-11, atol=1e-14 * np.abs(b.cov).max())


def test_carms_pair_law_without_inclusion_exclusion_matches_it_at_moderate_logits():
    """The reference's pair law (interval lengths for n = 2, non-negative sums for n >= 3)
    against the plain inclusion-exclusion of the survival function S where that is accurate,
    and exactly 0 on pairs that never occur (n = 2, a category below 1/2 with itself)."""
    from reference.estimators.multi_sample.numpy_reference import carms_pair_law, carms_survival

    rng = np.random.default_rng(12)
    for n in (2, 3, 5):
        for C in (2, 3, 4):
            row = rng.normal(size=C)
            p = np.exp(row - logsumexp(row))
            want = np.zeros((C, C))
            M = C * (C - 1) // 2
            from reference.estimators.multi_sample.numpy_reference import carms_order

            for m in range(M):
                o = carms_order(C, m)
                L = np.zeros(C)
                L[o] = np.concatenate([[0.0], np.cumsum(p[o])[:-1]])
                R = L + p
                R[o[-1]] = 1.0
                want += (carms_survival(L[:, None], L[None, :], n)
                         - carms_survival(R[:, None], L[None, :], n)
                         - carms_survival(L[:, None], R[None, :], n)
                         + carms_survival(R[:, None], R[None, :], n))
            got = carms_pair_law(row[None], n)[0]
            assert np.allclose(got, want / M, rtol=1e-10, atol=1e-14)
    assert carms_pair_law(np.array([[0.0, 1.0]]), 2)[0, 0, 0] == 0.0  # p_0 < 1/2


@pytest.mark.parametrize("K", [1, 2, 3])
def test_carms_with_two_bernoulli_samples_has_the_moments_of_disarm(K):
    """The ARMS paper's statement that ARMS with two samples is DisARM, checked on the exact
    moments (two independent oracles: DisARM's cell integrals, CARMS's pair laws)."""
    rng = np.random.default_rng(K)
    phi = 2.0 * rng.normal(size=K)
    f = random_table(K, 2, K)
    a = get_estimator("disarm").exact_moments("bernoulli", phi, f)
    b = CARMS.exact_moments("bernoulli", phi, f, n=2)
    assert np.allclose(a.mean, b.mean, rtol=1e-12, atol=1e-15)
    assert np.allclose(a.cov, b.cov, rtol=1e-11, atol=1e-14 * np.abs(a.cov).max())
