"""Tests of merge_products: a sum of matrix products is one deeper product.

Helpers: tests/pass_helpers.py."""
import numpy as np

import graphc as G

from pass_helpers import (  # noqa: F401  (no_artifact_hits: an autouse fixture)
    no_artifact_hits, graph_level, kernels, op_names, ref)


def test_sum_of_products_becomes_one_product_of_concatenations(dtype):
    xs = [G.tensor(f"x{t}", (4, 6), dtype) for t in range(5)]
    gs = [G.tensor(f"g{t}", (4, 3), dtype) for t in range(5)]
    total = G.dot(xs[0].T, gs[0])
    for x, g in zip(xs[1:], gs[1:]):
        total = total + G.dot(x.T, g)  # as back-propagation through unrolled steps sums them
    total = total + G.dot(xs[0][:2].T, gs[0][:2])  # a term of another depth joins too
    f = G.function(xs + gs, total) if dtype == "float32" else graph_level(xs + gs, total)
    rng = np.random.RandomState(6)
    values = [rng.randn(4, 6).astype(dtype) for _ in xs] + [rng.randn(4, 3).astype(dtype) for _ in gs]
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(*values), ref(xs + gs, total, *values), rtol=tol, atol=tol)
    names = op_names(f)
    assert names.count("Matmul") == 1 and not any(n.startswith("add") for n in names)
    if dtype == "float32":  # C: the one product is one gemm kernel
        assert [k.kind for k in kernels(f)].count("gemm") == 1


def test_products_with_a_transposed_operand_merge_and_batched_ones_do_not(dtype):
    a, b = G.tensor("a", (4, 6), dtype), G.tensor("b", (6, 3), dtype)
    c, d = G.tensor("c", (5, 4), dtype), G.tensor("d", (5, 3), dtype)
    out = G.dot(a, b) + G.dot(c.T, d)  # a @ b sums over a's columns, c.T @ d over c's rows
    f = graph_level([a, b, c, d], out)
    rng = np.random.RandomState(7)
    values = [rng.randn(*s).astype(dtype) for s in [(4, 6), (6, 3), (5, 4), (5, 3)]]
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(f(*values), ref([a, b, c, d], out, *values), rtol=tol, atol=tol)
    assert op_names(f).count("Matmul") == 1
    p, q = G.tensor3("p", dtype), G.tensor3("q", dtype)
    batched = graph_level([p, q], G.matmul(p, q) + G.matmul(q, p))
    assert "Concatenate" not in op_names(batched)
    pv, qv = rng.randn(2, 3, 3).astype(dtype), rng.randn(2, 3, 3).astype(dtype)
    np.testing.assert_allclose(batched(pv, qv), pv @ qv + qv @ pv, rtol=tol, atol=tol)


def test_products_are_merged_at_O2_and_O3_only():
    xs = [G.tensor(f"x{t}", (4, 6)) for t in range(3)]
    total = G.dot(xs[0].T, xs[0]) + G.dot(xs[1].T, xs[1]) + G.dot(xs[2].T, xs[2])
    assert op_names(graph_level(xs, total, opt_level="O1")).count("Matmul") == 3
