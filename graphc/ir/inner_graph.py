"""Inner graphs: a graph an op carries as a parameter (the body of a loop, a function inlined
later), frozen and compared by structure.

An op keeps an InnerGraph in its __props__ and names that prop in `inner_graph_props`; then
  - ops with structurally equal inner graphs are equal and hash alike, so CSE merges them;
  - `signature()` is a text digest that does not depend on variable names, object identity or
    the process (the artifact cache signs inner graphs with it);
  - the pass manager optimizes each inner graph with the pipeline of the outer one and rebuilds
    the op as type(op)(**props) (so such an op's constructor takes its props by name).

Unlike Theano's Scan/OpFromGraph, which keep a mutable FunctionGraph and compare it by an
equality walk each time, the structure is computed once at construction: the graph is frozen.
"""
import hashlib

import numpy as np

from ..errors import GraphcTypeError
from .graph import Constant, Node, SharedVariable, Variable, toposort
from .types import is_fresh


class InnerGraph:
    """inputs: leaf variables standing for the values the op receives; outputs: what it returns.
    The nodes between are copied, so later edits of the variables given leave it unchanged."""

    def __init__(self, inputs, outputs):
        inputs, outputs = list(inputs), list(outputs)
        for k, v in enumerate(inputs):
            if not isinstance(v, Variable) or v.owner is not None or isinstance(v, (Constant, SharedVariable)):
                raise GraphcTypeError(f"InnerGraph: inputs[{k}] = {v!r} is not an input variable "
                                      "(make one with graphc.tensor/matrix/... )")
        if len(set(inputs)) != len(inputs):
            raise GraphcTypeError("InnerGraph: an input variable is listed twice")
        given = set(inputs)
        mapping = {}
        for node in toposort(outputs):
            for i in node.inputs:
                if i.owner is None and i not in given and not isinstance(i, Constant):
                    raise GraphcTypeError(
                        f"InnerGraph: the outputs read {i.label()} ({i.type}), which is neither an "
                        "input of the inner graph nor a constant; pass it in as an input")
            new = Node(node.op, [mapping.get(i, i) for i in node.inputs],
                       [o.type for o in node.outputs], node.constraints)
            for o, no in zip(node.outputs, new.outputs):
                no.name = o.name
                mapping[o] = no
        for k, o in enumerate(outputs):
            if o.owner is None and o not in given and not isinstance(o, Constant):
                raise GraphcTypeError(f"InnerGraph: outputs[{k}] = {o.label()} is neither computed "
                                      "from the inputs, an input nor a constant")
        self.inputs = tuple(inputs)
        self.outputs = tuple(mapping.get(o, o) for o in outputs)
        self.nodes = tuple(toposort(self.outputs))
        self.structure = _structure(self)
        self._hash = hash(self.structure)
        self._signature = None

    @property
    def input_types(self):
        return tuple(v.type for v in self.inputs)

    @property
    def output_types(self):
        return tuple(v.type for v in self.outputs)

    def __eq__(self, other):
        return isinstance(other, InnerGraph) and (self is other or (
            self._hash == other._hash and self.structure == other.structure))

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"InnerGraph({len(self.inputs)} in, {len(self.nodes)} nodes, {len(self.outputs)} out)"

    def signature(self):
        """A digest of the structure that is the same in every process (computed once: the
        graph is frozen, and the cache key of every function holding it asks again)."""
        if self._signature is None:
            self._signature = hashlib.sha256(_text(self.structure).encode()).hexdigest()[:32]
        return self._signature

    def function_graph(self):
        """A FunctionGraph over copies of the nodes, for the passes to edit."""
        from .fgraph import FunctionGraph
        return FunctionGraph(self.inputs, self.outputs, []).clone()

    def evaluate(self, *arrays, dims=None):
        """Run the graph on numpy arrays with each op's reference (tests, the py backend)."""
        values = dict(zip(self.inputs, arrays))
        for node in self.nodes:
            args = [values[i] if i in values else i.data for i in node.inputs]
            if getattr(node.op, "needs_dims", False):
                res = node.op.reference(*args, dims=dims or {})
            else:
                res = node.op.reference(*args)
            for o, r in zip(node.outputs, res if len(node.outputs) > 1 else (res,)):
                values[o] = np.asarray(r)
        return tuple(values[o] if o in values else o.data for o in self.outputs)


def _structure(graph):
    """The graph as nested tuples with variables numbered by position: inputs i<k>, constants
    c<k>, node outputs n<k>.<j>. Ops enter as themselves (equal when their props are)."""
    ids, consts = {}, []
    for k, v in enumerate(graph.inputs):
        ids[v] = ("i", k)

    def ref(v):
        if v not in ids:  # a constant
            ids[v] = ("c", len(consts))
            consts.append((v.data.dtype.name, v.data.shape, v.data.tobytes()))
        return ids[v]

    nodes = []
    for n, node in enumerate(graph.nodes):
        nodes.append((node.op, tuple(ref(i) for i in node.inputs),
                      tuple(_type_key(o.type) for o in node.outputs)))
        for j, o in enumerate(node.outputs):
            ids[o] = ("n", n, j)
    return (tuple(_type_key(v.type) for v in graph.inputs), tuple(nodes),
            tuple(ref(o) for o in graph.outputs), tuple(consts))


def _type_key(t):
    # Fresh dims (from `None` in a shape) are numbered by creation: equal graphs built twice
    # get different ones, so they all read as one "any size" mark.
    return (t.dtype, tuple("?" if is_fresh(d) else d for d in t.shape))


def _text(value):
    """A process-independent text of a structure (sympy walked by hand, ops by their props)."""
    import sympy
    from .graph import Op
    if isinstance(value, InnerGraph):
        return f"InnerGraph:{value.signature()}"
    if isinstance(value, Op):
        return f"{type(value).__name__}{_text(value._props())}"
    if isinstance(value, sympy.Basic):
        if value.is_Symbol:
            return value.name
        if value.is_Number:
            return f"{type(value).__name__}:{value}"
        return type(value).__name__ + "(" + ",".join(_text(a) for a in value.args) + ")"
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_text(v) for v in value) + ")"
    if isinstance(value, bytes):
        return hashlib.sha1(value).hexdigest()
    return repr(value)
