"""graphc.onnx.load: an ONNX model (a ModelProto, a path or bytes) -> graphc variables.

The model is hostile input: the bytes are parsed by protobuf and checked by onnx's checker,
every tensor's size is checked against its shape, and everything graphc cannot take (operators,
opsets, attributes, element types) is collected over the whole graph and reported in one
OnnxUnsupported error. Values known at load time (initializers read as shapes or axes, Constant
nodes, Shape -> Gather -> Concat chains) stay numpy arrays (object arrays when they hold
symbolic dims) and are folded as the graph is read; everything else becomes graphc graph.
"""
import os
import re

import numpy as np
import sympy

from ..errors import GraphcError
from ..ir.constructors import constant, shared, tensor
from ..ir.graph import Variable
from ..ir.ops.shape import concatenate, dim_value, reshape
from ..ir.types import dim
from . import proto as P
from .masked_slice import MaskedSlice
from .node import NodeView, is_static, is_symbolic
from .registry import CONVERTERS, MAX_OPSET, MIN_OPSET, Unsupported, _load_all

MAX_FILE_BYTES = 1 << 31  # protobuf's own limit on one message


class OnnxModel:
    """An imported model: `inputs` and `outputs` (graphc variables, in the model's order),
    `params` (float initializers used as tensors, as shared variables by name), `trainable`
    (the params less batch norm's running mean and variance, which fine-tuning keeps),
    `aliases` ({name: initializer name} for each Identity of a float initializer: without
    untie, m.params[initializer name] is the one variable both names read; with untie, the
    Identity's output is a parameter of its own in m.params, started from a copy)."""

    def __init__(self, inputs, outputs, params, input_names, output_names, opset, producer,
                 running_stats=(), float16_inputs=(), float16_outputs=(), aliases=None,
                 bfloat16_inputs=(), bfloat16_outputs=()):
        self.inputs, self.outputs, self.params = inputs, outputs, params
        self.trainable = [p for name, p in params.items() if name not in set(running_stats)]
        self.aliases = dict(aliases or {})
        self.input_names, self.output_names = input_names, output_names
        self.opset, self.producer = opset, producer
        # float16 / bfloat16 in the model, float32 in graphc (proto.py): cast these at the boundary
        self.float16_inputs, self.float16_outputs = list(float16_inputs), list(float16_outputs)
        self.bfloat16_inputs, self.bfloat16_outputs = list(bfloat16_inputs), list(bfloat16_outputs)

    def __repr__(self):
        ins = ", ".join(f"{v.name}: {v.type}" for v in self.inputs)
        outs = ", ".join(f"{n}: {v.type}" for n, v in zip(self.output_names, self.outputs))
        return f"<OnnxModel opset {self.opset} ({ins}) -> ({outs}), {len(self.params)} params>"


def read_model(source):
    """(ModelProto, folder for external data or None) from a ModelProto, path or bytes."""
    import onnx
    if isinstance(source, onnx.ModelProto):
        m = onnx.ModelProto()
        m.CopyFrom(source)  # external data is loaded into the copy, never into the caller's
        return m, None
    if isinstance(source, (bytes, bytearray)):
        return _parse(bytes(source), "the bytes given"), None
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise P.OnnxError(f"graphc.onnx.load: no file {path!r}")
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise P.OnnxError(f"graphc.onnx.load: {path!r} is {size} bytes, over protobuf's 2 GiB "
                              "limit; save the weights as external data")
        with open(path, "rb") as f:
            data = f.read()
        return _parse(data, path), os.path.dirname(os.path.abspath(path))
    raise P.OnnxError(f"graphc.onnx.load: expected an onnx.ModelProto, a path or bytes, got "
                      f"{type(source).__name__}")


def _parse(data, what):
    import onnx
    m = onnx.ModelProto()
    try:
        m.ParseFromString(data)
    except Exception as e:  # noqa: BLE001  (protobuf raises DecodeError and others)
        raise P.OnnxError(f"graphc.onnx.load: {what} is not a valid ONNX file (truncated or "
                          f"corrupt: {type(e).__name__}: {e})") from None
    if not m.HasField("graph"):
        raise P.OnnxError(f"graphc.onnx.load: {what} holds no graph (not an ONNX model, or empty)")
    return m


def default_opset(model):
    versions = {o.domain: o.version for o in model.opset_import}
    for domain in ("", "ai.onnx"):
        if domain in versions:
            return int(versions[domain])
    return None


def dim_name(name):
    """An ONNX dim_param as a graphc dim name (an identifier, never one of graphc's fresh dims)."""
    s = re.sub(r"\W", "_", name)
    if not s or s[0].isdigit() or s.startswith("_"):
        s = "d" + s
    return s


def load(source, check=True, static_inputs=None, untie=False):
    """Import an ONNX model; see graphc.onnx.load. static_inputs: {graph input name: value} for
    inputs whose values are fixed (shapes, axes given as inputs): they are read at load time.
    untie: an Identity of a float initializer is a parameter of its own (else the same one)."""
    import onnx
    _load_all()
    model, base_dir = read_model(source)
    if check:
        try:
            onnx.checker.check_model(model)
        except Exception as e:  # noqa: BLE001  (ValidationError, or protobuf errors)
            raise P.OnnxError(f"graphc.onnx.load: the model fails onnx's checker: "
                              f"{str(e).strip().splitlines()[0] if str(e).strip() else e}") from None
    return Importer(model, base_dir, static_inputs, untie).run()


class Importer:
    def __init__(self, model, base_dir, static_inputs=None, untie=False):
        self.static_inputs = dict(static_inputs or {})
        self.untie = bool(untie)
        self.model, self.graph, self.base_dir = model, model.graph, base_dir
        self.opset = default_opset(model)
        self.values = {}        # name -> Variable or numpy array (known at load time)
        self.initializers = {}  # name -> numpy array, materialized as shared on first tensor use
        self.params = {}
        self.materialized = {}  # name -> Variable made from a load-time value
        self.running_stats = set()  # batch norm's mean/var initializers (not trained)
        # Identity copies of trainable initializers: name -> the initializer it reads. Tied (the
        # default), the copy is the initializer's shared variable; untied, a parameter of its own.
        self.aliases = {}
        self.param_reads, self.stat_reads = set(), set()   # names read as parameters / statistics
        self.poisoned = set()   # outputs of nodes that could not be converted
        self.problems = []
        self.index = 0
        self.streams = {}       # seed -> RandomStreams of training-mode Dropout nodes
        self.in_loop_body = False  # inside a Loop/Scan body (subgraph.py)

    def random_streams(self, seed=None):
        from ..ir.ops.random import RandomStreams
        key = 0 if seed is None else int(seed)
        if key not in self.streams:
            self.streams[key] = RandomStreams(seed=key, name=f"onnx_rng_counter_{key}")
        return self.streams[key]

    # --- values ------------------------------------------------------------------------------
    def value_of(self, name):
        if name in self.values:
            v = self.values[name]
            if isinstance(v, MaskedSlice):
                raise Unsupported(v.refusal(name))
            return v
        if name in self.initializers:
            return self.initializers[name]
        raise P.OnnxError(f"graphc.onnx.load: value {name!r} is used before any node, input or "
                          "initializer defines it (a missing initializer?)")

    def masked(self, name):
        """The MaskedSlice `name` holds (a slice whose length changes per loop step), or None."""
        v = self.values.get(name)
        return v if isinstance(v, MaskedSlice) else None

    def static_value(self, name):
        v = self.value_of(name)
        return v if is_static(v) else None

    def variable(self, name):
        v = self.value_of(name)
        if isinstance(v, Variable):
            return v
        if self.is_param(name):
            self.param_reads.add(name)
        if self.param_of(name) != name:
            return self.variable(self.param_of(name))   # the initializer's own shared variable
        if name not in self.materialized:
            if self.is_param(name):  # shared copies the value: an untied copy is its own
                self.params[name] = self.materialized[name] = shared(v, name=name)
            elif self.is_initializer(name):
                self.materialized[name] = constant(v, name=name)
            else:
                self.materialized[name] = static_to_variable(v)
        return self.materialized[name]

    def is_param(self, name):
        """name holds a trainable value: a float initializer, or an Identity copy of one. Such a
        value is read as a shared variable and never folded at load time (that would cut the
        gradient's path to the parameter and freeze what an update writes)."""
        if name in self.aliases:
            return True
        return self.is_initializer(name) and self.value_of(name).dtype.kind == "f"

    def param_of(self, name):
        """The name of the parameter `name` reads: tied, the initializer an Identity copy reads;
        else name itself."""
        return name if self.untie else self.aliases.get(name, name)

    def alias(self, out_name, in_name):
        """out_name is Identity(in_name): where in_name is trainable, out_name reads the same
        parameter (or, untied, a copy that becomes a parameter of its own)."""
        if out_name and self.is_param(in_name):
            self.aliases[out_name] = self.param_of(in_name)

    def foldable(self, names):
        """Every input known at load time, and no parameter among them (a parameter is
        trained, so its value must stay a variable)."""
        for n in names:
            if self.masked(n) is not None:
                return False
            v = self.value_of(n)
            if not is_static(v) or self.is_param(n):
                return False
        return True

    def is_initializer(self, name):
        """name is an initializer of this graph (not shadowed by a node's output)."""
        return name in self.initializers and name not in self.values

    # --- the pass over the graph ---------------------------------------------------------------
    def run(self):
        self._check_opsets()
        self.read_initializers()
        inputs, input_names = [], []
        for vi in self.graph.input:
            if vi.name in self.initializers or vi.name in self.poisoned:
                continue  # IR < 4: initializers listed as inputs are defaults, i.e. parameters
            try:
                dtype, dims = P.value_info_type(vi, "input")
            except P.UnsupportedType as e:
                self.problems.append(str(e))
                self.poisoned.add(vi.name)
                continue
            if vi.name in self.static_inputs:
                self.values[vi.name] = np.array(self.static_inputs.pop(vi.name), dtype=dtype)
                continue
            shape = [dim(dim_name(d)) if isinstance(d, str) else d for d in dims]
            var = tensor(vi.name, shape, dtype)
            self.values[vi.name] = var
            inputs.append(var)
            input_names.append(vi.name)
        if self.static_inputs:
            raise P.OnnxError(f"graphc.onnx.load: static_inputs {sorted(self.static_inputs)} are "
                              f"not inputs of the model (its inputs: {[i.name for i in self.graph.input]})")
        for k, node in enumerate(self.graph.node):
            self.index = k
            self._convert(node)
        if self.problems:
            raise P.OnnxUnsupported(self.problems)
        outputs, output_names = [], []
        for vi in self.graph.output:
            var = self.variable(vi.name)
            if var.name is None:
                var.name = vi.name
            outputs.append(var)
            output_names.append(vi.name)
        producer = f"{self.model.producer_name} {self.model.producer_version}".strip()
        self._warn_merged_statistics()
        ins, outs = (self.graph.input, input_names), (self.graph.output, output_names)
        return OnnxModel(inputs, outputs, self.params, input_names, output_names, self.opset,
                         producer, self.running_stats, aliases=self.aliases,
                         float16_inputs=_of_elem(*ins, P.FLOAT16), float16_outputs=_of_elem(*outs, P.FLOAT16),
                         bfloat16_inputs=_of_elem(*ins, P.BFLOAT16), bfloat16_outputs=_of_elem(*outs, P.BFLOAT16))

    def _warn_merged_statistics(self):
        """Tied, one tensor read both as a batch norm running statistic and as a parameter is a
        sign of PyTorch's eval-mode export, which merges tensors that are equal when exported;
        m.trainable leaves it out (training it would move the statistic): say how to split it."""
        stats = {self.param_of(n) for n in self.stat_reads}
        merged = sorted(stats & {self.param_of(n) for n in self.param_reads - self.stat_reads})
        if merged:
            import warnings
            shown = ", ".join(repr(n) for n in merged[:4]) + (" ..." if len(merged) > 4 else "")
            warnings.warn(f"graphc.onnx.load: {len(merged)} initializer(s) ({shown}) are read both "
                          "as batch norm running statistics and as parameters (through Identity "
                          "copies, as PyTorch's eval-mode export merges equal tensors); they are "
                          "left out of m.trainable. To fine-tune, load with untie=True or export "
                          "with training=torch.onnx.TrainingMode.TRAINING", stacklevel=5)

    def read_initializers(self):
        for t in self.graph.initializer:
            try:
                self.initializers[t.name] = P.tensor_to_numpy(t, f"initializer {t.name!r}",
                                                              self.base_dir)
            except P.UnsupportedType as e:
                self.problems.append(str(e))
                self.poisoned.add(t.name)
        if len(self.graph.sparse_initializer):
            self.problems.append("sparse initializers are not supported")

    def _check_opsets(self):
        if self.opset is None:
            raise P.OnnxUnsupported(["the model imports no default-domain opset"])
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise P.OnnxUnsupported([f"opset {self.opset}: graphc imports opsets {MIN_OPSET} to "
                                     f"{MAX_OPSET} (convert with onnx.version_converter)"])

    def _problem(self, node, text):
        name = node.name or f"#{self.index}"
        self.problems.append(f"{node.op_type} (opset {self.opset}) node {name!r}: {text}")

    def _convert(self, node):
        conv = CONVERTERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if conv is None:
            domain = f" of domain {node.domain!r}" if node.domain not in ("", "ai.onnx") else ""
            why = f": it makes or reads sequences or optionals, and {P.NOT_TENSORS}" \
                if node.op_type in P.NOT_TENSOR_OPS and not domain else ""
            self._problem(node, f"operator{domain} not supported{why}")
            self.poisoned.update(node.output)
            return
        attrs, bad = {}, []
        for a in node.attribute:
            if a.name not in conv.attrs:
                bad.append(a.name)
                continue
            try:
                attrs[a.name] = P.attribute_value(a, f"{node.op_type} node {node.name!r}", self.base_dir)
            except P.OnnxError as e:
                bad.append(f"{a.name} ({e})")
        if bad:
            self._problem(node, f"attribute(s) {', '.join(bad)} not supported")
        if bad or any(i in self.poisoned for i in node.input):
            self.poisoned.update(node.output)
            return
        view = NodeView(node, attrs, self)
        try:
            present = [i for i in node.input if i]
            if conv.fold is not None and self.foldable(present):
                outs = conv.fold(view)
            else:
                outs = None
            if outs is None:
                outs = conv.fn(view)
        except (Unsupported, P.UnsupportedType) as e:
            self._problem(node, str(e))
            self.poisoned.update(node.output)
            return
        except P.OnnxError:
            raise
        except GraphcError as e:
            self._problem(node, f"{type(e).__name__}: {e}")
            self.poisoned.update(node.output)
            return
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        for name, v in zip(node.output, outs):
            if not name:
                continue
            if v is None:
                self._problem(node, f"output {name!r} is not produced by graphc's import")
                self.poisoned.add(name)
                continue
            if isinstance(v, Variable) and v.name is None and v.owner is not None:
                v.name = name
            self.values[name] = v
        for name in node.output[len(outs):]:
            if name:
                self._problem(node, f"output {name!r} is not produced by graphc's import")
                self.poisoned.add(name)


def _of_elem(value_infos, names, elem):
    """The names among `names` whose tensors are of ONNX element type `elem`."""
    wanted = set(names)
    return [vi.name for vi in value_infos if vi.name in wanted
            and vi.type.WhichOneof("value") == "tensor_type"
            and vi.type.tensor_type.elem_type == elem]


def static_to_variable(arr):
    """A load-time value as a graphc variable: a constant, or int64 dims of symbolic sizes."""
    if not is_symbolic(arr):
        if arr.dtype.name not in P.DTYPE_TO_ELEM:
            raise Unsupported(f"a value of dtype {arr.dtype} has no graphc dtype")
        return constant(arr)
    flat = []
    for e in arr.reshape(-1):
        e = int(e) if not isinstance(e, sympy.Basic) or e.is_Integer else e
        flat.append(reshape(dim_value(e), (1,)))
    if not flat:
        return constant(np.zeros(arr.shape, "int64"))
    return reshape(concatenate(flat), arr.shape)
