"""Time the oracle on the cases whose speed the project states (measured, never asserted).

    python scripts/bench_oracle.py [--repeat 3] [--json OUT]

Each case runs once from cold (kernels compiled, caches empty) and then ``--repeat`` times
warm; the table gives the cold time and the best warm time in seconds. Baseline in the same
run: the enumeration of ``2**20`` objective values alone (``objective.table()``), so that the
ratios say how much of the exact gradient's time is the enumeration itself.

Cases: the exact gradient of a 20-variable binary problem with a user-jitted objective;
REINFORCE-LOO exact moments at ``K = 3, C = 10, n = 46``; DisARM exact moments by the general
method at ``K = 12``; ARSM+CE exact moments at ``K = 3, C = 4`` (cold polytope cache).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cli  # noqa: E402
from _threads import early_env  # noqa: E402  (before NumPy and Numba)

early_env(sys.argv[1:])

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

import reference  # noqa: E402
import verify  # noqa: E402
from reference.objectives import JitObjective  # noqa: E402
from verify.moments import swap as moments_swap  # noqa: E402
from verify.moments.augment_reinforce import binary_moments  # noqa: E402
from verify.problems import builtin_problems  # noqa: E402


@njit
def _weighted_ones(z, w):
    s = 0.0
    for i in range(z.shape[0]):
        s += w[i] * z[i] + 0.1 * w[i] * z[i] * z[(i + 1) % z.shape[0]]
    return s


def _cases():
    rng = np.random.default_rng(0)
    K = 20
    obj20 = JitObjective(_weighted_ones, rng.normal(size=K), K=K, C=2, domain="binary")
    phi20 = rng.normal(size=K)
    alpha = rng.normal(size=(3, 10))
    t310 = reference.random_table(3, 10, seed=46)
    phi12 = rng.normal(size=12) * 2
    pr12 = verify.make_problem("bernoulli", phi12, reference.random_table(12, 2, 12))
    _, pr34 = builtin_problems("categorical")[1]
    return [
        ("baseline: 2^20 objective values (table)", lambda: obj20.table(), None),
        ("exact gradient, K=20 binary, jitted f", lambda: verify.exact_gradient("bernoulli", phi20, obj20),
         None),
        ("reinforce_loo moments, K=3 C=10 n=46",
         lambda: reference.get_estimator("reinforce_loo").exact_moments("categorical", alpha, t310,
                                                                        n=46), None),
        ("disarm moments, general method, K=12",
         lambda: binary_moments("disarm", pr12.dist, pr12.params, pr12.objective), None),
        ("arsm_plus_ce moments, K=3 C=4",
         lambda: reference.get_estimator("arsm_plus_ce").exact_moments(
             "categorical", pr34.params, pr34.objective), moments_swap.clear_caches),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="warm repetitions (>= 1)")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.json:  # before minutes of timings, not after them
        _cli.writable_dir(ap, "--json's folder", str(Path(args.json).resolve().parent))
    rows = []
    base = None
    for label, fn, reset in _cases():
        if reset:
            reset()
        t0 = time.perf_counter()
        fn()
        cold = time.perf_counter() - t0
        warm = []
        for _ in range(args.repeat):
            if reset:
                reset()
            t0 = time.perf_counter()
            fn()
            warm.append(time.perf_counter() - t0)
        best = min(warm)
        base = base if base is not None else best
        rows.append({"case": label, "cold_s": cold, "warm_s": best, "ratio_to_baseline": best / base})
        print(f"{label:45s} cold {cold:8.3f} s   warm {best:8.3f} s   x{best / base:8.1f} baseline",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
