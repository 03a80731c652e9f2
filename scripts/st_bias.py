"""Exact bias and variance of the straight-through family on three small problems.

Estimators: straight-through, ST-Gumbel-Softmax, Gumbel-Rao (Gumbels detached, as in public
code, and the total derivative through them, as in the paper's text; ``m`` in {1, 10, 100}),
GST (gap 1 and the gap ``"p"``) and ReinMax (``tau >= 1`` only). Problems: the categorical toy
(one variable, ``C = 10``, ``alpha = 0``), a random table (``K = 2, C = 3``, seeded logits;
multilinear extension) and the quadratic polynomial-programming toy of the ReinMax paper
(``f = ||X - c||^2 / K`` on ``K = 4`` binary variables written as ``C = 2`` categoricals,
``c = 0.45``, logits ``(0, phi_k)`` with ``phi_k`` seeded standard normals (at ``phi = 0``
straight-through happens to be unbiased on this toy), with the quadratic extension autograd would use; see
:class:`reference.objectives.RowQuadratic`). Temperatures ``tau`` in {0.5, 1, 2}.

Printed per row: cosine between the exact mean and the exact gradient, ``||mean - grad|| /
||grad||``, and the trace of the covariance of one replicate. Straight-through, GST and ReinMax
are exact (enumeration, bound 0); ST-Gumbel-Softmax and Gumbel-Rao are certified (``bound``:
the error bound on every entry of the mean and the covariance).
Run: ``python scripts/st_bias.py`` (about 10 s); one work unit per problem, on a Dask cluster
with ``--workers N`` or ``--scheduler ADDRESS`` (the same table).
"""

from __future__ import annotations

import argparse
import sys
import time

import _cli  # the scripts folder is first on sys.path when a script runs
import numpy as np

import verify
from reference import categorical_toy, get_estimator, random_table
from reference.objectives import RowQuadratic

TAUS = (0.5, 1.0, 2.0)

#: (label, estimator, options without tau, takes tau, smallest tau)
ESTIMATORS = (
    ("ST", "straight_through", {}, False, 0.0),
    ("ST-GS", "st_gumbel_softmax", {}, True, 0.0),
    *((f"GR detached m={m}", "gumbel_rao", {"m": m}, True, 0.0) for m in (1, 10, 100)),
    *((f"GR through m={m}", "gumbel_rao", {"m": m, "detach_gumbels": False}, True, 0.0)
      for m in (1, 10, 100)),
    ("GST gap=1", "gst", {"gap": 1.0}, True, 0.0),
    ("GST gap=p", "gst", {"gap": "p"}, True, 0.0),
    ("ReinMax", "reinmax", {}, True, 1.0),
)


def problems() -> list[tuple[str, np.ndarray, object]]:
    K = 4
    return [
        ("toy C=10", np.zeros((1, 10)), categorical_toy(10)),
        ("random K=2 C=3", 1.5 * np.random.default_rng(3).standard_normal((2, 3)),
         random_table(2, 3, 3)),
        ("quadratic K=4", np.stack([np.zeros(K), np.random.default_rng(7).standard_normal(K)], 1),
         RowQuadratic(np.tile([0.0, 1.0], (K, 1)), 0.45)),
    ]


def problem_rows(index: int) -> tuple[list[dict], float]:
    """The rows of problem ``index`` (every estimator and temperature) and the largest error
    bound among them; a function of its argument only (one work unit)."""
    rows, worst = [], 0.0
    pname, alpha, f = problems()[index]
    grad = verify.exact_gradient("categorical", alpha, f).ravel()
    for tau in TAUS:
        for label, name, opts, takes_tau, tau_min in ESTIMATORS:
            if tau < tau_min:
                continue
            o = {**opts, "tau": tau} if takes_tau else opts
            mo = get_estimator(name).exact_moments("categorical", alpha, f, **o)
            mean = mo.mean.ravel()
            cos = float(mean @ grad / (np.linalg.norm(mean) * np.linalg.norm(grad)))
            rel = float(np.linalg.norm(mean - grad) / np.linalg.norm(grad))
            worst = max(worst, mo.error_bound)
            rows.append({"problem": pname, "tau": tau if takes_tau else None,
                         "estimator": label, "cos": cos, "rel": rel,
                         "var": mo.variance_trace, "bound": mo.error_bound})
    return rows, worst


def units() -> list:
    """One ``verify.parallel.Unit`` per problem, in the table's order."""
    from verify.parallel import Unit

    return [Unit(f"problem={i}", problem_rows, (i,)) for i in range(len(problems()))]


def table(args: argparse.Namespace | None = None) -> tuple[list[dict], float]:
    """Every row, in process or where ``args`` says (``--workers`` / ``--scheduler``)."""
    args = args or argparse.Namespace(workers=None, scheduler=None)
    rows, worst = [], 0.0
    for _, (r, w) in _cli.iter_results(units(), args):
        rows += r
        worst = max(worst, w)
    return rows, worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _cli.add_cluster_flags(parser)
    args = parser.parse_args(argv)
    _cli.check_cluster(parser, args)
    t0 = time.time()
    rows, worst = table(args)
    print("| problem | tau | estimator | cosine | rel. error | variance trace | bound |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    seen = set()
    for r in rows:
        if r["tau"] is None:  # straight-through does not depend on tau: print it once
            if (r["problem"], r["estimator"]) in seen:
                continue
            seen.add((r["problem"], r["estimator"]))
        tau = "-" if r["tau"] is None else f"{r['tau']:g}"
        print(f"| {r['problem']} | {tau} | {r['estimator']} | {r['cos']:.4f} | {r['rel']:.3g} | "
              f"{r['var']:.3g} | {r['bound']:.1g} |")
    print(f"\nlargest certified error bound (entries of mean and covariance): {worst:.1e}; "
          f"{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
