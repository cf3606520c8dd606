"""ONNX ConvTranspose (graphc/onnx/convert_conv_transpose.py): 3-D, composed of graphc's 2-D
transposed convolution over depth slices, and in every rank pads that are asymmetric,
output_shape and auto_pad (a window cut from the un-padded result). Outputs equal
onnxruntime's (or onnx's evaluator); gradients equal PyTorch's conv_transpose3d; a PyTorch
3-D decoder exported to ONNX runs compiled and matches onnxruntime and PyTorch."""
import io
import warnings

import numpy as np
import pytest

import onnx_models as M
import graphc as G
import graphc.onnx as GO
from onnx import TensorProto, helper as oh, numpy_helper as nh

F, D = TensorProto.FLOAT, TensorProto.DOUBLE


def _model(x_shape, w, b=None, elem=F, **attrs):
    inits = [nh.from_array(w, "w")] + ([nh.from_array(b, "b")] if b is not None else [])
    node = oh.make_node("ConvTranspose", ["x", "w"] + (["b"] if b is not None else []), ["y"], **attrs)
    out = oh.make_tensor_value_info("y", elem, [f"o{i}" for i in range(len(x_shape))])
    g = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", elem, x_shape)], [out], inits)
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 19)])


def _check(model, x, target="py"):
    m = GO.load(model)
    got = G.function(m.inputs, list(m.outputs), backend=target)(x)[0]
    want = M.reference_run(model, {"x": x})[0]
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


CASES_3D = [
    ((1, 1, 3, 4, 5), (1, 2, 3, 3, 3), dict()),
    ((2, 4, 3, 4, 5), (4, 3, 2, 3, 2), dict(strides=[2, 1, 2], dilations=[2, 1, 1], group=2,
                                            pads=[1, 1, 0, 0, 1, 0], output_padding=[1, 0, 1])),
    ((1, 2, 2, 3, 3), (2, 1, 3, 1, 2), dict(strides=[3, 2, 1], pads=[2, 0, 1, 1, 0, 1],
                                            output_padding=[2, 1, 0])),
    ((1, 2, 3, 3, 4), (2, 2, 2, 3, 2), dict(strides=[2, 2, 1], pads=[0, 1, 0, 1, 0, 1])),  # asymmetric
    ((1, 2, 3, 3, 4), (2, 2, 2, 3, 2), dict(strides=[2, 2, 2], output_shape=[7, 8, 9])),
    ((1, 2, 3, 3, 4), (2, 2, 3, 3, 2), dict(strides=[2, 1, 2], auto_pad="SAME_UPPER")),
    ((1, 2, 3, 3, 4), (2, 2, 3, 3, 2), dict(strides=[2, 1, 2], auto_pad="SAME_LOWER")),
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", CASES_3D, ids=[str(c[2]) for c in CASES_3D])
def test_conv_transpose_3d_matches_onnxruntime(x_shape, w_shape, attrs):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(w_shape).astype("float32")
    b = rng.standard_normal(w_shape[1] * attrs.get("group", 1)).astype("float32")
    _check(_model(list(x_shape), w, b, **attrs), rng.standard_normal(x_shape).astype("float32"))


CASES_2D = [
    ((1, 2, 4, 5), (2, 3, 3, 2), dict(strides=[2, 3], pads=[0, 1, 2, 0])),           # asymmetric
    ((2, 2, 3, 3), (2, 1, 3, 3), dict(strides=[3, 2], output_shape=[10, 8])),
    ((2, 2, 3, 3), (2, 1, 3, 3), dict(strides=[3, 2], output_shape=[8, 6])),     # cut 1 each
    ((2, 2, 3, 3), (2, 1, 3, 3), dict(strides=[3, 2], output_shape=[8, 6], auto_pad="SAME_UPPER")),
    ((1, 4, 3, 4), (4, 1, 2, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER", group=2)),
    ((1, 2, 7), (2, 2, 3), dict(strides=[2], pads=[2, 0], output_padding=[1])),      # 1-D
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", CASES_2D, ids=[str(c[2]) for c in CASES_2D])
def test_conv_transpose_windows_of_any_rank_match_onnxruntime(x_shape, w_shape, attrs):
    rng = np.random.default_rng(1)
    w = rng.standard_normal(w_shape).astype("float32")
    _check(_model(list(x_shape), w, **attrs), rng.standard_normal(x_shape).astype("float32"))


def test_conv_transpose_3d_gradients_equal_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 4, 3, 4, 3)), rng.standard_normal((4, 3, 2, 3, 2)), rng.standard_normal(6)
    m = GO.load(_model(list(x.shape), w, b, D, group=2, strides=[2, 1, 2], dilations=[1, 2, 1],
                       pads=[1, 1, 0, 1, 1, 0], output_padding=[1, 0, 1]))
    y = m.outputs[0]
    r = rng.standard_normal(y.type.shape)
    params = [m.params["w"], m.params["b"]]
    f = G.function(m.inputs, [y] + G.grad((y * r).sum(), [m.inputs[0]] + params), backend="py")
    got_y, gx, gw, gb = f(x)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv_transpose3d(tx, tw, tb, stride=(2, 1, 2), padding=(1, 1, 0),
                                              output_padding=(1, 0, 1), groups=2, dilation=(1, 2, 1))
    (ty * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(got_y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    for got, want in ((gx, tx.grad), (gw, tw.grad), (gb, tb.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-10)


def test_pytorch_3d_decoder_compiled():
    """Conv3d down, ConvTranspose3d up (stride 2, padding 1, output_padding 1), batch symbolic."""
    torch = pytest.importorskip("torch", reason="PyTorch exports the model (pip install 'graphc[bench]')")
    import onnx
    nn = torch.nn
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv3d(2, 4, 3, stride=2, padding=1), nn.ReLU(),
                           nn.ConvTranspose3d(4, 3, 3, stride=2, padding=1, output_padding=1)).eval()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.randn(2, 2, 6, 8, 6), f, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    model = onnx.load_from_string(f.getvalue())
    assert "ConvTranspose" in {n.op_type for n in model.graph.node}
    m = GO.load(model)
    assert str(m.inputs[0].type.shape[0]) == "batch"
    infer = G.function(m.inputs, m.outputs[0])
    rng = np.random.default_rng(0)
    for n in (3, 1):
        x = rng.standard_normal((n, 2, 6, 8, 6)).astype("float32")
        got = infer(x)
        np.testing.assert_allclose(got, M.reference_run(model, {"x": x})[0], rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            np.testing.assert_allclose(got, module(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)
