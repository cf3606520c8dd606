"""Print sympy expressions as C: scalar bodies of elementwise kernels, and integer size
expressions over the bound dims. The only place graphc turns expressions into C text; every
statement around them comes from templates/."""
import functools

import sympy
from sympy.printing.c import C99CodePrinter

from ...ir.ops import scalar_expr as se
from ...ir.ops import scalar_fns as sf

C_TYPES = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t",
           "bool": "uint8_t"}


class ScalarPrinter(C99CodePrinter):
    """`ctx_dtype` picks single or double precision for literals and libm functions. Functions of
    the scalar table are called as their row's C form says (scalar_fns.CForm)."""

    def __init__(self, ctx_dtype="float32"):
        # "none": operands print in the order the graph wrote them (sympy would sort them), so C
        # evaluates a fused sum as numpy did op by op; the order of the calls also decides gcc's
        # register spills around vector libm calls (5 % on the elementwise chain, measured).
        super().__init__({"strict": False, "order": "none"})
        self.single = ctx_dtype == "float32"

    def _fn(self, name):
        return name + ("f" if self.single else "")

    def _print(self, expr, **kwargs):
        # Before sympy's dispatch on the class name: a table function named "exp" is ours.
        if isinstance(expr, sf.ScalarFn):
            return self._print_table_function(expr)
        return super()._print(expr, **kwargs)

    def _print_table_function(self, e):
        args = [self._print(a) for a in e.args]
        if isinstance(e, sf.Cast):
            if e.dtype == "bool":
                return f"((uint8_t)(({args[0]}) != 0))"
            return f"(({C_TYPES[e.dtype]})({args[0]}))"
        form = e.row.c
        if form.kind in ("libm", "helper"):
            return f"{self._fn(form.name)}({', '.join(args)})"
        if form.kind == "generic":
            return f"{form.name}({', '.join(args)})"
        return getattr(self, f"_syntax_{form.name}")(*args)

    # C operators for the rows whose C form is "syntax".
    def _syntax_where(self, c, a, b):
        return f"(({c}) ? ({a}) : ({b}))"

    def _syntax_logical_and(self, a, b):
        return f"(({a}) && ({b}))"

    def _syntax_logical_or(self, a, b):
        return f"(({a}) || ({b}))"

    def _syntax_logical_xor(self, a, b):
        return f"((!!({a})) != (!!({b})))"

    def _syntax_logical_not(self, a):
        return f"(!({a}))"

    def _print_Float(self, e):
        text = repr(float(e))
        if "e" not in text and "." not in text and "inf" not in text and "nan" not in text:
            text += ".0"
        if text in ("inf", "-inf"):
            return "INFINITY" if text == "inf" else "(-INFINITY)"
        if text == "nan":
            return "NAN"
        return text + ("f" if self.single else "")

    def _print_Infinity(self, e):
        return "INFINITY"

    def _print_NegativeInfinity(self, e):
        return "(-INFINITY)"

    def _print_NaN(self, e):
        return "NAN"

    def _print_Rational(self, e):
        return f"({self._print_Float(sympy.Float(e.p))}/{self._print_Float(sympy.Float(e.q))})"

    def _print_Integer(self, e):
        return str(int(e))

    def _print_Half(self, e):
        return self._print_Float(sympy.Float(0.5))

    def _print_NegativeOne(self, e):
        return "-1"

    def _print_Exp1(self, e):
        return self._print_Float(sympy.Float(sympy.E.evalf(20)))

    def _print_Pi(self, e):
        return self._print_Float(sympy.Float(sympy.pi.evalf(20)))

    def _print_BooleanTrue(self, e):
        return "1"

    def _print_BooleanFalse(self, e):
        return "0"

    def _print_Pow(self, e):
        base, p = e.args
        b = self.parenthesize(base, 100)
        if p == 2:
            return f"({b}*{b})"
        if p == 3:
            return f"({b}*{b}*{b})"
        if p == -1:
            return f"({self._print_Float(sympy.Float(1))}/{b})"
        if p == -2:
            return f"({self._print_Float(sympy.Float(1))}/({b}*{b}))"
        if p == sympy.Rational(1, 2):
            return f"{self._fn('sqrt')}({self._print(base)})"
        if p == sympy.Rational(-1, 2):
            return f"({self._print_Float(sympy.Float(1))}/{self._fn('sqrt')}({self._print(base)}))"
        return f"{self._fn('pow')}({self._print(base)}, {self._print(p)})"

    def _print_Function(self, e):
        raise NotImplementedError(f"no C form for scalar function {type(e).__name__}: not a row of "
                                  "graphc/ir/ops/scalar_fns.py's TABLE")


def scalar_to_c(expr, ctx_dtype):
    """(statements, result): common subexpressions become named temporaries."""
    stmts, (result,) = scalars_to_c([expr], ctx_dtype)
    return stmts, result


def scalars_to_c(exprs, ctx_dtype):
    """(statements, results): one common-subexpression pass over several expressions, so what
    they have in common is computed once. No algebra (scalar_expr.cse)."""
    printer = ScalarPrinter(ctx_dtype)
    temps, finals = se.cse(exprs, sympy.numbered_symbols("t"))
    stmts = [(str(sym), printer.doprint(val)) for sym, val in temps]
    return stmts, [printer.doprint(f) for f in finals]


def int_to_c(expr):
    """An integer size expression over dims (Symbols print as d_<name>)."""
    if isinstance(expr, int):
        return str(expr)
    return _size_to_c(sympy.sympify(expr))


@functools.lru_cache(maxsize=4096)
def _size_to_c(e):
    # Memoized: a program's offsets and sizes repeat the same sub-expressions many times over
    # (LeNet's workspace offsets are sums of a few ceiling terms), and sympy.together is slow.
    if e.is_Integer:
        return str(int(e))
    if e.is_Symbol:
        return f"d_{e.name}"
    if e.is_Add:
        return "(" + " + ".join(int_to_c(a) for a in e.args) + ")"
    if e.is_Mul:
        if not any(a.is_Rational and not a.is_Integer for a in e.args):  # the common case: fast
            return "(" + "*".join(int_to_c(a) for a in e.args) + ")"
        num, den = sympy.fraction(sympy.together(e))
        if den != 1:
            return f"(({int_to_c(sympy.expand(num))}) / {int_to_c(den)})"
        return "(" + "*".join(int_to_c(a) for a in e.args) + ")"
    if isinstance(e, sympy.floor):
        num, den = sympy.fraction(sympy.together(e.args[0]))
        return f"gc_floordiv_i64({int_to_c(sympy.expand(num))}, {int_to_c(den)})"
    if isinstance(e, sympy.ceiling):
        num, den = sympy.fraction(sympy.together(e.args[0]))
        return f"(-gc_floordiv_i64(-({int_to_c(sympy.expand(num))}), {int_to_c(den)}))"
    if isinstance(e, sympy.Max):
        out = int_to_c(e.args[0])
        for a in e.args[1:]:
            out = f"gc_max_i64({out}, {int_to_c(a)})"
        return out
    if isinstance(e, sympy.Min):
        out = int_to_c(e.args[0])
        for a in e.args[1:]:
            out = f"gc_min_i64({out}, {int_to_c(a)})"
        return out
    if e.is_Pow and e.args[1].is_Integer and e.args[1] > 0:
        return "(" + "*".join([int_to_c(e.args[0])] * int(e.args[1])) + ")"
    raise NotImplementedError(f"cannot print size expression {e} as C")
