"""Integer-array indexing (gather) and its gradient (scatter-add)."""
import numpy as np

from ...errors import GraphcShapeError, GraphcTypeError
from ..graph import Op
from ..types import INT_DTYPES, TensorType
from .elemwise import broadcast_shapes


def index_error_text(value, position, array, n_arrays, axis, size):
    """What a bad index reads as (the C kernels print the same words)."""
    which = f" of index array {array}" if n_arrays > 1 else ""
    return (f"index out of range: {value} at position {position}{which}, for axis {axis} of "
            f"size {size}")


class AdvancedSubtensor(Op):
    """x[i0, i1, ..., ik-1] with k integer index arrays (broadcast together) on the leading axes.

    Negative indices count from the end, as in numpy; out-of-range indices raise at run time.
    strict: every index must lie in [0, size) (class labels: -1 is an error, not the last class).
    axes: the user's axis of each index array, for error messages (take() along axis 1 indexes a
    transposed tensor on its axis 0); None: the leading axes.
    """
    __props__ = ("strict", "axes")

    def __init__(self, strict=False, axes=None):
        self.strict = bool(strict)
        self.axes = tuple(axes) if axes is not None else None

    def user_axes(self, k):
        return list(self.axes) if self.axes is not None else list(range(k))

    def infer(self, input_types, ctx):
        x, idx = input_types[0], input_types[1:]
        if len(idx) > x.ndim:
            raise GraphcShapeError(f"too many indices ({len(idx)}) for a tensor of rank {x.ndim}")
        for t in idx:
            if t.dtype not in INT_DTYPES:
                raise GraphcTypeError(f"index arrays must be int32 or int64, got {t.dtype}")
        ishape = broadcast_shapes([t.shape for t in idx], ctx)
        return [TensorType(x.dtype, tuple(ishape) + tuple(x.shape[len(idx):]))]

    def reference(self, x, *idx):
        for axis, (user_axis, i) in enumerate(zip(self.user_axes(len(idx)), idx)):
            n = x.shape[axis]
            bad = np.flatnonzero((i >= n) | (i < (0 if self.strict else -n)))
            if bad.size:
                raise IndexError(index_error_text(i.flat[bad[0]], bad[0], axis, len(idx), user_axis, n))
        return np.asarray(x[tuple(idx)], order="C")

    def grad(self, node, output_grads):
        x, idx = node.inputs[0], node.inputs[1:]
        return [AdvancedIncSubtensor(x.type.shape)(output_grads[0], *idx)] + [None] * len(idx)


def _zeros_indexed_by(shape, dtype, idx, dims):
    """zeros(shape), after checking that the index arrays idx (one per leading axis) fit it."""
    from .shape import _eval_dim
    out = np.zeros([_eval_dim(d, dims) for d in shape], dtype=dtype)
    for axis, i in enumerate(idx):
        n = out.shape[axis]
        bad = np.flatnonzero((i >= n) | (i < -n))
        if bad.size:
            raise IndexError(index_error_text(i.flat[bad[0]], bad[0], axis, len(idx), axis, n))
    return out


class _ScatterInto(Op):
    """zeros(shape) with g placed at the index arrays [i0, ..., ik-1] (subclasses say how)."""
    __props__ = ("shape",)
    needs_dims = True

    def __init__(self, shape):
        self.shape = tuple(shape)

    def infer(self, input_types, ctx):
        return [TensorType(input_types[0].dtype, self.shape)]


class AdvancedIncSubtensor(_ScatterInto):
    """zeros(shape) with g scatter-added at [i0, ..., ik-1] (repeated indices accumulate)."""

    def reference(self, g, *idx, dims=None):
        out = _zeros_indexed_by(self.shape, g.dtype, idx, dims)
        np.add.at(out, tuple(idx), g)
        return out

    def grad(self, node, output_grads):
        return [AdvancedSubtensor()(output_grads[0], *node.inputs[1:])] + [None] * (len(node.inputs) - 1)


class AdvancedSetSubtensor(_ScatterInto):
    """zeros(shape) with g written at [i0, ..., ik-1]; where an index repeats, the last write
    wins (numpy's x[idx] = g, deterministically): set_subtensor with index arrays."""

    def reference(self, g, *idx, dims=None):
        idx = np.broadcast_arrays(*idx)
        out = _zeros_indexed_by(self.shape, g.dtype, idx, dims)
        flat = [np.where(i < 0, i + out.shape[a], i).ravel() for a, i in enumerate(idx)]
        linear = np.ravel_multi_index(flat, out.shape[:len(idx)]) if flat[0].size else flat[0]
        # the last position writing each element: the first one in reversed order
        _, first_reversed = np.unique(linear[::-1], return_index=True)
        last = linear.size - 1 - first_reversed
        values = g.reshape((linear.size,) + g.shape[idx[0].ndim:])
        out[tuple(f[last] for f in flat)] = values[last]
        return out

    def grad(self, node, output_grads):
        """Each written value gets the output's gradient at its position, unless a later write
        to the same position overwrote it (then 0)."""
        from ..constructors import constant
        from .elemwise import cast, eq_op, where_op
        from .shape import Arange, reshape
        from ..types import size_of
        g, idx = node.inputs[0], node.inputs[1:]
        ids = reshape(Arange(size_of(g.type.shape))(), g.type.shape)
        won = eq_op(AdvancedSubtensor()(AdvancedSetSubtensor(self.shape)(ids, *idx), *idx), ids)
        zero = constant(np.zeros((), g.dtype))
        grad_g = where_op(won, AdvancedSubtensor()(output_grads[0], *idx), zero)
        return [cast(grad_g, g.dtype)] + [None] * len(idx)


def take(x, indices, axis=0):
    """numpy.take along one axis (the index array's dims replace that axis)."""
    from ..constructors import as_variable
    from .shape import transpose
    x, indices = as_variable(x), as_variable(indices)
    axis = axis % x.ndim
    if axis == 0:
        return AdvancedSubtensor()(x, indices)
    perm = [axis] + [i for i in range(x.ndim) if i != axis]
    out = AdvancedSubtensor(axes=(axis,))(transpose(x, perm), indices)
    k = indices.ndim
    # out axes: index dims, then the other axes of x in order; move index dims to `axis`.
    rest = list(range(k, out.ndim))
    order = rest[:axis] + list(range(k)) + rest[axis:]
    return transpose(out, order)
