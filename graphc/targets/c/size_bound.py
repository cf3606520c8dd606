"""The size check at the top of every generated program (issue 13, item 3): each size, offset
and stride the kernels compute from the dims, evaluated once per call in double precision (which
cannot wrap), must stay below 2^62, else the call fails before any kernel runs. int64 arithmetic
would wrap silently: three 8 MiB inputs broadcast together need 2^63 elements, the workspace size
wrapped and the call crashed.

A double is exact to 53 bits, and the bound is loose by far more than that error (2^62 against
int64's 2^63), so the check never lets a wrapping size through. A size that stays under 2^62 for
every dim up to 2^47 (each dim is an axis of an input in memory, and user space on x86-64 and
arm64 is 2^47 bytes) cannot fail and is not checked: `4 * batch` needs no check, `x * y * z` does."""
import functools

import sympy

from ...ir.types import free_symbols_of


def size_bound_to_c(expr):
    """A C double expression at least about as large as the integer size expression `expr`
    (floor(x) <= x, ceiling(x) <= x + 1), or None when it has a form this does not know."""
    try:
        return _bound(sympy.sympify(expr))
    except NotImplementedError:
        return None


@functools.lru_cache(maxsize=4096)
def _bound(e):
    if e.is_Integer:
        return f"{int(e)}.0"
    if e.is_Rational:
        return f"({e.p}.0 / {e.q}.0)"
    if e.is_Symbol:
        return f"(double)d_{e.name}"
    if e.is_Add:
        return "(" + " + ".join(_bound(a) for a in e.args) + ")"
    if e.is_Mul:
        return "(" + " * ".join(_bound(a) for a in e.args) + ")"
    if e.is_Pow and e.args[1].is_Integer and e.args[1] > 0:
        return "(" + " * ".join([_bound(e.args[0])] * int(e.args[1])) + ")"
    if isinstance(e, sympy.floor):
        return _bound(e.args[0])
    if isinstance(e, sympy.ceiling):
        return f"({_bound(e.args[0])} + 1.0)"
    if isinstance(e, (sympy.Max, sympy.Min)):
        fn = "fmax" if isinstance(e, sympy.Max) else "fmin"
        out = _bound(e.args[0])
        for a in e.args[1:]:
            out = f"{fn}({out}, {_bound(a)})"
        return out
    raise NotImplementedError(type(e).__name__)  # (not str(e): printing a size costs ms, and
    # the caller only learns there is no bound)


_MAX_DIM = 2.0 ** 47


@functools.lru_cache(maxsize=4096)
def _largest(e):
    """An upper bound of |e| for dims in 1..2^47 (floats: cannot overflow)."""
    if e.is_Number:
        return abs(float(e))
    if e.is_Symbol:
        return _MAX_DIM
    if e.is_Add or isinstance(e, (sympy.Max, sympy.Min)):
        return sum(_largest(a) for a in e.args)
    if e.is_Mul:
        out = 1.0
        for a in e.args:
            out *= _largest(a)
        return out
    if e.is_Pow and e.args[1].is_Integer and e.args[1] > 0:
        return _largest(e.args[0]) ** int(e.args[1])
    if isinstance(e, (sympy.floor, sympy.ceiling)):
        return _largest(e.args[0]) + 1.0
    return float("inf")


def can_overflow(expr):
    return _largest(sympy.sympify(expr)) >= 2.0 ** 62


def _symbolic_sizes(value, out):
    """The size expressions (with dims in them) in a kernel param: a number, or lists of them."""
    if isinstance(value, (list, tuple)):
        for v in value:
            _symbolic_sizes(v, out)
    elif isinstance(value, sympy.Expr) and free_symbols_of(value):
        out.append(value)


@functools.lru_cache(maxsize=8192)
def _terms(e):
    """(K, dim products) with |e| <= K * (the largest of the products) for dims >= 1, read off the
    expression tree (no expansion: sympy.expand is slow on LeNet's offsets): a sum adds the Ks,
    a product multiplies them, floor(x) <= |x|, ceiling(x) <= |x| + 1, max/min(a, b) <= |a| + |b|.
    None: a form this does not know."""
    if e.is_Number:
        return abs(float(e)), frozenset([()])
    if e.is_Symbol:
        return 1.0, frozenset([(e.name,)])
    if e.is_Add or isinstance(e, (sympy.Max, sympy.Min)):
        parts = [_terms(a) for a in e.args]
        if None in parts:
            return None
        return sum(k for k, _ in parts), frozenset().union(*(m for _, m in parts))
    if e.is_Mul or (e.is_Pow and e.args[1].is_Integer and e.args[1] > 0):
        args = e.args if e.is_Mul else [e.args[0]] * int(e.args[1])
        k, products = 1.0, frozenset([()])
        for a in args:
            part = _terms(a)
            if part is None:
                return None
            k *= part[0]
            products = frozenset(tuple(sorted(p + q)) for p in products for q in part[1])
        return k, products
    if isinstance(e, sympy.floor):
        return _terms(e.args[0])
    if isinstance(e, sympy.ceiling):
        inner = _terms(e.args[0])
        return None if inner is None else (inner[0] + 1.0, inner[1] | {()})
    return None


def size_checks(program, kernels):
    """C double expressions, `K * d_a * d_b ...`, one per product of dims that a size of
    `kernels`, their buffers or the workspace can reach (K: the largest sum of coefficients of
    such a size), for the products that could pass 2^62: what _size_check.j2 compares with 2^62.
    Every size |e| <= K_e * (its largest dim product), dims being >= 1, so checking each product
    against its K bounds every size."""
    exprs = []
    if getattr(program, "workspace_bytes", None) is not None:
        _symbolic_sizes(sympy.sympify(program.workspace_bytes), exprs)
    for k in kernels:
        for b in k.inputs + k.outputs:
            _symbolic_sizes(b.nbytes, exprs)
        for value in k.params.values():
            _symbolic_sizes(value, exprs)
    worst = {}  # dim product -> largest coefficient sum of a size that has it
    for e in set(exprs):
        terms = _terms(e)
        if terms is None:
            text = size_bound_to_c(e)  # not a polynomial bound: check the size itself
            if text is not None and can_overflow(e):
                worst[text] = None
            continue
        total, products = terms
        for product in products:
            if product and (product not in worst or worst[product] < total):
                worst[product] = total
    checks = []
    for product, total in worst.items():
        if total is None:
            checks.append(product)
        elif total * _MAX_DIM ** len(product) >= 2.0 ** 62:
            checks.append(" * ".join([f"{total!r}"] + [f"(double)d_{name}" for name in product]))
    return sorted(checks)
