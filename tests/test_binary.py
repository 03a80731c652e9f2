"""AR, ARM and DisARM (reference.estimators.augment_reinforce) and their exact moments
(verify.moments.augment_reinforce).

The oracle is the judge: exact means against the enumeration gradient, the cell-integral
moments against Gauss-Legendre quadrature of the reference estimator itself, the separable
fast path against the general method, Var(DisARM) <= Var(ARM) exactly, Monte Carlo checks
through the oracle's statistical test, and the CPU/CUDA kernels against the reference on shared
noise. Problems come from Hypothesis (K <= 6, logits up to +-30, including 0 and +-30).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import HAS_GPU, assert_port_ok
from hypothesis import given, settings
from hypothesis import strategies as st

import verify
from reference import (
    Answers,
    BinaryQuadratic,
    Queries,
    TableObjective,
    binary_quadratic,
    get_estimator,
    random_table,
)
from reference.estimators.augment_reinforce.numpy_reference import arm_pairs
from verify.moments.augment_reinforce import MAX_GENERAL_K, binary_moments

KINDS = ("ar", "arm", "disarm")
SPECIAL_LOGITS = (0.0, 1e-9, -1e-9, 0.3, -0.3, 29.5, -29.5, 30.0, -30.0)


# ----------------------------------------------------------------------- strategies
@st.composite
def logits(draw, K: int) -> np.ndarray:
    """``K`` Bernoulli logits in [-30, 30], often exactly 0, tiny, or at +-30."""
    elem = st.one_of(st.sampled_from(SPECIAL_LOGITS),
                     st.floats(-30.0, 30.0, allow_nan=False, allow_infinity=False))
    return np.array(draw(st.lists(elem, min_size=K, max_size=K)), dtype=np.float64)


@st.composite
def objectives(draw, K: int):
    """A random binary table (values in [-5, 5]) or the quadratic toy with t in [-1, 2].

    Table values below 1e-100 in magnitude become 0: their squares underflow in float64, so
    exact variances would be 0 while samples still deviate (a float64 limit of the Monte Carlo
    check's zero-variance test, not a property of the estimators).
    """
    value = st.floats(-5.0, 5.0, allow_nan=False).map(lambda v: v if abs(v) >= 1e-100 else 0.0)
    if draw(st.booleans()):
        vals = draw(st.lists(value, min_size=2**K, max_size=2**K))
        return TableObjective(np.array(vals).reshape((2,) * K), "binary")
    return BinaryQuadratic(K, draw(st.floats(-1.0, 2.0, allow_nan=False)))


@st.composite
def binary_problems(draw, max_K: int = 6) -> verify.Problem:
    """A Bernoulli problem with ``1 <= K <= max_K``."""
    K = draw(st.integers(1, max_K))
    return verify.make_problem("bernoulli", draw(logits(K)), draw(objectives(K)))


class SeparableTable(TableObjective):
    """A table ``f(z) = sum_k h[k, z_k]`` that announces its terms (duck-typed fast path)."""

    def __init__(self, h: np.ndarray) -> None:
        K = h.shape[0]
        table = sum(h[k].reshape((1,) * k + (2,) + (1,) * (K - k - 1)) for k in range(K))
        super().__init__(np.broadcast_to(table, (2,) * K).copy(), "binary")
        self.h = h

    def separable_terms(self) -> np.ndarray:
        return self.h


def _f_scale(pr: verify.Problem) -> float:
    return max(1.0, float(np.abs(pr.f_table()).max()))


# ------------------------------------------------------------------ exact mean, gradient
@given(binary_problems(), st.integers(1, 3))
def test_exact_mean_is_exact_gradient(pr, n):
    grad = verify.exact_gradient(pr)
    tol = 1e-12 * max(1.0, float(np.abs(grad).max()))
    for kind in KINDS:
        m = get_estimator(kind).exact_moments(pr.dist, pr.params, pr.objective, n=n)
        assert np.abs(m.mean - grad).max() <= tol, (kind, m.mean, grad)


def test_gradient_of_one_variable_by_hand():
    # K = 1: every estimator has mean sigmoid(phi) sigmoid(-phi) (f(1) - f(0))
    for phi in (-2.0, 0.0, 0.7, 30.0):
        obj = TableObjective(np.array([1.5, -0.25]), "binary")
        p = 1.0 / (1.0 + np.exp(-phi))
        for kind in KINDS:
            m = binary_moments(kind, "bernoulli", np.array([phi]), obj)
            # absolute slack: the implementation's cell [fl(sigmoid(30)), 1) is an ulp of 1
            # (1.1e-16) longer or shorter than sigmoid(-30) = 9.4e-14 (verify.moments.augment_reinforce)
            assert m.mean[0] == pytest.approx(p * (1 - p) * (-1.75), rel=1e-12, abs=1e-15)


# ---------------------------------------------- the cell integrals against quadrature
def _quadrature_moments(kind: str, pr: verify.Problem) -> tuple[np.ndarray, np.ndarray]:
    """Mean and second moment of one draw by Gauss-Legendre quadrature of the NumPy reference
    over every product of cells (the integrand is a polynomial of degree <= 2 per u_k there)."""
    est = get_estimator(kind)
    x, w = np.polynomial.legendre.leggauss(2)
    x, w = (x + 1) / 2, w / 2  # on [0, 1]
    phi = pr.params
    a, c = 1 / (1 + np.exp(phi)), 1 / (1 + np.exp(-phi))
    edges = np.stack([np.zeros_like(phi), np.minimum(a, c), np.maximum(a, c), np.ones_like(phi)], 1)
    us, ws = [], []
    for cells in itertools.product(range(3), repeat=pr.K):
        lo = edges[np.arange(pr.K), list(cells)]
        hi = edges[np.arange(pr.K), np.array(cells) + 1]
        if np.any(hi <= lo):
            continue
        for nodes in itertools.product(range(2), repeat=pr.K):
            us.append(lo + (hi - lo) * x[list(nodes)])
            ws.append(np.prod((hi - lo) * w[list(nodes)]))
    u = np.array(us)[:, None, :]  # (R, n=1, K)
    g = est.estimate("bernoulli", phi, pr.objective, {"u": u})  # (R, K)
    ws = np.array(ws)
    return ws @ g, (g * ws[:, None]).T @ g


@settings(max_examples=25)
@given(binary_problems(max_K=3))
def test_cell_moments_equal_quadrature_of_the_reference(pr):
    scale = _f_scale(pr)
    for kind in KINDS:
        m = binary_moments(kind, pr.dist, pr.params, pr.objective, method="general")
        mean, second = _quadrature_moments(kind, pr)
        # the quadrature uses the sigmoid of np.exp (not the two-branch one): the cell ends
        # may differ by an ulp, which moves the moments by about 1e-16 * scale^2
        assert np.abs(m.mean - mean).max() <= 1e-12 * scale, kind
        assert np.abs(m.cov + np.outer(m.mean, m.mean) - second).max() <= 1e-12 * scale**2, kind


# --------------------------------------------------------------- separable fast path
@given(st.integers(1, 6).flatmap(lambda K: st.tuples(logits(K), st.floats(-1.0, 2.0))),
       st.integers(1, 3))
def test_separable_path_equals_general_on_the_toy(phi_t, n):
    phi, t = phi_t
    obj = binary_quadratic(phi.size, t)
    for kind in KINDS:
        a = binary_moments(kind, "bernoulli", phi, obj, n=n, method="general")
        b = binary_moments(kind, "bernoulli", phi, obj, n=n, method="separable")
        assert "separable" in binary_moments(kind, "bernoulli", phi, obj).method
        scale = max(1.0, float(np.abs(obj.table()).max()))
        assert np.abs(a.mean - b.mean).max() <= 1e-13 * scale, kind
        assert np.abs(a.cov - b.cov).max() <= 1e-12 * scale**2, kind
        assert np.all(b.range_bound >= np.abs(a.mean) - 1e-15)


@given(st.integers(1, 5).flatmap(lambda K: st.tuples(
    logits(K), st.lists(st.floats(-4.0, 4.0), min_size=2 * K, max_size=2 * K))))
def test_separable_path_equals_general_on_separable_tables(phi_h):
    phi, h = phi_h
    obj = SeparableTable(np.array(h).reshape(-1, 2))
    for kind in KINDS:
        a = binary_moments(kind, "bernoulli", phi, obj, method="general")
        b = binary_moments(kind, "bernoulli", phi, obj, method="auto")
        assert "separable" in b.method
        assert np.allclose(a.mean, b.mean, rtol=0, atol=1e-12)
        assert np.allclose(a.cov, b.cov, rtol=0, atol=1e-11)


def test_separable_path_at_K20_matches_closed_form_gradient():
    # f = sum_k (z_k - t)^2: d E f / d phi_k = sigmoid'(phi_k) ((1 - t)^2 - t^2)
    phi = np.linspace(-3.0, 3.0, 20)
    t = 0.499
    p = 1 / (1 + np.exp(-phi))
    grad = p * (1 - p) * (1 - 2 * t)
    for kind in KINDS:
        m = binary_moments(kind, "bernoulli", phi, binary_quadratic(20, t))
        assert np.abs(m.mean - grad).max() <= 1e-15
        assert np.all(np.linalg.eigvalsh(m.cov) >= -1e-15)


# -------------------------------------------------------------- DisARM beats ARM, exactly
@given(binary_problems(), st.integers(1, 2))
def test_disarm_variance_at_most_arm(pr, n):
    arm = binary_moments("arm", pr.dist, pr.params, pr.objective, n=n)
    dis = binary_moments("disarm", pr.dist, pr.params, pr.objective, n=n)
    atol = 1e-12 * _f_scale(pr) ** 2
    assert dis.variance_trace <= arm.variance_trace + atol
    assert np.all(np.diag(dis.cov) <= np.diag(arm.cov) + atol)
    # DisARM = E[ARM | b1, b2]: Cov(ARM) - Cov(DisARM) = E[Cov(ARM | b1, b2)] is PSD
    assert np.linalg.eigvalsh(arm.cov - dis.cov).min() >= -atol


# ------------------------------------------------------------------ Monte Carlo checks
@settings(max_examples=15)
@given(binary_problems(), st.integers(0, 2**31 - 1))
def test_reference_passes_mc_check(pr, seed):
    for kind in KINDS:
        verify.assert_mc(kind, pr, R=2000, seed=seed, backend="numpy")


@settings(max_examples=8)
@given(binary_problems(max_K=4), st.integers(1, 3))
def test_reference_passes_mc_check_with_n(pr, n):
    for kind in KINDS:
        verify.assert_mc(kind, pr, R=1500, seed=n, backend="numpy", n=n)


# ------------------------------------------------------------------------ port checks
@settings(max_examples=15)
@given(binary_problems(), st.integers(1, 3), st.integers(0, 1000))
def test_cpu_port(pr, n, seed):
    for kind in KINDS:
        assert_port_ok(verify.check_port(verify.backend_port(kind, "cpu", "bernoulli"), kind, pr,
                                         R=1000, seed=seed, n=n))


@settings(max_examples=4)
@given(binary_problems(max_K=4), st.integers(1, 2))
def test_cuda_port(pr, n):
    # The simulator runs every thread as a Python thread: shared-noise agreement on a few
    # replicates only; the distribution-level check runs on a real GPU.
    from reference import config

    config.CUDA_THREADS_PER_BLOCK, config.CUDA_MAX_BLOCKS = 2, 3  # several blocks, grid-stride
    try:
        for kind in KINDS:
            assert_port_ok(verify.check_port(verify.backend_port(kind, "cuda", "bernoulli"), kind,
                                             pr, R_shared=3, R=1000, distribution=HAS_GPU, n=n))
    finally:
        config.reset()


def test_batch_axes_and_float32():
    rng = np.random.default_rng(5)
    phi = rng.normal(size=(2, 3, 4)) * 3
    obj = random_table(4, 2, 7)
    for kind in KINDS:
        est = get_estimator(kind)
        noise = est.draw_noise(rng, "bernoulli", phi.shape, 6, n=2)
        ref = est.estimate("bernoulli", phi, obj, noise, n=2)
        assert ref.shape == (2, 3, 6, 4)
        one = est.estimate("bernoulli", phi[1, 2], obj, {"u": noise["u"][1, 2]}, n=2)
        assert np.array_equal(ref[1, 2], one)
        cpu = est.estimate("bernoulli", phi, obj, noise, backend="cpu", n=2)
        assert np.abs(cpu - ref).max() <= 1e-12 * np.abs(ref).max()
        # float32 on the fast path: u and phi rounded to float32 (a decision flips only when
        # u lies within float32 rounding of a threshold; not the case for this seed)
        c32 = est.estimate("bernoulli", phi.astype(np.float32), obj, noise, backend="cpu", n=2)
        assert c32.dtype == np.float32
        assert np.abs(c32 - ref).max() <= 1e-5 * np.abs(ref).max()


# ------------------------------------------------------------------ layout and records
def test_pair_queries_layout_and_cost():
    phi = np.array([0.0, 2.0, -2.0])
    u = np.array([[[[0.3, 0.5, 0.95], [0.7, 0.05, 0.5]]]])  # (R=1, n=2, K=3) with batch 1
    for kind in ("arm", "disarm"):
        z = get_estimator(kind).queries("bernoulli", phi[None], {"u": u}, n=2).z
        b1, b2 = arm_pairs(phi, u[0, 0])
        assert z.shape == (1, 1, 4, 3)
        assert np.array_equal(z[0, 0, 0::2], b1) and np.array_equal(z[0, 0, 1::2], b2)
        assert np.array_equal(z[0, 0, 0], [0, 1, 1]) and np.array_equal(z[0, 0, 1], [1, 1, 0])
        assert get_estimator(kind).cost(3, 2, n=2).evals == 4
    assert get_estimator("ar").cost(3, 2, n=2).evals == 2


def test_disarm_by_hand():
    # K = 2, f(z) = table, phi = (0, 1), u = (0.2, 0.9): b1 = (0, 1), b2 = (1, 0)
    table = np.array([[0.0, 1.0], [2.0, 5.0]])
    obj = TableObjective(table, "binary")
    phi = np.array([0.0, 1.0])
    g = get_estimator("disarm").estimate("bernoulli", phi, obj, {"u": np.array([[[0.2, 0.9]]])})
    d = table[0, 1] - table[1, 0]
    s1 = 1 / (1 + np.exp(-1.0))
    assert np.allclose(g[0], [0.5 * d * -0.5, 0.5 * d * s1], rtol=1e-15)
    arm = get_estimator("arm").estimate("bernoulli", phi, obj, {"u": np.array([[[0.2, 0.9]]])})
    assert np.allclose(arm[0], [d * (0.2 - 0.5), d * (0.9 - 0.5)], rtol=1e-15)


def test_disarm_general_method_at_K12_is_exact():
    # its time is measured by scripts/bench_oracle.py, not asserted here
    rng = np.random.default_rng(12)
    phi = rng.normal(size=12) * 2
    phi[:3] = [0.0, 30.0, -30.0]
    pr = verify.make_problem("bernoulli", phi, random_table(12, 2, 12))
    m = binary_moments("disarm", pr.dist, pr.params, pr.objective)
    grad = verify.exact_gradient(pr)
    assert np.abs(m.mean - grad).max() <= 1e-12 * max(1.0, np.abs(grad).max())


# ------------------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors():
    phi = np.zeros(3)
    obj = random_table(3, 2, 0)
    for kind in KINDS:
        est = get_estimator(kind)
        with pytest.raises(ValueError, match="noise"):
            est.estimate("bernoulli", phi, obj, {"u": np.full((4, 3), 0.5)})  # missing n axis
        with pytest.raises(ValueError, match="noise"):
            est.estimate("bernoulli", phi, obj, {"u": np.full((4, 2, 3), 0.5)}, n=1)
        with pytest.raises(ValueError, match="NaN"):
            est.estimate("bernoulli", np.array([0.0, np.nan, 1.0]), obj, {"u": np.full((4, 1, 3), 0.5)})
        with pytest.raises(ValueError, match="n must be >= 1"):
            est.options(n=0)
        with pytest.raises(TypeError, match="n must be an integer"):
            est.options(n=1.5)
        with pytest.raises(ValueError, match="bernoulli"):
            est.estimate("categorical", np.zeros((3, 2)), obj, {"u": np.full((4, 1, 3), 0.5)})
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            est.estimate("bernoulli", phi, obj, {"u": np.full((4, 1, 3), 1.0)})
        q = est.queries("bernoulli", phi, {"u": np.full((4, 1, 3), 0.25)})
        answers = np.zeros(q.z.shape[:-1])
        with pytest.raises(ValueError, match="configurations per replicate"):
            est.combine("bernoulli", phi, q, Answers(answers), n=2)
        if kind != "disarm":
            with pytest.raises(ValueError, match="aux"):
                est.combine("bernoulli", phi, Queries(q.z), Answers(answers))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        binary_moments("arm", "bernoulli", phi, obj, n=0)
    with pytest.raises(ValueError, match="not recognised as separable"):
        binary_moments("arm", "bernoulli", phi, obj, method="separable")
    with pytest.raises(ValueError, match="method"):
        binary_moments("arm", "bernoulli", phi, obj, method="quadrature")
    with pytest.raises(ValueError, match="kind"):
        binary_moments("rebar", "bernoulli", phi, obj)
    big = MAX_GENERAL_K + 1
    with pytest.raises(ValueError, match="general method handles"):
        binary_moments("disarm", "bernoulli", np.zeros(big), random_table(big, 2, 0))
