"""Tunables of the fast backends, in one place (``reset()`` restores the defaults)."""

from __future__ import annotations

#: threads per CUDA block; tests shrink it so that tiny inputs span several blocks
CUDA_THREADS_PER_BLOCK = 128
#: upper bound on CUDA blocks per launch (kernels use grid-stride loops beyond it)
CUDA_MAX_BLOCKS = 65535

_DEFAULTS = {"CUDA_THREADS_PER_BLOCK": 128, "CUDA_MAX_BLOCKS": 65535}


def reset() -> None:
    """Restore every tunable to its default."""
    globals().update(_DEFAULTS)
