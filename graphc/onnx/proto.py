"""Reading ONNX protobuf messages into Python values, treating every field as hostile: element
types graphc has no dtype for, tensors whose byte count disagrees with their shape, external data
that points outside the model's folder, attributes of an unexpected kind."""
import os

import numpy as np

from ..errors import GraphcError

# ONNX TensorProto element types graphc has a dtype for (graphc.ir.types.DTYPES).
ELEM_TO_DTYPE = {1: "float32", 11: "float64", 6: "int32", 7: "int64", 9: "bool"}
DTYPE_TO_ELEM = {v: k for k, v in ELEM_TO_DTYPE.items()}
# float16 and bfloat16 have no graphc dtype: such a model computes in float32. Its initializers
# and constants are widened when read, its float16 / bfloat16 inputs and outputs are float32
# variables (the backend casts at the boundary: OnnxModel.float16_inputs/float16_outputs,
# bfloat16_inputs/bfloat16_outputs), and a Cast to either inside the graph is a cast to float32
# (values are not rounded to the narrow type's precision).
FLOAT16, BFLOAT16 = 10, 16
ELEM_TO_DTYPE[FLOAT16] = ELEM_TO_DTYPE[BFLOAT16] = "float32"
DTYPE_TO_ELEM["float16"] = FLOAT16
STORED_ITEMSIZE = {FLOAT16: 2, BFLOAT16: 2}   # bytes per element in the file, where not the dtype's own
QUANTIZED = {2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16"}
ELEM_NAMES = {0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16",
              6: "INT32", 7: "INT64", 8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE",
              12: "UINT32", 13: "UINT64", 14: "COMPLEX64", 15: "COMPLEX128", 16: "BFLOAT16"}
MAX_TENSOR_BYTES = 1 << 34  # 16 GiB: a declared shape above this is a malformed file


class OnnxError(GraphcError, ValueError):
    """An ONNX model graphc cannot take: malformed, or using what graphc does not support. The
    message names the node (or initializer, input) and what to do next."""


class OnnxUnsupported(OnnxError):
    """The model uses operators, opsets, attributes or types graphc does not support; `problems`
    lists every one (type, opset, node name, why), not just the first."""

    def __init__(self, problems):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the ONNX model uses {len(self.problems)} thing(s) graphc does not "
                         f"support:\n{lines}\nExport the model with opset 13 or newer and only the "
                         "operators graphc.onnx.supported_ops() lists (python -m "
                         "graphc.onnx.conformance shows how each is covered), or file an issue "
                         "with the model.")


class UnsupportedType(OnnxError):
    """An element type graphc has no dtype for (the importer lists these with the rest)."""


# Why sequence, map and optional values are refused (inputs, outputs, and the operators on them).
NOT_TENSORS = ("graphc compiles tensors whose shapes are fixed when a call starts, while a "
               "sequence's length and element shapes (or whether an optional is empty) may change "
               "at run time; export the model with tensors in their place")
NOT_TENSOR_OPS = ("SequenceConstruct", "SequenceEmpty", "SequenceAt", "SequenceInsert",
                  "SequenceErase", "SequenceLength", "SequenceMap", "SplitToSequence",
                  "ConcatFromSequence", "Optional", "OptionalHasElement", "OptionalGetElement")


def elem_name(elem):
    if elem in ELEM_NAMES:
        return ELEM_NAMES[elem]
    try:  # the newer types (float8, int4, ...) by onnx's own names
        from onnx import TensorProto
        return TensorProto.DataType.Name(elem)
    except (ImportError, ValueError):
        return f"type {elem}"


def dtype_of_elem(elem, what):
    if elem not in ELEM_TO_DTYPE:
        hint = ("; a quantized model (int8/uint8 tensors, QuantizeLinear, QLinear* ops) must be "
                "dequantized to float first: graphc computes in float32/float64"
                if elem in QUANTIZED else "")
        raise UnsupportedType(f"{what}: element type {elem_name(elem)} has no graphc dtype (graphc "
                              "has float32, float64, int32, int64, bool, and reads float16 and bfloat16 as "
                              f"float32); convert the model's tensors first{hint}")
    return ELEM_TO_DTYPE[elem]


def tensor_to_numpy(t, what, base_dir=None):
    """A TensorProto's value as a numpy array of a graphc dtype (a fresh, writable copy)."""
    from onnx import numpy_helper
    dtype = dtype_of_elem(t.data_type, what)
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        raise OnnxError(f"{what}: negative dimension in shape {dims}")
    count = int(np.prod(dims, dtype=object)) if dims else 1
    if count * np.dtype(dtype).itemsize > MAX_TENSOR_BYTES:
        raise OnnxError(f"{what}: declared shape {dims} is larger than 16 GiB; the file is malformed")
    if t.data_location == 1:  # EXTERNAL
        _load_external(t, what, base_dir)
    itemsize = STORED_ITEMSIZE.get(t.data_type, np.dtype(dtype).itemsize)
    if t.HasField("raw_data") and len(t.raw_data) != count * itemsize:
        raise OnnxError(f"{what}: raw data holds {len(t.raw_data)} bytes but shape {dims} of "
                        f"{elem_name(t.data_type)} needs {count * itemsize}; the file is "
                        "truncated or corrupt")
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:  # noqa: BLE001  (a malformed proto can fail in many ways)
        raise OnnxError(f"{what}: cannot read the tensor's data ({type(e).__name__}: {e})") from None
    if arr.size != count:
        raise OnnxError(f"{what}: holds {arr.size} values but its shape {dims} needs {count}")
    return np.array(arr, dtype=dtype, copy=True).reshape(dims)


def _load_external(t, what, base_dir):
    """Load external data only from a plain file inside the model's folder."""
    from onnx import external_data_helper
    info = {e.key: e.value for e in t.external_data}
    loc = info.get("location", "")
    if base_dir is None:
        raise OnnxError(f"{what}: the tensor's data is in an external file ({loc!r}), which needs "
                        "the model loaded from a path: graphc.onnx.load('model.onnx')")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, loc))
    if not loc or os.path.isabs(loc) or os.path.commonpath([root, path]) != root \
            or not os.path.isfile(path):
        raise OnnxError(f"{what}: external data location {loc!r} is not a file inside the model's "
                        f"folder {root}")
    try:
        external_data_helper.load_external_data_for_tensor(t, root)
    except Exception as e:  # noqa: BLE001
        raise OnnxError(f"{what}: cannot read external data {loc!r} ({e})") from None
    t.data_location = 0
    del t.external_data[:]


def attribute_value(a, what, base_dir=None):
    """An AttributeProto as a Python value (float, int, bytes->str, list, numpy array)."""
    kind = a.type
    if kind == 1:
        return float(a.f)
    if kind == 2:
        return int(a.i)
    if kind == 3:
        return a.s.decode("utf-8", "replace")
    if kind == 4:
        return tensor_to_numpy(a.t, f"{what} attribute {a.name}", base_dir)
    if kind == 5:
        return a.g  # a subgraph (If's branches, Loop's and Scan's bodies): converted by its op
    if kind == 6:
        return [float(v) for v in a.floats]
    if kind == 7:
        return [int(v) for v in a.ints]
    if kind == 8:
        return [s.decode("utf-8", "replace") for s in a.strings]
    raise OnnxError(f"{what}: attribute {a.name} is of a kind graphc does not read "
                    f"(graphs, sparse tensors, types); the operator is unsupported here")


def value_info_type(vi, what):
    """(dtype, shape entries) of a graph input/output: entries are ints, dim_param strings or
    None (unknown)."""
    tt = vi.type
    if tt.WhichOneof("value") != "tensor_type":
        kind = {"sequence_type": "a sequence", "map_type": "a map",
                "optional_type": "an optional", "sparse_tensor_type": "a sparse tensor"}.get(
                    tt.WhichOneof("value"), "not a tensor")
        raise UnsupportedType(f"{what} {vi.name!r} is {kind}: {NOT_TENSORS}")
    dtype = dtype_of_elem(tt.tensor_type.elem_type, f"{what} {vi.name!r}")
    if not tt.tensor_type.HasField("shape"):
        raise OnnxError(f"{what} {vi.name!r}: has no shape; graphc needs each input's rank (give "
                        "dims as numbers or names, e.g. with onnx.tools.update_model_dims)")
    dims = []
    for d in tt.tensor_type.shape.dim:
        which = d.WhichOneof("value")
        if which == "dim_value":
            if d.dim_value < 0:
                raise OnnxError(f"{what} {vi.name!r}: negative dimension {d.dim_value}")
            dims.append(int(d.dim_value))
        elif which == "dim_param" and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dtype, dims
