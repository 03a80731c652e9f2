"""Flag checks shared by the scripts: every flag is checked before any work, and a bad one
exits with status 2 and a message naming it (``argparse``'s convention for "could not run").
Also the scripts' ``--workers N`` / ``--scheduler ADDRESS`` flags and the call that runs their
work units through :mod:`verify.parallel` (imported only when a script runs units)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any


def at_least(parser: argparse.ArgumentParser, name: str, value: object, minimum: int) -> None:
    """``value`` (an int, a list of ints, or None for "default") must be >= ``minimum``."""
    values = value if isinstance(value, list) else [value]
    for v in values:
        if v is not None and v < minimum:
            parser.error(f"{name} must be >= {minimum}, got {v}")


def positive_finite(parser: argparse.ArgumentParser, name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        parser.error(f"{name} must be a positive finite number, got {value}")


def finite(parser: argparse.ArgumentParser, name: str, value: float) -> None:
    if not math.isfinite(value):
        parser.error(f"{name} must be finite, got {value}")


def writable_dir(parser: argparse.ArgumentParser, name: str, path: str) -> None:
    """Create ``path`` if needed and check that a file can be written there."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        parser.error(f"{name} {path!r} is not a writable directory: {exc}")


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """``--workers N`` (a local Dask cluster) or ``--scheduler ADDRESS`` (an existing one)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", default=None,
                       help="run the work units on a local Dask cluster of N worker processes "
                            "(needs the dask extra: pip install -e '.[dask]')")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run the work units on the Dask cluster at ADDRESS, e.g. "
                            "tcp://127.0.0.1:8786 (its workers must import this project)")


def check_cluster(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--workers`` >= 1, and Dask importable when either flag is given (exit 2 otherwise)."""
    at_least(parser, "--workers", args.workers, 1)
    if args.workers is not None or args.scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            parser.error("--workers/--scheduler need dask[distributed]: pip install -e '.[dask]'")


def on_cluster(args: argparse.Namespace) -> bool:
    return args.workers is not None or args.scheduler is not None


def iter_results(units: Sequence[Any], args: argparse.Namespace, progress: bool = True,
                 ordered: bool = True) -> Iterator[tuple[str, Any]]:
    """``(key, result)`` of ``units`` (``verify.parallel.Unit``), run where ``args`` says.

    A script's unit functions live in the script, which a Dask worker cannot import (the
    scripts folder is not a package); so their module is sent by value (cloudpickle), as
    ``__main__`` already is. ``ordered``: results in the units' order, each as soon as every
    earlier one is in (the output reads as the in-process run's). The bar: units done, on a
    terminal only.
    """
    from verify.parallel import iter_units

    if on_cluster(args):
        import cloudpickle

        for name in {u.fn.__module__ for u in units}:
            mod = sys.modules.get(name)
            if name != "__main__" and mod is not None and \
                    os.path.dirname(os.path.abspath(getattr(mod, "__file__", "") or "")) == _HERE:
                cloudpickle.register_pickle_by_value(mod)
    yield from iter_units(units, workers=args.workers, scheduler=args.scheduler,
                          progress=progress and sys.stderr.isatty(), ordered=ordered)


_HERE = os.path.dirname(os.path.abspath(__file__))
