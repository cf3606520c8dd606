"""Reductions over axes: sum, prod, max, min (one op, `kind`), and argmax."""
import numpy as np

from ...errors import GraphcTypeError
from ..graph import Op
from ..types import FLOAT_DTYPES, TensorType


def normalize_axes(axis, ndim, where):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise GraphcTypeError(f"{where}: axis {a} is out of range for a tensor of rank {ndim}")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise GraphcTypeError(f"{where}: repeated axis in {axes}")
    return tuple(sorted(out))


class Reduce(Op):
    __props__ = ("kind", "axes", "keepdims")
    _NUMPY = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}

    def __init__(self, kind, axes, keepdims=False):
        self.kind, self.axes, self.keepdims = kind, tuple(axes), bool(keepdims)

    def infer(self, input_types, ctx):
        (t,) = input_types
        shape = [(1 if i in self.axes else d) for i, d in enumerate(t.shape)
                 if self.keepdims or i not in self.axes]
        dtype = t.dtype
        if self.kind in ("sum", "prod") and dtype == "bool":
            dtype = "int64"
        return [TensorType(dtype, shape)]

    def reference(self, x):
        out_dtype = self.infer([TensorType(x.dtype.name, x.shape)], None)[0].dtype
        if self.kind in ("max", "min") and any(x.shape[i] == 0 for i in self.axes):
            raise ValueError(f"{self.kind} over an empty axis (length 0)")
        r = self._NUMPY[self.kind](x, axis=self.axes, keepdims=self.keepdims)
        return np.asarray(r).astype(out_dtype)

    def grad(self, node, output_grads):
        from .elemwise import eq_op, mul_op, second_op, cast, div_op
        from .shape import reshape
        (x,), (g,), out = node.inputs, output_grads, node.outputs[0]
        if x.dtype not in FLOAT_DTYPES:
            return [None]
        kshape = [(1 if i in self.axes else d) for i, d in enumerate(x.type.shape)]
        gk = reshape(g, kshape) if not self.keepdims else g
        if self.kind == "sum":
            return [second_op(x, gk)]
        yk = reshape(out, kshape) if not self.keepdims else out
        if self.kind == "prod":
            return [mul_op(gk, div_op(yk, x))]
        # max/min: the gradient goes to every position equal to the extreme value.
        mask = cast(eq_op(x, yk), x.dtype)
        return [mul_op(mask, gk)]


class Argmax(Op):
    """Index of the first maximum along one axis (axis=None: of the flattened tensor)."""
    __props__ = ("axis", "keepdims")

    def __init__(self, axis, keepdims=False):
        self.axis, self.keepdims = axis, bool(keepdims)

    def infer(self, input_types, ctx):
        (t,) = input_types
        if self.axis is None:
            shape = [1] * t.ndim if self.keepdims else []
        else:
            shape = [(1 if i == self.axis else d) for i, d in enumerate(t.shape)
                     if self.keepdims or i != self.axis]
        return [TensorType("int64", shape)]

    def reference(self, x):
        if x.size == 0 if self.axis is None else x.shape[self.axis] == 0:
            raise ValueError("argmax over an empty axis (length 0)")
        return np.asarray(np.argmax(x, axis=self.axis, keepdims=self.keepdims)).astype("int64")

    def grad(self, node, output_grads):
        return [None]


def reduce_sum(x, axes=None, keepdims=False):
    return _reduce("sum", x, axes, keepdims)


def _reduce(kind, x, axis, keepdims):
    from ..constructors import as_variable
    x = as_variable(x)
    axes = normalize_axes(axis, x.ndim, kind)
    if not axes and not keepdims:
        return x
    return Reduce(kind, axes, keepdims)(x)


def reduce_max(x, axis=None, keepdims=False):
    return _reduce("max", x, axis, keepdims)


def reduce_min(x, axis=None, keepdims=False):
    return _reduce("min", x, axis, keepdims)


def reduce_prod(x, axis=None, keepdims=False):
    return _reduce("prod", x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    from ..constructors import as_variable
    from .elemwise import cast, div_op
    from .shape import dim_value
    x = as_variable(x)
    axes = normalize_axes(axis, x.ndim, "mean")
    count = 1
    for a in axes:
        count = count * x.type.shape[a]
    s = _reduce("sum", x, axes, keepdims)
    if s.dtype not in FLOAT_DTYPES:
        s = cast(s, "float64" if s.dtype == "int64" else "float32")
    return div_op(s, cast(dim_value(count), s.dtype))


def var(x, axis=None, keepdims=False):
    from .elemwise import sub_op, mul_op
    m = mean(x, axis, keepdims=True)
    d = sub_op(x, m)
    return mean(mul_op(d, d), axis, keepdims)


def argmax(x, axis=None, keepdims=False):
    from ..constructors import as_variable
    x = as_variable(x)
    if axis is not None:
        axis = normalize_axes(axis, x.ndim, "argmax")
        if len(axis) != 1:
            raise GraphcTypeError("argmax: give one axis, or None for the flattened tensor")
        axis = axis[0]
    return Argmax(axis, keepdims)(x)


def argmin(x, axis=None, keepdims=False):
    from .elemwise import neg_op
    return argmax(neg_op(x), axis, keepdims)
