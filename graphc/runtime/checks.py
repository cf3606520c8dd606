"""Per-call argument checking and dim binding, precomputed once per function for speed."""
import math
from fractions import Fraction

import numpy as np
import sympy
from sympy.printing.pycode import PythonCodePrinter

from ..errors import InputError
from ..ir.types import is_fresh
from .value_binding import ValueBinder


class ArgumentChecker:
    """Checks dtype, rank, shape and layout of each argument and binds the symbolic dims."""

    def __init__(self, inputs, resolver):
        self.inputs = inputs
        self.dtypes = [np.dtype(v.dtype) for v in inputs]
        self.names = [v.label() for v in inputs]
        self.shapes = [resolver.shape(v) for v in inputs]
        self._resolve = resolver.resolve
        # Bind each dim symbol at its first occurrence; everything else is a check.
        self.symbols = []
        binders, later = [], []
        for k, shape in enumerate(self.shapes):
            for axis, d in enumerate(shape):
                if isinstance(d, sympy.Symbol) and d not in self.symbols:
                    self.symbols.append(d)
                    binders.append((k, axis, len(self.symbols) - 1))
                elif not isinstance(d, (int, sympy.Symbol)):
                    later.append((k, axis, d))
        self.binders = binders
        self.static = [(k, axis, d) for k, shape in enumerate(self.shapes)
                       for axis, d in enumerate(shape) if isinstance(d, int)]
        self.symbolic_checks = later
        self.runtime_checks = _distinct_checks(resolver.runtime_checks)
        # Dims computed from values (dynamic slices): bound after the shapes (value_binding.py).
        value_dims = getattr(resolver, "value_dims", ())
        self.values = ValueBinder(value_dims, inputs, resolver, self.symbols, _compile) \
            if value_dims else None
        self._compiled = None  # the checks as python functions of the dims, made at first use
        # Theano's allow_input_downcast: None (Python floats round to a float input's dtype),
        # True (any array is cast to the input's dtype), False (only exact conversions).
        self.allow_downcast = None
        self._simple = not later and not resolver.runtime_checks and self.values is None
        # Fast path: per input, a tuple of ints/None (None: a symbol bound elsewhere, checked later).
        self.expected = [tuple(d if isinstance(d, int) else None for d in s) for s in self.shapes]
        sym_index = {s: i for i, s in enumerate(self.symbols)}
        self.sym_positions = [(k, axis, sym_index[d]) for k, shape in enumerate(self.shapes)
                              for axis, d in enumerate(shape) if isinstance(d, sympy.Symbol)]

    def check(self, args):
        """Returns (arrays, dim values in self.symbols order); raises InputError naming the input."""
        if len(args) != len(self.inputs):
            missing = self.names[len(args):]
            raise InputError(f"expected {len(self.inputs)} arguments "
                             f"({', '.join(self.names)}), got {len(args)}"
                             + (f"; no value for {', '.join(missing)}" if missing else ""))
        arrays = []
        for k, a in enumerate(args):
            dt = self.dtypes[k]
            if type(a) is not np.ndarray:
                a = self._convert(k, a)
            if a.dtype != dt and self.allow_downcast and a.dtype.kind in "biuf":
                a = a.astype(dt)
            if a.dtype != dt:
                got = a.dtype.name if a.dtype.name != dt.name else f"{a.dtype.name} in non-native byte order ({a.dtype.str!r})"
                raise InputError(f"input {self.names[k]}: expected dtype {dt.name}, got {got}; "
                                 f"convert it with .astype('{dt.name}') (or compile with "
                                 "allow_input_downcast=True)")
            if a.ndim != len(self.shapes[k]):
                raise InputError(f"input {self.names[k]}: expected rank {len(self.shapes[k])} "
                                 f"(shape {self._fmt(k)}), got rank {a.ndim} (shape {a.shape})")
            if not a.flags.c_contiguous:
                raise InputError(f"input {self.names[k]}: the array is not C-contiguous (a transposed or "
                                 "strided view); pass np.ascontiguousarray(...) of it")
            arrays.append(a)
        dims = [0] * len(self.symbols)
        for k, axis, s in self.binders:
            dims[s] = arrays[k].shape[axis]
        for k, axis, s in self.sym_positions:
            if arrays[k].shape[axis] != dims[s]:
                self._shape_error(arrays, k, dims)
        for k, axis, d in self.static:
            if arrays[k].shape[axis] != d:
                self._shape_error(arrays, k, dims)
        if not self._simple:
            if self.values is not None:
                self.values.bind(arrays, dims)
            self._check_expressions(arrays, dims)
        return arrays, dims

    def prebind(self, args):
        """The dims of a call whose dims are not all input sizes (value dims: run-time slices) or
        that must pass checks C does not make (sizes known only at the call: x[-1] needs one
        entry), computed and checked before the C fast path runs, which then checks the
        arguments against them; None when anything is off (the checked path then decides, and
        words the error)."""
        try:
            dims = [0] * len(self.symbols)
            for k, axis, s in self.binders:
                dims[s] = args[k].shape[axis]
            if self.values is not None:
                self.values.bind(args, dims)
            if self.symbolic_checks or self.runtime_checks:
                self._check_expressions(args, dims)
        except Exception:  # noqa: BLE001 - any failure: the checked path runs and raises
            return None
        return dims

    def _convert(self, k, a):
        if a is None:
            raise InputError(f"input {self.names[k]}: no value was given (expected an array of dtype "
                             f"{self.dtypes[k].name} and shape {self._fmt(k)})")
        try:
            arr = np.asarray(a)
        except Exception as e:  # noqa: BLE001 - any conversion failure is the user's input
            raise InputError(f"input {self.names[k]}: cannot convert {type(a).__name__} to an array: {e}")
        dt = self.dtypes[k]
        if arr.dtype != dt and isinstance(a, (int, float, bool, list, tuple)) \
                and arr.dtype.kind in "biuf":
            # Python scalars and lists convert when no information is lost.
            try:
                with np.errstate(all="ignore"):
                    converted = arr.astype(dt)
                    lossless = np.array_equal(converted, arr, equal_nan=arr.dtype.kind == "f")
            except (ValueError, TypeError, OverflowError):
                lossless = False
            if not lossless and self.allow_downcast is None and dt.kind == "f" \
                    and arr.dtype.kind == "f" and not isinstance(a, np.generic):
                lossless = True  # Theano: a Python float rounds to floatX
            if not lossless and self.allow_downcast:
                lossless = True
            if not lossless:
                raise InputError(f"input {self.names[k]}: expected dtype {dt.name}; the python "
                                 f"{type(a).__name__} given ({arr.dtype.name} values) does not convert "
                                 f"to {dt.name} exactly; pass an array of dtype {dt.name} (or "
                                 "compile with allow_input_downcast=True)")
            arr = converted
        if arr.dtype == object:
            raise InputError(f"input {self.names[k]}: expected an array of dtype {dt.name}, got "
                             f"{type(a).__name__} (not convertible to a numeric array)")
        return np.asarray(arr, order="C")

    def _dim_name(self, d):
        """How a dim reads in a message: its name, or for a fresh dim (None in a shape) the input
        axis it is taken from, e.g. x.shape[0]."""
        if isinstance(d, sympy.Symbol) and is_fresh(d) and d in self.symbols:
            s = self.symbols.index(d)
            for kk, axis, ss in self.binders:
                if ss == s:
                    return f"{self.names[kk]}.shape[{axis}]"
        return str(d)

    def _fmt(self, k):
        return _tuple_text([self._dim_name(d) for d in self.shapes[k]])

    def _bindings(self, dims, symbols=None):
        """'batch=4 (from x axis 0), ...' for the bound symbols (all, or those in `symbols`)."""
        where = []
        for kk, axis, s in self.binders:
            sym = self.symbols[s]
            if symbols is None or sym in symbols:
                label = sym.name if not is_fresh(sym) else f"{self.names[kk]}.shape[{axis}]"
                where.append(f"{label}={dims[s]} (from {self.names[kk]} axis {axis})"
                             if not is_fresh(sym) else f"{label}={dims[s]}")
        return ", ".join(where)

    def _shape_error(self, arrays, k, dims):
        env = {s: dims[i] for i, s in enumerate(self.symbols)}
        concrete = []
        for d in self.shapes[k]:
            try:
                concrete.append(str(int(sympy.sympify(d).subs(env))))
            except TypeError:
                concrete.append(self._dim_name(d))
        expected = self._fmt(k)
        if expected != _tuple_text(concrete):
            expected += " = " + _tuple_text(concrete)
        bound = self._bindings(dims)
        raise InputError(f"input {self.names[k]}: expected shape {expected}, got "
                         f"{tuple(arrays[k].shape)}" + (f"; dims bound so far: {bound}" if bound else ""))

    def _check_expressions(self, arrays, dims):
        env = {s: dims[i] for i, s in enumerate(self.symbols)}
        for k, axis, d in self.symbolic_checks:
            want = int(sympy.sympify(d).subs(env))
            if arrays[k].shape[axis] != want:
                raise InputError(f"input {self.names[k]}: axis {axis} must be {d} = {want}, got "
                                 f"{arrays[k].shape[axis]}")
        if self._compiled is None:
            self._compiled = [(_compile(a, self.symbols), _compile(b, self.symbols))
                              for a, b, _ in self.runtime_checks]
        for (a, b, msg), (fa, fb) in zip(self.runtime_checks, self._compiled):
            va, vb = fa(*dims), fb(*dims)
            if va != vb:
                if hasattr(msg, "explain"):  # a message that explains itself with the values
                    raise InputError(msg.explain(
                        lambda e: _compile(self._resolve(e), self.symbols)(*dims),
                        lambda d: self._dim_name(self._resolve(d))))
                used = sympy.sympify(a).free_symbols | sympy.sympify(b).free_symbols
                if isinstance(a, sympy.Min) and b == 0:  # `Min(room, 0) == 0`: room >= 0
                    raise InputError(f"{msg}; it does not for these inputs "
                                     f"({self._bindings(dims, used)}): give a larger input or a "
                                     "smaller filter (or more padding)")
                raise InputError(f"{msg}: {a} = {va} but {b} = {vb} for these inputs "
                                 f"({self._bindings(dims, used)})")


def _distinct_checks(checks):
    """Each distinct check once, first come first (a conv's geometry is checked by its gradients'
    ops too), worded by its most specific message: a generic one (an index range) yields to
    another for the same condition (a scan's `hs[-2]` reads two steps: the scan says so)."""
    chosen = {}
    for a, b, msg in checks:
        if (a, b) not in chosen or getattr(chosen[(a, b)][2], "generic", False):
            chosen[(a, b)] = (a, b, msg)
    return list(chosen.values())


def _compile(expr, symbols):
    """A size expression as a python function of the dims (sympy's subs costs ~0.3 ms a check,
    per call). Exact integer arithmetic: floor/ceiling of a rational are computed as such."""
    expr = sympy.sympify(expr)
    if not expr.free_symbols:
        value = int(expr)
        return lambda *dims: value
    code = sympy.lambdify(symbols, expr, printer=_ExactPrinter,
                          modules=[{"floor": math.floor, "ceiling": math.ceil, "Min": min,
                                    "Max": max, "FitsCheck": min, "Fraction": Fraction}, "math"])
    return lambda *dims: int(code(*dims))


class _ExactPrinter(PythonCodePrinter):
    """Rationals as Fractions (python ints stay exact; 1/3 as a float would not)."""

    def _print_Rational(self, expr):
        return f"Fraction({expr.p}, {expr.q})"

    def _print_Min(self, expr):
        return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Max(self, expr):
        return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_floor(self, expr):
        return f"floor({self._print(expr.args[0])})"

    def _print_ceiling(self, expr):
        return f"ceiling({self._print(expr.args[0])})"


def _tuple_text(items):
    items = list(items)
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
