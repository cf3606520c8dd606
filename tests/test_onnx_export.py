"""graphc.onnx.export: graphc graphs written as ONNX run in onnxruntime (or onnx's reference)
with graphc's results, and import back into graphc (round trip). Symbolic batch sizes stay
symbolic; ops graphc cannot write are listed in one error."""
import numpy as np
import pytest

import onnx_models as M
import graphc as G
import graphc.onnx as GO
from graphc.onnx.exporter import OnnxExportError

RNG = np.random.default_rng(0)


def _mlp():
    b = G.dim("batch")
    x = G.tensor("x", (b, 20))
    w1 = G.shared((RNG.standard_normal((20, 32)) * 0.3).astype("float32"), name="w1")
    b1 = G.shared(np.zeros(32, "float32"), name="b1")
    w2 = G.shared((RNG.standard_normal((32, 5)) * 0.3).astype("float32"), name="w2")
    h = G.tanh(G.dot(x, w1) + b1)
    return [x], [G.softmax(G.dot(h, w2)), G.argmax(h, axis=1)], (4, 20)


def _lenet():
    b = G.dim("batch")
    x = G.tensor("x", (b, 1, 28, 28))
    c1 = G.shared((RNG.standard_normal((6, 1, 5, 5)) * 0.2).astype("float32"), name="c1")
    c2 = G.shared((RNG.standard_normal((16, 6, 5, 5)) * 0.1).astype("float32"), name="c2")
    fc = G.shared((RNG.standard_normal((400, 10)) * 0.1).astype("float32"), name="fc")
    h = G.max_pool2d(G.relu(G.conv2d(x, c1, padding=1)), 2, ceil_mode=True)
    h = G.avg_pool2d(G.relu(G.conv2d(h, c2)), 2)
    h = G.lrn(h, 3)
    h = h.reshape((b, 400))
    logits = G.dot(h, fc)
    side = G.log1p(G.abs(h[:, 3:9:2])) * 2.0 - G.sigmoid(h[:, -4:]).sum(axis=1, keepdims=True)
    return [x], [G.log_softmax(logits), side], (3, 1, 28, 28)


@pytest.mark.parametrize("build", [_mlp, _lenet])
def test_round_trip(build, tmp_path):
    inputs, outputs, shape = build()
    f = G.function(inputs, outputs)
    path = str(tmp_path / "m.onnx")
    model = GO.export(inputs, outputs, path)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for n in (shape[0], 1):
        x = RNG.standard_normal((n,) + shape[1:]).astype("float32")
        want = f(x)
        for got, w in zip(M.reference_run(model, {"x": x}), want):
            np.testing.assert_allclose(got, w, rtol=M.REFERENCE_RTOL, atol=1e-6)
        m = GO.load(path)  # and back into graphc
        for got, w in zip(G.function(m.inputs, m.outputs)(x), want):
            np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


def test_unsupported_ops_are_listed():
    x = G.matrix("x")
    y = G.dropout(x, 0.5, G.RandomStreams(1))  # random numbers: graphc's own generator
    with pytest.raises(OnnxExportError, match="cannot write: RandomUniform"):
        GO.export([x], [y])


def test_leaf_not_among_inputs():
    x, z = G.matrix("x"), G.matrix("z")
    with pytest.raises(OnnxExportError, match="not among the inputs"):
        GO.export([x], [x + z])


def test_max_pool_argmax_has_no_onnx_form():
    x = G.tensor4("x")
    y, arg = G.max_pool2d(x, 2, return_argmax=True)
    with pytest.raises(OnnxExportError, match="output 1 of MaxPool2d.*export without it"):
        GO.export([x], [y, arg])
    GO.export([x], [y])  # the pooled values alone are fine
