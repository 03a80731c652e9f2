"""Exact variances of multi-sample estimators at equal objective evaluations.

For ``C`` in {2, 3, 5}: the categorical toy (``f(z) = sum_k 0.5 + (z_k + 1)/(30 C)``, logits 0,
the ARSM paper's toy per dimension) with ``K = 1`` and ``K = 2``, and a random table with
``K = 2`` (seeded, logits ``1.5 N(0, 1)``). The budget is ARSM+'s,
``M = C(C-1)/2 + 1`` evaluations of ``f``: REINFORCE-LOO with ``n = M`` i.i.d. samples, ARSM+
(at most ``M`` distinct evaluations), and the two without-replacement estimators with
``n_wor = min(M, C**K, 8)`` distinct samples (``unord``'s ``MAX_N`` is 8, and a joint space of
``C**K < M`` configurations is exhausted with fewer evaluations, which makes the estimate
exact), next to REINFORCE-LOO with the same ``n_wor``, and CARMS with ``n = M`` antithetic
samples (``M`` evaluations, at most ``M`` distinct; its oracle's cost does not grow with ``n``).
Every number is the trace of the exact covariance of one replicate (no sampling).

Run: ``python scripts/multi_sample_variance.py`` (about 12 minutes on two shared cores, almost
all in the ``C = 5`` random-table row's 1.08 million 8-subsets); one work unit per ``(C,
problem)`` row, on a Dask cluster with ``--workers N`` or ``--scheduler ADDRESS`` (the same
table, each row printed as soon as it and every earlier one are in). ``--only carms`` (any of
the column names ``loo_m arsm_plus carms unord wor loo_nw``) computes only those columns and
prints ``-`` for the others (the ``C = 5`` rows' CARMS column takes seconds).
"""

from __future__ import annotations

import argparse
import time

import _cli  # the scripts folder is first on sys.path when a script runs
import numpy as np

from reference import REGISTRY, TableObjective, categorical_toy, random_table
from reference.estimators.multi_sample.numpy_reference import MAX_N


def toy_table(K: int, C: int, R: float = 30.0) -> TableObjective:
    """The categorical toy summed over ``K`` dimensions, as a table."""
    per = categorical_toy(C, R).table()  # (C,)
    grids = np.meshgrid(*([per] * K), indexing="ij")
    return TableObjective(np.sum(grids, axis=0), "categorical")


def problems(C: int) -> list[tuple[str, int, np.ndarray, TableObjective]]:
    rng = np.random.default_rng(2000 + C)
    return [("toy", 1, np.zeros((1, C)), toy_table(1, C)),
            ("toy", 2, np.zeros((2, C)), toy_table(2, C)),
            ("random", 2, 1.5 * rng.standard_normal((2, C)),
             random_table(2, C, seed=20 + C, domain="categorical"))]


def trace(name: str, alpha: np.ndarray, obj: TableObjective, **opts) -> float:
    return REGISTRY[name].exact_moments("categorical", alpha, obj, **opts).variance_trace


#: the table's columns: name -> (registry record, options given (M, nw))
COLUMNS = {
    "loo_m": ("reinforce_loo", lambda M, nw: {"n": M}),
    "arsm_plus": ("arsm_plus", lambda M, nw: {}),
    "carms": ("carms", lambda M, nw: {"n": M}),
    "unord": ("unord", lambda M, nw: {"n": max(nw, 2)}),
    "wor": ("reinforce_wor", lambda M, nw: {"n": nw}),
    "loo_nw": ("reinforce_loo", lambda M, nw: {"n": max(nw, 2)}),
}


def row(C: int, index: int, only: tuple[str, ...] | None = None) -> tuple:
    """Row ``index`` of ``problems(C)``: its label, sizes and the exact variance traces of
    :data:`COLUMNS` (``None`` for a column left out by ``only``). No randomness beyond the
    problem's own seed: the row depends on its arguments only."""
    M = C * (C - 1) // 2 + 1
    label, K, alpha, obj = problems(C)[index]
    nw = min(M, C**K, MAX_N)
    v = [trace(name, alpha, obj, **opts(M, nw)) if only is None or col in only else None
         for col, (name, opts) in COLUMNS.items()]
    return label, K, C, M, nw, v


def units(Cs: list[int], only: tuple[str, ...] | None = None) -> list:
    """One ``verify.parallel.Unit`` per row, in the table's order."""
    from verify.parallel import Unit

    return [Unit(f"C={C} problem={i}", row, (C, i, only)) for C in Cs for i in range(3)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--C", type=int, nargs="+", default=[2, 3, 5])
    parser.add_argument("--only", nargs="+", choices=list(COLUMNS), default=None,
                        help="compute only these columns (the others print '-')")
    _cli.add_cluster_flags(parser)
    args = parser.parse_args(argv)
    _cli.at_least(parser, "--C", args.C, 2)
    _cli.check_cluster(parser, args)
    only = None if args.only is None else tuple(args.only)
    cols = ["LOO(n=M)", "ARSM+", "CARMS(n=M)", "UNORD", "WOR", "LOO(n=nw)"]
    print(f"{'problem':8s} {'K':>2s} {'C':>2s} {'M':>3s} {'nw':>3s} "
          + " ".join(f"{c:>10s}" for c in cols))
    t0 = time.perf_counter()
    for _, (label, K, C, M, nw, v) in _cli.iter_results(units(args.C, only), args):
        print(f"{label:8s} {K:2d} {C:2d} {M:3d} {nw:3d} "
              + " ".join(f"{'-':>10s}" if x is None else f"{x:10.3e}" for x in v), flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
