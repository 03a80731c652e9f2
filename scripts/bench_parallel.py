"""What a fresh Dask worker pays before its units run fast: the import, then the Numba
compilation and first-time work of the report's rows, against the same rows once warm.

In one fresh process: the time of ``import verify.report``; a first pass over the report's rows
(``verify.report.report_rows``, no CUDA) with the seconds spent in Numba compilation (Numba's
event API, nested compilations counted once); a second pass over the same rows in the same
process. A worker process pays the first pass's extra cost once (kernels stay compiled in
memory for its later units), so a cluster of N new workers pays it up to N times.

Run: ``python scripts/bench_parallel.py [--estimators NAME ...] [--R 2000]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import _cli  # the scripts folder is first on sys.path when a script runs


def compile_seconds(buffer: list) -> tuple[int, float]:
    """``(count, seconds)`` of the outermost compilations in a ``numba:compile`` recording."""
    spans, starts = [], []
    for ts, ev in buffer:
        if ev.is_start:
            starts.append(ts)
        else:
            start = starts.pop()
            if not starts:
                spans.append(ts - start)
    return len(spans), float(sum(spans))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimators", nargs="*", help="only these registry names")
    parser.add_argument("--R", type=int, default=2000, help="replicates of each MC check")
    args = parser.parse_args(argv)
    _cli.at_least(parser, "--R", args.R, 2)
    t = time.perf_counter()
    from numba.core import event

    import verify.report as report
    from reference import REGISTRY

    t_import = time.perf_counter() - t
    unknown = set(args.estimators or []) - set(REGISTRY)
    if unknown:
        parser.error(f"unknown --estimators {sorted(unknown)}")
    with event.install_recorder("numba:compile") as rec:
        t = time.perf_counter()
        cold = report.report_rows(args.estimators, R=args.R, cuda=False)
        t_cold = time.perf_counter() - t
    n_compiled, t_compile = compile_seconds(rec.buffer)
    t = time.perf_counter()
    warm = report.report_rows(args.estimators, R=args.R, cuda=False)
    t_warm = time.perf_counter() - t
    print(f"import verify.report: {t_import:.1f} s")
    print(f"first pass:  {len(cold)} rows in {t_cold:.1f} s, of which Numba compiled "
          f"{n_compiled} functions in {t_compile:.1f} s")
    print(f"second pass: {len(warm)} rows in {t_warm:.1f} s (same process, kernels compiled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
