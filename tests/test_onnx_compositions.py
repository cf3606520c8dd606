"""The ops ONNX import needed, built as compositions of graphc's ops (graphc/ir/ops/broadcast.py,
activations.py, layer_norm.py): values against numpy on both targets, and gradients."""
import math

import numpy as np
import pytest

import graphc as G
from graphc.ir.ops.activations import elu, gelu, hard_sigmoid, hard_swish, leaky_relu
from graphc.ir.ops.broadcast import broadcast_to
from graphc.ir.ops.layer_norm import layer_norm
from graphc.testing import verify_grad

X = np.array([[-3.5, -1.0, -0.0, 0.25], [0.5, 2.0, 3.5, np.nan]], "float32")


@pytest.mark.parametrize("backend", ["py", "c"])
def test_activations_match_numpy(backend):
    x = G.matrix("x")
    f = G.function([x], [gelu(x), gelu(x, "tanh"), hard_sigmoid(x), hard_swish(x),
                         leaky_relu(x, 0.1), elu(x, 0.5)], backend=backend)
    erf = np.vectorize(math.erf)
    with np.errstate(invalid="ignore"):
        want = [0.5 * X * (1 + erf(X / math.sqrt(2))),
                0.5 * X * (1 + np.tanh(math.sqrt(2 / math.pi) * (X + 0.044715 * X ** 3))),
                np.clip(0.2 * X + 0.5, 0, 1), X * np.clip(X / 6 + 0.5, 0, 1),
                np.where(X < 0, 0.1 * X, X), np.where(X < 0, 0.5 * np.expm1(X), X)]
    for got, w in zip(f(X), want):
        np.testing.assert_allclose(got[:, :3], w[:, :3].astype("float32"), rtol=1e-6, atol=1e-7)
        assert np.isnan(got[1, 3])  # nan stays nan


@pytest.mark.parametrize("backend", ["py", "c"])
def test_broadcast_to_symbolic_shape(backend):
    b = G.dim("b")
    x = G.tensor("x", (b, 1, 3))
    y = broadcast_to(x, (2, b, 4, 3))
    g = G.grad((y * y).sum(), x)
    f = G.function([x], [y, g], backend=backend)
    xv = np.arange(15, dtype="float32").reshape(5, 1, 3)
    yv, gv = f(xv)
    np.testing.assert_array_equal(yv, np.broadcast_to(xv, (2, 5, 4, 3)))
    np.testing.assert_allclose(gv, 2 * 8 * xv)  # eight copies, each d(y^2) = 2y


def test_broadcast_to_rejects_a_wider_axis():
    with pytest.raises(G.GraphcShapeError, match="broadcasts only from 1"):
        broadcast_to(G.tensor("x", (3, 2)), (3, 4))


@pytest.mark.parametrize("backend", ["py", "c"])
def test_layer_norm(backend):
    """Also the regression test of the fused (x - mean)**2 reduction, whose divisor 3.0**-1 sent
    sympy's evalf into endless recursion when the C printer sorted the expression."""
    x = G.tensor("x", (2, 4, 3))
    gamma, beta = G.vector("g"), G.vector("b")
    f = G.function([x, gamma, beta], layer_norm(x, gamma, beta, axis=-1, eps=1e-3),
                   backend=backend)
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((2, 4, 3)).astype("float32")
    gv, bv = rng.standard_normal(3).astype("float32"), rng.standard_normal(3).astype("float32")
    mu = xv.mean(-1, keepdims=True)
    want = (xv - mu) / np.sqrt(xv.var(-1, keepdims=True) + 1e-3) * gv + bv
    np.testing.assert_allclose(f(xv, gv, bv), want, rtol=1e-5, atol=1e-6)


def test_layer_norm_gradient():
    rng = np.random.default_rng(1)
    verify_grad(lambda x: layer_norm(x, axis=1), [rng.standard_normal((3, 2, 4))])
