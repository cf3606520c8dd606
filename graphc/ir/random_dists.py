"""Theano's distributions over graphc's counter-based uniform numbers (graphc/ir/ops/random.py):
each is a composition of ops on one or more uniform draws, so the C kernel, the numpy reference
and the gradient rules are those of the ops it is made of.

`draw(shape, dtype)` returns a fresh uniform [0, 1) tensor (a new stream of a RandomStreams).
"""
import math

import numpy as np

from ..config import config
from ..errors import GraphcTypeError
from .constructors import as_variable, constant
from .ops import elemwise as E
from .ops.reduce import reduce_sum
from .ops.shape import expand_dims
from .types import FLOAT_DTYPES, INT_DTYPES


def _float(dtype, what):
    dtype = dtype or config.floatX
    if dtype not in FLOAT_DTYPES:
        raise GraphcTypeError(f"{what}: dtype must be float32 or float64, got {dtype!r}")
    return dtype


def uniform(draw, size, low=0.0, high=1.0, dtype=None):
    """low + (high - low) * u: uniform on [low, high)."""
    dtype = _float(dtype, "uniform")
    u = draw(size, dtype)
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and (low, high) == (0, 1):
        return u
    low, high = E.cast(as_variable(low), dtype), E.cast(as_variable(high), dtype)
    return E.add_op(low, E.mul_op(E.sub_op(high, low), u))


def normal(draw, size, avg=0.0, std=1.0, dtype=None):
    """avg + std * z with z standard normal, by Box-Muller on two uniform draws (float64 inside:
    a float32 u of 2^-24 granularity would cut the tail at ~5.8 sigma)."""
    dtype = _float(dtype, "normal")
    u1, u2 = draw(size, "float64"), draw(size, "float64")
    radius = E.sqrt_op(E.mul_op(-2.0, E.log_op(E.sub_op(1.0, u1))))  # 1 - u1 in (0, 1]
    z = E.mul_op(radius, E.cos_op(E.mul_op(2.0 * math.pi, u2)))
    z = E.cast(z, dtype)
    avg, std = E.cast(as_variable(avg), dtype), E.cast(as_variable(std), dtype)
    return E.add_op(avg, E.mul_op(std, z))


def binomial(draw, size, n=1, p=0.5, dtype="int64"):
    """The number of successes in n trials of probability p (n an int known when the graph is
    built): n Bernoulli draws (u < p) summed. Theano's dA corrupts its input with
    binomial(size=x.shape, n=1, p=1 - level, dtype=floatX) * x."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise GraphcTypeError(f"binomial: n must be a non-negative int known when the graph is "
                              f"built, got {n!r}")
    dtype = dtype or "int64"
    p = as_variable(p)
    if int(n) == 1:
        hits = E.lt_op(draw(size, "float64"), p)
        return E.cast(hits, dtype)
    shape = (int(n),) + tuple(_size_tuple(size))
    hits = E.cast(E.lt_op(draw(shape, "float64"), p), "int64")
    return E.cast(reduce_sum(hits, 0), dtype)


def choice(draw, size, a=2, replace=True, p=None, dtype="int64"):
    """Draws from range(a) (a an int) or from the entries of a 1-D tensor a, with replacement,
    uniformly or with probabilities p (a 1-D tensor of a's length)."""
    if not replace:
        raise GraphcTypeError("choice: replace=False is not supported; use permutation(n=...) "
                              "and slice its first entries")
    values = None
    if isinstance(a, (int, np.integer)) and not isinstance(a, bool):
        k = int(a)
    else:
        values = as_variable(a)
        if values.ndim != 1 or not isinstance(values.type.shape[0], int):
            raise GraphcTypeError(f"choice: a must be an int or a 1-D tensor of static length, "
                                  f"got {values.type}")
        k = values.type.shape[0]
    if k < 1:
        raise GraphcTypeError(f"choice: a must have at least one entry, got {a!r}")
    u = draw(size, "float64")
    if p is None:
        # u * k >= 0: the cast truncates, which is floor; the minimum guards rounding up to k
        index = E.minimum_op(E.cast(E.mul_op(u, float(k)), "int64"), k - 1)
    else:
        p = E.cast(as_variable(p), "float64")
        if p.ndim != 1:
            raise GraphcTypeError(f"choice: p must be a 1-D tensor, got {p.type}")
        # index = how many cumulative probabilities (all but the last) u has reached
        upper = constant(np.triu(np.ones((k, k - 1))).astype("float64")[:, :k - 1]) if k > 1 else None
        if upper is None:
            index = E.cast(E.mul_op(u, 0.0), "int64")
        else:
            from .ops.blas import dot
            cdf = dot(p, upper)  # cdf[j] = p[0] + ... + p[j]
            index = reduce_sum(E.cast(E.ge_op(expand_dims(u, -1), cdf), "int64"), -1)
    index = E.cast(index, dtype if values is None else "int64")
    if values is None:
        return index
    from .ops.indexing import take
    return take(values, index)


def permutation(draw, n, dtype="int64"):
    """A random permutation of range(n) (n an int known when the graph is built): the rank of
    each of n uniform draws, ties broken by position. O(n^2) work: meant for small n."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise GraphcTypeError(f"permutation: n must be a positive int known when the graph is "
                              f"built, got {n!r}")
    n = int(n)
    if dtype not in INT_DTYPES:
        raise GraphcTypeError(f"permutation: dtype must be int32 or int64, got {dtype!r}")
    u = draw((n,), "float64")
    row, col = expand_dims(u, 0), expand_dims(u, 1)  # (1, n): u_j, (n, 1): u_i
    earlier = constant(np.tril(np.ones((n, n), dtype=bool), -1))  # [i, j]: j < i
    below = E.or_op(E.lt_op(row, col), E.and_op(E.eq_op(row, col), earlier))
    return E.cast(reduce_sum(E.cast(below, "int64"), 1), dtype)


def _size_tuple(size):
    if isinstance(size, (int, np.integer)) or not hasattr(size, "__len__"):
        return (size,)
    return tuple(size)
