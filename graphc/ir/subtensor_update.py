"""Theano's set_subtensor / inc_subtensor: x with a slice (or indexed entries) replaced by, or
incremented by, y. Built from the ops that already differentiate slicing (IncSubtensor for
slices, AdvancedIncSubtensor for index arrays): the slice's positions are scattered into a
tensor of x's shape, then added to x (inc) or selected over x (set). No new kernel.

    x2 = set_subtensor(x[i * bs:(i + 1) * bs, 2:], 0.0)   # run-time bounds work as in x[...]
    x3 = inc_subtensor(x[idx], y)                          # repeated indices accumulate
    x4 = set_subtensor(x[idx], y)                          # repeated indices: the last wins
"""
import numpy as np

from ..errors import GraphcTypeError
from .constructors import as_variable, constant
from .ops import elemwise
from .ops.indexing import AdvancedIncSubtensor, AdvancedSetSubtensor, AdvancedSubtensor
from .ops.shape import IncSubtensor, Subtensor, Transpose


def inc_subtensor(x_sub, y):
    """x + y in the positions x_sub = x[...] reads (y broadcast to x_sub's shape)."""
    base, placed = _scatter(x_sub, _broadcast_to(x_sub, y, "inc_subtensor"), "inc_subtensor")
    return elemwise.add_op(base, placed)


def set_subtensor(x_sub, y):
    """x with the positions x_sub = x[...] reads replaced by y (broadcast to x_sub's shape).
    With index arrays, where an index repeats the last of its values is kept, as numpy does."""
    value = _broadcast_to(x_sub, y, "set_subtensor")
    base, placed = _scatter(x_sub, value, "set_subtensor", assign=True)
    one = constant(np.ones((), x_sub.dtype))
    _, chosen = _scatter(x_sub, elemwise.second_op(x_sub, one), "set_subtensor", assign=True)
    return elemwise.where_op(elemwise.gt_op(chosen, constant(np.zeros((), x_sub.dtype))),
                             placed, base)


def _broadcast_to(x_sub, y, what):
    x_sub = as_variable(x_sub)
    y = as_variable(y)
    if y.ndim > x_sub.ndim:
        raise GraphcTypeError(f"{what}: the value {y.label()} has rank {y.ndim}, more than the rank "
                              f"{x_sub.ndim} of {x_sub.label()}; give a value that broadcasts to "
                              f"{x_sub.type}")
    return elemwise.second_op(x_sub, elemwise.cast(y, x_sub.dtype))


def _scatter(x_sub, value, what, assign=False):
    """(x, a tensor of x's shape holding `value` at the positions x_sub reads, zeros elsewhere;
    a position read several times holds the sum of its values, or with `assign` the last)."""
    node = getattr(x_sub, "owner", None)
    outer_perm = None
    if node is not None and isinstance(node.op, Transpose) and node.inputs[0].owner is not None \
            and isinstance(node.inputs[0].owner.op, AdvancedSubtensor) \
            and node.inputs[0].owner.op.axes is not None:
        # take(x, i, axis=k) is transpose(x[perm][i], order): undo the outer transpose first
        outer_perm = node.op.perm
        node = node.inputs[0].owner
    if node is None or not isinstance(node.op, (Subtensor, AdvancedSubtensor)):
        raise GraphcTypeError(f"{what}: the first argument must be a slice or an indexing of a "
                              f"tensor (x[2:5], x[i * bs:(i + 1) * bs], x[idx], x[:, i]), got "
                              f"{x_sub.label()}; note that x[:] is x itself (then use the value)")
    if outer_perm is not None:
        value = Transpose(tuple(np.argsort(outer_perm)))(value)
    base, extra = node.inputs[0], node.inputs[1:]
    if isinstance(node.op, Subtensor):
        placed = IncSubtensor(node.op.index, base.type.shape, node.op.dynamic)(value, *extra)
    else:
        scatter = AdvancedSetSubtensor if assign else AdvancedIncSubtensor
        placed = scatter(base.type.shape)(value, *extra)
    if node.op.__class__ is AdvancedSubtensor and node.op.axes is not None and \
            base.owner is not None and isinstance(base.owner.op, Transpose):
        inner_perm = base.owner.op.perm  # take's inner transpose: back to x's own axes
        base = base.owner.inputs[0]
        placed = Transpose(tuple(np.argsort(inner_perm)))(placed)
    return base, placed
