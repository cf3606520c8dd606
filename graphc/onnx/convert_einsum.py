"""ONNX Einsum as transposes, reshapes, sums and (batched) matrix products.

Operands are folded left to right. Before each product, letters that no later operand and not
the output use are summed away; a product puts the letters both operands keep (batch) first,
the contracted ones between, and runs as one gemm per batch entry: (B, M, K) @ (B, K, N). The
result is transposed into the output's order. An ellipsis ("...") becomes letters of its own
(operands' ellipsis axes must then agree in size: no broadcasting of size 1); a letter repeated
within one operand (a diagonal, or a trace once summed) is read as a gather of the diagonal.
"""
import re

import numpy as np

from ..ir.constructors import constant
from ..ir.ops.blas import Matmul
from ..ir.ops.indexing import take
from ..ir.ops.reduce import reduce_sum
from ..ir.ops.shape import reshape, transpose
from ..ir.types import FLOAT_DTYPES, dims_equal, size_of
from .registry import Unsupported, converter


def expand_ellipses(equation, ranks):
    """The equation with each "..." replaced by letters of its own (aligned on the right across
    operands, as numpy does); the letters used, in order."""
    eq = equation.replace(" ", "")
    if "..." not in eq:
        return eq, ""
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise Unsupported(f"equation {equation!r} names {len(terms)} operands, the node has "
                          f"{len(ranks)}")
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in eq]
    widths = [r - len(t.replace("...", "")) if "..." in t else 0 for t, r in zip(terms, ranks)]
    width = max(widths)
    if min(widths) < 0 or width > len(free):
        raise Unsupported(f"equation {equation!r} does not fit operands of ranks {ranks}")
    ell = "".join(free[:width])
    terms = [t.replace("...", ell[width - w:]) for t, w in zip(terms, widths)]
    if arrow:
        out = out.replace("...", ell)
    else:
        rest = lhs.replace("...", "").replace(",", "")
        out = ell + "".join(sorted(c for c in set(rest) if rest.count(c) == 1))
    return ",".join(terms) + "->" + out, ell


def parse(equation, n_operands, shown=None):
    """(operand letter strings, output letters) of an equation, checked; `shown` is the
    equation as the model wrote it, for messages."""
    shown = shown or equation
    eq = equation.replace(" ", "")
    if not re.fullmatch(r"[A-Za-z,]*(->[A-Za-z]*)?", eq):
        raise Unsupported(f"equation {shown!r} is not of the form 'ij,jk->ik'")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != n_operands:
        raise Unsupported(f"equation {shown!r} names {len(terms)} operands, the node has "
                          f"{n_operands}")
    if not arrow:
        counts = {c: lhs.count(c) for c in set(lhs.replace(",", ""))}
        out = "".join(sorted(c for c, k in counts.items() if k == 1))
    if len(set(out)) != len(out) or not set(out) <= set(lhs):
        raise Unsupported(f"equation {shown!r}: the output repeats a letter or names one no "
                          "operand has")
    return terms, out


class Term:
    """A tensor and the letter of each of its axes."""

    def __init__(self, x, letters):
        self.x, self.letters = x, letters

    def size(self, c):
        return self.x.type.shape[self.letters.index(c)]

    def summed(self, keep):
        drop = [i for i, c in enumerate(self.letters) if c not in keep]
        if not drop:
            return self
        return Term(reduce_sum(self.x, tuple(drop), keepdims=False),
                    "".join(c for c in self.letters if c in keep))

    def ordered(self, letters):
        if letters == self.letters:
            return self
        return Term(transpose(self.x, [self.letters.index(c) for c in letters]), letters)


def diagonal(term, shown):
    """A term whose letter repeats (ii, a diagonal; summed later, a trace) as the term over its
    diagonal: the repeated axes become one, read with a gather of static flat indices."""
    while len(set(term.letters)) != len(term.letters):
        c = next(c for c in term.letters if term.letters.count(c) > 1)
        p, q = [i for i, d in enumerate(term.letters) if d == c][:2]
        n, m = term.x.type.shape[p], term.x.type.shape[q]
        if not isinstance(n, int) or n != m:
            raise Unsupported(f"equation {shown!r}: the diagonal of letter {c!r} needs two axes "
                              f"of one static size, got {n} and {m}")
        rest = [i for i in range(len(term.letters)) if i not in (p, q)]
        x = transpose(term.x, rest + [p, q])
        lead = [x.type.shape[i] for i in range(len(rest))]
        flat = reshape(x, lead + [n * n])
        x = take(flat, constant(np.arange(n, dtype="int64") * (n + 1)), len(rest))
        term = Term(x, "".join(term.letters[i] for i in rest) + c)
    return term


def product(a, b, keep):
    """The product of two terms, summing the shared letters not in `keep`."""
    batch = [c for c in a.letters if c in b.letters and c in keep]
    contract = [c for c in a.letters if c in b.letters and c not in keep]
    left = [c for c in a.letters if c not in b.letters]
    right = [c for c in b.letters if c not in a.letters]
    for c in batch + contract:
        if not dims_equal(a.size(c), b.size(c)):
            raise Unsupported(f"letter {c!r} is {a.size(c)} in one operand and {b.size(c)} in "
                              "the other")
    a = a.ordered("".join(batch + left + contract))
    b = b.ordered("".join(batch + contract + right))
    sizes = {c: a.size(c) for c in a.letters}
    sizes.update({c: b.size(c) for c in b.letters})

    def n(letters):
        return size_of([sizes[c] for c in letters])
    if batch:
        y = Matmul()(reshape(a.x, (n(batch), n(left), n(contract))),
                     reshape(b.x, (n(batch), n(contract), n(right))))
    else:
        y = Matmul()(reshape(a.x, (n(left), n(contract))), reshape(b.x, (n(contract), n(right))))
    letters = "".join(batch + left + right)
    return Term(reshape(y, [sizes[c] for c in letters]), letters)


@converter("Einsum", attrs=("equation",))
def einsum(node):
    xs = [x for x in node.inputs()]
    if node.attr("equation") is None:
        raise Unsupported("attribute equation is required")
    equation, _ = expand_ellipses(node.attr("equation"), [x.ndim for x in xs])
    terms, out = parse(equation, len(xs), node.attr("equation"))
    for x, t in zip(xs, terms):
        if x.ndim != len(t):
            raise Unsupported(f"operand {t!r} has {len(t)} letters but the input is {x.type}")
    if len(xs) > 1 and any(x.dtype not in FLOAT_DTYPES for x in xs):
        raise Unsupported(f"operands of dtypes {[x.dtype for x in xs]}: graphc multiplies floats")
    if len({x.dtype for x in xs}) > 1:
        raise Unsupported(f"operands of dtypes {[x.dtype for x in xs]} differ")
    ops = [diagonal(Term(x, t), node.attr("equation")) for x, t in zip(xs, terms)]
    terms = [t.letters for t in ops]

    def needed_after(k):
        return set(out).union(*[set(t) for t in terms[k + 1:]])
    cur = ops[0].summed(needed_after(0) | set(terms[1] if len(terms) > 1 else ""))
    for k in range(1, len(ops)):
        later = needed_after(k)
        nxt = ops[k].summed(later | set(cur.letters))
        cur = cur.summed(later | set(nxt.letters))
        cur = product(cur, nxt, later)
    return cur.summed(set(out)).ordered(out).x
