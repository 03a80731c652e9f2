"""Every script checks its flags before any work: a bad flag exits with status 2 and a
message naming it (run as a user would, in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reference import evaluate, random_table

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

CASES = [
    ("figure1.py", ["--out", "{tmp}/f", "--C", "1"], "--C must be >= 2"),
    ("figure1.py", ["--out", "{tmp}/f", "--lr", "nan"], "--lr must be a positive finite"),
    ("figure1.py", ["--out", "{tmp}/blocker/sub"], "not a writable directory"),
    ("figure1.py", ["--out", "{tmp}/f", "--steps", "0"], "--steps must be >= 1"),
    ("bench_vae.py", ["--threads", "0"], "--threads must be >= 1"),
    ("bench_vae.py", ["--estimators", "nope"], "unknown --estimators"),
    ("swap_variance.py", ["--K", "0"], "--K must be >= 1"),
    ("swap_scale.py", ["--R", "10"], "--R must be >= 40"),
    ("multi_sample_variance.py", ["--C", "1"], "--C must be >= 2"),
    ("binary_variance.py", ["--phi", "inf"], "--phi must be finite"),
    ("bench_oracle.py", ["--repeat", "0"], "--repeat must be >= 1"),
    ("bench_parallel.py", ["--R", "1"], "--R must be >= 2"),
    ("train_vae.py", ["--out", "{tmp}/t", "--K", "0"], "--K must be >= 1"),
    ("bench_kernels.py", ["--replicates", "0"], "--replicates must be >= 1"),
    ("st_bias.py", ["--workers", "0"], "--workers must be >= 1"),
    ("multi_sample_variance.py", ["--workers", "0"], "--workers must be >= 1"),
    ("bench_kernels.py", ["--estimators", "nope"], "unknown --estimators"),
    ("bench_kernels.py", ["--min-time", "nan"], "--min-time must be a positive finite"),
    # issue 16's battery: before, --seed -1 reached default_rng (after the data was read, or
    # as a traceback), a missing --data gave bench_vae a traceback, and --plot was checked
    # only after the whole experiment
    ("train_vae.py", ["--out", "{tmp}/t", "--seed", "-1"], "--seed must be >= 0"),
    ("train_vae.py", ["--out", "{tmp}/t", "--estimator", "gumbel_softmax", "--option", "tau=nan"],
     "tau contains NaN"),
    ("bench_vae.py", ["--data", "{tmp}/nodata", "--estimators", "arsm", "--steps", "1"],
     "nodata' does not exist"),
    ("aimle_synthetic.py", ["--seed", "-1"], "--seed must be >= 0"),
    ("aimle_synthetic.py", ["--plot", "{tmp}/blocker/p.png"], "--plot's folder"),
]


@pytest.mark.parametrize("script,flags,words", CASES, ids=[f"{c[0]}:{c[1][-2]}" for c in CASES])
def test_bad_flags_exit_2_before_any_work(script, flags, words, tmp_path):
    (tmp_path / "blocker").write_text("")
    args = [a.format(tmp=tmp_path) for a in flags]
    out = subprocess.run([sys.executable, str(SCRIPTS / script), *args], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 2, out.stderr
    assert words in out.stderr
    assert not (tmp_path / "f" / "runs").exists()  # nothing was trained


def test_bench_kernels_writes_one_row_per_estimator_and_backend(tmp_path):
    """The benchmark's JSON rows carry the keys the performance issue asks for, with a
    bandwidth ratio that is the bytes rate over the copy rate of the same run."""
    out = tmp_path / "k.json"
    run = subprocess.run([sys.executable, str(SCRIPTS / "bench_kernels.py"), "--replicates", "64",
                          "--cache-replicates", "8", "--repeat", "1", "--min-time", "0.001",
                          "--copy-mib", "8", "--threads", "1", "--estimators", "arm", "reinforce",
                          "--json", str(out)], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr
    import json

    rows = json.loads(out.read_text())
    assert [(r["estimator"], r["backend"]) for r in rows] == [("arm", "cpu"), ("reinforce", "cpu")]
    for r in rows:
        assert {"estimator", "backend", "replicates_per_s", "bytes_per_s", "bandwidth_ratio",
                "memory_bound"} <= set(r)
        assert r["replicates_per_s"] > 0 and isinstance(r["memory_bound"], bool)
        assert r["bandwidth_ratio"] == pytest.approx(r["bytes_per_s"] / r["copy_bytes_per_s"])


_IN_CACHE_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import bench_kernels as bk
from reference import get_estimator

est = get_estimator("arm")
dist, params, noise, opts = bk.problem(est, 64)
impl = est.backend("cpu")
def timed(fixed, per):
    def t(impl, dist, p, n, opts, a, repeat, min_time):
        return fixed + per * p.shape[0]
    return t
rate, t1 = bk.in_cache_rate(impl, timed(1e-5, 1e-6), dist, params, noise, opts, 64, 1, 0.0)
q = impl.queries(dist, params, noise, opts)
a = bk.random_answers(q)
full = bk.moved_bytes(params, noise, q, a, impl.combine(dist, params, q, a, opts))
print(rate, t1, full / 64)
rate2, _ = bk.in_cache_rate(impl, timed(1e-5, 1e-7), dist, params, noise, opts, 64, 1, 0.0)
print(rate2)
"""


def test_bench_kernels_in_cache_rate_leaves_out_the_fixed_cost_of_a_call():
    """The in-cache rate is the bytes of the batch beyond one problem over its time beyond one
    problem's (with a timing of fixed + per-problem seconds, exactly the bytes per problem over
    the per-problem seconds), and NaN where the batch's own time is below four fixed costs."""
    run = subprocess.run([sys.executable, "-c", _IN_CACHE_PROBE, str(SCRIPTS)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    first, second = run.stdout.strip().splitlines()[-2:]
    rate, t1, per_problem = map(float, first.split())
    assert t1 == pytest.approx(1e-5 + 1e-6)
    assert rate == pytest.approx(per_problem / 1e-6, rel=1e-12)  # 63 problems in 63 us
    assert second == "nan"  # 6.3 us of work against a fixed 10 us


def test_bench_kernels_times_cuda_kernels_against_the_device_copy(tmp_path):
    """The cuda rows (simulator here, a GPU where there is one): throughput from the kernels'
    device time against the device-to-device copy rate, end to end beside it."""
    out = tmp_path / "k.json"
    run = subprocess.run([sys.executable, str(SCRIPTS / "bench_kernels.py"), "--replicates", "8",
                          "--cache-replicates", "4", "--repeat", "1", "--min-time", "0.001",
                          "--copy-mib", "1", "--device-copy-mib", "1", "--threads", "1",
                          "--backends", "cpu", "cuda", "--estimators", "disarm",
                          "--json", str(out)], capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr
    import json

    rows = {r["backend"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"cpu", "cuda"}
    cpu, gpu = rows["cpu"], rows["cuda"]
    assert cpu["end_to_end_replicates_per_s"] == cpu["replicates_per_s"]
    assert gpu["copy_bytes_per_s"] != cpu["copy_bytes_per_s"]  # its own yardstick
    assert gpu["bandwidth_ratio"] == pytest.approx(gpu["bytes_per_s"] / gpu["copy_bytes_per_s"])
    assert gpu["replicates_per_s"] > 0 and gpu["end_to_end_replicates_per_s"] > 0


def test_kernel_timer_times_each_launch_of_a_block_and_nothing_outside():
    from reference import _cuda, get_estimator

    est = get_estimator("disarm")
    phi = np.array([[0.3, -1.0, 2.0]])
    noise = est.draw_noise(np.random.default_rng(0), "bernoulli", phi.shape, 2)
    cuda_backend = est.backend("cuda")
    opts = est.options(**est.examples[0])
    with _cuda.kernel_timer() as timer:
        q = cuda_backend.queries("bernoulli", phi, noise, opts)
        assert timer.launches == 1  # the pairs kernel
    answers = evaluate(random_table(3, 2, 1), q)
    cuda_backend.combine("bernoulli", phi, q, answers, opts)
    assert timer.launches == 1  # the combination ran outside the block
    assert timer.seconds() > 0
    assert _cuda._TIMER is None


@pytest.mark.parametrize("args,words", [
    (["--seed", "-1", "--no-cuda", "--estimators", "arm"], "--seed must be >= 0"),
    (["golden", "{tmp}/g", "--seed", "-1", "--estimators", "arm"], "--seed must be >= 0"),
    (["golden", "{tmp}/g", "--R", "0", "--estimators", "arm"], "--R must be >= 1"),
    (["golden", "{tmp}/g", "--estimators", "nope"], "unknown estimators ['nope']"),
])
def test_verify_module_bad_flags_exit_2(args, words, tmp_path):
    """``python -m verify`` with a negative seed ran the CUDA check, then failed inside
    ``default_rng``; ``golden`` printed its refusal on stdout (now stderr, exit 2)."""
    argv = [a.format(tmp=tmp_path) for a in args]
    out = subprocess.run([sys.executable, "-m", "verify", *argv], capture_output=True, text=True,
                         timeout=120, check=False, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 2, out.stderr
    assert words in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "g").exists()  # nothing written
