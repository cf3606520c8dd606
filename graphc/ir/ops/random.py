"""Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11) and dropout.

random_uniform(shape, seed, counter) is a pure function of (key, counter, element index): the
C kernel and the numpy reference produce bit-identical numbers, and no result depends on the
number of threads. Element i of a float32 tensor is word i % 4 of Philox(block i // 4); a float64
takes two words (element i: block i // 2, words 2*(i % 2) and 2*(i % 2) + 1). The Philox counter
is (block low, block high, counter low, counter high), the key comes from (seed, stream).

`counter` is an int64 scalar in the graph (usually a shared variable): RandomStreams(seed) owns
one and returns the update counter + 1 for G.function(updates=...), so every call draws fresh
numbers and a seed replays a whole run (set the counter back to replay from a point).
"""
import numpy as np
import sympy

from ...errors import GraphcTypeError
from ..graph import Op
from ..types import FLOAT_DTYPES, TensorType, as_dim

PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
_MASK32, _MASK64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF


def splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream_key(seed, stream=0):
    """The 64-bit Philox key of stream `stream` of `seed` (streams of one seed never overlap)."""
    return splitmix64((int(seed) & _MASK64) ^ splitmix64(int(stream) & _MASK64))


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on numpy uint64 arrays holding 32-bit words; returns the 4 output words."""
    u = np.uint64
    m0, m1, mask = u(PHILOX_M0), u(PHILOX_M1), u(_MASK32)
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3))
    k0, k1 = int(k0), int(k1)
    for _ in range(10):
        p0, p1 = m0 * c0, m1 * c2  # < 2**64: exact
        c0, c1, c2, c3 = (p1 >> u(32)) ^ c1 ^ u(k0), p1 & mask, (p0 >> u(32)) ^ c3 ^ u(k1), p0 & mask
        k0, k1 = (k0 + PHILOX_W0) & _MASK32, (k1 + PHILOX_W1) & _MASK32
    return c0, c1, c2, c3


def uniform_bits(n, key, counter, dtype):
    """n uniform numbers in [0, 1) of `dtype` for (key, counter), as the C kernel computes them."""
    per = 4 if dtype == "float32" else 2
    nblocks = -(-n // per)
    blk = np.arange(nblocks, dtype=np.uint64)
    ctr = int(counter) & _MASK64
    words = philox4x32_10(blk & np.uint64(_MASK32), blk >> np.uint64(32),
                          np.full(nblocks, ctr & _MASK32, np.uint64),
                          np.full(nblocks, ctr >> 32, np.uint64), key & _MASK32, key >> 32)
    w = np.stack(words, axis=1)  # (nblocks, 4)
    if dtype == "float32":
        out = (w.reshape(-1) >> np.uint64(8)).astype(np.float32) * np.float32(2.0 ** -24)
    else:
        hi = (w[:, 0::2].reshape(-1) >> np.uint64(5)).astype(np.float64)
        lo = (w[:, 1::2].reshape(-1) >> np.uint64(6)).astype(np.float64)
        out = (hi * 67108864.0 + lo) * 2.0 ** -53
    return out[:n]


class RandomUniform(Op):
    """counter (int64 scalar) -> uniform [0, 1) numbers of `shape`, a function of (key, counter)."""
    __props__ = ("shape", "key", "dtype")
    needs_dims = True

    def __init__(self, shape, key, dtype):
        self.shape, self.key, self.dtype = tuple(shape), int(key) & _MASK64, dtype

    def infer(self, input_types, ctx):
        (t,) = input_types
        if t.ndim != 0 or t.dtype not in ("int64", "int32"):
            raise GraphcTypeError(f"random_uniform: the counter must be an int64 scalar, got {t}")
        return [TensorType(self.dtype, self.shape)]

    def reference(self, counter, dims=None):
        shape = [d if isinstance(d, int) else int(sympy.sympify(d).subs(dims)) for d in self.shape]
        n = int(np.prod(shape, dtype=np.int64))
        return uniform_bits(n, self.key, int(np.asarray(counter)), self.dtype).reshape(shape)

    def grad(self, node, output_grads):
        return [None]


def _shape_of(shape):
    from .shape import _dim_of
    if isinstance(shape, (int, np.integer)) or not hasattr(shape, "__len__"):
        shape = (shape,)
    return tuple(as_dim(_dim_of(d), "random_uniform shape") for d in shape)


def random_uniform(shape, seed, counter, dtype=None, stream=0):
    """Uniform [0, 1) numbers of `shape` (ints, graphc.dim or x.shape[i]) drawn from Philox with
    the key of (seed, stream) at `counter` (an int64 scalar variable, e.g. a shared one)."""
    from ...config import config
    from ..constructors import as_variable
    from .elemwise import cast
    dtype = dtype or config.floatX
    if dtype not in FLOAT_DTYPES:
        raise GraphcTypeError(f"random_uniform: dtype must be float32 or float64, got {dtype!r}")
    counter = as_variable(counter)
    if counter.dtype == "int32":
        counter = cast(counter, "int64")
    return RandomUniform(_shape_of(shape), stream_key(seed, stream), dtype)(counter)


class RandomStreams:
    """Theano's name: a seed plus an int64 counter (a shared variable) in graph state.

        rng = G.RandomStreams(seed=1)
        u = rng.uniform(x.shape)                     # a new stream per call
        f = G.function([x], y, updates=rng.updates())  # counter += 1 after each call
    """

    def __init__(self, seed=None, name="rng_counter"):
        from ..constructors import shared
        self.seed = 12345 if seed is None else int(seed)
        self.counter = shared(np.int64(0), name=name)
        # Theano's default update: every function that draws from this stream advances the
        # counter after each call (unless compiled with no_default_updates), so no two calls draw
        # the same numbers even when the user forgets updates().
        self.counter.default_update = self.counter + 1
        self._n_streams = 0

    def draw(self, shape, dtype=None):
        """Uniform [0, 1) numbers of `shape` from a new stream of this seed."""
        stream = self._n_streams
        self._n_streams += 1
        return random_uniform(shape, self.seed, self.counter, dtype, stream)

    # Theano's distributions (shared_randomstreams and MRG_RandomStreams share these names);
    # compositions of draws, in graphc/ir/random_dists.py. ndim and nstreams are accepted and
    # checked or ignored as Theano's CPU versions do.
    def uniform(self, size=(), low=0.0, high=1.0, ndim=None, dtype=None, nstreams=None):
        from ..random_dists import uniform
        return uniform(self.draw, _checked_size(size, ndim), low, high, dtype)

    def normal(self, size=(), avg=0.0, std=1.0, ndim=None, dtype=None, nstreams=None):
        from ..random_dists import normal
        return normal(self.draw, _checked_size(size, ndim), avg, std, dtype)

    def binomial(self, size=(), n=1, p=0.5, ndim=None, dtype="int64", nstreams=None):
        from ..random_dists import binomial
        return binomial(self.draw, _checked_size(size, ndim), n, p, dtype)

    def choice(self, size=(), a=None, replace=True, p=None, ndim=None, dtype="int64"):
        from ..random_dists import choice
        return choice(self.draw, _checked_size(size, ndim), a, replace, p, dtype)

    def permutation(self, size=(), n=1, ndim=None, dtype="int64"):
        from ..random_dists import permutation
        return permutation(self.draw, n, dtype, _checked_size(size, ndim))

    def updates(self):
        """{counter: counter + 1}: include it in G.function(updates=...) (merge with other
        updates: `{**optimizer_updates, **rng.updates()}`)."""
        return {self.counter: self.counter + 1}


def _checked_size(size, ndim):
    if size is None:
        size = ()
    if ndim is not None and len(_shape_of(size) if size != () else ()) != ndim:
        raise GraphcTypeError(f"random: size {size!r} does not have ndim={ndim} entries")
    return size


def dropout(x, p, rng_state, training=True):
    """Inverted dropout: x * (u >= p) / (1 - p) with u ~ U[0, 1) of x's shape; the identity when
    not training or p == 0. rng_state: a RandomStreams (each call draws a new stream of it), or a
    (seed, counter) pair for random_uniform (stream 0: two dropouts given the same pair share
    their mask)."""
    from ..constructors import as_variable, constant
    from .elemwise import cast, ge_op
    x = as_variable(x)
    if not 0.0 <= p < 1.0:
        raise GraphcTypeError(f"dropout: p must be in [0, 1), got {p!r}")
    if not training or p == 0.0:
        return x
    if x.dtype not in FLOAT_DTYPES:
        raise GraphcTypeError(f"dropout: x must be float32 or float64, got {x.type}")
    if isinstance(rng_state, RandomStreams):
        u = rng_state.draw(x.type.shape, x.dtype)
    elif isinstance(rng_state, tuple) and len(rng_state) == 2:
        u = random_uniform(x.type.shape, rng_state[0], rng_state[1], x.dtype)
    else:
        raise GraphcTypeError("dropout: rng_state must be a graphc.RandomStreams or a (seed, "
                              f"counter) pair, got {type(rng_state).__name__}")
    keep = cast(ge_op(u, constant(np.asarray(p, dtype=x.dtype))), x.dtype)
    return x * keep * constant(np.asarray(1.0 / (1.0 - p), dtype=x.dtype))
