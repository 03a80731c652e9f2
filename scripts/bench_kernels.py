"""Throughput of every registered estimator's kernels, against the memory-copy bandwidth.

    python scripts/bench_kernels.py [--backends cpu cuda] [--replicates 65536] [--json OUT]

For each registered estimator (its first example option set, the categorical distribution where
it supports it, else its first one, ``K = 16`` (2 for those that sample the joint space)
variables, ``C = 8`` categories where categorical, ``k = 4`` for k-subsets) the two phases of a
backend (``queries`` then ``combine``, with answers drawn at random in advance so that the
objective is not timed) run on ``--replicates`` problems of one replicate each. Reported, from
the best of ``--repeat`` timed runs:

* ``replicates_per_s``;
* ``bytes_per_s``: the bytes the two phases must move at the least (every input array read once
  and every output array written once: parameters, noise, queries, aux, answers, estimates),
  divided by the time;
* ``bandwidth_ratio``: ``bytes_per_s`` over the copy bandwidth measured in the same run (the
  better of a Numba ``prange`` copy with the same threads and ``numpy.copyto``, of a 512 MiB
  float64 array, read plus written bytes);
* ``numpy_ratio``: the speed-up over the NumPy reference on the same problems (the reference
  runs on ``1/8`` of the replicates; rates are per replicate);
* ``torch_ratio``: the speed-up over a PyTorch CPU implementation of the same two phases
  (REINFORCE-LOO, ARM, DisARM, Gumbel-Softmax; checked against ours on shared noise before it
  is timed), when ``torch`` is installed;
* ``end_to_end_replicates_per_s``: the same through host arrays (for ``cpu`` the same figure;
  for ``cuda`` with the transfers and the host work between launches, while
  ``replicates_per_s``, ``bytes_per_s`` and ``bandwidth_ratio`` of a ``cuda`` row come from the
  kernels' device time, CUDA events around each launch, against a device-to-device copy of
  ``--device-copy-mib``: data resident on the device, the GPU's memory-bandwidth yardstick);
* ``memory_bound``: measured, not assumed. The same kernels run on a problem small enough to
  stay in cache (``--cache-replicates``, repeated) and on a problem of one replicate; the
  difference of the two (bytes over seconds, ``in_cache_bytes_per_s``) is the in-cache rate
  without the fixed cost of a call (``call_seconds``: Python's dispatch, a parallel launch),
  which large batches amortize; NaN, and not memory-bound, where the batch's own time is below
  four times that fixed cost, whose jitter would decide (fast kernels on several threads with the
  ``workqueue`` layer, whose launch is about 86 us: use ``--threads 1`` or a larger
  ``--cache-replicates``). Where that rate is above the copy bandwidth, the arithmetic
  per byte is low enough that memory is the limit at large batches (the roofline's memory
  side), and the kernel is marked memory-bound. Kernels below the copy bandwidth even in cache
  are compute-bound: the bandwidth ratio is not the right yardstick for them. On a GPU the
  default ``--cache-replicates`` leaves most of the device idle, which can only under-mark
  ``cuda`` kernels: give it a batch that fills the device but whose bytes fit its L2 cache
  (about 50 MB on an H100).

The phases are timed through the backend objects that the public ``Estimator.queries`` and
``combine`` call after validation (``Estimator.backend(name)``), on batch-flattened arrays: the
kernels, not the input checks (whose cost the ``api_ratio`` column gives: kernel time over
public-call time, same problem). Timings are of a shared machine: run it when it is quiet,
and read ratios measured in the same run, never absolute figures from different runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _cli  # noqa: E402
from _threads import early_env  # noqa: E402  (before NumPy and Numba)

early_env(sys.argv[1:])

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from reference.contract import Answers, Estimator, Queries  # noqa: E402
from reference.registry import REGISTRY  # noqa: E402

K_VARS, C_CATS, K_SUBSET = 16, 8, 4
#: estimators that sample the joint space of C**K configurations (Gumbel-top-k without
#: replacement): K = 2, so 64 configurations
K_JOINT = {"unord": 2, "reinforce_wor": 2}
#: estimators whose phase 1 does per-problem work far beyond the replicate's (reinforce_wor
#: enumerates every n-subset of the joint space for its inclusion probabilities): a smaller
#: batch (rates are per replicate, so the rows stay comparable)
BATCH_DIVISOR = {"reinforce_wor": 64}


def steady_allocator() -> bool:
    """Fix glibc's allocation thresholds for the run (``mallopt``: arrays up to 32 MiB from the
    heap, which is never trimmed below 1 GiB); False where there is no glibc.

    Every phase allocates its outputs; with glibc's dynamic thresholds (raised by the frees a
    process happens to make) a row could get its arrays as fresh pages from the kernel on every
    call, page faults included, depending on what ran before it: measured, AR's row at 7.5e6
    replicates/s when it came first (after the copy), 1.4e7 after another row or with the
    thresholds fixed. Fixed, every row (ours, NumPy's, PyTorch's, the same allocator) runs on
    warm memory, whatever its place in the run."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):  # no C library found, or not glibc
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


@njit(parallel=True)
def _copy(src, dst):
    for i in prange(src.shape[0]):
        dst[i] = src[i]


def copy_bandwidth(nbytes: int, repeat: int) -> tuple[float, float]:
    """Best (Numba prange, numpy.copyto) copy rates in bytes/s (read + written bytes)."""
    src = np.random.default_rng(0).random(nbytes // 8)
    dst = np.zeros_like(src)  # touched: page faults of fresh memory are not copy time
    _copy(src, dst)
    best_nb = best_np = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        _copy(src, dst)
        best_nb = max(best_nb, 2 * src.nbytes / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best_np = max(best_np, 2 * src.nbytes / (time.perf_counter() - t0))
    return best_nb, best_np


# ------------------------------------------------------------------------------ problems
def problem(est: Estimator, B: int, seed: int = 0):
    """Flat parameters ``(B, *event)``, flat noise, options, and the distribution's name."""
    dist = "categorical" if "categorical" in est.distributions else est.distributions[0]
    opts = est.options(**est.examples[0])
    if dist == "ksubset":
        opts = est.options(**{**est.examples[0], "k": K_SUBSET})
    rng = np.random.default_rng(seed)
    K = K_JOINT.get(est.name, K_VARS)
    shape = {"bernoulli": (B, K), "categorical": (B, K, C_CATS), "ksubset": (B, K)}[dist]
    params = rng.standard_normal(shape)
    noise = est.draw_noise(rng, dist, shape, 1, **opts)
    return dist, params, {k: np.ascontiguousarray(v) for k, v in noise.items()}, opts


def random_answers(q: Queries, seed: int = 1) -> Answers:
    rng = np.random.default_rng(seed)
    f_z = rng.standard_normal(q.z.shape[:-1])
    if q.y is None:
        return Answers(f_z)
    return Answers(f_z, rng.standard_normal(q.y.shape[:3]), rng.standard_normal(q.y.shape))


def _nbytes(*arrays) -> int:
    return sum(int(np.asarray(a).nbytes) for a in arrays if a is not None)


def moved_bytes(params, noise, q: Queries, a: Answers, g) -> int:
    """Phase 1 reads params and noise and writes the queries; phase 2 reads params, queries
    and answers and writes the estimates."""
    qs = (q.z, q.y, *q.aux.values())
    return (_nbytes(params, *noise.values(), *qs)
            + _nbytes(params, *qs, a.f_z, a.f_y, a.grad_y, g))


def best_seconds(call, repeat: int, min_time: float) -> float:
    """Best seconds per ``call()`` over ``repeat`` timed runs, each repeating ``call`` until
    ``min_time`` has passed."""
    best = np.inf
    for _ in range(repeat):
        runs, t0 = 0, time.perf_counter()
        while True:
            call()
            runs += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        best = min(best, dt / runs)
    return best


def time_phases(backend, dist, params, noise, opts, answers, repeat: int, min_time: float
                ) -> float:
    """Best seconds for one run of both phases of a backend object (the kernels)."""
    def both() -> None:
        backend.combine(dist, params, backend.queries(dist, params, noise, opts), answers, opts)

    return best_seconds(both, repeat, min_time)


def time_kernels(backend, dist, params, noise, opts, answers, repeat: int, min_time: float
                 ) -> float:
    """Best device seconds of the kernels of one run of both phases of a CUDA backend object
    (CUDA events around each launch, :func:`reference._cuda.kernel_timer`): the time the
    kernels take on device-resident data, without the transfers and host work between them."""
    from reference import _cuda

    best = np.inf
    for _ in range(repeat):
        total, runs, t0 = 0.0, 0, time.perf_counter()
        while True:
            with _cuda.kernel_timer() as timer:
                backend.combine(dist, params, backend.queries(dist, params, noise, opts),
                                answers, opts)
            total += timer.seconds()
            runs += 1
            if time.perf_counter() - t0 >= min_time:
                break
        best = min(best, total / runs)
    return best


def time_api(est: Estimator, dist, params, noise, opts, answers, backend: str, repeat: int,
             min_time: float) -> float:
    """The same through the public, validating calls (flat batch ``B`` with ``R = 1``)."""
    def both() -> None:
        q = est.queries(dist, params, noise, backend=backend, **opts)
        est.combine(dist, params, q, answers, backend=backend, **opts)

    return best_seconds(both, repeat, min_time)


# ------------------------------------------------------------------------------ PyTorch
def torch_impls(torch):
    """PyTorch versions of both phases of four estimators: ``fn(params, noise, f_z, f_y,
    grad_y) -> (queries, estimates)`` on tensors, with our noise conventions (so that the
    results can be compared number for number before timing)."""
    def loo(params, noise, f_z, *_):  # categorical, u (B, 1, n, K)
        u = noise["u"]
        p = torch.softmax(params, -1)
        cdf = torch.cumsum(p, -1)[:, None, None]  # (B, 1, 1, K, C)
        z = torch.clamp((u[..., None] >= cdf).sum(-1), max=params.shape[-1] - 1)
        n = u.shape[2]
        w = (f_z - f_z.mean(2, keepdim=True)) / (n - 1)  # (B, 1, n)
        onehot = torch.nn.functional.one_hot(z, params.shape[-1]).to(params.dtype)
        g = (w[..., None, None] * (onehot - p[:, None, None])).sum(2)
        return z, g

    def arm_pairs(phi, u):
        b1 = (u > torch.sigmoid(-phi)[:, None, None]).long()
        b2 = (u < torch.sigmoid(phi)[:, None, None]).long()
        return b1, b2

    def arm(params, noise, f_z, *_):  # bernoulli, u (B, 1, n, K), f_z (B, 1, 2n)
        u = noise["u"]
        b1, b2 = arm_pairs(params, u)
        f = f_z.reshape(f_z.shape[0], f_z.shape[1], -1, 2)
        g = ((f[..., 0] - f[..., 1])[..., None] * (u - 0.5)).mean(2)
        return torch.stack([b1, b2], 3), g

    def disarm(params, noise, f_z, *_):
        u = noise["u"]
        b1, b2 = arm_pairs(params, u)
        f = f_z.reshape(f_z.shape[0], f_z.shape[1], -1, 2)
        w = torch.where(b1 != b2, 1.0 - 2.0 * b2.to(params.dtype), 0.0) \
            * torch.sigmoid(params.abs())[:, None, None]
        g = (0.5 * (f[..., 0] - f[..., 1])[..., None] * w).mean(2)
        return torch.stack([b1, b2], 3), g

    def gumbel_softmax(params, noise, f_z, f_y, grad_y, tau=1.0):  # categorical, u (B,1,n,K,C)
        u = noise["u"]
        G = -torch.log(-torch.log(torch.clamp(u, min=np.finfo(np.float64).tiny)))
        y = torch.softmax((params[:, None, None] + G) / tau, -1)
        z = torch.argmax(params[:, None, None] + G, -1)
        g = (y * (grad_y - (y * grad_y).sum(-1, keepdim=True)) / tau).mean(2)
        return (z, y), g

    return {"reinforce_loo": loo, "arm": arm, "disarm": disarm, "gumbel_softmax": gumbel_softmax}


def time_torch(torch, fn, params, noise, answers, repeat: int, min_time: float) -> float:
    tp = torch.from_numpy(params)
    tn = {k: torch.from_numpy(v) for k, v in noise.items()}
    ta = [None if a is None else torch.from_numpy(np.ascontiguousarray(a))
          for a in (answers.f_z, answers.f_y, answers.grad_y)]
    with torch.no_grad():
        return best_seconds(lambda: fn(tp, tn, *ta), repeat, min_time)


def torch_agrees(torch, fn, est: Estimator, dist, params, noise, opts) -> bool:
    """The PyTorch version gives our NumPy reference's estimates on shared noise."""
    ref = est.backend("numpy")
    q = ref.queries(dist, params, noise, opts)
    a = random_answers(q)
    g_ref = ref.combine(dist, params, q, a, opts)
    with torch.no_grad():
        _, g = fn(torch.from_numpy(params), {k: torch.from_numpy(v) for k, v in noise.items()},
                  *[None if x is None else torch.from_numpy(np.ascontiguousarray(x))
                    for x in (a.f_z, a.f_y, a.grad_y)])
    return bool(np.allclose(g.numpy(), g_ref, rtol=1e-10, atol=1e-12))


def in_cache_rate(impl, timed, dist, params, noise, opts, replicates: int, repeat: int,
                  min_time: float) -> tuple[float, float]:
    """The two phases' byte rate on the first ``replicates`` problems (small enough to stay in
    cache), less the fixed cost of a call (the same phases on one problem: Python's dispatch,
    the allocations, a parallel launch): ``(bytes(B) - bytes(1)) / (t(B) - t(1))``, and
    ``t(1)`` in seconds. Large batches amortize the fixed cost, so it is not part of the
    arithmetic that the roofline weighs against memory.

    NaN (not measured, so not marked memory-bound) where ``t(B) - t(1)`` is below ``4 t(1)``:
    the difference is then swayed by the jitter of the fixed cost. Measured (ARM, 2 048 problems,
    best of 3 runs of 0.2 s each): one thread, ``t(1)`` 6.5 us against 146 us for the batch,
    19-19.8 GB/s in three runs, as on 65 536 problems; two threads with the ``workqueue``
    layer, ``t(1)`` 166-271 us (its launch is about 86 us) against about 70 us of work, and
    the difference gave 16-46 GB/s in three runs (DisARM, about 100 us of work: 7.2 GB/s,
    against 18 on 65 536 problems)."""
    def measured(B: int) -> tuple[int, float]:
        p, n = params[:B], {k: v[:B] for k, v in noise.items()}
        q = impl.queries(dist, p, n, opts)
        a = random_answers(q)
        g = impl.combine(dist, p, q, a, opts)
        return moved_bytes(p, n, q, a, g), timed(impl, dist, p, n, opts, a, repeat, min_time)

    b1, t1 = measured(1)
    bc, tc = measured(max(2, replicates))
    return ((bc - b1) / (tc - t1) if tc - t1 >= 4 * t1 else float("nan")), t1


# ------------------------------------------------------------------------------ main
def bench(args: argparse.Namespace) -> list[dict]:
    try:
        import torch
        torch.set_num_threads(int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1)))
        impls = torch_impls(torch)
    except ImportError:
        torch, impls = None, {}
    steady = steady_allocator()
    bw_nb, bw_np = copy_bandwidth(args.copy_mib << 20, args.repeat)
    bw = max(bw_nb, bw_np)
    print(f"copy bandwidth (read + write): Numba prange {bw_nb / 1e9:.2f} GB/s, "
          f"numpy.copyto {bw_np / 1e9:.2f} GB/s"
          + (f"; torch {torch.__version__}" if torch is not None else "; torch not installed")
          + ("" if steady else "; allocator thresholds not fixed (no glibc mallopt)"))
    bw_of = {"cpu": bw}
    if "cuda" in args.backends:
        from reference import _cuda

        bw_of["cuda"] = _cuda.device_copy_bandwidth(args.device_copy_mib << 20, args.repeat)
        print(f"device copy bandwidth (read + write, device to device): "
              f"{bw_of['cuda'] / 1e9:.2f} GB/s; cuda rows time the kernels with CUDA events "
              f"(transfers excluded; end to end in end_to_end_replicates_per_s)")
    print(f"{'estimator':<18}{'backend':<8}{'repl/s':>12}{'GB/s':>8}{'bw ratio':>9}"
          f"{'in-cache GB/s':>14}{'mem-bound':>10}{'vs numpy':>9}{'vs torch':>9}{'api':>6}")
    names = args.estimators or list(REGISTRY)
    rows = []
    for name in names:
        est = REGISTRY[name]
        B = max(1, args.replicates // BATCH_DIVISOR.get(name, 1))
        dist, params, noise, opts = problem(est, B)
        B_np = max(1, B // 8)
        p_np = params[:B_np]
        n_np = {k: v[:B_np] for k, v in noise.items()}
        ref = est.backend("numpy")
        q_np = ref.queries(dist, p_np, n_np, opts)
        a_np = random_answers(q_np)
        t_numpy = time_phases(ref, dist, p_np, n_np, opts, a_np, args.repeat, args.min_time) / B_np
        t_torch = None
        if name in impls and dist in ("bernoulli", "categorical"):
            if not torch_agrees(torch, impls[name], est, dist, p_np[:64],
                                {k: v[:64] for k, v in n_np.items()}, opts):
                print(f"{name}: the PyTorch version disagrees with the reference; not timed")
            else:
                t_torch = time_torch(torch, impls[name], params, noise,
                                     random_answers(ref.queries(dist, params, noise, opts)),
                                     args.repeat, args.min_time) / B
        for backend in args.backends:
            impl = est.backend(backend)
            q = impl.queries(dist, params, noise, opts)  # compiles
            a = random_answers(q)
            g = impl.combine(dist, params, q, a, opts)
            t = time_phases(impl, dist, params, noise, opts, a, args.repeat, args.min_time)
            # the CPU kernels run on host data; the CUDA rows' throughput is the kernels' device
            # time (data resident on the device), against the device's own copy bandwidth
            timed = time_kernels if backend == "cuda" else time_phases
            tk = t if backend == "cpu" else timed(impl, dist, params, noise, opts, a,
                                                  args.repeat, args.min_time)
            nbytes = moved_bytes(params, noise, q, a, g)
            cache_bps, t_call = in_cache_rate(impl, timed, dist, params, noise, opts,
                                              args.cache_replicates, args.repeat, args.min_time)
            t_api = time_api(est, dist, params, {k: v for k, v in noise.items()}, opts, a, backend,
                             1, args.min_time)
            bwb = bw_of[backend]
            row = {"estimator": name, "backend": backend, "dist": dist, "options": opts,
                   "replicates_per_s": B / tk, "bytes_per_s": nbytes / tk,
                   "bandwidth_ratio": nbytes / tk / bwb, "in_cache_bytes_per_s": cache_bps,
                   "memory_bound": bool(cache_bps > bwb), "call_seconds": t_call,
                   "end_to_end_replicates_per_s": B / t,
                   "numpy_ratio": t_numpy / (t / B),
                   "torch_ratio": None if t_torch is None else t_torch / (t / B),
                   "api_ratio": t / t_api, "copy_bytes_per_s": bwb}
            rows.append(row)
            tr = "-" if row["torch_ratio"] is None else f"{row['torch_ratio']:.2f}"
            print(f"{name:<18}{backend:<8}{row['replicates_per_s']:12.3g}"
                  f"{row['bytes_per_s'] / 1e9:8.2f}{row['bandwidth_ratio']:9.2f}"
                  f"{cache_bps / 1e9:14.2f}{str(row['memory_bound']):>10}"
                  f"{row['numpy_ratio']:9.1f}{tr:>9}{row['api_ratio']:6.2f}", flush=True)
    for backend in args.backends:
        mine = [r for r in rows if r["memory_bound"] and r["backend"] == backend]
        if mine:
            print(f"memory-bound {backend} kernels: {len(mine)}, median bandwidth ratio "
                  f"{np.median([r['bandwidth_ratio'] for r in mine]):.2f}")
        unmeasured = [r["estimator"] for r in rows
                      if r["backend"] == backend and np.isnan(r["in_cache_bytes_per_s"])]
        if unmeasured:
            print(f"in-cache rate not measured (the batch's time below a call's fixed cost) for "
                  f"{backend}: " + ", ".join(unmeasured))
        slow = [r["estimator"] for r in mine if r["bandwidth_ratio"] < 0.5]
        if slow:
            print(f"memory-bound {backend} kernels below half the copy bandwidth: "
                  + ", ".join(slow))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", nargs="+", default=["cpu"], choices=("cpu", "cuda"),
                   help="backends to time against the NumPy reference (cuda: the kernels' "
                        "device time against the device copy bandwidth, and end to end, host "
                        "arrays in and out, in end_to_end_replicates_per_s and numpy_ratio)")
    p.add_argument("--estimators", nargs="*", default=None)
    p.add_argument("--replicates", type=int, default=1 << 16)
    p.add_argument("--cache-replicates", type=int, default=2048)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.2, help="seconds per timed run")
    p.add_argument("--copy-mib", type=int, default=512)
    p.add_argument("--device-copy-mib", type=int, default=1024,
                   help="size of the device-to-device copy that gives the cuda rows' bandwidth")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    for flag in ("replicates", "cache_replicates", "repeat", "copy_mib", "device_copy_mib",
                 "threads"):
        _cli.at_least(p, "--" + flag.replace("_", "-"), getattr(args, flag), 1)
    _cli.positive_finite(p, "--min-time", args.min_time)
    unknown = sorted(set(args.estimators or []) - set(REGISTRY))
    if unknown:
        p.error(f"unknown --estimators {unknown}; registered: {sorted(REGISTRY)}")
    if args.json:
        _cli.writable_dir(p, "--json's folder", os.path.dirname(os.path.abspath(args.json)))
    rows = bench(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
