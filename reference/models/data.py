"""MNIST loaders for the VAE experiments: IDX files (dynamic binarization) and static binarized MNIST.

The data directory is always given by the user: an argument, or the environment variable
``DGV_DATA``. Nothing here knows a default location.

* **IDX** (LeCun's original format, gzipped or not): ``{split}-images-idx3-ubyte[.gz]`` with
  ``split`` in ``train``/``t10k``; an optional ``mnist-`` prefix is accepted. Images are
  returned as uint8 ``(N, 784)`` grey levels in ``[0, 255]``.
* **Static binarized MNIST** (Larochelle & Murray 2011): ``binarized_mnist.npz`` with arrays
  ``train`` (50000), ``valid`` (10000), ``test`` (10000), each ``np.packbits`` of 784 binary
  pixels along axis 1 (shape ``(N, 98)``, uint8). Returned unpacked as uint8 ``(N, 784)`` in
  {0, 1}.

Dynamic binarization (Salakhutdinov & Murray 2008): every epoch, every pixel is drawn afresh as
``x_d = 1[u_d < g_d / 255]`` with ``u_d ~ Uniform[0, 1)`` from an explicit
``numpy.random.Generator`` (``rng.random((N, 784))``, row-major over the whole data set).

:class:`BatchStream` serves mini-batches epoch after epoch. Epoch ``e`` uses its own generator
``default_rng([seed, e])`` for the permutation (``rng.permutation(N)``, drawn first) and, for
dynamic data, the binarization (drawn second), so the stream state is just ``(epoch,
position)`` and a run resumes exactly.
"""

from __future__ import annotations

import gzip
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "DATA_ENV",
    "resolve_data_dir",
    "read_idx",
    "load_mnist_idx",
    "load_binarized_mnist",
    "binarize",
    "BatchStream",
    "load_dataset",
]

DATA_ENV = "DGV_DATA"
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
BINARIZED_NAME = "binarized_mnist.npz"


def resolve_data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: ``path`` if given, else ``$DGV_DATA``; a clear error otherwise."""
    if path is None:
        path = os.environ.get(DATA_ENV)
        if not path:
            raise FileNotFoundError(f"no data directory given: pass a path (--data) or set {DATA_ENV}")
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"data path {str(p)!r} does not exist")
    return p


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip detected from its magic bytes); returns the array it holds."""
    p = Path(path)
    with open(p, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or damaged download
            raise ValueError(f"{str(p)!r} is a corrupt or truncated gzip file "
                             f"({type(exc).__name__}: {exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{str(p)!r} is not an IDX file (bad magic number {raw[:4]!r})")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape)) if shape else 0
    if len(raw) != header + count * dtype.itemsize:
        raise ValueError(f"{str(p)!r}: header says shape {shape} but the file holds "
                         f"{len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=dtype, offset=header, count=count).reshape(shape)


def _idx_candidates(split: str) -> list[str]:
    base = f"{split}-images-idx3-ubyte"
    return [pre + base + ext for pre in ("", "mnist-") for ext in (".gz", "")]


def load_mnist_idx(path: str | os.PathLike | None = None, split: str = "t10k") -> np.ndarray:
    """Grey-level MNIST images of ``split`` (``"train"`` or ``"t10k"``): uint8 ``(N, 784)``.

    ``path`` is an IDX file or a directory holding ``{split}-images-idx3-ubyte[.gz]`` (optionally
    prefixed ``mnist-``); ``None`` reads ``$DGV_DATA``.
    """
    if split not in ("train", "t10k"):
        raise ValueError(f"split must be 'train' or 't10k', got {split!r}")
    p = resolve_data_dir(path)
    if p.is_dir():
        names = _idx_candidates(split)
        found = [p / n for n in names if (p / n).exists()]
        if not found:
            raise FileNotFoundError(f"no MNIST IDX images for split {split!r} in {str(p)!r}; "
                                    f"expected one of {names}")
        p = found[0]
    images = read_idx(p)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{str(p)!r} must hold uint8 images (N, rows, cols), got "
                         f"{images.dtype} {images.shape}")
    return np.ascontiguousarray(images.reshape(images.shape[0], -1))


def load_binarized_mnist(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Static binarized MNIST: ``{"train", "valid", "test"}`` -> uint8 ``(N, 784)`` in {0, 1}.

    ``path`` is the ``.npz`` file or a directory holding ``binarized_mnist.npz``; ``None`` reads
    ``$DGV_DATA``. Each stored array is ``np.packbits(x, axis=1)`` of shape ``(N, 98)``.
    """
    p = resolve_data_dir(path)
    if p.is_dir():
        if not (p / BINARIZED_NAME).exists():
            raise FileNotFoundError(f"{BINARIZED_NAME!r} not found in {str(p)!r}; it must hold arrays "
                                    "'train', 'valid', 'test' (np.packbits of 784 pixels along axis 1)")
        p = p / BINARIZED_NAME
    out = {}
    try:
        npz = np.load(p)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{str(p)!r} is not a readable .npz file (truncated or corrupt? "
                         f"{type(exc).__name__}: {exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):  # a bare .npy array saved under this name
        raise ValueError(f"{str(p)!r} is not an .npz archive of arrays 'train', 'valid', 'test'")
    with npz:
        missing = [k for k in ("train", "valid", "test") if k not in npz.files]
        if missing:
            raise ValueError(f"{str(p)!r} lacks arrays {missing}; it has {npz.files}")
        for k in ("train", "valid", "test"):
            try:
                packed = npz[k]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise ValueError(f"{str(p)!r}[{k!r}] cannot be read (truncated or corrupt? "
                                 f"{type(exc).__name__}: {exc})") from None
            if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != 98:
                raise ValueError(f"{str(p)!r}[{k!r}] must be uint8 (N, 98) (packed 784 bits), "
                                 f"got {packed.dtype} {packed.shape}")
            out[k] = np.ascontiguousarray(np.unpackbits(packed, axis=1, count=784))
    return out


def binarize(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dynamic binarization: ``x = 1[u < gray / 255]``, ``u = rng.random(gray.shape)``; uint8."""
    gray = np.asarray(gray)
    if gray.dtype != np.uint8:
        raise TypeError(f"gray must be uint8 grey levels, got {gray.dtype}")
    return (rng.random(gray.shape) < gray / 255.0).astype(np.uint8)


class BatchStream:
    """Endless mini-batches over epochs; ``dynamic`` re-binarizes the data every epoch.

    ``data``: uint8 ``(N, 784)``, binary (static) or grey levels (dynamic). ``next()`` returns
    a float array ``(batch_size, 784)`` in {0, 1}; a batch never straddles two epochs (the last
    ``N mod batch_size`` points of a permutation are dropped). ``state``/``set_state`` give
    and restore ``(epoch, position)``.
    """

    def __init__(self, data: np.ndarray, batch_size: int, seed: int, dynamic: bool,
                 dtype: type = np.float64) -> None:
        data = np.asarray(data)
        if data.ndim != 2 or data.dtype != np.uint8:
            raise ValueError(f"data must be uint8 (N, D), got {data.dtype} {data.shape}")
        if not 1 <= batch_size <= data.shape[0]:
            raise ValueError(f"batch_size must be in [1, {data.shape[0]}], got {batch_size}")
        if not dynamic and data.max(initial=0) > 1:
            raise ValueError("static data must be binary; pass dynamic=True for grey levels")
        self.data, self.batch_size, self.seed, self.dynamic = data, int(batch_size), int(seed), dynamic
        self.dtype = dtype
        self.epoch, self.position = 0, 0
        self._load_epoch()

    def _load_epoch(self) -> None:
        rng = np.random.default_rng([self.seed, self.epoch])
        self._perm = rng.permutation(self.data.shape[0])
        self._x = binarize(self.data, rng) if self.dynamic else self.data

    def next(self) -> np.ndarray:
        if self.position + self.batch_size > self.data.shape[0]:
            self.epoch, self.position = self.epoch + 1, 0
            self._load_epoch()
        idx = self._perm[self.position: self.position + self.batch_size]
        self.position += self.batch_size
        return self._x[idx].astype(self.dtype)

    def state(self) -> tuple[int, int]:
        return self.epoch, self.position

    def set_state(self, state: Sequence[int]) -> None:
        self.epoch, self.position = int(state[0]), int(state[1])
        self._load_epoch()


def load_dataset(path: str | os.PathLike | None, kind: str, seed: int = 0,
                 n_test: int = 1000) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(train, test, dynamic)`` for ``kind`` ``"static"`` or ``"dynamic"``.

    * ``"static"``: ``binarized_mnist.npz``'s ``train`` and ``test`` (binary, uint8).
    * ``"dynamic"``: grey-level IDX images. With ``train-images-idx3-ubyte`` present, train on it
      and test on ``t10k``; with only ``t10k``, its last ``n_test`` images are the test set and
      the rest the training set (a reduced-scale substitute, stated by the scripts). The test
      set is binarized once, with ``default_rng([seed, 7])``, so every evaluation sees the same
      test data.
    """
    d = resolve_data_dir(path)
    if kind == "static":
        data = load_binarized_mnist(d)
        return data["train"], data["test"], False
    if kind != "dynamic":
        raise ValueError(f"kind must be 'static' or 'dynamic', got {kind!r}")
    test_gray = load_mnist_idx(d, "t10k")
    try:
        if not d.is_dir():
            raise FileNotFoundError("a single IDX file: split it")
        train_gray = load_mnist_idx(d, "train")
    except FileNotFoundError:
        if not 0 < n_test < test_gray.shape[0]:
            raise ValueError(f"n_test must be in (0, {test_gray.shape[0]})") from None
        train_gray, test_gray = test_gray[:-n_test], test_gray[-n_test:]
    test = binarize(test_gray, np.random.default_rng([seed, 7]))
    return train_gray, test, True
