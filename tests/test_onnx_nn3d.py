"""3-D Conv / MaxPool / AveragePool (NCDHW) and dilated pools, composed from graphc's 2-D ops at
load time (graphc/onnx/convert_nn3d.py): outputs equal onnxruntime's (or onnx's evaluator) for
strides, dilations, groups, asymmetric pads, ceil mode and both divisor modes; the imported
3-D convolution trains (its gradients equal PyTorch's conv3d); one of each compiles on C."""
import numpy as np
import pytest

import onnx_models as M
import graphc as G

GO = pytest.importorskip("graphc.onnx")
from onnx import TensorProto, helper as oh, numpy_helper as nh  # noqa: E402

from graphc.onnx.proto import OnnxUnsupported  # noqa: E402

F, D = TensorProto.FLOAT, TensorProto.DOUBLE


def _out(elem, rank):
    return oh.make_tensor_value_info("y", elem, ["o0", "o1", "o2", "o3", "o4"][:rank])


def _model(node, x_shape, inits=(), elem=F):
    g = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", elem, x_shape)],
                      [_out(elem, len(x_shape))], initializer=list(inits))
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 19)])


def _check(model, x, target="py"):
    m = GO.load(model)
    f = G.function(m.inputs, list(m.outputs), backend=target)
    got = f(x)[0]
    want = M.reference_run(model, {"x": x})[0]
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


CONVS = [
    dict(),
    dict(strides=[2, 1, 2], pads=[1, 0, 1, 1, 0, 1]),
    dict(dilations=[2, 1, 1], pads=[0, 1, 1, 1, 1, 0]),       # asymmetric pads
    dict(group=2, strides=[1, 2, 1]),
    dict(auto_pad="SAME_UPPER"),
]


@pytest.mark.parametrize("attrs", CONVS, ids=[str(a) for a in CONVS])
def test_conv_3d_matches_onnxruntime(attrs):
    rng = np.random.default_rng(0)
    g = attrs.get("group", 1)
    w = rng.standard_normal((6, 4 // g, 3, 2, 3)).astype("float32")
    b = rng.standard_normal(6).astype("float32")
    node = oh.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    model = _model(node, [2, 4, 7, 6, 5], [nh.from_array(w, "w"), nh.from_array(b, "b")])
    _check(model, rng.standard_normal((2, 4, 7, 6, 5)).astype("float32"))


POOLS = [
    ("MaxPool", dict(kernel_shape=[2, 3, 2], strides=[2, 1, 2], pads=[1, 1, 0, 0, 1, 1])),
    ("MaxPool", dict(kernel_shape=[3, 2, 2], strides=[2, 2, 2], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[2, 2], dilations=[2, 1], pads=[1, 0, 0, 1])),   # 2-D dilated
    ("AveragePool", dict(kernel_shape=[3, 2, 2], strides=[2, 1, 2], pads=[1, 0, 1, 1, 1, 0])),
    ("AveragePool", dict(kernel_shape=[3, 2, 2], strides=[2, 1, 2], pads=[1, 0, 1, 1, 1, 0],
                         count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[2, 2, 3], strides=[2, 2, 2], ceil_mode=1,
                         dilations=[1, 2, 1], count_include_pad=1)),
]


@pytest.mark.parametrize("op,attrs", POOLS, ids=[f"{o}-{a}" for o, a in POOLS])
def test_pools_3d_and_dilated_match_onnxruntime(op, attrs):
    rng = np.random.default_rng(1)
    shape = [2, 3, 7, 6, 5][:2 + len(attrs["kernel_shape"])]
    model = _model(oh.make_node(op, ["x"], ["y"], **attrs), shape)
    _check(model, rng.standard_normal(shape).astype("float32"))


def test_conv_and_pool_3d_compiled():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 3, 2, 3, 3)).astype("float32")
    nodes = [oh.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1, 1, 1]),
             oh.make_node("MaxPool", ["c"], ["m"], kernel_shape=[2, 2, 2], strides=[2, 2, 2]),
             oh.make_node("AveragePool", ["m"], ["y"], kernel_shape=[2, 2, 2], pads=[1, 0, 0, 0, 1, 1])]
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", F, [2, 3, 6, 8, 7])],
                      [_out(F, 5)], initializer=[nh.from_array(w, "w")])
    model = oh.make_model(g, opset_imports=[oh.make_opsetid("", 19)])
    _check(model, rng.standard_normal((2, 3, 6, 8, 7)).astype("float32"), target="c")


def test_conv_3d_gradients_equal_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 5, 6, 4))
    w = rng.standard_normal((6, 2, 3, 2, 2))
    b = rng.standard_normal(6)
    node = oh.make_node("Conv", ["x", "w", "b"], ["y"], group=2, strides=[2, 1, 1],
                        pads=[1, 0, 1, 1, 1, 0], dilations=[1, 2, 1])
    m = GO.load(_model(node, list(x.shape), [nh.from_array(w, "w"), nh.from_array(b, "b")], D))
    y = m.outputs[0]
    r = rng.standard_normal(m.outputs[0].type.shape if all(isinstance(d, int) for d in y.type.shape)
                            else (1,))
    loss = (y * r).sum()
    params = [m.params["w"], m.params["b"]]
    f = G.function(m.inputs, [y] + G.grad(loss, [m.inputs[0]] + params), backend="py")
    got_y, gx, gw, gb = f(x)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    # ONNX pads are [d0, h0, w0, d1, h1, w1]; torch's F.pad takes (w0, w1, h0, h1, d0, d1)
    ty = torch.nn.functional.conv3d(torch.nn.functional.pad(tx, (1, 0, 0, 1, 1, 1)), tw, tb,
                                    stride=(2, 1, 1), dilation=(1, 2, 1), groups=2)
    (ty * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(got_y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    for got, want in ((gx, tx.grad), (gw, tw.grad), (gb, tb.grad)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-10)


def test_3d_forms_not_composed_are_refused_with_reasons():
    w = nh.from_array(np.zeros((2, 2, 2, 2, 2), "float32"), "w")
    node = oh.make_node("ConvTranspose", ["x", "w"], ["y"], output_shape=[5, 4, 4])
    with pytest.raises(OnnxUnsupported, match="depends on the symbolic input size"):
        GO.load(_model(node, [1, 2, "d", 3, 3], [w]))   # (3-D ConvTranspose: test_onnx_import_conv_transpose.py)
    node = oh.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2, 2], pads=[1, 0, 0, 1, 0, 0])
    with pytest.raises(OnnxUnsupported, match="symbolic size"):
        GO.load(_model(node, [1, 2, "d", 3, 3]))
