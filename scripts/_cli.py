"""Flag checks shared by the scripts: every flag is checked before any work, and a bad one
exits with status 2 and a message naming it (``argparse``'s convention for "could not run")."""

from __future__ import annotations

import argparse
import math
import os


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
