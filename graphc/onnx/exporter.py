"""graphc.onnx.export: a graphc graph (inputs -> outputs, as declared, before optimization) as
an ONNX model. Elementwise ops are written from their sympy expression, term by term; shared
variables and constants become initializers; symbolic dims become dim_params, and a size
computed from them (a reshape to (batch * 4, 3)) is computed in the model from Shape of an input.
Every op graphc cannot write is listed in one error."""
import numpy as np
import sympy

from ..errors import GraphcError
from ..ir.graph import Constant, SharedVariable, Variable, toposort
from ..ir.ops import scalar_fns as sf
from ..ir.ops.batch_norm_ops import BatchNormTrain
from ..ir.ops.blas import Matmul
from ..ir.ops.conv import Conv2d
from ..ir.ops.elemwise import ARGS, Elemwise
from ..ir.ops.indexing import AdvancedSubtensor
from ..ir.ops.nn import LogSoftmax, Softmax
from ..ir.ops.normalization import LRN
from ..ir.ops.pool import AvgPool2d, MaxPool2d
from ..ir.ops.reduce import Argmax, Reduce
from ..ir.ops.shape import (Arange, Concatenate, DimValue, IncSubtensor, Reshape, Subtensor,
                            Transpose)
from ..ir.ops.loop import Loop
from .export_loop import write_loop
from .proto import DTYPE_TO_ELEM


class OnnxExportError(GraphcError, ValueError):
    """The graph uses ops graphc cannot write as ONNX; the message lists every one."""


_FNS = {"exp": "Exp", "log": "Log", "tanh": "Tanh", "sigmoid": "Sigmoid", "erf": "Erf",
        "relu": "Relu", "absval": "Abs", "sgn": "Sign", "softplus": "Softplus", "sin": "Sin",
        "cos": "Cos", "maximum": "Max", "minimum": "Min", "where": "Where",
        "logical_and": "And", "logical_or": "Or", "logical_xor": "Xor", "logical_not": "Not"}
_REL = {"Equality": "Equal", "StrictLessThan": "Less", "LessThan": "LessOrEqual",
        "StrictGreaterThan": "Greater", "GreaterThan": "GreaterOrEqual"}


class Writer:
    def __init__(self, opset, inline_consts=False):
        from onnx import helper, numpy_helper
        self.h, self.nh, self.opset = helper, numpy_helper, opset
        self.inline_consts = inline_consts  # a subgraph's constants as Constant nodes
        self.nodes, self.inits, self.names, self.used = [], [], {}, set()
        self.dim_sources = {}  # symbol -> (input name, axis)
        self.problems = []

    def fresh(self, base):
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in base) or "v"
        name, k = base, 0
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def node(self, op, inputs, n_out=1, **attrs):
        outs = [self.fresh(f"{op.lower()}") for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value, dtype=None, base="c"):
        arr = np.asarray(value, dtype=dtype)
        name = self.fresh(base)
        if self.inline_consts:
            self.nodes.append(self.h.make_node("Constant", [], [name],
                                               value=self.nh.from_array(arr, name)))
        else:
            self.inits.append(self.nh.from_array(arr, name))
        return name

    def name_of(self, v):
        if v in self.names:
            return self.names[v]
        if isinstance(v, SharedVariable):
            name = self.fresh(v.name or "param")
            self.inits.append(self.nh.from_array(np.asarray(v.get_value()), name))
        elif isinstance(v, Constant):
            name = self.const(v.data, base=v.name or "const")
        elif v.owner is not None:
            raise OnnxExportError(f"output {v.index} of {v.owner.op} (max pooling's argmax: ONNX's "
                                  "MaxPool indices are numbered another way); export without it")
        else:
            raise OnnxExportError(f"export: {v.label()} is a leaf that is not among the inputs; "
                                  "add it to the inputs")
        self.names[v] = name
        return name

    # --- symbolic sizes --------------------------------------------------------------------
    def dim(self, expr):
        """An int64 scalar name holding the (possibly symbolic) size expr."""
        expr = sympy.sympify(expr)
        if expr.is_Integer:
            return self.const(np.int64(int(expr)), base="dim")
        if expr.is_Symbol:
            if expr not in self.dim_sources:
                raise OnnxExportError(f"export: size {expr} is not the size of any input's axis")
            src, axis = self.dim_sources[expr]
            shape = self.node("Shape", [src], start=axis, end=axis + 1)
            return self.node("Squeeze", [shape, self.const(np.array([0], "int64"))])
        if expr.is_Add or expr.is_Mul:
            op = "Add" if expr.is_Add else "Mul"
            parts = [self.dim(a) for a in expr.args]
            out = parts[0]
            for p in parts[1:]:
                out = self.node(op, [out, p])
            return out
        if isinstance(expr, sympy.floor) and isinstance(expr.args[0], sympy.Mul):
            num, den = expr.args[0].as_numer_denom()
            return self.node("Div", [self.dim(num), self.dim(den)])
        raise OnnxExportError(f"export: cannot write the size {expr} as ONNX")

    def shape(self, dims):
        if all(isinstance(d, int) for d in dims):
            return self.const(np.array(dims, "int64"), base="shape")
        parts = [self.node("Unsqueeze", [self.dim(d), self.const(np.array([0], "int64"))])
                 for d in dims]
        return self.node("Concat", parts, axis=0)

    # --- elementwise expressions -------------------------------------------------------------
    def expr(self, e, args, dtype):
        if e in ARGS:
            return args[ARGS.index(e)]
        if isinstance(e, (sympy.Number, sympy.NumberSymbol)) or e in (sympy.true, sympy.false):
            return self.const(np.asarray(float(e) if dtype.startswith("float") else e, dtype))
        name = type(e).__name__
        sub = [a for a in e.args]
        if isinstance(e, sympy.Add) or isinstance(e, sympy.Mul):
            op = "Add" if isinstance(e, sympy.Add) else "Mul"
            out = self.expr(sub[0], args, dtype)
            for a in sub[1:]:
                out = self.node(op, [out, self.expr(a, args, dtype)])
            return out
        if isinstance(e, sympy.Pow):
            base, exp = e.args
            b = self.expr(base, args, dtype)
            if exp == -1:
                return self.node("Reciprocal", [b])
            if exp == sympy.Rational(1, 2):
                return self.node("Sqrt", [b])
            if exp == 2:
                return self.node("Mul", [b, b])
            return self.node("Pow", [b, self.expr(exp, args, dtype)])
        if name in _REL:
            return self.node(_REL[name], [self.expr(a, args, dtype) for a in sub])
        if name == "Unequality":
            return self.node("Not", [self.node("Equal", [self.expr(a, args, dtype) for a in sub])])
        if isinstance(e, sf.Cast):
            return self.node("Cast", [self.expr(sub[0], args, dtype)], to=DTYPE_TO_ELEM[e.dtype])
        if name in ("log1p", "expm1"):
            x = self.expr(sub[0], args, dtype)
            one = self.const(np.asarray(1, dtype))
            if name == "log1p":
                return self.node("Log", [self.node("Add", [x, one])])
            return self.node("Sub", [self.node("Exp", [x]), one])
        if name == "fmod":
            return self.node("Mod", [self.expr(a, args, dtype) for a in sub], fmod=1)
        if name in _FNS:
            ins = [self.expr(a, args, "bool" if name == "where" and k == 0 else dtype)
                   for k, a in enumerate(sub)]
            return self.node(_FNS[name], ins)
        raise OnnxExportError(f"scalar function {name}")

    # --- ops ---------------------------------------------------------------------------------
    def op(self, node):
        op, ins = node.op, [self.name_of(v) for v in node.inputs]
        x = node.inputs[0] if node.inputs else None
        if isinstance(op, Elemwise):
            if op.name == "second":
                # Expand broadcasts both ways: v to the broadcast of both shapes
                return [self.node("Expand", [ins[1], self.node("Shape", [ins[0]])])]
            data = [v.dtype for i, v in enumerate(node.inputs) if i not in op.cond_inputs]
            return [self.expr(op.expr, ins, data[0] if data else "bool")]
        if isinstance(op, Matmul):
            a, b = ins
            if x.ndim == 2:
                return [self.node("Gemm", [a, b], transA=int(op.trans_a), transB=int(op.trans_b))]
            if op.trans_a:
                a = self.node("Transpose", [a], perm=[0, 2, 1])
            if op.trans_b:
                b = self.node("Transpose", [b], perm=[0, 2, 1])
            return [self.node("MatMul", [a, b])]
        if isinstance(op, Reshape):
            return [self.node("Reshape", [ins[0], self.shape(op.shape)])]
        if isinstance(op, Transpose):
            return [self.node("Transpose", ins, perm=list(op.perm))]
        if isinstance(op, Concatenate):
            return [self.node("Concat", ins, axis=op.axis)]
        if isinstance(op, Reduce):
            kind = {"sum": "ReduceSum", "max": "ReduceMax", "min": "ReduceMin", "prod": "ReduceProd"}[op.kind]
            axes = list(op.axes)
            if kind == "ReduceSum" or self.opset >= 18:
                return [self.node(kind, [ins[0], self.const(np.array(axes, "int64"))],
                                  keepdims=int(op.keepdims))]
            return [self.node(kind, ins, axes=axes, keepdims=int(op.keepdims))]
        if isinstance(op, Argmax):
            if op.axis is None:
                flat = self.node("Reshape", [ins[0], self.const(np.array([-1], "int64"))])
                return [self.node("ArgMax", [flat], axis=0, keepdims=int(op.keepdims))]
            return [self.node("ArgMax", ins, axis=op.axis, keepdims=int(op.keepdims))]
        if isinstance(op, (Softmax, LogSoftmax)):
            return [self.node(type(op).__name__, ins, axis=-1)]
        if isinstance(op, Conv2d):
            w = node.inputs[1].type.shape
            return [self.node("Conv", ins, kernel_shape=list(w[2:]), strides=list(op.stride),
                              pads=list(op.padding) * 2, dilations=list(op.dilation), group=op.groups)]
        if isinstance(op, MaxPool2d):
            return [self.node("MaxPool", ins, kernel_shape=list(op.kernel), strides=list(op.stride),
                              pads=list(op.padding) * 2, ceil_mode=int(op.ceil_mode)), None]
        if isinstance(op, AvgPool2d):
            return [self.node("AveragePool", ins, kernel_shape=list(op.kernel),
                              strides=list(op.stride), pads=list(op.padding) * 2,
                              ceil_mode=int(op.ceil_mode), count_include_pad=1)]
        if isinstance(op, LRN):
            return [self.node("LRN", ins, size=op.size, alpha=op.alpha, beta=op.beta, bias=op.k)]
        if isinstance(op, AdvancedSubtensor) and len(ins) == 2:
            return [self.node("Gather", ins, axis=0)]
        if isinstance(op, DimValue):
            return [self.dim(op.expr)]
        if isinstance(op, Loop):
            outs = write_loop(self, node, ins)
            return outs if isinstance(outs, list) else [outs]
        if isinstance(op, Arange):
            r = self.node("Range", [self.const(np.int64(0)), self.dim(op.n), self.const(np.int64(1))])
            return [r if op.dtype == "int64" else self.node("Cast", [r], to=DTYPE_TO_ELEM[op.dtype])]
        if isinstance(op, Subtensor):
            return [self.subtensor(op, ins[0], x)]
        if isinstance(op, IncSubtensor) and all(isinstance(i, tuple) and i[2] == 1 for i in op.index):
            begins = [i[0] for i in op.index] + [0] * (len(op.shape) - len(op.index))
            ends = [sympy.sympify(d) - (op.index[k][1] if k < len(op.index) else d)
                    for k, d in enumerate(op.shape)]
            return [self.node("Pad", [ins[0], self.shape(begins + ends)])]
        if isinstance(op, BatchNormTrain):
            return self.batch_norm_train(op, ins, x)
        raise OnnxExportError(str(op))

    def batch_norm_train(self, op, ins, x):
        """Training batch norm (y, batch mean, batch var) as reductions and elementwise ops: ONNX's
        BatchNormalization in training mode returns running statistics, not the batch's."""
        axes = [0] if x.ndim == 2 else [0, 2, 3]

        def mean(v):
            if self.opset >= 18:
                return self.node("ReduceMean", [v, self.const(np.array(axes, "int64"))], keepdims=1)
            return self.node("ReduceMean", [v], axes=axes, keepdims=1)
        per_channel = self.const(np.array([1, -1] + [1] * (x.ndim - 2), "int64"))
        flat = self.const(np.array([-1], "int64"))
        m = mean(ins[0])
        d = self.node("Sub", [ins[0], m])
        v = mean(self.node("Mul", [d, d]))
        root = self.node("Sqrt", [self.node("Add", [v, self.const(np.asarray(op.eps, x.dtype))])])
        scale = self.node("Div", [self.node("Reshape", [ins[1], per_channel]), root])
        y = self.node("Add", [self.node("Mul", [d, scale]), self.node("Reshape", [ins[2], per_channel])])
        return [y, self.node("Reshape", [m, flat]), self.node("Reshape", [v, flat])]

    def subtensor(self, op, name, x):
        starts, ends, axes, steps, drop = [], [], [], [], []
        for axis, it in enumerate(op.index):
            if isinstance(it, tuple):
                s, e, st = it
                if s == 0 and st == 1 and sympy.sympify(e - x.type.shape[axis]) == 0:
                    continue  # the whole axis
                if st < 0 and e == -1:
                    e = -(2 ** 62)
            else:
                s, e, st = it, sympy.sympify(it) + 1, 1
                drop.append(axis)
            starts.append(s), ends.append(e), axes.append(axis), steps.append(st)
        if not axes:
            return self.node("Identity", [name]) if not drop else name
        out = self.node("Slice", [name, self.shape(starts), self.shape(ends),
                                  self.const(np.array(axes, "int64")), self.const(np.array(steps, "int64"))])
        if drop:
            out = self.node("Squeeze", [out, self.const(np.array(drop, "int64"))])
        return out


def write_nodes(w, nodes):
    """Write each node; returns the problems. A node reading the output of one that failed is
    skipped without a problem of its own (its cause is listed)."""
    problems, failed = [], set()
    for node in nodes:
        if any(i in failed for i in node.inputs):
            failed.update(node.outputs)
            continue
        try:
            outs = w.op(node)
        except OnnxExportError as e:
            problems.append(f"{e}")
            failed.update(node.outputs)
            continue
        for v, n in zip(node.outputs, outs):
            if n is not None:
                w.names[v] = n
    return problems


def export(inputs, outputs, path=None, opset=17, output_names=None):
    import onnx
    from ..ir.constructors import as_variable
    single = isinstance(outputs, Variable)
    outputs = [outputs] if single else [as_variable(o) for o in outputs]
    w = Writer(opset)
    graph_inputs = []
    for k, v in enumerate(inputs):
        if not isinstance(v, Variable) or v.owner is not None or isinstance(v, (Constant, SharedVariable)):
            raise OnnxExportError(f"export: input {k} must be a symbolic input variable (graphc.tensor)")
        name = w.fresh(v.name or f"input{k}")
        w.names[v] = name
        dims = []
        for axis, d in enumerate(v.type.shape):
            if isinstance(d, int):
                dims.append(d)
            else:
                w.dim_sources.setdefault(d, (name, axis))
                dims.append(str(d))
        graph_inputs.append(onnx.helper.make_tensor_value_info(name, DTYPE_TO_ELEM[v.dtype], dims))
    problems = write_nodes(w, toposort(outputs))
    if problems:
        raise OnnxExportError("graphc.onnx.export cannot write: " + "; ".join(sorted(set(problems)))
                              + ". Export a graph of the operators listed in graphc/onnx/exporter.py")
    graph_outputs = []
    names = output_names or [o.name or f"output{k}" for k, o in enumerate(outputs)]
    for o, name in zip(outputs, names):
        src = w.name_of(o)
        out_name = w.fresh(name)
        w.nodes.append(onnx.helper.make_node("Identity", [src], [out_name]))
        dims = [d if isinstance(d, int) else str(d) for d in o.type.shape]
        graph_outputs.append(onnx.helper.make_tensor_value_info(out_name, DTYPE_TO_ELEM[o.dtype], dims))
    graph = onnx.helper.make_graph(w.nodes, "graphc", graph_inputs, graph_outputs, w.inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="graphc")
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, path)
    return model

