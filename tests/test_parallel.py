"""``verify.parallel``: the same results in process and on a Dask cluster, seeds from the
units' identities, retries; ``verify.report.report_rows`` gives the same rows on Dask."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest

from verify.parallel import Unit, iter_units, run_units, unit_seed
from verify.report import _case_refs, _cases, _key, report_rows

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    """One local cluster of two single-threaded worker processes for the module."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


def _square_plus_draw(x: int) -> tuple[int, float, float]:
    """Pure in ``x`` given the runner's seeding: the global generators are seeded by key."""
    return x * x, float(np.random.random()), random.random()  # noqa: NPY002


def _fail_first(marker: str, value: int) -> int:
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("first attempt fails")
    return value


def _always_fail(log: str) -> int:
    with open(log, "a") as fh:
        fh.write("attempt\n")
    raise ValueError("always fails")


def _units(n: int = 8) -> list[Unit]:
    return [Unit(f"square {x}", _square_plus_draw, (x,)) for x in range(n)]


def test_unit_seed_is_stable():
    # pinned: a change would silently change every sweep's numbers
    assert unit_seed("square 3") == unit_seed("square 3")
    assert unit_seed("square 3") != unit_seed("square 4")
    assert 0 <= unit_seed("") < 2**32
    assert unit_seed("a") == int.from_bytes(bytes.fromhex("ca978112"), "little")


def test_in_process_results_in_order_and_seeded_by_key():
    state = np.random.get_state()  # noqa: NPY002
    units = _units()
    out = run_units(units)
    assert [r[0] for r in out] == [x * x for x in range(8)]
    assert len({r[1] for r in out}) == 8  # distinct keys, distinct draws
    # the draws depend on the key only, not on the position in the sweep
    rev = run_units(units[::-1])
    assert rev[::-1] == out
    # the caller's global generator is left as it was
    assert np.array_equal(np.random.get_state()[1], state[1])  # noqa: NPY002


def test_local_cluster_gives_the_in_process_results():
    units = _units()
    assert run_units(units, workers=2) == run_units(units)


def test_scheduler_address_streams_every_result(cluster):
    units = _units(12)
    streamed = list(iter_units(units, scheduler=cluster.scheduler_address))
    assert sorted(k for k, _ in streamed) == sorted(u.key for u in units)
    assert dict(streamed) == dict(zip([u.key for u in units], run_units(units), strict=True))


@pytest.mark.parametrize("mode", ["in process", "dask"])
def test_a_unit_that_fails_once_is_retried(tmp_path, cluster, mode):
    units = [Unit(f"u{i}", _fail_first, (str(tmp_path / f"marker{i}"), i)) for i in range(3)]
    where = {} if mode == "in process" else {"scheduler": cluster.scheduler_address}
    assert run_units(units, **where) == [0, 1, 2]
    assert all((tmp_path / f"marker{i}").exists() for i in range(3))  # each did fail once


@pytest.mark.parametrize("mode", ["in process", "dask"])
def test_a_unit_that_always_fails_raises_after_the_retries(tmp_path, cluster, mode):
    log = tmp_path / "attempts"
    where = {} if mode == "in process" else {"scheduler": cluster.scheduler_address}
    with pytest.raises(ValueError, match="always fails"):
        run_units([Unit("bad", _always_fail, (str(log),))], retries=2, **where)
    assert log.read_text().count("attempt") == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="unique"):
        run_units([Unit("a", abs, (1,)), Unit("a", abs, (2,))])
    with pytest.raises(ValueError, match="not both"):
        run_units(_units(1), workers=1, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="workers"):
        run_units(_units(1), workers=0)


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"\[dask\]"):
        run_units(_units(1), workers=1)
    assert run_units(_units(2)) == run_units(_units(2))  # in process needs no Dask


def test_case_refs_follow_the_cases():
    refs = list(_case_refs(None))
    keys = [_key(est, dist, opts, label) for est, dist, opts, label, _ in _cases(None)]
    assert [r[0] for r in refs] == list(range(len(keys)))
    from reference import REGISTRY
    from verify.problems import builtin_problems
    rebuilt = [_key(REGISTRY[n], d, dict(REGISTRY[n].examples[oi]), builtin_problems(d)[j][0])
               for _, n, d, oi, j in refs]
    assert rebuilt == keys


def test_report_rows_identical_on_dask(cluster):
    names = ["reinforce", "disarm"]
    here = report_rows(names, R=200, cuda=False)
    there = report_rows(names, R=200, cuda=False, scheduler=cluster.scheduler_address)
    assert len(here) == len(there) > 0
    for a, b in zip(here, there, strict=True):
        a, b = dict(a), dict(b)
        a.pop("seconds"), b.pop("seconds")
        assert a == b
    assert {r["estimator"] for r in there} == set(names)
    assert [r["estimator"] for r in there] == sorted((r["estimator"] for r in there),
                                                     key=names.index)


def test_each_row_seeds_its_checks_from_its_index(monkeypatch):
    """Row ``i`` draws with ``seed + i`` (MC check and shared-noise agreement), so where and
    when it runs cannot change its numbers (the exact moments in a row do not show the seed)."""
    import verify.report as report

    seen: list[tuple[str, int]] = []
    real_mc, real_agree = report.mc_check, report._agree

    def mc_spy(est, pr, **kw):
        seen.append(("mc", kw["seed"]))
        return real_mc(est, pr, **kw)

    def agree_spy(est, dist, opts, pr, backend, R_shared, seed):
        seen.append(("agree", seed))
        return real_agree(est, dist, opts, pr, backend, R_shared, seed)

    monkeypatch.setattr(report, "mc_check", mc_spy)
    monkeypatch.setattr(report, "_agree", agree_spy)
    rows = report.report_rows(["reinforce"], R=50, seed=7, cuda=False)
    n = len(rows)
    assert [s for k, s in seen if k == "mc"] == [7 + i for i in range(n)]
    assert [s for k, s in seen if k == "agree"] == [7 + i for i in range(n)]
