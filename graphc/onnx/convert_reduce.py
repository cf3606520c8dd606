"""Reductions: ReduceSum/Mean/Max/Min/Prod and the composed ones (SumSquare, L1, L2, LogSum,
LogSumExp), with axes as an attribute (before opset 18) or an input; ArgMax/ArgMin."""
import numpy as np

from ..ir.constructors import constant
from ..ir.ops import elemwise as E
from ..ir.ops.reduce import Argmax, _reduce, mean, normalize_axes
from ..ir.ops.shape import dim_value
from ..ir.types import FLOAT_DTYPES
from .masked_slice import masked_reduce
from .registry import Unsupported, converter

REDUCE_ATTRS = ("axes", "keepdims", "noop_with_empty_axes")


def _axes(node, x):
    axes = node.static_ints(1, "axes") if node.has_input(1) else node.attr("axes")
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            return None
        return tuple(range(x.ndim))
    try:
        return normalize_axes(axes, x.ndim, str(node))
    except Exception as e:  # noqa: BLE001  (GraphcTypeError: out of range or repeated)
        raise Unsupported(str(e)) from None


def _reducer(kind, pre=None, post=None, float_only=False):
    def fn(node):
        masked = node.masked_input(0)
        x = masked.x if masked is not None else node.input(0)
        if float_only and x.dtype not in FLOAT_DTYPES:
            raise Unsupported(f"input of dtype {x.dtype}: graphc computes it on floats")
        axes = _axes(node, x)
        if masked is not None:   # a slice whose length changes per loop step
            return masked_reduce(masked, kind, axes, bool(node.attr("keepdims", 1)), pre, post)
        if axes is None:
            return x if pre is None else (post or (lambda v: v))(pre(x))
        keep = bool(node.attr("keepdims", 1))
        if kind in ("max", "min") and any(x.type.shape[a] == 0 for a in axes):
            return _extreme_of_nothing(kind, x, axes, keep)
        v = pre(x) if pre else x
        y = mean(v, axes, keep) if kind == "mean" else _reduce(kind, v, axes, keep)
        return post(y) if post else y
    return fn


def _extreme_of_nothing(kind, x, axes, keep):
    """ONNX's max (min) over an axis of length 0: the dtype's lowest (highest) value, -inf (+inf)
    for floats, where graphc's own max refuses an empty axis as numpy does. The output's shape
    (other dims may be symbolic) is that of a sum over the same axes, which reads no element."""
    if x.dtype == "bool":
        value = kind == "min"
    elif x.dtype in FLOAT_DTYPES:
        value = -np.inf if kind == "max" else np.inf
    else:
        info = np.iinfo(x.dtype)
        value = info.min if kind == "max" else info.max
    return E.second_op(_reduce("sum", x, axes, keep), constant(np.array(value, dtype=x.dtype)))


for _name, _fn in {
    "ReduceSum": _reducer("sum"),
    "ReduceMean": _reducer("mean", float_only=True),
    "ReduceMax": _reducer("max"),
    "ReduceMin": _reducer("min"),
    "ReduceProd": _reducer("prod"),
    "ReduceSumSquare": _reducer("sum", pre=lambda x: x * x),
    "ReduceL1": _reducer("sum", pre=E.abs_op),
    "ReduceL2": _reducer("sum", pre=lambda x: x * x, post=E.sqrt_op, float_only=True),
    "ReduceLogSum": _reducer("sum", post=E.log_op, float_only=True),
    "ReduceLogSumExp": _reducer("sum", pre=E.exp_op, post=E.log_op, float_only=True),
}.items():
    converter(_name, attrs=REDUCE_ATTRS)(_fn)


@converter("ArgMax", "ArgMin", attrs=("axis", "keepdims", "select_last_index"))
def argmax(node):
    x = node.input(0)
    axis = node.attr("axis", 0) % max(x.ndim, 1)
    if node.op_type == "ArgMin":
        x = E.neg_op(x) if x.dtype != "bool" else E.not_op(x)
    if not node.attr("select_last_index", 0):
        return Argmax(axis, bool(node.attr("keepdims", 1)))(x)
    # the last extreme: graphc's Argmax takes the first, so it reads the axis backwards and the
    # index is counted back from the end
    n = x.type.shape[axis] if x.ndim else 1
    last = np.int64(n - 1) if isinstance(n, int) else dim_value(n) - np.int64(1)
    backwards = x[tuple(slice(None, None, -1) if a == axis else slice(None) for a in range(x.ndim))]
    return last - Argmax(axis, bool(node.attr("keepdims", 1)))(backwards)

