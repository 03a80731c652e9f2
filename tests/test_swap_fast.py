"""The compiled float64 cells of the swap family (``verify.moments.polytope_fast``) against the
Python path (``verify.moments.swap._FAST = False``, the reference): the same per-dimension
tables, ARS+ column tables and moments, up to rounding.

The two paths take the same decisions except where a tie is broken by rounding (two rows equal
at a vertex; the dot products sum in another order), so the cells may differ while covering
the same regions with the same constant outcomes and weights: the tables agree to rounding."""

from __future__ import annotations

import numpy as np
import pytest

from reference import REGISTRY
from verify.moments import swap as S
from verify.problems import builtin_problems

#: tables hold probabilities and weights bounded by C - 1: absolute tolerance
TABLE_ATOL = 1e-13


def _clear() -> None:
    S.clear_caches()


def _both(monkeypatch: pytest.MonkeyPatch, fn):
    """``fn()`` by the Python path, then by the compiled one (cold caches each time)."""
    out = []
    for fast in (False, True):
        monkeypatch.setattr(S, "_FAST", fast)
        _clear()
        out.append(fn())
    _clear()
    return out


ROWS_FAST = [  # (row, weight): cheap enough in Python for the default run
    (np.array([0.5, -0.4, 1.1]), "sym"),
    (np.array([0.5, -0.4, 1.1]), "ce"),
    (np.array([4.0, -5.0, 0.3]), "ce"),
    (np.array([0.3, -1.2, 0.8, 0.1]), "sym"),
    (np.array([5.0, -3.0, 1.5, -5.0]), "sym"),
    (np.array([20.0, -20.0, 3.0, -7.0]), "sym"),
    (np.zeros(4), "sym"),
    (np.zeros(4), "ce"),
    (np.zeros(3), "ce"),
]
ROWS_SLOW = [  # ARSM+CE cells at C = 4 take seconds in Python
    (np.array([0.3, -1.2, 0.8, 0.1]), "ce"),
    (np.array([5.0, -3.0, 1.5, -5.0]), "ce"),
]


def _check_tables(monkeypatch: pytest.MonkeyPatch, row: np.ndarray, weight: str) -> None:
    ref, fast = _both(monkeypatch, lambda: S.dimension_tables(row, weight))
    assert ref["symmetric"] == fast["symmetric"]
    np.testing.assert_array_equal(ref["Z"], fast["Z"])
    for k in "PLQ":
        np.testing.assert_allclose(fast[k], ref[k], rtol=0, atol=TABLE_ATOL, err_msg=k)
    assert abs(fast["unresolved"] - ref["unresolved"]) <= 1e-15


@pytest.mark.parametrize(("row", "weight"), ROWS_FAST)
def test_dimension_tables_match_python(monkeypatch, row, weight):
    _check_tables(monkeypatch, row, weight)


@pytest.mark.slow
@pytest.mark.parametrize(("row", "weight"), ROWS_SLOW)
def test_dimension_tables_match_python_ce_c4(monkeypatch, row, weight):
    _check_tables(monkeypatch, row, weight)


@pytest.mark.parametrize("row", [np.array([0.5, -0.4, 1.1]), np.array([0.3, -1.2, 0.8, 0.1]),
                                 np.array([20.0, -20.0, 3.0, -7.0])])
def test_ars_plus_column_tables_match_python(monkeypatch, row):
    ref, fast = _both(monkeypatch, lambda: S._ars_plus_tensors(row))
    for k in ("P2", "L2", "Q2"):
        np.testing.assert_allclose(fast[k], ref[k], rtol=0, atol=TABLE_ATOL, err_msg=k)
    assert abs(fast["unresolved"] - ref["unresolved"]) <= 1e-15 + 1e-12 * ref["unresolved"]


def _moments_close(ref, fast) -> None:
    for a, b in ((ref.mean, fast.mean), (ref.cov, fast.cov)):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.abs(a).max())


@pytest.mark.parametrize("name", ["arsm_plus", pytest.param("ars_plus", marks=pytest.mark.slow)])
def test_moments_match_python_k3_c4(monkeypatch, name):
    _, pr = builtin_problems("categorical")[1]
    ref, fast = _both(monkeypatch, lambda: REGISTRY[name].exact_moments(
        "categorical", pr.params, pr.objective))
    _moments_close(ref, fast)


@pytest.mark.slow
def test_arsm_plus_ce_moments_match_python_k3_c4(monkeypatch):
    _, pr = builtin_problems("categorical")[1]
    ref, fast = _both(monkeypatch, lambda: REGISTRY["arsm_plus_ce"].exact_moments(
        "categorical", pr.params, pr.objective))
    _moments_close(ref, fast)


@pytest.mark.slow
def test_dimension_tables_match_python_sym_c5(monkeypatch):
    # C = 5: the kernel refines, the Python integration (Qhull) takes its cells
    _check_tables(monkeypatch, np.array([0.4, -0.9, 1.3, 0.0, -0.2]), "sym")


def test_refine_cells_rejects_bad_shapes():
    from verify.moments.polytope import simplex_cell
    from verify.moments.polytope_fast import refine_cells

    cell = simplex_cell(3)
    dim = S._Dimension(np.array([0.5, -0.4, 1.1]), ce=False)
    groups = np.array(S._pairs(3))
    with pytest.raises(ValueError, match="T0 bool"):
        refine_cells(cell.V, cell.T[:2], dim.F, groups, None, None, None, False, None, 1e-13,
                     1e-24)
    with pytest.raises(ValueError, match="groups"):
        refine_cells(cell.V, cell.T, dim.F, groups[:2], None, None, None, False, None, 1e-13,
                     1e-24)
    with pytest.raises(ValueError, match="bound rows"):
        refine_cells(cell.V, cell.T, dim.F, groups, None, None, None, True, None, 1e-13, 1e-24)
    with pytest.raises(ValueError, match="aggregate=True needs ce=True"):
        refine_cells(cell.V, cell.T, dim.F, groups, None, None, None, False, None, 1e-13, 1e-24,
                     aggregate=True)
    from verify.moments.polytope_fast import refine_starts

    col = S._Column(np.array([0.5, -0.4, 1.1]), 0, 1)
    with pytest.raises(ValueError, match="one length"):
        refine_starts([(cell.V, cell.T)], [], 0, 1, col.F, np.array(col.groups), col.low,
                      col.up, col._pairs, 1e-13, 1e-24)
    with pytest.raises(ValueError, match="j = l = None"):
        refine_starts([(cell.V, cell.T)], [None], 0, None, col.F, np.array(col.groups),
                      col.low, col.up, col._pairs, 1e-13, 1e-24)


@pytest.mark.parametrize("row", [np.array([0.3, -1.2, 0.8, 0.1]), np.zeros(4),
                                 np.array([4.0, -5.0, 0.3])])
def test_ce_tables_aggregated_in_the_kernel_match_the_cells(row):
    # the kernel sums each accepted cell's P, L, Q into its outcome matrix's row; the same
    # cells kept one by one and weighed in NumPy (_cell_weights) give the same tables
    _clear()
    key = tuple((row - row.max()).tolist())
    agg = S._ce_tables(key)
    cells = S._cells(key, True)
    L, Q = S._cell_weights(cells["Z"], cells["m1"], cells["m2"], cells["mid"], "ce")
    keys, inverse = S._distinct_outcomes(cells["Z"])
    n, C = keys.shape[0], row.size
    np.testing.assert_array_equal(agg["Z"], keys.reshape(n, C, C))
    for got, per_cell in ((agg["P"], cells["m0"]), (agg["L"], L), (agg["Q"], Q)):
        want = np.zeros((n,) + per_cell.shape[1:])
        np.add.at(want, inverse, per_cell)
        np.testing.assert_allclose(got, want, rtol=0, atol=TABLE_ATOL)
    assert agg["symmetric"] == cells["symmetric"]
    assert abs(agg["unresolved"] - cells["unresolved"]) <= 1e-15
    _clear()


def test_ce_tables_in_chunks_match_one_aggregated_refinement():
    # _ce_tables refines the swaps' cells in fixed chunks (refine_starts) and sums the chunks'
    # rows; one refine_cells(aggregate=True) call over the whole simplex gives the same tables
    from verify.moments.polytope import simplex_cell
    from verify.moments.polytope_fast import refine_cells

    row = np.array([0.3, -1.2, 0.8, 0.1])
    _clear()
    key = tuple((row - row.max()).tolist())
    chunked = S._ce_tables(key)
    dim = S._Dimension(np.array(key), True)
    start = simplex_cell(4)
    whole = refine_cells(start.V, start.T, dim.F, np.array(S._pairs(4)), dim.low, dim.up,
                         dim._pairs, True, None, dim.same_tol, S._min_prob(0), aggregate=True)
    np.testing.assert_array_equal(chunked["Z"], whole["Z"])
    for k in "PLQ":
        np.testing.assert_allclose(chunked[k], whole[k], rtol=0, atol=TABLE_ATOL, err_msg=k)
    assert whole["cells"] > 1000
    _clear()


def test_distinct_outcomes_is_numpy_unique():
    rng = np.random.default_rng(0)
    for C in (3, 5, 6):  # C = 6: the row sort (6^36 does not fit an int64)
        Z = rng.integers(0, C, size=(400, C, C))
        Z[200:] = Z[rng.integers(0, 200, 200)]
        keys, inverse = S._distinct_outcomes(Z)
        want, want_inv = np.unique(Z.reshape(400, -1), axis=0, return_inverse=True)
        np.testing.assert_array_equal(keys, want)
        np.testing.assert_array_equal(inverse, want_inv.ravel())


@pytest.mark.parametrize(("name", "shape"), [("arsm_plus_ce", (2, 4)), ("arsm_plus_ce", (1, 4)),
                                           ("ars_plus", (1, 4))])
def test_threads_give_the_serial_numbers(name, shape):
    # every dimension's fixed chunks of start cells (ARSM+CE, together on the threads) and
    # ARS+'s references j are refined side by side on the numba threads: the same
    # computations, so the same numbers to the last bit
    import numba

    from reference import random_table

    alpha = np.random.default_rng([7, *shape]).normal(size=shape)
    f = random_table(shape[0], shape[1], seed=3, domain="categorical")
    before = numba.get_num_threads()
    out = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            _clear()
            out.append(REGISTRY[name].exact_moments("categorical", alpha, f))
    finally:
        numba.set_num_threads(before)
        _clear()
    np.testing.assert_array_equal(out[0].mean, out[1].mean)
    np.testing.assert_array_equal(out[0].cov, out[1].cov)
