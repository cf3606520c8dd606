"""The scalar-function table: one row per function an elementwise op may apply.

A row says everything graphc needs to know about the function: its derivative, its numpy form
(the reference and the py backend), how a C printer calls it, whether fusion may recompute it
freely, whether its gradient reads its output, whether glibc has a SIMD version, and its public
names. The sympy classes, NUMPY_IMPLS, the printer's routing, the fusion cost test, the SIMD
declarations and graphc.math's exports are all derived from TABLE; a row that lacks a piece
fails when this module is imported.

Adding a function: a row here, an op line in elemwise.py, a case in tests/op_cases.py.
"""
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import sympy

from . import scalar_expr as se


@dataclass(frozen=True)
class CForm:
    """How C calls a function.
    kind "libm":    a C math library function; `name` is the double form, name + "f" the float.
    kind "helper":  a function of templates/c/gc_runtime.h, same naming (gc_sigmoid, gc_sigmoidf).
    kind "generic": a type-generic macro of gc_runtime.h (GC_MAX), same name for every type.
    kind "syntax":  C operators the printer spells (a conditional, &&, ...): `name` names the
                    printer's method."""
    kind: str
    name: str

    def __post_init__(self):
        if self.kind not in ("libm", "helper", "generic", "syntax"):
            raise ValueError(f"C form {self.name}: kind {self.kind!r} is not libm/helper/generic/syntax")


def libm(name):
    return CForm("libm", name)


def helper(name):
    return CForm("helper", name)


def generic(name):
    return CForm("generic", name)


def syntax(name):
    return CForm("syntax", name)


@dataclass(frozen=True)
class Row:
    name: str                      # the sympy function's name; the key of every derived table
    nargs: int
    numpy: Callable                # the reference: numpy arrays in, numpy array out
    c: CForm                       # how the C printer calls it
    cost: str                      # "cheap" (fusion may recompute it) or "expensive"
    derivative: Optional[Callable] = None   # args -> tuple of partial derivatives; None: 0
    # Its derivative from its output y (y -> tuple of partials), read instead of recomputing the
    # function: a gradient then needs no transcendental, and a scan's BPTT reads the saved y.
    from_output: Optional[Callable] = None
    public: tuple = ()             # names in graphc.math (for ops that apply just this function)
    simd: bool = False             # glibc's libmvec has a vector version (declared in gc_runtime.h)
    real: bool = True              # its value is a real number (logical functions: a boolean)

    def __post_init__(self):
        missing = [f for f in ("numpy", "c") if getattr(self, f) is None]
        if missing or self.cost not in ("cheap", "expensive"):
            raise ValueError(f"scalar function {self.name}: row lacks {missing or 'a cost class'}")
        if self.from_output is not None and self.nargs != 1:
            raise ValueError(f"scalar function {self.name}: a derivative from the output needs one argument")
        if self.simd and self.c.kind != "libm":
            raise ValueError(f"scalar function {self.name}: only libm functions have SIMD forms")


class ScalarFn(sympy.Function):
    """A function of the table. sympy never evaluates it (no eval; no numeric evalf of Float
    arguments either: constants are computed by C or numpy, in the op's precision)."""
    never_evaluates = True
    row = None

    @classmethod
    def _should_evalf(cls, arg):
        return -1

    def _eval_is_extended_real(self):
        return self.row.real if self.row else True

    def fdiff(self, argindex=1):
        if self.row is None or self.row.derivative is None:
            return sympy.Integer(0)
        return self.row.derivative(*self.args)[argindex - 1]


# --- numpy forms that numpy does not have as one call ------------------------------------------

def _np_sigmoid(x):
    # Stable on both tails; matches C's 1/(1+exp(-x)) where that does not overflow.
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x))).astype(
            np.result_type(x, np.float32) if np.asarray(x).dtype.kind == "f" else np.float64)


def _np_relu(x):
    return np.maximum(x, 0).astype(np.asarray(x).dtype)


def _np_floordiv(a, b):
    a, b = np.asarray(a), np.asarray(b)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.floor_divide(a, b)
    if out.dtype.kind in "iu":  # numpy gives 0 for x // 0 (C: SIGFPE, gc_floordiv gives 0 too)
        out = np.where(np.broadcast_to(b, out.shape) == 0, 0, out).astype(out.dtype)
    return out


def _np_mod(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mod(a, b)


def _np_fmod(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.fmod(a, b)


_ERF = np.frompyfunc(math.erf, 1, 1)


def _np_erf(x):
    x = np.asarray(x)
    return _ERF(x).astype(x.dtype if x.dtype.kind == "f" else np.float64)


# --- the table ---------------------------------------------------------------------------------

def _where_d(c, a, b):
    return (sympy.Integer(0), where(c, 1, 0), where(c, 0, 1))


TABLE = [
    Row("exp", 1, np.exp, libm("exp"), "expensive", lambda x: (exp(x),),
        from_output=lambda y: (y,), public=("exp",), simd=True),
    Row("expm1", 1, np.expm1, libm("expm1"), "expensive", lambda x: (exp(x),),
        public=("expm1",), simd=True),
    Row("log", 1, np.log, libm("log"), "expensive", lambda x: (1 / x,), public=("log",), simd=True),
    Row("log1p", 1, np.log1p, libm("log1p"), "expensive", lambda x: (1 / (1 + x),),
        public=("log1p",), simd=True),
    Row("tanh", 1, np.tanh, libm("tanh"), "expensive", lambda x: (1 - tanh(x) ** 2,),
        from_output=lambda y: (1 - y ** 2,), public=("tanh",), simd=True),
    Row("sin", 1, np.sin, libm("sin"), "expensive", lambda x: (cos(x),), public=("sin",), simd=True),
    Row("cos", 1, np.cos, libm("cos"), "expensive", lambda x: (-sin(x),), public=("cos",), simd=True),
    Row("erf", 1, _np_erf, libm("erf"), "expensive",
        lambda x: (2 / sympy.sqrt(sympy.pi) * exp(-x ** 2),), public=("erf",), simd=True),
    # In x: s(x) * s(-x) (relatively precise for large x, where 1 - s rounds). An op's gradient
    # reads s (y (1 - y), as Theano and PyTorch): no exp, and exact at the limits, but only
    # absolutely precise (to eps / 2) once s nears 1: the price of no transcendental in BPTT.
    Row("sigmoid", 1, _np_sigmoid, helper("gc_sigmoid"), "expensive",
        lambda x: (sigmoid(x) * sigmoid(-x),), from_output=lambda y: (y * (1 - y),),
        public=("sigmoid",)),
    Row("softplus", 1, lambda x: np.logaddexp(np.zeros_like(x), x), helper("gc_softplus"),
        "expensive", lambda x: (sigmoid(x),), public=("softplus",)),
    Row("relu", 1, _np_relu, helper("gc_relu"), "cheap",
        lambda x: (where(sympy.StrictGreaterThan(x, 0), 1, 0),), public=("relu",)),
    Row("sgn", 1, np.sign, generic("GC_SIGN"), "cheap", public=("sign",)),          # d|x|/dx; 0 at 0
    Row("absval", 1, np.abs, generic("GC_ABS"), "cheap", lambda x: (sgn(x),), public=("abs", "abs_")),
    # Ties send the gradient to the first argument, as numpy-based frameworks do.
    Row("maximum", 2, np.maximum, generic("GC_MAX"), "cheap",
        lambda a, b: (where(sympy.GreaterThan(a, b), 1, 0), where(sympy.GreaterThan(a, b), 0, 1)),
        public=("maximum",)),
    Row("minimum", 2, np.minimum, generic("GC_MIN"), "cheap",
        lambda a, b: (where(sympy.LessThan(a, b), 1, 0), where(sympy.LessThan(a, b), 0, 1)),
        public=("minimum",)),
    Row("where", 3, np.where, syntax("where"), "cheap", _where_d, public=("where", "switch")),
    Row("floordiv", 2, _np_floordiv, generic("gc_floordiv"), "cheap", public=("floor_div",)),
    Row("mod", 2, _np_mod, generic("gc_mod"), "cheap"),
    # C's fmod: the remainder with the dividend's sign, exact (numpy's fmod is C's); d/db is
    # -trunc(a / b), written with fmod itself as (fmod(a, b) - a) / b.
    Row("fmod", 2, _np_fmod, libm("fmod"), "cheap",
        lambda a, b: (sympy.Integer(1), (fmod(a, b) - a) / b), public=("fmod",)),
    # Integer power; a negative exponent gives the truncated 1 / a**n (see _np_ipow).
    Row("ipow", 2, lambda a, b: _np_ipow(a, b), generic("gc_ipow"), "cheap"),
    Row("logical_and", 2, np.logical_and, syntax("logical_and"), "cheap", real=False,
        public=("logical_and",)),
    Row("logical_or", 2, np.logical_or, syntax("logical_or"), "cheap", real=False,
        public=("logical_or",)),
    Row("logical_xor", 2, np.logical_xor, syntax("logical_xor"), "cheap", real=False,
        public=("logical_xor",)),
    Row("logical_not", 1, np.logical_not, syntax("logical_not"), "cheap", real=False,
        public=("logical_not",)),
]
ROWS = {r.name: r for r in TABLE}


def _np_ipow(a, b):
    """Integer a ** b, wrapping on overflow as numpy does. numpy raises for a negative b; a C
    kernel cannot, so graphc defines it on both backends as the truncated quotient 1 / a**-b:
    1 for a = 1, +-1 for a = -1, 0 otherwise (0 for a = 0 too)."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    neg = b < 0
    with np.errstate(over="ignore"):
        out = np.power(a, np.where(neg, 0, b))
    odd = (b % 2) != 0
    small = np.where(a == 1, 1, np.where(a == -1, np.where(odd, -1, 1), 0))
    return np.where(neg, small, out).astype(out.dtype)


def _function_class(row):
    return type(row.name, (ScalarFn,), {"nargs": row.nargs, "row": row, "__module__": __name__})


_CLASSES = {r.name: _function_class(r) for r in TABLE}
exp, expm1, log, log1p = _CLASSES["exp"], _CLASSES["expm1"], _CLASSES["log"], _CLASSES["log1p"]
tanh, sin, cos = _CLASSES["tanh"], _CLASSES["sin"], _CLASSES["cos"]
sigmoid, softplus, relu = _CLASSES["sigmoid"], _CLASSES["softplus"], _CLASSES["relu"]
sgn, absval, maximum, minimum = _CLASSES["sgn"], _CLASSES["absval"], _CLASSES["maximum"], _CLASSES["minimum"]
where, floordiv, mod, ipow = _CLASSES["where"], _CLASSES["floordiv"], _CLASSES["mod"], _CLASSES["ipow"]
fmod = _CLASSES["fmod"]
logical_and, logical_or = _CLASSES["logical_and"], _CLASSES["logical_or"]
logical_xor, logical_not = _CLASSES["logical_xor"], _CLASSES["logical_not"]
LOGICAL = (logical_and, logical_or, logical_xor, logical_not)


def function(name):
    """The sympy class of the table's function `name`."""
    return _CLASSES[name]


def make_cast(dtype):
    """cast_<dtype>(x): conversion to dtype (C cast; bool means x != 0)."""
    return _CASTS[dtype]


class Cast(ScalarFn):
    """Base of cast_<dtype>: printed as a C cast, computed by numpy's astype."""
    nargs = 1
    dtype = None

    def fdiff(self, argindex=1):
        return sympy.Integer(1) if self.dtype.startswith("float") else sympy.Integer(0)


_CASTS = {d: type(f"cast_{d}", (Cast,), {"dtype": d, "__module__": __name__})
          for d in ("float32", "float64", "int32", "int64", "bool")}

NUMPY_IMPLS = {r.name: r.numpy for r in TABLE}
for _d in _CASTS:
    NUMPY_IMPLS[f"cast_{_d}"] = (lambda d: lambda x: np.asarray(x).astype(d))(_d)

# What sympy.diff may produce, back to the table (see scalar_expr.freeze): each row named like a
# sympy function (exp, log, tanh, erf, ...), and sympy's names for |x| and sign(x).
_SYMPY_TO_TABLE = {name: cls for name, cls in _CLASSES.items()
                   if isinstance(getattr(sympy, name, None), sympy.FunctionClass)}
_SYMPY_TO_TABLE.update(Abs=absval, sign=sgn)
# Functions whose value fusion should not recompute for several readers.
EXPENSIVE = tuple(_CLASSES[r.name] for r in TABLE if r.cost == "expensive")
# Functions whose derivative reads the output instead of recomputing it.
REUSE_OUTPUT = tuple(_CLASSES[r.name] for r in TABLE if r.from_output)
# The libm functions glibc's libmvec vectorizes (gc_runtime.h declares them "omp declare simd").
SIMD_LIBM = tuple(r.c.name for r in TABLE if r.simd)


def freeze(expr):
    """`expr` as graphc's scalar IR: sympy never evaluates it again (scalar_expr)."""
    return se.freeze(expr, _SYMPY_TO_TABLE)
