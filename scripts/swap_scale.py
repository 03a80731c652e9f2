"""The swap family's exact moments at the paper's scale: timings, and the equal-cost table at C = 10.

Part 1, timings: each swap estimator's exact moments from a cold cache (wall and CPU time of
this process; on a shared machine the wall time is the noisy one): ``K = 3, C = 4`` (the
built-in random-table problem), ``K = 2, C = 5`` and ``K = 2, C = 10`` (logits
``1.5 N(0, 1)``, seeded). Estimators out of the oracle's scope print the refusal.

Part 2, the comparison of the coupled-estimators paper (Dong, Mnih, Tucker 2021) at its
setting ``C = 10``, equal cost: REINFORCE-LOO with ``n = C`` samples against ARS and ARS+
(``C`` evaluations of ``f``), REINFORCE-LOO with ``n = M = C(C-1)/2 + 1`` against ARSM, ARSM+
and ARSM+CE. Each cell is the trace of the covariance of one replicate: exact (closed forms
for REINFORCE-LOO, exponential races for ARS, ARSM and ARSM+, polytope cells for ARS+ and
ARSM+CE where in scope, i.e. rows of equal logits; certified for both on distinct logits:
races and RQMC, with ``+-`` the sum of the per-entry bounds over the diagonal), and in the
column ``MC`` an independent Monte Carlo
estimate from ``--R`` replicates of the NumPy reference (fresh noise), with its standard
error from 20 batches. Problems: ``random`` (logits ``1.5 N(0, 1)``, a seeded random table)
and ``toy`` (logits 0, the ARSM paper's toy summed over dimensions).

Run: ``python scripts/swap_scale.py`` (a few minutes; ``--skip-timings`` for the table only).
"""

from __future__ import annotations

import argparse
import time

import _cli  # the scripts folder is first on sys.path when a script runs
import numpy as np
from swap_variance import toy_table

from reference import REGISTRY, random_table
from verify.exact import check_enumeration_size
from verify.moments import swap as moments_swap
from verify.problems import builtin_problems

SWAP = ("ars", "arsm", "ars_plus", "arsm_plus", "arsm_plus_ce")


def timed(name: str, alpha: np.ndarray, obj) -> tuple[str, object]:
    moments_swap.clear_caches()
    t, c = time.perf_counter(), time.process_time()
    try:
        m = REGISTRY[name].exact_moments("categorical", alpha, obj)
    except NotImplementedError as e:
        return f"refused: {str(e).split(' (')[0]}", None
    return f"{time.perf_counter() - t:7.2f} s wall {time.process_time() - c:7.2f} s CPU", m


def random_problem(K: int, C: int, seed: int = 0):
    rng = np.random.default_rng([seed, K, C])
    return 1.5 * rng.standard_normal((K, C)), random_table(K, C, seed=10 * K + C,
                                                           domain="categorical")


def mc_trace(name: str, alpha: np.ndarray, obj, R: int, seed: int, **opts) -> tuple[float, float]:
    est = REGISTRY[name]
    noise = est.draw_noise(np.random.default_rng(seed), "categorical", alpha.shape, R, **opts)
    g = est.estimate("categorical", alpha, obj, noise, backend="numpy", **opts).reshape(R, -1)
    traces = [np.var(b, axis=0, ddof=1).sum() for b in np.array_split(g, 20)]
    return float(np.var(g, axis=0, ddof=1).sum()), float(np.std(traces, ddof=1) / np.sqrt(20))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--R", type=int, default=20000, help="Monte Carlo replicates")
    parser.add_argument("--K", type=int, default=2, help="dimensions of the C = 10 table")
    parser.add_argument("--skip-timings", action="store_true")
    args = parser.parse_args(argv)
    _cli.at_least(parser, "--R", args.R, 40)
    _cli.at_least(parser, "--K", args.K, 1)
    try:  # the C = 10 table has 10**K entries: refuse what the oracle refuses, before timings
        check_enumeration_size(10, args.K)
    except ValueError as exc:
        parser.error(f"--K {args.K}: {exc}")
    if not args.skip_timings:
        label, pr = builtin_problems("categorical")[1]
        cases = [(f"K=3 C=4 ({label})", pr.params, pr.objective),
                 ("K=2 C=5 (random)", *random_problem(2, 5)),
                 ("K=2 C=10 (random)", *random_problem(2, 10))]
        for title, alpha, obj in cases:
            for name in SWAP:
                text, _ = timed(name, alpha, obj)
                print(f"{title:32s} {name:13s} {text}", flush=True)
    C, K = 10, args.K
    M = C * (C - 1) // 2 + 1
    problems = [("random", *random_problem(K, C)), ("toy", np.zeros((K, C)), toy_table(K, C))]
    print(f"\nC = {C}, K = {K}: trace of the covariance of one replicate (MC: {args.R} replicates,"
          " +- one standard error)")
    print(f"{'problem':8s} {'estimator':20s} {'evals':>5s} {'exact':>11s} {'MC':>24s}")
    for label, alpha, obj in problems:
        rows = [("reinforce_loo", {"n": C}, C), ("ars", {}, C), ("ars_plus", {}, C),
                ("reinforce_loo", {"n": M}, M), ("arsm", {}, M), ("arsm_plus", {}, M),
                ("arsm_plus_ce", {}, M)]
        for i, (name, opts, cost) in enumerate(rows):
            try:
                m = REGISTRY[name].exact_moments("categorical", alpha, obj, **opts)
                exact = f"{m.variance_trace:11.4e}"
                if m.method.startswith("certified"):  # every diagonal entry within the bound
                    exact += f" +- {m.error_bound * m.mean.size:.1e}"
            except NotImplementedError:
                exact = f"{'(out of scope)':>11s}"
            mc, se = mc_trace(name, alpha, obj, args.R, seed=100 + i, **opts)
            shown = name + (f"(n={opts['n']})" if opts else "")
            print(f"{label:8s} {shown:20s} {cost:5d} {exact} {mc:12.4e} +- {se:9.2e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
