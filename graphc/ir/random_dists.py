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
    """Draws from range(a) (a an int) or from the entries of a 1-D tensor a, uniformly or with
    probabilities p (a 1-D tensor of a's length).

    replace=True: each entry independently. replace=False: numpy's semantics, the prod(size)
    entries are distinct (size must be ints); with p, the order of numpy's successive draws (each
    from what is left, renormalized). MRG's form: p a matrix (rows, a), `a` None, size an int m:
    m distinct entries per row, shape (rows, m)."""
    if a is None and p is None:
        a = 2  # (Theano's default)
    if a is None:  # MRG_RandomStreams.choice(size, p=matrix): a is p's length
        p = as_variable(p)
        a = p.type.shape[-1]
        if not isinstance(a, int):
            raise GraphcTypeError(f"choice: p must have a static last axis, got {p.type}")
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
    if not replace:
        index = _without_replacement(draw, size, k, p)
    elif p is None:
        u = draw(size, "float64")
        # u * k >= 0: the cast truncates, which is floor; the minimum guards rounding up to k
        index = E.minimum_op(E.cast(E.mul_op(u, float(k)), "int64"), k - 1)
    else:
        u = draw(size, "float64")
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


def _without_replacement(draw, size, k, p):
    """m = prod(size) distinct indices of range(k), in the order they were drawn: the m largest
    of k keys, u_i (uniform) or log(u_i) / p_i (weighted: Efraimidis and Spirakis, the same law
    as successive draws renormalized). O(k * max(k, m)) work: meant for small k."""
    shape = _size_tuple(size)
    if not all(isinstance(d, (int, np.integer)) for d in shape):
        raise GraphcTypeError(f"choice: with replace=False, size must be ints, got {size!r}")
    if p is not None:
        p = E.cast(as_variable(p), "float64")
        if p.ndim not in (1, 2) or p.type.shape[-1] != k:
            raise GraphcTypeError(f"choice: p must be a vector of {k} probabilities (or a matrix "
                                  f"of rows of them), got {p.type}")
        _check_constant_p(p, shape, k)
    rows = () if p is None or p.ndim == 1 else (p.type.shape[0],)
    if rows and len(shape) != 1:
        raise GraphcTypeError(f"choice: with a matrix p, size is the number of draws per row "
                              f"(an int), got {size!r}")
    m = int(np.prod(shape, dtype=np.int64))
    if m > k:
        raise GraphcTypeError(f"choice: cannot take {m} distinct entries of {k} "
                              "(replace=False); draw fewer or use replace=True")
    u = draw(rows + (k,), "float64")
    if p is None:
        key = u
    else:  # log of 1 - u (in (0, 1], nudged below 1) over p; p = 0 gives the lowest keys
        log_u = E.log_op(E.mul_op(E.sub_op(1.0, u), 1.0 - 2.0 ** -53))
        key = E.div_op(log_u, E.maximum_op(p, 1e-300))
    rank = _descending_rank(key, k)  # (rows..., k)
    # the index at each position r < m: the one whose rank is r
    positions = constant(np.arange(m, dtype="int64").reshape(m, 1))
    picked = E.cast(E.eq_op(expand_dims(rank, -2), positions), "int64")  # (rows..., m, k)
    index = reduce_sum(E.mul_op(picked, constant(np.arange(k, dtype="int64"))), -1)
    if rows:
        return index
    from .ops.shape import reshape
    return reshape(index, shape)


def _descending_rank(key, k):
    """Per entry of the last axis, how many keys beat it (larger, or equal and earlier)."""
    row, col = expand_dims(key, -2), expand_dims(key, -1)  # [.., i, j]: key_j, key_i
    earlier = constant(np.tril(np.ones((k, k), dtype=bool), -1))  # [i, j]: j < i
    beats = E.or_op(E.gt_op(row, col), E.and_op(E.eq_op(row, col), earlier))
    return reduce_sum(E.cast(beats, "int64"), -1)


def _check_constant_p(p, shape, k):
    """numpy's checks where p is known when the graph is built."""
    from .graph import Constant
    if not isinstance(p, Constant) and not (p.owner is not None and all(
            isinstance(i, Constant) for i in p.owner.inputs)):
        return
    value = p.data if isinstance(p, Constant) else p.owner.inputs[0].data
    value = np.asarray(value, dtype="float64")
    m = int(np.prod(shape, dtype=np.int64)) if value.ndim == 1 else int(shape[0])
    if (value < 0).any() or not np.allclose(value.sum(axis=-1), 1.0):
        raise GraphcTypeError(f"choice: p must be non-negative and sum to 1, got {value}")
    if (np.count_nonzero(value, axis=-1) < m).any():
        raise GraphcTypeError(f"choice: fewer than {m} entries of p are non-zero; cannot take "
                              f"{m} distinct entries (replace=False)")


def permutation(draw, n, dtype="int64", size=()):
    """Random permutations of range(n) (n an int known when the graph is built), of shape
    size + (n,): each row independent (Theano's permutation(size=(k,), n) gives k rows). The
    rank of each of n uniform draws, ties broken by position. O(n^2) work: meant for small n."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise GraphcTypeError(f"permutation: n must be a positive int known when the graph is "
                              f"built, got {n!r}")
    n = int(n)
    if dtype not in INT_DTYPES:
        raise GraphcTypeError(f"permutation: dtype must be int32 or int64, got {dtype!r}")
    u = draw(tuple(_size_tuple(size)) + (n,), "float64")
    row, col = expand_dims(u, -2), expand_dims(u, -1)  # [.., i, j]: u_j, u_i
    earlier = constant(np.tril(np.ones((n, n), dtype=bool), -1))  # [i, j]: j < i
    below = E.or_op(E.lt_op(row, col), E.and_op(E.eq_op(row, col), earlier))
    return E.cast(reduce_sum(E.cast(below, "int64"), -1), dtype)


def _size_tuple(size):
    if size is None:
        return ()
    if isinstance(size, (int, np.integer)) or not hasattr(size, "__len__"):
        return (size,)
    return tuple(size)
