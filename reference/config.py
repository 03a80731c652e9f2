"""Tunables of the fast backends, in one place (``reset()`` restores the defaults)."""

from __future__ import annotations

import ctypes

#: threads per CUDA block; tests shrink it so that tiny inputs span several blocks
CUDA_THREADS_PER_BLOCK = 128
#: upper bound on CUDA blocks per launch (kernels use grid-stride loops beyond it)
CUDA_MAX_BLOCKS = 65535

_DEFAULTS = {"CUDA_THREADS_PER_BLOCK": 128, "CUDA_MAX_BLOCKS": 65535}


def reset() -> None:
    """Restore every tunable to its default."""
    globals().update(_DEFAULTS)


def gpu_present() -> bool:
    """Whether a CUDA driver can be loaded (checked without importing numba)."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True

