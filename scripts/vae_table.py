"""Summarize training runs as a Markdown table: one row per run directory holding a log.csv.

    python scripts/vae_table.py RUNS_DIR [--out TABLE.md]

For each ``RUNS_DIR/<name>/log.csv`` (written by ``scripts/train_vae.py``) it prints the
estimator (the directory name), the last logged step, the mean training ELBO over the last
logging interval, the test ELBO and the test importance-weighted bound at that step, the
gradient variance and the training speed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference.models.train import read_log  # noqa: E402


def rows_of(runs: Path) -> list[dict]:
    out = []
    for log in sorted(runs.glob("*/log.csv")):
        rows = read_log(log)
        if not rows:
            continue
        last = rows[-1]
        out.append({"run": log.parent.name, **last})
    return out


def table(rows: list[dict]) -> str:
    head = ("| run | steps | train ELBO | test ELBO | test IWAE | grad var | steps/s |\n"
            "| --- | --- | --- | --- | --- | --- | --- |")
    body = [f"| {r['run']} | {int(r['step'])} | {r['train_elbo']:.2f} | {r['test_elbo']:.2f} | "
            f"{r['test_iwae100']:.2f} | {r['grad_var']:.3g} | {r['steps_per_s']:.1f} |" for r in rows]
    return "\n".join([head, *body])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="directory of run directories")
    ap.add_argument("--out", help="also write the table here")
    args = ap.parse_args(argv)
    runs = Path(args.runs)
    if not runs.is_dir():
        ap.error(f"{runs} is not a directory")
    rows = rows_of(runs)
    if not rows:
        ap.error(f"no */log.csv under {runs}")
    text = table(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
