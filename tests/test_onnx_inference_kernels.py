"""What an imported model's inference graph lowers to (bench/onnx_inference.py measures it against
onnxruntime): a max pool whose argmax nothing reads runs as pool_max_value, which writes no argmax
and gives pool_max's values bit for bit (ties, NaN, clipped windows), float32 and float64; the
gradient still gets pool_max and its argmax."""
import numpy as np
import pytest

import graphc as G
from program_cases import program_of
from graphc.targets.c.capabilities import C_CAPABILITIES
from graphc.targets.cuda.target import CUDA_CAPABILITIES

# (kernel, stride, padding, ceil_mode, (H, W)): LeNet's 2x2 pools, overlapping windows, padded
# and clipped borders, a ceil-mode tail, unequal strides, a window as wide as the image
POOLS = [((2, 2), (2, 2), (0, 0), False, (28, 28)),
         ((2, 2), (2, 2), (0, 0), True, (11, 9)),
         ((3, 3), (2, 2), (1, 1), True, (13, 16)),
         ((3, 3), (1, 1), (1, 1), False, (7, 21)),
         ((2, 3), (1, 2), (1, 0), True, (6, 17)),
         ((4, 5), (3, 3), (0, 2), False, (4, 5))]


def _kinds(program):
    return [k.kind for k in program.kernels]


def test_an_inference_max_pool_lowers_without_argmax():
    x = G.tensor4("x")
    assert _kinds(program_of([x], [G.max_pool2d(x, (2, 2))])) == ["pool_max_value"]
    y, arg = G.max_pool2d(x, (2, 2), return_argmax=True)
    assert "pool_max" in _kinds(program_of([x], [y, arg]))  # the argmax is an output
    gx = G.grad(G.max_pool2d(x, (2, 2)).sum(), x)
    kinds = _kinds(program_of([x], [gx]))
    assert "pool_max" in kinds and "pool_max_value" not in kinds  # the gradient reads it
    # (no CUDA template: that target keeps pool_max, its argmax unread)
    cuda = program_of([x], [G.max_pool2d(x, (2, 2))], capabilities=CUDA_CAPABILITIES)
    assert _kinds(cuda) == ["pool_max"]
    assert C_CAPABILITIES.max_pool_without_argmax


def _input(rng, shape, dtype):
    # small integers (many ties), NaNs, infinities and a plane that is all NaN
    x = rng.integers(-3, 4, shape).astype(dtype)
    x[rng.random(shape) < 0.03] = np.nan
    x[rng.random(shape) < 0.03] = -np.inf
    x[rng.random(shape) < 0.02] = np.inf
    x[0, 1] = np.nan
    return x


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernel, stride, padding, ceil, hw", POOLS,
                         ids=[f"k{p[0]}s{p[1]}p{p[2]}{'ceil' if p[3] else ''}{p[4]}" for p in POOLS])
def test_pool_max_value_gives_pool_maxs_values_bit_for_bit(kernel, stride, padding, ceil, hw, dtype):
    x = G.tensor4("x", dtype=dtype)
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil)
    infer = G.function([x], G.max_pool2d(x, kernel, **kw))
    assert _kinds(infer.program.program) == ["pool_max_value"]
    y, arg = G.max_pool2d(x, kernel, return_argmax=True, **kw)
    with_argmax = G.function([x], [y, arg])
    assert "pool_max" in _kinds(with_argmax.program.program)
    reference = G.function([x], G.max_pool2d(x, kernel, **kw), backend="py")
    xv = _input(np.random.default_rng(sum(hw)), (3, 4) + hw, dtype)
    got = infer(xv)
    want = with_argmax(xv)[0]
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape
    assert got.tobytes() == want.tobytes()  # the same bits, NaN payloads included
    np.testing.assert_array_equal(got, reference(xv))


def test_pool_max_value_on_threads_and_a_symbolic_batch(monkeypatch):
    """Large enough for the OpenMP region; one compiled function at several batch sizes."""
    x = G.tensor4("x", dtype="float32")
    infer = G.function([x], G.max_pool2d(x, (2, 2)))
    reference = G.function([x], G.max_pool2d(x, (2, 2)), backend="py")
    rng = np.random.default_rng(3)
    for n in (64, 1, 5):
        xv = rng.standard_normal((n, 16, 28, 28)).astype("float32")
        np.testing.assert_array_equal(infer(xv), reference(xv))


ONNX_POOLS = [dict(kernel_shape=[2, 2], strides=[2, 2]),
              dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
              dict(kernel_shape=[3, 2], strides=[1, 2], pads=[1, 0, 1, 0])]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("attrs", ONNX_POOLS, ids=[str(a) for a in ONNX_POOLS])
def test_imported_max_pool_matches_onnxruntime(attrs, dtype):
    M = pytest.importorskip("onnx_models")
    GO = pytest.importorskip("graphc.onnx")
    from onnx import TensorProto, helper as oh
    elem = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}[dtype]
    node = oh.make_node("MaxPool", ["x"], ["y"], **attrs)
    g = oh.make_graph([node], "g", [oh.make_tensor_value_info("x", elem, ["n", 5, 13, 12])],
                      [oh.make_tensor_value_info("y", elem, ["n", 5, "h", "w"])])
    model = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    m = GO.load(model)
    f = G.function(m.inputs, m.outputs[0])
    assert _kinds(f.program.program) == ["pool_max_value"]
    x = np.random.default_rng(0).standard_normal((7, 5, 13, 12)).astype(dtype)
    want = M.reference_run(model, {"x": x})[0]
    np.testing.assert_allclose(f(x), want, rtol=1e-5, atol=0)


def test_imported_lenet_at_batch_64_matches_onnxruntime():
    """The model bench/onnx_inference.py times, at its batch: both pools run as pool_max_value."""
    torch = pytest.importorskip("torch", reason="PyTorch exports the model (pip install 'graphc[bench]')")
    M = pytest.importorskip("onnx_models")
    import onnx
    import torch_models as TM
    GO = pytest.importorskip("graphc.onnx")
    torch.manual_seed(0)
    model = onnx.load_from_string(TM.export(TM.LeNet(), (2, 1, 28, 28)))
    m = GO.load(model)
    f = G.function(m.inputs, m.outputs[0])
    assert _kinds(f.program.program).count("pool_max_value") == 2
    assert "pool_max" not in _kinds(f.program.program)
    x = np.random.default_rng(0).standard_normal((64, 1, 28, 28)).astype("float32")
    want = M.reference_run(model, {"x": x})[0]
    scale = float(np.abs(want).max())
    assert float(np.abs(f(x) - want).max()) <= 1e-5 * scale
