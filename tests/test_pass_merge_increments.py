"""Tests of merge_increments: summed gradients of slices of one tensor.

Helpers: tests/pass_helpers.py."""
import numpy as np

import graphc as G

from pass_helpers import (  # noqa: F401  (no_artifact_hits: an autouse fixture)
    no_artifact_hits, graph_level, kernels, ref)


def _sliced_sum_grad(dtype, n_steps=6, width=4):
    """The gradient of a cost reading every row and four column blocks of x (an unrolled RNN's
    pattern): n_steps + 4 slices, each slice gradient a full-size IncSubtensor."""
    x = G.tensor("x", (n_steps, 3, 4 * width), dtype)
    cost = 0
    for t in range(n_steps):
        z = x[t]
        cost = cost + (G.sigmoid(z[:, :width]) * G.tanh(z[:, width:2 * width])
                       + z[:, 2 * width:3 * width] ** 2 - z[:, 3 * width:]).sum()
    return x, G.grad(cost, x)


def test_summed_slice_gradients_become_one_increment_op(dtype):
    x, g = _sliced_sum_grad(dtype)
    f = graph_level([x], g)
    xv = np.random.RandomState(3).randn(6, 3, 16).astype(dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(xv), ref([x], g, xv), rtol=tol, atol=tol)
    assert [n.op.__class__.__name__ for n in f.fgraph.nodes].count("IncSubtensorSum") == 7
    assert not any(n.op.__class__.__name__ == "IncSubtensor" for n in f.fgraph.nodes)
    assert graph_level([x], g, opt_level="O0").fgraph.nodes  # (as written: 30 IncSubtensor)
    assert [n.op.__class__.__name__ for n in graph_level([x], g, opt_level="O0").fgraph.nodes
            ].count("IncSubtensor") == 6 * 4 + 6


def test_summed_slice_gradients_write_one_buffer_without_zero_fills():
    x, g = _sliced_sum_grad("float32", n_steps=2)
    f = G.function([x], g)  # C: what lowering makes of the merged increments
    # the slices tile their tensors: every element is written once, nothing is zero-filled
    assert "fill" not in [k.kind for k in kernels(f)]
    xv = np.random.RandomState(3).randn(2, 3, 16).astype("float32")
    np.testing.assert_allclose(f(xv), ref([x], g, xv), rtol=1e-5, atol=1e-5)


def test_overlapping_or_partial_slices_are_zero_filled_and_added(dtype):
    x = G.tensor("x", (5, 9), dtype)
    cost = (G.exp(x[:, :3]).sum() + x[1:3, 2:5].sum() * x[0, 1:4].sum()
            + (x[1:4, :3] ** 2).sum())
    g = G.grad(cost, x)
    f = G.function([x], g) if dtype == "float32" else graph_level([x], g)  # C: the fill kernel
    xv = np.random.RandomState(4).randn(5, 9).astype(dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(xv), ref([x], g, xv), rtol=tol, atol=tol)
    assert [n.op.__class__.__name__ for n in f.fgraph.nodes].count("IncSubtensorSum") == 1
    if dtype == "float32":
        assert [k.kind for k in kernels(f)].count("fill") == 1


def test_slice_gradients_of_different_tensors_are_not_merged():
    a, b = G.tensor("a", (4, 6)), G.tensor("b", (4, 6))
    y = G.tensor("y", (4, 3))
    # a[:, :3] and b[:, 3:] both meet y, but their gradients belong to different tensors
    ga, gb = G.grad((a[:, :3] * y + b[:, 3:] * y).sum(), [a, b])
    f = graph_level([a, b, y], [ga, gb])
    assert not any(n.op.__class__.__name__ == "IncSubtensorSum" for n in f.fgraph.nodes)
    av, bv, yv = (np.random.RandomState(5).randn(*s).astype("float32") for s in [(4, 6), (4, 6), (4, 3)])
    got = f(av, bv, yv)
    np.testing.assert_allclose(got[0][:, :3], yv)
    np.testing.assert_allclose(got[1][:, 3:], yv)
    assert not got[0][:, 3:].any() and not got[1][:, :3].any()
