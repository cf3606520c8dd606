"""Elementwise fusion: chains of elementwise ops become one op whose scalar expression is the
composition of theirs (sympy substitutes one into the other), so the chain runs as one loop.

A producer is absorbed into its consumer when
  - its value is not itself a function output,
  - every reader of it is an elementwise op (so the producer disappears), and
  - it is cheap (no exp/log/tanh/..., at most MAX_RECOMPUTED_OPS operations) or the consumer
    is its only reader: recomputing an expensive value for several consumers costs more than
    keeping a buffer.
A producer whose output is smaller than the consumer's (it would be broadcast) is absorbed only
if it is cheap. Reasons for declining are kept in `fgraph.fusion_notes` for the dump.
"""
import functools

import numpy as np
import sympy

from ..ir.graph import Constant, Node, toposort
from ..ir.ops.elemwise import ARGS, Elemwise
from ..ir.ops.reduce import Reduce
from ..ir.ops import scalar_fns as sf
from ..ir.ops.scalar_expr import depth, tree_size
from ..ir.types import free_symbols_of
from .manager import register

@functools.lru_cache(maxsize=4096)
def is_expensive(expr):
    """Calls a function the scalar table classes expensive, or a power other than a square,
    cube or reciprocal."""
    for sub in sympy.preorder_traversal(expr):
        if isinstance(sub, sympy.Pow) and sub.exp in (2, 3, -1, -2):
            continue
        if isinstance(sub, sf.EXPENSIVE + (sympy.Pow,)):
            return True
    return False


# A cheap producer read by several consumers is recomputed in each only up to this size: a buffer
# costs a store and a load per element, about as much as a few arithmetic operations. Without a
# bound, an unrolled recurrence (an LSTM's c_t = f*c_{t-1} + i*g) inlined each step's whole
# history into the next: 48-input kernels, work growing with the square of the steps.
MAX_RECOMPUTED_OPS = 8


# The deepest fused expression: sympy walks expressions recursively (substitution, cse, printing),
# so its time and stack grow with depth; without a bound, 12 nested tanh took minutes and a
# 300-step recurrence overflowed Python's stack. Deeper chains are cut into several kernels.
MAX_FUSED_DEPTH = 48
# ... and the largest, counted as a tree: a recurrence that reads its state twice (h*a + sin(h))
# doubles its tree at every fused step while staying shallow enough for the depth bound.
MAX_FUSED_TREE = 400


@functools.lru_cache(maxsize=4096)
def _op_count(expr):
    return sympy.count_ops(expr)


class FusedElemwise(Elemwise):
    """An elementwise op made by fusion: output dtype and shape are fixed (so an input read only
    for its shape can be dropped), and its inputs are not cast."""
    __props__ = ("name", "expr", "nin", "dtype_rule", "out_shape")
    needs_dims = True

    def __init__(self, name, expr, nin, dtype, out_shape):
        super().__init__(name, expr, nin, dtype)
        self.out_shape = tuple(out_shape)

    def compute_dtype(self, inputs):
        return None

    def infer(self, input_types, ctx):
        from ..ir.types import TensorType
        return [TensorType(self.dtype_rule, self.out_shape)]

    def reference(self, *arrays, dims=None):
        from ..ir.ops.shape import _eval_dim
        shape = tuple(_eval_dim(d, dims) for d in self.out_shape)
        with np.errstate(all="ignore"):
            res = self._numpy_fn(*arrays)
        return np.asarray(np.broadcast_to(np.asarray(res).astype(self.dtype_rule, copy=False), shape),
                          order="C")


def prune_inputs(name, expr, inputs, out):
    """A FusedElemwise node over only the inputs `expr` reads (renumbered in order)."""
    symbols = free_symbols_of(expr)
    used = [k for k in range(len(inputs)) if ARGS[k] in symbols]
    kept, mapping = [], {}
    for k in used:
        v = inputs[k]
        if v not in kept:
            kept.append(v)
        mapping[ARGS[k]] = ARGS[kept.index(v)]
    op = FusedElemwise(name, expr.xreplace(mapping), len(kept), out.dtype, out.type.shape)
    return Node(op, kept, [out.type])


def fuse_into(consumer, k, producer):
    """The consumer node with its input k replaced by the producer's expression."""
    c_in = list(consumer.inputs)
    new_inputs = c_in[:k] + c_in[k + 1:]
    # Renumber: consumer args except k keep their order, then producer inputs not yet present.
    mapping_c = {}
    for pos, v in enumerate(c_in):
        if pos != k:
            mapping_c[ARGS[pos]] = ARGS[new_inputs.index(v)]
    c_symbols = free_symbols_of(consumer.op.expr)
    used = ARGS[k] in c_symbols
    mapping_p = {}
    for pos, v in enumerate(producer.inputs if used else ()):
        if v not in new_inputs:
            new_inputs.append(v)
        mapping_p[ARGS[pos]] = ARGS[new_inputs.index(v)]
    # prune_inputs' renumbering (only the inputs the fused expression reads), composed with the
    # two above: one substitution over each expression instead of four over the fused one. The
    # node classes never evaluate (ir/ops/scalar_expr.py), so the tree is the one step by step.
    symbols = {mapping_c[s] for s in c_symbols if s in mapping_c}
    if used:
        symbols |= {mapping_p[s] for s in free_symbols_of(producer.op.expr) if s in mapping_p}
    kept, pruned = [], {}
    for j, v in enumerate(new_inputs):
        if ARGS[j] in symbols:
            if v not in kept:
                kept.append(v)
            pruned[ARGS[j]] = ARGS[kept.index(v)]
    final_c = {s: pruned[t] for s, t in mapping_c.items() if t in pruned}
    if used:
        final_p = {s: pruned[t] for s, t in mapping_p.items() if t in pruned}
        final_c[ARGS[k]] = producer.op.expr.xreplace(final_p)
    expr = consumer.op.expr.xreplace(final_c)
    name = f"fused({_names(producer.op)},{_names(consumer.op)})"
    out = consumer.outputs[0]
    op = FusedElemwise(name, expr, len(kept), out.dtype, out.type.shape)
    return Node(op, kept, [out.type])


def _n_read(expr, n):
    """How many of the first n argument symbols expr reads."""
    symbols = free_symbols_of(expr)
    return sum(1 for k in range(n) if ARGS[k] in symbols)


@functools.lru_cache(maxsize=4096)
def _count(expr, sym):
    # (expressions recur: the same producer is asked about for each consumer, every pass)
    return expr.count(sym)


def _names(op):
    n = op.name
    return n[6:-1] if n.startswith("fused(") else n


def fuse_outputs(fgraph):
    """One sweep in execution order: each elementwise node absorbs what it can of its producers
    (so a chain collapses into its last op); the graph's reader index follows each replacement,
    so the cost grows with the graph, not with its square. Returns whether anything changed.

    A replaced node's reads leave the index, and an absorbed producer's, but not (cascade=False)
    those of nodes further up that went unread with them: the fusion decisions, and so the
    programs, were made that way (cascading fuses more, e.g. exp into its own gradient where
    the forward product of exp(x)*exp(x) is dropped, and the C changes)."""
    notes = []
    changed = False
    for node in list(fgraph.nodes):  # drop inputs read only for their shape
        if isinstance(node.op, Elemwise) and \
                _n_read(node.op.expr, len(node.inputs)) < len(node.inputs):
            new = prune_inputs(node.op.name, node.op.expr, node.inputs, node.outputs[0])
            out = new.outputs[0]
            if not new.inputs and out.type.is_static:  # nothing left to read: a constant
                out = Constant(new.op.reference(dims={}))
            fgraph.replace(node.outputs[0], out, cascade=False)
            changed = True
    declined = {}  # producer -> consumer ops it was declined for (compared, not hashed)
    for node in toposort(fgraph.outputs):  # (refresh would rebuild the reader index)
        while node is not None and isinstance(node.op, Elemwise):
            for k, inp in enumerate(node.inputs):
                p = inp.owner
                if p is None or not isinstance(p.op, Elemwise) or \
                        any(op == node.op for op in declined.get(p, ())):
                    continue
                reason = _decline_reason(fgraph, p, node)
                if reason:
                    declined.setdefault(p, []).append(node.op)
                    notes.append(f"not fusing {p.op} into {node.op}: {reason}")
                    continue
                fused = fuse_into(node, k, p).outputs[0]
                fgraph.replace(node.outputs[0], fused, cascade=False)
                fgraph.drop_if_dead(p, cascade=False)
                node, changed = fused.owner, True
                break
            else:
                node = None
    fgraph.refresh(dims=False)
    fgraph.fusion_notes = notes
    return changed


def _decline_reason(fgraph, producer, consumer):
    out = producer.outputs[0]
    if fgraph.is_output(out):
        return "its value is a function output"
    readers = fgraph.readers(out)
    if any(not isinstance(n.op, Elemwise) for n in readers):
        return "another reader is not elementwise"
    expensive = is_expensive(producer.op.expr)
    if len(readers) > 1 and expensive:
        return "it is expensive and has several readers (recomputing costs more than a buffer)"
    if len(readers) > 1 and _op_count(producer.op.expr) > MAX_RECOMPUTED_OPS:
        return (f"it has several readers and more than {MAX_RECOMPUTED_OPS} operations: recomputed "
                "in each, a chain of such values (a recurrence) would grow with its length")
    same = fgraph.dims.shape(out) == fgraph.dims.shape(consumer.outputs[0])
    if not same and expensive:
        return "it would be broadcast and recomputed per element"
    if len(consumer.inputs) + len(producer.inputs) > 48:
        return "too many inputs for one kernel"
    if depth(consumer.op.expr) + depth(producer.op.expr) > MAX_FUSED_DEPTH:
        return f"the fused expression would be more than {MAX_FUSED_DEPTH} operations deep"
    k = consumer.inputs.index(out)
    uses = _count(consumer.op.expr, ARGS[k])
    if tree_size(consumer.op.expr) + uses * tree_size(producer.op.expr) > MAX_FUSED_TREE:
        return f"the fused expression would have more than {MAX_FUSED_TREE} operations as a tree"
    return None


@register("fuse_elemwise")
def fuse_elemwise(fgraph):
    changed = fuse_outputs(fgraph)
    return fgraph, changed


class FusedReduce(Reduce):
    """reduce(kind, axes)(expr(inputs)): a reduction that computes its input elementwise as it
    reads, so the elementwise values are never stored. Inputs are full-size or size 1."""
    __props__ = ("kind", "axes", "keepdims", "expr", "nin", "value_dtype", "value_shape")

    def __init__(self, kind, axes, keepdims, expr, nin, value_dtype, value_shape):
        super().__init__(kind, axes, keepdims)
        self.expr, self.nin = expr, nin
        self.value_dtype, self.value_shape = value_dtype, tuple(value_shape)

    def __str__(self):
        return f"Reduce{{{self.kind}, axes={self.axes}}}(elementwise)"

    def value_type(self, node):
        """A stand-in variable with the shape of the values being reduced."""
        from ..ir.graph import Variable
        from ..ir.types import TensorType
        return Variable(TensorType(self.value_dtype, self.value_shape))

    def infer(self, input_types, ctx):
        from ..ir.types import TensorType
        return super().infer([TensorType(self.value_dtype, self.value_shape)], ctx)

    needs_dims = True

    def reference(self, *arrays, dims=None):
        from ..ir.ops.shape import _eval_dim
        with np.errstate(all="ignore"):
            values = np.asarray(self._numpy_fn(*arrays)).astype(self.value_dtype, copy=False)
        shape = tuple(_eval_dim(d, dims) for d in self.value_shape)
        return super().reference(np.broadcast_to(values, shape))

    @property
    def _numpy_fn(self):
        return Elemwise("v", self.expr, self.nin, self.value_dtype)._numpy_fn


def fuse_reductions(fgraph):
    """Each plain reduction absorbs the elementwise op that makes its input, where that op has
    no other reader. Returns whether anything changed."""
    changed = False
    for node in list(fgraph.nodes):
        if type(node.op) is not Reduce:
            continue
        x = node.inputs[0]
        p = x.owner
        if p is None or not isinstance(p.op, Elemwise) or fgraph.is_output(x):
            continue
        if fgraph.n_reads(x) != 1:
            fgraph.fusion_notes.append(f"not fusing {p.op} into {node.op}: its value has other readers")
            continue
        axes = node.op.axes
        if axes and list(axes) != list(range(axes[0], axes[0] + len(axes))):
            continue
        shape = fgraph.dims.shape(x)
        if any(fgraph.dims.shape(i) != shape and _size1(fgraph, i) is False for i in p.inputs):
            fgraph.fusion_notes.append(f"not fusing {p.op} into {node.op}: an input is broadcast")
            continue
        op = FusedReduce(node.op.kind, axes, node.op.keepdims, p.op.expr, len(p.inputs), x.dtype,
                         x.type.shape)
        new = Node(op, list(p.inputs), [node.outputs[0].type], node.constraints + p.constraints)
        fgraph.replace(node.outputs[0], new.outputs[0])
        changed = True
    fgraph.refresh(dims=False)
    return changed


def _size1(fgraph, v):
    from ..ir.types import size_of
    return size_of(fgraph.dims.shape(v)) == 1


@register("fuse_reductions")
def fuse_reductions_pass(fgraph):
    if not hasattr(fgraph, "fusion_notes"):
        fgraph.fusion_notes = []
    changed = fuse_reductions(fgraph)
    return fgraph, changed
