"""Figure 1 of the coupled-estimators paper at reduced scale: the categorical VAE trained with
ARS, ARS+, ARSM, ARSM+ and REINFORCE-LOO at matched cost, for C in {2, 3, 5, 10}.

REINFORCE-LOO runs with ``n = C`` samples (the cost of ARS/ARS+) and with
``n = C(C-1)/2 + 1`` (the cost of ARSM/ARSM+); for C = 2 both are n = 2. Every run is
``reference.models.train.train`` (resumable: running the command again continues). Writes:

* ``OUT/runs/C{C}/{label}/seed{s}/log.csv``: each run's log;
* ``OUT/figure1.csv``: per (C, estimator, step) the mean and standard error over seeds of
  ``train_elbo``, ``test_elbo``, ``test_iwae100`` and ``grad_var``;
* ``OUT/figure1.png``: one row per C, columns train ELBO, test 100-sample bound, gradient
  variance (log scale) against steps, mean +- one standard error (needs matplotlib:
  ``pip install matplotlib``; without it the CSV is still written and the script says so).

Estimators not registered (yet) are reported as skipped, by name. The default size (2 seeds,
300 steps of batch 50, test bound on 200 points) is meant to finish within an hour on two
cores; ``--full`` selects the paper's protocol (5 seeds, batch 100, bound on the whole test
set, ``--steps`` 100000 unless given). Data: dynamically binarized MNIST from the IDX files in
``--data``/``$DGV_DATA`` (without ``train-images-idx3-ubyte``, the t10k images are split into
training and test points, see ``--n-test``), or ``--dataset static``.

Every run (C, estimator, seed) is one work unit (:mod:`verify.parallel`): ``--workers N``
trains them on a local Dask cluster of N processes, ``--scheduler ADDRESS`` on an existing one
(whose workers must import this project and read ``--data`` and write ``--out`` at the same
paths: a shared file system). A run's numbers depend on its seed only, so the CSV is the one
of the in-process run. Interrupted (Ctrl-C, a lost worker or client), the same command
continues: finished runs are read back from their logs, the others resume from their
checkpoints.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for _threads
import _cli  # noqa: E402
from _threads import early_env  # noqa: E402  (before NumPy and Numba)

early_env(sys.argv[1:])

import numpy as np  # noqa: E402

from reference.models.train import TrainConfig, train  # noqa: E402
from reference.registry import REGISTRY  # noqa: E402
from verify.parallel import Unit  # noqa: E402

METRICS = ("train_elbo", "test_elbo", "test_iwae100", "grad_var")


def runs_for(C: int) -> list[tuple[str, str, dict]]:
    """(label, registry name, options) of the paper's comparison for ``C`` categories."""
    n_arsm = C * (C - 1) // 2 + 1
    out = [("ARS", "ars", {}), ("ARS+", "ars_plus", {}), ("ARSM", "arsm", {}), ("ARSM+", "arsm_plus", {}),
           (f"REINFORCE-LOO n={C}", "reinforce_loo", {"n": C})]
    if n_arsm != C:
        out.append((f"REINFORCE-LOO n={n_arsm}", "reinforce_loo", {"n": n_arsm}))
    return out


def aggregate(logs: dict[tuple[int, str], list[list[dict]]]) -> list[dict]:
    rows = []
    for (C, label), seeds in sorted(logs.items()):
        by_step = defaultdict(list)
        for log in seeds:
            for r in log:
                by_step[int(r["step"])].append(r)
        for step in sorted(by_step):
            rs = by_step[step]
            row = {"C": C, "estimator": label, "step": step, "n_seeds": len(rs)}
            for m in METRICS:
                v = np.array([r[m] for r in rs])
                row[f"{m}_mean"] = float(v.mean())
                row[f"{m}_se"] = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
            rows.append(row)
    return rows


def plot(rows: list[dict], Cs: list[int], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): wrote the CSV, no plot")
        return False
    cols = (("train_elbo", "train ELBO"), ("test_iwae100", "test 100-sample bound"),
            ("grad_var", "gradient variance"))
    fig, axes = plt.subplots(len(Cs), 3, figsize=(13, 3.2 * len(Cs)), squeeze=False)
    for i, C in enumerate(Cs):
        labels = sorted({r["estimator"] for r in rows if r["C"] == C})
        for j, (m, title) in enumerate(cols):
            ax = axes[i, j]
            for label in labels:
                rs = [r for r in rows if r["C"] == C and r["estimator"] == label]
                s = np.array([r["step"] for r in rs])
                mu = np.array([r[f"{m}_mean"] for r in rs])
                se = np.array([r[f"{m}_se"] for r in rs])
                ax.plot(s, mu, label=label)
                ax.fill_between(s, mu - se, mu + se, alpha=0.25)
            if m == "grad_var":
                ax.set_yscale("log")
            ax.set_title(f"C={C}: {title}")
            ax.set_xlabel("steps")
        axes[i, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def train_run(cfg: TrainConfig) -> tuple[list[dict], bool, float]:
    """One run (a work unit): its log rows, whether Ctrl-C stopped it, and its wall-clock
    seconds where it ran (data loading, kernel compilation and evaluations included)."""
    t0 = time.perf_counter()
    done = train(cfg)
    return list(done), bool(getattr(done, "interrupted", False)), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=None, help="data directory (default: $DGV_DATA)")
    p.add_argument("--dataset", choices=("static", "dynamic"), default="dynamic")
    p.add_argument("--C", type=int, nargs="+", default=[2, 3, 5, 10])
    p.add_argument("--seeds", type=int, default=None, help="default 2 (5 with --full)")
    p.add_argument("--steps", type=int, default=None, help="default 300 (100000 with --full)")
    p.add_argument("--batch-size", type=int, default=None, help="default 50 (100 with --full)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=None, help="default steps / 6")
    p.add_argument("--iwae-subset", type=int, default=None, help="default 200 (all with --full)")
    p.add_argument("--var-replicates", type=int, default=10)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--full", action="store_true", help="the paper's size (5 seeds, full test set)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for BLAS and Numba (default: all cores)")
    _cli.add_cluster_flags(p)
    args = p.parse_args(argv)
    for name in ("seeds", "steps", "batch_size", "eval_every", "n_test", "threads"):
        _cli.at_least(p, "--" + name.replace("_", "-"), getattr(args, name), 1)
    _cli.at_least(p, "--C", args.C, 2)
    _cli.at_least(p, "--iwae-subset", args.iwae_subset, 0)
    _cli.at_least(p, "--var-replicates", args.var_replicates, 2)
    _cli.positive_finite(p, "--lr", args.lr)
    _cli.check_cluster(p, args)
    _cli.writable_dir(p, "--out", args.out)
    seeds = args.seeds or (5 if args.full else 2)
    steps = args.steps or (100000 if args.full else 300)
    batch = args.batch_size or (100 if args.full else 50)
    eval_every = args.eval_every or max(1, steps // 6)
    iwae_subset = args.iwae_subset if args.iwae_subset is not None else (0 if args.full else 200)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    logs: dict[tuple[int, str], list[list[dict]]] = defaultdict(list)
    skipped: set[str] = set()
    units, what = [], {}
    on_cluster = _cli.on_cluster(args)
    for C in args.C:
        for label, name, opts in runs_for(C):
            if name not in REGISTRY:
                skipped.add(f"{label} ({name})")
                continue
            for seed in range(seeds):
                run_dir = out / "runs" / f"C{C}" / label.replace(" ", "_").replace("=", "") / f"seed{seed}"
                cfg = TrainConfig(out=str(run_dir), data=args.data, model="categorical", estimator=name,
                                  options=opts, C=C, dataset=args.dataset, steps=steps, batch_size=batch,
                                  lr=args.lr, seed=seed, backend=args.backend, eval_every=eval_every,
                                  iwae_subset=iwae_subset, var_replicates=args.var_replicates,
                                  n_test=args.n_test,
                                  # on a cluster the bar counts runs; a worker's own would be lost
                                  progress=not args.no_progress and not on_cluster)
                units.append(Unit(f"C={C} {label} seed {seed}", train_run, (cfg,)))
                what[units[-1].key] = (C, label)
    t0 = time.time()
    print(f"{len(units)} runs ({len(args.C)} values of C x estimators x {seeds} seeds) -> {out / 'runs'}",
          flush=True)
    try:
        # in the units' order, so the seeds of a curve are averaged in the in-process order
        for key, (log, interrupted, seconds) in _cli.iter_results(
                units, args, progress=not args.no_progress and on_cluster):
            run_dir = out / "runs" / f"C{what[key][0]}"
            if interrupted:  # Ctrl-C in process: saved; the same command resumes
                print(f"interrupted ({key}); run the same command again to continue")
                return 130
            logs[what[key]].append(log)
            print(f"[{time.time() - t0:7.0f}s] done {key} (under {run_dir}; {seconds:.1f} s, "
                  f"{log[-1]['steps_per_s']:.2f} steps/s)", flush=True)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if skipped:
        print("skipped (not registered): " + ", ".join(sorted(skipped)))
    rows = aggregate(logs)
    fields = ["C", "estimator", "step", "n_seeds"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "se")]
    with open(out / "figure1.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out / 'figure1.csv'}")
    if rows and plot(rows, [C for C in args.C if any(r["C"] == C for r in rows)], out / "figure1.png"):
        print(f"wrote {out / 'figure1.png'}")
    final = [r for r in rows if r["step"] == max(x["step"] for x in rows if x["C"] == r["C"]
                                                 and x["estimator"] == r["estimator"])]
    for r in final:
        print(f"C={r['C']:<3} {r['estimator']:<26} step {r['step']:>6}"
              f"  train ELBO {r['train_elbo_mean']:9.2f}"
              f"  test bound {r['test_iwae100_mean']:9.2f} +- {r['test_iwae100_se']:.2f}"
              f"  grad var {r['grad_var_mean']:.3g}")
    print(f"total {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
