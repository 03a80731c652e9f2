"""The verification report: every registered estimator on the built-in problems.

``python -m verify`` prints one row per (estimator, distribution, option set, problem):
exact bias (max abs over entries, against the exact gradient of the record's own target,
``Estimator.target_gradient``: ``E_q[f]`` for most, VIMCO's multi-sample bound for ``vimco``;
the row's ``target`` field names it), exact variance (trace of the covariance), objective
evaluations per replicate, the Monte Carlo check of the NumPy reference against the exact
moments, and whether the NumPy, CPU and CUDA backends agree on shared noise.
``--json PATH`` writes the same rows as a JSON list of objects.
``--workers N`` computes the rows on a local Dask cluster of N processes, ``--scheduler
ADDRESS`` on an existing one (``verify.parallel``; the rows, their order and their numbers are
those of the in-process run, since row ``i`` seeds its checks with ``seed + i``).
``--results DIR`` writes every row to its own file in DIR as it finishes; the same command
run again with the same DIR computes only the rows not there yet (resuming an interrupted
report; a DIR written with other ``--R``/``--seed``/``--R-shared`` is refused).

Without a GPU, the CUDA backend runs under the Numba CUDA simulator in a subprocess (the
simulator must be chosen before numba is imported, and this process keeps the real target).
A row whose CUDA backend could not be checked (numba-cuda missing, the simulator subprocess
failed) is not ok unless ``--no-cuda`` says that CUDA is not wanted: the report never passes
what it did not check.

Exit status: 0 every row ok; 1 some check failed; 2 could not run (bad arguments, an
unwritable ``--json`` path, ``--workers``/``--scheduler`` without Dask installed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from reference import REGISTRY
from reference._validate import seed_value
from reference.config import gpu_present
from reference.contract import Estimator

from .exact import Problem
from .port import backend_port, check_port, mc_check
from .problems import builtin_problems

__all__ = ["report_rows", "main"]

#: bias allowed for an estimator that claims to be unbiased (exact moments: rounding only)
UNBIASED_TOL = 1e-10


def _cases(names: list[str] | None) -> Iterator[tuple[Estimator, str, dict, str, Problem]]:
    """Every row's case, in the order of :func:`_case_refs` (which defines it)."""
    problems: dict[str, list] = {}
    for _, name, dist, oi, j in _case_refs(names):
        est = REGISTRY[name]
        if dist not in problems:
            problems[dist] = builtin_problems(dist)
        label, problem = problems[dist][j]
        yield est, dist, dict(est.examples[oi]), label, problem


def _key(est: Estimator, dist: str, opts: dict, label: str) -> str:
    return f"{est.name}|{dist}|{json.dumps(opts, sort_keys=True, default=repr)}|{label}"


def _agree(est: Estimator, dist: str, opts: dict, problem: Problem, backend: str,
           R_shared: int, seed: int) -> bool:
    try:
        rep = check_port(backend_port(est, backend, dist), est, problem, R_shared=R_shared,
                         seed=seed, distribution=False, **opts)
    except Exception as exc:  # a crash is a disagreement, reported as such
        print(f"  {backend} backend raised {type(exc).__name__}: {exc}", file=sys.stderr)
        return False
    return rep.samples_agree


def cuda_agreement(names: list[str] | None, R_shared: int, seed: int) -> dict[str, bool]:
    """``{row key: CUDA agrees with NumPy}`` computed in this process."""
    return {_key(est, dist, opts, label): _agree(est, dist, opts, pr, "cuda", R_shared, seed)
            for est, dist, opts, label, pr in _cases(names)}


def _cuda_results(names: list[str] | None, R_shared: int, seed: int) -> tuple[str, dict]:
    try:
        import numba_cuda  # noqa: F401
    except ImportError:
        return "not installed", {}
    if gpu_present():
        return "gpu", cuda_agreement(names, R_shared, seed)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    cmd = [sys.executable, "-m", "verify.report", "--cuda-only", "--R-shared", str(R_shared),
           "--seed", str(seed)] + (["--estimators", *names] if names else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        return "simulator (failed)", {}
    try:
        return "simulator", json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        sys.stderr.write(out.stdout[-2000:] + out.stderr[-2000:])
        return "simulator (no result)", {}


def _case_refs(names: list[str] | None) -> Iterator[tuple[int, str, str, int, int]]:
    """``(row index, estimator name, distribution, option-set index, problem index)`` of every
    row, in the order of :func:`_cases`: plain data from which a worker rebuilds its case."""
    i = 0
    for est in REGISTRY.values():
        if names and est.name not in names:
            continue
        for dist in est.distributions:
            n_problems = len(builtin_problems(dist))
            for oi in range(len(est.examples)):
                for j in range(n_problems):
                    yield i, est.name, dist, oi, j
                    i += 1


def _row(i: int, name: str, dist: str, oi: int, j: int, R: int, seed: int, R_shared: int,
         cuda_mode: str, cuda_agrees: bool | None) -> dict[str, Any]:
    """Row ``i`` of the report (see :func:`_case_refs`); ``cuda_agrees`` is the CUDA backend's
    agreement computed beforehand, ``None`` where it was not checked. Seeds: ``seed + i``."""
    est = REGISTRY[name]
    opts = dict(est.examples[oi])
    label, pr = builtin_problems(dist)[j]
    t0 = time.perf_counter()
    m = est.exact_moments(dist, pr.params, pr.objective, **opts)
    # the record's own target (E_q[f] unless it declares another, e.g. VIMCO's bound)
    grad = est.target_gradient(dist, pr.params, pr.objective, **opts)
    bias = float(np.abs(m.bias(grad)).max())
    mc = mc_check(est, pr, R=R, seed=seed + i, backend="numpy", moments=m, **opts)
    agree = {"cpu": _agree(est, dist, opts, pr, "cpu", R_shared, seed + i)}
    if cuda_agrees is not None:
        agree["cuda"] = bool(cuda_agrees)
    cost = est.cost(pr.K, pr.C, **opts)
    return {
        "estimator": est.name,
        "distribution": dist,
        "problem": label,
        "options": opts,
        "unbiased": est.unbiased,
        "target": est.target,
        "bias_max_abs": bias,
        "variance_trace": m.variance_trace,
        "evals_per_replicate": cost.evals,
        "grad_evals_per_replicate": cost.grad_evals,
        "mc_check": "pass" if mc.passed else "fail",
        "mc_detail": "" if mc.passed else mc.message,
        "backends_agree": all(agree.values()),
        "backends_checked": ["numpy", *agree],
        "cuda_mode": cuda_mode,
        "moment_method": m.method,
        "moment_error_bound": m.error_bound,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def report_rows(names: list[str] | None = None, R: int = 2000, seed: int = 0,
                R_shared: int = 32, cuda: bool = True, workers: int | None = None,
                scheduler: str | None = None, progress: bool = False,
                results: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Compute every row of the report (see the module docstring), one dict per row in
    registry order.

    The CUDA agreement is computed first, once, in this process (or its simulator
    subprocess). The rows are then independent work units (:mod:`verify.parallel`): run here
    by default, on a local Dask cluster of ``workers`` processes, or on the cluster at
    ``scheduler``. Row ``i`` seeds its checks with ``seed + i`` wherever it runs, so every
    mode gives the same rows (up to the ``seconds`` field), in the same order. ``results``: a
    directory where each row is stored as it finishes and from which the rows already there
    are read back instead of being computed (:class:`verify.parallel.ResultStore`).
    """
    from .parallel import Unit, run_units

    if names is not None:
        unknown = sorted(set(names) - set(REGISTRY))
        if unknown:  # else they would be skipped: an empty report that fails nothing
            raise ValueError(f"unknown estimators {unknown}; registered: {sorted(REGISTRY)}")
    seed_value(seed)
    if isinstance(R, bool) or not isinstance(R, (int, np.integer)) or R < 2:
        raise ValueError(f"R must be an integer >= 2, got {R!r}")
    if isinstance(R_shared, bool) or not isinstance(R_shared, (int, np.integer)) or R_shared < 1:
        raise ValueError(f"R_shared must be an integer >= 1, got {R_shared!r}")
    if cuda:
        cuda_mode, cuda_ok = _cuda_results(names, min(R_shared, 4), seed)
        if cuda_mode != "gpu":
            from reference import config
            config.reset()
    else:
        cuda_mode, cuda_ok = "off", {}
    units = []
    labels: dict[str, list[str]] = {}
    for i, name, dist, oi, j in _case_refs(names):
        est = REGISTRY[name]
        if dist not in labels:
            labels[dist] = [label for label, _ in builtin_problems(dist)]
        key = _key(est, dist, dict(est.examples[oi]), labels[dist][j])
        units.append(Unit(f"{i}|{key}", _row, (i, name, dist, oi, j, R, seed, R_shared,
                                                 cuda_mode, cuda_ok.get(key))))
    return run_units(units, workers=workers, scheduler=scheduler, progress=progress, store=results)


def row_ok(row: dict[str, Any]) -> bool:
    """A row passes when its MC check passes, backends agree, and a claimed-unbiased
    estimator has no bias beyond rounding (plus the moments' own error bound)."""
    unbiased_ok = (not row["unbiased"]) or \
        row["bias_max_abs"] <= UNBIASED_TOL + row["moment_error_bound"]
    cuda_ok = row["cuda_mode"] == "off" or "cuda" in row["backends_checked"]
    return row["mc_check"] == "pass" and row["backends_agree"] and unbiased_ok and cuda_ok


def format_table(rows: list[dict[str, Any]]) -> str:
    head = ["estimator", "dist", "options", "problem", "unbiased", "bias_max_abs", "var_trace",
            "moments", "evals", "mc_check", "backends", "ok"]
    body = []
    for r in rows:
        opts = ",".join(f"{k}={v}" for k, v in r["options"].items())
        backends = ("agree" if r["backends_agree"] else "DIFFER") + \
            f" ({'/'.join(r['backends_checked'])})"
        if r["cuda_mode"] != "off" and "cuda" not in r["backends_checked"]:
            backends += f", CUDA NOT CHECKED ({r['cuda_mode']})"
        body.append([r["estimator"], r["distribution"], opts, r["problem"],
                     "yes" if r["unbiased"] else "no", f"{r['bias_max_abs']:.2e}",
                     f"{r['variance_trace']:.4g}",
                     "exact" if r["moment_error_bound"] == 0 else f"±{r['moment_error_bound']:.1e}",
                     str(r["evals_per_replicate"]), r["mc_check"],
                     backends, "ok" if row_ok(r) else "FAIL"])
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as a JSON list")
    parser.add_argument("--estimators", nargs="*", help="only these registry names")
    parser.add_argument("--R", type=int, default=2000, help="replicates of each MC check")
    parser.add_argument("--R-shared", type=int, default=32,
                        help="replicates compared between backends on shared noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA backend")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="compute the rows on a local Dask cluster of N worker processes "
                            "(needs the dask extra)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="compute the rows on the Dask cluster at ADDRESS, e.g. "
                            "tcp://127.0.0.1:8786 (its workers must import this project)")
    parser.add_argument("--results", metavar="DIR",
                        help="store each row in DIR as it finishes; run again with the same DIR "
                             "to compute only the rows not stored yet")
    parser.add_argument("--cuda-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.estimators or []) - set(REGISTRY)
    if unknown:
        parser.error(f"unknown estimators {sorted(unknown)}; registered: {sorted(REGISTRY)}")
    if args.cuda_only:  # the simulator subprocess: print the agreement map as one JSON line
        from reference import config
        config.CUDA_THREADS_PER_BLOCK = 4
        config.CUDA_MAX_BLOCKS = 3
        print(json.dumps(cuda_agreement(args.estimators, args.R_shared, args.seed)))
        return 0
    if args.json:
        try:  # fail before the work, not after it
            with open(args.json, "a"):
                pass
        except OSError as exc:
            print(f"python -m verify: cannot write --json {args.json}: {exc}", file=sys.stderr)
            return 2
    if args.results:
        from .parallel import ResultStore
        try:  # fail before the work, not after it
            results: ResultStore | None = ResultStore(args.results)
        except ValueError as exc:
            print(f"python -m verify: --results: {exc}", file=sys.stderr)
            return 2
    else:
        results = None
    if args.R < 2 or args.R_shared < 1:
        parser.error("--R must be >= 2 and --R-shared >= 1")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    on_dask = args.workers is not None or args.scheduler is not None
    if on_dask:
        try:  # fail before the CUDA check, not after it
            import distributed  # noqa: F401
        except ImportError:
            print('python -m verify: --workers/--scheduler need dask[distributed]: pip install '
                  '"discrete-grad-verify[dask]"', file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    rows = report_rows(args.estimators, args.R, args.seed, args.R_shared, not args.no_cuda,
                       workers=args.workers, scheduler=args.scheduler,
                       progress=on_dask and sys.stderr.isatty(), results=results)
    print(format_table(rows))
    failed = [r for r in rows if not row_ok(r)]
    for r in failed:
        if r["mc_detail"]:
            print(f"\n{r['estimator']} / {r['problem']}:\n{r['mc_detail']}")
    print(f"\n{len(rows)} rows, {len(rows) - len(failed)} ok, {len(failed)} failing; "
          f"CUDA: {rows[0]['cuda_mode'] if rows else 'n/a'}; {time.perf_counter() - t0:.1f} s")
    if rows and rows[0]["cuda_mode"] not in ("off", "gpu", "simulator"):
        print(f"CUDA was not checked ({rows[0]['cuda_mode']}): every row fails; pass --no-cuda to "
              "run the report without the CUDA backend")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1, default=repr)  # repr: option objects (surrogates)
        print(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
