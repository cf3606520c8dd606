"""Slices whose length changes from step to step of a loop (x[0:i+1] in a Loop body), read by
reductions over the axes that vary.

A scan's shapes are fixed for the whole call, so such a slice cannot be a value of the step.
What a model does with it is almost always a reduction over the varying axis (a prefix sum,
mean or max): that is exact over the whole axis with the positions outside the slice replaced
by the reduction's neutral element (0 for sums, 1 for products, -inf/+inf for max/min), and the
count of selected positions dividing a mean. So the importer keeps the slice as a MaskedSlice
(the tensor, and per varying axis a boolean vector of the positions ONNX's clamped slice
selects at this step); a reduction over all of its varying axes consumes it, anything else is
refused naming the slice and what reads it.
"""
import numpy as np

from ..ir.ops import elemwise as E
from ..ir.ops.reduce import _reduce
from ..ir.ops.shape import arange, dim_value, reshape
from ..ir.types import FLOAT_DTYPES
from .registry import Unsupported

I64 = "int64"
READERS = ("ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceSumSquare, ReduceL1, "
           "ReduceL2, ReduceLogSum, ReduceLogSumExp")


class MaskedSlice:
    """x (sliced along its fixed-length axes) and [(axis, bool vector over the axis)]."""

    def __init__(self, x, masks):
        self.x, self.masks = x, list(masks)

    def refusal(self, name):
        axes = [a for a, _ in self.masks]
        return (f"{name!r} is a slice whose length along axis {axes} changes from step to step "
                "of the loop (its bounds follow the iteration), while a loop's shapes are fixed "
                f"for the call: graphc reads such a slice only in a reduction over those axes "
                f"({READERS})")


def _size(n):
    return np.int64(n) if isinstance(n, int) else dim_value(n)


def axis_mask(s, e, st, n):
    """The positions of an axis of size n that ONNX's Slice(s, e, st) selects (s, e int64
    scalars computed at run time; st a number), as a bool vector."""
    nv, zero = _size(n), np.int64(0)
    i = arange(n, dtype=I64)
    s = E.where_op(E.lt_op(s, zero), E.add_op(s, nv), s)
    e = E.where_op(E.lt_op(e, zero), E.add_op(e, nv), e)
    if st > 0:
        s = E.minimum_op(E.maximum_op(s, zero), nv)
        e = E.minimum_op(E.maximum_op(e, zero), nv)
        inside, offset = E.and_op(E.ge_op(i, s), E.lt_op(i, e)), E.sub_op(i, s)
    else:
        last = E.sub_op(nv, np.int64(1))
        s = E.minimum_op(E.maximum_op(s, zero), last)
        e = E.minimum_op(E.maximum_op(e, np.int64(-1)), last)
        inside, offset = E.and_op(E.le_op(i, s), E.gt_op(i, e)), E.sub_op(s, i)
    if abs(st) > 1:
        inside = E.and_op(inside, E.eq_op(E.mod_op(offset, np.int64(abs(st))), zero))
    return inside


def _neutral(kind, dtype):
    if kind in ("sum", "mean"):
        return 0
    if kind == "prod":
        return 1
    if dtype == "bool":
        return kind == "min"
    if dtype in FLOAT_DTYPES:
        return -np.inf if kind == "max" else np.inf
    info = np.iinfo(dtype)
    return info.min if kind == "max" else info.max


def masked_reduce(ms, kind, axes, keep, pre=None, post=None):
    """The reduction `kind` of the slice over `axes` (which hold every varying axis)."""
    varying = sorted(a for a, _ in ms.masks)
    if axes is None or not set(varying) <= set(axes):
        raise Unsupported(f"it reduces axes {None if axes is None else list(axes)} of a slice whose "
                          f"length along axes {varying} changes from step to step of the loop; "
                          "reduce over those axes too (a loop's shapes are fixed for the call)")
    x = ms.x
    keep_mask = None
    for a, m in ms.masks:
        shape = [1] * x.ndim
        shape[a] = x.type.shape[a]
        m = reshape(m, tuple(shape))
        keep_mask = m if keep_mask is None else E.and_op(keep_mask, m)
    v = pre(x) if pre else x
    v = E.where_op(keep_mask, v, np.asarray(_neutral(kind, v.dtype), v.dtype))
    if kind != "mean":
        y = _reduce(kind, v, axes, keep)
    else:
        count = None
        for a in axes:
            mask = dict(ms.masks).get(a)
            c = _reduce("sum", E.cast(mask, I64), None, False) if mask is not None else \
                _size(x.type.shape[a])
            count = c if count is None else E.mul_op(count, c)
        y = E.div_op(_reduce("sum", v, axes, keep), E.cast(count, v.dtype))
    return post(y) if post else y
