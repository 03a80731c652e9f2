"""MNIST loaders on small files the tests write themselves (IDX gz/plain, packed .npz)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from reference.models import data as D


def write_idx(path, arr: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.fixture
def gray():
    return np.random.default_rng(0).integers(0, 256, (12, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("gz,name", [(True, "t10k-images-idx3-ubyte.gz"),
                                     (False, "mnist-t10k-images-idx3-ubyte")])
def test_idx_roundtrip(tmp_path, gray, gz, name):
    write_idx(tmp_path / name, gray, gz)
    assert np.array_equal(D.read_idx(tmp_path / name), gray)
    imgs = D.load_mnist_idx(tmp_path, "t10k")
    assert imgs.shape == (12, 784) and imgs.dtype == np.uint8
    assert np.array_equal(imgs, gray.reshape(12, -1))


def test_idx_errors(tmp_path, gray, monkeypatch):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        D.load_mnist_idx(tmp_path, "t10k")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        D.read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", gray, False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-5])
    with pytest.raises(ValueError, match="header says"):
        D.read_idx(tmp_path / "short")
    monkeypatch.delenv(D.DATA_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=D.DATA_ENV):
        D.load_mnist_idx(None)
    monkeypatch.setenv(D.DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_binarized_mnist()


def write_npz(path, rng, sizes=(20, 6, 7)):
    splits = {k: (rng.random((n, 784)) < 0.3).astype(np.uint8) for k, n in zip(("train", "valid", "test"),
                                                                                sizes, strict=True)}
    np.savez(path, **{k: np.packbits(v, axis=1) for k, v in splits.items()})
    return splits


def test_binarized_npz(tmp_path, monkeypatch):
    splits = write_npz(tmp_path / "binarized_mnist.npz", np.random.default_rng(1))
    monkeypatch.setenv(D.DATA_ENV, str(tmp_path))
    for source in (None, tmp_path, tmp_path / "binarized_mnist.npz"):
        got = D.load_binarized_mnist(source)
        for k, v in splits.items():
            assert got[k].shape == v.shape and np.array_equal(got[k], v)
    np.savez(tmp_path / "x.npz", train=np.zeros((2, 98), np.uint8))
    with pytest.raises(ValueError, match="lacks arrays"):
        D.load_binarized_mnist(tmp_path / "x.npz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="binarized_mnist.npz"):
        D.load_binarized_mnist(empty)


@pytest.mark.parametrize("damage,words", [
    (lambda raw: raw[: len(raw) // 2], "not a readable .npz file"),  # a cut download
    (lambda raw: b"not a zip archive" * 10, "not a readable .npz file"),
])
def test_corrupt_npz_is_a_clear_error(tmp_path, damage, words):
    """A truncated .npz raised zipfile.BadZipFile from inside NumPy (a traceback from
    train_vae.py), and a garbage one NumPy's advice about pickles; both now name the file."""
    path = tmp_path / "binarized_mnist.npz"
    write_npz(path, np.random.default_rng(1))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=words) as info:
        D.load_binarized_mnist(tmp_path)
    assert str(path) in str(info.value)


def test_npz_with_an_object_array_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "binarized_mnist.npz", train=np.array([None, 1], dtype=object),
             valid=np.zeros((2, 98), np.uint8), test=np.zeros((2, 98), np.uint8))
    with pytest.raises(ValueError, match=r"\['train'\] cannot be read"):
        D.load_binarized_mnist(tmp_path)


def test_truncated_gzip_idx_is_a_clear_error(tmp_path, gray):
    """A cut .gz raised EOFError from inside gzip (a traceback from train_vae.py)."""
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", gray, True)
    raw = (tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated gzip file"):
        D.load_mnist_idx(tmp_path, "t10k")


def test_dynamic_binarization_is_fresh_each_epoch_and_resumable():
    gray = np.full((10, 784), 128, np.uint8)
    s = D.BatchStream(gray, 5, seed=3, dynamic=True)
    first = [s.next() for _ in range(2)]  # epoch 0
    again = [s.next() for _ in range(2)]  # epoch 1: fresh draws
    assert s.state() == (1, 10)
    assert set(np.unique(first[0])) <= {0.0, 1.0}
    assert not np.array_equal(np.sort(np.concatenate(first), 0), np.sort(np.concatenate(again), 0))
    # pixel probability 128/255: the mean over 4 * 5 * 784 draws is close to it
    assert abs(np.concatenate(first + again).mean() - 128 / 255) < 0.02
    # the documented mapping: permutation first, then x = 1[u < g / 255] from default_rng([seed, e])
    rng = np.random.default_rng([3, 1])
    perm = rng.permutation(10)
    x = (rng.random((10, 784)) < gray / 255.0)
    assert np.array_equal(np.concatenate(again), x[perm].astype(float))
    t = D.BatchStream(gray, 5, seed=3, dynamic=True)
    t.set_state((1, 5))
    assert np.array_equal(t.next(), again[1])


def test_static_stream_and_errors():
    x = (np.random.default_rng(0).random((7, 784)) < 0.5).astype(np.uint8)
    s = D.BatchStream(x, 3, seed=0, dynamic=False)
    seen = np.concatenate([s.next(), s.next()])  # 6 of 7 points; the 7th is dropped
    assert s.next().shape == (3, 784) and s.state() == (1, 3)
    assert len({row.tobytes() for row in seen.astype(np.uint8)}) <= 6
    with pytest.raises(ValueError, match="binary"):
        D.BatchStream(x * 200, 3, seed=0, dynamic=False)
    with pytest.raises(ValueError, match="batch_size"):
        D.BatchStream(x, 8, seed=0, dynamic=False)


def test_load_dataset_splits_t10k_when_no_train_file(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", gray, True)
    train, test, dynamic = D.load_dataset(tmp_path, "dynamic", seed=1, n_test=10)
    assert dynamic and train.shape == (20, 784) and test.shape == (10, 784)
    assert np.array_equal(train, gray.reshape(30, -1)[:20])
    assert set(np.unique(test)) <= {0, 1}
    write_npz(tmp_path / "binarized_mnist.npz", np.random.default_rng(2))
    train, test, dynamic = D.load_dataset(tmp_path, "static")
    assert not dynamic and train.shape == (20, 784) and test.shape == (7, 784)
    with pytest.raises(ValueError, match="kind"):
        D.load_dataset(tmp_path, "bogus")
