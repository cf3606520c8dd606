"""graphc.onnx.export of a graph with a scan (graphc/onnx/export_loop.py: a Loop as ONNX's Scan):
an LSTM written with G.scan, forwards and backwards, its BPTT gradient (a reverse loop), and an
imported ONNX LSTM with sequence_lens, each run by onnxruntime against graphc; a step with an op
ONNX cannot express is refused with the scan's name."""
import numpy as np
import pytest

import graphc as G
from graphc.onnx.exporter import OnnxExportError

GO = pytest.importorskip("graphc.onnx")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported model")

T, B, I, H = 5, 3, 4, 6


def _lstm(go_backwards):
    rng = np.random.default_rng(0)
    W = G.shared((rng.standard_normal((I, 4 * H)) * 0.5).astype("float32"), name="W")
    U = G.shared((rng.standard_normal((H, 4 * H)) * 0.5).astype("float32"), name="U")
    b = G.shared((rng.standard_normal((4 * H,)) * 0.5).astype("float32"), name="b")

    def step(x_t, h, c):
        z = G.dot(x_t, W) + G.dot(h, U) + b
        i, f = G.sigmoid(z[:, :H]), G.sigmoid(z[:, H:2 * H])
        g, o = G.tanh(z[:, 2 * H:3 * H]), G.sigmoid(z[:, 3 * H:])
        c_new = f * c + i * g
        return o * G.tanh(c_new), c_new

    X = G.tensor3("X", shape=("T", "B", I))
    h0 = G.dot(X[0], G.constant(np.zeros((I, H), "float32")))   # zeros of shape (B, H)
    (hs, cs), _ = G.scan(step, sequences=X, outputs_info=[h0, h0], go_backwards=go_backwards,
                         name="lstm")
    return X, [W, U, b], hs, cs


def _check(inputs, outputs, feeds_list):
    f = G.function(inputs, outputs)
    model = GO.export(inputs, outputs)
    assert any(n.op_type == "Scan" for n in model.graph.node)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in model.graph.input]
    for feeds in feeds_list:
        got = f(*feeds)
        got = got if isinstance(got, list) else [got]
        want = sess.run(None, dict(zip(names, feeds)))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_scan_lstm_round_trip(go_backwards):
    X, _, hs, cs = _lstm(go_backwards)
    rng = np.random.default_rng(1)
    _check([X], [hs, cs[-1]], [[rng.standard_normal(s).astype("float32")]
                               for s in [(T, B, I), (2, 1, I)]])  # symbolic T and batch


def test_bptt_gradient_round_trip():
    """The gradient graph holds a reverse loop (back-propagation through time)."""
    X, params, hs, _ = _lstm(False)
    loss = (hs * hs).sum()
    x = np.random.default_rng(2).standard_normal((T, B, I)).astype("float32")
    _check([X], [loss] + G.grad(loss, params), [[x]])


def test_imported_onnx_lstm_round_trip():
    """ONNX LSTM (with sequence_lens, bidirectional) -> graphc -> ONNX Scan -> onnxruntime."""
    from test_onnx_recurrent import _model
    model, x = _model("LSTM", direction="bidirectional", lens=[5, 2, 4], initial=True)
    m = GO.load(model)
    _check(m.inputs, m.outputs, [[x]])


def test_step_that_onnx_cannot_express_names_the_scan():
    X = G.matrix("X", shape=("T", 3))
    hs, _ = G.scan(lambda x_t, h: G.floor_div(x_t, 2.0) + h, sequences=X, outputs_info=X[0],
                   name="my_floor_scan")
    with pytest.raises(OnnxExportError, match="the step of scan 'my_floor_scan': scalar function floordiv"):
        GO.export([X], hs)


def test_scan_without_sequences_is_refused_by_name():
    h0 = G.vector("h0", shape=(3,))
    hs, _ = G.scan(lambda h: h * 2, outputs_info=h0, n_steps=4, name="doubling")
    with pytest.raises(OnnxExportError, match="scan 'doubling' runs n_steps times"):
        GO.export([h0], hs)
