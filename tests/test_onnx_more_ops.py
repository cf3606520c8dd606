"""ONNX Resize (graphc/onnx/convert_resize.py), Einsum (convert_einsum.py), training-mode
BatchNormalization and Dropout (convert_nn.py) on small onnx.helper models: against onnx's
reference / onnxruntime, PyTorch's interpolate for the attributes its exporter writes, and
numpy; refusals name what is unsupported. Numpy target except where compiling is the point."""
import numpy as np
import pytest

import onnx_models as M
import graphc as G

GO = pytest.importorskip("graphc.onnx")
from onnx import TensorProto, helper as oh, numpy_helper as nh  # noqa: E402

from graphc.onnx.proto import OnnxUnsupported  # noqa: E402

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=19):
    g = oh.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)])


def _vi(name, shape, elem=F):
    return oh.make_tensor_value_info(name, elem, shape)


def _resize_model(in_shape, out_shape, scales=None, sizes=None, **attrs):
    inits = [nh.from_array(np.array(scales if scales is not None else [], "float32"), "scales")]
    ins = ["x", "", "scales"]
    if sizes is not None:
        inits.append(nh.from_array(np.array(sizes, "int64"), "sizes"))
        ins = ["x", "", "", "sizes"]
    node = oh.make_node("Resize", ins, ["y"], **attrs)
    return _model([node], [_vi("x", in_shape)], [_vi("y", out_shape)], inits)


def _py(model):
    m = GO.load(model)
    return G.function(m.inputs, list(m.outputs), backend="py"), m


TORCH_MODES = [  # what torch.onnx writes for F.interpolate
    ("nearest", None, dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                           nearest_mode="floor")),
    ("bilinear", False, dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")),
    ("bilinear", True, dict(mode="linear", coordinate_transformation_mode="align_corners")),
    ("bicubic", False, dict(mode="cubic", coordinate_transformation_mode="pytorch_half_pixel",
                            cubic_coeff_a=-0.75)),
    ("bicubic", True, dict(mode="cubic", coordinate_transformation_mode="align_corners",
                           cubic_coeff_a=-0.75)),
]


@pytest.mark.parametrize("torch_mode,align,attrs", TORCH_MODES)
@pytest.mark.parametrize("out_hw", [(10, 14), (3, 2), (6, 3)])  # (not 1: see below)
def test_resize_matches_pytorch_interpolate(torch_mode, align, attrs, out_hw):
    """(An output axis of size 1 under pytorch_half_pixel reads position 0 in ONNX's spec and
    runtimes, the middle in PyTorch: graphc follows ONNX.)"""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype("float32")
    f, _ = _py(_resize_model([2, 3, 5, 7], [2, 3, *out_hw], sizes=[2, 3, *out_hw], **attrs))
    kw = {} if align is None else {"align_corners": align}
    want = torch.nn.functional.interpolate(torch.from_numpy(x), size=out_hw, mode=torch_mode, **kw)
    np.testing.assert_allclose(f(x)[0], want.numpy(), rtol=1e-5, atol=1e-5)  # torch: float32 weights


@pytest.mark.parametrize("mode,kw", [("nearest", {}), ("bilinear", {"align_corners": False}),
                                     ("bicubic", {"align_corners": True})])
def test_pytorch_interpolate_export_imports(mode, kw):
    """torch.onnx's Resize nodes as written: scales as a Constant (scale_factor), and sizes
    computed from Shape with the symbolic batch (size=...)."""
    torch = pytest.importorskip("torch")
    import torch_models as TM

    class Up(torch.nn.Module):
        def forward(self, x):
            a = torch.nn.functional.interpolate(x, scale_factor=2, mode=mode, **kw)
            b = torch.nn.functional.interpolate(x, size=(7, 5), mode=mode, **kw)
            return a.sum(dim=(2, 3)) + b.sum(dim=(2, 3))

    m = GO.load(TM.export(Up(), (2, 3, 6, 6)))
    assert str(m.inputs[0].type.shape[0]) == "batch"
    f = G.function(m.inputs, m.outputs[0], backend="py")
    x = np.random.default_rng(0).standard_normal((3, 3, 6, 6)).astype("float32")
    with torch.no_grad():
        want = Up()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(f(x), want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("attrs", [dict(mode="nearest"), dict(mode="linear"),
                                   dict(mode="nearest", nearest_mode="round_prefer_ceil",
                                        coordinate_transformation_mode="half_pixel_symmetric"),
                                   dict(mode="linear", coordinate_transformation_mode="asymmetric"),
                                   dict(mode="cubic", exclude_outside=1),
                                   dict(mode="linear", antialias=1)])
def test_resize_by_scales_matches_reference(attrs):
    model = _resize_model([1, 2, 4, 6], [1, 2, 6, 3], scales=[1, 1, 1.5, 0.5], **attrs)
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 6)).astype("float32")
    f, _ = _py(model)
    np.testing.assert_allclose(f(x)[0], M.reference_run(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_resize_compiled_with_a_symbolic_batch_and_its_gradient():
    model = _resize_model(["n", 2, 3, 3], ["n", 2, 6, 6], scales=[1, 1, 2, 2], mode="linear")
    m = GO.load(model)
    (y,) = m.outputs
    gx = G.grad((y * y).sum(), m.inputs[0])
    f = G.function(m.inputs, [y, gx])
    for n in (1, 3):
        x = np.random.default_rng(n).standard_normal((n, 2, 3, 3)).astype("float32")
        got, g = f(x)
        np.testing.assert_allclose(got, M.reference_run(model, {"x": x})[0], rtol=1e-5, atol=1e-6)
        # d/dx sum(y^2) = A^T (2 y) for the linear map A: check one direction numerically
        v = np.random.default_rng(9).standard_normal(x.shape).astype("float32")
        eps = 1e-2
        num = ((f(x + eps * v)[0] ** 2).sum() - (f(x - eps * v)[0] ** 2).sum()) / (2 * eps)
        np.testing.assert_allclose(num, (g * v).sum(), rtol=1e-2)


def test_resize_refusals_name_the_attribute():
    area = _resize_model([1, 1, 4, 4], [1, 1, 8, 8], scales=[1, 1, 2, 2], mode="area")
    with pytest.raises(OnnxUnsupported, match="mode='area': graphc imports nearest, linear, cubic"):
        GO.load(area)
    symbolic = _resize_model([1, 1, "h", 4], [1, 1, "h2", 8], scales=[1, 1, 2, 2])
    with pytest.raises(OnnxUnsupported, match="axis 2 has the symbolic size h"):
        GO.load(symbolic)
    no_roi = _resize_model([1, 1, 4, 4], [1, 1, 8, 8], scales=[1, 1, 2, 2],
                           coordinate_transformation_mode="tf_crop_and_resize")
    with pytest.raises(OnnxUnsupported, match="tf_crop_and_resize needs the roi input"):
        GO.load(no_roi)


EINSUMS = [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
           ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]), ("ij->ji", [(3, 4)]),
           ("ij->", [(3, 4)]), ("i,i", [(5,), (5,)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
           ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]), ("abc,cd->da", [(2, 3, 4), (4, 5)]),
           ("i,j->ij", [(3,), (4,)]), ("ii->i", [(3, 3)]), ("ii", [(4, 4)]),
           ("bjii,bj->bi", [(2, 3, 4, 4), (2, 3)])]


@pytest.mark.parametrize("eq,shapes", EINSUMS)
def test_einsum_matches_numpy(eq, shapes):
    names = [f"x{k}" for k in range(len(shapes))]
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal(s).astype("float32") for s in shapes]
    want = np.einsum(eq, *xs)
    node = oh.make_node("Einsum", names, ["y"], equation=eq)
    model = _model([node], [_vi(n, list(s)) for n, s in zip(names, shapes)],
                   [_vi("y", list(want.shape))], opset=17)
    f, _ = _py(model)
    np.testing.assert_allclose(f(*xs)[0], want, rtol=1e-5, atol=1e-5)


def test_einsum_diagonal_of_unequal_axes_is_refused():
    node = oh.make_node("Einsum", ["x"], ["y"], equation="ii->i")
    model = _model([node], [_vi("x", [3, "n"])], [_vi("y", [3])], opset=17)
    with pytest.raises(OnnxUnsupported, match="diagonal of letter 'i' needs two axes of one static"):
        GO.load(model)


def _bn_model(shape, momentum=0.8):
    c = shape[1]
    rng = np.random.default_rng(3)
    inits = [nh.from_array(rng.standard_normal(c).astype("float32"), n) for n in ("s", "b", "m")]
    inits.append(nh.from_array(rng.uniform(0.5, 2, c).astype("float32"), "v"))
    node = oh.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"],
                        training_mode=1, momentum=momentum, epsilon=1e-3)
    return _model([node], [_vi("x", shape)], [_vi("y", shape), _vi("rm", [c]), _vi("rv", [c])],
                  inits, opset=15)


@pytest.mark.parametrize("shape", [[4, 3], [2, 3, 5], [2, 3, 4, 4]])
def test_training_batch_norm_matches_reference(shape):
    model = _bn_model(shape)
    x = np.random.default_rng(4).standard_normal(shape).astype("float32")
    f, m = _py(model)
    for g, w in zip(f(x), M.reference_run(model, {"x": x})):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    assert sorted(p.name for p in m.trainable) == ["b", "s"]   # running stats are not trained


def test_training_batch_norm_running_stats_as_updates():
    """Fine-tuning keeps the running statistics current: outputs 1 and 2 as updates."""
    model = _bn_model([8, 3])
    m = GO.load(model)
    y, rm, rv = m.outputs
    mean, var = m.params["m"], m.params["v"]
    m0, v0 = mean.get_value().copy(), var.get_value().copy()
    step = G.function(m.inputs, y.sum(), updates={mean: rm, var: rv})
    x = np.random.default_rng(5).standard_normal((8, 3)).astype("float32")
    step(x)
    np.testing.assert_allclose(mean.get_value(), 0.8 * m0 + 0.2 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var.get_value(), 0.8 * v0 + 0.2 * x.var(0), rtol=1e-5)


def _dropout_model(ratio=0.25, seed=None):
    attrs = {} if seed is None else {"seed": seed}
    node = oh.make_node("Dropout", ["x", "r", "t"], ["y", "mask"], **attrs)
    inits = [nh.from_array(np.float32(ratio), "r"), nh.from_array(np.array(True), "t")]
    return _model([node], [_vi("x", [64, 32])],
                  [_vi("y", [64, 32]), _vi("mask", [64, 32], TensorProto.BOOL)], inits, opset=13)


def test_training_dropout_draws_a_new_mask_each_call():
    m = GO.load(_dropout_model())
    f = G.function(m.inputs, list(m.outputs))
    x = np.ones((64, 32), "float32")
    (y1, k1), (y2, k2) = f(x), f(x)
    for y, k in ((y1, k1), (y2, k2)):
        assert k.dtype == np.bool_
        np.testing.assert_array_equal(y, np.where(k, 1 / 0.75, 0).astype("float32"))
        assert abs((~k).mean() - 0.25) < 0.05
    assert (k1 != k2).any()


def test_inference_dropout_and_known_false_training_mode_are_identity():
    node = oh.make_node("Dropout", ["x", "r", "t"], ["y"])
    inits = [nh.from_array(np.float32(0.5), "r"), nh.from_array(np.array(False), "t")]
    f, _ = _py(_model([node], [_vi("x", [3])], [_vi("y", [3])], inits, opset=13))
    x = np.arange(3, dtype="float32")
    np.testing.assert_array_equal(f(x)[0], x)


def test_run_time_training_mode_is_refused():
    node = oh.make_node("Dropout", ["x", "r", "t"], ["y"])
    model = _model([node], [_vi("x", [3]), _vi("t", [], TensorProto.BOOL)], [_vi("y", [3])],
                   [nh.from_array(np.float32(0.5), "r")], opset=13)
    with pytest.raises(OnnxUnsupported, match="training_mode.*must be known when the model loads"):
        GO.load(model)


def test_pytorch_training_mode_export_imports():
    """torch.onnx's export with training=TRAINING: BatchNormalization(training_mode=1) normalizes
    by the batch's statistics and Dropout drops, as the module does in train mode."""
    torch = pytest.importorskip("torch")
    import io
    import warnings

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)
            self.drop = torch.nn.Dropout(0.3)

        def forward(self, x):
            return self.drop(torch.relu(self.bn(self.c(x))))

    torch.manual_seed(0)
    net = Net().train()
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.randn(2, 3, 6, 6), f, dynamo=False, opset_version=17,
                          training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                          input_names=["x"], output_names=["y"])
    m = GO.load(f.getvalue())
    assert sorted(p.name for p in m.trainable) == ["bn.bias", "bn.weight", "c.bias", "c.weight"]
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype("float32")
    y = G.function(m.inputs, m.outputs[0], backend="py")(x)
    net.drop.p = 0.0
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], want[kept] / 0.7, rtol=1e-5, atol=1e-6)
    dropped = 1 - kept[want != 0].mean()
    assert 0.15 < dropped < 0.45, dropped
