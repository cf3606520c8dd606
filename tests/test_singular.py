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
    from graphc.targets.c.cprinter import ScalarPrinter
    args = E.ARGS[:3]
    for row in sf.TABLE:
        for ctx in ("float32", "float64"):
            text = ScalarPrinter(ctx).doprint(sf.function(row.name)(*args[:row.nargs]))
            assert row.c.kind == "syntax" or row.c.name in text, (row.name, ctx, text)


def test_runtime_header_matches_the_table():
    """gc_runtime.h defines every helper the table names and declares exactly its SIMD rows."""
    import re
    from graphc.targets.c.templates_dir import templates_root
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


# --- issue 13: integer edge cases, NaN through max/min/relu/pooling, deep expressions ----------

def test_int64_floordiv_and_mod_by_minus_one_do_not_trap():
    """INT64_MIN // -1 overflows: C's division traps (SIGFPE); numpy wraps to INT64_MIN, mod 0."""
    a, b = G.vector("a", "int64"), G.vector("b", "int64")
    av = np.array([np.iinfo(np.int64).min, 7, -7, 0, 5], dtype="int64")
    bv = np.array([-1, -1, 2, -1, 0], dtype="int64")
    with np.errstate(all="ignore"):
        want = [av // bv, av % bv]
    for backend in ("py", "c"):
        got = G.function([a, b], [a // b, a % b], backend=backend)(av, bv)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_integer_power_agrees_on_both_backends():
    """A negative exponent: numpy raises, graphc gives the truncated 1 / a**-b on both backends
    (1 for a = 1, +-1 for a = -1, else 0); otherwise exact, wrapping as numpy does."""
    a, b = G.vector("a", "int64"), G.vector("b", "int64")
    av = np.array([2, 1, -1, -1, 0, 3, 2, 3, -2], dtype="int64")
    bv = np.array([-1, -3, -3, -2, -1, 4, 62, 41, 63], dtype="int64")
    want = np.array([0, 1, -1, 1, 0, 81, 2 ** 62, 3 ** 41 % 2 ** 64 - 2 ** 64, -2 ** 63], dtype="int64")
    for backend in ("py", "c"):
        np.testing.assert_array_equal(G.function([a, b], a ** b, backend=backend)(av, bv), want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_propagates_through_max_min_relu_and_pooling(dtype):
    x = G.tensor4("x", dtype)
    xv = np.arange(2 * 2 * 4 * 4, dtype=dtype).reshape(2, 2, 4, 4) - 10
    xv[0, 1, 2, 3] = np.nan
    xv[1, 0, 0, 0] = np.nan
    outs = [x.max(axis=3), x.min(axis=(2, 3)), x.max(), x.min(), G.relu(x), G.maximum(x, 0.5),
            G.minimum(0.5, x), G.max_pool2d(x, 2)]
    with np.errstate(all="ignore"):
        want = [xv.max(axis=3), xv.min(axis=(2, 3)), xv.max(), xv.min(), np.maximum(xv, 0),
                np.maximum(xv, 0.5), np.minimum(0.5, xv),
                xv.reshape(2, 2, 2, 2, 2, 2).max(axis=(3, 5))]
    for backend in ("py", "c"):
        got = G.function([x], outs, backend=backend)(xv)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


@pytest.mark.alone  # a wall-time bound: no other test of the run beside it
def test_deep_elementwise_chains_compile_quickly():
    """12 nested tanh took minutes (sympy's time grew ~3x per level) and a 300-step recurrence
    overflowed the stack: fused expressions are unevaluated and bounded in depth."""
    import time
    x = G.vector("x", "float64")
    y = x
    for _ in range(12):
        y = G.tanh(y)
    h = x
    for _ in range(300):
        h = h * 0.5 + G.sin(h)
    start = time.perf_counter()
    f = G.function([x], [y, G.grad(y.sum(), x), h], backend="py", opt_level="O3")
    assert time.perf_counter() - start < 30
    xv = np.linspace(-2, 2, 5)
    want_y, want_h = xv.copy(), xv.copy()
    for _ in range(12):
        want_y = np.tanh(want_y)
    for _ in range(300):
        want_h = want_h * 0.5 + np.sin(want_h)
    got = f(xv)
    np.testing.assert_allclose(got[0], want_y, rtol=1e-12)
    np.testing.assert_allclose(got[2], want_h, rtol=1e-9)


def test_fmod_is_cs_fmod_at_its_singular_points():
    """G.fmod (ONNX Mod with fmod=1): the dividend's sign, -0.0 kept, x by 0 and inf by y NaN, x
    by inf x; the same on both backends at every level; d/da 1, d/db -trunc(a / b)."""
    for dt in ("float32", "float64"):
        a, b = G.vector("a", dt), G.vector("b", dt)
        av = np.array([5.5, -5.5, 5.5, -5.5, 0.0, -0.0, np.inf, 3.0, np.nan, 1e30, 7.0, -4.0], dt)
        bv = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 3.0, 2.0, np.inf, 1.0, 3.0, 0.0, 2.0], dt)
        with np.errstate(all="ignore"):
            want = np.fmod(av, bv)
        for backend, level in itertools.product(("py", "c"), LEVELS):
            got = G.function([a, b], G.fmod(a, b), backend=backend, opt_level=level)(av, bv)
            np.testing.assert_array_equal(got, want)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        ga, gb = G.function([a, b], G.grad(G.fmod(a, b).sum(), [a, b]))(
            np.array([5.5, -5.5, 1.5], dt), np.array([2.0, 2.0, -0.5], dt))
        np.testing.assert_array_equal(ga, [1, 1, 1])
        np.testing.assert_array_equal(gb, [-2, 2, 3])
