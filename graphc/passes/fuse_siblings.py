"""Sibling fusion: elementwise ops that read a common input (at full size, not a constant) and
make outputs of the same shape and dtype share one loop, as one op with several outputs
(MultiElemwise). The shared inputs are read once per element, sympy.cse shares the subexpressions of all the outputs, and an expensive
producer whose only readers were the siblings is then computed inside that loop, once per
element, instead of being stored (chain fusion declined it because it had several readers).

Runs after chain fusion and the gemm-update pass, so it never hides a pattern they look for.
Two siblings merge only when neither reads (through any path) what the other computes: the merged
op must run after the inputs of both and before the readers of both.
"""
import functools

import numpy as np

from ..ir.graph import Constant, Node, Op
from ..ir.ops.elemwise import ARGS, Elemwise
from ..ir.types import TensorType
from .fuse_elemwise import is_expensive
from .manager import register

MAX_INPUTS = 48  # as for chain fusion: what one kernel reads
MAX_OUTPUTS = 8  # each output is one more store per element and more live registers
# Siblings further apart than this in the schedule stay apart: merging computes the later one
# early, and its buffer would then live (and hold memory) across everything in between.
MAX_DISTANCE = 64


class MultiElemwise(Op):
    """Several elementwise expressions (over ARGS[:nin]) of the same inputs, with one output
    each; all outputs have the same shape. Made by this pass only (after differentiation)."""
    __props__ = ("name", "exprs", "nin", "dtype", "out_shape")
    needs_dims = True

    def __init__(self, name, exprs, nin, dtype, out_shape):
        self.name, self.exprs, self.nin = name, tuple(exprs), nin
        self.dtype, self.out_shape = dtype, tuple(out_shape)
        self.nout = len(self.exprs)

    def __str__(self):
        return self.name

    def infer(self, input_types, ctx):
        return [TensorType(self.dtype, self.out_shape) for _ in self.exprs]

    @functools.cached_property
    def _numpy_fns(self):
        return [Elemwise("v", e, self.nin, self.dtype)._numpy_fn for e in self.exprs]

    def reference(self, *arrays, dims=None):
        from ..ir.ops.shape import _eval_dim
        shape = tuple(_eval_dim(d, dims) for d in self.out_shape)
        outs = []
        with np.errstate(all="ignore"):
            for fn in self._numpy_fns:
                res = np.asarray(fn(*arrays)).astype(self.dtype, copy=False)
                outs.append(np.asarray(np.broadcast_to(res, shape), order="C"))
        return tuple(outs)


def _is_single_elemwise(node):
    return isinstance(node.op, Elemwise) and len(node.outputs) == 1


def _combine(parts):
    """Inputs and expressions of several nodes over one numbering of the union of their inputs."""
    inputs, exprs = [], []
    for node_inputs, node_exprs in parts:
        mapping = {}
        for pos, v in enumerate(node_inputs):
            if v not in inputs:
                inputs.append(v)
            mapping[ARGS[pos]] = ARGS[inputs.index(v)]
        exprs += [e.xreplace(mapping) for e in node_exprs]
    return inputs, exprs


def _prune(inputs, exprs):
    """Drop inputs no expression reads (renumbering the rest)."""
    free = set().union(*(e.free_symbols for e in exprs))
    kept = [k for k in range(len(inputs)) if ARGS[k] in free]
    mapping = {ARGS[k]: ARGS[n] for n, k in enumerate(kept)}
    return [inputs[k] for k in kept], [e.xreplace(mapping) for e in exprs]


class _Graph:
    """A topological index, kept current as nodes are merged (readers come from the graph)."""

    def __init__(self, fgraph):
        self.fgraph = fgraph
        self.reindex()

    def reindex(self):
        self.fgraph.refresh(dims=False)
        self.order = {n: i for i, n in enumerate(self.fgraph.nodes)}

    def readers(self, v):
        return self.fgraph.readers(v)

    def reaches(self, a, b):
        """Is there a path from node a to node b? (Only nodes between them in order can be on it.)"""
        if self.order[a] > self.order[b]:
            a, b = b, a
        limit, stack, seen = self.order[b], [a], {a}
        while stack:
            n = stack.pop()
            for out in n.outputs:
                for r in self.readers(out):
                    if r is b:
                        return True
                    if r not in seen and self.order[r] < limit:
                        seen.add(r)
                        stack.append(r)
        return False

    def replace_outputs(self, old_nodes, new_node):
        """Rewire every reader (and the function outputs) of old_nodes' outputs to new_node's."""
        old_outs = [o for n in old_nodes for o in n.outputs]
        for old, new in zip(old_outs, new_node.outputs):
            self.fgraph.replace(old, new)
        self.reindex()


def _merge(g, nodes, shape, dtype):
    inputs, exprs = _prune(*_combine([(n.inputs, [n.op.expr]) for n in nodes]))
    op = MultiElemwise(f"siblings({', '.join(n.op.name for n in nodes)})", exprs, len(inputs),
                       dtype, shape)
    new = Node(op, inputs, op.infer(None, None), [c for n in nodes for c in n.constraints])
    g.replace_outputs(nodes, new)
    return new


def _absorb_producers(g, node, outputs_set, notes):
    """Pull into `node` every elementwise producer that only it reads (repeatedly: chains)."""
    changed = True
    while changed:
        changed = False
        for v in node.inputs:
            p = v.owner
            if p is None or not _is_single_elemwise(p) or v in outputs_set:
                continue
            if set(g.readers(v)) != {node}:
                continue
            same = g.fgraph.dims.shape(v) == node.op.out_shape
            if not same and is_expensive(p.op.expr):
                notes.append(f"not fusing {p.op} into {node.op}: it would be broadcast and "
                             "recomputed per element")
                continue
            if len(node.inputs) - 1 + len(p.inputs) > MAX_INPUTS:
                continue
            # One numbering for both, then the producer's expression in place of v.
            inputs, exprs = _combine([(node.inputs, node.op.exprs), (p.inputs, [p.op.expr])])
            *exprs, p_expr = exprs
            exprs = [e.xreplace({ARGS[inputs.index(v)]: p_expr}) for e in exprs]
            inputs, exprs = _prune(inputs, exprs)
            name = f"{node.op.name[:-1]} <- {p.op.name})"  # what the loop now also computes
            op = MultiElemwise(name, exprs, len(inputs), node.op.dtype, node.op.out_shape)
            new = Node(op, inputs, op.infer(None, None), node.constraints + p.constraints)
            g.replace_outputs([node], new)
            node, changed = new, True
            break
    return node


def fuse_siblings(fgraph):
    """Returns whether any siblings now share a loop."""
    notes = getattr(fgraph, "fusion_notes", [])
    outputs_set = set(fgraph.outputs)
    g = _Graph(fgraph)
    merged = []
    for v in _read_values(fgraph):
        if isinstance(v, Constant):
            continue  # a shared constant (a learning rate) saves nothing: it is not a read
        # Siblings read v at full size: what merging saves is reading it once.
        readers = sorted((n for n in g.readers(v) if _is_single_elemwise(n)
                          and fgraph.dims.shape(n.outputs[0]) == fgraph.dims.shape(v)),
                         key=g.order.get)
        shape = fgraph.dims.shape(v)
        while len(readers) >= 2:
            first, rest = readers[0], readers[1:]
            dtype = first.outputs[0].dtype
            group, n_inputs = [first], set(first.inputs)
            for r in rest:
                if r.outputs[0].dtype != dtype or g.order[r] - g.order[first] > MAX_DISTANCE:
                    continue
                if len(group) == MAX_OUTPUTS or len(n_inputs | set(r.inputs)) > MAX_INPUTS:
                    continue
                if any(g.reaches(m, r) for m in group):
                    notes.append(f"not sharing a loop between {first.op} and {r.op}: one reads "
                                 "what the other computes")
                    continue
                group.append(r)
                n_inputs |= set(r.inputs)
            readers = [r for r in rest if r not in group]
            if len(group) >= 2:
                merged.append(_merge(g, group, shape, dtype))
    changed = bool(merged)
    for node in merged:
        if node in g.order:
            _absorb_producers(g, node, outputs_set, notes)
    fgraph.fusion_notes = notes
    return changed


def _read_values(fgraph):
    """Every value some node reads, in the order the nodes first read them."""
    seen = {}
    for n in fgraph.nodes:
        for v in n.inputs:
            seen.setdefault(v, None)
    return list(seen)


@register("fuse_siblings")
def fuse_siblings_pass(fgraph):
    changed = fuse_siblings(fgraph)
    return fgraph, changed
