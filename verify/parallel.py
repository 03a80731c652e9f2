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

Resume: with ``store=DIR`` (a :class:`ResultStore`), every result is written to its own file
in ``DIR`` as soon as it arrives, and a unit whose result is already there is not run again,
so a sweep that was interrupted (Ctrl-C, a crash, a lost cluster) and started again with the
same ``DIR`` computes only the units it had not finished. A worker that dies in the middle of
a unit (killed, out of memory, its machine lost) loses only that unit: the scheduler gives it
to another worker (Dask's ``distributed.scheduler.allowed-failures``, 3 deaths by default, a
separate count from ``retries``).

Same results, one caveat: Dask starts its workers with one BLAS thread
(``distributed.nanny.pre-spawn-environ``), so a unit whose numbers depend on how BLAS splits a
sum (float32 matrix products: a VAE's training) matches an in-process run on one BLAS thread,
not one on several.

Dask is an optional extra: ``pip install "discrete-grad-verify[dask]"``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ResultStore", "Unit", "iter_units", "run_units", "unit_seed"]

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


def _fingerprint(unit: Unit) -> str:
    """SHA-256 of what the unit computes (function and arguments), to tell a stored result of
    the same key but other arguments (another ``--R``, another seed) from a reusable one."""
    what = (getattr(unit.fn, "__module__", None), getattr(unit.fn, "__qualname__", repr(unit.fn)),
            unit.args, sorted(unit.kwargs.items()))
    return hashlib.sha256(pickle.dumps(what, protocol=4)).hexdigest()


class ResultStore:
    """Finished units' results in ``directory``, one file per unit, each written once.

    A file is named by the SHA-256 of the unit's key and holds the key, a fingerprint of the
    unit's function and arguments, and the result (a pickle, written to a temporary name and
    then renamed, so a crash never leaves half a file). Nothing is ever rewritten: a sweep
    started again with the same directory reads back what is there and runs only the rest.
    A stored result whose fingerprint differs from the unit's (same key, other arguments) is
    refused with ``ValueError`` rather than reused: use another directory. Files are pickles,
    so read only directories you wrote (unpickling runs code).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"results directory {str(directory)!r} cannot be created: {exc}") from None
        if not os.access(self.directory, os.W_OK):
            raise ValueError(f"results directory {str(directory)!r} is not writable")

    def path(self, key: str) -> Path:
        """The file that holds the result of the unit ``key``."""
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.pkl"

    def get(self, unit: Unit) -> tuple[bool, Any]:
        """``(True, result)`` when ``unit`` has a stored result, else ``(False, None)``.

        Raises ``ValueError`` for an unreadable file or one written by another unit or other
        arguments (the file is named in the message)."""
        path = self.path(unit.key)
        if not path.exists():
            return False, None
        try:
            with open(path, "rb") as fh:
                record = pickle.load(fh)
            key, fingerprint, result = record["key"], record["fingerprint"], record["result"]
        except Exception as exc:  # any unpickling error: the file is not one of ours
            raise ValueError(f"{path} is corrupt or not a stored result ({type(exc).__name__}: "
                             f"{exc}); remove it to compute unit {unit.key!r} again") from None
        if key != unit.key or fingerprint != _fingerprint(unit):
            raise ValueError(f"{path} holds unit {key!r} computed with other arguments than "
                             f"this sweep's {unit.key!r}; use another results directory")
        return True, result

    def put(self, unit: Unit, result: Any) -> None:
        """Write ``unit``'s result, unless a result for it is already stored (never rewritten)."""
        path = self.path(unit.key)
        if path.exists():
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump({"key": unit.key, "fingerprint": _fingerprint(unit), "result": result}, fh,
                        protocol=4)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "running on Dask (workers= or scheduler=) needs dask[distributed]: "
            'pip install "discrete-grad-verify[dask]" (or "dask[distributed]")') from exc
    return distributed


def _progress(total: int, initial: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm import tqdm  # a dependency; imported here so that importing this module stays cheap

    return tqdm(total=total, initial=initial, unit="unit")


def _run(units: Sequence[Unit], workers: int | None, scheduler: str | None,
         retries: int) -> Iterator[tuple[Unit, Any]]:
    """``(unit, result)`` in the order the units finish (in process: the input order)."""
    if workers is None and scheduler is None:
        for u in units:
            yield u, _call_with_retries(u, retries)
        return
    distributed = _import_distributed()
    cluster = None
    if workers is not None:
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
    try:
        client = distributed.Client(cluster if cluster is not None else scheduler)
        try:
            sweep = uuid.uuid4().hex[:12]  # Dask keys: unique per sweep, never reused results
            futures = {}
            for u in units:
                dask_key = f"unit-{hashlib.sha1(u.key.encode()).hexdigest()[:16]}-{sweep}"
                futures[client.submit(_call, u, key=dask_key, pure=False, retries=retries)] = u
            for fut in distributed.as_completed(list(futures)):
                u = futures.pop(fut)
                result = fut.result()  # raises the unit's error after the last retry
                # the client's last reference: the cluster forgets the fetched result, so a
                # worker lost later does not take it along and make the scheduler recompute it
                fut.release()
                yield u, result
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def iter_units(units: Sequence[Unit], workers: int | None = None, scheduler: str | None = None,
               retries: int = RETRIES, progress: bool = False,
               store: ResultStore | str | os.PathLike | None = None,
               ordered: bool = False) -> Iterator[tuple[str, Any]]:
    """Yield ``(key, result)`` for every unit, in the order the units finish.

    In process (``workers`` and ``scheduler`` both ``None``) that is the input order. With
    ``workers=N`` a local cluster of ``N`` processes is started for the call; with
    ``scheduler=ADDRESS`` the units go to that cluster. ``progress`` shows a ``tqdm`` bar of
    units done on stderr. ``store`` (a :class:`ResultStore` or its directory): results already
    there are yielded first without running their units, every new result is written there
    before it is yielded. ``ordered=True`` yields in the input order instead, each result as
    soon as every earlier one is in (streaming output that reads as the in-process run's).

    Raises ``ValueError`` on duplicate keys, on both modes at once, or on a store that holds a
    unit's key with other arguments; and the unit's own exception when it fails ``retries + 1``
    times (the remaining units are then cancelled; finished ones stay in ``store``).
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
    if store is not None and not isinstance(store, ResultStore):
        store = ResultStore(store)
    done: dict[str, Any] = {}
    if store is not None:
        for u in units:
            found, result = store.get(u)
            if found:
                done[u.key] = result
    todo = [u for u in units if u.key not in done]
    position = {k: i for i, k in enumerate(keys)}
    waiting: dict[int, tuple[str, Any]] = {}  # ordered: finished, not yet yielded
    next_i = 0

    def release(key: str, result: Any) -> Iterator[tuple[str, Any]]:
        nonlocal next_i
        if not ordered:
            yield key, result
            return
        waiting[position[key]] = (key, result)
        while next_i in waiting:
            yield waiting.pop(next_i)
            next_i += 1

    bar = _progress(len(units), len(done), progress)
    try:
        for u in units:
            if u.key in done:
                yield from release(u.key, done[u.key])
        if todo:
            for u, result in _run(todo, workers, scheduler, retries):
                if store is not None:
                    store.put(u, result)
                if bar is not None:
                    bar.update(1)
                yield from release(u.key, result)
    finally:
        if bar is not None:
            bar.close()


def run_units(units: Sequence[Unit], workers: int | None = None, scheduler: str | None = None,
              retries: int = RETRIES, progress: bool = False,
              store: ResultStore | str | os.PathLike | None = None) -> list[Any]:
    """The results of ``units`` as a list in the input order (see :func:`iter_units`)."""
    results = dict(iter_units(units, workers, scheduler, retries, progress, store))
    return [results[u.key] for u in units]
