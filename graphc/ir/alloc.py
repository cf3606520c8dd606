"""Tensors made from a value and a shape (Theano's alloc, zeros, ones, fill, eye), as
compositions of existing ops: the shape comes from aranges, which cost one tiny kernel per
axis, and `second` broadcasts the value over it."""
import numpy as np

from ..config import config
from ..errors import GraphcTypeError
from .constructors import as_variable
from .ops import elemwise as E
from .ops.shape import _dim_of, arange, reshape


def alloc(value, *shape):
    """`value` (a scalar or a tensor that broadcasts) broadcast to `shape` (ints, graphc.dim or
    x.shape[i]); Theano's T.alloc(value, *shape)."""
    value = as_variable(value)
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = tuple(shape[0])
    dims = [_shape_entry(d) for d in shape]
    if value.ndim > len(dims):
        raise GraphcTypeError(f"alloc: the value has rank {value.ndim}, more than the {len(dims)} "
                              "axes of the shape")
    template = None
    for axis, d in enumerate(dims):
        if isinstance(d, int) and d == 1:
            continue
        axis_shape = [1] * len(dims)
        axis_shape[axis] = d
        r = reshape(arange(d), axis_shape)
        template = r if template is None else E.second_op(template, r)
    if template is None:  # every axis has size 1
        return reshape(value, [1] * len(dims)) if value.ndim != len(dims) else value
    return E.second_op(template, value)


def _shape_entry(d):
    try:
        return _dim_of(d)
    except GraphcTypeError:
        raise GraphcTypeError(f"alloc/zeros/ones: a shape entry must be an int, a graphc.dim or "
                              f"x.shape[i] (a size known when the graph is built), got {d!r}") from None


def _filled(value, shape, dtype):
    if isinstance(shape, (int, np.integer)) or hasattr(shape, "dim_expr"):
        shape = (shape,)
    return alloc(np.asarray(value, dtype=dtype or config.floatX), *shape)


def zeros(shape, dtype=None):
    return _filled(0, shape, dtype)


def ones(shape, dtype=None):
    return _filled(1, shape, dtype)


def fill(model, value):
    """`value` broadcast to the shape of `model` (Theano's T.fill, a.k.a. second); a Python
    number takes the model's dtype, as Theano's constants do."""
    model = as_variable(model)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = np.asarray(value, dtype=model.dtype if model.dtype != "bool" else None)
    return E.second_op(model, as_variable(value))


def eye(n, m=None, k=0, dtype=None):
    """Ones on the k-th diagonal of an n x m matrix (sizes known when the graph is built)."""
    m = n if m is None else m
    rows = reshape(arange(n), (_shape_entry(n), 1))
    cols = reshape(arange(m), (1, _shape_entry(m)))
    return E.cast(E.eq_op(E.add_op(rows, int(k)), cols), dtype or config.floatX)
