"""ONNX LSTM/GRU/RNN import (graphc/onnx/convert_recurrent.py, on G.scan): models built with
onnx.helper against onnxruntime (or onnx's reference) in every direction and layout, with
sequence_lens and initial states; PyTorch's nn.LSTM/nn.GRU exports against PyTorch; gradients
of an imported LSTM against finite differences; what is refused, listed at once.
ONNX's own node tests for the three operators run in tests/test_onnx_conformance.py."""
import numpy as np
import pytest

import onnx_models as M
from onnx_models import h, nh, onnx
import graphc as G

GO = pytest.importorskip("graphc.onnx")

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _model(op, T=5, B=3, I=4, H=6, direction="forward", layout=0, lens=None, initial=False,
           peepholes=False, symbolic=False, dtype="float32", seed=0, **attrs):
    """One recurrent node; weights are initializers, X the only input."""
    rng = np.random.default_rng(seed)
    D, Gn = (2 if direction == "bidirectional" else 1), GATES[op]
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def w(name, shape, scale=0.5):
        inits.append(nh.from_array((rng.standard_normal(shape) * scale).astype(dtype), name))
        return name

    inits = []
    ins = ["X", w("W", (D, Gn * H, I)), w("R", (D, Gn * H, H)), w("B", (D, 2 * Gn * H))]
    ins.append("")
    if lens is not None:
        inits.append(nh.from_array(np.asarray(lens, "int32"), "lens"))
        ins[-1] = "lens"
    state = (D, B, H) if layout == 0 else (B, D, H)
    if initial:
        ins.append(w("h0", state))
        if op == "LSTM":
            ins.append(w("c0", state))
    if peepholes:
        ins += ["", ""][:7 - len(ins)] if len(ins) < 7 else []
        ins.append(w("P", (D, 3 * H)))
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = h.make_node(op, ins, outs, hidden_size=H, direction=direction, layout=layout, **attrs)
    t_dim, b_dim = ("seq", "batch") if symbolic else (T, B)
    x_shape = [t_dim, b_dim, I] if layout == 0 else [b_dim, t_dim, I]
    y_shape = [t_dim, D, b_dim, H] if layout == 0 else [b_dim, t_dim, D, H]
    s_shape = [D, b_dim, H] if layout == 0 else [b_dim, D, H]
    graph = h.make_graph([node], op, [h.make_tensor_value_info("X", elem, x_shape)],
                         [h.make_tensor_value_info("Y", elem, y_shape)]
                         + [h.make_tensor_value_info(n, elem, s_shape) for n in outs[1:]], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    x = rng.standard_normal((T, B, I) if layout == 0 else (B, T, I)).astype(dtype)
    return model, x


CASES = {
    "lstm_bidir_lens_initial": dict(op="LSTM", direction="bidirectional", lens=[5, 2, 4],
                                    initial=True),
    "lstm_clip_peepholes": dict(op="LSTM", clip=1.5, peepholes=True, initial=True),
    "lstm_layout1_peepholes": dict(op="LSTM", layout=1, peepholes=True, initial=True),
    "lstm_reverse_symbolic": dict(op="LSTM", direction="reverse", symbolic=True),
    "lstm_input_forget": dict(op="LSTM", input_forget=1),
    "gru_reverse_lbr_lens": dict(op="GRU", direction="reverse", linear_before_reset=1,
                                 lens=[3, 5, 1]),
    "gru_bidir_layout1": dict(op="GRU", direction="bidirectional", layout=1, initial=True),
    "gru_lbr_bidir": dict(op="GRU", direction="bidirectional", linear_before_reset=1),
    "rnn_bidir_lens_initial": dict(op="RNN", direction="bidirectional", lens=[1, 5, 3],
                                   initial=True),
    "rnn_layout1_explicit_activations": dict(op="RNN", layout=1, activations=["Tanh"]),
    "lstm_other_activations": dict(op="LSTM", activations=["HardSigmoid", "LeakyRelu", "ScaledTanh"],
                                   activation_alpha=[0.3, 0.05, 0.8], activation_beta=[0.4, 1.2]),
    "gru_bidir_other_activations": dict(op="GRU", direction="bidirectional",
                                        activations=["Sigmoid", "Softsign", "HardSigmoid", "Elu"]),
    "rnn_affine_activation": dict(op="RNN", activations=["Affine"], activation_alpha=[0.5],
                                  activation_beta=[0.1]),
    "rnn_thresholded_relu_softplus": dict(op="RNN", direction="bidirectional",
                                          activations=["ThresholdedRelu", "Softplus"],
                                          activation_alpha=[0.2]),
}


def _reference(model, x, layout=0):
    """onnxruntime's outputs; onnx's reference for layout 1, which onnxruntime's CPU kernels
    refuse (onnx's reference has no sequence_lens: no case here asks it for both)."""
    if layout == 1:
        from onnx.reference import ReferenceEvaluator
        return ReferenceEvaluator(model).run(None, {"X": x})
    return M.reference_run(model, {"X": x})


COMPILED = ("lstm_bidir_lens_initial", "gru_reverse_lbr_lens")  # the rest on the numpy target


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_onnxruntime(name):
    model, x = _model(**CASES[name])
    m = GO.load(model)
    f = G.function(m.inputs, m.outputs, target="c" if name in COMPILED else "py")
    got = f(x)
    want = _reference(model, x, CASES[name].get("layout", 0))
    assert len(got) == len(want)
    for g, r, out in zip(got, want, m.output_names):
        assert g.shape == r.shape, (out, g.shape, r.shape)
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5, err_msg=out)


def test_symbolic_sizes_serve_every_length_and_batch():
    model, _ = _model("GRU", direction="bidirectional", symbolic=True)
    m = GO.load(model)
    assert str(m.inputs[0].type.shape[0]) == "seq"
    f = G.function(m.inputs, m.outputs)
    rng = np.random.default_rng(1)
    for shape in [(5, 3, 4), (2, 1, 4), (7, 2, 4)]:
        x = rng.standard_normal(shape).astype("float32")
        for g, r in zip(f(x), M.reference_run(model, {"X": x})):
            np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_refusals_are_listed_at_once():
    nodes = [h.make_node("LSTM", ["X", "W", "R"], ["Y1"], hidden_size=2,
                         activations=["Gelu", "Tanh", "Tanh"], name="lstm_relu"),
             h.make_node("GRU", ["X", "Wg", "Rg"], ["Y2"], hidden_size=2, activations=["Sigmoid"],
                         name="gru_alpha")]
    inits = [nh.from_array(np.zeros(s, "float32"), n) for n, s in
             [("W", (1, 8, 3)), ("R", (1, 8, 2)), ("Wg", (1, 6, 3)), ("Rg", (1, 6, 2))]]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("X", M.F, [4, 1, 3])],
                         [h.make_tensor_value_info(n, M.F, [4, 1, 1, 2]) for n in ("Y1", "Y2")],
                         inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    with pytest.raises(G.GraphcError) as e:
        GO.load(model)
    text = str(e.value)
    assert "lstm_relu" in text and "activation 'Gelu'" in text and "gru_alpha" in text, text
    assert "GRU takes 2 per direction" in text, text


def test_gradients_of_imported_lstm_match_finite_differences():
    """Fine-tuning: G.grad through the imported LSTM's scan (BPTT) w.r.t. its ONNX weights."""
    model, x = _model("LSTM", T=4, B=2, I=3, H=3, direction="bidirectional", lens=[4, 2],
                      initial=True, dtype="float64")
    m = GO.load(model)
    y, y_h, y_c = m.outputs
    k = np.random.default_rng(2).standard_normal((4, 2, 2, 3))
    loss = (y * G.constant(k)).sum() + (y_h * y_c).sum()
    params = [m.params[n] for n in ("W", "R", "B", "h0", "c0")]
    f = G.function(m.inputs, [loss] + G.grad(loss, params))
    base = f(x)
    value = G.function(m.inputs, loss)
    rng, eps = np.random.default_rng(3), 1e-6
    for p, g in zip(params, base[1:]):
        arr = p.get_value()
        for idx in [tuple(rng.integers(0, s) for s in arr.shape) for _ in range(4)]:
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            p.set_value(plus)
            lp = float(value(x))
            p.set_value(minus)
            lm = float(value(x))
            p.set_value(arr)
            np.testing.assert_allclose(g[idx], (lp - lm) / (2 * eps), rtol=1e-5, atol=1e-7,
                                       err_msg=f"{p.name}{idx}")


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_pytorch_export_matches_pytorch(kind, tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch exports the model")
    torch.manual_seed(0)
    cls = getattr(torch.nn, kind)
    net = cls(4, 5, num_layers=2, bidirectional=True, batch_first=True).eval()
    x = torch.randn(3, 6, 4)
    path = str(tmp_path / f"{kind}.onnx")
    torch.onnx.export(net, (x,), path, dynamo=False, opset_version=17, input_names=["x"],
                      output_names=["y", "h_n"] + (["c_n"] if kind == "LSTM" else []))
    m = GO.load(path)
    f = G.function(m.inputs, m.outputs)
    got = f(x.numpy())
    with torch.no_grad():
        want = net(x)
    want = [want[0]] + (list(want[1]) if kind == "LSTM" else [want[1]])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-5)
