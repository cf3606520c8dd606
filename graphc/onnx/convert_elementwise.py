"""Elementwise ONNX operators: arithmetic, comparisons, logic, activations, Cast, Clip, Where."""
import numpy as np

from ..ir.ops import elemwise as E
from ..ir.ops.activations import elu, gelu, hard_sigmoid, hard_swish, leaky_relu
from ..ir.types import FLOAT_DTYPES, INT_DTYPES
from . import proto as P
from .registry import Unsupported, converter


def _c(x, v):
    return np.asarray(v, dtype=x.dtype)


def _same_dtype(node, *xs):
    """ONNX elementwise ops take one dtype; graphc would promote a mix silently."""
    dts = {x.dtype for x in xs}
    if len(dts) > 1:
        raise Unsupported(f"inputs have different dtypes {sorted(dts)} (ONNX requires one)")


def _int_div(a, b):
    """C-style integer division (truncation toward zero), as ONNX's Div on integers."""
    q = E.floordiv_op(a, b)
    r = a - q * b
    fix = E.and_op(E.neq_op(r, 0), E.neq_op(E.lt_op(a, 0), E.lt_op(b, 0)))
    return q + E.cast(fix, q.dtype)


_BINARY = {"Add": E.add_op, "Sub": E.sub_op, "Mul": E.mul_op, "Pow": E.pow_op,
           "Equal": E.eq_op, "Less": E.lt_op, "LessOrEqual": E.le_op, "Greater": E.gt_op,
           "GreaterOrEqual": E.ge_op, "And": E.and_op, "Or": E.or_op, "Xor": E.xor_op}


@converter(*_BINARY)
def binary(node):
    a, b = node.input(0), node.input(1)
    if node.op_type != "Pow":
        _same_dtype(node, a, b)
    elif a.dtype != b.dtype:
        b = E.cast(b, a.dtype)  # Pow's exponent may have another type; the result has a's
    out = _BINARY[node.op_type](a, b)
    return out


@converter("Div")
def div(node):
    a, b = node.input(0), node.input(1)
    _same_dtype(node, a, b)
    if a.dtype in INT_DTYPES:
        return _int_div(a, b)
    return E.div_op(a, b)


@converter("Mod", attrs=("fmod",))
def mod(node):
    a, b = node.input(0), node.input(1)
    _same_dtype(node, a, b)
    if node.attr("fmod", 0):
        # C's fmod: the sign of the dividend; a - trunc(a / b) * b
        if a.dtype in INT_DTYPES:
            return a - _int_div(a, b) * b
        return E.fmod_op(a, b)
    return E.mod_op(a, b)


_UNARY = {"Relu": E.relu_op, "Sigmoid": E.sigmoid_op, "Tanh": E.tanh_op, "Exp": E.exp_op,
          "Log": E.log_op, "Sqrt": E.sqrt_op, "Abs": E.abs_op, "Neg": E.neg_op, "Erf": E.erf_op,
          "Softplus": E.softplus_op, "Sin": E.sin_op, "Cos": E.cos_op, "Sign": E.sign_op,
          "Not": E.not_op}


@converter(*_UNARY)
def unary(node):
    x = node.input(0)
    if node.op_type in ("Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Erf", "Softplus", "Sin", "Cos") \
            and x.dtype not in FLOAT_DTYPES:
        raise Unsupported(f"input of dtype {x.dtype}: graphc computes {node.op_type} on floats")
    return _UNARY[node.op_type](x)


@converter("Reciprocal")
def reciprocal(node):
    x = node.input(0)
    return E.div_op(_c(x, 1), x)


@converter("Identity")
def identity(node):
    node.copies_input(0)   # Identity(weight) is the weight: trainable, never a frozen constant
    return node.value(0)


@converter("LeakyRelu", attrs=("alpha",))
def leaky(node):
    return leaky_relu(node.input(0), node.attr("alpha", 0.01))


@converter("Elu", attrs=("alpha",))
def elu_(node):
    return elu(node.input(0), node.attr("alpha", 1.0))


@converter("Selu", attrs=("alpha", "gamma"))
def selu(node):
    x = node.input(0)
    alpha, gamma = node.attr("alpha", 1.67326319217681884765625), node.attr("gamma", 1.05070102214813232421875)
    return _c(x, gamma) * elu(x, alpha)


@converter("HardSigmoid", attrs=("alpha", "beta"))
def hsig(node):
    return hard_sigmoid(node.input(0), node.attr("alpha", 0.2), node.attr("beta", 0.5))


@converter("HardSwish")
def hswish(node):
    return hard_swish(node.input(0))


@converter("Gelu", attrs=("approximate",))
def gelu_(node):
    approx = node.attr("approximate", "none")
    if approx not in ("none", "tanh"):
        raise Unsupported(f"approximate={approx!r} (graphc has 'none' and 'tanh')")
    return gelu(node.input(0), approx)


@converter("Softsign")
def softsign(node):
    x = node.input(0)
    return x / (_c(x, 1) + E.abs_op(x))


@converter("PRelu")
def prelu(node):
    x, slope = node.input(0), node.input(1)
    return E.where_op(E.lt_op(x, _c(x, 0)), E.cast(slope, x.dtype) * x, x)


@converter("Clip")
def clip(node):
    x = node.input(0)
    lo, hi = node.input(1), node.input(2)
    if lo is not None:
        x = E.maximum_op(x, E.cast(lo, x.dtype))
    if hi is not None:
        x = E.minimum_op(x, E.cast(hi, x.dtype))
    return x


@converter("Where")
def where(node):
    c, a, b = node.input(0), node.input(1), node.input(2)
    _same_dtype(node, a, b)
    return E.where_op(c, a, b)


def _variadic(op):
    def fn(node):
        xs = [x for x in node.inputs() if x is not None]
        _same_dtype(node, *xs)
        out = xs[0]
        for x in xs[1:]:
            out = op(out, x)
        return out
    return fn


converter("Max")(_variadic(E.maximum_op))
converter("Min")(_variadic(E.minimum_op))
converter("Sum")(_variadic(E.add_op))


@converter("Mean")
def mean(node):
    xs = [x for x in node.inputs() if x is not None]
    return _variadic(E.add_op)(node) / _c(xs[0], len(xs))


@converter("Cast", attrs=("to", "saturate", "round_mode"))
def cast(node):
    to = node.attr("to")
    dtype = P.dtype_of_elem(to, f"{node} attribute to")
    return E.cast(node.input(0), dtype)


@converter("CastLike", attrs=("saturate", "round_mode"))
def cast_like(node):
    return E.cast(node.input(0), node.input(1).dtype)
