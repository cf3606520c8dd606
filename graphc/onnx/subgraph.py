"""The body of a control-flow node (If's branches, Loop's and Scan's bodies) read as graphc graph.

A subgraph is converted by the same converters as the main graph. Its inputs are bound to what
the enclosing op gives (a scan step's inner variables, or load-time values such as a Loop's
condition fixed to true); names it does not define are read from the enclosing graphs (ONNX's
outer scope), so a variable of the main graph used inside a scan step becomes one of the scan's
non-sequences. Problems inside the body are reported as one Unsupported for the enclosing node.
"""
import numpy as np

from .importer import Importer
from .registry import Unsupported


class SubgraphImporter(Importer):
    def __init__(self, parent, graph, bound, what, loop_body=False):
        """parent: the enclosing Importer; bound: {body input name: Variable or numpy array};
        what: the enclosing node and attribute, for messages; loop_body: the graph is a scan
        step (values change per step: run-time sizes cannot be bound once per call)."""
        super().__init__(parent.model, parent.base_dir, untie=parent.untie)
        self.parent, self.graph, self.what = parent, graph, what
        self.in_loop_body = loop_body or parent.in_loop_body
        self.opset = parent.opset
        self.params = parent.params              # parameters belong to the whole model
        self.running_stats = parent.running_stats
        self.param_reads, self.stat_reads = parent.param_reads, parent.stat_reads
        self.values.update(bound)

    def _defines(self, name):
        return name in self.values or name in self.initializers

    def value_of(self, name):
        if self._defines(name):
            return super().value_of(name)
        if self._outer_poisoned(name):
            raise Unsupported(f"{self.what} reads {name!r}, which could not be imported")
        return self.parent.value_of(name)

    def _outer_poisoned(self, name):
        imp = self.parent
        while imp is not None:
            if name in imp.poisoned:
                return True
            imp = getattr(imp, "parent", None)
        return False

    def variable(self, name):
        if self._defines(name):
            return super().variable(name)
        self.value_of(name)   # raises for poisoned or unknown names
        return self.parent.variable(name)

    def is_initializer(self, name):
        if self._defines(name):
            return super().is_initializer(name)
        return self.parent.is_initializer(name)

    def masked(self, name):
        if self._defines(name):
            return super().masked(name)
        return self.parent.masked(name)

    def is_param(self, name):
        if self._defines(name):
            return super().is_param(name)
        return self.parent.is_param(name)

    def param_of(self, name):
        if self._defines(name):
            return super().param_of(name)
        return self.parent.param_of(name)

    def outputs(self):
        """The body's outputs, in order: Variables or load-time numpy arrays (a parameter, or a
        copy of one, is its shared variable: a branch that returns a weight keeps it trainable)."""
        self.read_initializers()
        for k, node in enumerate(self.graph.node):
            self.index = k
            self._convert(node)
        if self.problems:
            raise Unsupported(f"{self.what}: " + "; ".join(self.problems))
        return [self.variable(vi.name) if self.is_param(vi.name) else self.value_of(vi.name)
                for vi in self.graph.output]


def body_inputs(graph):
    return [vi.name for vi in graph.input]


def count_nodes(graph):
    """Nodes of a graph, its subgraphs' included, and the op types among them."""
    n, types = 0, set()
    for node in graph.node:
        n += 1
        types.add(node.op_type)
        for a in node.attribute:
            if a.type == a.GRAPH:
                m, t = count_nodes(a.g)
                n, types = n + m, types | t
    return n, types


def static_true(v):
    return isinstance(v, np.ndarray) and v.dtype != object and v.size == 1 and bool(v.reshape(-1)[0])
