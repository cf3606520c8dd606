"""Tests of fuse_elemwise and fuse_siblings: chains and siblings of elementwise ops as one loop.

Helpers: tests/pass_helpers.py."""
import numpy as np

import graphc as G

from pass_helpers import (  # noqa: F401  (no_artifact_hits: an autouse fixture)
    no_artifact_hits, F64_TOL, graph_level, kernels, op_names, ref)


def _fusable(dtype):
    x = G.matrix("x", dtype)
    a, b = G.scalar("a", dtype), G.scalar("b", dtype)
    return [x, a, b], G.tanh(x * a + b) * G.sigmoid(x) + G.exp(-x * x)


def test_elementwise_expression_is_one_kernel_at_O3(dtype):
    ins, out = _fusable(dtype)
    f0 = graph_level(ins, out, opt_level="O0")
    f3 = graph_level(ins, out, opt_level="O3")
    assert [type(n.op).__name__ for n in f3.fgraph.nodes] == ["FusedElemwise"]
    assert len(f0.fgraph.nodes) >= 5
    rng = np.random.RandomState(9)
    vals = [rng.randn(7, 33).astype(dtype), np.asarray(0.7, dtype), np.asarray(-0.3, dtype)]
    tol = 2e-5 if dtype == "float32" else 1e-12
    want = ref(ins, out, *vals)
    np.testing.assert_allclose(f3(*vals), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(f0(*vals), want, rtol=tol, atol=tol)


def test_expensive_producer_of_two_siblings_is_computed_once_in_their_shared_loop():
    x, y = G.vector("x", "float64"), G.vector("y", "float64")
    e = G.exp(x * y)
    outs = [e * y + 1.0, e - y]
    f = G.function([x, y], outs, opt_level="O3")
    labels = [k.label for k in kernels(f)]
    assert len(labels) == 1 and labels[0].startswith("siblings("), labels
    assert "exp" in labels[0], labels
    # once per element, for both outputs: one exp in the kernel's one loop (its range function,
    # graphc/targets/c/range_functions.py)
    loop_source = f.program.source.split("/* the loop of elemwise siblings(")[1].split("\n}\n")[0]
    assert loop_source.count("exp(") == loop_source.count("#pragma omp simd") == 1
    xv, yv = np.linspace(-1, 1, 9), np.linspace(2, -2, 9)
    for got, want in zip(f(xv, yv), ref([x, y], outs, xv, yv)):
        np.testing.assert_allclose(got, want, **F64_TOL)


def test_expensive_producer_with_readers_of_different_shapes_is_kept():
    x, y = G.vector("x", "float64"), G.vector("y", "float64")
    z = G.matrix("z", "float64")
    e = G.exp(x * y)
    outs = [e * y + 1.0, e.dimshuffle(0, "x") * z]
    f = graph_level([x, y, z], outs, opt_level="O3")
    labels = [str(n.op) for n in f.fgraph.nodes if type(n.op).__name__ != "Reshape"]  # (a view)
    assert len(labels) == 3, labels
    assert sum("exp" in lb for lb in labels) == 1, labels  # computed once, not per consumer
    assert any(n.startswith("not fusing fused(mul,exp)") for n in f.fgraph.fusion_notes), \
        f.fgraph.fusion_notes
    xv, yv = np.linspace(-1, 1, 9), np.linspace(2, -2, 9)
    zv = np.arange(27.0).reshape(9, 3) / 10
    for got, want in zip(f(xv, yv, zv), ref([x, y, z], outs, xv, yv, zv)):
        np.testing.assert_allclose(got, want, **F64_TOL)


def test_two_consumers_of_a_cheap_producer_share_one_loop():
    x, y = G.vector("x", "float64"), G.vector("y", "float64")
    p = x * y + 2.0
    outs = [p * y, p - x]
    f = graph_level([x, y], outs, opt_level="O3")
    assert [type(n.op).__name__ for n in f.fgraph.nodes] == ["MultiElemwise"], op_names(f)
    xv, yv = np.linspace(-1, 1, 9), np.linspace(2, -2, 9)
    for got, want in zip(f(xv, yv), ref([x, y], outs, xv, yv)):
        np.testing.assert_allclose(got, want, **F64_TOL)


def test_siblings_where_one_reads_the_other_stay_apart(dtype):
    x = G.vector("x", dtype)
    a = G.exp(x)  # an output, so it stays a kernel of its own
    b = a * x + x  # reads x (like a) and a: merging them would be a cycle
    f = graph_level([x], [a, b], opt_level="O3")
    assert len(f.fgraph.nodes) == 2, op_names(f)
    xv = np.linspace(-2, 2, 11).astype(dtype)
    for got, want in zip(f(xv), ref([x], [a, b], xv)):
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == "float32" else 1e-12)


def test_sibling_outputs_may_overwrite_dying_inputs_and_stay_correct(dtype):
    x, y = G.matrix("x", dtype), G.matrix("y", dtype)
    t = G.tanh(G.dot(x, y))  # a temporary read by two siblings, dead after them
    u, v = t * 2.0 - 1.0, t * t
    outs = [G.dot(u, v.T)]
    f = G.function([x, y], outs, opt_level="O3")
    assert any(k.label.startswith("siblings(") for k in kernels(f)), [k.label for k in kernels(f)]
    rng = np.random.RandomState(3)
    xv, yv = rng.randn(5, 4).astype(dtype), rng.randn(4, 5).astype(dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(xv, yv)[0], ref([x, y], outs, xv, yv)[0], rtol=tol, atol=tol)


def test_producer_that_is_an_output_is_not_fused_away():
    x = G.vector("x", "float64")
    t = G.tanh(x)
    f = graph_level([x], [t, t * 2.0 + 1.0], opt_level="O3")
    assert len(f.fgraph.nodes) == 2
    assert any("function output" in n for n in f.fgraph.fusion_notes), f.fgraph.fusion_notes
    xv = np.linspace(-2, 2, 5)
    a, b = f(xv)
    np.testing.assert_allclose(a, np.tanh(xv), **F64_TOL)
    np.testing.assert_allclose(b, np.tanh(xv) * 2 + 1, **F64_TOL)




def test_a_fused_recurrence_does_not_recompute_its_history(dtype):
    """c_t = a_t * c_{t-1} + b_t, each c_t read by the next step and by an output term: cheap,
    but recomputing c_{t-1} inside c_t (and so on) would make step t redo all t steps."""
    a = [G.vector(f"a{t}", dtype) for t in range(20)]
    b = [G.vector(f"b{t}", dtype) for t in range(20)]
    c, total = a[0] * 0.5, 0
    for t in range(20):
        c = a[t] * c + b[t]
        total = total + c * c
    f = graph_level(a + b, total)
    rng = np.random.RandomState(8)
    values = [rng.uniform(0.5, 1.0, 7).astype(dtype) for _ in a + b]
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(*values), ref(a + b, total, *values), rtol=tol, atol=tol)
    # each step's inputs are read where c_t is computed and where it is squared, not again in
    # every later step (unbounded, a_t was read by 11 kernels)
    readers = {v: sum(v in n.inputs for n in f.fgraph.nodes) for v in a + b}
    assert max(readers.values()) <= 2
    assert any("more than 8 operations" in note for note in f.fgraph.fusion_notes)
