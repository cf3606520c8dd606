"""Ops that move data without arithmetic: reshape, transpose, slicing, concatenate, and the
two ops whose values come from symbolic dims (dim_value, arange)."""
import numpy as np
import sympy

from ...errors import GraphcShapeError, GraphcTypeError
from ..graph import Op
from ..types import FitsCheck, TensorType, as_dim, simplify_dim, size_of


def _eval_dim(expr, dims):
    if isinstance(expr, int):
        return expr
    return int(sympy.sympify(expr).subs(dims))


class Reshape(Op):
    __props__ = ("shape",)

    def __init__(self, shape, what=None):
        self.shape = tuple(shape)
        self.what = what  # the reshaped variable's name, for messages (not a prop)

    def infer(self, input_types, ctx):
        (t,) = input_types
        ctx.equal(size_of(t.shape), size_of(self.shape),
                  ReshapeCount(self.what, t.shape, self.shape))
        return [TensorType(t.dtype, self.shape)]

    needs_dims = True

    def reference(self, x, dims=None):
        return np.asarray(x.reshape([_eval_dim(d, dims) for d in self.shape]), order="C")

    def grad(self, node, output_grads):
        return [reshape(output_grads[0], node.inputs[0].type.shape)]


class Transpose(Op):
    __props__ = ("perm",)

    def __init__(self, perm):
        self.perm = tuple(perm)

    def infer(self, input_types, ctx):
        (t,) = input_types
        return [TensorType(t.dtype, [t.shape[p] for p in self.perm])]

    def reference(self, x):
        return np.asarray(np.transpose(x, self.perm), order="C")

    def grad(self, node, output_grads):
        return [Transpose(tuple(np.argsort(self.perm)))(output_grads[0])]


class ReshapeCount:
    """The message of a reshape whose element count can only be checked at run time: text (as
    every constraint message; formatted only when shown, since printing symbolic shapes costs
    sympy milliseconds) that can also explain a failed check with the values."""

    def __init__(self, what, old, new):
        self.what, self.old, self.new = what, tuple(old), tuple(new)

    def __str__(self):
        return (f"reshape{'' if self.what is None else ' of ' + self.what} "
                f"{_shape_text(self.old)} -> {_shape_text(self.new)} element count")

    def __format__(self, spec):
        return format(str(self), spec)

    def __reduce__(self):
        return (ReshapeCount, (self.what, self.old, self.new))

    def explain(self, value_of, name_of=str):
        """The failure with the shapes' values (`value_of`: a dim expression -> int; `name_of`:
        a dim -> how it reads, e.g. x.shape[0])."""
        old = _shape_text(value_of(d) for d in self.old)
        new = _shape_text(value_of(d) for d in self.new)
        name = self.what or "the input"
        symbolic = _shape_text(name_of(d) for d in self.old)
        return (f"reshape of {name} from shape {symbolic} to {_shape_text(self.new)}: "
                f"{name} has shape {old} for these inputs, {value_of(size_of(self.old))} "
                f"elements, but shape {new} holds {value_of(size_of(self.new))}; pass an input "
                "of the size the reshape expects, or reshape to a shape that uses x.shape or -1")


def _shape_text(shape):
    items = [str(d) for d in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _slice_len(start, stop, step, n):
    """Length of x[start:stop:step] along an axis of size n (start/stop already resolved)."""
    if step > 0:
        return sympy.Max(0, sympy.floor((stop - start + step - 1) / step))
    return sympy.Max(0, sympy.floor((start - stop - step - 1) / (-step)))


class Subtensor(Op):
    """Basic slicing. `index` has one (start, stop, step) or an int per leading axis; starts and
    stops are resolved against the (possibly symbolic) shape at construction.

    dynamic: the axes whose bounds are integer scalars of the graph, known only at run time
    (x[i * bs:(i + 1) * bs], x[a:b:s]), as (axis, start, length, k_start, k_stop, k_step): the
    start and length (and a run-time step) are value dims (graphc/ir/value_dims.py) the function
    computes from the bounds before the program runs, clipped as numpy clips; the bounds are the
    node's inputs 1 + k (k -1: the bound was left out; k_step -1: the step is an int)."""
    __props__ = ("index", "dynamic")
    needs_dims = True

    def __init__(self, index, dynamic=()):
        self.index = tuple(index)
        self.dynamic = tuple(dynamic)

    def infer(self, input_types, ctx):
        t = input_types[0]
        _check_bounds(self, input_types[1:])
        lengths = {axis: length for axis, _, length, *_ in self.dynamic}
        shape = []
        for i, d in enumerate(t.shape):
            if i >= len(self.index):
                shape.append(d)
            elif i in lengths:
                shape.append(lengths[i])
            elif isinstance(self.index[i], tuple):
                start, stop, step = self.index[i]
                shape.append(simplify_dim(_slice_len(start, stop, step, d)))
            elif ctx is not None and not isinstance(d, int):
                _check_index_at_call(ctx, self.index[i], i, d)
        return [TensorType(t.dtype, shape)]

    def np_index(self, dims):
        idx = []
        for it in self.index:
            if isinstance(it, tuple):
                start, stop, step = (_eval_dim(v, dims) for v in it)
                if step < 0 and stop < 0:
                    stop = None  # -1 marks "through index 0" for negative steps
                idx.append(slice(start, stop, step))
            else:
                idx.append(_eval_dim(it, dims))
        return tuple(idx)

    def reference(self, x, *bounds, dims=None):
        return np.asarray(x[self.np_index(dims)], order="C")

    def grad(self, node, output_grads):
        x, bounds = node.inputs[0], node.inputs[1:]
        return [IncSubtensor(self.index, x.type.shape, self.dynamic)(output_grads[0], *bounds)] \
            + [None] * len(bounds)


def _check_index_at_call(ctx, index, axis, size):
    """x[k] on an axis whose size is known only at the call: 0 <= k < size is checked then (the
    kernels read x[k] unchecked). `index` is already resolved: x[-1] is size - 1."""
    message = IndexOutOfRange(index, axis, size)
    for room in (index, size - 1 - index):  # k >= 0 and k <= size - 1
        ctx.equal(FitsCheck(simplify_dim(room)), 0, message)


class IndexOutOfRange:
    """The message of an integer index checked at the call (formatted only when shown). Generic:
    an op that reads an index on purpose (scan's hs[-2]) words the same condition better."""
    generic = True

    def __init__(self, index, axis, size):
        self.index, self.axis, self.size = index, axis, size

    def __str__(self):
        return f"index {self.index} must lie in axis {self.axis} of size {self.size}"

    def __format__(self, spec):
        return format(str(self), spec)

    def __reduce__(self):
        return (IndexOutOfRange, (self.index, self.axis, self.size))

    def explain(self, value_of, name_of=str):
        from_end = sympy.expand(sympy.sympify(self.index) - self.size)  # x[-k]: size - k
        written = int(from_end) if from_end.is_Integer else value_of(self.index)
        need = written + 1 if written >= 0 else -written
        return (f"index {written} is out of range for axis {self.axis} of size "
                f"{name_of(self.size)} = {value_of(self.size)} for these inputs; pass an input "
                f"with at least {need} entries along axis {self.axis}")


def _check_bounds(op, bound_types):
    n = 1 + max([max(record[3:]) for record in op.dynamic], default=-1)  # (the k's)
    if len(bound_types) != n:
        raise GraphcTypeError(f"{type(op).__name__}: {n} slice bounds expected, got "
                              f"{len(bound_types)}")
    for t in bound_types:
        if t.ndim != 0 or t.dtype not in ("int32", "int64"):
            raise GraphcTypeError(f"a slice bound must be an integer scalar (int32 or int64), "
                                  f"got {t}")


class IncSubtensor(Op):
    """zeros(shape) with `g` written into the slice `index`: the gradient of Subtensor (its
    dynamic axes and bound inputs as there)."""
    __props__ = ("index", "shape", "dynamic")
    needs_dims = True

    def __init__(self, index, shape, dynamic=()):
        self.index, self.shape, self.dynamic = tuple(index), tuple(shape), tuple(dynamic)

    def infer(self, input_types, ctx):
        _check_bounds(self, input_types[1:])
        return [TensorType(input_types[0].dtype, self.shape)]

    def reference(self, g, *bounds, dims=None):
        out = np.zeros([_eval_dim(d, dims) for d in self.shape], dtype=g.dtype)
        out[Subtensor(self.index).np_index(dims)] = g
        return out

    def grad(self, node, output_grads):
        bounds = node.inputs[1:]
        return [Subtensor(self.index, self.dynamic)(output_grads[0], *bounds)] + [None] * len(bounds)


class IncSubtensorSum(Op):
    """zeros(shape) with each input g_k added into the slice indices[k]: the sum of the gradients
    of several slices of one tensor (IncSubtensor is the one-slice case). Made by the
    merge_increments pass; slices may overlap."""
    __props__ = ("indices", "shape")
    needs_dims = True

    def __init__(self, indices, shape):
        self.indices, self.shape = tuple(tuple(i) for i in indices), tuple(shape)

    def infer(self, input_types, ctx):
        if len(input_types) != len(self.indices):
            raise GraphcShapeError(f"IncSubtensorSum: {len(self.indices)} slices but "
                                   f"{len(input_types)} inputs")
        dtypes = {t.dtype for t in input_types}
        if len(dtypes) != 1:
            raise GraphcShapeError(f"IncSubtensorSum: inputs of several dtypes {sorted(dtypes)}")
        return [TensorType(input_types[0].dtype, self.shape)]

    def reference(self, *gs, dims=None):
        out = np.zeros([_eval_dim(d, dims) for d in self.shape], dtype=gs[0].dtype)
        for index, g in zip(self.indices, gs):
            out[Subtensor(index).np_index(dims)] += g
        return out

    def grad(self, node, output_grads):
        return [Subtensor(index)(output_grads[0]) for index in self.indices]


class Concatenate(Op):
    __props__ = ("axis",)

    def __init__(self, axis):
        self.axis = axis

    def infer(self, input_types, ctx):
        first = input_types[0]
        for t in input_types[1:]:
            if t.ndim != first.ndim:
                raise GraphcShapeError(f"concatenate: ranks differ ({first} vs {t})")
        shape = list(first.shape)
        total = 0
        for t in input_types:
            for ax in range(first.ndim):
                if ax != self.axis:
                    shape[ax] = ctx.equal(shape[ax], t.shape[ax], f"concatenate axis {ax}")
            total = total + t.shape[self.axis]
        shape[self.axis] = simplify_dim(sympy.sympify(total))
        dtype = np.result_type(*[t.dtype for t in input_types]).name
        return [TensorType(dtype, shape)]

    def reference(self, *xs):
        return np.concatenate(xs, axis=self.axis)

    def grad(self, node, output_grads):
        (g,) = output_grads
        grads, offset = [], 0
        for x in node.inputs:
            n = x.type.shape[self.axis]
            index = [(0, d, 1) for d in g.type.shape[:self.axis]] + [(offset, offset + n, 1)]
            grads.append(Subtensor(tuple(index))(g))
            offset = simplify_dim(sympy.sympify(offset + n))
        return grads


class DimValue(Op):
    """A scalar int64 whose value is a (symbolic) dim expression, e.g. x.shape[0]."""
    __props__ = ("expr",)
    needs_dims = True

    def __init__(self, expr):
        self.expr = expr

    def infer(self, input_types, ctx):
        return [TensorType("int64", ())]

    def reference(self, dims=None):
        return np.array(_eval_dim(self.expr, dims), dtype="int64")

    def grad(self, node, output_grads):
        return []


class ValueCount(DimValue):
    """A count taken from the value of an integer scalar of the graph (a loop's trip count read
    from data): `expr` is a value dim (graphc/ir/value_dims.py: count_dim) that the function
    binds before the program runs, to the bound's value clipped at 0. Its output is that count as
    an int64 scalar, with `dim_expr`, so shapes and scan's n_steps can use it."""

    def infer(self, input_types, ctx):
        (t,) = input_types
        if t.ndim != 0 or t.dtype not in ("int32", "int64"):
            raise GraphcTypeError(f"a count must be an integer scalar (int32 or int64), got {t}")
        return [TensorType("int64", ())]

    def reference(self, bound, dims=None):
        return np.array(_eval_dim(self.expr, dims), dtype="int64")

    def grad(self, node, output_grads):
        return [None]


class Arange(Op):
    """0, 1, ..., n-1 for a size n known at construction (an int or a symbolic dim)."""
    __props__ = ("n", "dtype")
    needs_dims = True

    def __init__(self, n, dtype="int64"):
        self.n, self.dtype = n, dtype

    def infer(self, input_types, ctx):
        return [TensorType(self.dtype, (self.n,))]

    def reference(self, dims=None):
        return np.arange(_eval_dim(self.n, dims), dtype=self.dtype)

    def grad(self, node, output_grads):
        return []


# --- user-facing functions ----------------------------------------------------------------

def dim_value(expr):
    from ..constructors import constant
    expr = as_dim(expr)
    if isinstance(expr, int):
        out = constant(np.int64(expr))
    else:
        out = DimValue(expr)()
    out.dim_expr = expr
    return out


def reshape(x, shape, ndim=None):
    from ..constructors import as_variable
    x = as_variable(x)
    if isinstance(shape, (int, np.integer)) or not hasattr(shape, "__len__"):
        shape = (shape,)
    shape = [_dim_of(d) for d in shape]
    if sum(1 for d in shape if isinstance(d, int) and d == -1) > 1:
        raise GraphcShapeError(f"reshape {x.label()}: only one -1 is allowed in {shape}")
    if -1 in shape:
        known = size_of([d for d in shape if not (isinstance(d, int) and d == -1)])
        total = size_of(x.type.shape)
        inferred = simplify_dim(sympy.sympify(total) / known)
        if isinstance(inferred, sympy.Basic) and not inferred.is_integer:
            raise GraphcShapeError(f"reshape {x.label()}: cannot infer -1: {total} elements do not "
                                   f"divide into {known}")
        shape = [inferred if (isinstance(d, int) and d == -1) else d for d in shape]
    shape = tuple(as_dim(d, "reshape") for d in shape)
    if len(shape) == x.ndim and all(sympy.sympify(a) == b for a, b in zip(shape, x.type.shape)):
        return x
    return Reshape(shape, x.name)(x)


def _dim_of(d):
    """Accept ints, sympy dims and x.shape[i] variables in a shape."""
    if hasattr(d, "dim_expr"):
        return d.dim_expr
    if isinstance(d, (int, np.integer)):
        return int(d)
    if isinstance(d, sympy.Basic):
        return d
    raise GraphcTypeError(f"a shape entry must be an int, a graphc.dim or x.shape[i]; got {d!r}")


def transpose(x, axes=None):
    from ..constructors import as_variable
    x = as_variable(x)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(int(a) % x.ndim for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise GraphcTypeError(f"transpose {x.label()}: {axes} is not a permutation of {x.ndim} axes")
    if perm == tuple(range(x.ndim)):
        return x
    return Transpose(perm)(x)


def dimshuffle(x, *pattern):
    """Theano's dimshuffle: a permutation of the axes with 'x' for new broadcastable axes."""
    from ..constructors import as_variable
    x = as_variable(x)
    if len(pattern) == 1 and isinstance(pattern[0], (list, tuple)):
        pattern = tuple(pattern[0])
    kept = [p for p in pattern if p != "x"]
    dropped = [i for i in range(x.ndim) if i not in kept]
    for i in dropped:
        if x.type.shape[i] != 1:
            raise GraphcShapeError(f"dimshuffle {x.label()}: cannot drop axis {i} of size {x.type.shape[i]}")
    y = reshape(x, [d for i, d in enumerate(x.type.shape) if i not in dropped]) if dropped else x
    remap = {old: new for new, old in enumerate(i for i in range(x.ndim) if i not in dropped)}
    y = transpose(y, [remap[p] for p in kept])
    shape, it = [], iter(y.type.shape)
    for p in pattern:
        shape.append(1 if p == "x" else next(it))
    return reshape(y, shape)


def flatten(x, ndim=1):
    from ..constructors import as_variable
    x = as_variable(x)
    if ndim < 1 or ndim > max(x.ndim, 1):
        raise GraphcTypeError(f"flatten {x.label()}: ndim must be in 1..{x.ndim}, got {ndim}")
    lead = list(x.type.shape[:ndim - 1])
    return reshape(x, lead + [size_of(x.type.shape[ndim - 1:])])


def expand_dims(x, axis):
    from ..constructors import as_variable
    x = as_variable(x)
    shape = list(x.type.shape)
    axis = axis % (x.ndim + 1)
    shape.insert(axis, 1)
    return reshape(x, shape)


def squeeze(x, axis=None):
    from ..constructors import as_variable
    x = as_variable(x)
    axes = [i for i, d in enumerate(x.type.shape) if d == 1] if axis is None else [axis % x.ndim]
    for a in axes:
        if x.type.shape[a] != 1:
            raise GraphcShapeError(f"squeeze {x.label()}: axis {a} has size {x.type.shape[a]}, not 1")
    return reshape(x, [d for i, d in enumerate(x.type.shape) if i not in axes])


def concatenate(tensors, axis=0):
    from ..constructors import as_variable
    from .elemwise import cast
    xs = [as_variable(t) for t in tensors]
    if not xs:
        raise GraphcTypeError("concatenate needs at least one tensor")
    dtype = np.result_type(*[x.dtype for x in xs]).name
    xs = [cast(x, dtype) for x in xs]
    axis = axis % xs[0].ndim
    return xs[0] if len(xs) == 1 else Concatenate(axis)(*xs)


def stack(tensors, axis=0):
    return concatenate([expand_dims(t, axis) for t in tensors], axis)


def arange(start, stop=None, step=1, dtype="int64"):
    """numpy.arange over sizes known when the graph is built: ints, graphc.dim or x.shape[i]
    (arange(x.shape[0]), Theano's arange(start, stop, step) forms); the step an int."""
    from .elemwise import add_op, cast, mul_op
    if stop is None:
        start, stop = 0, start
    start, stop = _size_arg(start, "start"), _size_arg(stop, "stop")
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step == 0:
        raise GraphcTypeError(f"arange: step must be a non-zero int, got {step!r}")
    step = int(step)
    if start == 0 and step == 1:
        count = stop  # (sympy's ceiling/Max cost ~25 ms of assumptions on a symbolic dim)
    elif isinstance(start, int) and isinstance(stop, int):
        count = len(range(start, stop, step))
    else:
        count = simplify_dim(sympy.Max(0, sympy.ceiling(sympy.sympify(stop - start) / step)))
    out = Arange(as_dim(count), "int64")()
    if start != 0 or step != 1:
        out = add_op(mul_op(out, step), dim_value(start) if not isinstance(start, int) else start)
    return cast(out, dtype or "int64")


def _size_arg(n, what):
    if hasattr(n, "dim_expr"):
        return n.dim_expr
    if isinstance(n, (int, np.integer)) and not isinstance(n, bool):
        return int(n)
    if isinstance(n, sympy.Basic):
        return n
    raise GraphcTypeError(f"arange: {what} must be an int, a graphc.dim or x.shape[i] (a size "
                          f"known when the graph is built), got {n!r}")


def resolve_slice(sl, n):
    """Turn a python slice over an axis of (possibly symbolic) size n into (start, stop, step)."""
    step = 1 if sl.step is None else int(sl.step)
    if step == 0:
        raise GraphcShapeError("slice step cannot be zero")

    def bound(v, default):
        if v is None:
            return default
        v = _dim_of(v)
        if isinstance(v, int) and v < 0:
            v = n + v
        if isinstance(n, int) and isinstance(v, int):
            v = min(max(v, -1 if step < 0 else 0), n)
        return simplify_dim(sympy.sympify(v))

    if step > 0:
        return (bound(sl.start, 0), bound(sl.stop, n), step)
    return (bound(sl.start, simplify_dim(sympy.sympify(n) - 1)), bound(sl.stop, -1), step)
