"""Exact variances of AR, ARM, DisARM and REINFORCE-LOO on the binary quadratic toy.

``f(z) = sum_k (z_k - t)^2`` with ``t`` in {0.45, 0.49, 0.499, 0.501} (DESIGN.md section 7),
``K`` in {1, 5, 20}, all logits ``phi = 0`` (``p = 1/2``, where the toy's gradient
``p (1 - p) (1 - 2t)`` is largest; change with ``--phi``). Every estimator gets two objective
evaluations per replicate: AR with n = 2 draws averaged, ARM and DisARM with one antithetic
pair, REINFORCE-LOO with 2 samples. Printed: the exact trace of the covariance of one
replicate (no sampling: verify.moments.augment_reinforce's separable closed form, and REINFORCE-LOO's
U-statistic closed form by enumeration of 2**K configurations), and its ratio to
REINFORCE-LOO's. Run: ``python scripts/binary_variance.py``; one work unit per ``(t, K)``
row, on a Dask cluster with ``--workers N`` or ``--scheduler ADDRESS`` (the same table).
"""

from __future__ import annotations

import argparse
import sys
import time

import _cli  # the scripts folder is first on sys.path when a script runs
import numpy as np

from reference import binary_quadratic, get_estimator
from verify.problems import TOY_TS

#: (label, estimator, options): equal cost, two objective evaluations per replicate
ESTIMATORS = (("AR (n=2)", "ar", {"n": 2}), ("ARM", "arm", {"n": 1}),
              ("DisARM", "disarm", {"n": 1}), ("LOO (n=2)", "reinforce_loo", {"n": 2}))
KS = (1, 5, 20)


def variance_row(t: float, K: int, phi: float) -> dict:
    """The row of ``(t, K)``: exact variance traces of every estimator (and the exact gradient's
    norm). No randomness: the row depends on its arguments only."""
    obj = binary_quadratic(K, t)
    params = np.full(K, float(phi))
    row = {"t": t, "K": K}
    for label, name, opts in ESTIMATORS:
        est = get_estimator(name)
        assert est.cost(K, 2, **opts).evals == 2
        m = est.exact_moments("bernoulli", params, obj, **opts)
        row[label] = m.variance_trace
        row["grad"] = float(np.linalg.norm(m.mean))
    return row


def units(phi: float = 0.0, ts: tuple = TOY_TS, ks: tuple = KS) -> list:
    """One ``verify.parallel.Unit`` per row, in the table's order."""
    from verify.parallel import Unit

    return [Unit(f"t={t!r} K={K} phi={phi!r}", variance_row, (t, K, phi)) for t in ts for K in ks]


def variance_table(phi: float = 0.0) -> list[dict]:
    """One row per (t, K), computed in this process."""
    return [u.fn(*u.args) for u in units(phi)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phi", type=float, default=0.0, help="value of every logit (default 0)")
    _cli.add_cluster_flags(parser)
    args = parser.parse_args(argv)
    _cli.finite(parser, "--phi", args.phi)
    _cli.check_cluster(parser, args)
    t0 = time.perf_counter()
    labels = [e[0] for e in ESTIMATORS]
    print(f"Binary toy f(z) = sum_k (z_k - t)^2, phi = {args.phi:g}, two evaluations per replicate")
    print("exact trace of Cov(one replicate); in brackets the ratio to REINFORCE-LOO (n=2)\n")
    head = f"{'t':>6} {'K':>3} {'|grad|':>9} " + " ".join(f"{lab:>22}" for lab in labels)
    print(head)
    print("-" * len(head))
    for _, r in _cli.iter_results(units(args.phi), args):  # each row as soon as it is in
        loo = r[labels[-1]]
        cells = " ".join(f"{r[lab]:11.4e} [{r[lab] / loo:8.3g}]" for lab in labels)
        print(f"{r['t']:6g} {r['K']:3d} {r['grad']:9.3e} {cells}", flush=True)
    print(f"\n({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
