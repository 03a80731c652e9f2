"""``verify.parallel``: the same results in process and on a Dask cluster, seeds from the
units' identities, retries, a worker killed mid-unit, resuming from a results store;
``verify.report.report_rows`` gives the same rows on Dask and resumes from its store."""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from verify.parallel import ResultStore, Unit, iter_units, run_units, unit_seed
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


def _counted_square(log: str, x: int) -> int:
    """``x * x``, appending ``x`` to ``log`` so a test can see which units actually ran."""
    with open(log, "a") as fh:
        fh.write(f"{x}\n")
    return x * x


def _interrupt_at(log: str, stop: int, x: int) -> int:
    if x == stop:
        raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a sweep
    return _counted_square(log, x)


def _die_first(marker: str, x: int) -> int:
    """The first attempt kills its own worker process (SIGKILL: no exception, no cleanup), as a
    machine lost or an out-of-memory kill would; the next attempt returns ``x * x``."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def _square_or_hang(started: str, x: int) -> int:
    """``x * x``, leaving ``started/x.PID``; unit 5's first attempt hangs (up to a minute)
    until the test kills its worker, so the kill falls in the middle of that unit."""
    first = not list(Path(started).glob(f"{x}.*"))
    Path(started, f"{x}.{os.getpid()}").write_text("")
    if x == 5 and first:
        time.sleep(60)
    return x * x


def _ran(log) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


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


def test_ordered_streaming_follows_the_input_order(cluster):
    units = _units(10)
    streamed = list(iter_units(units, scheduler=cluster.scheduler_address, ordered=True))
    assert [k for k, _ in streamed] == [u.key for u in units]
    assert [r for _, r in streamed] == run_units(units)


@pytest.mark.parametrize("mode", ["in process", "dask"])
def test_an_interrupted_sweep_resumes_from_its_store(tmp_path, cluster, mode):
    """The sweep stops after 3 results (as on Ctrl-C); started again with the same store it
    runs only the units not stored, gives the uninterrupted results, rewrites no file."""
    log, store = tmp_path / "ran", tmp_path / "store"
    where = {} if mode == "in process" else {"scheduler": cluster.scheduler_address}
    units = [Unit(f"sq {x}", _counted_square, (str(log), x)) for x in range(8)]
    seen = []
    for key, _ in iter_units(units, store=store, **where):
        seen.append(key)
        if len(seen) == 3:
            break  # closes the generator: the client and the cluster's futures go away
    stored = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    assert len(stored) == 3  # what was yielded was stored first
    if mode == "in process":
        assert sorted(_ran(log)) == [0, 1, 2]
    log.unlink()
    out = run_units(units, store=store, **where)
    assert out == [x * x for x in range(8)]
    done_before = {int(k.split()[1]) for k in seen}
    assert sorted(_ran(log)) == sorted(set(range(8)) - done_before)
    assert {n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in store.iterdir())
            if n in stored} == stored
    assert len(list(store.glob("*.pkl"))) == 8 and not list(store.glob(".*"))
    log.unlink()
    assert run_units(units, store=store, **where) == out and not log.exists()  # nothing ran


def test_store_refuses_other_arguments_and_corrupt_files(tmp_path):
    log = str(tmp_path / "ran")
    store = ResultStore(tmp_path / "store")
    assert run_units([Unit("a", _counted_square, (log, 3))], store=store) == [9]
    with pytest.raises(ValueError, match="other arguments"):
        run_units([Unit("a", _counted_square, (log, 4))], store=store)  # another --R, say
    store.path("a").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"corrupt.*remove it"):
        run_units([Unit("a", _counted_square, (log, 3))], store=store)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot be created"):
        ResultStore(blocker / "sub")


def test_report_resumes_from_its_results_directory(tmp_path, monkeypatch):
    import verify.report as report

    first = report.report_rows(["reinforce"], R=50, cuda=False, results=tmp_path / "rows")
    n = len(first)
    assert n > 0 and len(list((tmp_path / "rows").glob("*.pkl"))) == n
    calls = []
    real = report.mc_check
    monkeypatch.setattr(report, "mc_check", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = report.report_rows(["reinforce"], R=50, cuda=False, results=tmp_path / "rows")
    assert again == first and calls == []  # every row read back, none computed
    with pytest.raises(ValueError, match="other arguments"):
        report.report_rows(["reinforce"], R=60, cuda=False, results=tmp_path / "rows")
    assert calls == []  # refused before any row ran


def test_report_results_flag_checked_before_work(tmp_path, capsys):
    from verify.report import main

    (tmp_path / "file").write_text("")
    assert main(["--estimators", "reinforce", "--no-cuda", "--results",
                 str(tmp_path / "file" / "sub")]) == 2
    assert "--results" in capsys.readouterr().err


def test_a_unit_whose_worker_dies_runs_again_elsewhere(tmp_path, cluster):
    marker = tmp_path / "died"
    units = [Unit(f"u{x}", _square_plus_draw, (x,)) for x in range(6)]
    units[2] = Unit("dies", _die_first, (str(marker), 2))
    out = run_units(units, scheduler=cluster.scheduler_address)
    assert out[2] == 4 and out == [4 if i == 2 else run_units([u])[0] for i, u in enumerate(units)]
    assert int(marker.read_text()) != os.getpid()  # a worker died, not this process


def test_killing_a_worker_mid_sweep_loses_no_unit(tmp_path, cluster):
    """SIGKILL one worker process from outside while it runs a unit: every unit still completes
    with its result (the killed unit is run again by the other worker or the restarted one)."""
    started = tmp_path / "started"
    started.mkdir()
    killed: list[int] = []

    def kill_the_worker_of_unit_5() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            files = list(started.glob("5.*"))
            if files:
                pid = int(files[0].name.split(".")[1])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_worker_of_unit_5)
    killer.start()
    units = [Unit(f"unit {x}", _square_or_hang, (str(started), x)) for x in range(12)]
    try:
        out = run_units(units, scheduler=cluster.scheduler_address)
    finally:
        killer.join()
    assert killed and killed[0] != os.getpid()
    assert out == [x * x for x in range(12)]
    assert len(list(started.glob("5.*"))) == 2  # killed mid-unit, then run again by another
    # process (the pids differ: the file names would otherwise be the same one)
