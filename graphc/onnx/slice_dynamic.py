"""ONNX Slice with bounds (starts, ends, steps) known only at run time, with ONNX's clamping.

Outside loop bodies the slice is graphc's symbolic slice x[a:b:s]: its start and length are value
dims the function computes from the bounds when the call starts (graphc/ir/value_dims.py), so
the output's length may depend on data. numpy's clipping is ONNX's, but for one case: with a
negative step ONNX clamps a start below -dim to 0 where numpy gives an empty slice, so such a
start is raised to -dim first.

Inside a loop body the bounds change at each step (the iteration number: x[i:i + 1]) while the
shapes of a scan are fixed for the call. Where the length is the same at every step it is
taken from the bounds' difference, a number when the model loads (both bounds are one value
plus constants, as exporters write them); where it is not (x[0:i + 1]) the slice is a
MaskedSlice, which only a reduction over that axis reads (masked_slice.py). The slice gathers start + step * arange(len)
after ONNX's normalization and clamping; at a step where ONNX would clamp the slice shorter (at
the edge of the axis), the indices are made out of range, so the call fails with "index out of
range" rather than return a value ONNX would not.
"""
import numpy as np
import sympy

from ..ir.graph import Constant
from ..ir.ops import elemwise as E
from ..ir.ops.indexing import take
from ..ir.ops.shape import Concatenate, Reshape, arange, dim_value, reshape
from ..ir.types import size_of
from .masked_slice import MaskedSlice, axis_mask
from .node import is_static
from .registry import Unsupported

I64 = "int64"


def static_axis_slice(s, e, st, n):
    """ONNX's slice of one axis of static size n with static bounds, as a python slice."""
    s, e = (v + n if v < 0 else v for v in (s, e))
    if st > 0:
        s, e = min(max(s, 0), n), min(max(e, 0), n)
    else:
        s, e = min(max(s, 0), n - 1), min(max(e, -1), n - 1)
        e = None if e == -1 else e
    return slice(s, e, st)


def _bound_entries(node, i, count, what):
    """Input i (a 1-D starts/ends/steps) as `count` entries: ints, or int64 scalar variables."""
    v = node.value(i)
    if is_static(v):
        if v.ndim != 1 or v.shape[0] != count:
            raise Unsupported(f"{what} has shape {v.shape}; expected ({count},)")
        out = []
        for e in v.reshape(-1):
            if isinstance(e, sympy.Basic) and not e.is_Integer:
                out.append(dim_value(e))
            else:
                out.append(int(e))
        return out
    x = node.input(i)
    if x.ndim != 1 or x.type.shape[0] != count:
        raise Unsupported(f"{what} has shape {x.type.shape}; expected ({count},)")
    if x.dtype not in ("int32", "int64"):
        raise Unsupported(f"{what} has dtype {x.dtype}; expected int32 or int64")
    return [_entry(x, k) for k in range(count)]


def _entry(x, k):
    """Entry k of a 1-D int tensor as an int64 scalar, seen through the Unsqueeze/Concat that
    exporters build bounds with (so a bound reads as the scalar it was made from)."""
    op = x.owner.op if x.owner is not None else None
    if isinstance(op, Reshape) and size_of(x.owner.inputs[0].type.shape) == 1:
        return _scalar(x.owner.inputs[0])
    if isinstance(op, Concatenate) and op.axis == 0:
        for piece in x.owner.inputs:
            n = piece.type.shape[0]
            if not isinstance(n, int):
                break
            if k < n:
                return _entry(piece, k)
            k -= n
    return _scalar(x[k])


def _scalar(v):
    v = reshape(v, ()) if v.ndim else v
    return v if v.dtype == I64 else E.cast(v, I64)


def _size_var(n):
    return Constant(np.int64(n)) if isinstance(n, int) else dim_value(n)


def _int(v):
    """A bound as a python int when it is known, else None."""
    if isinstance(v, int):
        return v
    if isinstance(v, Constant) and v.data.size == 1 and v.dtype in ("int32", "int64"):
        return int(v.data.reshape(-1)[0])
    return None


def _affine(v):
    """(base, offset) with v = base + offset, base a variable (None for a number)."""
    c = _int(v)
    if c is not None:
        return None, c
    offset = 0
    while v.owner is not None:
        op, ins = v.owner.op, v.owner.inputs
        name = getattr(op, "name", "")
        if isinstance(op, Reshape) or name in ("cast_int64", "cast_int32"):
            v = ins[0]
            continue
        if name in ("add", "sub") and len(ins) == 2:
            k_right, k_left = _int(ins[1]), _int(ins[0])
            if k_right is not None:
                offset += k_right if name == "add" else -k_right
                v = ins[0]
                continue
            if k_left is not None and name == "add":
                offset += k_left
                v = ins[1]
                continue
        break
    return v, offset


def value_slice(node, x, starts, ends, axes, steps):
    """The slice outside loop bodies: graphc's symbolic slice with value dims."""
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        n = x.type.shape[a]
        if all(_int(v) is not None for v in (s, e, st)) and isinstance(n, int):
            index[a] = static_axis_slice(_int(s), _int(e), _int(st), n)
            continue
        if _int(st) == 0:
            raise Unsupported("a step of 0")
        if _int(st) is None or _int(st) < 0:
            # ONNX clamps a start below -dim to 0 with a negative step (numpy: empty)
            low = E.maximum_op(_as_i64(s), E.neg_op(_size_var(n)))
            s = low if _int(st) is not None else E.where_op(
                E.lt_op(_as_i64(st), np.int64(0)), low, _as_i64(s))
        index[a] = slice(s, e, st)
    return x[tuple(index)]


def _as_i64(v):
    return Constant(np.int64(v)) if isinstance(v, int) else v


def gathered_slice(node, x, starts, ends, axes, steps):
    """The slice inside a loop body: a gather of a length fixed when the model loads, or, where
    the length changes per step, a MaskedSlice (masked_slice.py)."""
    masks = []
    for s, e, a, st in zip(starts, ends, axes, steps):
        n = x.type.shape[a]
        if all(_int(v) is not None for v in (s, e, st)) and isinstance(n, int):
            index = [slice(None)] * x.ndim
            index[a] = static_axis_slice(_int(s), _int(e), _int(st), n)
            x = x[tuple(index)]
            continue
        st = _int(st)
        if st is None:
            raise Unsupported("a step computed at run time inside a loop body (the slice's "
                              "length would change from step to step)")
        if st == 0:
            raise Unsupported("a step of 0")
        (base_s, off_s), (base_e, off_e) = _affine(s), _affine(e)
        if base_s is not base_e:   # the length changes per step: only a reduction can read it
            masks.append((a, axis_mask(_as_i64(s), _as_i64(e), st, n)))
            continue
        length = len(range(0, off_e - off_s, st))
        x = _gather_axis(x, _as_i64(s), _as_i64(e), a, st, length)
    return MaskedSlice(x, masks) if masks else x


def _gather_axis(x, s, e, axis, st, length):
    n = x.type.shape[axis]
    if length == 0:
        index = [slice(None)] * x.ndim
        index[axis] = slice(0, 0)
        return x[tuple(index)]
    nv = _size_var(n)
    zero, one = np.int64(0), np.int64(1)
    s1 = E.where_op(E.lt_op(s, zero), E.add_op(s, nv), s)
    e1 = E.where_op(E.lt_op(e, zero), E.add_op(e, nv), e)
    if st > 0:
        s2 = E.minimum_op(E.maximum_op(s1, zero), nv)
        e2 = E.minimum_op(E.maximum_op(e1, zero), nv)
        span, stride = E.sub_op(e2, s2), np.int64(st)
    else:
        last = E.sub_op(nv, one)
        s2 = E.minimum_op(E.maximum_op(s1, zero), last)
        e2 = E.minimum_op(E.maximum_op(e1, np.int64(-1)), last)
        span, stride = E.sub_op(s2, e2), np.int64(-st)
    # ceil(span / stride), at least 0: the length ONNX gives at this step
    actual = E.maximum_op(E.floordiv_op(E.add_op(span, stride - 1), stride), zero)
    idx = E.add_op(E.mul_op(arange(length, dtype=I64), np.int64(st)), s2)
    idx = E.where_op(E.eq_op(actual, np.int64(length)), idx, nv)  # clamped shorter: out of range
    return take(x, idx, axis)


def run_time_slice(node, x):
    """x sliced by an ONNX Slice node whose starts, ends or steps are computed at run time."""
    count = None
    for i in (1, 2):
        v = node.value(i)
        shape = v.shape if is_static(v) else v.type.shape
        if len(shape) != 1 or not isinstance(shape[0], int):
            raise Unsupported(f"input {i} has shape {tuple(shape)}; starts and ends are 1-D "
                              "with a number of entries known when the model loads")
        count = shape[0] if count is None else count
    starts = _bound_entries(node, 1, count, "starts")
    ends = _bound_entries(node, 2, count, "ends")
    axes = node.static_ints(3, "axes") if node.has_input(3) else list(range(count))
    steps = _bound_entries(node, 4, count, "steps") if node.has_input(4) else [1] * count
    if len(axes) != count:
        raise Unsupported("starts, ends, axes and steps differ in length")
    axes = [a % x.ndim for a in axes]
    if len(set(axes)) != len(axes):
        raise Unsupported(f"repeated axes {axes}")
    build = gathered_slice if node.in_loop_body else value_slice
    return build(node, x, starts, ends, axes, steps)


def has_run_time_bounds(node):
    return any(node.has_input(i) and not is_static(node.value(i)) for i in (1, 2, 4))

