"""FunctionGraph: what graphc.function compiles — inputs, shared state, outputs and updates."""
import copy
import functools

from ..errors import GraphcShapeError, GraphcTypeError, InputError
from .constructors import as_variable
from .graph import Constant, Node, SharedVariable, Variable, leaves, toposort
from .shapes import DimResolver
from .types import free_symbols_of
from .value_dims import collect as collect_value_dims


class FunctionGraph:
    """outputs = user outputs followed by one new value per updated shared variable."""

    def __init__(self, inputs, outputs, update_targets, base_constraints=(), value_dims=None):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.update_targets = list(update_targets)
        # The dims computed from values (dynamic slices, graphc/ir/value_dims.py): found in the
        # graph as the user built it and kept through rewrites, which may drop the slices' bounds.
        self.value_dims = value_dims
        # Dim equalities of the graph as the user built it: kept through rewrites, so inputs are
        # checked against what the user wrote even where an optimization removed the op.
        self.base_constraints = list(base_constraints)
        self.refresh()

    # --- readers and rewiring -------------------------------------------------------------
    # Passes rewire the graph through `replace` only; it keeps an index of who reads what (built
    # on first use, dropped by `refresh`). With cascade=True (the default) the index stays equal
    # to one built from scratch: a node left unread is dropped, and what only it read, and so on.

    def _index(self):
        if self._readers is None:
            readers = {}
            for n in self.nodes:
                for v in n.inputs:
                    counts = readers.setdefault(v, {})
                    counts[n] = counts.get(n, 0) + 1
            self._readers = readers
            self._output_set = set(self.outputs)
        return self._readers

    def readers(self, v):
        """The live nodes that read v (each once, however many of its inputs v is)."""
        return self._index().get(v, {}).keys()

    def n_reads(self, v):
        """How many node inputs read v."""
        return sum(self._index().get(v, {}).values())

    def is_output(self, v):
        self._index()
        return v in self._output_set

    def replace(self, old, new, cascade=True):
        """Every reader of `old` (and the outputs list) reads `new` instead. The node that made
        `old`, left with no reader and no output, is dead: its reads are dropped from the index,
        and (cascade) so are those of the nodes only it read, up the graph."""
        if old is new:
            return
        readers = self._index()
        self._add_reads(new)
        counts = readers.pop(old, {})
        for node in counts:
            node.inputs = [new if v is old else v for v in node.inputs]
            into = readers.setdefault(new, {})
            into[node] = into.get(node, 0) + counts[node]
        if old in self._output_set:
            self.outputs = [new if o is old else o for o in self.outputs]
            self._output_set.discard(old)
            self._output_set.add(new)
        self.drop_if_dead(old.owner, cascade)

    def _add_reads(self, v):
        """Index the reads of v's producer and of the new nodes above it (a fresh subgraph)."""
        readers = self._readers
        stack = [v.owner] if v.owner is not None else []
        while stack:
            node = stack.pop()
            if not node.inputs or any(node in readers.get(i, ()) for i in node.inputs):
                continue  # nothing to index, or already indexed (a node's reads go all at once)
            for i in node.inputs:
                counts = readers.setdefault(i, {})
                counts[node] = counts.get(node, 0) + 1
                if i.owner is not None:
                    stack.append(i.owner)

    def drop_if_dead(self, node, cascade=True):
        """Drop the reads of `node` from the index if nothing reads its outputs (and, with
        cascade, those of the nodes that then go unread)."""
        readers = self._index()
        stack = [node] if node is not None else []
        while stack:
            node = stack.pop()
            if any(readers.get(o) or o in self._output_set for o in node.outputs):
                continue
            for o in node.outputs:
                readers.pop(o, None)
            for i in set(node.inputs):
                counts = readers.get(i)
                if counts and counts.pop(node, None) is not None and i.owner is not None \
                        and cascade:
                    stack.append(i.owner)

    @property
    def n_user_outputs(self):
        return len(self.outputs) - len(self.update_targets)

    def clone(self):
        """A copy whose nodes are new objects (leaves are shared), so passes may edit it freely
        without touching the graph the user built."""
        mapping = {}
        for node in toposort(self.outputs):
            new = Node(node.op, [mapping.get(i, i) for i in node.inputs],
                       [o.type for o in node.outputs], node.constraints)
            for o, no in zip(node.outputs, new.outputs):
                no.name = o.name
                mapping[o] = no
        return FunctionGraph(self.inputs, [mapping.get(o, o) for o in self.outputs],
                             self.update_targets, self.constraints, self.value_dims)

    def refresh(self, dims=True):
        """Recompute the node order, the leaves and (unless the rewrite kept every shape, as
        fusion does) the dim resolution after a rewrite."""
        self.nodes = toposort(self.outputs)
        self._readers = None  # rebuilt on next use, from the node list
        if not dims:
            return self
        all_leaves = leaves(self.outputs)
        self.shareds = [v for v in all_leaves if isinstance(v, SharedVariable)]
        for sv in self.update_targets:
            if sv not in self.shareds:
                self.shareds.append(sv)
        constraints = [c for n in self.nodes for c in n.constraints]
        for sv, new in zip(self.update_targets, self.outputs[self.n_user_outputs:]):
            for k, (a, b) in enumerate(zip(sv.type.shape, new.type.shape)):
                constraints.append((a, b, f"update of {sv.label()} axis {k}"))
        self.constraints = self.base_constraints + constraints
        self.dims = DimResolver(self.constraints)
        if self.value_dims is None:
            self.value_dims = collect_value_dims(self.nodes)
        self.dims.value_dims = self.value_dims  # what the argument checker binds them from
        # (each distinct dim once: ResNet-20's ~5000 variables have a few dozen)
        dims_seen = set()
        for n in self.nodes:
            for v in n.inputs:
                dims_seen.update(v.type.shape)
            for v in n.outputs:
                dims_seen.update(v.type.shape)
        self.symbols = set()
        for d in dims_seen:
            if not isinstance(d, int):
                self.symbols |= free_symbols_of(d)
        return self

    def dim_env(self, bound):
        """Values of every dim symbol in the graph, given the values of the bound ones."""
        env = {}
        for s in self.symbols:
            r = self.dims.resolve(s)
            env[s] = r if isinstance(r, int) else int(r.subs(bound))
        env.update(bound)
        return env

    def clients(self):
        """variable -> list of (node, input position) that read it."""
        out = {}
        for n in self.nodes:
            for k, i in enumerate(n.inputs):
                out.setdefault(i, []).append((n, k))
        return out


def build_function_graph(inputs, outputs, updates):
    if isinstance(inputs, Variable):
        raise GraphcTypeError("function: inputs must be a list of variables, e.g. [x, y]")
    inputs = list(inputs)
    for k, i in enumerate(inputs):
        if not isinstance(i, Variable) or i.owner is not None or isinstance(i, (Constant, SharedVariable)):
            raise GraphcTypeError(f"function: inputs[{k}] = {i!r} is not an input variable (shared "
                                  "variables and constants are not passed as inputs)")
    if len(set(inputs)) != len(inputs):
        raise GraphcTypeError("function: an input variable is listed twice")
    outputs = [as_variable(o) for o in outputs]
    targets, new_values = [], []
    for sv, new in _update_pairs(updates):
        if not isinstance(sv, SharedVariable):
            raise GraphcTypeError(f"updates: the key {sv!r} is not a shared variable")
        if sv in targets:
            raise GraphcTypeError(f"updates: {sv.label()} is updated twice")
        new = as_variable(new)
        if new.dtype != sv.dtype and isinstance(new, Constant) and getattr(new, "weak", False):
            # A python scalar (updates={b: 0.0}) takes the variable's dtype when that is exact.
            value = new.data.astype(sv.dtype)
            if value == new.data:
                new = Constant(value)
        if new.dtype != sv.dtype:
            raise GraphcTypeError(
                f"updates: the new value of shared {sv.label()} has dtype {new.dtype} but the "
                f"variable is {sv.dtype}; an update must keep the type (cast the expression with "
                f".astype('{sv.dtype}'), or build it from {sv.dtype} values)")
        if new.ndim != sv.ndim:
            raise GraphcShapeError(f"updates: the new value of shared {sv.label()} has rank "
                                   f"{new.ndim} ({new.type}) but the variable has shape {sv.type.shape}")
        targets.append(sv)
        new_values.append(new)
    fg = FunctionGraph(inputs, outputs + new_values, targets)
    given = set(inputs)
    for leaf in leaves(fg.outputs):
        if not isinstance(leaf, (Constant, SharedVariable)) and leaf not in given:
            raise InputError(f"function: the outputs depend on input {leaf.label()} ({leaf.type}), "
                             "which is not in the inputs list; add it to inputs")
    return fg


def _update_pairs(updates):
    """updates as (shared variable, new value) pairs: a dict, or a list of pairs (Theano's two
    forms); anything else is a GraphcTypeError that shows the expected form."""
    if updates is None:
        return []
    if isinstance(updates, dict):
        return list(updates.items())
    hint = "give updates as {shared: new_value} or [(shared, new_value), ...]"
    if isinstance(updates, (Variable, str, bytes)) or not hasattr(updates, "__iter__"):
        raise GraphcTypeError(f"updates: got {_short(updates)}; {hint}")
    pairs = []
    for k, item in enumerate(updates):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise GraphcTypeError(f"updates[{k}] is {_short(item)}, not a (shared, new_value) "
                                  f"pair; {hint}")
        pairs.append(tuple(item))
    return pairs


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- pickling: a graph as flat data ------------------------------------------------------------
# Pickling Variables directly recurses once per node up the graph (owner -> inputs -> owner ...)
# and a deep graph exceeds the recursion limit; this form lists the nodes in order instead.

def graph_state(inputs, outputs, update_targets):
    """Picklable, flat form of a function's graph: leaves, nodes in order, outputs as refs."""
    leaves_, nodes, ref, ops = [], [], {}, {}

    def ref_of(v):
        if v not in ref:
            ref[v] = len(leaves_)
            leaves_.append(v)
        return ref[v]

    for v in list(inputs) + list(update_targets):
        ref_of(v)
    for node in toposort(outputs):
        ins = [ref[i] if i in ref else ref_of(i) for i in node.inputs]
        for k, o in enumerate(node.outputs):
            ref[o] = ("n", len(nodes), k)
        op = ops.get(id(node.op)) or ops.setdefault(id(node.op), _without_caches(node.op))
        nodes.append((op, ins, [o.type for o in node.outputs], node.constraints,
                       [o.name for o in node.outputs]))
    return {"leaves": leaves_, "nodes": nodes, "n_inputs": len(inputs),
            "n_targets": len(update_targets), "outputs": [ref_of(o) if o.owner is None else ref[o]
                                                          for o in outputs]}


def graph_from_state(state):
    """(inputs, outputs, update_targets) from graph_state's form: new nodes, the pickled leaves."""
    leaves_ = state["leaves"]
    built = []

    def get(r):
        return leaves_[r] if isinstance(r, int) else built[r[1]].outputs[r[2]]

    for op, ins, types, constraints, names in state["nodes"]:
        node = Node(op, [get(r) for r in ins], types, constraints)
        for o, name in zip(node.outputs, names):
            o.name = name
        built.append(node)
    n_in, n_t = state["n_inputs"], state["n_targets"]
    return leaves_[:n_in], [get(r) for r in state["outputs"]], leaves_[n_in:n_in + n_t]


def _without_caches(op):
    """op, or a copy without its functools.cached_property values (a lambdified numpy function
    cannot be pickled; it is computed again on first use)."""
    cached = [k for k in vars(op) if isinstance(getattr(type(op), k, None), functools.cached_property)]
    if not cached:
        return op
    clean = copy.copy(op)
    for k in cached:
        del clean.__dict__[k]
    return clean
