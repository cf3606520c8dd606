"""Every elementwise op, and the fused forms sympy used to simplify, at the singular points
(negative, -0.0, 0, tiny, huge, +-inf, nan): compiled at O0..O3 on the py and C backends, against
numpy applied op by op. The optimization level and the backend never change a result.

Cheap by construction: each group of ops is one function with one output per op, fed every
point (every pair of points for binary ops) in one call.
"""
import itertools

import numpy as np
import pytest

import graphc as G
from graphc.ir.ops import elemwise as E
from graphc.ir.ops import scalar_fns as sf

POINTS = [-3.5, -1.0, -0.0, 0.0, 1e-30, 0.5, 1.0, 2.0, 1e30, np.inf, -np.inf, np.nan]
LEVELS = ("O0", "O1", "O2", "O3")
TOL = {"float32": dict(rtol=2e-6, atol=0), "float64": dict(rtol=1e-13, atol=0)}


def _elementwise_ops():
    """Every op of elemwise.py that a user can apply to floats, by arity."""
    ops = {k: v for k, v in vars(E).items()
           if k.endswith("_op") and isinstance(v, E.Elemwise) and v not in (E.second_op, E.ipow_op)}
    assert set(E.FUNCTION_OPS.values()) - {E.ipow_op} <= set(ops.values()), "a table op is missed"
    by_arity = {}
    for name, op in sorted(ops.items()):
        by_arity.setdefault(op.nin, []).append((name, op))
    return by_arity


OPS = _elementwise_ops()


def _grid(nin, dtype):
    cols = np.array(list(itertools.product(POINTS, repeat=nin)), dtype=dtype).T
    return [np.ascontiguousarray(c) for c in cols]


def _fused_forms(x, y):
    return {"exp(log x)": G.exp(G.log(x)), "sqrt x * sqrt x": G.sqrt(x) * G.sqrt(x),
            "x * 0": x * 0, "x - x": x - x, "0 * x + y": 0 * x + y, "x / x": x / x,
            "log(exp x)": G.log(G.exp(x)), "tanh(x) * 0 + relu(x)": G.tanh(x) * 0 + G.relu(x),
            "maximum(x, y) - maximum(x, y)": G.maximum(x, y) - G.maximum(x, y),
            "x == x": G.cast(G.eq(x, x), x.dtype), "x != x": G.cast(G.neq(x, x), x.dtype),
            "sum((x - x) * y)": ((x - x) * y).sum(), "max(relu x)": G.relu(x).max()}


def _numpy_fused(x, y):
    with np.errstate(all="ignore"):
        return {"exp(log x)": np.exp(np.log(x)), "sqrt x * sqrt x": np.sqrt(x) * np.sqrt(x),
                "x * 0": x * 0, "x - x": x - x, "0 * x + y": 0 * x + y, "x / x": x / x,
                "log(exp x)": np.log(np.exp(x)), "tanh(x) * 0 + relu(x)": np.tanh(x) * 0 + np.maximum(x, 0),
                "maximum(x, y) - maximum(x, y)": np.maximum(x, y) - np.maximum(x, y),
                "x == x": (x == x).astype(x.dtype), "x != x": (x != x).astype(x.dtype),
                "sum((x - x) * y)": ((x - x) * y).sum(), "max(relu x)": np.maximum(x, 0).max()}


def _check(got, want, names, dtype, where):
    for name, g, w in zip(names, got, want):
        g, w = np.asarray(g, dtype=np.float64), np.asarray(w, dtype=np.float64)
        np.testing.assert_allclose(g, w, equal_nan=True, err_msg=f"{name} ({where})", **TOL[dtype])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("nin", sorted(OPS))
def test_every_elementwise_op_at_singular_points(nin, dtype):
    names = [n for n, _ in OPS[nin]]
    xs = [G.vector(f"x{i}", dtype) for i in range(nin)]
    outs = [G.cast(op(*xs), dtype) for _, op in OPS[nin]]
    data = _grid(nin, dtype)
    want = G.function(xs, outs, backend="py", opt_level="O0")(*data)
    for backend, level in itertools.product(("py", "c"), LEVELS):
        got = G.function(xs, outs, backend=backend, opt_level=level)(*data)
        _check(got, want, names, dtype, f"{backend} {level}")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_forms_keep_nan_and_inf(dtype):
    x, y = G.vector("x", dtype), G.vector("y", dtype)
    forms = _fused_forms(x, y)
    xv, yv = _grid(2, dtype)
    want = _numpy_fused(xv, yv)
    names = list(forms)
    for backend, level in itertools.product(("py", "c"), LEVELS):
        got = G.function([x, y], list(forms.values()), backend=backend, opt_level=level)(xv, yv)
        _check(got, [want[n] for n in names], names, dtype, f"{backend} {level}")


def test_issue_examples():
    """issue 10's examples: x = [-1, 0, inf, nan, 2]."""
    x = G.vector("x", "float64")
    xv = np.array([-1, 0, np.inf, np.nan, 2.0])
    with np.errstate(all="ignore"):
        cases = [(G.exp(G.log(x)), np.exp(np.log(xv))), (G.sqrt(x) * G.sqrt(x), np.sqrt(xv) ** 2),
                 (x * 0, xv * 0), (x - x, xv - xv)]
    for backend, level in itertools.product(("py", "c"), LEVELS):
        f = G.function([x], [e for e, _ in cases], backend=backend, opt_level=level)
        for got, (_, want) in zip(f(xv), cases):
            np.testing.assert_array_equal(got, want)


def test_every_table_row_prints_in_both_precisions():
    """A row whose C form the printer cannot spell fails here, not in a user's compile."""
    from graphc.codegen.cprinter import ScalarPrinter
    args = E.ARGS[:3]
    for row in sf.TABLE:
        for ctx in ("float32", "float64"):
            text = ScalarPrinter(ctx).doprint(sf.function(row.name)(*args[:row.nargs]))
            assert row.c.kind == "syntax" or row.c.name in text, (row.name, ctx, text)


def test_runtime_header_matches_the_table():
    """gc_runtime.h defines every helper the table names and declares exactly its SIMD rows."""
    import re
    from graphc.codegen.templates_dir import templates_root
    with open(f"{templates_root()}/c/gc_runtime.h") as fh:
        header = fh.read()
    for row in sf.TABLE:
        if row.c.kind == "helper":
            assert f" {row.c.name}(" in header and f" {row.c.name}f(" in header, row.name
        if row.c.kind == "generic":
            assert f"#define {row.c.name}(" in header, row.name
    declared = set(re.findall(r"GC_SIMD_DECL\((?:float|double), (\w+)\)", header))
    assert declared == {n + s for n in sf.SIMD_LIBM for s in ("", "f")}


def test_expressions_are_never_simplified():
    import sympy
    from graphc.ir.ops import scalar_expr as se
    a, b = E.ARGS[:2]
    e = sf.freeze(sympy.Mul(a, 0, evaluate=False))
    assert e.xreplace({a: sf.exp(sf.log(b))}).has(sf.log)
    assert sf.freeze(sympy.Add(a, -a, evaluate=False)).xreplace({a: b}) != 0
    assert sf.exp(sf.log(a)).args[0] == sf.log(a)
    assert sf.exp(sympy.Float(1.0)).func is sf.exp  # no numeric evaluation of constants either
    with pytest.raises(TypeError, match="scalar table"):
        sf.freeze(sympy.gamma(a))
    assert se.depth(sf.freeze(sf.tanh(sf.tanh(a)) + 1)) == 3
