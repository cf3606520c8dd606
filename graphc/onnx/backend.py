"""graphc as an ONNX backend (onnx.backend.base.Backend): prepare, run_model, run_node,
supports_device, so ONNX's own test machinery can drive graphc.

    import graphc.onnx.backend as backend
    rep = backend.prepare(model)           # imports and compiles (target "c"; target="py" too)
    outputs = rep.run([x])                 # or {"x": x}
"""
import numpy as np
from onnx import helper
from onnx.backend.base import Backend, BackendRep

from ..compiler import function
from .importer import load
from .proto import DTYPE_TO_ELEM, OnnxError, OnnxUnsupported


NEEDS_VALUE = "must be known when the model loads"


def _is_single_value(vi):
    dims = vi.type.tensor_type.shape.dim
    return all(d.HasField("dim_value") and d.dim_value == 1 for d in dims)


class GraphcRep(BackendRep):
    """A compiled model: run(inputs) -> tuple of numpy arrays in the model's output order.

    A model that takes shapes or axes as integer inputs (ONNX's node tests do) cannot compile
    before their values are known: such a rep imports and compiles at run, once per distinct
    value of those inputs (as TVM's freeze_params does)."""

    def __init__(self, proto, target="c"):
        self.proto, self.target, self.variants = proto, target, {}
        self.input_names = [i.name for i in proto.graph.input
                            if i.name not in {t.name for t in proto.graph.initializer}]
        try:
            self.model = load(proto)
        except OnnxUnsupported as e:
            if not all(NEEDS_VALUE in p for p in e.problems):
                raise
            self.model, self.fn = None, None
            # integer and bool inputs, and single-value float ones (Pad's constant_value)
            # and any input a problem names as needed at load time (Resize's scales)
            self.int_inputs = [i.name for i in proto.graph.input
                               if i.type.tensor_type.elem_type in (6, 7, 9)
                               or _is_single_value(i)
                               or any(repr(i.name) in p for p in e.problems)]
            return
        self.fn = function(self.model.inputs, list(self.model.outputs), backend=target)

    def _specialized(self, args):
        fixed = {n: a for n, a in zip(self.input_names, args) if n in self.int_inputs}
        key = tuple((n, a.dtype.str, a.shape, a.tobytes()) for n, a in sorted(fixed.items()))
        if key not in self.variants:
            model = load(self.proto, static_inputs=fixed)
            self.variants[key] = (model, function(model.inputs, list(model.outputs),
                                                  backend=self.target))
        model, fn = self.variants[key]
        kept = [(n, a) for n, a in zip(self.input_names, args) if n not in fixed]
        return model, fn, [a for _, a in kept], [n for n, _ in kept]

    def run(self, inputs, **kwargs):
        names = self.input_names
        if isinstance(inputs, dict):
            missing = [n for n in names if n not in inputs]
            if missing:
                raise OnnxError(f"run: inputs {missing} are missing (the model takes {names})")
            inputs = [inputs[n] for n in names]
        elif isinstance(inputs, np.ndarray):
            inputs = [inputs]
        inputs = list(inputs)
        if len(inputs) != len(names):
            raise OnnxError(f"run: the model takes {len(names)} inputs {names}, got {len(inputs)}")
        args = [np.asarray(a) for a in inputs]
        model = self.model
        if self.fn is None:
            model, fn, args, names = self._specialized(args)
        else:
            fn, names = self.fn, self.input_names
        # float16 and bfloat16 compute in float32 (proto.py): cast at the boundary
        narrow_in = set(model.float16_inputs) | set(model.bfloat16_inputs)
        args = [a.astype("float32") if n in narrow_in else a for n, a in zip(names, args)]
        outs = [np.asarray(o) for o in fn(*args)]
        return tuple(o.astype("float16") if n in model.float16_outputs
                     else o.astype(_bfloat16()) if n in model.bfloat16_outputs else o
                     for n, o in zip(model.output_names, outs))


def _bfloat16():
    """numpy's bfloat16 (ml_dtypes, which onnx itself needs for bfloat16 tensors)."""
    import ml_dtypes
    return ml_dtypes.bfloat16


class GraphcBackend(Backend):
    @classmethod
    def prepare(cls, model, device="CPU", target="c", **kwargs):
        if not cls.supports_device(device):
            raise OnnxError(f"graphc's ONNX backend runs on the CPU, not {device!r}")
        return GraphcRep(model, target)

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, **kwargs):
        inputs = [np.asarray(a) for a in inputs]
        in_names = [n for n in node.input if n]
        vis = []
        for name, a in zip(in_names, inputs):
            if a.dtype.name not in DTYPE_TO_ELEM:
                raise OnnxError(f"run_node: input {name!r} of dtype {a.dtype} has no graphc dtype")
            vis.append(helper.make_tensor_value_info(name, DTYPE_TO_ELEM[a.dtype.name], a.shape))
        outs = [helper.make_tensor_value_info(n, 0, None) for n in node.output if n]
        graph = helper.make_graph([node], "run_node", vis, outs)
        opset = kwargs.get("opset_version", 17)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        return cls.prepare(model, device, **{k: v for k, v in kwargs.items()
                                             if k != "opset_version"}).run(inputs)

    @classmethod
    def supports_device(cls, device):
        return str(device).upper().startswith("CPU")


prepare = GraphcBackend.prepare
run_model = GraphcBackend.run_model
run_node = GraphcBackend.run_node
supports_device = GraphcBackend.supports_device
