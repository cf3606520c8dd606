"""Load-time computation of nodes whose inputs are all known when the model loads: the shape
subgraphs exporters write (Shape -> Gather -> Concat -> Reshape, Range, ConstantOfShape...).
Values are numpy arrays; symbolic dims ride in object arrays (sympy entries), which numpy's
arithmetic handles entry by entry. A folder returns None to leave the node to its converter."""
import numpy as np
import sympy

from ..ir.types import simplify_dim
from .convert_tensor import onnx_reshape_dims, slice_index, split_sizes
from .node import is_symbolic
from .registry import Unsupported, folder


def normalize(arr):
    """Object arrays back to int64/bool when no symbolic entry is left; dims simplified."""
    arr = np.asarray(arr)
    if arr.dtype != object:
        return arr
    flat = [simplify_dim(e) if isinstance(e, sympy.Basic) else e for e in arr.reshape(-1)]
    flat = [int(e) if isinstance(e, sympy.Integer) else e for e in flat]
    if all(isinstance(e, (bool, np.bool_)) for e in flat):
        return np.array(flat, dtype=bool).reshape(arr.shape)
    if all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in flat):
        return np.array(flat, dtype="int64").reshape(arr.shape)
    out = np.empty(arr.shape, dtype=object)
    out.reshape(-1)[:] = flat if flat else []
    return out


def _trunc_div(a, b):
    if isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic):
        return simplify_dim(sympy.floor(sympy.sympify(a) / b))  # dims are positive
    q = abs(int(a)) // abs(int(b))
    return q if (a >= 0) == (b >= 0) else -q


def _decide(rel, a, b):
    """A comparison of dims that must be decidable at load time."""
    diff = sympy.sympify(a) - b
    if isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic):
        diff = sympy.expand(diff)
        if not diff.is_number:
            # a positive dim against a number <= 0 is decidable; anything else is not
            if rel in ("eq",) and sympy.sympify(b).is_number and b <= 0 and sympy.sympify(a).is_positive:
                return False
            raise Unsupported(f"cannot decide {a} {rel} {b} when the model loads")
    d = float(diff)
    return {"eq": d == 0, "lt": d < 0, "le": d <= 0, "gt": d > 0, "ge": d >= 0}[rel]


def _ints_only(*arrs):
    return all(a.dtype == object or a.dtype.kind in "iub" for a in arrs)


_ARITH = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}
_REL = {"Equal": "eq", "Less": "lt", "LessOrEqual": "le", "Greater": "gt", "GreaterOrEqual": "ge"}


@folder("Add", "Sub", "Mul", "Div", "Mod", "Equal", "Less", "LessOrEqual", "Greater",
        "GreaterOrEqual", "Max", "Min")
def fold_binary(node):
    vals = [node.value(i) for i in range(len(node.input_names)) if node.has_input(i)]
    if not _ints_only(*vals) and any(is_symbolic(v) for v in vals):
        return None
    if not any(is_symbolic(v) for v in vals):
        if not _ints_only(*vals):
            return None  # float constants: graphc's own folding computes them in C precision
    a = vals[0]
    op = node.op_type
    if op in _ARITH:
        return normalize(_ARITH[op](a, vals[1]))
    if op == "Div":
        return normalize(np.frompyfunc(_trunc_div, 2, 1)(a, vals[1]).astype(object))
    if op == "Mod":
        if node.attr("fmod", 0) or any(is_symbolic(v) for v in vals):
            return None
        return np.mod(a, vals[1])
    if op in _REL:
        rel = _REL[op]
        return normalize(np.frompyfunc(lambda x, y: _decide(rel, x, y), 2, 1)(a, vals[1]))
    if op in ("Max", "Min"):
        if any(is_symbolic(v) for v in vals):
            return None
        fn = np.maximum if op == "Max" else np.minimum
        out = vals[0]
        for v in vals[1:]:
            out = fn(out, v)
        return out
    return None


@folder("Neg", "Abs", "Identity", "Not")
def fold_unary(node):
    v = node.value(0)
    if node.op_type == "Identity":
        return v
    if not _ints_only(v):
        return None
    if node.op_type == "Neg":
        return normalize(-v)
    if node.op_type == "Not":
        return None if is_symbolic(v) else np.logical_not(v)
    return None if is_symbolic(v) else np.abs(v)


@folder("Cast")
def fold_cast(node):
    from . import proto as P
    v = node.value(0)
    dtype = P.dtype_of_elem(node.attr("to"), f"{node} attribute to")
    if is_symbolic(v):
        return v if dtype in ("int64", "int32") else None
    if not _ints_only(v):
        return None
    return v.astype(dtype)


@folder("Where")
def fold_where(node):
    c, a, b = node.value(0), node.value(1), node.value(2)
    if not _ints_only(a, b):
        return None
    return normalize(np.where(c.astype(bool), a, b))


@folder("Reshape")
def fold_reshape(node):
    v = node.value(0)
    dims = onnx_reshape_dims(list(v.shape), node.value(1), node.attr("allowzero", 0))
    if not all(isinstance(d, int) for d in dims):
        return None
    return v.reshape(dims)


@folder("Flatten")
def fold_flatten(node):
    v = node.value(0)
    axis = node.attr("axis", 1)
    axis = axis + v.ndim if axis < 0 else axis
    return v.reshape(int(np.prod(v.shape[:axis])), -1)


@folder("Transpose")
def fold_transpose(node):
    return np.transpose(node.value(0), node.attr("perm"))


@folder("Squeeze")
def fold_squeeze(node):
    v = node.value(0)
    axes = node.static_ints(1, "axes") if node.has_input(1) else node.attr("axes")
    return np.squeeze(v, tuple(a % v.ndim for a in axes) if axes else None)


@folder("Unsqueeze")
def fold_unsqueeze(node):
    v = node.value(0)
    axes = node.static_ints(1, "axes") if node.has_input(1) else node.attr("axes")
    n = v.ndim + len(axes)
    return np.expand_dims(v, tuple(a % n for a in axes))


@folder("Concat")
def fold_concat(node):
    vals = [node.value(i) for i in range(len(node.input_names)) if node.has_input(i)]
    if any(is_symbolic(v) for v in vals):
        vals = [v.astype(object) for v in vals]
    return normalize(np.concatenate(vals, axis=node.attr("axis")))


@folder("Gather")
def fold_gather(node):
    v, idx = node.value(0), node.value(1)
    if is_symbolic(idx):
        return None
    axis = node.attr("axis", 0) % max(v.ndim, 1)
    n = v.shape[axis]
    if np.any((idx < -n) | (idx >= n)):
        raise Unsupported(f"indices {idx.tolist()} out of range for axis {axis} of size {n}")
    return normalize(np.take(v, idx, axis=axis))


@folder("Slice")
def fold_slice(node):
    v = node.value(0)
    return normalize(np.array(v[slice_index(node, v.shape)]))


@folder("Split")
def fold_split(node):
    v = node.value(0)
    axis = node.attr("axis", 0) % v.ndim
    sizes = split_sizes(node, v.shape[axis], node.num_outputs)
    return np.split(v, np.cumsum(sizes)[:-1], axis=axis)


@folder("Expand")
def fold_expand(node):
    v, shape = node.value(0), node.value(1)
    if is_symbolic(shape):
        return None
    out_shape = np.broadcast_shapes(v.shape, tuple(int(d) for d in shape))
    return np.array(np.broadcast_to(v, out_shape))


@folder("ReduceProd", "ReduceSum")
def fold_reduce(node):
    v = node.value(0)
    if not _ints_only(v):
        return None
    axes = node.static_ints(1, "axes") if node.has_input(1) else node.attr("axes")
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            return v
        axes = list(range(v.ndim))
    fn = np.prod if node.op_type == "ReduceProd" else np.sum
    return normalize(np.asarray(fn(v, axis=tuple(a % v.ndim for a in axes),
                                   keepdims=bool(node.attr("keepdims", 1)))))
