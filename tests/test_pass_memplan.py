"""Tests of the memory plan over the final kernel program: in-place parameter updates, failed calls.

Helpers: tests/pass_helpers.py."""
import numpy as np
import pytest
import sympy

import graphc as G
from graphc.codegen.memplan import check_plan

from pass_helpers import (  # noqa: F401  (no_artifact_hits: an autouse fixture)
    no_artifact_hits, F64_TOL)


@pytest.mark.parametrize("level", ["O0", "O1", "O3"])
def test_swap_updates_read_old_values(level):
    a = G.shared(np.arange(4.0), name="a")
    b = G.shared(np.arange(4.0) + 10, name="b")
    f = G.function([], [], updates={a: b, b: a}, opt_level=level)
    f()
    np.testing.assert_array_equal(a.get_value(), np.arange(4.0) + 10)
    np.testing.assert_array_equal(b.get_value(), np.arange(4.0))
    f()
    np.testing.assert_array_equal(a.get_value(), np.arange(4.0))
    np.testing.assert_array_equal(b.get_value(), np.arange(4.0) + 10)
    assert check_plan(f.program.program)


@pytest.mark.parametrize("level", ["O0", "O1", "O3"])
def test_update_whose_old_value_is_also_returned(level):
    w = G.shared(np.ones(5), name="w")
    x = G.vector("x", "float64")
    g = G.grad(((w * x) ** 2).sum(), w)
    f = G.function([x], [w, w * 2.0, g], updates={w: w - 0.1 * g}, opt_level=level)
    xv = np.arange(5.0)
    old, twice, grad = f(xv)
    want_g = 2 * xv ** 2
    np.testing.assert_array_equal(old, np.ones(5))
    np.testing.assert_array_equal(twice, 2 * np.ones(5))
    np.testing.assert_allclose(grad, want_g, **F64_TOL)
    np.testing.assert_allclose(w.get_value(), 1 - 0.1 * want_g, **F64_TOL)
    old2, _, _ = f(xv)  # the returned array is not the variable's storage
    np.testing.assert_allclose(old2, 1 - 0.1 * want_g, **F64_TOL)
    np.testing.assert_array_equal(old, np.ones(5))


@pytest.mark.parametrize("level", ["O0", "O1", "O3"])
def test_in_place_update_after_the_last_read_of_the_old_value(level):
    """(w * x).sum() reads w before the update kernel overwrites it, and a = a + b reads b
    while b's own update needs the old a: every update still sees the values from before."""
    w = G.shared(np.arange(5.0), name="w")
    a, b = G.shared(np.array([1.0, 2.0]), name="a"), G.shared(np.array([3.0, 5.0]), name="b")
    x = G.vector("x", "float64")
    f = G.function([x], (w * x).sum(), updates={w: w - x, a: a + b, b: a * b}, opt_level=level)
    xv = np.array([1.0, -1.0, 2.0, 0.5, 3.0])
    np.testing.assert_allclose(f(xv), (np.arange(5.0) * xv).sum(), **F64_TOL)
    np.testing.assert_array_equal(w.get_value(), np.arange(5.0) - xv)
    np.testing.assert_array_equal(a.get_value(), [4.0, 7.0])
    np.testing.assert_array_equal(b.get_value(), [3.0, 10.0])
    program = f.program.program
    assert check_plan(program)
    if level == "O3":
        assert "w" in {buf.name for buf in program.in_place_updates.values()}


def test_failed_call_leaves_in_place_updated_variables_unchanged():
    w = G.shared(np.arange(4.0), name="w")
    x = G.vector("x", "float64")
    idx = G.vector("idx", "int64")
    f = G.function([x, idx], x[idx] * 2.0, updates={w: w * 2.0 + 1.0})
    np.testing.assert_array_equal(f(np.arange(3.0), np.array([2, 0])), [4.0, 0.0])
    np.testing.assert_array_equal(w.get_value(), np.arange(4.0) * 2 + 1)
    with pytest.raises(G.GraphcError):
        f(np.arange(3.0), np.array([5, 0]))
    np.testing.assert_array_equal(w.get_value(), np.arange(4.0) * 2 + 1)


def test_weight_update_is_one_gemm_into_the_weight():
    """w - lr * x.T @ g is one gemm accumulating into w: no weight-sized temporary."""
    rng = np.random.RandomState(3)
    x = G.tensor("x", (8, 5), "float64")
    w = G.shared(rng.randn(5, 3), name="w")
    cost = (G.dot(x, w) ** 2).sum()
    g = G.grad(cost, w)
    xv = rng.randn(8, 5)
    w0 = w.get_value()
    f = G.function([x], cost, updates={w: w - 0.1 * g}, opt_level="O3")
    f(xv)
    np.testing.assert_allclose(w.get_value(), w0 - 0.1 * (2 * xv.T @ (xv @ w0)), rtol=1e-12)
    program = f.program.program
    gemms = [k for k in program.kernels if k.kind == "gemm" and k.params.get("beta") == 1.0]
    assert len(gemms) == 1 and gemms[0].in_place
    assert not any(b.role == "temp" and tuple(b.shape) == (5, 3) for k in program.kernels
                   for b in k.outputs)


def test_symbolic_ranges_are_compared_at_sample_dims_and_proved_only_when_a_sample_overlaps():
    from graphc.codegen.memplan_check import _disjoint, _sampled_ranges
    n = sympy.Symbol("n", positive=True, integer=True)
    line = 64 * sympy.ceiling(n / 16)
    apart = [(sympy.Integer(0), line), (line, 2 * line)]
    partly = [(sympy.Integer(0), 64 * n), (sympy.Integer(64), 64 * n + 64)]
    for (a, b), want in ((apart, True), (partly, False)):
        samples = _sampled_ranges([a, b])
        assert _disjoint(a, b, *samples) is want
    # no symbols: one exact comparison
    a, b = (sympy.Integer(0), sympy.Integer(64)), (sympy.Integer(64), sympy.Integer(128))
    assert _sampled_ranges([a, b]) == [[(0, 64)], [(64, 128)]]
    assert _disjoint(a, b, *_sampled_ranges([a, b]))
