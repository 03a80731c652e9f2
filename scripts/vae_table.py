"""Summarize training runs as a Markdown table: one row per run directory holding a log.csv.

    python scripts/vae_table.py RUNS_DIR [--step N] [--out TABLE.md]

For each ``RUNS_DIR/<name>/log.csv`` (written by ``scripts/train_vae.py``) it prints the run
(the directory name), the estimator and its options and its cost (objective evaluations and
gradient evaluations per data point and step, from the record's ``Cost`` for those options;
read from the run's ``checkpoint.npz``, ``-`` when there is none), the step, the mean
training ELBO over the last logging interval, the test ELBO and the test importance-weighted
bound at that step, the gradient variance and the training speed. The row is the last logged
step, or with ``--step N`` the row at step ``N`` (a run without one is an error, so that
every row of the table is at the same step).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference.models.train import read_log  # noqa: E402


def run_identity(run: Path) -> dict | None:
    """The settings saved in ``run/checkpoint.npz`` (estimator, options, ...), or None."""
    import numpy as np

    ckpt = run / "checkpoint.npz"
    if not ckpt.exists():
        return None
    with np.load(ckpt) as st:
        return json.loads(str(st["identity"])) if "identity" in st.files else None


def cost_text(identity: dict | None) -> tuple[str, str]:
    """``(estimator and options, "evals (grads)")`` per data point and step."""
    if identity is None:
        return "-", "-"
    from reference import REGISTRY

    name, opts = identity["estimator"], dict(identity.get("options", {}))
    est = REGISTRY[name]
    K = identity.get("K") or (20 if identity.get("model") == "categorical" else 200)
    cost = est.cost(K, identity.get("C", 2), **opts)
    label = name + "".join(f" {k}={v}" for k, v in sorted(opts.items()))
    if identity.get("learn_control"):
        label += " (learned)"
    return label, f"{cost.evals} ({cost.grad_evals})"


def rows_of(runs: Path, step: int | None = None) -> list[dict]:
    out = []
    for log in sorted(runs.glob("*/log.csv")):
        rows = read_log(log)
        if not rows:
            continue
        if step is None:
            row = rows[-1]
        else:
            at = [r for r in rows if int(r["step"]) == step]
            if not at:
                raise ValueError(f"{log} has no row at step {step} (its steps: "
                                 f"{[int(r['step']) for r in rows]})")
            row = at[0]
        label, cost = cost_text(run_identity(log.parent))
        out.append({"run": log.parent.name, "estimator": label, "cost": cost, **row})
    return out


def table(rows: list[dict]) -> str:
    head = ("| run | estimator | f evals (grads) | steps | train ELBO | test ELBO | test IWAE | "
            "grad var | steps/s |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    body = [f"| {r['run']} | {r['estimator']} | {r['cost']} | {int(r['step'])} | {r['train_elbo']:.2f} | "
            f"{r['test_elbo']:.2f} | {r['test_iwae100']:.2f} | {r['grad_var']:.3g} | "
            f"{r['steps_per_s']:.1f} |" for r in rows]
    return "\n".join([head, *body])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="directory of run directories")
    ap.add_argument("--step", type=int, default=None, help="the row at this step (default: the last)")
    ap.add_argument("--out", help="also write the table here")
    args = ap.parse_args(argv)
    runs = Path(args.runs)
    if not runs.is_dir():
        ap.error(f"{runs} is not a directory")
    if args.step is not None and args.step < 0:
        ap.error(f"--step must be >= 0, got {args.step}")
    try:
        rows = rows_of(runs, args.step)
    except ValueError as exc:
        ap.error(str(exc))
    if not rows:
        ap.error(f"no */log.csv under {runs}")
    text = table(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
