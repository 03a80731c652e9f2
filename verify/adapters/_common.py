"""Checks shared by the framework adapters (NumPy only, so importing it stays cheap)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

DISTS = ("bernoulli", "categorical")


def check_call(params: object, noise: object, objective: object, dist: object,
               options: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """Validate one port call; return float64 ``params`` and the noise as float64 arrays.

    ``noise=None`` asks for a distribution-level call, which needs integer ``R >= 1`` and
    ``seed`` among the options (the framework code draws its own randomness from ``seed``).
    """
    if dist not in DISTS:
        raise ValueError(f"dist must be one of {DISTS}, got {dist!r}")
    arr = np.asarray(params, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("params must be finite")
    if arr.ndim < (1 if dist == "bernoulli" else 2):
        raise ValueError(f"params of a {dist} port must have at least "
                         f"{1 if dist == 'bernoulli' else 2} axes, got shape {arr.shape}")
    if not callable(objective):
        raise TypeError(f"objective must be callable on configurations, got "
                        f"{type(objective).__name__}")
    if noise is None:
        R = options.get("R")
        if isinstance(R, bool) or not isinstance(R, (int, np.integer)) or R < 1:
            raise ValueError(f"a distribution-level call (noise=None) needs an integer R >= 1, "
                             f"got R={R!r}")
        seed = options.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"a distribution-level call (noise=None) needs an integer seed, "
                             f"got seed={seed!r}")
        return arr, None
    if not isinstance(noise, Mapping):
        raise TypeError(f"noise must be a dict of arrays or None, got {type(noise).__name__}")
    out = {}
    for name, value in noise.items():
        a = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"noise[{name!r}] must be finite")
        out[str(name)] = a
    return arr, out


def check_estimates(out: np.ndarray, name: str) -> np.ndarray:
    """The framework's result as a NumPy array: float32 stays float32 (``verify.check_port``
    chooses its tolerance from the port's output dtype), anything else floating becomes
    float64; refuse non-numeric results early and clearly."""
    arr = np.asarray(out)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{name} returned {arr.dtype} estimates, expected floating point")
    return arr if arr.dtype == np.float32 else arr.astype(np.float64)
