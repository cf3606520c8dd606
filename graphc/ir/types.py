"""Tensor types: a dtype and a shape whose entries are ints or sympy integer expressions.

A symbolic dim (``graphc.dim("batch")``) is a positive integer sympy Symbol. Symbolic dims never
broadcast (as in Theano, where only dims known to be 1 broadcast); two different symbols that must
agree are unified when the function is compiled (see ``graphc.ir.shapes``).
"""
import functools
import itertools

import numpy as np
import sympy

from ..config import config
from ..errors import GraphcTypeError
from . import size_rounding

DTYPES = ("float32", "float64", "int32", "int64", "bool")
FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = ("int32", "int64")
C_TYPES = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t",
           "bool": "uint8_t"}

_fresh_counter = itertools.count()


def dim(name=None):
    """A named symbolic dimension. Use the same object (or name) wherever sizes must agree."""
    if name is None:
        name = f"_d{next(_fresh_counter)}"
    if not isinstance(name, str) or not name.isidentifier():
        raise GraphcTypeError(f"dim name must be an identifier string, got {name!r}")
    return sympy.Symbol(name, integer=True, positive=True)


def is_fresh(sym):
    """Fresh dims come from `None` in a shape; they unify with anything without complaint."""
    return isinstance(sym, sympy.Symbol) and sym.name.startswith("_d")


def check_dtype(dtype, what="dtype"):
    dtype = np.dtype(dtype).name if dtype is not None else None
    if dtype not in DTYPES:
        raise GraphcTypeError(f"{what}: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def as_dim(entry, where="shape"):
    """Normalize one shape entry: int, sympy expr, str (named dim) or None (fresh dim)."""
    if entry is None:
        return dim()
    if isinstance(entry, str):
        return dim(entry)
    if isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
        if entry < 0:
            raise GraphcTypeError(f"{where}: dimension sizes must be >= 0, got {entry}")
        return int(entry)
    if isinstance(entry, sympy.Basic):
        if entry.is_Integer:
            return int(entry)
        return entry
    raise GraphcTypeError(f"{where}: a dimension must be an int, a graphc.dim, a name or None; "
                          f"got {entry!r}")


def simplify_dim(d):
    """Canonical form of a dim expression. sympy.expand, not simplify: simplify is slow and
    its first call imports half of sympy (a second of compile time)."""
    if isinstance(d, sympy.Basic):
        if d.is_Symbol:
            return d
        return _expanded(d)
    return d


class FitsCheck(sympy.Min):
    """Min(room, 0), which is 0 exactly when room >= 0: a size condition the argument checks
    test at the call (they read a Min against 0 as `room >= 0`; the AOT library prints it as
    GC_MIN). Built without sympy's Min evaluation, which is slow and would rerun on every
    substitution of the dims (it tripled LeNet's optimize time)."""

    def __new__(cls, room, zero=0):
        room = sympy.sympify(room)
        if room.is_Integer:
            return sympy.Integer(min(int(room), 0))
        obj = sympy.Expr.__new__(cls, room, sympy.Integer(0))
        obj._argset = frozenset(obj.args)
        return obj


def _kept(cls, args, pick):
    args = tuple(sympy.sympify(a) for a in args)
    if all(a.is_Number for a in args):
        return pick(args)
    obj = sympy.Expr.__new__(cls, *args)
    obj._argset = frozenset(args)
    return obj


class KeptMin(sympy.Min):
    """Min of dims as written, its arguments in their order: sympy's Min compares every pair
    through the assumptions (~80 ms for a conv's chunk count on a pooled size, again on every
    expand or substitution). For sizes whose arguments need no folding; numbers still fold."""

    def __new__(cls, *args, **kwargs):
        return _kept(cls, args, min)


class KeptMax(sympy.Max):
    """Max of dims as written (see KeptMin)."""

    def __new__(cls, *args, **kwargs):
        return _kept(cls, args, max)


# Dim expressions are immutable and recur (each layer's sizes in the forward graph, its gradient,
# every pass, the memory plan): expanding one costs ~1 ms, a second look-up ~1 us.
@functools.lru_cache(maxsize=16384)
def _expanded(d):
    d = size_rounding.expand(d)  # (sympy.expand's result, without re-proving each floor/ceiling)
    return int(d) if d.is_Integer else d


@functools.lru_cache(maxsize=16384)
def free_symbols_of(expr):
    """expr.free_symbols, remembered: sympy walks the whole tree on every call, and the same dim
    expressions are asked again after each pass (ResNet-20: ~270k walks in one compile)."""
    return expr.free_symbols


def dims_equal(a, b):
    """Whether two dims (ints or sympy expressions) are provably the same size."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return a == b or _difference_is_zero(a, b)


@functools.lru_cache(maxsize=16384)
def _difference_is_zero(a, b):
    return sympy.expand(sympy.sympify(a) - b) == 0


def size_of(shape):
    """Number of elements, an int when the shape is static, else a sympy expression."""
    shape = tuple(shape)
    if not all(isinstance(d, (int, sympy.Basic)) for d in shape):
        # (unhashable, or a float: 8.0 would share 8's cache entry and hand out a float size)
        return _size_of.__wrapped__(shape)
    return _size_of(shape)


@functools.lru_cache(maxsize=16384)
def _size_of(shape):
    n = sympy.Integer(1)
    for d in shape:
        n = n * d
    return simplify_dim(n)


def dim_str(d):
    return _dim_text(d)


@functools.lru_cache(maxsize=16384)
def _dim_text(d):
    # (sympy's printer takes ~1 ms for a pooled size; graphs print the same dims many times)
    return str(d)


class TensorType:
    __slots__ = ("dtype", "shape")

    def __init__(self, dtype, shape):
        self.dtype = check_dtype(dtype)
        self.shape = tuple(as_dim(d) for d in shape)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def is_static(self):
        return all(isinstance(d, int) for d in self.shape)

    def with_dtype(self, dtype):
        return TensorType(dtype, self.shape)

    def __eq__(self, other):
        return (isinstance(other, TensorType) and self.dtype == other.dtype
                and len(self.shape) == len(other.shape)
                and all(dims_equal(a, b) for a, b in zip(self.shape, other.shape)))

    def __hash__(self):
        return hash((self.dtype, len(self.shape)))

    def __str__(self):
        return f"{self.dtype}[{', '.join(dim_str(d) for d in self.shape)}]"

    __repr__ = __str__


def numpy_dtype_for_python_scalar(value, floatX):
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int64"
    return floatX


def result_dtype(dtypes, weak_kinds=()):
    """Promotion: numpy rules over the strong (tensor) dtypes; python scalars are weak.

    A weak float scalar turns an all-integer/bool expression into floatX; otherwise weak scalars
    never change the dtype (so ``x * 0.5`` keeps float32), as in JAX and PyTensor's floatX mode.
    """
    if not dtypes:
        if "float" in weak_kinds:
            return config.floatX
        return "int64" if "int" in weak_kinds else "bool"
    out = np.result_type(*[np.dtype(d) for d in dtypes]).name
    if out == "bool" and "int" in weak_kinds:
        out = "int64"
    if out not in FLOAT_DTYPES and "float" in weak_kinds:
        out = config.floatX
    if out not in DTYPES:  # e.g. int32+int64 -> int64 is fine; uint8 never appears
        out = "float64" if "float" in out else "int64"
    return out
