"""Neural-network ops: softmax and log_softmax over the last axis (ops with their own kernels),
and the losses built from them."""
import numpy as np

from ...errors import GraphcShapeError, GraphcTypeError
from ..graph import Op
from ..types import FLOAT_DTYPES, INT_DTYPES, TensorType


class _RowOp(Op):
    __props__ = ()

    def infer(self, input_types, ctx):
        (t,) = input_types
        if t.dtype not in FLOAT_DTYPES or t.ndim < 1:
            raise GraphcTypeError(f"{type(self).__name__.lower()}: expected a float tensor of rank >= 1, got {t}")
        return [t]


class Softmax(_RowOp):
    def reference(self, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def grad(self, node, output_grads):
        from .elemwise import mul_op, sub_op
        from .reduce import reduce_sum
        y, g = node.outputs[0], output_grads[0]
        return [mul_op(y, sub_op(g, reduce_sum(mul_op(g, y), -1, keepdims=True)))]


class LogSoftmax(_RowOp):
    def reference(self, x):
        s = x - x.max(axis=-1, keepdims=True)
        return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))

    def grad(self, node, output_grads):
        from .elemwise import exp_op, mul_op, sub_op
        from .reduce import reduce_sum
        y, g = node.outputs[0], output_grads[0]
        return [sub_op(g, mul_op(exp_op(y), reduce_sum(g, -1, keepdims=True)))]


def softmax(x, axis=-1):
    from ..constructors import as_variable
    x = as_variable(x)
    _check_last_axis(x, axis, "softmax")
    return Softmax()(x)


def log_softmax(x, axis=-1):
    from ..constructors import as_variable
    x = as_variable(x)
    _check_last_axis(x, axis, "log_softmax")
    return LogSoftmax()(x)


def _check_last_axis(x, axis, what):
    if axis % max(x.ndim, 1) != x.ndim - 1:
        raise GraphcShapeError(f"{what}: only the last axis is supported (got axis={axis} for rank "
                               f"{x.ndim}); transpose first")


def one_hot(labels, depth, dtype=None):
    from ..constructors import as_variable
    from ...config import config
    from .elemwise import cast, eq_op
    from .shape import arange, expand_dims
    labels = as_variable(labels)
    if labels.dtype not in INT_DTYPES:
        raise GraphcTypeError(f"one_hot {labels.label()}: labels must be int32/int64, got {labels.dtype}")
    return cast(eq_op(expand_dims(labels, -1), arange(depth, dtype=labels.dtype)), dtype or config.floatX)


def categorical_crossentropy(coding_dist, true_dist):
    """-log p[i, t_i] for integer targets, or -sum(t * log p, -1) for a target distribution."""
    from ..constructors import as_variable
    from .elemwise import log_op, mul_op, neg_op
    from .reduce import reduce_sum
    from .shape import arange
    p, t = as_variable(coding_dist), as_variable(true_dist)
    if t.dtype in INT_DTYPES:
        if p.ndim != 2 or t.ndim != 1:
            raise GraphcShapeError(f"categorical_crossentropy: integer targets need p of rank 2 and "
                                   f"targets of rank 1, got {p.type} and {t.type}")
        # One meaning at every level and target: a label outside [0, classes) is an error (the
        # stabilized form, SoftmaxCrossEntropy, checks the same).
        from .indexing import AdvancedSubtensor
        return neg_op(log_op(AdvancedSubtensor(strict=True)(p, arange(p.type.shape[0]), t)))
    return neg_op(reduce_sum(mul_op(t, log_op(p)), -1))


def binary_crossentropy(output, target):
    from .elemwise import log_op, mul_op, neg_op, sub_op, add_op
    return neg_op(add_op(mul_op(target, log_op(output)),
                         mul_op(sub_op(1.0, target), log_op(sub_op(1.0, output)))))


def sigmoid_binary_crossentropy(logits, target):
    """Binary cross-entropy on logits, computed stably: softplus(z) - t*z."""
    from .elemwise import mul_op, softplus_op, sub_op
    return sub_op(softplus_op(logits), mul_op(target, logits))


def softmax_cross_entropy(logits, targets):
    """Cross-entropy of softmax(logits) computed through log_softmax (stable)."""
    from .elemwise import neg_op, mul_op
    from .reduce import reduce_sum
    from ..constructors import as_variable
    t = as_variable(targets)
    if t.dtype in INT_DTYPES:
        return SoftmaxCrossEntropy()(logits, t)
    ls = log_softmax(logits)
    return neg_op(reduce_sum(mul_op(t, ls), -1))


def squared_error(a, b):
    from .elemwise import sub_op, mul_op
    d = sub_op(a, b)
    return mul_op(d, d)


class SoftmaxCrossEntropy(Op):
    """-log softmax(logits)[i, labels[i]] per row, in one stable pass (log-sum-exp).

    Its gradient is (softmax(logits) - onehot(labels)) * g, one more op: nothing in between can
    overflow, whatever the logits. The stabilize pass turns the written-out form into this op.
    """
    __props__ = ()

    def infer(self, input_types, ctx):
        x, y = input_types
        if x.ndim != 2 or y.ndim != 1 or y.dtype not in INT_DTYPES or x.dtype not in FLOAT_DTYPES:
            raise GraphcTypeError(f"softmax_cross_entropy: expected float logits (N, K) and int "
                                  f"labels (N,), got {x} and {y}")
        n = ctx.equal(x.shape[0], y.shape[0], "rows of logits and labels")
        return [TensorType(x.dtype, (n,))]

    def reference(self, x, y):
        _check_labels(y, x.shape[1])
        m = x.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
        return (lse - x[np.arange(len(y)), y]).astype(x.dtype)

    def grad(self, node, output_grads):
        x, y = node.inputs
        return [SoftmaxCrossEntropyGrad()(x, y, output_grads[0]), None]


class SoftmaxCrossEntropyGrad(Op):
    """(softmax(logits) - onehot(labels)) * g[:, None]."""
    __props__ = ()

    def infer(self, input_types, ctx):
        return [input_types[0]]

    def reference(self, x, y, g):
        _check_labels(y, x.shape[1])
        p = Softmax().reference(x)
        p[np.arange(len(y)), y] -= 1
        return (p * g[:, None]).astype(x.dtype)


def _check_labels(y, k):
    if y.size and (y.min() < 0 or y.max() >= k):
        raise IndexError(f"label out of range [0, {k})")
