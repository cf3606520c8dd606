"""Parameter fillers, after Caffe's (include/caffe/filler.hpp).

A filler is a callable ``filler(shape, rng, fan_in=None, fan_out=None) -> ndarray``. Fan sizes
default to Caffe's rule for a blob of shape (num_output, channels, kh, kw) or (num_output, n_in):
``fan_in = count / shape[0]``, ``fan_out = count / shape[1]``. Layers that store a weight in
another layout (graphc's Dense keeps (n_in, n_out), Theano's convention) pass the fans
explicitly, so the same filler draws from the same distribution as Caffe.

    constant(value=0)            every entry = value
    gaussian(std=1, mean=0, sparse=None)  N(mean, std^2), optionally sparse (Caffe)
    uniform(min=0, max=1)        U[min, max)
    xavier(variance_norm="fan_in")  U[-sqrt(3/n), sqrt(3/n)], n = fan_in | fan_out | average
    msra(variance_norm="fan_in")    N(0, 2/n)

Fillers are seeded through the ``rng`` they are given (``np.random.RandomState``); a Net derives
one per parameter from its seed and the parameter's name, so a layer's initialization does not
depend on which other layers exist (a new last layer in a fine-tuned net draws the same values
as it would in a fresh one).
"""
import zlib

import numpy as np

__all__ = ["Filler", "constant", "gaussian", "uniform", "xavier", "msra", "get_filler",
           "rng_for"]

_NORMS = ("fan_in", "fan_out", "average")


def rng_for(seed, name):
    """A RandomState that depends only on (seed, name): stable across runs and net layouts."""
    return np.random.RandomState([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])


def caffe_fans(shape):
    count = int(np.prod(shape)) if len(shape) else 1
    fan_in = count // shape[0] if len(shape) >= 1 and shape[0] else count
    fan_out = count // shape[1] if len(shape) >= 2 and shape[1] else count
    return fan_in, fan_out


class Filler:
    """Base class: subclasses implement ``sample(shape, rng, fan_in, fan_out)`` in float64."""
    kind = "filler"

    def __call__(self, shape, rng=None, fan_in=None, fan_out=None, dtype="float32"):
        shape = tuple(int(s) for s in shape)
        if rng is None:
            rng = np.random.RandomState(0)
        elif isinstance(rng, (int, np.integer)):
            rng = np.random.RandomState(int(rng))
        dfi, dfo = caffe_fans(shape)
        fan_in = dfi if fan_in is None else int(fan_in)
        fan_out = dfo if fan_out is None else int(fan_out)
        return np.asarray(self.sample(shape, rng, fan_in, fan_out), dtype=dtype).reshape(shape)

    def sample(self, shape, rng, fan_in, fan_out):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{self.kind}({args})"


class constant(Filler):  # noqa: N801 - Caffe's filler names
    kind = "constant"

    def __init__(self, value=0.0):
        self.value = float(value)

    def sample(self, shape, rng, fan_in, fan_out):
        return np.full(shape, self.value)


class gaussian(Filler):  # noqa: N801
    """N(mean, std^2). ``sparse=k`` (Caffe's sparse Gaussian) keeps each weight with probability
    k / fan_out (Caffe: k / blob.shape(0), the number of outputs) and zeroes the rest."""
    kind = "gaussian"

    def __init__(self, std=1.0, mean=0.0, sparse=None):
        if std < 0:
            raise ValueError(f"gaussian filler: std must be >= 0, got {std}")
        if sparse is not None and sparse < 0:
            raise ValueError(f"gaussian filler: sparse must be >= 0, got {sparse}")
        self.std, self.mean, self.sparse = float(std), float(mean), sparse

    def sample(self, shape, rng, fan_in, fan_out):
        values = rng.normal(self.mean, self.std, shape)
        if self.sparse is not None:
            p = min(float(self.sparse) / max(fan_out, 1), 1.0)
            values = values * (rng.uniform(size=shape) < p)
        return values


class uniform(Filler):  # noqa: N801
    kind = "uniform"

    def __init__(self, min=0.0, max=1.0):  # noqa: A002 - Caffe's parameter names
        if max < min:
            raise ValueError(f"uniform filler: max ({max}) < min ({min})")
        self.min, self.max = float(min), float(max)

    def sample(self, shape, rng, fan_in, fan_out):
        return rng.uniform(self.min, self.max, shape)


def _norm_n(variance_norm, fan_in, fan_out, who):
    v = variance_norm.lower()
    if v not in _NORMS:
        raise ValueError(f"{who} filler: variance_norm must be one of {_NORMS}, got {variance_norm!r}")
    n = {"fan_in": fan_in, "fan_out": fan_out, "average": (fan_in + fan_out) / 2.0}[v]
    if n <= 0:
        raise ValueError(f"{who} filler: fan size is {n}; cannot scale")
    return float(n)


class xavier(Filler):  # noqa: N801
    """Caffe's XavierFiller: U[-a, a], a = sqrt(3 / n)."""
    kind = "xavier"

    def __init__(self, variance_norm="fan_in"):
        _norm_n(variance_norm, 1, 1, "xavier")
        self.variance_norm = variance_norm.lower()

    def sample(self, shape, rng, fan_in, fan_out):
        a = np.sqrt(3.0 / _norm_n(self.variance_norm, fan_in, fan_out, "xavier"))
        return rng.uniform(-a, a, shape)


class msra(Filler):  # noqa: N801
    """Caffe's MSRAFiller (He et al.): N(0, 2 / n)."""
    kind = "msra"

    def __init__(self, variance_norm="fan_in"):
        _norm_n(variance_norm, 1, 1, "msra")
        self.variance_norm = variance_norm.lower()

    def sample(self, shape, rng, fan_in, fan_out):
        std = np.sqrt(2.0 / _norm_n(self.variance_norm, fan_in, fan_out, "msra"))
        return rng.normal(0.0, std, shape)


_BY_NAME = {"constant": constant, "gaussian": gaussian, "uniform": uniform, "xavier": xavier,
            "msra": msra}


def get_filler(spec):
    """A Filler from a Filler, a name ("xavier"), a (name, kwargs) pair, a dict with "type", or a
    number (constant)."""
    if isinstance(spec, Filler):
        return spec
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return constant(spec)
    if isinstance(spec, str):
        if spec.lower() not in _BY_NAME:
            raise ValueError(f"unknown filler {spec!r}; choose from {sorted(_BY_NAME)}")
        return _BY_NAME[spec.lower()]()
    if isinstance(spec, dict):
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind is None or kind.lower() not in _BY_NAME:
            raise ValueError(f"filler dict needs a 'type' in {sorted(_BY_NAME)}, got {kind!r}")
        return _BY_NAME[kind.lower()](**spec)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        return _BY_NAME[spec[0].lower()](**spec[1])
    if callable(spec):
        return spec
    raise TypeError(f"cannot make a filler from {spec!r}")
