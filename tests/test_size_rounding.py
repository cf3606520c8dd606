"""graphc.ir.size_rounding: floor/ceiling and expand of size expressions without sympy's proofs
must give exactly sympy's expressions (the rendered C, and so the build cache, depends on them)."""
import numpy as np
import pytest
import sympy

import graphc as G
from graphc.codegen.plan import build_program
from graphc.config import config
from graphc.ir import size_rounding as R
from graphc.ir.fgraph import build_function_graph
from graphc.ir.types import KeptMax, KeptMin, dim
from graphc.passes import optimize
from graphc.runtime.checks import ArgumentChecker
from graphc.targets import get_target

n, h, w = dim("n"), dim("h"), dim("w")
half = sympy.floor(h / 2 - sympy.Rational(1, 2))
quarter = sympy.floor(half / 2)
P = (half + 1) * (sympy.floor(w / 2 - sympy.Rational(1, 2)) + 1)
EXPANDED_P = sympy.expand(384 * P)

ROUNDING_ARGS = [
    KeptMax(33554432, EXPANDED_P) / EXPANDED_P,  # a conv's chunk count
    (280 * h * w + 4736 * h + 256 * w + 883968) / 64,  # bytes in cache lines
    (1048 * quarter * half + 18840 * quarter + 64 * h + 5519512) / 64,  # integer terms pulled out
    h / 2 - sympy.Rational(1, 2),  # a pooled extent
    h / 2 + sympy.Rational(3, 2),
    h / 2 + 1,  # an integer number pulled out
    half / 8 - sympy.Rational(7, 8),
    h + 1,  # an integer: sympy returns it
    2 * h,
    sympy.Rational(1, 2) / h,  # below 1 everywhere: sympy proves floor = 0, ceiling = 1
    KeptMin(n, 3) / 2,  # bounded: the proofs may succeed
    -h / 2,  # negative
    sympy.floor(h / 3),  # a rounding of a rounding
    h * w / 4 + h / 2,
]


@pytest.mark.parametrize("cls", [sympy.floor, sympy.ceiling])
@pytest.mark.parametrize("arg", ROUNDING_ARGS, ids=str)
def test_rounding_is_sympys(cls, arg):
    assert R.rounding(cls, arg) == cls(arg)
    assert sympy.srepr(R.rounding(cls, arg)) == sympy.srepr(cls(arg))


def test_the_shortcut_runs_where_the_proofs_fail_and_not_where_they_may_succeed():
    assert R._without_proofs(sympy.floor, ROUNDING_ARGS[0]) is not None
    assert R._without_proofs(sympy.ceiling, ROUNDING_ARGS[1]) is not None
    for bounded in (sympy.Rational(1, 2) / h, KeptMin(n, 3) / 2, h + 1):
        assert R._without_proofs(sympy.floor, bounded) is None


pooled = sympy.ceiling(sympy.ceiling(sympy.floor(h / 4 - sympy.Rational(11, 4)) / 2) / 2 - sympy.Rational(3, 2)) + 1
MAX_ARGS = [(1, sympy.expand(15360 * pooled * (half + 1))), (h, w), (h, 2 * w + 1), (h + 1, h),
            (1, h), (n, KeptMin(n, h)), (h, w, n), (256 * h * w, 1), (h, 1), (3 * h ** 2 * w * n, 1),
            (2 * half, 1), (h * w / 2, 1), (h - 3, 1)]


@pytest.mark.parametrize("cls", [sympy.Max, sympy.Min])
@pytest.mark.parametrize("args", MAX_ARGS, ids=str)
def test_min_max_are_sympys(cls, args):
    args = [sympy.sympify(a) for a in args]
    assert sympy.srepr(R._unordered(cls, args)) == sympy.srepr(cls(*args))


SIZES = [
    64 * pooled * KeptMin(n, sympy.floor(KeptMax(33554432, 15360 * pooled) / sympy.Max(1, 15360 * pooled))),
    64 * P * KeptMin(n, sympy.floor(KeptMax(33554432, 384 * P) / (384 * P))),
    n * 32 * (half + 1) * (quarter + 1),
    3 * (16 * h + 32) * (w + 18) + sympy.ceiling((35 * half + 35) * (quarter + 1) / 8),
    sympy.floor((h + 1) * (w + 1) / 2) * n,
    sympy.Max(h, w) * (h + 1),  # sympy's own Max: expand decides as it always did
    (h + 1) ** 2 * w + half ** 3 * (w + 2) - 4 * h * w,  # powers, like terms collected
    n / (h + 1) + (h * w) ** -2,  # negative powers: sympy's power hints decide
    sympy.Rational(3, 4) * (h + 2) * (w + sympy.Rational(1, 3)),
    sympy.Integer(7),
]


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_expand_is_sympys(size):
    assert sympy.srepr(R.expand(size)) == sympy.srepr(sympy.expand(size))


def test_every_size_of_a_symbolic_cnn_program_expands_as_sympy_does():
    """The sizes of a small symbolic conv net's program (forward and gradients: chunked scratch,
    pooled extents), each expanded both ways."""
    x = G.tensor4("x")
    wt = G.shared(np.ones((4, 3, 3, 3), np.float32))
    h1 = G.max_pool2d(G.relu(G.conv2d(x, wt, padding=(1, 1))), (2, 2), (2, 2))
    cost = G.mean(h1)
    fg = build_function_graph([x], [cost], {wt: wt - 0.1 * G.grad(cost, [wt])[0]})
    opt, _ = optimize(fg, config.opt_level)
    program = build_program(opt, ArgumentChecker(opt.inputs, opt.dims), get_target("c").capabilities)
    sizes = {b.size for b in program.buffers} | {b.nbytes for b in program.buffers}
    symbolic = [s for s in sizes if isinstance(s, sympy.Basic) and s.has(sympy.floor, sympy.ceiling)]
    assert symbolic
    for s in symbolic:
        unexpanded = sympy.Mul(*[sympy.factor_terms(t) for t in sympy.Mul.make_args(s)])
        assert R.expand(unexpanded) == sympy.expand(unexpanded)
        assert R.rounding(sympy.ceiling, s / 64) == sympy.ceiling(s / 64)
