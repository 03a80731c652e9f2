"""Train the categorical or binary VAE with any registered estimator; writes OUT/log.csv.

Example (static binarized MNIST, REINFORCE-LOO with 10 samples, 2000 steps)::

    python scripts/train_vae.py --model categorical --C 10 --estimator reinforce_loo \\
        --option n=10 --steps 2000 --dataset static --data /path/to/data --out runs/loo

The data directory (``--data`` or ``$DGV_DATA``) holds ``binarized_mnist.npz`` (static) or the
MNIST IDX images (dynamic binarization). Running the same command again resumes from
OUT/checkpoint.npz. ``--backend cuda`` trains on a GPU with the Numba CUDA kernels.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for _threads
import _cli  # noqa: E402
from _threads import early_env  # noqa: E402  (before NumPy and Numba)

early_env(sys.argv[1:])

from reference.models.train import TrainConfig, train  # noqa: E402


def parse_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option takes KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        pass
    try:  # nan, inf: a number, so that the option's own check names it as not finite
        return key, float(value)
    except ValueError:
        return key, value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("categorical", "binary"), default="categorical")
    p.add_argument("--estimator", default="reinforce_loo", help="registered estimator name")
    p.add_argument("--option", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                   help="estimator option, e.g. n=10 (repeatable)")
    p.add_argument("--C", type=int, default=10, help="categories (categorical model)")
    p.add_argument("--K", type=int, default=None, help="latent variables (default 20 / 200)")
    p.add_argument("--linear", action="store_true", help="binary model: the linear VAE")
    p.add_argument("--dataset", choices=("static", "dynamic"), default=None,
                   help="default: dynamic for categorical (as in the paper), static for binary")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="data directory (default: $DGV_DATA)")
    p.add_argument("--out", required=True, help="output directory (log.csv, checkpoint.npz)")
    p.add_argument("--backend", choices=("cpu", "cuda", "numpy"), default="cpu")
    p.add_argument("--gpu", action="store_true", help="same as --backend cuda")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--elbo-subset", type=int, default=0, help="test points for test_elbo (0: all)")
    p.add_argument("--iwae-subset", type=int, default=1000, help="test points for test_iwae100 (0: all)")
    p.add_argument("--iwae-samples", type=int, default=100)
    p.add_argument("--var-replicates", type=int, default=20)
    p.add_argument("--var-batch", type=int, default=0, help="points in the variance batch (0: batch size)")
    p.add_argument("--n-test", type=int, default=1000,
                   help="dynamic data without a train IDX file: test points split off t10k")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--learn-control", action="store_true",
                   help="nvil, rebar, relax: learn the baseline network and (c, v) / eta / the "
                        "surrogate while training (reference.models.controls)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for BLAS and Numba (default: all cores)")
    return p


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every flag checked before any data is read or any kernel compiled (exit 2 naming it)."""
    from reference import REGISTRY

    for name in ("steps", "batch_size", "eval_every", "iwae_samples", "n_test", "threads"):
        _cli.at_least(parser, "--" + name.replace("_", "-"), getattr(args, name), 1)
    for name in ("elbo_subset", "iwae_subset", "var_batch"):
        _cli.at_least(parser, "--" + name.replace("_", "-"), getattr(args, name), 0)
    _cli.at_least(parser, "--C", args.C, 2)
    _cli.at_least(parser, "--K", args.K, 1)
    _cli.at_least(parser, "--var-replicates", args.var_replicates, 2)
    _cli.at_least(parser, "--seed", args.seed, 0)
    _cli.positive_finite(parser, "--lr", args.lr)
    if args.estimator not in REGISTRY:
        parser.error(f"unknown --estimator {args.estimator!r}; registered: {sorted(REGISTRY)}")
    est = REGISTRY[args.estimator]
    dist = "categorical" if args.model == "categorical" else "bernoulli"
    if dist not in est.distributions:
        parser.error(f"--estimator {args.estimator} takes {est.distributions}, not the "
                     f"{args.model} model's {dist} latents")
    try:
        est.options(**dict(args.option))
    except (TypeError, ValueError) as exc:
        parser.error(f"--option: {exc}")
    if args.learn_control:
        from reference.models.controls import LEARNED

        if args.estimator not in LEARNED:
            parser.error(f"--learn-control: {args.estimator} has no learned part; those that do: "
                         f"{sorted(LEARNED)}")
        fixed = {"nvil": ("baseline", "c", "v"), "relax": ("surrogate",)}.get(args.estimator, ())
        given = [k for k, _ in args.option if k in fixed]
        if given:
            parser.error(f"--learn-control learns {', '.join(fixed)}: drop --option {given[0]}")
    _cli.writable_dir(parser, "--out", args.out)  # before hours of training


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        out=args.out, data=args.data, model=args.model, estimator=args.estimator,
        options=dict(args.option), C=args.C, K=args.K, nonlinear=not args.linear, dataset=args.dataset,
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        backend="cuda" if args.gpu else args.backend, dtype=args.dtype, eval_every=args.eval_every,
        elbo_subset=args.elbo_subset, iwae_subset=args.iwae_subset, iwae_samples=args.iwae_samples,
        var_replicates=args.var_replicates, var_batch=args.var_batch, n_test=args.n_test,
        progress=not args.no_progress, learn_control=args.learn_control)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(parser, args)
    cfg = config_from_args(args)
    try:
        rows = train(cfg, log=sys.stdout)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 130 if getattr(rows, "interrupted", False) else 0  # 130: stopped by Ctrl-C


if __name__ == "__main__":
    sys.exit(main())
