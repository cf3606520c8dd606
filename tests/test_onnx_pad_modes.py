"""ONNX Pad in modes edge, reflect and wrap (graphc/onnx/convert_tensor.pad_by_gather): values as
numpy's np.pad on the C target and the py reference, in float32 and float64; the gradient sums
each padding copy back onto its source; PyTorch's ReflectionPad2d / ReplicationPad2d exports match
torch; axes of symbolic length get the indices computed when the call runs."""
import numpy as np
import pytest

GO = pytest.importorskip("graphc.onnx")
import graphc as G  # noqa: E402
from onnx import TensorProto, helper as oh  # noqa: E402

from graphc.onnx.proto import OnnxUnsupported  # noqa: E402

ELEM = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}


def _pad_model(mode, shape, pads, dtype, axes=None):
    inits = [oh.make_tensor("pads", TensorProto.INT64, [len(pads)], pads)]
    names = ["x", "pads"]
    if axes is not None:
        inits.append(oh.make_tensor("axes", TensorProto.INT64, [len(axes)], axes))
        names += ["", "axes"]
    g = oh.make_graph([oh.make_node("Pad", names, ["y"], mode=mode)], "g",
                      [oh.make_tensor_value_info("x", ELEM[dtype], shape)],
                      [oh.make_tensor_value_info("y", ELEM[dtype], [f"o{i}" for i in range(len(shape))])],
                      inits)
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 19)])


CASES = [((2, 3, 5, 6), [0, 0, 2, 1, 0, 0, 1, 3], None),   # NCHW, asymmetric H and W
         ((4, 7), [3, 0, 1, 6], None),                      # wider than the axis for edge/wrap
         ((2, 3, 5, 6), [1, 2, 2, 1], [-2, 3])]             # axes as an input, negative


@pytest.mark.parametrize("mode", ["edge", "reflect", "wrap"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_pad_modes_equal_numpy(mode, case, dtype):
    shape, pads, axes = CASES[case]
    if mode == "reflect" and case == 1:
        pads = [3, 0, 1, 5]  # reflect repeats no border: pads below the axis length
    m = GO.load(_pad_model(mode, list(shape), pads, dtype, axes))
    x = np.random.default_rng(case).standard_normal(shape).astype(dtype)
    nd = len(shape)
    ax = list(range(nd)) if axes is None else [a % nd for a in axes]
    width = [(0, 0)] * nd
    for k, a in enumerate(ax):
        width[a] = (pads[k], pads[k + len(ax)])
    want = np.pad(x, width, mode=mode)
    for backend in ("c", "py"):
        got = G.function(m.inputs, m.outputs[0], backend=backend)(x)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", ["edge", "reflect", "wrap"])
def test_pad_mode_gradient_sums_the_copies_back(mode):
    shape, pads = (2, 3, 4, 5), [0, 0, 2, 1, 0, 0, 1, 3]
    m = GO.load(_pad_model(mode, list(shape), pads, "float64"))
    x, y = m.inputs[0], m.outputs[0]
    r = np.random.default_rng(1).standard_normal(tuple(int(d) for d in y.type.shape))
    gx = G.function([x], G.grad((y * r).sum(), x))(np.zeros(shape))
    # the gradient by hand: the padded index map, each output's weight added at its source
    idx = np.pad(np.arange(np.prod(shape)).reshape(shape), [(0, 0), (0, 0), (2, 1), (1, 3)], mode=mode)
    want = np.zeros(np.prod(shape))
    np.add.at(want, idx.ravel(), r.ravel())
    np.testing.assert_allclose(gx, want.reshape(shape), rtol=1e-12)


@pytest.mark.parametrize("mode", ["edge", "reflect", "wrap"])
def test_pad_modes_over_symbolic_axes(mode):
    """H and W symbolic (a fully convolutional net of any image size): the indices are computed
    when the call runs, as np.pad's, pads wider than the axis (reflect repeats, wrap cycles) and a
    length of 1 included; an empty axis is a clear error, not a crash."""
    from graphc.errors import GraphcError
    g = oh.make_graph([oh.make_node("Pad", ["x", "pads"], ["y"], mode=mode)], "g",
                      [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                      [oh.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c", "d"])],
                      [oh.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 2, 1, 0, 0, 3, 4])])
    m = GO.load(oh.make_model(g, opset_imports=[oh.make_opsetid("", 19)]))
    for backend in ("c", "py"):
        f = G.function(m.inputs, m.outputs[0], backend=backend)
        for shape in ((2, 3, 5, 6), (1, 3, 4, 3), (1, 3, 1, 1), (1, 3, 2, 7)):
            x = np.random.default_rng(0).standard_normal(shape).astype("float32")
            np.testing.assert_array_equal(f(x), np.pad(x, [(0, 0), (0, 0), (2, 3), (1, 4)], mode=mode))
        with pytest.raises(GraphcError, match="index out of range"):
            f(np.zeros((1, 3, 0, 4), "float32"))
    # the gradient over the symbolic axes: each padded copy's weight summed back onto its source
    x, y = m.inputs[0], m.outputs[0]
    gx = G.function([x], G.grad((y * y).sum(), x))
    xv = np.random.default_rng(2).standard_normal((1, 3, 2, 3)).astype("float32")
    idx = np.pad(np.arange(xv.size).reshape(xv.shape), [(0, 0), (0, 0), (2, 3), (1, 4)], mode=mode)
    want = np.zeros(xv.size, "float32")
    np.add.at(want, idx.ravel(), 2 * xv.ravel()[idx.ravel()])
    np.testing.assert_allclose(gx(xv), want.reshape(xv.shape), rtol=1e-6)


@pytest.mark.parametrize("layer", ["ReflectionPad2d", "ReplicationPad2d"])
def test_pytorch_padding_layers_match_torch(layer):
    torch = pytest.importorskip("torch")
    import io
    import onnx
    net = torch.nn.Sequential(getattr(torch.nn, layer)((1, 2, 2, 1)), torch.nn.Conv2d(3, 4, 3))
    x = torch.randn(2, 3, 8, 9)
    buf = io.BytesIO()
    torch.onnx.export(net, (x,), buf, opset_version=17, dynamo=False)
    m = GO.load(onnx.load_from_string(buf.getvalue()))
    got = G.function(m.inputs, m.outputs[0])(x.numpy())
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
