"""Scalar functions sympy lacks (or prints badly), each with its derivative and numpy form.

Elementwise ops are sympy expressions over these plus sympy's own Add/Mul/Pow/exp/log/tanh.
The same expression gives the numpy reference (lambdify with NUMPY_IMPLS), the C code
(graphc.targets.c.cprinter) and, through `fdiff`, the gradient.
"""
import numpy as np
import sympy
from sympy.codegen.cfunctions import log1p, expm1  # noqa: F401  (re-exported: used by ops)


class _RealValued(sympy.Function):
    """A function whose value is a real number (or +-inf/nan), never complex. Telling sympy so
    matters: substituting an expression of unknown realness into a comparison (the derivative
    of maximum, a where's condition) makes sympy raise "Invalid comparison of non-real"."""

    def _eval_is_extended_real(self):
        return True


class sigmoid(_RealValued):
    nargs = 1

    def fdiff(self, argindex=1):
        # s(x) * s(-x), not s * (1 - s): 1 - s loses every digit once s rounds to 1.
        return sigmoid(self.args[0]) * sigmoid(-self.args[0])


class softplus(_RealValued):
    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])


class relu(_RealValued):
    nargs = 1

    def fdiff(self, argindex=1):
        return where(sympy.StrictGreaterThan(self.args[0], 0), 1, 0)


class sgn(_RealValued):
    """sign(x): derivative of |x| (0 at 0)."""
    nargs = 1

    def fdiff(self, argindex=1):
        return sympy.Integer(0)


class absval(_RealValued):
    nargs = 1

    def fdiff(self, argindex=1):
        return sgn(self.args[0])


class maximum(_RealValued):
    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        # Ties send the gradient to the first argument, as numpy-based frameworks do.
        if argindex == 1:
            return where(sympy.GreaterThan(a, b), 1, 0)
        return where(sympy.GreaterThan(a, b), 0, 1)


class minimum(_RealValued):
    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        if argindex == 1:
            return where(sympy.LessThan(a, b), 1, 0)
        return where(sympy.LessThan(a, b), 0, 1)


class where(_RealValued):
    """where(cond, a, b). The condition is a boolean (relational or bool input)."""
    nargs = 3

    def fdiff(self, argindex=1):
        c = self.args[0]
        if argindex == 1:
            return sympy.Integer(0)
        return where(c, 1, 0) if argindex == 2 else where(c, 0, 1)


class floordiv(_RealValued):
    nargs = 2

    def fdiff(self, argindex=1):
        return sympy.Integer(0)


class mod(_RealValued):
    nargs = 2

    def fdiff(self, argindex=1):
        return sympy.Integer(0)


class logical_and(sympy.Function):
    nargs = 2


class logical_or(sympy.Function):
    nargs = 2


class logical_xor(sympy.Function):
    nargs = 2


class logical_not(sympy.Function):
    nargs = 1


def make_cast(dtype):
    """cast_<dtype>(x): conversion to dtype (C cast; bool means x != 0)."""
    return _CASTS[dtype]


def _cast_class(dtype):
    def fdiff(self, argindex=1):
        return sympy.Integer(1) if dtype.startswith("float") else sympy.Integer(0)
    return type(f"cast_{dtype}", (_RealValued,), {"nargs": 1, "fdiff": fdiff, "dtype": dtype})


_CASTS = {d: _cast_class(d) for d in ("float32", "float64", "int32", "int64", "bool")}


def _np_sigmoid(x):
    # Stable on both tails; matches C's 1/(1+exp(-x)) where that does not overflow.
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x))).astype(
            np.result_type(x, np.float32) if np.asarray(x).dtype.kind == "f" else np.float64)


def _np_relu(x):
    return np.maximum(x, 0).astype(np.asarray(x).dtype)


def _np_floordiv(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.floor_divide(a, b)


NUMPY_IMPLS = {
    "sigmoid": _np_sigmoid,
    "softplus": lambda x: np.logaddexp(np.zeros_like(x), x),
    "relu": _np_relu,
    "sgn": np.sign,
    "absval": np.abs,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "where": np.where,
    "floordiv": _np_floordiv,
    "mod": np.mod,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "logical_xor": np.logical_xor,
    "logical_not": np.logical_not,
    "log1p": np.log1p,
    "expm1": np.expm1,
}
for _d in _CASTS:
    NUMPY_IMPLS[f"cast_{_d}"] = (lambda d: lambda x: np.asarray(x).astype(d))(_d)
