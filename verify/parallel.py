"""Run independent work units in process or on a Dask cluster, with the same results.

A :class:`Unit` is a picklable call ``fn(*args, **kwargs)`` with a stable string ``key``.
:func:`run_units` runs a list of them

* in this process (the default: nothing is started, Dask is not imported),
* on a local Dask cluster of ``workers`` single-threaded worker processes
  (``distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)``),
  started for the call and closed after it, or
* on an existing scheduler at ``scheduler`` (``"tcp://host:8786"``; ``dask scheduler`` /
  ``dask worker``), whose workers must be able to import this project.

Results stream back as units finish (:func:`iter_units`, ``distributed.as_completed``);
:func:`run_units` puts them back in the order of the input list. Before a unit runs, the global
``random`` and ``numpy.random`` generators are seeded from :func:`unit_seed` of its key (and
restored afterwards), so that a unit that draws from them gets the same numbers whichever
worker runs it and in whatever order; units should still prefer a generator seeded from their
own identity. A unit that raises is run again, at most ``retries`` more times (Dask's
``client.submit(..., retries=...)``; the same count in process), and the last error is raised
if every attempt fails.

Dask is an optional extra: ``pip install "discrete-grad-verify[dask]"``.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Unit", "iter_units", "run_units", "unit_seed"]

#: further attempts after a unit raises
RETRIES = 2


@dataclass(frozen=True)
class Unit:
    """One independent piece of work: ``fn(*args, **kwargs)``, identified by ``key``.

    ``fn`` and the arguments must be picklable (a module-level function, plain data) for the
    Dask modes; ``key`` must be unique within a sweep and must not depend on scheduling.
    """

    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def unit_seed(key: str) -> int:
    """A seed in ``[0, 2**32)`` derived from ``key`` alone (SHA-256; stable across processes,
    machines and Python versions, unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


def _call(unit: Unit) -> Any:
    """Run ``unit`` with the global generators seeded from its key, restoring them after."""
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    seed = unit_seed(unit.key)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator, for units that use it
    random.seed(seed)
    try:
        return unit.fn(*unit.args, **unit.kwargs)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)


def _call_with_retries(unit: Unit, retries: int) -> Any:
    for attempt in range(retries + 1):
        try:
            return _call(unit)
        except Exception:
            if attempt == retries:
                raise
    raise AssertionError("unreachable")


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "running on Dask (workers= or scheduler=) needs dask[distributed]: "
            'pip install "discrete-grad-verify[dask]" (or "dask[distributed]" tqdm)') from exc
    return distributed


def _progress(total: int, show: bool) -> Any:
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None  # no bar without tqdm; the work itself does not need it
    return tqdm(total=total, unit="unit")


def iter_units(units: Sequence[Unit], workers: int | None = None, scheduler: str | None = None,
               retries: int = RETRIES, progress: bool = False) -> Iterator[tuple[str, Any]]:
    """Yield ``(key, result)`` for every unit, in the order the units finish.

    In process (``workers`` and ``scheduler`` both ``None``) that is the input order. With
    ``workers=N`` a local cluster of ``N`` processes is started for the call; with
    ``scheduler=ADDRESS`` the units go to that cluster. ``progress`` shows a ``tqdm`` bar on
    stderr. Raises ``ValueError`` on duplicate keys or on both modes at once, and the unit's own
    exception when it fails ``retries + 1`` times (the remaining units are then cancelled).
    """
    keys = [u.key for u in units]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"unit keys must be unique; repeated: {dup[:5]}")
    if workers is not None and scheduler is not None:
        raise ValueError("give workers= or scheduler=, not both")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    bar = _progress(len(units), progress)
    try:
        if workers is None and scheduler is None:
            for u in units:
                result = _call_with_retries(u, retries)
                if bar is not None:
                    bar.update(1)
                yield u.key, result
            return
        distributed = _import_distributed()
        cluster = None
        if workers is not None:
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                               processes=True, dashboard_address=None)
        client = distributed.Client(cluster if cluster is not None else scheduler)
        try:
            sweep = uuid.uuid4().hex[:12]  # Dask keys: unique per sweep, never reused results
            futures = {}
            for u in units:
                dask_key = f"unit-{hashlib.sha1(u.key.encode()).hexdigest()[:16]}-{sweep}"
                fut = client.submit(_call, u, key=dask_key, pure=False, retries=retries)
                futures[fut] = u.key
            for fut in distributed.as_completed(list(futures)):
                result = fut.result()  # raises the unit's error after the last retry
                if bar is not None:
                    bar.update(1)
                yield futures[fut], result
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    finally:
        if bar is not None:
            bar.close()


def run_units(units: Sequence[Unit], workers: int | None = None, scheduler: str | None = None,
              retries: int = RETRIES, progress: bool = False) -> list[Any]:
    """The results of ``units`` as a list in the input order (see :func:`iter_units`)."""
    results = dict(iter_units(units, workers, scheduler, retries, progress))
    return [results[u.key] for u in units]
