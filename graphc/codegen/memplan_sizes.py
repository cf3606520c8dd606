"""Ordering symbolic buffer sizes, for the memory planner: sound, cheap, cached.

Sizes are sympy expressions over dims (positive integers): mostly `c * n * ...`, with ceiling and
floor of pooled extents, and Min/Max of a conv's chunked workspace. The planner asks two things:

- `provably_ge(a, b)`: is a >= b for *every* admissible dim value? True only with a proof; False
  means "not proved" (it may still hold). Never asks sympy to order expressions (that took
  minutes on symbolic CNNs): both sides become polynomials over *atoms* (dims, and each
  ceiling/floor/Min/Max/reciprocal as an opaque value with a known lower bound), a - b is formed,
  and each negative term is paid for by positive terms that it divides (`_dominated`); where
  that fails, atoms are replaced by polynomial bounds (ceiling(x) <= x + (q-1)/q on a negative
  term, ceiling(x) >= x on a positive one, Min(a, ..) <= a, Max(a, ..) >= a, ...) and it is tried
  again. Every step only makes a - b smaller, so a proof of the result >= 0 proves a >= b.
- `typical(e)`: the size's value with every dim set to each of TYPICAL_DIMS: what the planner's
  *cost* reads to choose between correct placements (never what makes a placement correct).

`max_of(sizes)` builds the size of a slot that holds buffers of sizes that cannot be ordered:
sympy's Max left unevaluated (its evaluation orders the arguments: slow).
"""
import functools
import math
from fractions import Fraction

import sympy

from ..ir.size_rounding import NotExact, exact_value
from ..ir.size_rounding import monomial_times as _mono_mul
from ..ir.size_rounding import poly_times as _mul

# Dim values at which the planner weighs its choices (every dim at once). Of the sets tried on
# the bench CNNs, this one gave the smallest plans summed over dims 4..256 (bench/README.md).
TYPICAL_DIMS = (4, 16, 64)
# Every dim at once at these values, looking for a counterexample before trying to prove.
_REFUTE_AT = (1, 2, 3, 5, 8, 32, 128, 1000)
_REWRITE_ROUNDS = 4  # nested ceilings (a pooled pooled extent) need one round each


def provably_ge(a, b):
    """Whether a >= b for every value of the dims (positive integers); False: not proved."""
    return _ge(sympy.sympify(a), sympy.sympify(b))


_ASKING = set()  # the pairs being proved now: asked again inside their own proof, not proved
_PROVED = {}  # (a, b) -> bool, for every pair asked (sizes recur across layers and passes)
_PROVED_MAX = 65536


def _ge(a, b):
    if a == b:
        return True
    key = (a, b)
    known = _PROVED.get(key)
    if known is not None:
        return known
    if key in _ASKING:  # (not remembered: the answer outside this proof may differ)
        return False
    _ASKING.add(key)
    try:
        result = _prove_ge(a, b)
    finally:
        _ASKING.discard(key)
    if len(_PROVED) >= _PROVED_MAX:
        _PROVED.clear()
    _PROVED[key] = result
    return result


def _prove_ge(a, b):
    if a.is_Number and b.is_Number:
        return bool(a >= b)
    if _refuted(a, b):
        return False  # a counterexample: cheaper than failing to prove
    if b == 0 and a.is_Mul and all(_ge(x, b) for x in a.args):
        return True  # (a product expanded loses this: (z - 1)*(w - 1))
    if isinstance(a, sympy.Max) and any(_ge(x, b) for x in a.args):
        return True
    if isinstance(b, sympy.Max):
        return all(_ge(a, y) for y in b.args)
    if isinstance(b, sympy.Min) and any(_ge(a, y) for y in b.args):
        return True
    if isinstance(a, sympy.Min):
        return all(_ge(x, b) for x in a.args)
    if isinstance(a, sympy.ceiling) and isinstance(b, sympy.ceiling) and _ge(a.args[0], b.args[0]):
        return True  # ceiling is monotone
    pa, pb = _poly(a), _poly(b)
    if pa is None or pb is None:
        return False
    diff = _add(pa, pb, -1)
    for _ in range(_REWRITE_ROUNDS + 1):
        if _dominated(diff):
            return True
        diff = _rewrite(diff)
        if diff is None:
            return False
    return False


def _refuted(a, b):
    try:
        return any(_value(a, v) < _value(b, v) for v in _REFUTE_AT)
    except (ZeroDivisionError, ValueError, TypeError):
        return False


def max_of(sizes):
    """The size of a slot holding buffers of these sizes (at least one): the one size, or an
    unevaluated Max (correct for every dim value, whatever their order)."""
    sizes = list(dict.fromkeys(sympy.sympify(s) for s in sizes))
    if len(sizes) == 1:
        return sizes[0]
    if all(s.is_Integer for s in sizes):
        return max(sizes)
    return sympy.Max(*sizes, evaluate=False)


def add_to_max(parts, size):
    """The maximal sizes of a slot once `size` joins it (`parts`: sizes none of which is proved
    >= another): unchanged if one part is proved >= size, else size plus the parts it is not
    proved >= to."""
    size = sympy.sympify(size)
    if any(provably_ge(p, size) for p in parts):
        return list(parts)
    return [p for p in parts if not provably_ge(size, p)] + [size]


@functools.lru_cache(maxsize=16384)
def typical(e):
    """e's value with every dim set to each of TYPICAL_DIMS (exact; a tuple of numbers)."""
    e = sympy.sympify(e)
    return tuple(_value(e, v) for v in TYPICAL_DIMS)


def evaluate(e, env):
    """The exact value of size expression e at env, a tuple of (dim, int) pairs (every dim of e
    in it), or an int given to every dim. Memoized per sub-expression: a program's offsets are
    sums of the same slot sizes."""
    return _value(sympy.sympify(e), env)


@functools.lru_cache(maxsize=65536)
def _value(e, env):
    try:
        return exact_value(e, env)
    except NotExact:  # (a node the exact evaluator leaves alone: sympy evaluates the whole)
        values = env if not isinstance(env, int) else {s: env for s in e.free_symbols}
        return _exact(e.xreplace({s: sympy.Integer(v) for s, v in dict(values).items()}))


def _exact(value):
    value = sympy.nsimplify(value) if not value.is_Rational else value
    if not value.is_Rational:
        raise ValueError(f"a buffer size evaluated to {value}, not a number")
    return Fraction(int(value.p), int(value.q))


# ---- polynomials over atoms: {monomial: Fraction}, a monomial a frozenset of (atom, power) ----
# An atom is a dim or a compound value (ceiling, floor, Min, Max, 1/sum) with a known lower bound
# >= 0. A power is a non-zero integer; a negative one only for an atom whose lower bound is > 0.

_ONE = frozenset()


@functools.lru_cache(maxsize=16384)
def _poly(e):
    """e as a polynomial over atoms, or None where e has an atom that may be negative or of a form
    this does not know (read only: cached)."""
    if e.is_Rational:
        return {_ONE: Fraction(int(e.p), int(e.q))} if e != 0 else {}
    if e.is_Add or e.is_Mul:
        out = {} if e.is_Add else {_ONE: Fraction(1)}
        for a in e.args:
            pa = _poly(a)
            if pa is None:
                return None
            out = _add(out, pa, 1) if e.is_Add else _mul(out, pa)
        return out
    if e.is_Pow and e.args[1].is_Integer:
        return _power(_poly(e.args[0]), int(e.args[1]), e)
    if isinstance(e, (sympy.Max, sympy.Min)):
        reduced = _dominant_arg(e)
        if reduced is not None:
            return _poly(reduced)
    shift = 0
    if isinstance(e, (sympy.floor, sympy.ceiling)):
        e, shift = _rounding(e)
        if e is None:
            return {_ONE: Fraction(shift)} if shift else {}
    if _lower_bound(e) is None:
        return None
    return _add({frozenset([(e, 1)]): Fraction(1)}, {_ONE: Fraction(shift)}, 1) if shift else \
        {frozenset([(e, 1)]): Fraction(1)}


def _power(base, k, e):
    if base is None:
        return None
    if k > 0:
        out = {_ONE: Fraction(1)}
        for _ in range(k):
            out = _mul(out, base)
        return out
    if len(base) == 1:  # c * m with m > 0: its reciprocal is c^k * m^k
        (m, c), = base.items()
        if c > 0 and all(_lower_bound(atom) > 0 for atom, _ in m):
            return {frozenset((atom, p * k) for atom, p in m): c ** k}
    low = _poly_lower(_frozen(base))
    if low is None or low <= 0:
        return None
    return {frozenset([(e, 1)]): Fraction(1)}  # 1 / (a sum >= low > 0): an atom >= 0


def _dominant_arg(e):
    """The argument of a Min (Max) proved <= (>=) all the others: what it equals; else None."""
    for x in e.args:
        others = [y for y in e.args if y is not x]
        if isinstance(e, sympy.Max) and all(_ge(x, y) for y in others):
            return x
        if isinstance(e, sympy.Min) and all(_ge(y, x) for y in others):
            return x
    return None


@functools.lru_cache(maxsize=16384)
def _rounding(e):
    """A floor or ceiling as (atom, integer shift), one form for equal values: floor(N/q) =
    ceiling((N - q + 1)/q) for integer N (a Winograd tile count floor(h/2 + 1/2) is the pooled
    extent ceiling(h/2)), and ceiling(x + k) = ceiling(x) + k for integer k. The atom is None
    when the value is a constant (the shift). Built unevaluated: sympy's rounding eval is slow."""
    p = _poly(e.args[0])
    if p is None or not _integer_valued(p):
        return e, 0
    q = _denominator(p)
    if isinstance(e, sympy.floor):
        p = _add(p, {_ONE: Fraction(q - 1, q)}, -1)
    shift = math.floor(p.get(_ONE, 0))
    p = _add(p, {_ONE: Fraction(shift)}, -1)
    if all(not m for m in p):  # a constant in [0, 1)
        return None, shift + math.ceil(p.get(_ONE, 0))
    return sympy.ceiling(_to_expr(p), evaluate=False), shift


def _to_expr(p):
    terms = []
    for m, c in p.items():
        term = sympy.Rational(c.numerator, c.denominator)
        for atom, k in m:
            term = term * atom ** k
        terms.append(term)
    return sympy.Add(*terms)


def _add(p, q, sign):
    out = dict(p)
    for m, c in q.items():
        c = out.get(m, 0) + sign * c
        if c:
            out[m] = c
        else:
            out.pop(m, None)
    return out


def _quotient(m, m2):
    """m2 / m as a monomial of positive powers when m divides m2, else None."""
    powers = dict(m2)
    for atom, k in m:
        left = powers.get(atom, 0) - k
        if left < 0:
            return None
        if left:
            powers[atom] = left
        else:
            del powers[atom]
    return frozenset(powers.items())


def _mono_lower(m):
    """A number <= the monomial (>= 0): the product of its atoms' lower bounds; 0 for a
    reciprocal (no upper bound is known), but Max(a, ..) * rest >= a * rest for each a."""
    out = Fraction(1)
    for atom, k in m:
        out *= _lower_bound(atom) ** k if k > 0 else 0
    if any(k < 0 for _, k in m):
        for atom, k in m:
            if k == 1 and isinstance(atom, sympy.Max):
                rest = {_mono_mul(m, frozenset([(atom, -1)])): Fraction(1)}
                for arg in atom.args:
                    pa = _poly(arg)
                    low = None if pa is None else _poly_lower(_frozen(_mul(rest, pa)))
                    if low is not None and low > out:
                        out = low
    return out


def _frozen(p):
    return frozenset(p.items())


@functools.lru_cache(maxsize=16384)
def _mono_key(m):
    """A total order of monomials that is the same in every process (hash order is not, and a
    plan must not depend on it: the program's text is a cache key)."""
    return (sum(abs(k) for _, k in m), sorted((_tree_key(a), k) for a, k in m))


@functools.lru_cache(maxsize=65536)
def _tree_key(e):
    if e.is_Symbol:
        return (0, e.name)
    if e.is_Rational:
        return (1, int(e.p), int(e.q))
    return (2, type(e).__name__, tuple(_tree_key(a) for a in e.args))


def _payers(m, room):
    """[(key, m2, factor)]: positive terms c2*m2 that can pay for a negative term's monomial m,
    as m2 >= factor * m (factor > 0)."""
    out = []
    for m2 in room:
        r = _quotient(m, m2)
        if r is not None:
            factor = _mono_lower(r)
            if factor > 0:  # (keys (degree, 0, terms) and (1, 1, terms): a degree-1 quotient
                # against an atom payer compared a list with a tuple, a TypeError)
                degree, terms = _mono_key(r)
                out.append(((degree, 0, terms), m2, factor))
            continue
        gone, new = m - m2, m2 - m  # one atom B of m is A in m2, with A >= B: m2 >= m
        if len(gone) == 1 and len(new) == 1:
            (b, kb), = gone
            (a, ka) = next(iter(new))
            if ka == kb > 0 and _ge(a, b):
                out.append(((1, 1, _mono_key(m2)), m2, Fraction(1)))
    return sorted(out, key=lambda t: t[0])


def _dominated(p):
    """p >= 0 for all atom values >= their lower bounds (>= 0): each negative term c*m is paid by
    positive terms c2*m2 with m2 >= factor * m, giving c2 * factor of room each."""
    if isinstance(p, frozenset):
        p = dict(p)
    room = {m: c for m, c in p.items() if c > 0}
    debts = sorted(((m, -c) for m, c in p.items() if c < 0), key=lambda t: _mono_key(t[0]), reverse=True)
    for m, debt in debts:
        for _, m2, factor in _payers(m, room):
            paid = min(debt, room[m2] * factor)
            room[m2] -= paid / factor
            debt -= paid
            if not debt:
                break
        if debt:
            return False
    return True


def _rewrite(p):
    """p with each compound atom of a negative term replaced by an upper bound and of a positive
    term by a lower bound (both polynomials over simpler atoms): a polynomial <= p everywhere
    (atoms are >= 0), or None when no atom could be replaced."""
    out, changed = {}, False
    for m, c in p.items():
        term = {_ONE: c}
        for atom, k in m:
            bound = (_upper(atom) if c < 0 else _lower(atom)) if k > 0 else None
            if bound is None:
                bound, k = {frozenset([(atom, k)]): Fraction(1)}, 1
            else:
                changed = True
            for _ in range(k):
                term = _mul(term, bound)
        out = _add(out, term, 1)
    return out if changed else None


@functools.lru_cache(maxsize=16384)
def _lower_bound(atom):
    """A number <= the atom for every dim value, >= 0; None when the atom may be negative (or is
    of a form this does not know)."""
    if atom.is_Symbol:
        if atom.is_integer and atom.is_positive:
            return Fraction(1)
        return Fraction(0) if atom.is_nonnegative else None
    if isinstance(atom, (sympy.floor, sympy.ceiling)):
        p = _poly(atom.args[0])
        low = None if p is None else _poly_lower(_frozen(p))
        if low is None:
            return None
        return Fraction(math.floor(low) if isinstance(atom, sympy.floor) else math.ceil(low))
    if isinstance(atom, (sympy.Min, sympy.Max)):
        lows = []
        for a in atom.args:
            pa = _poly(a)
            lows.append(None if pa is None else _poly_lower(_frozen(pa)))
        if isinstance(atom, sympy.Min):
            return None if None in lows else min(lows)
        known = [x for x in lows if x is not None]
        return max(known) if known else None
    if atom.is_Pow and atom.args[1].is_Integer and atom.args[1] < 0:
        return Fraction(0)  # made by _power only for a base proved > 0
    return None


@functools.lru_cache(maxsize=16384)
def _poly_lower(p):
    """A number <= the polynomial p (frozen) for every dim value, >= 0; or None."""
    if all(c > 0 for _, c in p):
        return sum((c * _mono_lower(m) for m, c in p), Fraction(0))
    return Fraction(0) if _dominated(p) else None


def _integer_valued(p):
    """Whether polynomial p's monomials all take integer values (positive powers of dims,
    roundings and their Min/Max), so p times the lcm of its denominators is an integer."""
    return all(k > 0 and _is_integer_atom(atom) for m in p for atom, k in m)


def integer_valued(e):
    """Whether e takes integer values for every value of the dims, read off its form: products
    and sums of integers, integer dims, roundings and their Min/Max. (False: not known.)"""
    e = sympy.sympify(e)
    if e.is_Integer:
        return True
    if e.is_Add or e.is_Mul:
        return all(integer_valued(a) for a in e.args)
    if e.is_Pow:
        return e.args[1].is_Integer and e.args[1] > 0 and integer_valued(e.args[0])
    return _is_integer_atom(e)


@functools.lru_cache(maxsize=16384)
def _is_integer_atom(atom):
    if atom.is_Symbol:
        return bool(atom.is_integer)
    if isinstance(atom, (sympy.floor, sympy.ceiling)):
        return True
    if isinstance(atom, (sympy.Min, sympy.Max)):
        return all(integer_valued(a) for a in atom.args)
    return False


def _denominator(p):
    q = 1
    for c in p.values():
        q = q * c.denominator // math.gcd(q, c.denominator)
    return q


def _gap(p):
    """(q-1)/q for p = N/q with N integer-valued (ceiling(p) <= p + gap, floor(p) >= p - gap);
    1 where p's atoms are not all integers."""
    if not _integer_valued(p):
        return Fraction(1)
    q = _denominator(p)
    return Fraction(q - 1, q)


@functools.lru_cache(maxsize=16384)
def _upper(atom):
    """A polynomial >= the atom (over simpler atoms), or None."""
    if isinstance(atom, (sympy.floor, sympy.ceiling)):
        p = _poly(atom.args[0])
        if p is None:
            return None
        return p if isinstance(atom, sympy.floor) else _add(p, {_ONE: _gap(p)}, 1)
    if isinstance(atom, sympy.Min):
        return _simplest_poly(atom.args)
    return None


@functools.lru_cache(maxsize=16384)
def _lower(atom):
    """A polynomial <= the atom (over simpler atoms), or None."""
    if isinstance(atom, (sympy.floor, sympy.ceiling)):
        p = _poly(atom.args[0])
        if p is None:
            return None
        return p if isinstance(atom, sympy.ceiling) else _add(p, {_ONE: _gap(p)}, -1)
    if isinstance(atom, sympy.Max):
        return _simplest_poly(atom.args)
    return None


def _simplest_poly(args):
    """The polynomial of the argument with the fewest compound atoms (a Min's bound by a dim
    product is the one that compares with other sizes)."""
    best = None
    for a in args:
        p = _poly(a)
        if p is None:
            continue
        compound = sum(1 for m in p for atom, _ in m if not atom.is_Symbol)
        if best is None or compound < best[0]:
            best = (compound, p)
    return None if best is None else best[1]
