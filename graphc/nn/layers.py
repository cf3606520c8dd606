"""Layers, after Caffe's: each has a name, bottoms, tops, and creates its parameters through the
net's build context (fillers, shared names, lr/decay multipliers).

A layer implements ``build(ctx, *inputs) -> output(s)``; it is called once per phase ("train",
"test"). Layers whose graph does not depend on the phase return the same TEST blob as TRAIN.

Parameter names default to ``"<layer>.<suffix>"``: ``W``/``b`` for InnerProduct and Conv2D,
``gamma``/``beta`` for BatchNorm (its running statistics are buffers ``mean``, ``var``,
``factor``, Caffe's three blobs). ``param=[{"name": "shared_w", "lr_mult": 1, "decay_mult": 1},
{"lr_mult": 2, "decay_mult": 0}]`` overrides them per parameter, in order, as in a prototxt.
"""
import numpy as np

import graphc as G

from . import losses as L
from .net import Layer  # the base class lives beside Net: a layer alone runs in a net of its own

__all__ = ["Layer", "InnerProduct", "Dense", "Conv2D", "Convolution", "MaxPool2D", "AvgPool2D",
           "Pooling", "LRN", "Dropout", "BatchNorm", "ReLU", "Sigmoid", "TanH", "Softmax",
           "Flatten", "Concat", "Eltwise", "Accuracy", "LossLayer", "SoftmaxWithLoss",
           "SigmoidCrossEntropyLoss", "EuclideanLoss", "HingeLoss"]


def _pair(v, what, layer):
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ValueError(f"layer {layer!r}: {what} must be an int or a pair, got {v}")
    return v


def _static(v, axes, layer_type, what):
    """The static sizes of v along axes, or a GraphcShapeError saying which is symbolic."""
    sizes = []
    for a in axes:
        d = v.static_shape[a]
        if not isinstance(d, (int, np.integer)):
            raise G.GraphcShapeError(f"{layer_type} needs a fixed {what} size (axis {a}), but it "
                                     f"is symbolic ({d})")
        sizes.append(int(d))
    return sizes


# ---------------------------------------------------------------------------------------------
# Parameterized layers
class InnerProduct(Layer):
    """y = flatten(x, from axis) @ W + b; W is (n_in, num_output) (Theano's layout)."""
    type = "InnerProduct"

    def __init__(self, name, num_output, bias_term=True, weight_filler="xavier",
                 bias_filler=0.0, axis=1, **kw):
        super().__init__(name, **kw)
        if int(num_output) != num_output or num_output < 1:
            raise self._fail(f"num_output must be a positive int, got {num_output!r}")
        self.num_output, self.bias_term, self.axis = int(num_output), bool(bias_term), int(axis)
        self.weight_filler, self.bias_filler = weight_filler, bias_filler

    def build(self, ctx, x):
        if x.ndim <= self.axis:
            raise G.GraphcShapeError(f"input of rank {x.ndim} has no axis {self.axis} to flatten "
                                     "from")
        n_in = int(np.prod(_static(x, range(self.axis, x.ndim), self.type, "input feature")))
        if x.ndim > self.axis + 1:
            x = G.flatten(x, self.axis + 1)
        W = ctx.param("W", (n_in, self.num_output), self.weight_filler,
                      fan_in=n_in, fan_out=self.num_output)
        y = G.dot(x, W)
        if self.bias_term:
            y = y + ctx.param("b", (self.num_output,), self.bias_filler, fan_in=n_in,
                              fan_out=self.num_output)
        return y


Dense = InnerProduct


class Conv2D(Layer):
    """2-D convolution (NCHW), Caffe's Convolution: W is (num_output, C/group, kh, kw)."""
    type = "Convolution"

    def __init__(self, name, num_output, kernel_size, stride=1, pad=0, dilation=1, group=1,
                 bias_term=True, weight_filler="xavier", bias_filler=0.0, **kw):
        super().__init__(name, **kw)
        if int(num_output) != num_output or num_output < 1:
            raise self._fail(f"num_output must be a positive int, got {num_output!r}")
        self.num_output = int(num_output)
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        self.stride = _pair(stride, "stride", name)
        self.pad = _pair(pad, "pad", name)
        self.dilation = _pair(dilation, "dilation", name)
        self.group = int(group)
        for what, v, lo in (("kernel_size", self.kernel_size, 1), ("stride", self.stride, 1),
                            ("pad", self.pad, 0), ("dilation", self.dilation, 1)):
            if min(v) < lo:
                raise self._fail(f"{what} must be >= {lo}, got {v}")
        if self.group < 1 or self.num_output % self.group:
            raise self._fail(f"num_output {self.num_output} is not divisible by group {self.group}")
        self.bias_term = bool(bias_term)
        self.weight_filler, self.bias_filler = weight_filler, bias_filler

    def build(self, ctx, x):
        if x.ndim != 4:
            raise G.GraphcShapeError(f"expected an NCHW input of rank 4, got rank {x.ndim}")
        (c,) = _static(x, [1], self.type, "channel")
        if c % self.group:
            raise G.GraphcShapeError(f"input channels {c} not divisible by group {self.group}")
        kh, kw = self.kernel_size
        shape = (self.num_output, c // self.group, kh, kw)
        W = ctx.param("W", shape, self.weight_filler, fan_in=c // self.group * kh * kw,
                      fan_out=self.num_output // self.group * kh * kw)
        kwargs = dict(stride=self.stride, padding=self.pad)
        if self.dilation != (1, 1):
            kwargs["dilation"] = self.dilation
        if self.group != 1:
            kwargs["groups"] = self.group
        y = G.conv2d(x, W, **kwargs)
        if self.bias_term:
            b = ctx.param("b", (self.num_output,), self.bias_filler)
            y = y + G.reshape(b, (1, self.num_output, 1, 1))
        return y


Convolution = Conv2D


class Pooling(Layer):
    """Max or average pooling (NCHW)."""
    type = "Pooling"
    pool = "max"

    def __init__(self, name, kernel_size, stride=None, pad=0, pool=None, **kw):
        super().__init__(name, **kw)
        self.pool = (pool or self.pool).lower()
        if self.pool not in ("max", "ave", "avg"):
            raise self._fail(f"pool must be 'max' or 'ave', got {pool!r}")
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        self.stride = _pair(stride if stride is not None else kernel_size, "stride", name)
        self.pad = _pair(pad, "pad", name)
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.pad) < 0:
            raise self._fail(f"kernel_size {self.kernel_size}, stride {self.stride} must be >= 1 "
                             f"and pad {self.pad} >= 0")
        if self.pad[0] >= self.kernel_size[0] or self.pad[1] >= self.kernel_size[1]:
            raise self._fail(f"pad {self.pad} must be smaller than kernel_size {self.kernel_size}")

    def build(self, ctx, x):
        if x.ndim != 4:
            raise G.GraphcShapeError(f"expected an NCHW input of rank 4, got rank {x.ndim}")
        fn = G.max_pool2d if self.pool == "max" else G.avg_pool2d
        return fn(x, self.kernel_size, stride=self.stride, padding=self.pad)


class MaxPool2D(Pooling):
    type = "Pooling(MAX)"
    pool = "max"


class AvgPool2D(Pooling):
    type = "Pooling(AVE)"
    pool = "ave"


class LRN(Layer):
    """Local response normalization across channels (Caffe's LRN, ACROSS_CHANNELS):
    y = x / (k + alpha/n * sum_{window of n channels} x^2) ^ beta."""
    type = "LRN"

    def __init__(self, name, local_size=5, alpha=1.0, beta=0.75, k=1.0, **kw):
        super().__init__(name, **kw)
        if int(local_size) != local_size or local_size < 1 or local_size % 2 == 0:
            raise self._fail(f"local_size must be a positive odd int, got {local_size!r}")
        self.local_size, self.alpha, self.beta, self.k = int(local_size), float(alpha), float(beta), float(k)

    def build(self, ctx, x):
        if x.ndim != 4:
            raise G.GraphcShapeError(f"expected an NCHW input of rank 4, got rank {x.ndim}")
        return G.lrn(x, size=self.local_size, alpha=self.alpha, beta=self.beta, k=self.k)


class Dropout(Layer):
    """Inverted dropout: TRAIN keeps each unit with probability 1 - ratio and scales it by
    1 / (1 - ratio); TEST is the identity (Caffe's Dropout)."""
    type = "Dropout"
    phase_dependent = True

    def __init__(self, name, dropout_ratio=0.5, **kw):
        super().__init__(name, **kw)
        if not 0.0 <= dropout_ratio < 1.0:
            raise self._fail(f"dropout_ratio must be in [0, 1), got {dropout_ratio!r}")
        self.ratio = float(dropout_ratio)

    def build(self, ctx, x):
        if not ctx.train or self.ratio == 0.0:
            return x
        return G.dropout(x, self.ratio, ctx.random)


class BatchNorm(Layer):
    """Batch normalization over the batch (and spatial) axes, per channel (axis 1).

    TRAIN: normalize with the batch mean and (biased) variance, and update Caffe's three state
    blobs: mean_sum = f*mean_sum + mean, var_sum = f*var_sum + m/(m-1)*var, factor = f*factor + 1
    (f = moving_average_fraction, m = elements per channel). TEST (or use_global_stats=True):
    normalize with mean_sum/factor and var_sum/factor. scale=True adds a learned gamma/beta
    (Caffe's Scale layer with bias; decay_mult 0 by default)."""
    type = "BatchNorm"
    phase_dependent = True

    def __init__(self, name, moving_average_fraction=0.999, eps=1e-5, use_global_stats=None,
                 scale=True, **kw):
        super().__init__(name, **kw)
        if not 0.0 <= moving_average_fraction <= 1.0:
            raise self._fail(f"moving_average_fraction must be in [0, 1], got {moving_average_fraction}")
        if eps <= 0:
            raise self._fail(f"eps must be > 0, got {eps}")
        self.fraction, self.eps = float(moving_average_fraction), float(eps)
        self.use_global_stats, self.scale = use_global_stats, bool(scale)

    def build(self, ctx, x):
        if x.ndim not in (2, 4):
            raise G.GraphcShapeError(f"expected (N, C) or (N, C, H, W), got rank {x.ndim}")
        (c,) = _static(x, [1], self.type, "channel")
        dt = x.dtype
        mean_sum = ctx.buffer("mean", np.zeros(c, dt))
        var_sum = ctx.buffer("var", np.zeros(c, dt))
        factor = ctx.buffer("factor", np.zeros((), dt))
        if self.scale:
            gamma = ctx.param("gamma", (c,), 1.0, decay_mult=0.0)
            beta = ctx.param("beta", (c,), 0.0, decay_mult=0.0)
        else:
            gamma, beta = G.constant(np.ones(c, dt)), G.constant(np.zeros(c, dt))
        use_global = self.use_global_stats if self.use_global_stats is not None else not ctx.train
        if use_global:
            scale = G.where(G.eq(factor, 0), G.zeros_like(factor), 1.0 / factor)
            return G.batch_norm_inference(x, gamma, beta, mean_sum * scale, var_sum * scale,
                                          self.eps)
        y, mean, var = G.batch_norm_train(x, gamma, beta, self.eps)
        m = x.shape[0] if x.ndim == 2 else x.shape[0] * x.shape[2] * x.shape[3]
        m = G.cast(m, dt)
        correction = m / G.maximum(m - 1.0, 1.0)
        f = self.fraction
        ctx.update(mean_sum, f * mean_sum + mean)
        ctx.update(var_sum, f * var_sum + correction * var)
        ctx.update(factor, f * factor + 1.0)
        return y


# ---------------------------------------------------------------------------------------------
# Parameter-free layers
class ReLU(Layer):
    """max(x, 0) + negative_slope * min(x, 0) (Caffe's ReLU; leaky with negative_slope)."""
    type = "ReLU"

    def __init__(self, name, negative_slope=0.0, **kw):
        super().__init__(name, **kw)
        self.negative_slope = float(negative_slope)

    def build(self, ctx, x):
        if self.negative_slope == 0.0:
            return G.relu(x)
        return G.where(G.gt(x, 0), x, self.negative_slope * x)


class Sigmoid(Layer):
    type = "Sigmoid"

    def build(self, ctx, x):
        return G.sigmoid(x)


class TanH(Layer):
    type = "TanH"

    def build(self, ctx, x):
        return G.tanh(x)


class Softmax(Layer):
    type = "Softmax"

    def build(self, ctx, x):
        return G.softmax(x)


class Flatten(Layer):
    """Flatten from axis 1: (N, C, H, W) -> (N, C*H*W)."""
    type = "Flatten"

    def build(self, ctx, x):
        return G.flatten(x, 2)


class Concat(Layer):
    """Concatenate the bottoms along ``axis`` (channels by default)."""
    type = "Concat"
    n_bottoms = None

    def __init__(self, name, axis=1, **kw):
        super().__init__(name, **kw)
        self.axis = int(axis)

    def build(self, ctx, *xs):
        return G.concatenate(list(xs), axis=self.axis)


class Eltwise(Layer):
    """Elementwise SUM (with optional coefficients), PROD or MAX of the bottoms."""
    type = "Eltwise"
    n_bottoms = None

    def __init__(self, name, operation="sum", coeff=None, **kw):
        super().__init__(name, **kw)
        self.operation = operation.lower()
        if self.operation not in ("sum", "prod", "max"):
            raise self._fail(f"operation must be sum, prod or max, got {operation!r}")
        if coeff is not None and self.operation != "sum":
            raise self._fail("coeff is only for operation='sum'")
        self.coeff = None if coeff is None else [float(c) for c in coeff]

    def build(self, ctx, *xs):
        if len(xs) < 2:
            raise G.GraphcShapeError(f"needs at least 2 bottoms, got {len(xs)}")
        if self.coeff is not None and len(self.coeff) != len(xs):
            raise G.GraphcShapeError(f"{len(self.coeff)} coefficients for {len(xs)} bottoms")
        for k, x in enumerate(xs[1:], 1):
            if x.ndim != xs[0].ndim:
                raise G.GraphcShapeError(f"bottom {k} has rank {x.ndim}, bottom 0 has rank "
                                         f"{xs[0].ndim}")
        out = xs[0] if self.coeff is None else self.coeff[0] * xs[0]
        for k, x in enumerate(xs[1:], 1):
            if self.operation == "sum":
                out = out + (x if self.coeff is None else self.coeff[k] * x)
            elif self.operation == "prod":
                out = out * x
            else:
                out = G.maximum(out, x)
        return out


class Accuracy(Layer):
    """Fraction of correct top-k predictions; bottoms [scores, labels]; a net output."""
    type = "Accuracy"
    n_bottoms = 2
    is_output = True

    def __init__(self, name, top_k=1, **kw):
        super().__init__(name, **kw)
        if int(top_k) != top_k or top_k < 1:
            raise self._fail(f"top_k must be a positive int, got {top_k!r}")
        self.top_k = int(top_k)

    def build(self, ctx, scores, labels):
        return L.accuracy(scores, labels, self.top_k)


# ---------------------------------------------------------------------------------------------
# Losses: scalar tops with loss_weight 1 by default (Caffe's convention).
class LossLayer(Layer):
    n_bottoms = 2
    default_loss_weight = 1.0
    is_output = True       # a net output even with loss_weight 0 (Caffe's monitored losses)

    def __init__(self, name, loss_weight=None, normalization=None, **kw):
        super().__init__(name, loss_weight=loss_weight, **kw)
        self.normalization = normalization


class SoftmaxWithLoss(LossLayer):
    """Softmax cross-entropy of scores (N, K) against int labels (N,), averaged over the
    (non-ignored) examples."""
    type = "SoftmaxWithLoss"

    def __init__(self, name, ignore_label=None, **kw):
        super().__init__(name, **kw)
        self.ignore_label = ignore_label

    def build(self, ctx, scores, labels):
        if scores.ndim != 2:
            raise G.GraphcShapeError(f"expected scores of rank 2 (batch, classes), got rank "
                                     f"{scores.ndim}")
        if labels.dtype not in ("int32", "int64"):
            raise G.GraphcTypeError(f"labels must be int32/int64, got {labels.dtype}")
        if labels.ndim != 1:
            raise G.GraphcShapeError(f"expected labels of rank 1 (batch,), got rank {labels.ndim}")
        return L.softmax_cross_entropy(scores, labels, self.ignore_label)


class SigmoidCrossEntropyLoss(LossLayer):
    """sum of binary cross-entropies of sigmoid(logits) vs targets, / batch size."""
    type = "SigmoidCrossEntropyLoss"

    def build(self, ctx, logits, targets):
        _same_rank(logits, targets)
        return L.sigmoid_cross_entropy(logits, targets, self.normalization or "batch_size")


class EuclideanLoss(LossLayer):
    """sum ||a - b||^2 / (2 N)."""
    type = "EuclideanLoss"

    def build(self, ctx, a, b):
        _same_rank(a, b)
        return L.euclidean(a, b, self.normalization or "batch_size")


class HingeLoss(LossLayer):
    """One-vs-all hinge loss, L1 (norm=1) or L2 (norm=2), / batch size."""
    type = "HingeLoss"

    def __init__(self, name, norm=1, **kw):
        super().__init__(name, **kw)
        if norm not in (1, 2, "L1", "L2"):
            raise self._fail(f"norm must be 1/'L1' or 2/'L2', got {norm!r}")
        self.norm = 2 if norm in (2, "L2") else 1

    def build(self, ctx, scores, labels):
        return L.hinge(scores, labels, self.norm, self.normalization or "batch_size")


def _same_rank(a, b):
    if a.ndim != b.ndim:
        raise G.GraphcShapeError(f"bottoms have ranks {a.ndim} and {b.ndim}; they must match")
