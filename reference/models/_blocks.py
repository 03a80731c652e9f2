"""The default of the ops interface's blocks of work: one worker, tasks run in order.

:class:`reference.models.ops.CpuOps` overrides both methods to run the blocks on its own
threads; the NumPy reference and the CUDA backend run everything in the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any


class SerialBlocks:
    """``workers = 1``; ``blocks(n)`` is the one block ``[(0, n)]``; ``run(tasks)`` calls the
    tasks in order and returns their results; ``session()`` changes nothing."""

    workers = 1

    def session(self) -> AbstractContextManager:
        """A context for one training step's work (see :meth:`CpuOps.session`)."""
        return nullcontext()

    def blocks(self, n: int) -> list[tuple[int, int]]:
        """Ranges ``(lo, hi)`` that cover ``range(n)`` in order, one per block of work."""
        return [(0, n)]

    def run(self, tasks: Sequence[Callable[[], Any]]) -> list:
        """The results of ``tasks`` (callables without arguments), in their order."""
        return [task() for task in tasks]
