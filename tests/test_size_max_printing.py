"""Max/Min in size expressions print as functions (gc_max_i64/gc_min_i64), not the GC_MAX/GC_MIN
macros: a macro evaluates an argument twice, so a slot size nested k deep (the planner's Max
slots) grew as 2^k in the C text gcc sees — ResNet-20's program took gcc minutes and 6 GB."""
import sympy

from graphc.targets.c.cprinter import int_to_c


def test_nested_max_prints_each_argument_once():
    n, h = sympy.symbols("d_n d_h", positive=True, integer=True)
    sizes = [64 * n * h + k * h + 7 * k for k in range(1, 13)]
    nested = sizes[0]
    for s in sizes[1:]:
        nested = sympy.Max(nested, s, evaluate=False)
    text = int_to_c(nested)
    assert "GC_MAX" not in text and text.count("gc_max_i64") == 11
    assert len(text) < 60 * len(sizes)   # linear in the arguments, not 2^depth


def test_min_prints_as_a_function():
    n = sympy.Symbol("d_n", positive=True, integer=True)
    assert int_to_c(sympy.Min(n, 4, evaluate=False)).startswith("gc_min_i64(")
