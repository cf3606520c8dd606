"""graphc.onnx.load treats its input as hostile: malformed and truncated files, missing
initializers, type mismatches, tensors whose data disagrees with their shape, external data
outside the model's folder all give a GraphcError that says what and where, never a crash; and
everything unsupported in a model is listed in one error."""
import numpy as np
import pytest

import onnx_models as M
from onnx_models import F, h, nh, onnx
import graphc as G
import graphc.onnx as GO


def _one_node_model(node, inputs, outputs, inits=(), opset=17):
    g = h.make_graph([node] if not isinstance(node, list) else node, "m", inputs, outputs, list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def test_truncated_and_garbage_files(tmp_path):
    data = M.small_cnn().SerializeToString()
    for k, blob in enumerate([data[: len(data) // 2], data[:7], b"\x00\xff" * 50, b"", b"hello"]):
        p = tmp_path / f"bad{k}.onnx"
        p.write_bytes(blob)
        with pytest.raises(GO.OnnxError) as e:
            GO.load(str(p))
        assert isinstance(e.value, G.GraphcError)
    with pytest.raises(GO.OnnxError, match="no file"):
        GO.load(str(tmp_path / "missing.onnx"))
    with pytest.raises(GO.OnnxError, match="expected an onnx.ModelProto"):
        GO.load(42)


def test_every_unsupported_thing_is_listed_at_once():
    b = M.Builder()
    b.n("Relu", ["x"], "r")
    b.n("Unique", ["r"], "e")                                      # unsupported operator
    b.n("MaxPool", ["x4"], "mp", kernel_shape=[2, 2], storage_order=1)  # unsupported attribute value
    b.n("Softmax", ["r"], "s", axis=1, bogus=3)                    # unknown attribute
    b.nodes.append(h.make_node("Foo", ["r"], ["f"], domain="com.example", name="custom"))
    b.n("Add", ["e", "s"], "out")                                  # depends on failed nodes: quiet
    m = h.make_model(h.make_graph(b.nodes, "m",
                                  [h.make_tensor_value_info("x", F, [2, 3]),
                                   h.make_tensor_value_info("x4", F, [1, 1, 4, 4])],
                                  [h.make_tensor_value_info("out", F, [2, 3]),
                                   h.make_tensor_value_info("mp", F, None)]),
                     opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.example", 1)])
    with pytest.raises(GO.OnnxUnsupported) as e:
        GO.load(m, check=False)
    problems = e.value.problems
    assert len(problems) == 4, problems
    text = str(e.value)
    for part in ("Unique", "storage_order", "bogus", "'custom'", "com.example", "opset 17"):
        assert part in text, (part, text)


def test_unsupported_types_are_listed_with_the_operators():
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Add", ["h", "w"], ["s"]),
             h.make_node("Cast", ["r"], ["c"], to=onnx.TensorProto.FLOAT8E4M3FN),
             h.make_node("Unique", ["r"], ["e"])]
    m = _one_node_model(nodes, [h.make_tensor_value_info("x", F, [2]),
                                h.make_tensor_value_info("h", onnx.TensorProto.COMPLEX64, [2])],
                        [h.make_tensor_value_info(n, F, None) for n in ("s", "c", "e")],
                        [h.make_tensor("w", onnx.TensorProto.UINT8, [2], [1, 2])])
    with pytest.raises(GO.OnnxUnsupported) as e:
        GO.load(m, check=False)
    text = str(e.value)
    assert len(e.value.problems) == 4, e.value.problems
    for part in ("input 'h'", "initializer 'w'", "COMPLEX64", "FLOAT8E4M3FN", "UINT8", "Unique", "Cast"):
        assert part in text, (part, text)


def test_old_opset_is_refused_with_the_fix():
    m = M.mlp()
    m.opset_import[0].version = 11
    with pytest.raises(GO.OnnxUnsupported, match="opset 11.*version_converter"):
        GO.load(m, check=False)


def test_missing_initializer_and_type_mismatch():
    node = h.make_node("Add", ["x", "w"], ["y"])
    m = _one_node_model(node, [h.make_tensor_value_info("x", F, [3])],
                        [h.make_tensor_value_info("y", F, [3])])
    with pytest.raises(GO.OnnxError, match="'w'.*(missing initializer|before any node)"):
        GO.load(m, check=False)
    m = _one_node_model(node, [h.make_tensor_value_info("x", F, [3])],
                        [h.make_tensor_value_info("y", F, [3])],
                        [nh.from_array(np.arange(3, dtype="int64"), "w")])
    with pytest.raises(GO.OnnxUnsupported, match="different dtypes"):
        GO.load(m, check=False)


def test_tensor_data_disagreeing_with_shape():
    t = nh.from_array(np.ones((2, 3), "float32"), "w")
    t.raw_data = t.raw_data[:-4]  # one float short
    m = _one_node_model(h.make_node("Add", ["x", "w"], ["y"]), [h.make_tensor_value_info("x", F, [2, 3])],
                        [h.make_tensor_value_info("y", F, [2, 3])], [t])
    with pytest.raises(GO.OnnxError, match="truncated or corrupt"):
        GO.load(m, check=False)
    t = nh.from_array(np.ones((2, 3), "float32"), "w")
    del t.dims[:]
    t.dims.extend([1 << 40, 1 << 40])
    m.graph.initializer[0].CopyFrom(t)
    with pytest.raises(GO.OnnxError, match="larger than 16 GiB"):
        GO.load(m, check=False)


def test_unsupported_element_type_names_the_input():
    m = _one_node_model(h.make_node("Relu", ["x"], ["y"]),
                        [h.make_tensor_value_info("x", onnx.TensorProto.COMPLEX64, [3])],
                        [h.make_tensor_value_info("y", onnx.TensorProto.COMPLEX64, [3])])
    with pytest.raises(GO.OnnxError, match="input 'x'.*COMPLEX64"):
        GO.load(m)


def test_external_data_must_stay_in_the_model_folder(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(6, "float32").tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    t = nh.from_array(np.zeros((2, 3), "float32"), "w")
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    for loc, ok in (("../secret.bin", False), (str(secret), False), ("w.bin", True)):
        del t.external_data[:]
        t.external_data.add(key="location", value=loc)
        m = _one_node_model(h.make_node("Add", ["x", "w"], ["y"]),
                            [h.make_tensor_value_info("x", F, [2, 3])],
                            [h.make_tensor_value_info("y", F, [2, 3])], [t])
        if ok:
            (folder / "w.bin").write_bytes(np.full(6, 2, "float32").tobytes())
        path = folder / "m.onnx"
        path.write_bytes(m.SerializeToString())
        if ok:
            gm = GO.load(str(path), check=False)
            np.testing.assert_array_equal(gm.params["w"].get_value(), np.full((2, 3), 2, "float32"))
        else:
            with pytest.raises(GO.OnnxError, match="not a file inside the model's folder"):
                GO.load(str(path), check=False)


def test_caller_model_is_not_modified():
    m = M.mlp()
    before = m.SerializeToString()
    GO.load(m)
    assert m.SerializeToString() == before


def test_static_inputs_must_exist():
    with pytest.raises(GO.OnnxError, match="not inputs of the model"):
        GO.load(M.mlp(), static_inputs={"nope": np.int64(1)})
