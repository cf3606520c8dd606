"""floor, ceiling, Max/Min and expand of size expressions: sympy's own results, without the
proofs sympy tries and fails on sizes (what a cold compile spent most of its plan and lowering on).

- `rounding(floor|ceiling, x)`: sympy first tries to prove 0 <= x < 2 (or -2 <= x < 0) and
  whether x is an integer: 10-30 ms of its assumptions on a conv's chunk count
  `floor(Max(B, s) / s)` or a byte size over a cache line. Every such proof fails when x takes a
  value > 2 that is not an integer at some point of the dims (positive integers), and sympy's
  answers are sound, so there the result is what its evaluation returns then: the terms sympy
  knows are integers pulled out, the rest rounded unevaluated.
- `minmax(Max|Min, *args)`: where each two arguments are in either order at some point, sympy's
  comparisons all fail and it keeps every argument, in its canonical order.
- `expand(d)`: sympy.expand(d), each rounding's argument expanded and the rounding rebuilt through
  `rounding` first (sympy's deep expand rebuilds each floor/ceiling whose argument changed,
  re-running its evaluation once per hint), then the products multiplied out as a polynomial.
Where no deciding point is found, or an expression holds a form this does not evaluate, sympy
decides. tests/test_size_rounding.py compares each with sympy, on the sizes of a symbolic CNN too;
the bench (cnn_compile_cost.py --py-only) compares the rendered C of the five CNNs.
"""
import functools
import math
from fractions import Fraction

import sympy
from sympy.core.parameters import global_parameters

# Every dim at once at each of these values, looking for the point that decides the proofs.
_POINTS = (1, 2, 3, 5, 7, 11, 13, 20, 24, 40, 100, 300, 1000)


class NotExact(Exception):
    """A form the evaluator does not know: sympy decides."""


def rounding(cls, arg):
    """cls(arg) for cls sympy.floor or sympy.ceiling: the same expression sympy returns."""
    arg = sympy.sympify(arg)
    if arg.is_Number or not arg.free_symbols or not global_parameters.evaluate:
        return cls(arg)
    return _rounding(cls, arg)


@functools.lru_cache(maxsize=8192)
def _rounding(cls, arg):
    fast = _without_proofs(cls, arg)
    return cls(arg) if fast is None else fast


def _without_proofs(cls, arg):
    """What RoundFunction.eval returns for arg when every proof it tries fails, or None where
    that is not shown (by a point of the dims) or the result would not be that form."""
    if isinstance(arg, (sympy.floor, sympy.ceiling)) or isinstance(-arg, (sympy.floor, sympy.ceiling)):
        return None  # (_eval_number returns arg itself)
    if not all(s.is_integer and s.is_positive for s in arg.free_symbols):
        return None  # (the points must be values the dims may take)
    try:
        values = [exact_value(arg, v) for v in _POINTS]
    except (NotExact, ZeroDivisionError):
        return None
    # A value > 2 fails every bound _eval_const_number tries; a non-integer one, arg.is_integer.
    if not any(x > 2 for x in values) or all(_is_int(x) for x in values):
        return None
    ipart, spart = [], []
    for t in sympy.Add.make_args(arg):
        if t.is_Integer:
            ipart.append(t)
        elif t.is_Number:
            spart.append(t)  # (npart: not evaluated, as spart is not imaginary)
        elif _integer_product(t) or t.is_integer:  # (the query eval makes)
            ipart.append(t)
        else:
            try:  # not imaginary (a real non-zero value): eval's spart
                if all(exact_value(t, v) == 0 for v in _POINTS):
                    return None
            except (NotExact, ZeroDivisionError):
                return None
            spart.append(t)
    rest = sympy.Add(*spart)
    if not any(t.free_symbols for t in spart) or isinstance(rest, (sympy.floor, sympy.ceiling)):
        return None
    try:
        if all(exact_value(rest, v) == 0 for v in _POINTS):
            return None
    except (NotExact, ZeroDivisionError):
        return None
    return sympy.Add(*ipart) + cls(rest, evaluate=False)


def _integer_product(t):
    """An integer times factors sympy knows are integers (answers kept on each atom), for which
    sympy's Mul.is_integer is True: the same answer without its rational and Abs queries."""
    coeff, rest = t.as_coeff_Mul()
    if not coeff.is_Integer:
        return False
    for f in sympy.Mul.make_args(rest):
        base, k = f.as_base_exp()
        if not (k.is_Integer and k >= 1 and base.is_integer is True):
            return False
    return True


def _is_int(x):
    return isinstance(x, int) or x.denominator == 1


@functools.lru_cache(maxsize=8)
def _env_dict(env):
    return dict(env)


@functools.lru_cache(maxsize=65536)
def exact_value(e, env):
    """e's exact value (int or Fraction) with the dims set by env: one number (int or Fraction)
    for every dim, or a tuple of (dim, value) pairs; NotExact for a node it cannot evaluate.
    Also the plan's size algebra's (codegen/memplan_sizes.py)."""
    if e.is_Integer:
        return int(e)
    if e.is_Rational:
        return Fraction(int(e.p), int(e.q))
    if e.is_Symbol:
        return _env_dict(env)[e] if isinstance(env, tuple) else env
    args = [exact_value(a, env) for a in e.args]
    if e.is_Add:
        return sum(args)
    if e.is_Mul:
        out = 1
        for x in args:
            out *= x
        return out
    if e.is_Pow and isinstance(args[1], int):
        return Fraction(args[0]) ** args[1]
    if isinstance(e, sympy.floor):
        return math.floor(args[0])
    if isinstance(e, sympy.ceiling):
        return math.ceil(args[0])
    if isinstance(e, sympy.Max):
        return max(args)
    if isinstance(e, sympy.Min):
        return min(args)
    raise NotExact(e)


def expand(d):
    """sympy.expand(d), the argument of each floor and ceiling in it expanded and the rounding
    rebuilt through `rounding` first, so sympy's expand finds them expanded and keeps them; then
    the products multiplied out as a polynomial over those atoms (sympy's expand walks the whole
    tree once per hint) and built as sympy builds its sum of terms."""
    try:
        primed = _prime(d)
    except NotExact:
        return sympy.expand(d)
    try:
        poly = _polynomial(primed)
    except NotExact:
        return sympy.expand(primed)
    terms = []
    for mono, coeff in poly.items():
        factors = [sympy.Pow(a, k) if k != 1 else a for a, k in mono]
        terms.append(sympy.Mul(sympy.Rational(coeff.numerator, coeff.denominator), *factors))
    return sympy.Add(*terms)


_ONE = frozenset()


def _polynomial(e):
    """e as {monomial: Fraction} over its atoms (monomial: a frozenset of (atom, power > 0));
    NotExact where sympy's expand would do more than multiply out sums and whole
    positive powers (a negative or symbolic power, which its power hints rewrite)."""
    if e.is_Rational:
        return {_ONE: Fraction(int(e.p), int(e.q))} if e != 0 else {}
    if e.is_Add:
        out = {}
        for a in e.args:
            for m, c in _polynomial(a).items():
                c = out.get(m, 0) + c
                if c:
                    out[m] = c
                else:
                    out.pop(m, None)
        return out
    if e.is_Mul:
        out = {_ONE: Fraction(1)}
        for a in e.args:
            out = poly_times(out, _polynomial(a))
        return out
    if e.is_Pow:
        k = e.args[1]
        if not (k.is_Integer and k > 0):
            raise NotExact(e)
        base, out = _polynomial(e.args[0]), {_ONE: Fraction(1)}
        for _ in range(int(k)):
            out = poly_times(out, base)
        return out
    if e.is_Number or not e.args and not e.is_Symbol:
        raise NotExact(e)  # (a float, or a constant such as pi)
    if e.is_Symbol or isinstance(e, (sympy.floor, sympy.ceiling, sympy.Min, sympy.Max)):
        return {frozenset([(e, 1)]): Fraction(1)}
    raise NotExact(e)


def poly_times(p, q):
    """The product of two polynomials {monomial: coefficient} (monomials: frozensets of (atom, power));
    also the plan's size algebra's (codegen/memplan_sizes.py)."""
    out = {}
    for m1, c1 in p.items():
        for m2, c2 in q.items():
            m = monomial_times(m1, m2)
            c = out.get(m, 0) + c1 * c2
            if c:
                out[m] = c
            else:
                out.pop(m, None)
    return out


def monomial_times(m1, m2):
    if not m1:
        return m2
    if not m2:
        return m1
    powers = dict(m1)
    for a, k in m2:
        powers[a] = powers.get(a, 0) + k
    return frozenset((a, k) for a, k in powers.items() if k)


def _prime(e):
    if not e.args:
        return e
    if isinstance(e, (sympy.floor, sympy.ceiling)):
        inner = _prime(e.args[0])
        arg = sympy.expand(inner)
        if arg == e.args[0]:
            return e  # (unchanged: sympy does not rebuild it)
        return rounding(type(e), arg)
    if isinstance(e, (sympy.Min, sympy.Max)) and not _is_kept(e):
        args = [sympy.expand(_prime(a)) for a in e.args]
        if all(a == b for a, b in zip(args, e.args)):
            return e
        return _unordered(type(e), args)
    if not (e.is_Add or e.is_Mul or e.is_Pow or _is_kept(e)):
        raise NotExact(e)  # (another function: its evaluation may depend on the arguments' form)
    args = tuple(_prime(a) for a in e.args)
    if all(a is b for a, b in zip(args, e.args)):
        return e
    return e.func(*args)


def minmax(cls, *args):
    """sympy's Max(*args) or Min(*args) (cls) of size expressions: the same expression, without
    its failing comparisons where each two arguments are in either order at some point."""
    return _unordered(cls, [sympy.sympify(a) for a in args])


def _unordered(cls, args):
    """cls(*args) for sympy's Min or Max, as sympy builds it, where each two arguments are in
    either order at some point of the dims (then none of its collapsing rules or comparisons
    drops one: its proofs fail, ~50 ms each on a pooled AlexNet size); else sympy builds it."""
    if cls is sympy.Max and len(args) == 2 and args[1] == 1 and _at_least_one(args[0]) and \
            global_parameters.evaluate:
        return args[0]  # (a product of positive integers: sympy proves it >= 1 and keeps it)
    if not global_parameters.evaluate or len(args) < 2 or \
            any(isinstance(a, (sympy.Min, sympy.Max)) or not a.free_symbols and not a.is_Number
                for a in args) or \
            not all(s.is_integer and s.is_positive for a in args for s in a.free_symbols):
        return cls(*args)
    try:
        values = [[exact_value(a, v) for v in _POINTS] for a in args]
    except (NotExact, ZeroDivisionError):
        return cls(*args)
    for i in range(len(args)):
        for j in range(i):
            pairs = list(zip(values[i], values[j]))
            if not (any(x > y for x, y in pairs) and any(x < y for x, y in pairs)):
                return cls(*args)
    argset = frozenset(args)
    if len(argset) < len(args):
        return cls(*args)
    obj = sympy.Expr.__new__(cls, *sympy.ordered(argset))
    obj._argset = argset
    return obj


def _at_least_one(e):
    """Whether e is c * x**p * y**q ... with c a positive integer and x, y, ... positive integer
    dims (whole positive powers): a monomial sympy's Max(e, 1) reduces to e."""
    coeff, rest = e.as_coeff_Mul()
    if not (coeff.is_Integer and coeff >= 1):
        return False
    for f in sympy.Mul.make_args(rest):
        base, k = f.as_base_exp()
        if not (base.is_Symbol and base.is_integer and base.is_positive and k.is_Integer and k >= 1):
            return False
    return True


def _is_kept(e):
    # KeptMin / KeptMax (ir/types.py): built as written, no evaluation to depend on a form
    return isinstance(e, (sympy.Min, sympy.Max)) and type(e).__name__ in ("KeptMin", "KeptMax")
