"""Normalization layers: local response normalization (an op with its own kernels) and batch
normalization (training: one op with its own kernels, batch_norm_ops.py; inference: elementwise
ops, which fusion merges with their neighbours)."""
import numpy as np

from ...errors import GraphcShapeError, GraphcTypeError
from ..graph import Op
from ..types import FLOAT_DTYPES


# --- LRN ----------------------------------------------------------------------------------------

class LRN(Op):
    """Caffe's ACROSS_CHANNELS local response normalization (AlexNet):
        scale[c] = k + alpha/size * sum_{c' = c-(size-1)/2 .. c+(size-1)/2} x[c']^2
        y[c] = x[c] * scale[c]^-beta
    over axis 1 (channels) of a tensor of rank >= 2; channels outside [0, C) count as zero."""
    __props__ = ("size", "alpha", "beta", "k")

    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)

    def infer(self, input_types, ctx):
        (t,) = input_types
        if t.ndim < 2 or t.dtype not in FLOAT_DTYPES:
            raise GraphcTypeError(f"lrn: expected a float tensor with a channel axis 1 (rank >= 2), "
                                  f"got {t}")
        return [t]

    def scale(self, x):
        c = x.shape[1]
        half = (self.size - 1) // 2
        sq = x * x
        pad = np.zeros((x.shape[0], half) + x.shape[2:], dtype=x.dtype)
        padded = np.concatenate([pad, sq, pad], axis=1)
        s = np.zeros_like(x)
        for i in range(self.size):
            s += padded[:, i:i + c]
        return x.dtype.type(self.k) + x.dtype.type(self.alpha / self.size) * s

    def reference(self, x):
        return x * self.scale(x) ** x.dtype.type(-self.beta)

    def grad(self, node, output_grads):
        x, y = node.inputs[0], node.outputs[0]
        return [LRNGrad(*self._props())(x, y, output_grads[0])]


class LRNGrad(LRN):
    """(x, y, gy) -> gx (Caffe's backward):
        gx[c] = gy[c] scale[c]^-beta - 2 alpha beta / size * x[c] * sum_{c' near c} gy[c'] y[c'] / scale[c']"""

    def infer(self, input_types, ctx):
        x, y, gy = input_types
        for t in (y, gy):
            for a, (d1, d2) in enumerate(zip(x.shape, t.shape)):
                ctx.equal(d1, d2, f"lrn_grad axis {a}")
        return [x]

    def reference(self, x, y, gy):
        scale = self.scale(x)
        ratio = gy * y / scale
        c = x.shape[1]
        half = (self.size - 1) // 2
        pad = np.zeros((x.shape[0], half) + x.shape[2:], dtype=x.dtype)
        padded = np.concatenate([pad, ratio, pad], axis=1)
        acc = np.zeros_like(x)
        for i in range(self.size):
            acc += padded[:, i:i + c]
        coef = x.dtype.type(2.0 * self.alpha * self.beta / self.size)
        return gy * scale ** x.dtype.type(-self.beta) - coef * x * acc

    def grad(self, node, output_grads):
        raise NotImplementedError("lrn: second derivatives are not implemented")


def lrn(x, size=5, alpha=1e-4, beta=0.75, k=1.0):
    """Local response normalization across channels (axis 1), Caffe/AlexNet parameters: `size`
    (odd) channels per window, and Caffe's convention that alpha is divided by size."""
    from ..constructors import as_variable
    if not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise GraphcTypeError(f"lrn: size must be a positive odd int (Caffe), got {size!r}")
    return LRN(size, alpha, beta, k)(as_variable(x))


# --- batch normalization --------------------------------------------------------------------------

def _bn_axes(x, where):
    if x.ndim not in (2, 4):
        raise GraphcShapeError(f"{where}: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got {x.type}")
    if x.dtype not in FLOAT_DTYPES:
        raise GraphcTypeError(f"{where}: expected a float input, got {x.type}")
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _per_channel(v, x, name, where):
    """A (C,) parameter as (1, C) or (1, C, 1, 1), to broadcast against x."""
    from ..constructors import as_variable
    from .elemwise import cast
    from .shape import reshape
    v = as_variable(v)
    c = x.type.shape[1]
    _check_channel_vector(v, x, name, where)
    v = cast(v, x.dtype)
    return reshape(v, (1, c) + (1,) * (x.ndim - 2))


def _channel_mean(x, axes):
    """Mean over `axes` (keepdims), reducing the trailing contiguous axes first: each reduction
    then reads its input in order (one reduction over (0, 2, 3) would transpose x first)."""
    from ..constructors import constant
    from .reduce import reduce_sum
    s = x
    if len(axes) > 1:
        s = reduce_sum(s, axes[1:], keepdims=True)
    s = reduce_sum(s, (0,), keepdims=True)
    count = 1
    for a in axes:
        count = count * x.type.shape[a]
    if isinstance(count, int):
        return s * constant(np.asarray(1.0 / count, dtype=x.dtype))
    from .elemwise import cast
    from .shape import dim_value
    return s / cast(dim_value(count), x.dtype)


def batch_norm_train(x, gamma, beta, eps=1e-5):
    """Training-mode batch normalization of x (N, C) or (N, C, H, W) with statistics of the batch
    (over N, or N, H, W). Returns (y, mean, var): y = (x - mean) / sqrt(var + eps) * gamma + beta,
    mean and var of shape (C,); var is the biased batch variance (divided by the count m) that
    normalizes y. For running averages of the variance as Caffe/PyTorch keep them, scale it by
    m / (m - 1). Gradients flow through mean and var (the batch statistics depend on x).

    One op (BatchNormTrain, batch_norm_ops.py) with its own kernels: the statistics in one pass
    over x, y in a second; its gradient likewise. batch_norm_train_composed builds the same from
    reductions and elementwise ops."""
    from .batch_norm_ops import BatchNormTrain
    x, g, b = _bn_operands(x, gamma, beta, "batch_norm_train")
    return BatchNormTrain(float(eps))(x, g, b)


def _bn_operands(x, gamma, beta, where):
    """x checked, gamma and beta as (C,) vectors of x's dtype."""
    from ..constructors import as_variable
    from .elemwise import cast
    x = as_variable(x)
    _bn_axes(x, where)
    out = [x]
    for v, name in ((gamma, "gamma"), (beta, "beta")):
        v = as_variable(v)
        _check_channel_vector(v, x, name, where)
        out.append(cast(v, x.dtype))
    return out


def _check_channel_vector(v, x, name, where):
    c = x.type.shape[1]
    if v.ndim != 1:
        raise GraphcShapeError(f"{where}: {name} must be a vector of the {c} channels, got {v.type}")
    if isinstance(v.type.shape[0], int) and isinstance(c, int) and v.type.shape[0] != c:
        raise GraphcShapeError(f"{where}: {name} has {v.type.shape[0]} entries but the input "
                               f"{x.type} has {c} channels")


def batch_norm_train_composed(x, gamma, beta, eps=1e-5):
    """batch_norm_train from reductions and elementwise ops (autodiff derives its gradient): the
    form the fused op replaced, kept as the tests' second opinion."""
    from ..constructors import as_variable
    from .elemwise import sqrt_op
    from .shape import reshape
    x = as_variable(x)
    where = "batch_norm_train"
    axes = _bn_axes(x, where)
    g, b = _per_channel(gamma, x, "gamma", where), _per_channel(beta, x, "beta", where)
    mean = _channel_mean(x, axes)
    d = x - mean
    var = _channel_mean(d * d, axes)
    y = d * (g / sqrt_op(var + np.asarray(eps, dtype=x.dtype))) + b
    c = x.type.shape[1]
    return y, reshape(mean, (c,)), reshape(var, (c,))


def batch_norm_inference(x, gamma, beta, mean, var, eps=1e-5):
    """Inference-mode batch normalization with given (running) mean and var of shape (C,)."""
    from ..constructors import as_variable
    from .elemwise import sqrt_op
    x = as_variable(x)
    where = "batch_norm_inference"
    _bn_axes(x, where)
    g, b = _per_channel(gamma, x, "gamma", where), _per_channel(beta, x, "beta", where)
    m, v = _per_channel(mean, x, "mean", where), _per_channel(var, x, "var", where)
    return (x - m) * (g / sqrt_op(v + np.asarray(eps, dtype=x.dtype))) + b


def batch_norm(x, gamma, beta, mean=None, var=None, eps=1e-5, training=True):
    """batch_norm_train (returns (y, mean, var)) when training, else batch_norm_inference (y)."""
    if training:
        return batch_norm_train(x, gamma, beta, eps)
    if mean is None or var is None:
        raise GraphcTypeError("batch_norm(training=False) needs the running mean and var")
    return batch_norm_inference(x, gamma, beta, mean, var, eps)
