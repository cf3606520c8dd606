"""Small datasets for graphc examples, tests and benchmarks.

* ``load_mnist_subset``: 5,000 real MNIST digits bundled with graphc
  (see ATTRIBUTION.md), split 4,000 train / 1,000 test.
* ``load_fashion_mnist``: full Fashion-MNIST read from a local copy, e.g.
  Debian's ``dataset-fashion-mnist`` package; nothing is downloaded.
* ``iterate_minibatches``: simple (X, y) minibatch generator.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from .mnist import load_idx_images, load_idx_labels, read_idx, write_idx

__all__ = [
    "load_mnist_subset", "load_fashion_mnist", "find_fashion_mnist",
    "load_dataset", "iterate_minibatches",
    "load_idx_images", "load_idx_labels", "read_idx", "write_idx",
    "FASHION_MNIST_CLASSES", "FASHION_MNIST_DIRS",
]

_DATA_DIR = Path(__file__).resolve().parent
_SUBSET_IMAGES = _DATA_DIR / "mnist5k-images-idx3-ubyte.gz"
_SUBSET_LABELS = _DATA_DIR / "mnist5k-labels-idx1-ubyte.gz"
_SUBSET_N, _SUBSET_N_TRAIN = 5000, 4000

# Where Debian/Ubuntu's `dataset-fashion-mnist` package puts the files.
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_ENV = "GRAPHC_FASHION_MNIST"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FASHION_PREFIX = {"train": "train", "test": "t10k"}


def _prepare(images: np.ndarray, labels: np.ndarray, flatten: bool, normalize: bool):
    """uint8 (N,28,28) images -> (N,784) or NCHW (N,1,28,28); labels -> int64."""
    n = images.shape[0]
    X = images.reshape(n, -1) if flatten else images.reshape(n, 1, *images.shape[1:])
    if normalize:
        X = X.astype(np.float32) / np.float32(255.0)
    return X, labels.astype(np.int64)


def _check_split(split, allowed):
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")


@functools.lru_cache(maxsize=1)
def _subset_raw():
    # Cached: parsing the gzip costs ~20 ms and tests call this often.
    # Callers only ever get fancy-indexed copies, so the cache stays pristine.
    images = load_idx_images(_SUBSET_IMAGES)
    labels = load_idx_labels(_SUBSET_LABELS)
    if images.shape != (_SUBSET_N, 28, 28) or labels.shape != (_SUBSET_N,):
        raise ValueError(f"bundled MNIST subset in {_DATA_DIR} has unexpected shapes "
                         f"{images.shape}, {labels.shape}; reinstall graphc")
    return images, labels


def load_mnist_subset(split: str = "train", flatten: bool = True,
                      normalize: bool = True, seed: int = 0):
    """Load the bundled 5,000-digit MNIST sample (500 per class).

    The stored digits are sorted by class, so they are shuffled with the fixed
    permutation ``np.random.RandomState(seed).permutation(5000)`` (seed=0 by
    default): the first 4,000 indices are "train", the last 1,000 "test",
    "all" returns all 5,000 in permuted order.

    Returns (X, y). X: float32 in [0, 1] if normalize else uint8 0..255;
    shape (N, 784) if flatten else (N, 1, 28, 28) (NCHW). y: int64 in 0..9.
    """
    _check_split(split, ("train", "test", "all"))
    images, labels = _subset_raw()
    perm = np.random.RandomState(seed).permutation(_SUBSET_N)
    idx = {"train": perm[:_SUBSET_N_TRAIN], "test": perm[_SUBSET_N_TRAIN:],
           "all": perm}[split]
    return _prepare(images[idx], labels[idx], flatten, normalize)


def _fashion_files(directory: Path, split: str):
    """(images, labels) paths for a split, accepting .gz or decompressed names."""
    found = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        name = f"{_FASHION_PREFIX[split]}-{kind}"
        for candidate in (directory / (name + ".gz"), directory / name):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return tuple(found)


def _fashion_candidates(path):
    # An explicit path is the only place searched: silently falling back to a
    # different copy when the caller named one would hide typos.
    if path is not None:
        return [Path(path)]
    env = os.environ.get(FASHION_MNIST_ENV)
    return ([Path(env)] if env else []) + [Path(d) for d in FASHION_MNIST_DIRS]


def find_fashion_mnist(path=None):
    """Return the directory holding Fashion-MNIST's IDX files, or None.

    Searches ``path`` if given; otherwise $GRAPHC_FASHION_MNIST, then the
    Debian package's directory (/usr/share/datasets/fashion-mnist). A
    directory counts if it has the train and t10k images/labels files
    (gzipped or not).
    """
    for d in _fashion_candidates(path):
        if all(_fashion_files(d, s) for s in _FASHION_PREFIX):
            return d
    return None


def load_fashion_mnist(split: str = "train", path=None, flatten: bool = True,
                       normalize: bool = True):
    """Load Fashion-MNIST (60,000 train / 10,000 test) from local IDX files.

    Same output conventions as load_mnist_subset; class names are in
    FASHION_MNIST_CLASSES. Raises FileNotFoundError if no copy is found.
    """
    _check_split(split, tuple(_FASHION_PREFIX))
    d = find_fashion_mnist(path)
    if d is None:
        looked = ", ".join(str(p) for p in _fashion_candidates(path))
        raise FileNotFoundError(
            f"Fashion-MNIST not found (looked in: {looked}). Install it with "
            "`apt-get install dataset-fashion-mnist`, or download "
            "train/t10k-{images-idx3,labels-idx1}-ubyte.gz from "
            "https://github.com/zalandoresearch/fashion-mnist and pass "
            f"path=DIR or set ${FASHION_MNIST_ENV}=DIR.")
    img_path, lbl_path = _fashion_files(d, split)
    images, labels = load_idx_images(img_path), load_idx_labels(lbl_path)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{img_path} has {images.shape[0]} images but "
                         f"{lbl_path} has {labels.shape[0]} labels")
    return _prepare(images, labels, flatten, normalize)


_DATASETS = {"mnist-subset": load_mnist_subset, "fashion-mnist": load_fashion_mnist}


def load_dataset(name: str, split: str = "train", **kwargs):
    """load_dataset("mnist-subset" | "fashion-mnist", split, **kwargs) -> (X, y)."""
    key = name.lower().replace("_", "-")
    if key not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(_DATASETS)}")
    return _DATASETS[key](split=split, **kwargs)


def iterate_minibatches(X, y, batch_size: int, shuffle: bool = True, rng=None,
                        drop_last: bool = False):
    """Yield (X_batch, y_batch) over one epoch.

    rng: None (fresh entropy), an int seed, or a np.random.Generator /
    RandomState; only used when shuffle=True. The last short batch is
    yielded unless drop_last=True.
    """
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    batch_size = int(batch_size)
    if shuffle:
        if not isinstance(rng, (np.random.Generator, np.random.RandomState)):
            rng = np.random.default_rng(rng)
        order = rng.permutation(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if shuffle:
            idx = order[start:start + batch_size]
            yield X[idx], y[idx]
        else:
            # Plain slices: views, no copy.
            yield X[start:start + batch_size], y[start:start + batch_size]
