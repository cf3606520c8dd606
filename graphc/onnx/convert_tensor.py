"""Data-movement ONNX operators: Shape, Reshape, Flatten, Transpose, (Un)Squeeze, Concat, Split,
Slice, Gather, Expand, Constant, ConstantOfShape, Range, Pad. Shape's result is a load-time value
(an object array when it holds symbolic dims); fold.py computes the shape arithmetic on it."""
import numpy as np
import sympy

from ..ir.constructors import constant
from ..ir.ops import elemwise as E
from ..ir.ops.broadcast import broadcast_shape, broadcast_to
from ..ir.ops.indexing import take
from ..ir.ops.shape import Arange, IncSubtensor, concatenate, dim_value, reshape, transpose
from ..ir.types import simplify_dim, size_of
from .node import is_static
from .registry import Unsupported, converter
from .slice_dynamic import has_run_time_bounds, run_time_slice, static_axis_slice

INT64_MAX = 2 ** 63 - 1


def shape_array(dims):
    """A shape as a load-time value: int64 when static, an object array of dims otherwise."""
    if all(isinstance(d, int) for d in dims):
        return np.array(dims, dtype="int64")
    out = np.empty(len(dims), dtype=object)
    out[:] = list(dims)
    return out


def dims_of(values):
    """Shape entries (ints or sympy) from a load-time int array."""
    return [int(v) if not isinstance(v, sympy.Basic) or v.is_Integer else v for v in values]


@converter("Shape", attrs=("start", "end"))
def shape(node):
    v = node.value(0)
    dims = list(v.shape) if is_static(v) else list(v.type.shape)
    n = len(dims)
    start, end = node.attr("start", 0), node.attr("end", n)
    start, end = (max(0, min(n, s + n if s < 0 else s)) for s in (start, end))
    return shape_array(dims[start:end])


@converter("Size")
def size(node):
    v = node.value(0)
    n = size_of(v.shape if is_static(v) else v.type.shape)
    return np.array(n, dtype="int64") if isinstance(n, int) else np.array(n, dtype=object)


def onnx_reshape_dims(in_shape, target, allowzero):
    dims = dims_of(target)
    if not allowzero:
        dims = [in_shape[i] if isinstance(d, int) and d == 0 else d for i, d in enumerate(dims)]
    if sum(1 for d in dims if isinstance(d, int) and d == -1) > 1:
        raise Unsupported(f"shape {dims} has more than one -1")
    if -1 in [d for d in dims if isinstance(d, int)]:
        known = size_of([d for d in dims if not (isinstance(d, int) and d == -1)])
        total = size_of(in_shape)
        inferred = simplify_dim(sympy.sympify(total) / known) if known != 0 else 0
        if isinstance(inferred, sympy.Basic) and not inferred.is_integer:
            inferred = simplify_dim(sympy.cancel(sympy.sympify(total) / known))
        dims = [inferred if isinstance(d, int) and d == -1 else d for d in dims]
    return dims


@converter("Reshape", attrs=("allowzero",))
def reshape_(node):
    x = node.input(0)
    dims = onnx_reshape_dims(x.type.shape, node.static(1, "shape"), node.attr("allowzero", 0))
    return reshape(x, dims)


@converter("Flatten", attrs=("axis",))
def flatten(node):
    x = node.input(0)
    axis = node.attr("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    s = x.type.shape
    return reshape(x, (size_of(s[:axis]), size_of(s[axis:])))


@converter("Transpose", attrs=("perm",))
def transpose_(node):
    x = node.input(0)
    perm = node.attr("perm")
    return transpose(x, perm if perm is not None else None)


def _axes_arg(node, ndim):
    axes = node.static_ints(1, "axes") if node.has_input(1) else node.attr("axes")
    if axes is None:
        return None
    out = sorted(a % ndim for a in axes) if ndim else []
    if len(set(out)) != len(out):
        raise Unsupported(f"repeated axes {axes}")
    return out


@converter("Squeeze", attrs=("axes",))
def squeeze(node):
    x = node.input(0)
    axes = _axes_arg(node, x.ndim)
    if axes is None:
        axes = [i for i, d in enumerate(x.type.shape) if d == 1]
    for a in axes:
        if x.type.shape[a] != 1:
            raise Unsupported(f"axis {a} of {x.type} is not of size 1")
    return reshape(x, [d for i, d in enumerate(x.type.shape) if i not in axes])


@converter("Unsqueeze", attrs=("axes",))
def unsqueeze(node):
    x = node.input(0)
    n = x.ndim + len(node.static_ints(1, "axes") if node.has_input(1) else node.attr("axes") or [])
    axes = _axes_arg(node, n)
    shape, it = [], iter(x.type.shape)
    for i in range(n):
        shape.append(1 if i in axes else next(it))
    return reshape(x, shape)


@converter("Concat", attrs=("axis",))
def concat(node):
    xs = [x for x in node.inputs() if x is not None]
    if len({x.dtype for x in xs}) > 1:
        raise Unsupported(f"inputs of dtypes {sorted({x.dtype for x in xs})}")
    return concatenate(xs, node.attr("axis"))


def split_sizes(node, total, n_out):
    sizes = node.static_ints(1, "split") if node.has_input(1) else node.attr("split")
    if sizes is not None:
        return sizes
    n = node.attr("num_outputs", n_out)
    if not isinstance(total, int):
        if n == 1:
            return [total]
        raise Unsupported(f"splitting a symbolic axis of size {total} needs split sizes")
    chunk = -(-total // n)
    return [min(chunk, total - k * chunk) for k in range(n)]


@converter("Split", attrs=("axis", "num_outputs", "split"))
def split(node):
    x = node.input(0)
    axis = node.attr("axis", 0) % x.ndim
    sizes = split_sizes(node, x.type.shape[axis], node.num_outputs)
    outs, start = [], 0
    for s in sizes:
        index = (slice(None),) * axis + (slice(start, start + s),)
        outs.append(x[index])
        start = start + s
    return outs


def slice_index(node, shape):
    """The python index of an ONNX Slice over a tensor of `shape`."""
    starts, ends = dims_of(node.static(1, "starts")), dims_of(node.static(2, "ends"))
    axes = node.static_ints(3, "axes") if node.has_input(3) else list(range(len(starts)))
    steps = node.static_ints(4, "steps") if node.has_input(4) else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise Unsupported("starts, ends, axes and steps differ in length")
    index = [slice(None)] * len(shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise Unsupported("a step of 0")
        a = a % len(shape)
        n = shape[a]
        big = (1 << 31) - 1
        if isinstance(n, int):
            if not isinstance(s, int) or not isinstance(e, int):
                raise Unsupported(f"slice bounds {s}:{e} are symbolic on an axis of static size {n}")
            index[a] = static_axis_slice(s, e, st, n)
            continue
        if isinstance(e, int):  # symbolic size: ends past the axis (INT64_MAX/MIN): to the end
            e = None if (e >= big if st > 0 else e <= -big) else e
        index[a] = slice(s, e, st)
    return tuple(index)


@converter("Slice")
def slice_(node):
    x = node.input(0)
    if has_run_time_bounds(node):
        return run_time_slice(node, x)
    return x[slice_index(node, x.type.shape)]


@converter("Gather", attrs=("axis",))
def gather(node):
    x = node.input(0)
    axis = node.attr("axis", 0) % x.ndim
    idx = node.static(1, "indices") if is_static(node.value(1)) else None
    if idx is not None and idx.ndim == 0 and idx.dtype != object:
        return x[(slice(None),) * axis + (int(idx),)]
    return take(x, node.input(1), axis)


@converter("Expand")
def expand(node):
    x = node.input(0)
    target = dims_of(node.static(1, "shape"))
    return broadcast_to(x, broadcast_shape(x.type.shape, target))


@converter("Constant", attrs=("value", "value_float", "value_floats", "value_int", "value_ints"))
def constant_(node):
    if len(node.attrs) != 1:
        raise Unsupported("exactly one value attribute is expected")
    (name, v), = node.attrs.items()
    if name == "value":
        return v
    dtype = "float32" if "float" in name else "int64"
    return np.array(v, dtype=dtype)


@converter("ConstantOfShape", attrs=("value",))
def constant_of_shape(node):
    value = node.attr("value")
    value = np.zeros((1,), "float32") if value is None else value
    if value.size != 1:
        raise Unsupported(f"value must hold one element, got shape {value.shape}")
    dims = dims_of(node.static(0, "shape"))
    scalar = value.reshape(())
    if all(isinstance(d, int) for d in dims):
        return np.full(dims, scalar, dtype=value.dtype)
    return broadcast_to(constant(scalar), dims)


@converter("Range")
def range_(node):
    start, limit, delta = (node.static_scalar(i, n) for i, n in enumerate(("start", "limit", "delta")))
    if all(not isinstance(v, sympy.Basic) for v in (start, limit, delta)):
        dtype = node.static(0, "start").dtype
        return np.arange(start, limit, delta, dtype=dtype if dtype != object else "int64")
    if isinstance(delta, sympy.Basic) or isinstance(start, sympy.Basic) and not start.is_Integer:
        raise Unsupported("a symbolic start or delta")
    n = simplify_dim(sympy.ceiling((sympy.sympify(limit) - start) / int(delta)))
    r = Arange(n, "int64")()
    if int(delta) != 1:
        r = r * np.int64(delta)
    return r + np.int64(start) if start != 0 else r


@converter("Pad", attrs=("mode",))
def pad(node):
    x = node.input(0)
    mode = node.attr("mode", "constant")
    if mode not in ("constant", "edge", "reflect", "wrap"):
        raise Unsupported(f"mode={mode!r}")
    pads = node.static_ints(1, "pads")
    value = node.static_scalar(2, "constant_value") if node.has_input(2) else 0
    axes = node.static_ints(3, "axes") if node.has_input(3) else list(range(x.ndim))
    begins, ends = [0] * x.ndim, [0] * x.ndim
    for k, a in enumerate(axes):
        begins[a % x.ndim], ends[a % x.ndim] = pads[k], pads[k + len(axes)]
    if any(p < 0 for p in begins + ends):
        raise Unsupported(f"negative pads {pads} (cropping)")
    if mode != "constant":
        return pad_by_gather(x, begins, ends, mode)
    return pad_constant(x, begins, ends, value)


def pad_by_gather(x, begins, ends, mode):
    """Pad modes edge (the border repeated), reflect (mirrored, the border not repeated: PyTorch's
    ReflectionPad) and wrap (periodic): each padded axis is a gather of x along it, so the
    gradient sums each copy back onto its source."""
    for a, (b, e) in enumerate(zip(begins, ends)):
        if b or e:
            x = take(x, _pad_indices(x.type.shape[a], b, e, mode, a), a)
    return x


def _pad_indices(n, b, e, mode, axis):
    """The source of each of the b + n + e padded positions along an axis of length n: numpy's
    own np.pad of arange(n) where n is static; where it is symbolic, the same rule computed when
    the call runs (position p = i - b clamped for edge, taken mod n for wrap, and for reflect
    folded into [0, 2(n-1)) and mirrored past n-1: np.pad's repeated reflection)."""
    if isinstance(n, int):
        if n == 0:
            raise Unsupported(f"mode={mode!r} along axis {axis} of length 0: nothing to repeat")
        return constant(np.pad(np.arange(n, dtype="int64"), (b, e), mode=mode))
    p = Arange(simplify_dim(sympy.sympify(n) + b + e), "int64")() - np.int64(b)
    length = dim_value(n)
    last = length - np.int64(1)
    if mode == "edge":
        return E.minimum_op(E.maximum_op(p, np.int64(0)), last)
    if mode == "wrap":
        return E.mod_op(p, length)
    period = last * np.int64(2)
    folded = E.mod_op(p, period)  # (a length of 1: mod 0 is 0, the one element)
    return E.where_op(E.gt_op(folded, last), period - folded, folded)


def pad_constant(x, begins, ends, value):
    """x with `value` around it: begins[k] before and ends[k] after axis k."""
    s = x.type.shape
    shape = tuple(simplify_dim(sympy.sympify(d) + b + e) for d, b, e in zip(s, begins, ends))
    index = tuple((b, simplify_dim(sympy.sympify(d) + b), 1) for d, b in zip(s, begins))
    y = IncSubtensor(index, shape)(x)
    if value != 0:
        inside = IncSubtensor(index, shape)(E.second_op(x, np.asarray(True)))
        y = E.where_op(inside, y, np.asarray(value, x.dtype))
    return y
