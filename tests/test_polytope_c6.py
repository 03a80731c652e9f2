"""The cells at C = 6 and 7 (ARS+'s scope since issue 14; ARSM+CE at C = 5): one point per
incidence pattern (without it, copies of the same vertex multiplied to cells of 10^4 to 10^6
points and the refinement gave up), and cells Qhull triangulates wrongly or not at all
triangulated from their incidences (:func:`verify.moments.polytope._pulling`)."""

from __future__ import annotations

import numpy as np
import pytest

import verify
from reference import REGISTRY, random_table
from verify.moments import polytope
from verify.moments import swap as S
from verify.moments.races_sym import sym_pair_tables

# the logits of scripts/swap_scale.py's random_problem(2, 6); in the first row's columns
# j = 2, 3 Qhull's triangulated facets overlap (column j = 2: total probability 1 + 2.1e-6)
ALPHA6 = 1.5 * np.random.default_rng([0, 2, 6]).standard_normal((2, 6))
ROW6 = ALPHA6[0]


def _key(row: np.ndarray) -> tuple[float, ...]:
    return tuple((row - row.max()).tolist())


def test_column_cells_at_c6_add_up_to_the_simplex():
    for j in (2, 3):
        cells, _, unresolved = S._column_cells(_key(ROW6), j)
        m0, m1, _ = polytope.cells_moments(cells)
        assert abs(m0.sum() - 1.0) <= 1e-13
        assert np.abs(m1.sum(axis=0) - 1.0 / 6).max() <= 1e-13  # E[pi] = 1/C
        assert max(c.V.shape[0] for c in cells) < 200  # no copies of the same vertex
        assert unresolved <= 1e-9


def test_incidence_triangulation_equals_qhull_where_qhull_is_right():
    row = np.array([0.4, -0.9, 1.3, 0.0, -0.2])
    cells, _, _ = S._column_cells(_key(row), 0)
    for cell in cells[:150]:
        a = polytope.cells_moments([cell])
        pulled = polytope._pulling(cell.V, cell.T, 4)
        assert pulled is not None
        vol = np.abs(np.linalg.det(pulled[:, 1:, :4] - pulled[:, :1, :4])).sum()
        assert vol == pytest.approx(a[0][0], rel=1e-12, abs=1e-18)
        first = (np.abs(np.linalg.det(pulled[:, 1:, :4] - pulled[:, :1, :4]))[:, None]
                 * pulled.sum(axis=1)).sum(axis=0) / 5
        assert np.abs(first - a[1][0]).max() <= 1e-12 * a[0][0] + 1e-18


def test_compiled_pulling_equals_python_pulling_and_qhull():
    # the compiled path integrates every cell in more than 3 dimensions by the pulling
    # triangulation from the incidences (polytope_fast._pulling_moments_into); the Python
    # path by Qhull's, checked against Qhull's volume
    from verify.moments.polytope_fast import _pulling_moments_into

    for row, j in ((np.array([0.4, -0.9, 1.3, 0.0, -0.2]), 0), (ROW6, 2)):
        cells = S._column_cells(_key(row), j)[0][:300]
        N, C = len(cells), row.size
        m0, m1, m2 = np.zeros(N), np.zeros((N, C)), np.zeros((N, C, C))
        for i, cell in enumerate(cells):
            _pulling_moments_into(cell.V, cell.T, m0, m1, m2, i, polytope.MAX_PULLING)
        q0, q1, q2 = polytope.cells_moments(cells)
        assert np.abs(m0 - q0).max() <= 1e-12 * q0.max()
        assert np.abs(m1 - q1).max() <= 1e-12 * q1.max()
        assert np.abs(0.5 * (m2 + m2.transpose(0, 2, 1)) - q2).max() <= 1e-12 * q2.max()
        for i in range(0, N, 30):  # the Python twin: the same simplices
            pulled = polytope._pulling(cells[i].V, cells[i].T, C - 1)
            vol = np.abs(np.linalg.det(pulled[:, 1:, :C - 1] - pulled[:, :1, :C - 1])).sum()
            assert vol == pytest.approx(m0[i], rel=1e-12, abs=1e-18)


@pytest.mark.parametrize("cuts", [20, 45])
def test_compiled_pulling_of_cells_past_64_vertices(cuts):
    # the compiled triangulation holds vertex sets as bitsets of 64-vertex words: a cell of
    # the 4-simplex cut by hyperplanes around its centre has 79 (two words) and about 220
    # vertices (four), where the swap cells have at most tens; Qhull is right on these
    from verify.moments.polytope_fast import _pulling_moments_into

    rng = np.random.default_rng(1)
    C = 5
    cell = polytope.simplex_cell(C)
    for _ in range(cuts):
        a = rng.standard_normal(C)
        a -= a.mean()
        a /= np.linalg.norm(a)
        # a . pi <= a . centre + 0.08, homogeneous on the simplex (sum pi = 1)
        cell = polytope.split(cell, a - (a.mean() + 0.08))[0]
    assert cell.V.shape[0] > 64 * (1 + (cuts > 20))
    m0, m1, m2 = np.zeros(1), np.zeros((1, C)), np.zeros((1, C, C))
    _pulling_moments_into(cell.V, cell.T, m0, m1, m2, 0, polytope.MAX_PULLING)
    q0, q1, q2 = polytope.cells_moments([cell])
    assert abs(m0[0] - q0[0]) <= 1e-12 * q0[0]
    assert np.abs(m1 - q1).max() <= 1e-12 * q1.max()
    assert np.abs(0.5 * (m2 + m2.transpose(0, 2, 1)) - q2).max() <= 1e-12 * q2.max()
    pulled = polytope._pulling(cell.V, cell.T, C - 1)  # the Python twin: the same simplices
    vol = np.abs(np.linalg.det(pulled[:, 1:, :C - 1] - pulled[:, :1, :C - 1])).sum()
    assert vol == pytest.approx(m0[0], rel=1e-12)


def test_compiled_column_tables_at_c6_add_up():
    # every cell of a column (Qhull's triangulated facets overlapped on some of these)
    # integrated by the compiled pulling triangulation: total probability 1 for every pair of
    # swaps, and the ARS+ L2 equal to the symmetry races' (tests/test_swap_races_sym.py)
    t = S._column_tables(_key(ROW6), 2, 3)
    assert np.abs(t["P2"].sum(axis=(2, 3)) - 1.0).max() <= 1e-13
    assert t["unresolved"] <= 1e-12
    Ls = sym_pair_tables(ROW6)["L2"][:, 2, :, 2]  # the midpoint is a conditional expectation
    assert np.abs(t["L2"] - Ls).max() <= 1e-13 * np.abs(Ls).max()


def _exact(name: str, alpha: np.ndarray, f: np.ndarray) -> verify.Moments:
    """Exact moments whose mean is the exact gradient (within its bounds), with a PSD
    covariance."""
    m = REGISTRY[name].exact_moments("categorical", alpha, f)
    grad = verify.exact_gradient("categorical", alpha, f)
    assert np.all(np.abs(m.mean - grad) <= m.mean_error + 1e-15)
    assert np.abs(m.mean - grad).max() <= 1e-12 * np.abs(grad).max()
    assert m.error_bound <= 1e-9
    assert np.linalg.eigvalsh(m.cov).min() >= -1e-12 * np.abs(m.cov).max()
    return m


@pytest.mark.slow
def test_ars_plus_at_c7():
    # C = 7, one dimension (about a minute): the mean is the exact gradient
    alpha = 1.5 * np.random.default_rng([0, 1, 7]).standard_normal((1, 7))
    f = random_table(1, 7, seed=17, domain="categorical")
    m = _exact("ars_plus", alpha, f)
    cov_ars = REGISTRY["ars"].exact_moments("categorical", alpha, f).cov
    assert np.all(np.diag(m.cov) <= np.diag(cov_ars) + 1e-12)  # Var(ARS+) <= Var(ARS)
    verify.assert_mc("ars_plus", verify.make_problem("categorical", alpha, f), R=2000, seed=7,
                     moments=m)


@pytest.mark.slow
def test_ars_plus_at_c6():
    alpha = ALPHA6
    f = random_table(2, 6, seed=26, domain="categorical")
    m = _exact("ars_plus", alpha, f)
    # the identity of tests/test_swap_races_sym.py at C = 6: L2 equal to the symmetry races',
    # Q2 below theirs
    j = np.arange(6)
    for row in alpha:
        cells = S._ars_plus_tensors(row)
        races = sym_pair_tables(row)
        L, Ls = cells["L2"][:, j, :, j], races["L2"][:, j, :, j]
        assert np.abs(L - Ls).max() <= 1e-13 * np.abs(Ls).max()
        gap = races["Q2"][:, j, :, j] - cells["Q2"][:, j, :, j]
        assert gap.min() >= -1e-13 * np.abs(races["Q2"]).max() and gap.max() > 1e-2
    verify.assert_mc("ars_plus", verify.make_problem("categorical", alpha, f), R=3000, seed=6,
                     moments=m)


@pytest.mark.slow
def test_arsm_plus_ce_at_c5():
    # C = 5, one dimension (about 50 s, 900 000 cells integrated as they are accepted; once
    # refused: the common refinement asked for 206 GiB): the mean is the exact gradient and
    # the Monte Carlo check passes
    alpha = 1.5 * np.random.default_rng([0, 1, 5]).standard_normal((1, 5))
    f = random_table(1, 5, seed=15, domain="categorical")
    m = _exact("arsm_plus_ce", alpha, f)
    verify.assert_mc("arsm_plus_ce", verify.make_problem("categorical", alpha, f), R=2000,
                     seed=5, moments=m)
