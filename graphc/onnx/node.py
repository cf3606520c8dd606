"""What a converter sees of one ONNX node: its attributes, its inputs as graphc variables or as
values known at load time (initializers, constants, folded shape computations)."""
import numpy as np
import sympy

from .registry import Unsupported


def is_static(v):
    return isinstance(v, np.ndarray)


def is_symbolic(arr):
    return arr.dtype == object


class NodeView:
    def __init__(self, proto, attrs, importer):
        self.proto, self.attrs, self._imp = proto, attrs, importer
        self.op_type, self.name = proto.op_type, proto.name or f"{proto.op_type}#{importer.index}"
        self.opset = importer.opset
        self.input_names = list(proto.input)
        self.num_outputs = len(proto.output)

    def __str__(self):
        return f"{self.op_type} node {self.name!r}"

    def attr(self, name, default=None):
        return self.attrs.get(name, default)

    def mark_running_stat(self, i):
        """Input i is a statistic (batch norm's running mean/var), not a trained parameter."""
        if self.has_input(i):
            self._imp.running_stats.add(self._imp.param_of(self.input_names[i]))
            self._imp.stat_reads.add(self.input_names[i])

    def copies_input(self, i=0, out=0):
        """Output `out` is input i's value as it is (Identity): where that value is a trainable
        parameter, the output reads the same parameter (graphc/onnx/importer.py: alias)."""
        if self.has_input(i) and out < self.num_outputs:
            self._imp.alias(self.proto.output[out], self.input_names[i])

    def random_streams(self, seed=None):
        """The model's graphc.RandomStreams for `seed` (one per seed, shared by its nodes)."""
        imp = self._imp
        while getattr(imp, "parent", None) is not None:
            imp = imp.parent
        return imp.random_streams(seed)

    @property
    def in_loop_body(self):
        """Whether this node is inside a Loop's or Scan's body (a step of graphc's scan)."""
        return self._imp.in_loop_body

    def subgraph_outputs(self, graph, bound, what, loop_body=False):
        """The outputs of a subgraph attribute (a branch, a loop body) converted in this node's
        scope: `bound` gives its inputs; other names resolve in the enclosing graphs."""
        from .subgraph import SubgraphImporter
        return SubgraphImporter(self._imp, graph, bound, what, loop_body).outputs()

    def has_input(self, i):
        return i < len(self.input_names) and self.input_names[i] != ""

    def value(self, i):
        """The input as the importer holds it: a Variable or a numpy array (static)."""
        return self._imp.value_of(self.input_names[i])

    def masked_input(self, i):
        """Input i as a MaskedSlice (a slice whose length changes per loop step), or None."""
        return self._imp.masked(self.input_names[i]) if self.has_input(i) else None

    def input(self, i):
        """Input i as a graphc Variable (None when absent)."""
        if not self.has_input(i):
            return None
        return self._imp.variable(self.input_names[i])

    def inputs(self):
        return [self.input(i) for i in range(len(self.input_names))]

    def static(self, i, what):
        """Input i's value, which must be known at load time (a shape, axes, pads...)."""
        if not self.has_input(i):
            return None
        v = self._imp.static_value(self.input_names[i])
        if v is None:
            raise Unsupported(f"input {i} ({what}) must be known when the model loads (a constant, "
                              f"an initializer or a shape computation); {self.input_names[i]!r} is "
                              "computed at run time")
        return v

    def static_ints(self, i, what):
        v = self.static(i, what)
        if v is None:
            return None
        if is_symbolic(v):
            out = []
            for e in v.reshape(-1):
                if isinstance(e, sympy.Basic) and not e.is_Integer:
                    raise Unsupported(f"input {i} ({what}) must be numbers, got the symbolic {e}")
                out.append(int(e))
            return out
        if v.dtype.kind not in "iub":
            raise Unsupported(f"input {i} ({what}) must be integers, got {v.dtype}")
        return [int(e) for e in v.reshape(-1)]

    def static_scalar(self, i, what):
        v = self.static(i, what)
        if v is None:
            return None
        if v.size != 1:
            raise Unsupported(f"input {i} ({what}) must hold one value, got shape {v.shape}")
        return v.reshape(-1)[0]
