"""Input validation shared by the public functions. Kernels never validate.

Large arrays are checked in one pass each (:func:`all_finite`, :func:`count_outside`): a
Numba loop that counts, with no early exit, so that it vectorizes; NumPy's ``isfinite``
then ``all`` make a temporary and a second pass, and a range check by ``min`` and ``max``
two passes. Measured on 2^20 float64 entries in cache, one thread: 0.16 ms against 0.08 ms
for finiteness, 0.19 against 0.10 for a range.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: arrays from this many entries go through the one-pass kernels; smaller ones through NumPy
#: (no compilation for the oracle's small problems, and no dispatch cost for a few entries)
ONE_PASS_MIN = 1 << 12


@njit(cache=True, nogil=True)
def _count_nonfinite(x):
    # x 1-D float: the entries that are NaN or infinite (|v| < inf is False exactly for them)
    finite = 0
    for i in range(x.size):
        finite += abs(x[i]) < np.inf
    return x.size - finite


@njit(cache=True, nogil=True)
def _count_outside(x, lo, hi):
    # x 1-D: the entries not in [lo, hi), NaN included (both comparisons are False for it)
    inside = 0
    for i in range(x.size):
        v = x[i]
        inside += (v >= lo) & (v < hi)
    return x.size - inside


_FLOATS = (np.float64, np.float32)


def all_finite(a: np.ndarray) -> bool:
    """True when no entry of the float array ``a`` (any shape) is NaN or infinite."""
    if a.size >= ONE_PASS_MIN and a.dtype in _FLOATS:
        return _count_nonfinite(a.ravel(order="K")) == 0
    return bool(np.all(np.isfinite(a)))


def count_outside(a: np.ndarray, lo: float, hi: float) -> int:
    """The number of entries of ``a`` (float64, float32 or int64, any shape) outside ``[lo,
    hi)``, NaN counted as outside."""
    if a.size >= ONE_PASS_MIN and a.dtype in (*_FLOATS, np.int64):
        if a.dtype == np.int64:
            lo, hi = int(np.ceil(lo)), int(np.ceil(hi))  # the same integers lie in [lo, hi)
        return int(_count_outside(a.ravel(order="K"), lo, hi))
    return int(a.size - np.count_nonzero((a >= lo) & (a < hi)))


def float_array(x: object, name: str, *, allow_float32: bool = False) -> np.ndarray:
    """Return ``x`` as a finite float64 array (float32 kept where allowed).

    Raises ``ValueError`` for NaN or infinite entries and ``TypeError`` for
    non-numeric input, naming the argument so the caller knows which one.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if allow_float32 and arr.dtype == np.float32:
        out = arr
    else:
        out = arr.astype(np.float64, copy=False)
    if not all_finite(out):
        bad = "NaN" if np.isnan(out).any() else "infinite"
        raise ValueError(f"{name} contains {bad} entries; every entry must be finite")
    return out


def int_config_array(z: object, name: str, K: int, C: int) -> np.ndarray:
    """Return ``z`` as an int64 array of configurations with last axis ``K``, entries in [0, C)."""
    arr = np.asarray(z)
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer category indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.ndim < 1 or arr.shape[-1] != K:
        raise ValueError(f"{name} must have last axis of length K={K}, got shape {arr.shape}")
    if arr.size and count_outside(arr, 0, C):
        raise ValueError(f"{name} entries must lie in [0, {C}), got range [{arr.min()}, {arr.max()}]")
    return arr


def positive_int(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising ``ValueError`` if it is below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_shape(arr: np.ndarray, expected: tuple[int, ...], name: str) -> None:
    """Raise ``ValueError`` unless ``arr.shape == expected``."""
    if tuple(arr.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(arr.shape)}")


def seed_value(seed: object, name: str = "seed") -> int:
    """Return ``seed`` as a non-negative int (what ``np.random.default_rng`` takes), raising
    ``TypeError``/``ValueError`` naming ``name`` instead of NumPy's ``SeedSequence`` error."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed}")
    return int(seed)


def shape_tuple(shape: object, name: str) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of non-negative ints (``TypeError``/``ValueError`` naming
    ``name`` otherwise: ``np.zeros`` would say only "cannot be interpreted as an integer")."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or any(
            isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in shape):
        raise TypeError(f"{name} must be a tuple of integers, got {shape!r}")
    if any(s < 0 for s in shape):
        raise ValueError(f"{name} must not have negative entries, got {tuple(shape)}")
    return tuple(int(s) for s in shape)


def finite_scalar(x: object, name: str) -> float:
    """Return ``x`` as one finite float: ``float_array``'s checks, and a ``TypeError`` naming
    ``name`` for an array of more than one number (``float()`` would say only "only 0-dimensional
    arrays can be converted") or a bool (``True`` is not a temperature)."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, got {x!r}")
    arr = float_array(x, name)
    if arr.ndim:
        raise TypeError(f"{name} must be a single number, got an array of shape {arr.shape}")
    return float(arr)
