"""Tests for graphc.data: IDX reader/writer, bundled MNIST subset, Fashion-MNIST."""

import gzip

import numpy as np
import pytest

import graphc.data as data
from graphc.data.mnist import read_idx, write_idx


# ---------------------------------------------------------------- IDX format

@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
def test_idx_roundtrip_images(tmp_path, name):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    path = tmp_path / name
    write_idx(path, imgs)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    out = data.load_idx_images(path)
    assert out.dtype == np.uint8 and out.shape == (7, 28, 28)
    np.testing.assert_array_equal(out, imgs)
    out[0, 0, 0] ^= 1  # result must be writable (not a view of the file bytes)


def test_idx_roundtrip_labels_and_other_dtypes(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "l", labels, compress=True)
    np.testing.assert_array_equal(data.load_idx_labels(tmp_path / "l"), labels)
    for dt in (np.int8, np.int16, np.int32, np.float32, np.float64):
        a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dt)
        write_idx(tmp_path / "a", a)
        b = read_idx(tmp_path / "a")
        assert b.dtype == a.dtype and b.dtype.isnative
        np.testing.assert_array_equal(a, b)


def test_gzip_detected_by_magic_not_name(tmp_path):
    labels = np.array([3, 1, 4], np.uint8)
    write_idx(tmp_path / "gz-but-no-suffix", labels, compress=True)
    write_idx(tmp_path / "raw.gz", labels, compress=False)
    for p in ("gz-but-no-suffix", "raw.gz"):
        np.testing.assert_array_equal(data.load_idx_labels(tmp_path / p), labels)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="no IDX code"):
        write_idx(tmp_path / "x", np.zeros(3, np.uint16))


def test_bad_magic(tmp_path):
    p = tmp_path / "bad-idx3-ubyte"
    p.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ValueError, match=r"bad-idx3-ubyte.*bad IDX magic.*0x00000803"):
        data.load_idx_images(p)


def test_wrong_kind_of_idx_file(tmp_path):
    p = tmp_path / "labels"
    write_idx(p, np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match=r"labels.*1 dims.*expected 0x00000803"):
        data.load_idx_images(p)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_payload(tmp_path, gz):
    p = tmp_path / "t"
    write_idx(p, np.zeros((4, 28, 28), np.uint8))
    raw = p.read_bytes()[:-100]
    p.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(ValueError, match=r"t: truncated IDX file.*\(4, 28, 28\)"):
        data.load_idx_images(p)


def test_truncated_header_and_gzip_stream(tmp_path):
    p = tmp_path / "h"
    p.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="truncated IDX header"):
        data.load_idx_images(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        data.load_idx_images(p)
    write_idx(p, np.ones((2, 28, 28), np.uint8), compress=True)
    p.write_bytes(p.read_bytes()[:-12])  # cut-off download
    with pytest.raises(ValueError, match="h: corrupt or truncated gzip"):
        data.load_idx_images(p)


# ------------------------------------------------------- bundled MNIST subset

def test_bundled_files_are_idx():
    imgs = data.load_idx_images(data._SUBSET_IMAGES)
    labels = data.load_idx_labels(data._SUBSET_LABELS)
    assert imgs.shape == (5000, 28, 28) and imgs.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.uint8
    assert imgs.max() == 255 and imgs.min() == 0  # stored 0..255, not rescaled
    assert np.array_equal(np.bincount(labels), [500] * 10)


@pytest.mark.parametrize("split,n", [("train", 4000), ("test", 1000), ("all", 5000)])
def test_subset_shapes_dtypes(split, n):
    X, y = data.load_mnist_subset(split)
    assert X.shape == (n, 784) and X.dtype == np.float32
    assert 0.0 <= X.min() and X.max() <= 1.0 and X.max() > 0.99
    assert y.shape == (n,) and y.dtype == np.int64 and set(np.unique(y)) == set(range(10))

    Xc, yc = data.load_mnist_subset(split, flatten=False, normalize=False)
    assert Xc.shape == (n, 1, 28, 28) and Xc.dtype == np.uint8 and Xc.max() == 255
    np.testing.assert_array_equal(Xc.reshape(n, -1) / np.float32(255), X)
    np.testing.assert_array_equal(yc, y)


def test_subset_split_is_documented_permutation_disjoint_and_complete():
    imgs = data.load_idx_images(data._SUBSET_IMAGES).reshape(5000, -1)
    labels = data.load_idx_labels(data._SUBSET_LABELS)
    perm = np.random.RandomState(0).permutation(5000)
    Xtr, ytr = data.load_mnist_subset("train", normalize=False)
    Xte, yte = data.load_mnist_subset("test", normalize=False)
    np.testing.assert_array_equal(Xtr, imgs[perm[:4000]])
    np.testing.assert_array_equal(yte, labels[perm[4000:]])
    assert set(perm[:4000]).isdisjoint(perm[4000:])
    assert len(set(perm[:4000]) | set(perm[4000:])) == 5000
    # Content check too, independent of index bookkeeping (all 5000 digits
    # in the bundle are distinct images).
    rows_tr, rows_te = {r.tobytes() for r in Xtr}, {r.tobytes() for r in Xte}
    assert len(rows_tr) == 4000 and len(rows_te) == 1000 and rows_tr.isdisjoint(rows_te)
    assert ytr[:50].tolist() != sorted(ytr[:50].tolist())  # actually shuffled
    assert np.bincount(ytr).min() > 300 and np.bincount(yte).min() > 50


def test_subset_seed_changes_split_and_returns_fresh_copies():
    a, _ = data.load_mnist_subset("test", seed=0)
    b, _ = data.load_mnist_subset("test", seed=1)
    assert not np.array_equal(a, b)
    a[:] = 0  # mutating the result must not corrupt the cached data
    c, _ = data.load_mnist_subset("test", seed=0)
    assert c.max() == 1.0


def test_bad_split_and_unknown_dataset():
    with pytest.raises(ValueError, match="split"):
        data.load_mnist_subset("validation")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load_dataset("cifar10")
    X, y = data.load_dataset("mnist_subset", "test", flatten=False)
    assert X.shape == (1000, 1, 28, 28)


# ------------------------------------------------------------- Fashion-MNIST

def _fake_fashion(directory, n_train=6, n_test=4):
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        # Decompressed label files must be accepted too.
        write_idx(directory / f"{prefix}-labels-idx1-ubyte",
                  (np.arange(n) % 10).astype(np.uint8))


def test_fashion_loader_with_fake_files(tmp_path, monkeypatch):
    _fake_fashion(tmp_path)
    assert data.find_fashion_mnist(tmp_path) == tmp_path
    X, y = data.load_fashion_mnist("test", path=tmp_path, flatten=False)
    assert X.shape == (4, 1, 28, 28) and X.dtype == np.float32 and y.dtype == np.int64
    monkeypatch.setenv("GRAPHC_FASHION_MNIST", str(tmp_path))
    X, y = data.load_dataset("fashion-mnist", "train")
    assert X.shape == (6, 784)


def test_fashion_missing_raises_helpful_error(tmp_path):
    assert data.find_fashion_mnist(tmp_path) is None
    with pytest.raises(FileNotFoundError) as ei:
        data.load_fashion_mnist(path=tmp_path)
    msg = str(ei.value)
    assert str(tmp_path) in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "GRAPHC_FASHION_MNIST" in msg


def test_fashion_count_mismatch(tmp_path):
    _fake_fashion(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="4 images but.*3 labels"):
        data.load_fashion_mnist("test", path=tmp_path)


_FASHION_DIR = data.find_fashion_mnist()


@pytest.mark.skipif(
    _FASHION_DIR is None,
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist, "
           "or set GRAPHC_FASHION_MNIST=DIR)")
def test_real_fashion_mnist():
    # Only the 10k test split: the 60k train split takes ~0.5 s to decompress.
    X, y = data.load_fashion_mnist("test", normalize=False)
    assert X.shape == (10000, 784) and X.dtype == np.uint8
    assert np.array_equal(np.bincount(y), [1000] * 10)
    ytr = data.load_idx_labels(_FASHION_DIR / "train-labels-idx1-ubyte.gz")
    assert np.array_equal(np.bincount(ytr), [6000] * 10)


# --------------------------------------------------------- minibatch iterator

def test_iterate_minibatches():
    X = np.arange(10 * 3).reshape(10, 3)
    y = np.arange(10)
    batches = list(data.iterate_minibatches(X, y, 4, shuffle=False))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), X)

    batches = list(data.iterate_minibatches(X, y, 4, rng=0, drop_last=True))
    assert [len(b[1]) for b in batches] == [4, 4]
    for xb, yb in batches:
        np.testing.assert_array_equal(xb, X[yb])  # rows stay paired with labels
    seen = np.concatenate([b[1] for b in data.iterate_minibatches(X, y, 3, rng=0)])
    assert sorted(seen) == list(range(10)) and list(seen) != list(range(10))

    # Same seed -> same order; Generator and RandomState both accepted.
    again = np.concatenate([b[1] for b in data.iterate_minibatches(X, y, 3, rng=0)])
    np.testing.assert_array_equal(seen, again)
    for rng in (np.random.default_rng(1), np.random.RandomState(1)):
        assert len(list(data.iterate_minibatches(X, y, 5, rng=rng))) == 2

    with pytest.raises(ValueError, match="rows"):
        list(data.iterate_minibatches(X, y[:5], 2))
    with pytest.raises(ValueError, match="batch_size"):
        list(data.iterate_minibatches(X, y, 0))
