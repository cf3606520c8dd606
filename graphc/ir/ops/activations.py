"""Activation functions that are compositions of the scalar table's functions (each one
elementwise expression after fusion): gelu, hard_sigmoid, hard_swish, leaky_relu, elu."""
import math

import numpy as np


def _const(x, v):
    return np.asarray(v, dtype=x.dtype)


def gelu(x, approximate="none"):
    """x * Phi(x) (approximate="none", with erf) or its tanh approximation (approximate="tanh")."""
    from ...errors import GraphcTypeError
    from ..constructors import as_variable
    from .elemwise import erf_op, tanh_op
    x = as_variable(x)
    if approximate == "none":
        return _const(x, 0.5) * x * (_const(x, 1.0) + erf_op(x * _const(x, 1 / math.sqrt(2))))
    if approximate == "tanh":
        inner = _const(x, math.sqrt(2 / math.pi)) * (x + _const(x, 0.044715) * x * x * x)
        return _const(x, 0.5) * x * (_const(x, 1.0) + tanh_op(inner))
    raise GraphcTypeError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def hard_sigmoid(x, alpha=0.2, beta=0.5):
    """max(0, min(1, alpha * x + beta))."""
    from ..constructors import as_variable
    from .elemwise import maximum_op, minimum_op
    x = as_variable(x)
    return maximum_op(_const(x, 0.0), minimum_op(_const(x, 1.0), _const(x, alpha) * x + _const(x, beta)))


def hard_swish(x):
    """x * hard_sigmoid(x, 1/6, 1/2) (MobileNetV3)."""
    from ..constructors import as_variable
    x = as_variable(x)
    return x * hard_sigmoid(x, 1 / 6, 0.5)


def leaky_relu(x, alpha=0.01):
    """x where x >= 0, alpha * x below (nan stays nan)."""
    from ..constructors import as_variable
    from .elemwise import lt_op, where_op
    x = as_variable(x)
    return where_op(lt_op(x, _const(x, 0.0)), _const(x, alpha) * x, x)


def elu(x, alpha=1.0):
    """x where x >= 0, alpha * (exp(x) - 1) below."""
    from ..constructors import as_variable
    from .elemwise import expm1_op, lt_op, where_op
    x = as_variable(x)
    return where_op(lt_op(x, _const(x, 0.0)), _const(x, alpha) * expm1_op(x), x)
