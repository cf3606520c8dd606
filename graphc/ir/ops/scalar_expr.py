"""Scalar expressions that sympy never rewrites: the bodies of elementwise ops.

sympy evaluates as it builds: exp(log(x)) becomes x, sqrt(x)*sqrt(x) becomes x, x*0 becomes 0 and
x - x becomes 0, all wrong at nan, inf or negative x. Every rebuild (xreplace, cse, diff) calls
`expr.func(*args)`, so the fix has to live in the node classes themselves: Add, Mul, Pow and the
comparisons here are sympy's own classes (printers, lambdify and cse treat them as such) whose
constructor never evaluates. An expression is `freeze`d once, when an op is made; substituting
into it (fusion, constant inlining) then keeps its structure and its values at nan and inf.
An identity that is wanted is an explicit graph rewrite that keeps nan (passes/stabilize.py).
"""
import functools

import sympy
from sympy.simplify.cse_main import tree_cse


class Add(sympy.Add):
    """a + b + ..., as written."""

    def __new__(cls, *args, **_options):
        return sympy.Add.__new__(cls, *args, evaluate=False)


class Mul(sympy.Mul):
    """a * b * ..., as written."""

    def __new__(cls, *args, **_options):
        return sympy.Mul.__new__(cls, *args, evaluate=False)


class Pow(sympy.Pow):
    """a ** b, as written (a ** (1/2) prints as sqrt)."""

    def __new__(cls, base, exp, **_options):
        return sympy.Pow.__new__(cls, base, exp, evaluate=False)

    def _eval_evalf(self, prec):
        # sympy's evalf rebuilds the power with self.func and expects it to evaluate; this class
        # never does, so evalf of a constant power (3.0 ** -1, a mean's divisor inlined) recursed
        # forever when cse's sorting asked for a number. The number comes from sympy's own Pow.
        return sympy.Pow(self.base, self.exp)._eval_evalf(prec)


def _relational(base):
    def new(cls, lhs, rhs, **_options):
        return base.__new__(cls, lhs, rhs, evaluate=False)
    # Same class name as sympy's: printers dispatch on it.
    return type(base.__name__, (base,), {"__new__": new, "__module__": __name__})


Equality = _relational(sympy.Equality)
Unequality = _relational(sympy.Unequality)
StrictLessThan = _relational(sympy.StrictLessThan)
LessThan = _relational(sympy.LessThan)
StrictGreaterThan = _relational(sympy.StrictGreaterThan)
GreaterThan = _relational(sympy.GreaterThan)

_FROZEN = {sympy.Add: Add, sympy.Mul: Mul, sympy.Pow: Pow, sympy.Equality: Equality,
           sympy.Unequality: Unequality, sympy.StrictLessThan: StrictLessThan,
           sympy.LessThan: LessThan, sympy.StrictGreaterThan: StrictGreaterThan,
           sympy.GreaterThan: GreaterThan}
_THAWED = {v: k for k, v in _FROZEN.items()}
_ATOMS = (sympy.Symbol, sympy.Number, sympy.NumberSymbol, sympy.logic.boolalg.BooleanAtom)


def freeze(expr, functions):
    """`expr` rebuilt from the non-evaluating classes. `functions` maps the sympy functions that
    sympy.diff may produce (exp, log, ...) to graphc's scalar functions; any other sympy function
    is an error here rather than a C compile error later."""
    return _freeze(sympy.sympify(expr), functions)


def _freeze(e, functions):
    if isinstance(e, _ATOMS):
        return e
    args = [_freeze(a, functions) for a in e.args]
    for sympy_cls, frozen in _FROZEN.items():
        if type(e) is sympy_cls or type(e) is frozen:
            return frozen(*args)
    if getattr(e, "never_evaluates", False):
        return e.func(*args)
    name = type(e).__name__
    if name in functions:
        return functions[name](*args)
    raise TypeError(f"scalar expression {e}: sympy's {name} is not a function of graphc's scalar "
                    "table (graphc/ir/ops/scalar_fns.py); add a row there")


def thaw(expr):
    """`expr` with sympy's evaluating Add/Mul/Pow back: for algebra that is wanted (sympy.diff of
    one op's expression, matching a linear form). Comparisons stay unevaluated."""
    if isinstance(expr, _ATOMS):
        return expr
    args = [thaw(a) for a in expr.args]
    cls = _THAWED.get(type(expr))
    if cls in (sympy.Add, sympy.Mul, sympy.Pow):
        return cls(*args)
    if cls is not None:
        return cls(*args, evaluate=False)
    return expr.func(*args) if args else expr


def cse(exprs, symbols):
    """(temporaries, results): subexpressions that occur more than once become temporaries.
    sympy.cse's tree pass alone: its opt_cse step rewrites with evaluating classes (negations
    pulled out, common terms of sums regrouped), which is algebra nobody asked for."""
    return tree_cse(list(exprs), iter(symbols), opt_subs={}, order="canonical")


@functools.lru_cache(maxsize=65536)
def depth(expr):
    """Levels of operations in `expr` (a symbol or number: 0)."""
    if not expr.args:
        return 0
    return 1 + max(depth(a) for a in expr.args)


@functools.lru_cache(maxsize=65536)
def tree_size(expr):
    """Nodes of `expr` counted as a tree (a shared subexpression once per use): what recursive
    walks (substitution, printing) cost. Computed over the shared form, so never exponential."""
    return 1 + sum(tree_size(a) for a in expr.args)
