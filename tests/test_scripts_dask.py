"""The experiment scripts on a Dask cluster give the in-process results, number for number
(tiny sizes; every unit seeds its own generator from its identity)."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name: str):
    """The script as a module that is not in ``sys.modules`` (as a test loads it; Dask then
    sends its functions by value); ``_cli`` is found through the scripts folder."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"_dask_script_{name}", SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


def _table_lines(text: str) -> list[str]:
    """The printed table without the timing line."""
    return [line for line in text.splitlines() if line.strip() and "s)" not in line]


def test_binary_variance_rows_on_dask(cluster):
    from verify.parallel import run_units

    bv = _load("binary_variance")
    units = bv.units(0.3, ts=(0.45, 0.501), ks=(1, 5))
    here = run_units(units)
    assert here == run_units(units, scheduler=cluster.scheduler_address)
    assert [(r["t"], r["K"]) for r in here] == [(0.45, 1), (0.45, 5), (0.501, 1), (0.501, 5)]
    assert here[1] == bv.variance_row(0.45, 5, 0.3)


def test_swap_variance_prints_the_same_table_on_dask(cluster, capsys):
    sv = _load("swap_variance")
    assert sv.main(["--C", "2", "3", "--K", "1"]) == 0
    here = capsys.readouterr().out
    assert sv.main(["--C", "2", "3", "--K", "1", "--scheduler", cluster.scheduler_address]) == 0
    there = capsys.readouterr().out
    assert _table_lines(here) == _table_lines(there)
    assert len([line for line in _table_lines(here) if line.startswith(("random", "toy"))]) == 4


@pytest.mark.slow  # about 100 s on 2 busy cores: every process compiles the k-subset kernels
def test_aimle_synthetic_on_dask(cluster):
    aimle = _load("aimle_synthetic")
    local = argparse.Namespace(workers=None, scheduler=None)
    remote = argparse.Namespace(workers=None, scheduler=cluster.scheduler_address)
    best, cos, curves = aimle.experiment(4, 3, 2, 5, local)
    best2, cos2, curves2 = aimle.experiment(4, 3, 2, 5, remote)
    assert best == best2
    for m in aimle.METHODS:
        np.testing.assert_array_equal(cos[m], cos2[m])
        np.testing.assert_array_equal(curves[m], curves2[m])
        assert curves[m].shape == (2, 3)


@pytest.mark.slow  # about 20 s: REBAR's certified moments in this process and on the workers
def test_rebar_landscape_rows_on_dask(cluster):
    from verify.parallel import run_units

    rl = _load("rebar_landscape")
    units = rl.units(quick=True)
    here = run_units(units)
    assert here == run_units(units, scheduler=cluster.scheduler_address)
    assert [r["tau"] for r in here] == list(rl.TAUS)


def test_script_cluster_flags_are_checked(capsys):
    bv = _load("binary_variance")
    with pytest.raises(SystemExit) as exc:
        bv.main(["--workers", "0"])
    assert exc.value.code == 2 and "--workers must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        bv.main(["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert exc.value.code == 2 and "not allowed with" in capsys.readouterr().err


@pytest.mark.slow
def test_figure1_csv_identical_on_a_local_cluster(tmp_path):
    """``figure1.py --workers 2`` (one unit per C, estimator and seed) writes the in-process
    CSV, and the same command again trains nothing (every run is finished). Both with one BLAS
    thread (``--threads 1``): Dask's workers run BLAS on one thread, and float32 matrix
    products summed by another number of threads round differently."""
    import subprocess

    from test_vae import _write_static

    _write_static(tmp_path, np.random.default_rng(2))
    flags = ["--data", str(tmp_path), "--dataset", "static", "--C", "2", "--seeds", "2",
             "--steps", "2", "--batch-size", "4", "--eval-every", "1", "--iwae-subset", "3",
             "--var-replicates", "2", "--n-test", "5", "--no-progress", "--threads", "1"]

    def run(out: str, *more: str) -> str:
        done = subprocess.run([sys.executable, str(SCRIPTS / "figure1.py"), "--out",
                               str(tmp_path / out), *flags, *more], capture_output=True,
                              text=True, timeout=900, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done.stdout

    def read(out: str) -> list[dict]:
        with open(tmp_path / out / "figure1.csv") as fh:
            return list(csv.DictReader(fh))

    run("here")
    printed = run("there", "--workers", "2")
    assert read("here") == read("there") and len(read("here")) > 0
    n_runs = len(list((tmp_path / "there" / "runs").rglob("log.csv")))
    assert n_runs >= 8 and printed.count("done C=2") == n_runs
    logs = sorted((tmp_path / "there" / "runs").rglob("log.csv"))
    stamps = [p.stat().st_mtime_ns for p in logs]
    run("there", "--workers", "2")
    assert [p.stat().st_mtime_ns for p in logs] == stamps  # finished runs were not trained again
    assert read("there") == read("here")


def test_multi_sample_variance_prints_the_same_table_on_dask(cluster, capsys):
    ms = _load("multi_sample_variance")
    assert ms.main(["--C", "2"]) == 0
    here = capsys.readouterr().out
    assert ms.main(["--C", "2", "--scheduler", cluster.scheduler_address]) == 0
    there = capsys.readouterr().out
    assert len(_table_lines(here)) == 4  # the header and one row per problem
    assert _table_lines(here) == _table_lines(there)


@pytest.mark.slow
def test_st_bias_table_on_dask(cluster):
    sb = _load("st_bias")
    here = sb.table()
    there = sb.table(argparse.Namespace(workers=None, scheduler=cluster.scheduler_address))
    assert here == there
    assert {r["problem"] for r in here[0]} == {p[0] for p in sb.problems()}
