"""The training loop behind ``scripts/train_vae.py`` and ``scripts/figure1.py``.

:func:`train` trains one VAE with one registered estimator and writes ``out/log.csv`` with the
columns :data:`LOG_COLUMNS`, one row at step 0 and every ``eval_every`` steps:

* ``train_elbo``: mean of the training batches' ELBO estimates since the previous row (at step
  0: the first batch's estimate without an update);
* ``test_elbo``: ELBO on the test set (or its first ``elbo_subset`` points), one sample of ``z``
  per point plus the exact entropy;
* ``test_iwae100``: the ``iwae_samples``-sample importance-weighted bound on the first
  ``iwae_subset`` test points;
* ``grad_var``: variance of the encoder-parameter gradient over ``var_replicates`` draws of the
  estimator on a fixed training batch, averaged over parameters (:meth:`VAE.grad_variance`).

Randomness is explicit and resumable: parameters from ``default_rng([seed, 0])``, the data
stream from ``seed`` (:class:`~reference.models.data.BatchStream`), the estimator's noise at
step ``t`` from ``default_rng([seed, 1, t])``, evaluation from ``default_rng([seed, 2])`` (the
same at every row, so rows differ only by the model), the variance at step ``t`` from
``default_rng([seed, 3, t])``, a learned control's initialization (``learn_control``:
:mod:`reference.models.controls`) from ``default_rng([seed, 5])``. ``out/checkpoint.npz``
(model, Adam state, learned control, stream position) is written with every row; a run
started again with the same ``out`` resumes from it.

Interruptions: Ctrl-C (SIGINT) during training finishes the step in progress, writes the
checkpoint at that step and returns (the returned rows have ``interrupted = True``, and
``scripts/train_vae.py`` exits with 130); running the same command again continues exactly
where it stopped. A log whose last line was cut (a crash while
another tool wrote it) loses only that line; a corrupt checkpoint or a log with garbage in the
middle gives a ``ValueError`` saying which file, never a traceback from the CSV or zip reader.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

from .controls import make_control
from .data import BatchStream, load_dataset
from .vae import VAE, binary_spec, categorical_spec, init_params

__all__ = ["TrainConfig", "train", "LOG_COLUMNS", "read_log"]

LOG_COLUMNS = ("step", "epoch", "train_elbo", "test_elbo", "test_iwae100", "grad_var", "wall_s",
               "steps_per_s")


@dataclass
class TrainConfig:
    """Everything one run needs; ``options`` are the estimator's options (e.g. ``{"n": 10}``)."""

    out: str
    data: str | None = None
    model: str = "categorical"
    estimator: str = "reinforce_loo"
    options: dict[str, Any] = field(default_factory=dict)
    C: int = 10
    K: int | None = None
    nonlinear: bool = True
    dataset: str | None = None
    steps: int = 2000
    batch_size: int = 100
    lr: float = 1e-3
    seed: int = 0
    backend: str = "cpu"
    dtype: str = "float32"
    eval_every: int = 500
    elbo_subset: int = 0
    iwae_subset: int = 1000
    iwae_samples: int = 100
    var_replicates: int = 20
    var_batch: int = 0
    n_test: int = 1000
    progress: bool = True
    #: learn the estimator's baseline / eta / surrogate while training (``nvil``, ``rebar``,
    #: ``relax``; :mod:`reference.models.controls`); False: the record's options as given
    learn_control: bool = False

    def spec(self):
        if self.model == "categorical":
            return categorical_spec(self.C, K=self.K or 20)
        if self.model == "binary":
            return binary_spec(self.nonlinear, K=self.K or 200)
        raise ValueError(f"model must be 'categorical' or 'binary', got {self.model!r}")

    def identity(self) -> dict[str, Any]:
        """The settings a checkpoint must share with the run that resumes it."""
        keep = ("model", "estimator", "options", "C", "K", "nonlinear", "dataset", "batch_size", "lr",
                "seed", "dtype")
        out = {k: v for k, v in asdict(self).items() if k in keep}
        if self.learn_control:  # only when set, so checkpoints written before the flag still resume
            out["learn_control"] = True
        return out


def _bar(cfg: TrainConfig, start: int, stream: TextIO | None = None) -> tqdm:
    """The run's progress bar (``tqdm``, on stderr): steps done, rate, time left, the last
    batch's ELBO. Not on a terminal (a log file), it is redrawn every 30 s instead of 5 times
    a second, so a log is not flooded."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    return tqdm(total=cfg.steps, initial=start, disable=not cfg.progress, desc=cfg.estimator,
                unit="step", file=stream, mininterval=0.2 if tty else 30.0, dynamic_ncols=tty)


class TrainRows(list):
    """The log rows :func:`train` returns; ``interrupted`` is True when Ctrl-C stopped it."""

    interrupted: bool = False


def read_log(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of a ``log.csv`` as dicts of floats. A cut last line (fields missing or not a
    number) is dropped; a bad header or a bad line before the last raises ``ValueError``."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header) != LOG_COLUMNS:
            raise ValueError(f"{path} is not a training log: its header is {header!r}, expected "
                             f"{','.join(LOG_COLUMNS)}")
        lines = list(reader)
    rows = []
    for i, line in enumerate(lines):
        try:
            if len(line) != len(LOG_COLUMNS):
                raise ValueError(f"{len(line)} fields")
            rows.append({k: float(v) for k, v in zip(LOG_COLUMNS, line, strict=True)})
        except ValueError as exc:
            if i == len(lines) - 1:  # a line cut while it was written: drop it
                break
            raise ValueError(f"{path}, line {i + 2} is corrupt ({exc}): {line!r}") from None
    return rows


def _write_log(path: Path, rows: list[dict[str, float]]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: (repr(float(row[k])) if k not in ("step", "epoch") else int(row[k]))
                        for k in LOG_COLUMNS})
    os.replace(tmp, path)


def _save_checkpoint(path: Path, model: VAE, stream: BatchStream, step: int, cfg: TrainConfig,
                     train_acc: tuple[float, int], wall: float) -> None:
    state = model.state()
    state.update({"step": np.array(step), "stream": np.array(stream.state()),
                  "identity": np.array(json.dumps(cfg.identity(), sort_keys=True)),
                  "train_acc": np.array(train_acc, dtype=np.float64), "wall": np.array(wall)})
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **state)
    os.replace(tmp, path)


def train(cfg: TrainConfig, log: TextIO | None = None) -> list[dict[str, float]]:
    """Train (or resume) and return the log rows; see the module docstring."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = cfg.spec()
    dataset = cfg.dataset or ("dynamic" if cfg.model == "categorical" else "static")
    cfg.dataset = dataset
    train_x, test_x, dynamic = load_dataset(cfg.data, dataset, seed=cfg.seed, n_test=cfg.n_test)
    dtype = {"float32": np.float32, "float64": np.float64}[cfg.dtype]
    pixel_mean = train_x.mean(axis=0) / (255.0 if dynamic else 1.0)
    params = init_params(spec, np.random.default_rng([cfg.seed, 0]), pixel_mean)
    model = VAE(spec, params, backend=cfg.backend, dtype=dtype, lr=cfg.lr)
    if cfg.learn_control:
        model.control = make_control(cfg.estimator, model, np.random.default_rng([cfg.seed, 5]),
                                     cfg.lr, cfg.options)
    stream = BatchStream(train_x, cfg.batch_size, cfg.seed, dynamic, dtype=np.float64)
    var_rng = np.random.default_rng([cfg.seed, 4])
    var_idx = var_rng.choice(train_x.shape[0], cfg.var_batch or cfg.batch_size, replace=False)
    var_x = train_x[var_idx]
    var_x = (var_rng.random(var_x.shape) < var_x / 255.0) if dynamic else var_x
    var_x = var_x.astype(np.float64)
    elbo_x = test_x[: cfg.elbo_subset or None].astype(np.float64)
    iwae_x = test_x[: cfg.iwae_subset or None].astype(np.float64)
    options = dict(cfg.options)

    ckpt, log_path = out / "checkpoint.npz", out / "log.csv"
    rows: list[dict[str, float]] = TrainRows()
    start, train_sum, train_n, wall = 0, 0.0, 0, 0.0
    if ckpt.exists():
        try:
            with np.load(ckpt) as st:
                state = {k: st[k] for k in st.files}
            saved = json.loads(str(state["identity"]))
            for key in ("step", "stream", "train_acc", "wall"):
                state[key]  # noqa: B018  (a missing entry is a corrupt file)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{ckpt} is corrupt or not a checkpoint ({type(exc).__name__}: {exc}); "
                             "remove it to start the run again from step 0") from None
        if saved != json.loads(json.dumps(cfg.identity(), sort_keys=True)):
            raise ValueError(f"{ckpt} was written by a different run: {saved}; this run is "
                             f"{cfg.identity()} (use another --out)")
        model.load_state(state)
        stream.set_state(tuple(state["stream"]))
        start, wall = int(state["step"]), float(state["wall"])
        train_sum, train_n = float(state["train_acc"][0]), int(state["train_acc"][1])
        if log_path.exists():
            rows = TrainRows(r for r in read_log(log_path) if r["step"] <= start)
        if log:
            log.write(f"resuming from step {start} ({ckpt})\n")

    def evaluate(step: int, elapsed: float, rate: float) -> None:
        nonlocal train_sum, train_n
        ev = np.random.default_rng([cfg.seed, 2])
        if train_n == 0:  # step 0: the first batch's estimate, without an update
            x0 = BatchStream(train_x, cfg.batch_size, cfg.seed, dynamic).next()
            _, st = model.gradients(x0, cfg.estimator, np.random.default_rng([cfg.seed, 1, 0]), options)
            train_sum, train_n = st["elbo"], 1
        row = {"step": step, "epoch": stream.state()[0], "train_elbo": train_sum / train_n,
               "test_elbo": model.elbo(elbo_x, ev),
               "test_iwae100": model.iwae(iwae_x, ev, samples=cfg.iwae_samples),
               "grad_var": model.grad_variance(var_x, cfg.estimator,
                                               np.random.default_rng([cfg.seed, 3, step]),
                                               options, replicates=cfg.var_replicates),
               "wall_s": elapsed, "steps_per_s": rate}
        rows.append(row)
        train_sum, train_n = 0.0, 0
        _write_log(log_path, rows)
        if log:
            log.write("  ".join(f"{k}={row[k]:.4g}" for k in LOG_COLUMNS) + "\n")
            log.flush()

    if start == 0 and not rows:
        evaluate(0, 0.0, 0.0)
        _save_checkpoint(ckpt, model, stream, 0, cfg, (0.0, 0), 0.0)
    bar = _bar(cfg, start)
    seg_start, seg_steps = time.time(), 0
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C: finish the step in progress (the model is never left half-updated), then save
        previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        for step in range(start + 1, cfg.steps + 1):
            x = stream.next()
            e = model.step(x, cfg.estimator, np.random.default_rng([cfg.seed, 1, step]), options)
            if not math.isfinite(e):
                raise FloatingPointError(f"the training ELBO became {e} at step {step}")
            train_sum, train_n, seg_steps = train_sum + e, train_n + 1, seg_steps + 1
            bar.set_postfix_str(f"elbo {e:8.2f}", refresh=False)
            bar.update(1)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                now = time.time()
                wall += now - seg_start  # training time only, evaluations excluded
                evaluate(step, wall, seg_steps / max(now - seg_start, 1e-9))
                _save_checkpoint(ckpt, model, stream, step, cfg, (train_sum, train_n), wall)
                seg_start, seg_steps = time.time(), 0
            elif stop.is_set():
                wall += time.time() - seg_start
                _save_checkpoint(ckpt, model, stream, step, cfg, (train_sum, train_n), wall)
            if stop.is_set():
                if log:
                    log.write(f"interrupted: checkpoint at step {step} ({ckpt}); run the same "
                              "command again to continue\n")
                break
    finally:
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    rows.interrupted = stop.is_set()
    return rows
