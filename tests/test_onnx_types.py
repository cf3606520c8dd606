"""Element and value types graphc has no tensors for (graphc/onnx/proto.py): float16 and
bfloat16 models compute in float32 (initializers widened when read, inputs and outputs cast at the backend's
boundary), quantized (int8/uint8) tensors and sequences/optionals are refused with the reason,
every one of them listed at once."""
import numpy as np
import pytest

import onnx_models as M
import graphc as G

GO = pytest.importorskip("graphc.onnx")
from onnx import TensorProto, helper as oh, numpy_helper as nh  # noqa: E402

from graphc.onnx import backend  # noqa: E402
from graphc.onnx.proto import OnnxError, OnnxUnsupported  # noqa: E402

H = TensorProto.FLOAT16


def _half_mlp():
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((4, 3)) * 0.5).astype("float16")
    b = rng.standard_normal(3).astype("float16")
    nodes = [oh.make_node("MatMul", ["x", "w"], ["h"]), oh.make_node("Add", ["h", "b"], ["z"]),
             oh.make_node("Relu", ["z"], ["y"])]
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", H, ["n", 4])],
                      [oh.make_tensor_value_info("y", H, ["n", 3])],
                      initializer=[nh.from_array(w, "w"), nh.from_array(b, "b")])
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)]), w, b


def test_float16_model_computes_in_float32_with_casts_at_the_boundary():
    model, w, b = _half_mlp()
    m = GO.load(model)
    assert m.inputs[0].dtype == "float32" and m.params["w"].dtype == "float32"
    assert m.float16_inputs == ["x"] and m.float16_outputs == ["y"]
    np.testing.assert_array_equal(m.params["w"].get_value(), w.astype("float32"))
    x = np.random.default_rng(1).standard_normal((5, 4)).astype("float16")
    (y,) = backend.prepare(model, target="py").run([x])
    assert y.dtype == np.float16
    want = np.maximum(x.astype("float32") @ w.astype("float32") + b.astype("float32"), 0)
    np.testing.assert_array_equal(y, want.astype("float16"))
    ort = M.reference_run(model, {"x": x})[0]   # onnxruntime rounds in float16 as it goes
    np.testing.assert_allclose(y.astype("float32"), ort.astype("float32"), rtol=4e-3, atol=4e-3)
    # the graphc model itself trains in float32
    f = G.function(m.inputs, G.grad(m.outputs[0].sum(), [m.params["w"]]), backend="py")
    assert f(x.astype("float32"))[0].dtype == np.float32


def test_bfloat16_model_computes_in_float32_with_casts_at_the_boundary():
    """A bfloat16 model (its weights as written by a bf16 training run) as the float16 one: the
    weights widen exactly, x and y are bfloat16 at the backend's boundary, the graph float32; a
    truncated bfloat16 initializer is a clear error."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf16 = ml_dtypes.bfloat16
    rng = np.random.default_rng(0)
    w, b = (rng.standard_normal((4, 3)) * 0.5).astype(bf16), rng.standard_normal(3).astype(bf16)
    nodes = [oh.make_node("MatMul", ["x", "w"], ["h"]), oh.make_node("Add", ["h", "b"], ["z"]),
             oh.make_node("Relu", ["z"], ["y"])]
    B = TensorProto.BFLOAT16
    g = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", B, ["n", 4])],
                      [oh.make_tensor_value_info("y", B, ["n", 3])],
                      initializer=[nh.from_array(w, "w"), nh.from_array(b, "b")])
    model = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    m = GO.load(model)
    assert m.inputs[0].dtype == "float32" and m.params["w"].dtype == "float32"
    assert m.bfloat16_inputs == ["x"] and m.bfloat16_outputs == ["y"] and m.float16_inputs == []
    np.testing.assert_array_equal(m.params["w"].get_value(), w.astype("float32"))
    x = rng.standard_normal((5, 4)).astype(bf16)
    for target in ("c", "py"):
        (y,) = backend.prepare(model, target=target).run([x])
        assert y.dtype == bf16
        want = np.maximum(x.astype("float32") @ w.astype("float32") + b.astype("float32"), 0)
        np.testing.assert_array_equal(y.astype("float32"), want.astype(bf16).astype("float32"))
    t = model.graph.initializer[0]
    t.raw_data = t.raw_data[:-2]
    with pytest.raises(OnnxError, match=r"raw data holds 22 bytes but shape \[4, 3\] of BFLOAT16 "
                                        r"needs 24"):
        GO.load(model, check=False)


def test_truncated_float16_initializer_is_a_clear_error():
    model, _, _ = _half_mlp()
    t = model.graph.initializer[0]
    t.raw_data = t.raw_data[:-2]
    with pytest.raises(OnnxError, match=r"raw data holds 22 bytes but shape \[4, 3\] of FLOAT16 "
                                        r"needs 24"):
        GO.load(model, check=False)


def test_quantized_tensors_and_sequences_are_refused_all_at_once_with_reasons():
    q = nh.from_array(np.arange(6, dtype="int8").reshape(2, 3), "q")
    nodes = [oh.make_node("DequantizeLinear", ["q", "scale"], ["wq"]),
             oh.make_node("SequenceAt", ["seq", "zero"], ["t"]),
             oh.make_node("Add", ["t", "wq"], ["y"])]
    g = oh.make_graph(nodes, "g",
                      [oh.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                       oh.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, [2, 3])],
                      [oh.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
                      initializer=[q, nh.from_array(np.float32(0.5), "scale"),
                                   nh.from_array(np.int64(0), "zero")])
    model = oh.make_model(g, opset_imports=[oh.make_opsetid("", 17)])
    with pytest.raises(OnnxUnsupported) as e:
        GO.load(model)
    text = "\n".join(e.value.problems)
    assert "initializer 'q': element type INT8" in text and "dequantized to float" in text
    assert "input 'seq' is a sequence" in text
    assert "DequantizeLinear" in text
