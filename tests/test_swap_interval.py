"""ARS+ and ARSM+CE past the cells: the races give their means and ARSM+'s tables, and
:mod:`verify.moments.swap_interval` estimates what the conditional expectation changes by RQMC
(ARS+: the interval variance ``V`` of ``pi_j``, with ``pi_j`` integrated out; ARSM+CE: ``V``
and the corrections ``D``, ``DQ`` of the entries ``q != j``). Checked against the polytope
cells (exact) where both exist, by lowering ``MAX_ARS_PLUS_C`` and ``MAX_CE_C``; at ``C = 10``
(slow) against the exact gradient and sampling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import verify
from reference import REGISTRY, random_table
from verify.moments import swap
from verify.moments.swap_interval import ce_correction_tables, interval_variance_tables

ROWS = [np.array([0.3, -0.5, 1.0, 0.1]), np.array([1.2, -0.4, 0.0, 0.7, -1.1])]


@pytest.fixture
def past_the_cells(monkeypatch):
    """ARS+ of every C > 3 through the races and RQMC, with fewer points (fast tests)."""
    monkeypatch.setattr(swap, "MAX_ARS_PLUS_C", 3)
    monkeypatch.setattr(swap, "ARS_PLUS_RQMC_LOG2_POINTS", 10)
    swap.clear_caches()
    yield
    swap.clear_caches()


def _half_width(samples: np.ndarray, confidence: float = 1 - 1e-6) -> float:
    """Student-t half-width of the mean over axis 0, the largest over the entries."""
    R = samples.shape[0]
    q = stats.t.ppf(0.5 + confidence / 2, R - 1) / np.sqrt(R)
    return float(q * samples.std(axis=0, ddof=1).max())


@pytest.mark.parametrize("row", ROWS, ids=["C4", "C5"])
def test_interval_variance_matches_the_cells(row):
    # the cells give ARS+'s Q2 exactly; the symmetry-only Q2 (races) lies above it by
    # C^2 / 12 V on the entries q = j
    C = row.size
    V_r = interval_variance_tables(row, log2_points=11, randomizations=16)
    V = V_r.mean(axis=0)
    j = np.arange(C)
    gap = (swap._sym_race_tensors(swap._row_key(row))["Q2"] - swap._ars_plus_tensors(row)["Q2"])
    gap = gap[:, j, :, j] * 12.0 / C**2  # (j, m, p, x, y)
    h = _half_width(V_r)
    assert np.abs(V - gap).max() <= h
    assert h <= 0.05 * gap.max()  # the bound is far below what it bounds
    assert V.min() >= 0.0
    # (m, x) <-> (p, y) symmetric, zero where the swap (m, j) cannot reach x
    assert np.array_equal(V, V.transpose(0, 2, 1, 4, 3))
    assert np.all(V[gap == 0.0] == 0.0)


def test_interval_variance_does_not_depend_on_the_threads():
    row = ROWS[1]
    serial = interval_variance_tables(row, log2_points=8, randomizations=4)
    threaded = interval_variance_tables(row, log2_points=8, randomizations=4, mapper=swap._threaded)
    assert np.array_equal(serial, threaded)
    # randomization r is the same table whichever call gives it (ARS+ runs them one by one)
    for r in range(4):
        one = interval_variance_tables(row, log2_points=8, randomizations=1, first=r)
        assert np.array_equal(one[0], serial[r])
    assert not np.array_equal(serial[0], serial[1])


@pytest.mark.parametrize("K,C", [(1, 5), (2, 5), (3, 4)])
def test_certified_ars_plus_moments_match_the_cells(K, C, past_the_cells, monkeypatch):
    rng = np.random.default_rng([K, C])
    alpha = 1.2 * rng.standard_normal((K, C))
    f = random_table(K, C, seed=K + C, domain="categorical")
    cert = REGISTRY["ars_plus"].exact_moments("categorical", alpha, f)
    assert cert.method.startswith("certified") and cert.error_bound > 0.0
    monkeypatch.setattr(swap, "MAX_ARS_PLUS_C", 7)
    swap.clear_caches()
    exact = REGISTRY["ars_plus"].exact_moments("categorical", alpha, f)
    sym_only = swap.swap_moments("categorical", alpha, f, weight="sym", shared_j=True)
    assert exact.method.startswith("exact")
    # the mean is exact either way: ARS+'s L2 is the symmetry-only one
    assert np.abs(cert.mean - exact.mean).max() <= 1e-15 * max(1.0, np.abs(exact.mean).max())
    assert np.abs(cert.cov - exact.cov).max() <= cert.error_bound
    # teeth: the interval variance moves the covariance by far more than the bound
    assert np.abs(sym_only.cov - exact.cov).max() >= 20 * cert.error_bound


def test_the_bound_is_the_spread_of_the_randomizations(past_the_cells, monkeypatch):
    # each randomization's V alone, through the whole contraction: their spread is the bound
    K, C = 2, 4
    alpha = np.array([[0.3, -0.5, 1.0, 0.1], [0.0, 0.4, -0.2, 0.9]])
    f = random_table(K, C, seed=3, domain="categorical")
    stacks = {tuple(swap._row_key(a)): interval_variance_tables(a, log2_points=7, randomizations=5)
              for a in alpha}
    pick: list[int | None] = [None]

    def fixed(a, *, randomizations, first=0, **kw):
        V_r = stacks[tuple(swap._row_key(a))]
        return V_r[first:first + randomizations] if pick[0] is None \
            else V_r[[pick[0]] * randomizations]

    monkeypatch.setattr(swap, "interval_variance_tables", fixed)
    monkeypatch.setattr(swap, "ARS_PLUS_RQMC_RANDOMIZATIONS", 5)
    swap.clear_caches()
    m = swap.ars_plus_moments("categorical", alpha, f)
    covs = []
    for r in range(5):
        pick[0] = r
        swap.clear_caches()
        covs.append(swap.ars_plus_moments("categorical", alpha, f).cov)
    covs = np.array(covs)
    assert np.abs(covs.mean(axis=0) - m.cov).max() <= 1e-15 * np.abs(m.cov).max()
    assert m.error_bound == pytest.approx(_half_width(covs), rel=1e-9)


def test_certified_ars_plus_at_c8_is_unbiased_and_agrees_with_sampling(monkeypatch):
    # the first C past the cells, with the module's own limits (fewer points: a fast test)
    monkeypatch.setattr(swap, "ARS_PLUS_RQMC_LOG2_POINTS", 8)
    swap.clear_caches()
    K, C = 1, swap.MAX_ARS_PLUS_C + 1
    alpha = np.linspace(-1.0, 1.0, C)[None] + 0.1 * np.sin(np.arange(C))
    f = random_table(K, C, seed=8, domain="categorical")
    try:
        m = REGISTRY["ars_plus"].exact_moments("categorical", alpha, f)
    finally:
        swap.clear_caches()
    assert m.method.startswith("certified") and "2^8 points" in m.method
    assert 0.0 < m.error_bound <= 0.05 * np.abs(m.cov).max()
    grad = verify.exact_gradient("categorical", alpha, f)
    assert np.abs(m.mean - grad).max() <= 1e-12 * np.abs(grad).max()
    verify.assert_mc("ars_plus", verify.make_problem("categorical", alpha, f), R=2000, seed=8,
                     moments=m)


def test_interval_variance_refuses_bad_rows():
    for row in (np.array([0.0, 1.0]), np.array([0.0, np.nan, 1.0]), np.zeros((2, 3))):
        with pytest.raises(ValueError, match="C >= 3"):
            interval_variance_tables(row)
        with pytest.raises(ValueError, match="C >= 3"):
            ce_correction_tables(row, log2_points=4, seed=(0, 0))
    for kw in ({"randomizations": 0}, {"first": -1}):
        with pytest.raises(ValueError, match="randomizations must be >= 1 and first >= 0"):
            interval_variance_tables(ROWS[0], **kw)


# ------------------------------------------------------------------------ ARSM+CE
@pytest.mark.parametrize("row", ROWS, ids=["C4", "C5"])
def test_ce_corrections_match_the_cells(row):
    # the cells give ARSM+CE's tables exactly: L2 = L2_sym - C D and Q2 = Q2_sym + DQ where
    # q != j, and Q2 = Q2_sym - C^2 / 12 V where q = j (ARS+'s)
    C = row.size
    runs = [ce_correction_tables(row, log2_points=12, seed=(0, r)) for r in range(16)]
    cells = swap._tensors(swap.dimension_tables(row, "ce"), C)
    sym = swap._sym_race_tensors(swap._row_key(row))
    j = np.arange(C)
    on = np.zeros((C,) * 6, dtype=bool)
    on[:, j, :, j] = True
    gaps = {"D": (sym["L2"] - cells["L2"]) / C, "DQ": cells["Q2"] - sym["Q2"]}
    for i, name in enumerate(("D", "DQ")):
        est = np.array([r[i] for r in runs])
        assert np.all(est[:, on] == 0.0)  # q = j: nothing to correct (D), V's part (DQ)
        gap = np.where(on, 0.0, gaps[name])
        h = _half_width(est)
        assert np.abs(est.mean(axis=0) - gap).max() <= h <= 0.5 * np.abs(gap).max(), name
    V = np.array([r[2] for r in runs])
    gapV = -(cells["Q2"] - sym["Q2"])[:, j, :, j] * 12.0 / C**2
    assert np.abs(V.mean(axis=0) - gapV).max() <= _half_width(V) <= 0.05 * gapV.max()


@pytest.mark.parametrize("C,log2_points", [(4, 9), (7, 8)])
def test_ce_accumulation_is_every_points_terms(C, log2_points):
    # the grouped accumulation (blocks for large groups of equal rows j, each point's terms
    # for small ones) against each point's C^4 terms written one by one
    from verify.moments import swap_interval

    w = np.exp(-np.linspace(0.0, 1.5, C) + 0.2 * np.cos(np.arange(C)))
    E = -np.log1p(-swap_interval._uniforms(C, log2_points, (C, 0)))
    N = E.shape[0]
    Z = np.empty((N, C, C), np.int64)
    delta = np.empty((N, C), bool)
    a, dq = np.zeros((N, C)), np.zeros((N, C, C))
    swap_interval._ce_point_values(E, w, Z, delta, a, dq)
    D, DQ = np.zeros((C,) * 6), np.zeros((C,) * 6)
    swap_interval._ce_accumulate(Z, delta, a, dq, D, DQ)
    D0, DQ0 = np.zeros((C,) * 6), np.zeros((C,) * 6)
    sizes = []
    for j in range(C):
        rows, counts = np.unique(Z[~delta[:, j], :, j], axis=0, return_counts=True)
        sizes += counts.tolist()
        for n in np.flatnonzero(~delta[:, j]):
            m, p, q = (g.ravel() for g in np.meshgrid(*[np.arange(C)] * 3, indexing="ij"))
            keep = q != j
            m, p, q = m[keep], p[keep], q[keep]
            idx = (j, m, Z[n, m, j], p, q, Z[n, p, q])
            np.add.at(D0, idx, a[n, j])
            np.add.at(DQ0, idx, dq[n, j, q])
    assert min(sizes) < C <= max(sizes)  # both ways are taken
    assert np.abs(D - D0).max() <= 1e-13 * np.abs(D0).max()
    assert np.abs(DQ - DQ0).max() <= 1e-13 * np.abs(DQ0).max()
    assert np.abs(D0).max() > 0 and np.abs(DQ0).max() > 0
    # chunks: the same sums
    D2, DQ2 = np.zeros((C,) * 6), np.zeros((C,) * 6)
    old = swap_interval._CE_CHUNK
    try:
        swap_interval._CE_CHUNK = 100
        swap_interval._ce_points(E, w, D2, DQ2)
    finally:
        swap_interval._CE_CHUNK = old
    assert np.abs(D2 - D0).max() <= 1e-13 * np.abs(D0).max()
    assert np.abs(DQ2 - DQ0).max() <= 1e-13 * np.abs(DQ0).max()


def test_ce_corrections_use_their_own_points_per_dimension():
    # the second moment multiplies two dimensions' estimates: they must be independent
    row = ROWS[0]
    t0, t1 = (swap._ce_randomization_tables(row, k, 0) for k in (0, 1))
    assert not np.array_equal(t0["Q2"], t1["Q2"]) and not np.array_equal(t0["L2"], t1["L2"])
    assert np.array_equal(t0["Q2"], swap._ce_randomization_tables(row, 0, 0)["Q2"])


@pytest.mark.parametrize("K,C", [(1, 4), (2, 4), pytest.param(1, 5, marks=pytest.mark.slow)])
def test_certified_arsm_plus_ce_moments_match_the_cells(K, C, monkeypatch):
    # (K, C) = (1, 5) is slow for its exact cells (about 16 s)
    monkeypatch.setattr(swap, "MAX_CE_C", C - 1)
    monkeypatch.setattr(swap, "CE_RQMC_LOG2_POINTS", 13)
    monkeypatch.setattr(swap, "CE_RQMC_RANDOMIZATIONS", 16)
    swap.clear_caches()
    rng = np.random.default_rng([K, C, 1])
    alpha = 1.2 * rng.standard_normal((K, C))
    f = random_table(K, C, seed=K + C + 1, domain="categorical")
    try:
        cert = REGISTRY["arsm_plus_ce"].exact_moments("categorical", alpha, f)
        monkeypatch.setattr(swap, "MAX_CE_C", 5)
        swap.clear_caches()
        exact = REGISTRY["arsm_plus_ce"].exact_moments("categorical", alpha, f)
    finally:
        swap.clear_caches()
    sym_only = REGISTRY["arsm_plus"].exact_moments("categorical", alpha, f)
    assert cert.method.startswith("certified") and exact.method.startswith("exact")
    assert np.abs(cert.mean - exact.mean).max() <= 1e-15 * max(1.0, np.abs(exact.mean).max())
    assert np.abs(cert.cov - exact.cov).max() <= cert.error_bound
    # teeth: the conditional expectation moves the covariance by more than the bound
    assert np.abs(sym_only.cov - exact.cov).max() >= 4 * cert.error_bound


@pytest.mark.parametrize("K", [1, 2])
def test_ce_bound_is_the_first_order_spread_of_the_randomizations(K, monkeypatch):
    # each randomization's tables on their own through the whole contraction: at K = 1 the
    # contraction is linear, so their spread is the bound and their mean the covariance, to
    # rounding; at K = 2 they differ from the first-order spread by products of the two
    # dimensions' deviations, a small share
    C, R = 4, 8
    monkeypatch.setattr(swap, "MAX_CE_C", C - 1)
    monkeypatch.setattr(swap, "CE_RQMC_LOG2_POINTS", 10)
    monkeypatch.setattr(swap, "CE_RQMC_RANDOMIZATIONS", R)
    swap.clear_caches()
    alpha = np.array([[0.3, -0.5, 1.0, 0.1], [0.0, 0.4, -0.2, 0.9]])[:K]
    f = random_table(K, C, seed=4, domain="categorical")
    try:
        m = REGISTRY["arsm_plus_ce"].exact_moments("categorical", alpha, f)
        fc = verify.make_problem("categorical", alpha, f).f_table()
        fc = fc - fc.mean()
        covs = []
        for r in range(R):
            tabs = [swap._ce_randomization_tables(alpha[k], k, r) for k in range(K)]
            mean, second, _, _, _ = swap._contract(fc, tabs, False)
            covs.append(second.reshape(K * C, K * C) - np.outer(mean.ravel(), mean.ravel()))
    finally:
        swap.clear_caches()
    covs = np.array(covs)
    covs = 0.5 * (covs + covs.transpose(0, 2, 1))
    if K == 1:
        assert np.abs(covs.mean(axis=0) - m.cov).max() <= 1e-14 * np.abs(m.cov).max()
        assert m.error_bound == pytest.approx(_half_width(covs), rel=1e-9)
    else:
        assert np.abs(covs.mean(axis=0) - m.cov).max() <= 0.05 * m.error_bound
        assert m.error_bound == pytest.approx(_half_width(covs), rel=0.05)


def test_certified_arsm_plus_ce_past_its_budget_is_refused_up_front():
    # K = 4, C = 10: 20 contractions of C^12 multiply-adds each; K = 3 is within the budget
    alpha = np.linspace(-1.0, 1.0, 40).reshape(4, 10)
    f = random_table(4, 10, seed=2, domain="categorical")
    with pytest.raises(ValueError, match="MAX_SECONDS"):
        REGISTRY["arsm_plus_ce"].exact_moments("categorical", alpha, f)
    swap._check_swap_budget(3, 10, "ce", False, 3)


@pytest.mark.slow
@pytest.mark.parametrize("name,K,seed", [("ars_plus", 2, 5), ("arsm_plus_ce", 2, 6),
                                         ("arsm_plus_ce", 3, 7)])
def test_certified_at_the_papers_c(name, K, seed):
    # C = 10 (K = 2: the README's equal-cost table; K = 3: ARSM+CE's first-order bound across
    # three dimensions): the mean exact, the covariance within its bound of what 3000 samples
    # of the NumPy reference say
    C = 10
    rng = np.random.default_rng(seed)
    alpha = 1.5 * rng.standard_normal((K, C))
    f = random_table(K, C, seed=seed, domain="categorical")
    m = REGISTRY[name].exact_moments("categorical", alpha, f)
    assert m.method.startswith("certified")
    assert m.error_bound <= 0.01 * np.abs(m.cov).max()
    grad = verify.exact_gradient("categorical", alpha, f)
    assert np.abs(m.mean - grad).max() <= 1e-12 * np.abs(grad).max()
    assert np.linalg.eigvalsh(m.cov).min() >= -m.error_bound * C * K
    verify.assert_mc(name, verify.make_problem("categorical", alpha, f), R=3000, seed=seed,
                     moments=m)
