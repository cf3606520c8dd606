"""Elementwise and reduction functions of the public API (G.exp, G.maximum, G.sum, ...)."""
from .ir.ops import elemwise as _e
from .ir.ops import reduce as _r

__all__ = ["exp", "expm1", "log", "log1p", "sqrt", "sqr", "square", "abs", "abs_", "sign", "tanh",
           "sin", "cos", "sigmoid", "softplus", "relu", "maximum", "minimum", "clip", "where",
           "switch", "eq", "neq", "lt", "le", "gt", "ge", "logical_and", "logical_or",
           "logical_xor", "logical_not", "pow", "power", "sum", "prod", "max", "min", "add", "sub",
           "mul", "true_div", "neg", "ones_like", "zeros_like", "floor_div"]

exp, expm1, log, log1p, sqrt = _e.exp_op, _e.expm1_op, _e.log_op, _e.log1p_op, _e.sqrt_op
sqr = square = _e.square_op
abs = abs_ = _e.abs_op  # noqa: A001 - numpy-style name on purpose
sign, tanh, sin, cos = _e.sign_op, _e.tanh_op, _e.sin_op, _e.cos_op
sigmoid, softplus, relu = _e.sigmoid_op, _e.softplus_op, _e.relu_op
maximum, minimum, clip = _e.maximum_op, _e.minimum_op, _e.clip_op
where = switch = _e.where_op
eq, neq, lt, le, gt, ge = _e.eq_op, _e.neq_op, _e.lt_op, _e.le_op, _e.gt_op, _e.ge_op
logical_and, logical_or, logical_xor, logical_not = _e.and_op, _e.or_op, _e.xor_op, _e.not_op
pow = power = _e.pow_op  # noqa: A001
add, sub, mul, true_div, neg, floor_div = _e.add_op, _e.sub_op, _e.mul_op, _e.div_op, _e.neg_op, _e.floordiv_op


def sum(x, axis=None, keepdims=False):  # noqa: A001
    return _r._reduce("sum", x, axis, keepdims)


def prod(x, axis=None, keepdims=False):
    return _r._reduce("prod", x, axis, keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return _r._reduce("max", x, axis, keepdims)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return _r._reduce("min", x, axis, keepdims)


def zeros_like(x):
    import numpy as np
    from .ir.constructors import as_variable, constant
    x = as_variable(x)
    return _e.second_op(x, constant(np.zeros((), x.dtype)))


def ones_like(x):
    import numpy as np
    from .ir.constructors import as_variable, constant
    x = as_variable(x)
    return _e.second_op(x, constant(np.ones((), x.dtype)))
