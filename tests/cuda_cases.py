"""Small graphs whose Programs only use the kernel kinds cuda-core templates (elemwise, fill,
copy, arange, gemm), for the CUDA target's compile and emulation tests."""
import numpy as np

import graphc as G


def elementwise_graph(dtype):
    x, y = G.matrix("x", dtype=dtype), G.vector("y", dtype=dtype)
    return [x, y], [G.exp(x) * 2 + y, G.sigmoid(x) // 3 - G.maximum(x, y) % 2.5]


def int_graph(dtype="int64"):
    a, b = G.vector("a", dtype=dtype), G.vector("b", dtype=dtype)
    return [a, b], [a // b + a % b, G.maximum(a, b) * 3]


def product_graph(dtype):
    x = G.matrix("x", dtype=dtype)
    w = G.shared(np.linspace(-1, 1, 12).reshape(3, 4).astype(dtype), name="w")
    return [x], [G.tanh(x @ w), x]  # x again: an output copy


def arange_graph():
    n = G.dim("n")
    v = G.vector("v", shape=(n,), dtype="int64")
    return [v], [v + G.arange(n), G.arange(5, dtype="float32")]
