"""Tests of fuse_reductions: an elementwise producer folded into the reduction that reads it.

Helpers: tests/pass_helpers.py."""
import numpy as np

import graphc as G

from pass_helpers import (  # noqa: F401  (no_artifact_hits: an autouse fixture)
    no_artifact_hits, F64_TOL, graph_level, kernels, ref)


def test_sum_of_squared_difference_is_one_reduce_kernel(dtype):
    x, y = G.matrix("x", dtype), G.matrix("y", dtype)
    out = ((x - y) ** 2).sum()
    f3 = graph_level([x, y], out, opt_level="O3")
    assert [type(n.op).__name__ for n in f3.fgraph.nodes] == ["FusedReduce"]
    assert len(graph_level([x, y], out, opt_level="O1").fgraph.nodes) == 3
    rng = np.random.RandomState(10)
    xv, yv = rng.randn(37, 53).astype(dtype), rng.randn(37, 53).astype(dtype)
    want = ((xv.astype("float64") - yv) ** 2).sum()
    np.testing.assert_allclose(f3(xv, yv), want, rtol=2e-5 if dtype == "float32" else 1e-12)


def test_row_sums_of_squared_difference_is_one_reduce_kernel():
    x, y = G.matrix("x", "float64"), G.matrix("y", "float64")
    out = ((x - y) ** 2).sum(axis=1)
    f = G.function([x, y], out, opt_level="O3")  # C: the fused reduction's kernel
    assert [k.kind for k in kernels(f)] == ["reduce"]
    rng = np.random.RandomState(11)
    xv, yv = rng.randn(6, 5), rng.randn(6, 5)
    np.testing.assert_allclose(f(xv, yv), ((xv - yv) ** 2).sum(1), **F64_TOL)


def test_reduction_input_with_another_reader_is_not_fused():
    x, y = G.matrix("x", "float64"), G.matrix("y", "float64")
    sq = (x - y) ** 2
    outs = [sq.sum(), sq * 3.0]
    f = graph_level([x, y], outs, opt_level="O3")
    assert any("other readers" in n for n in f.fgraph.fusion_notes), f.fgraph.fusion_notes
    rng = np.random.RandomState(12)
    xv, yv = rng.randn(4, 5), rng.randn(4, 5)
    for got, want in zip(f(xv, yv), ref([x, y], outs, xv, yv)):
        np.testing.assert_allclose(got, want, **F64_TOL)
