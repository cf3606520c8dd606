"""Canonicalize: constant folding, algebraic identities, merging of common subexpressions."""
import numpy as np

from ..ir.graph import Constant, toposort
from ..ir.ops import elemwise as E
from ..ir.ops.shape import Reshape, Transpose
from .manager import register
from .rewriting import (applies, is_cast, is_constant, local_rewrite, outputs_changed, rebuild,
                        rewrite_fgraph)

_FOLD_LIMIT = 1 << 16  # elements: larger constants stay computed at run time


@local_rewrite("canonicalize")
def fold_constants(node):
    """An op whose inputs are all small constants becomes a constant."""
    if not node.inputs or not all(isinstance(i, Constant) for i in node.inputs):
        return None
    out = node.outputs[0]
    if not out.type.is_static or int(np.prod(out.type.shape)) > _FOLD_LIMIT:
        return None
    if any(not i.type.is_static for i in node.inputs):
        return None
    kwargs = {"dims": {}} if getattr(node.op, "needs_dims", False) else {}
    if any(isinstance(d, int) is False for d in getattr(node.op, "shape", ())):
        return None
    try:
        value = node.op.reference(*[i.data for i in node.inputs], **kwargs)
    except Exception:  # noqa: BLE001 - a value that fails to fold is computed at run time
        return None
    c = Constant(np.asarray(value, dtype=out.dtype).reshape(out.type.shape))
    return c


@local_rewrite("canonicalize")
def neutral_elements(node):
    """x * 1, x + 0, x - 0, x / 1 -> x (when that keeps the shape and dtype)."""
    if not isinstance(node.op, E.Elemwise) or node.op.nin != 2:  # (a quick no for most nodes)
        return None
    out = node.outputs[0]
    for op, unit, commutes in _NEUTRAL:
        if applies(node, op):
            a, b = node.inputs
            for keep, other, ok in ((a, b, True), (b, a, commutes)):
                if ok and is_constant(other, unit) and _same(keep, out):
                    return keep
            return None
    if applies(node, E.pow_op) and is_constant(node.inputs[1], 1) and _same(node.inputs[0], out):
        return node.inputs[0]
    return None


# (op, its neutral element on the right, whether it is also neutral on the left)
_NEUTRAL = ((E.mul_op, 1, True), (E.add_op, 0, True), (E.sub_op, 0, False),
            (E.div_op, 1, False))


def _same(v, out):
    return v.dtype == out.dtype and v.type.shape == out.type.shape


@local_rewrite("canonicalize")
def elementwise_identity(node):
    """An elementwise op whose expression is one of its inputs, unchanged, is that input
    (the gradient of an add, for instance: d(a + b)/da * g = g)."""
    if not isinstance(node.op, E.Elemwise) or not node.op.expr.is_Symbol:
        return None
    k = E.ARGS.index(node.op.expr)
    if k < len(node.inputs) and _same(node.inputs[k], node.outputs[0]):
        return node.inputs[k]
    return None


@local_rewrite("canonicalize")
def cast_noop(node):
    if is_cast(node.op) and node.inputs[0].dtype == node.outputs[0].dtype:
        return node.inputs[0]
    return None


@local_rewrite("canonicalize")
def transpose_of_transpose(node):
    if isinstance(node.op, Transpose) and node.inputs[0].owner is not None \
            and isinstance(node.inputs[0].owner.op, Transpose):
        inner = node.inputs[0].owner.op.perm
        perm = tuple(inner[p] for p in node.op.perm)
        x = node.inputs[0].owner.inputs[0]
        return x if perm == tuple(range(len(perm))) else Transpose(perm)(x)
    return None


@local_rewrite("canonicalize")
def reshape_chain(node):
    """reshape(reshape(x)) -> reshape(x); a reshape to the same shape disappears."""
    if not isinstance(node.op, Reshape):
        return None
    x = node.inputs[0]
    if x.owner is not None and isinstance(x.owner.op, Reshape):
        x = x.owner.inputs[0]
        if x.type.shape == node.outputs[0].type.shape:
            return x
        return Reshape(node.op.shape)(x)
    if x.type.shape == node.outputs[0].type.shape:
        return x
    return None


# No x - x -> 0: it is nan for x = +-inf or nan (a result the optimization level must not change).


def merge_common(outputs):
    """Common-subexpression merging: equal ops on the same inputs become one node."""
    seen, replaced = {}, {}
    consts = {}
    for node in toposort(outputs):
        inputs = []
        for i in node.inputs:
            i = replaced.get(i, i)
            if isinstance(i, Constant) and i.data.size <= 16:
                i = consts.setdefault(i.signature(), i)
            inputs.append(i)
        # Keyed by the inputs, then the op compared: an op's hash walks its props (sympy
        # expressions) every time, and most input tuples are read by one op.
        same_inputs = seen.setdefault(tuple(id(i) for i in inputs), [])
        match = next((n for n in same_inputs if n.op == node.op), None)
        if match is not None:
            for o, so in zip(node.outputs, match.outputs):
                replaced[o] = so
            continue
        new = node if inputs == node.inputs else rebuild(node, inputs)
        same_inputs.append(new)
        for o, no in zip(node.outputs, new.outputs):
            if no is not o:
                replaced[o] = no
    return [replaced.get(o, o) for o in outputs]


@register("canonicalize")
def canonicalize(fgraph):
    before = list(fgraph.outputs)
    fgraph.outputs = merge_common(fgraph.outputs)
    rewrite_fgraph(fgraph, "canonicalize")
    fgraph.outputs = merge_common(fgraph.outputs)
    return fgraph, outputs_changed(before, fgraph.outputs)
