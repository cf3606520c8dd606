"""Stabilization: rewrite numerically fragile forms into stable ones, so training does not hit
inf/nan where the mathematics is finite (the forms Theano users rely on)."""
from ..ir.ops import elemwise as E
import numpy as np
import sympy

from ..ir.ops.indexing import AdvancedSubtensor
from ..ir.ops.nn import LogSoftmax, Softmax, SoftmaxCrossEntropy
from ..ir.ops.shape import Arange
from .manager import register
from .rewriting import applies, is_constant, local_rewrite, made_by, outputs_changed, rewrite_fgraph


@local_rewrite("stabilize")
def sigmoid_from_exp(node):
    """1 / (1 + exp(u)) -> sigmoid(-u)."""
    if not applies(node, E.div_op) or not is_constant(node.inputs[0], 1):
        return None
    den = node.inputs[1]
    if not made_by(den, E.add_op):
        return None
    a, b = den.owner.inputs
    e = b if is_constant(a, 1) else a if is_constant(b, 1) else None
    if e is None or not made_by(e, E.exp_op) or e.type.shape != node.outputs[0].type.shape:
        return None
    return E.sigmoid_op(_negate(e.owner.inputs[0]))


def _negate(v):
    if made_by(v, E.neg_op):
        return v.owner.inputs[0]
    return E.neg_op(v)


@local_rewrite("stabilize")
def log_sigmoid(node):
    """log(sigmoid(x)) -> -softplus(-x); log(1 - sigmoid(x)) -> -softplus(x)."""
    if not applies(node, E.log_op):
        return None
    (arg,) = node.inputs
    if made_by(arg, E.sigmoid_op):
        return E.neg_op(E.softplus_op(_negate(arg.owner.inputs[0])))
    if made_by(arg, E.sub_op) and is_constant(arg.owner.inputs[0], 1) \
            and made_by(arg.owner.inputs[1], E.sigmoid_op):
        return E.neg_op(E.softplus_op(arg.owner.inputs[1].owner.inputs[0]))
    return None


@local_rewrite("stabilize")
def one_minus_sigmoid(node):
    """1 - sigmoid(x) -> sigmoid(-x) (exact, and keeps precision near 1)."""
    if applies(node, E.sub_op) and is_constant(node.inputs[0], 1) \
            and made_by(node.inputs[1], E.sigmoid_op) \
            and node.inputs[1].type.shape == node.outputs[0].type.shape:
        return E.sigmoid_op(_negate(node.inputs[1].owner.inputs[0]))
    return None


@local_rewrite("stabilize")
def log1p_from_log(node):
    """log(1 + x) -> log1p(x)."""
    if not applies(node, E.log_op) or not made_by(node.inputs[0], E.add_op):
        return None
    a, b = node.inputs[0].owner.inputs
    x = b if is_constant(a, 1) else a if is_constant(b, 1) else None
    if x is None or x.type.shape != node.outputs[0].type.shape or x.dtype != node.outputs[0].dtype:
        return None
    return E.log1p_op(x)


@local_rewrite("stabilize")
def log_softmax_from_log(node):
    """log(softmax(x)) -> log_softmax(x)."""
    if applies(node, E.log_op) and node.inputs[0].owner is not None \
            and isinstance(node.inputs[0].owner.op, Softmax):
        return LogSoftmax()(node.inputs[0].owner.inputs[0])
    return None


@local_rewrite("stabilize")
def softmax_cross_entropy(node):
    """-log(softmax(x)[arange(N), y]) and -log_softmax(x)[arange(N), y] -> one stable op."""
    if not applies(node, E.neg_op):
        return None
    v = node.inputs[0]
    if made_by(v, E.log_op):
        v = v.owner.inputs[0]
        want = Softmax
    else:
        want = LogSoftmax
    if v.owner is None or not isinstance(v.owner.op, AdvancedSubtensor) or len(v.owner.inputs) != 3:
        return None
    probs, rows, labels = v.owner.inputs
    if probs.owner is None or type(probs.owner.op) is not want or probs.ndim != 2:
        return None
    if rows.owner is None or not isinstance(rows.owner.op, Arange) or rows.ndim != 1 or labels.ndim != 1:
        return None
    if sympy.sympify(rows.owner.op.n) != sympy.sympify(probs.type.shape[0]):
        return None
    if not v.owner.op.strict:
        # numpy indexing: -1 is the last class. SoftmaxCrossEntropy takes labels in [0, classes)
        # and raises otherwise, so wrap them first: the result means what the unstable form meant.
        from ..ir.constructors import as_variable
        zero = as_variable(np.zeros((), labels.dtype))
        labels = E.where_op(E.lt_op(labels, zero), E.add_op(labels, probs.type.shape[1]), labels)
    return SoftmaxCrossEntropy()(probs.owner.inputs[0], labels)


@local_rewrite("stabilize")
def double_negation(node):
    if applies(node, E.neg_op) and made_by(node.inputs[0], E.neg_op):
        return node.inputs[0].owner.inputs[0]
    return None


def stabilize_outputs(outputs):
    from .rewriting import GROUPS, rewrite_outputs
    return rewrite_outputs(outputs, GROUPS["stabilize"])


@register("stabilize")
def stabilize(fgraph):
    from .canonicalize import merge_common
    before = list(fgraph.outputs)
    rewrite_fgraph(fgraph, "stabilize")
    # The forward outputs and the gradient were stabilized separately: merge what they share.
    fgraph.outputs = merge_common(fgraph.outputs)
    return fgraph, outputs_changed(before, fgraph.outputs)
