"""Certified variance of REBAR over its temperature and eta, against DisARM and REINFORCE-LOO
at equal cost.

Problems: the binary toy ``f(z) = sum_k (z_k - t)^2`` (``K = 4``, ``phi = 0``, ``t`` in
{0.45, 0.49, 0.499}) and a random table (``K = 4``, random logits; the built-in problem of
``verify.problems``). Equal cost: six objective evaluations per replicate, counting REBAR's
relaxed evaluations: REBAR with ``n = 2`` samples (2 at ``b``, 4 at relaxed points, plus 4
gradients), DisARM with 3 antithetic pairs, REINFORCE-LOO with 6 samples. (Counted in
evaluations at discrete points only, REBAR would get ``n = 6``: divide its variances by 3.)

REBAR's moments are certified (:mod:`verify.moments.rebar`: exact sum over the sample,
randomized QMC over the relaxation, error bound at confidence 1 - 1e-6); the others are exact.
For each temperature the variance is printed at ``eta = 1`` (the relaxation itself as the
control variate) and at the best ``eta``: the estimate is affine in ``eta`` and the RQMC
points are the same for every ``eta``, so the variance trace is a quadratic in ``eta`` whose
minimum comes from three evaluations; the certified moments are then recomputed there.
Run: ``python scripts/rebar_landscape.py`` (about 50 s on one core; ``--quick``: one toy problem).
One work unit per (problem, temperature) row; ``--workers N`` or ``--scheduler ADDRESS`` runs
them on a Dask cluster (the same table).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for _cli when imported
import _cli  # noqa: E402
import numpy as np  # noqa: E402

from reference import binary_quadratic, get_estimator  # noqa: E402
from verify import make_problem  # noqa: E402
from verify.problems import builtin_problems  # noqa: E402

TAUS = (0.1, 0.3, 1.0, 3.0)
REBAR_N = 2
#: equal cost: 6 evaluations of f per replicate
BASELINES = (("DisARM (3 pairs)", "disarm", {"n": 3}), ("LOO (n=6)", "reinforce_loo", {"n": 6}))


def _problems(quick: bool) -> list[tuple[str, object]]:
    ts = (0.49,) if quick else (0.45, 0.49, 0.499)
    out = [(f"toy t={t}", make_problem("bernoulli", np.zeros(4), binary_quadratic(4, t)))
           for t in ts]
    if not quick:
        label, pr = [p for p in builtin_problems("bernoulli") if p[0] == "random table K=4"][0]
        out.append((label, pr))
    return out


def _trace(pr, eta: float, tau: float):
    m = get_estimator("rebar").exact_moments("bernoulli", pr.params, pr.objective, n=REBAR_N,
                                             eta=eta, tau=tau)
    # the bound covers every covariance entry: the trace is within K times it
    return m.variance_trace, pr.params.size * m.error_bound


def row(quick: bool, i: int, tau: float) -> dict:
    """The row of problem ``i`` of :func:`_problems` at temperature ``tau`` (a work unit: it
    depends on its arguments only; REBAR's RQMC points are fixed by the oracle)."""
    label, pr = _problems(quick)[i]
    base = {}
    for name, est, opts in BASELINES:
        e = get_estimator(est)
        assert e.cost(pr.K, 2, **opts).evals == 6
        base[name] = e.exact_moments("bernoulli", pr.params, pr.objective, **opts).variance_trace
    assert get_estimator("rebar").cost(pr.K, 2, n=REBAR_N).evals == 6
    v = {eta: _trace(pr, eta, tau)[0] for eta in (-1.0, 0.0, 1.0)}
    # Var(eta) = a + b eta + c eta^2 on the shared RQMC points
    c = 0.5 * (v[1.0] + v[-1.0]) - v[0.0]
    b = 0.5 * (v[1.0] - v[-1.0])
    eta_star = -b / (2 * c) if c > 0 else 0.0
    v1, e1 = _trace(pr, 1.0, tau)
    vs, es = _trace(pr, eta_star, tau)
    return {"problem": label, "tau": tau, "rebar_eta1": v1, "bound_eta1": e1,
            "eta_star": eta_star, "rebar_best": vs, "bound_best": es,
            "reinforce": v[0.0], **base}


def units(quick: bool = False) -> list:
    """One ``verify.parallel.Unit`` per (problem, tau) row, in the table's order."""
    from verify.parallel import Unit

    return [Unit(f"{label} tau={tau!r} quick={quick}", row, (quick, i, tau))
            for i, (label, _) in enumerate(_problems(quick)) for tau in TAUS]


def landscape(quick: bool = False) -> list[dict]:
    """Every row, computed in this process."""
    return [u.fn(*u.args) for u in units(quick)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one toy problem only")
    _cli.add_cluster_flags(parser)
    args = parser.parse_args(argv)
    _cli.check_cluster(parser, args)
    t0 = time.perf_counter()
    names = [b[0] for b in BASELINES]
    print(f"REBAR (n={REBAR_N}) against DisARM and REINFORCE-LOO, six evaluations of f per "
          "replicate; trace of Cov(one replicate), REBAR's certified (+- bound)\n")
    head = (f"{'problem':<18} {'tau':>5} {'REBAR eta=1':>21} {'best eta':>9} "
            f"{'REBAR best eta':>21} {'REINFORCE':>10} " + " ".join(f"{n:>17}" for n in names))
    print(head)
    print("-" * len(head))
    for _, r in _cli.iter_results(units(args.quick), args):  # in order, each as it is in
        print(f"{r['problem']:<18} {r['tau']:>5g} {r['rebar_eta1']:>10.3g} +- {r['bound_eta1']:<7.1e} "
              f"{r['eta_star']:>9.3f} {r['rebar_best']:>10.3g} +- {r['bound_best']:<7.1e} "
              f"{r['reinforce']:>10.3g} " + " ".join(f"{r[n]:>17.3g}" for n in names), flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s; REINFORCE: REBAR with eta = 0, i.e. n = 2 "
          "samples without baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
