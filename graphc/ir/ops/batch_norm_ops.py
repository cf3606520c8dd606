"""Training-mode batch normalization as one op (normalization.batch_norm_train builds it):

    BatchNormTrain(eps):     (x, gamma, beta) -> (y, mean, var)
    BatchNormTrainGrad(eps): (x, gamma, mean, var, gy) -> (gx, dgamma, dbeta)

x is (N, C) or (N, C, H, W); the statistics are per channel, over axes (0,) or (0, 2, 3). The
kernels (templates/c/_batch_norm.j2, templates/cuda/batch_norm*.cu.j2) read x once for the
statistics and once more for y; the gradient reads (x, gy) once for the two per-channel sums
(sum gy, sum gy * (x - mean)) and once more for gx. Composed from reductions and elementwise ops
the same took ~60 graph nodes per layer, forward and backward (ResNet-20: 1725 nodes).

The references follow the composed form (normalization.batch_norm_train_composed) step by step:
sums accumulated in float64 and rounded to x's dtype, times the dtype's 1/m, so both targets are
compared with what the composed graph computes. The gradient op's own gradient (a second
derivative) is composed from reductions and elementwise ops: BatchNormTrainGrad.grad."""
import numpy as np

from ...errors import GraphcShapeError, GraphcTypeError
from ..graph import Constant, Op
from ..types import FLOAT_DTYPES, TensorType


def _axes(ndim):
    return (0,) if ndim == 2 else (0, 2, 3)


def _check_x(t, where):
    if t.ndim not in (2, 4) or t.dtype not in FLOAT_DTYPES:
        raise GraphcTypeError(f"{where}: expected a float (N, C) or (N, C, H, W) input, got {t}")


def _check_channels(ctx, x, vectors, where):
    """Each (name, type) of `vectors` is a (C,) vector of x's dtype."""
    for name, t in vectors:
        if t.ndim != 1 or t.dtype != x.dtype:
            raise GraphcShapeError(f"{where}: {name} must be a ({x.shape[1]},) vector of {x.dtype} "
                                   f"(one per channel of the input {x}), got {t}")
        ctx.equal(t.shape[0], x.shape[1], f"{where}: {name} entries vs the input's channels")


class BatchNormTrain(Op):
    """(x, gamma, beta) -> (y, mean, var): y = (x - mean) * (gamma / sqrt(var + eps)) + beta with
    the batch's per-channel mean and biased variance."""
    __props__ = ("eps",)
    nout = 3

    def __init__(self, eps):
        self.eps = float(eps)

    def infer(self, input_types, ctx):
        x, gamma, beta = input_types
        _check_x(x, "batch_norm_train")
        _check_channels(ctx, x, (("gamma", gamma), ("beta", beta)), "batch_norm_train")
        c = TensorType(x.dtype, (x.shape[1],))
        return [x, c, c]

    def reference(self, x, gamma, beta):
        axes, t = _axes(x.ndim), x.dtype.type
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        with np.errstate(all="ignore"):
            m = _count(x.shape, axes)
            inv_m = t(1.0 / m if m else np.inf)
            mean = x.sum(axis=axes, keepdims=True, dtype=np.float64).astype(x.dtype) * inv_m
            d = x - mean
            var = (d * d).sum(axis=axes, keepdims=True, dtype=np.float64).astype(x.dtype) * inv_m
            y = d * (gamma.reshape(shape) / np.sqrt(var + t(self.eps))) + beta.reshape(shape)
        return y, mean.reshape(-1), var.reshape(-1)

    def grad(self, node, output_grads):
        x, gamma, _ = node.inputs
        _, mean, var = node.outputs
        gy, gmean, gvar = output_grads
        return _train_grad(self.eps, x, gamma, mean, var, gy, gmean, gvar)


def _train_grad(eps, x, gamma, mean, var, gy, gmean, gvar):
    """[gx, dgamma, dbeta] of training batch norm given the gradients of (y, mean, var)."""
    gx, dgamma, dbeta = BatchNormTrainGrad(eps)(x, gamma, mean, var, gy)
    # The statistics as outputs of their own (a cost that reads them): d mean / dx = 1/m,
    # d var / dx = 2 (x - mean) / m (the mean's own dependence on x sums to zero).
    if not _is_zero(gmean):
        gx = gx + _bcast(gmean, x) * _inv_count(x)
    if not _is_zero(gvar):
        gx = gx + _bcast(gvar, x) * (x - _bcast(mean, x)) * (_inv_count(x) * 2)
    return [gx, dgamma, dbeta]


class BatchNormTrainGrad(Op):
    """(x, gamma, mean, var, gy) -> (gx, dgamma, dbeta), with s = 1 / sqrt(var + eps), d = x - mean,
    A = sum gy and B = sum gy * d per channel over m elements:
        dbeta = A,  dgamma = s * B,  gx = gamma * s * (gy - A / m - d * s^2 * B / m)."""
    __props__ = ("eps",)
    nout = 3

    def __init__(self, eps):
        self.eps = float(eps)

    def infer(self, input_types, ctx):
        x, gamma, mean, var, gy = input_types
        where = "batch_norm_train_grad"
        _check_x(x, where)
        _check_channels(ctx, x, (("gamma", gamma), ("mean", mean), ("var", var)), where)
        if gy.ndim != x.ndim or gy.dtype != x.dtype:
            raise GraphcShapeError(f"{where}: the output gradient {gy} must match the input {x}")
        for a, (d1, d2) in enumerate(zip(x.shape, gy.shape)):
            ctx.equal(d1, d2, f"{where}: output gradient axis {a}")
        c = TensorType(x.dtype, (x.shape[1],))
        return [x, c, c]

    def reference(self, x, gamma, mean, var, gy):
        axes, t = _axes(x.ndim), x.dtype.type
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        with np.errstate(all="ignore"):
            m = float(_count(x.shape, axes))
            s = (t(1) / np.sqrt(var + t(self.eps))).astype(np.float64)
            d = x - mean.reshape(shape)
            a = gy.sum(axis=axes, dtype=np.float64)
            b = (gy * d).sum(axis=axes, dtype=np.float64)
            k1 = (gamma * s).astype(x.dtype).reshape(shape)
            k2 = (a / m).astype(x.dtype).reshape(shape)
            k3 = (b / m * s * s).astype(x.dtype).reshape(shape)
            gx = k1 * (gy - k2 - d * k3)
            return gx, (b * s).astype(x.dtype), a.astype(x.dtype)

    def grad(self, node, output_grads):
        """Composed from reductions and elementwise ops: the partial derivatives of
        L = sum u * gx + sum v * dgamma + sum w * dbeta, with (u, v, w) the output gradients and
        mean and var independent inputs (the forward op's gradient chains them to x)."""
        return _grad_of_grad(self.eps, *node.inputs, *output_grads)


def _grad_of_grad(eps, x, gamma, mean, var, gy, u, v, w):
    """BatchNormTrainGrad.grad: [d x, d gamma, d mean, d var, d gy] of
    L = sum u * gx + sum v * dgamma + sum w * dbeta."""
    from ..constructors import as_variable
    from .elemwise import sqrt_op
    from .reduce import reduce_sum
    axes, dt = _axes(x.ndim), x.dtype

    def k(value):
        return as_variable(np.asarray(value, dtype=dt))

    def total(e):
        return reduce_sum(e, axes)

    def b(e):
        return _bcast(e, x)

    inv_m = _inv_count(x)
    s = k(1) / sqrt_op(var + k(eps))
    s3 = s * s * s
    d = x - b(mean)
    a, bb = total(gy), total(gy * d)
    u1, u2, g = total(u), total(u * d), total(u * gy)
    ggy = (b(gamma * s) * u - b(gamma * s * u1 * inv_m) - b(gamma * s3 * u2 * inv_m) * d
           + b(v * s) * d + b(w))
    gxx = b(v * s) * gy - b(gamma * s3 * inv_m) * (b(u2) * gy + b(bb) * u)
    gmean = gamma * s3 * inv_m * (u2 * a + bb * u1) - v * s * a
    ggamma = s * g - s * a * u1 * inv_m - s3 * bb * u2 * inv_m
    gvar = (k(-0.5) * s3 * (gamma * g - gamma * a * u1 * inv_m + v * bb)
            + k(1.5) * gamma * s3 * s * s * bb * u2 * inv_m)
    return [gxx, ggamma, gmean, gvar, ggy]


def _count(shape, axes):
    m = 1
    for a in axes:
        m = m * shape[a]
    return m


def _inv_count(x):
    """1/m, m the elements per channel, as a scalar of x's dtype (a dim expression at run time)."""
    from ..constructors import constant
    from .elemwise import cast
    from .shape import dim_value
    m = _count(x.type.shape, _axes(x.ndim))
    if isinstance(m, int):
        return constant(np.asarray(1.0 / m if m else np.inf, dtype=x.dtype))
    return constant(np.asarray(1, dtype=x.dtype)) / cast(dim_value(m), x.dtype)


def _bcast(v, x):
    """A (C,) vector as (1, C) or (1, C, 1, 1), to broadcast against x."""
    from .shape import reshape
    return reshape(v, (1, x.type.shape[1]) + (1,) * (x.ndim - 2))


def _is_zero(g):
    """Whether g is the zeros graphc.grad gives an output no gradient reached."""
    from .elemwise import second_op
    n = g.owner
    return n is not None and n.op == second_op and isinstance(n.inputs[1], Constant) and \
        not n.inputs[1].data.any()


# Batch norm with the ReLU after it (and the residual add before that) folded in, made by the
# pass graphc/passes/fuse_batch_norm.py from the graph above (never by the user): the kernels
# write y in the pass that normalizes, and the gradient applies the ReLU's mask as it reads gy.

class BatchNormTrainRelu(Op):
    """(x, gamma, beta[, r]) -> (y, mean, var): y = relu(bn(x) [+ r]) with bn(x) rounded to x's
    dtype first, as BatchNormTrain and then add and relu compute it (residual: r given)."""
    __props__ = ("eps", "residual")
    nout = 3

    def __init__(self, eps, residual=False):
        self.eps, self.residual = float(eps), bool(residual)

    def infer(self, input_types, ctx):
        where = "batch_norm_train_relu"
        x = input_types[0]
        outs = BatchNormTrain(self.eps).infer(input_types[:3], ctx)
        if len(input_types) != 3 + self.residual:
            raise GraphcTypeError(f"{where}: expected {3 + self.residual} inputs, got {len(input_types)}")
        if self.residual:
            r = input_types[3]
            if r.ndim != x.ndim or r.dtype != x.dtype:
                raise GraphcShapeError(f"{where}: the residual {r} must match the input {x}")
            for a, (d1, d2) in enumerate(zip(x.shape, r.shape)):
                ctx.equal(d1, d2, f"{where}: residual axis {a}")
        return outs

    def reference(self, x, gamma, beta, *r):
        from .scalar_fns import _np_relu
        y, mean, var = BatchNormTrain(self.eps).reference(x, gamma, beta)
        if r:
            y = y + r[0]
        return _np_relu(y), mean, var

    def grad(self, node, output_grads):
        x, gamma = node.inputs[:2]
        y, mean, var = node.outputs
        gy, gmean, gvar = output_grads
        gz = _relu_masked(gy, y)
        return _train_grad(self.eps, x, gamma, mean, var, gz, gmean, gvar) + [gz] * self.residual


class BatchNormTrainReluGrad(Op):
    """(x, gamma, mean, var, g, y) -> (gx, dgamma, dbeta): BatchNormTrainGrad of
    gy = g * (y > 0 ? 1 : 0), the ReLU's gradient read from its output y (as drelu computes it:
    inf or NaN in g where y <= 0 gives NaN, as there)."""
    __props__ = ("eps",)
    nout = 3

    def __init__(self, eps):
        self.eps = float(eps)

    def infer(self, input_types, ctx):
        where = "batch_norm_train_relu_grad"
        x, y = input_types[0], input_types[5]
        outs = BatchNormTrainGrad(self.eps).infer(input_types[:5], ctx)
        if y.ndim != x.ndim or y.dtype != x.dtype:
            raise GraphcShapeError(f"{where}: the ReLU output {y} must match the input {x}")
        for a, (d1, d2) in enumerate(zip(x.shape, y.shape)):
            ctx.equal(d1, d2, f"{where}: ReLU output axis {a}")
        return outs

    def reference(self, x, gamma, mean, var, g, y):
        with np.errstate(invalid="ignore"):
            gy = g * (y > 0).astype(x.dtype)
        return BatchNormTrainGrad(self.eps).reference(x, gamma, mean, var, gy)

    def grad(self, node, output_grads):
        x, gamma, mean, var, g, y = node.inputs
        gz = _relu_masked(g, y)
        gx, ggamma, gmean, gvar, ggz = _grad_of_grad(self.eps, x, gamma, mean, var, gz, *output_grads)
        return [gx, ggamma, gmean, gvar, _relu_masked(ggz, y), None]


def _relu_masked(g, y):
    """g * (y > 0 ? 1 : 0): the ReLU's gradient from its output, as drelu writes it."""
    from .elemwise import cast
    return g * cast(y > np.asarray(0, dtype=y.dtype), y.dtype)
