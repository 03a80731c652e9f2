"""Exact variances of the swap family against REINFORCE-LOO at equal cost.

The comparison of the coupled-estimators paper (Dong, Mnih, Tucker 2021, arXiv 2106.08056),
with exact variances instead of training curves: ARS and ARS+ (``C`` evaluations of ``f``)
against REINFORCE-LOO with ``n = C`` samples, and ARSM, ARSM+ and ARSM+CE
(``C(C-1)/2 + 1`` evaluations) against REINFORCE-LOO with ``n = C(C-1)/2 + 1``. For ``C`` in
{2, 3, 4} and ``K`` in {1, 2, 3}, on a random table (seeded, logits ``1.5 N(0, 1)``) and on the
categorical toy (``f(z) = sum_k 0.5 + (z_k + 1)/(30 C)``, the ARSM paper's toy per dimension,
logits 0). Every number is the trace of the exact covariance of one replicate (no sampling).

Run: ``python scripts/swap_variance.py`` (about a minute; the C = 4 conditional-expectation
cells dominate). One work unit per (C, K, problem) line; ``--workers N`` or ``--scheduler
ADDRESS`` computes them on a Dask cluster (the same lines, in the same order).
"""

from __future__ import annotations

import argparse
import itertools
import time

import _cli  # the scripts folder is first on sys.path when a script runs
import numpy as np

from reference import REGISTRY, TableObjective, categorical_toy, random_table


def toy_table(K: int, C: int, R: float = 30.0) -> TableObjective:
    """The categorical toy summed over ``K`` dimensions, as a table."""
    per = categorical_toy(C, R).table()  # (C,)
    grids = np.meshgrid(*([per] * K), indexing="ij")
    return TableObjective(np.sum(grids, axis=0), "categorical")


def problems(K: int, C: int) -> list[tuple[str, np.ndarray, TableObjective]]:
    rng = np.random.default_rng(1000 * K + C)
    return [("random", 1.5 * rng.standard_normal((K, C)), random_table(K, C, seed=K * 10 + C,
                                                                      domain="categorical")),
            ("toy", np.zeros((K, C)), toy_table(K, C))]


def trace(name: str, alpha: np.ndarray, obj: TableObjective, **opts) -> float:
    return REGISTRY[name].exact_moments("categorical", alpha, obj, **opts).variance_trace


def line(C: int, K: int, label: str) -> list[float]:
    """The seven traces of one line (the columns of :func:`main`); the problem is rebuilt from
    ``(K, C, label)``, whose seeds it fixes, so the line does not depend on where it runs."""
    M = C * (C - 1) // 2 + 1
    alpha, obj = next((a, o) for lab, a, o in problems(K, C) if lab == label)
    return [trace("reinforce_loo", alpha, obj, n=C), trace("ars", alpha, obj),
            trace("ars_plus", alpha, obj), trace("reinforce_loo", alpha, obj, n=M),
            trace("arsm", alpha, obj), trace("arsm_plus", alpha, obj),
            trace("arsm_plus_ce", alpha, obj)]


def units(Cs: list[int], Ks: list[int]) -> list:
    """One ``verify.parallel.Unit`` per line, in the table's order."""
    from verify.parallel import Unit

    return [Unit(f"C={C} K={K} {label}", line, (C, K, label))
            for C, K in itertools.product(Cs, Ks) for label in ("random", "toy")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--C", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--K", type=int, nargs="+", default=[1, 2, 3])
    _cli.add_cluster_flags(parser)
    args = parser.parse_args(argv)
    _cli.at_least(parser, "--C", args.C, 2)
    _cli.at_least(parser, "--K", args.K, 1)
    _cli.check_cluster(parser, args)
    cols = ["LOO(n=C)", "ARS", "ARS+", "LOO(n=M)", "ARSM", "ARSM+", "ARSM+CE"]
    print(f"{'problem':8s} {'K':>2s} {'C':>2s} {'M':>2s} " + " ".join(f"{c:>10s}" for c in cols))
    t0 = time.perf_counter()
    rows = []
    todo = units(args.C, args.K)
    for u, (_, v) in zip(todo, _cli.iter_results(todo, args), strict=True):  # in order
        C, K, label = u.args
        M = C * (C - 1) // 2 + 1
        rows.append((label, K, C, v))
        print(f"{label:8s} {K:2d} {C:2d} {M:2d} " + " ".join(f"{x:10.3e}" for x in v),
              flush=True)
    n = len(rows)
    loo_ars = sum(v[0] < min(v[1], v[2]) for *_, v in rows)
    loo_arsm = sum(v[3] < min(v[4], v[5], v[6]) for *_, v in rows)
    def le(a: float, b: float) -> bool:  # up to rounding (ARSM+ is ARSM when K = 1)
        return a <= b * (1 + 1e-9) + 1e-15

    plus_ars = sum(le(v[2], v[1]) for *_, v in rows)
    plus_arsm = sum(le(v[5], v[4]) for *_, v in rows)
    ce_arsm = sum(le(v[6], v[5]) for *_, v in rows)
    print(f"\nLOO(n=C) below ARS and ARS+: {loo_ars}/{n}; LOO(n=M) below ARSM, ARSM+, ARSM+CE: "
          f"{loo_arsm}/{n}")
    print(f"ARS+ <= ARS: {plus_ars}/{n}; ARSM+ <= ARSM: {plus_arsm}/{n}; ARSM+CE <= ARSM+: "
          f"{ce_arsm}/{n}   ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
