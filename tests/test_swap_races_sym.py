"""ARSM+'s pair tables as exponential races (:mod:`verify.moments.races_sym`): equal to the
polytope cells where both exist (C <= 5), single events against Monte Carlo, and ARSM+'s exact
moments past the cells (C = 6 by default, C = 10 in the slow run) unbiased and agreeing with
sampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import verify
from reference import REGISTRY, random_table
from verify.moments import swap
from verify.moments.races import race_pair_tables
from verify.moments.races_sym import delta_event, sym_pair_tables

ROWS = [
    np.array([0.5, -0.4, 1.1]),
    np.array([3.0, -2.5, 0.7]),
    np.array([0.3, -1.2, 0.8, 0.1]),
    np.array([0.1, -0.1, 0.05, 0.0]),  # close logits: thin symmetry events
    np.array([5.0, -3.0, 1.5, -5.0]),
    np.array([1.0, 1.0, -0.5, 0.2]),  # a tie at the largest logit: no D_j^j
    np.array([0.4, -0.9, 1.3, 0.0, -0.2]),
    np.array([1.5, -1.0, 0.3, -1.2, 0.9]),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"C{r.size}")
def test_race_tables_equal_the_cells(row):
    C = row.size
    races = sym_pair_tables(row)
    cells = swap._tensors(swap.dimension_tables(row, "sym"), C)
    plain = race_pair_tables(row)
    for name in ("P2", "L2", "Q2"):
        diff = np.abs(races[name] - cells[name])
        assert diff.max() <= 2e-15 * max(1.0, np.abs(cells[name]).max()), name
    # the symmetry factor matters here (the corrections are not zero) ...
    assert np.abs(races["Q2"] - plain["Q2"]).max() > 1e-3 or np.all(row == row.max())
    # ... and the rounding bounds of the signed corrections cover the difference
    assert np.all(np.abs(races["L2"] - cells["L2"]) <= races["err_L2"] + 1e-15)
    assert np.all(np.abs(races["Q2"] - cells["Q2"]) <= races["err_Q2"] + 1e-15)


def _swaps(w: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``Z[n, m, j]``: the swapped argmins of samples ``e`` ``(N, C)`` of i.i.d. Exp(1)."""
    N, C = e.shape
    Z = np.empty((N, C, C), dtype=np.int64)
    for m in range(C):
        for j in range(C):
            sig = np.arange(C)
            sig[m], sig[j] = j, m
            Z[:, m, j] = np.argmin(w[None, :] * e[:, sig], axis=1)
    return Z


EVENTS = [  # (j, x, extra races, q): D_j^x with one more race, or another reference's D
    (0, 0, [], 0),  # D_j^j: j the argmax
    (1, 0, [], 1),
    (1, 0, [(0, 2, 3)], 2),  # three winners: e_0, e_1 and e_3 (the swap (0, 2) won by 3)
    (1, 0, [(2, 3, 3)], 3),
    (0, 0, [(1, 2, 1)], 2),  # D_j^j with two coupled boxes
    (0, 0, [(2, 3, 0)], 3),
    (0, 0, [(m, 2, 0) for m in range(4)], 2),  # D_0^0 and D_2^0
    (1, 0, [(m, 3, 0) for m in range(4)], 3),  # D_1^0 and D_3^0
]


@pytest.mark.parametrize("j,x,extra,q", EVENTS)
def test_single_events_match_monte_carlo(j, x, extra, q):
    alpha = np.array([1.3, 0.2, -0.5, 0.9])
    w = np.exp(alpha.max() - alpha)
    e = np.random.default_rng(5).exponential(size=(200_000, 4))
    Z = _swaps(w, e)
    delta = np.all(Z == Z[:, :1, :], axis=1)
    ind = delta[:, j] & (Z[:, 0, 0] == x)
    for m, jj, y in extra:
        ind &= Z[:, m, jj] == y
    samples = [ind * 1.0, e[:, j] * ind, e[:, q] * ind, e[:, j] * e[:, q] * ind]
    exact = delta_event(alpha, j, x, extra, q)
    assert exact[0] > 0.005  # an event worth checking
    for k, s in enumerate(samples):
        se = s.std() / np.sqrt(s.size)
        assert abs(exact[k] - s.mean()) <= 5 * se, (k, exact[k], s.mean(), se)


def test_impossible_symmetry_events_are_zero():
    alpha = np.array([1.3, 0.2, -0.5, 0.9])
    assert np.all(delta_event(alpha, 1, 1, [], 1) == 0)  # D_j^j: j not the argmax
    assert np.all(delta_event(alpha, 0, 1, [], 0) == 0)  # x below j cannot hold j's swaps
    tie = np.array([1.0, 1.0, 0.0])
    assert np.all(delta_event(tie, 0, 0, [], 0) == 0)


def _arsm_plus_check(K: int, C: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    alpha = 1.5 * rng.standard_normal((K, C))
    f = random_table(K, C, seed=seed, domain="categorical")
    pr = verify.make_problem("categorical", alpha, f)
    m = REGISTRY["arsm_plus"].exact_moments("categorical", alpha, f)
    assert "symmetry events" in m.method
    grad = verify.exact_gradient("categorical", alpha, f)
    assert np.all(np.abs(m.mean - grad) <= m.mean_error + 1e-15)
    assert np.abs(m.mean - grad).max() <= 1e-12 * np.abs(grad).max()
    assert np.linalg.eigvalsh(m.cov).min() >= -1e-12 * np.abs(m.cov).max()
    plain = REGISTRY["arsm"].exact_moments("categorical", alpha, f)
    assert m.variance_trace != pytest.approx(plain.variance_trace, rel=1e-6)
    verify.assert_mc("arsm_plus", pr, R=3000, seed=seed, moments=m)


def test_arsm_plus_past_the_cells_is_unbiased_and_agrees_with_sampling():
    _arsm_plus_check(2, 6, 3)


@pytest.mark.slow
def test_arsm_plus_at_the_papers_c():
    _arsm_plus_check(2, 10, 4)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-6, 6), min_size=3, max_size=4))
def test_race_tables_equal_the_cells_on_drawn_logits(ints):
    # half-integer logits: ties at the largest logit and elsewhere come up often
    row = 0.5 * np.array(ints, dtype=np.float64)
    races = sym_pair_tables(row)
    cells = swap._tensors(swap.dimension_tables(row, "sym"), row.size)
    for name in ("L2", "Q2"):
        assert np.abs(races[name] - cells[name]).max() <= 2e-15 * max(1.0, np.abs(cells[name]).max())


@pytest.mark.parametrize("row", ROWS[:-1], ids=lambda r: f"C{r.size}")
def test_ars_plus_cells_against_the_symmetry_races(row):
    # Given pi outside {j, l}, s = pi_j + pi_l and every swap (m, j), pi_j is uniform on the
    # interval [lo, hi], so the ARS+ weight is E[(1 - delta_j)(1 - C pi_j) | ...]: its L2
    # (entries q = j) is the symmetry-only L2 exactly, and its Q2 lies below the symmetry-only
    # Q2 by C^2 E[(1 - delta_j)(hi - lo)^2 / 12 1{...}] >= 0. An independent check of the
    # cells (per (j, l) arrangements, midpoints of the interval) against the races.
    C = row.size
    cells = swap._ars_plus_tensors(row)
    races = sym_pair_tables(row)
    j = np.arange(C)
    P, L, Q = (cells[k][:, j, :, j] for k in ("P2", "L2", "Q2"))  # (j, m, p, x, y)
    Ps, Ls, Qs = (races[k][:, j, :, j] for k in ("P2", "L2", "Q2"))
    assert np.abs(P - Ps).max() <= 2e-15
    assert np.abs(L - Ls).max() <= 2e-15 * max(1.0, np.abs(Ls).max())
    gap = Qs - Q  # C^2 / 12 times the interval's conditional variance on each event
    assert gap.min() >= -2e-15 * np.abs(Qs).max()
    assert gap.max() > 1e-2  # the conditional expectation reduces the second moment
