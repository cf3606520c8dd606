"""Elementwise fusion: chains of elementwise ops become one op whose scalar expression is the
composition of theirs (sympy substitutes one into the other), so the chain runs as one loop.

A producer is absorbed into its consumer when
  - its value is not itself a function output,
  - every reader of it is an elementwise op (so the producer disappears), and
  - it is cheap (no exp/log/tanh/...) or the consumer is its only reader: recomputing an
    expensive value for several consumers costs more than keeping a buffer.
A producer whose output is smaller than the consumer's (it would be broadcast) is absorbed only
if it is cheap. Reasons for declining are kept in `fgraph.fusion_notes` for the dump.
"""
import sympy

from ..ir.graph import Node
from ..ir.ops.elemwise import ARGS, Elemwise
from ..ir.ops import scalar_fns as sf
from .manager import register

_EXPENSIVE = (sympy.exp, sympy.log, sympy.tanh, sympy.sin, sympy.cos, sf.sigmoid, sf.softplus,
              sf.log1p, sf.expm1, sympy.Pow)


def is_expensive(expr):
    for sub in sympy.preorder_traversal(expr):
        if isinstance(sub, sympy.Pow) and sub.exp in (2, 3, -1, -2):
            continue
        if isinstance(sub, _EXPENSIVE):
            return True
    return False


class FusedElemwise(Elemwise):
    """An elementwise op made by fusion: its output dtype is fixed, its inputs are not cast."""
    __props__ = ("name", "expr", "nin", "dtype_rule")

    def compute_dtype(self, inputs):
        return None


def fuse_into(consumer, k, producer):
    """The consumer node with its input k replaced by the producer's expression."""
    c_in = list(consumer.inputs)
    new_inputs = c_in[:k] + c_in[k + 1:]
    # Renumber: consumer args except k keep their order, then producer inputs not yet present.
    mapping_c = {}
    for pos, v in enumerate(c_in):
        if pos != k:
            mapping_c[ARGS[pos]] = ARGS[new_inputs.index(v)]
    used = ARGS[k] in consumer.op.expr.free_symbols
    mapping_p = {}
    for pos, v in enumerate(producer.inputs if used else ()):
        if v not in new_inputs:
            new_inputs.append(v)
        mapping_p[ARGS[pos]] = ARGS[new_inputs.index(v)]
    hole = sympy.Dummy("hole")
    c_expr = consumer.op.expr.xreplace({**mapping_c, ARGS[k]: hole})
    expr = c_expr.xreplace({hole: producer.op.expr.xreplace(mapping_p)}) if used else c_expr
    out = consumer.outputs[0]
    name = f"fused({_names(producer.op)},{_names(consumer.op)})"
    op = FusedElemwise(name, expr, len(new_inputs), out.dtype)
    return Node(op, new_inputs, [out.type], consumer.constraints + producer.constraints)


def _names(op):
    n = op.name
    return n[6:-1] if n.startswith("fused(") else n


def fuse_outputs(fgraph):
    notes = []
    outputs_set = set(fgraph.outputs)
    changed = True
    while changed:
        changed = False
        clients = fgraph.clients()
        for node in fgraph.nodes:
            if not isinstance(node.op, Elemwise):
                continue
            for k, inp in enumerate(node.inputs):
                p = inp.owner
                if p is None or not isinstance(p.op, Elemwise):
                    continue
                reason = _decline_reason(fgraph, p, node, clients, outputs_set)
                if reason:
                    notes.append(f"not fusing {p.op} into {node.op}: {reason}")
                    continue
                new = fuse_into(node, k, p)
                _replace_output(fgraph, node.outputs[0], new.outputs[0])
                changed = True
                break
            if changed:
                break
    fgraph.fusion_notes = notes
    return fgraph


def _decline_reason(fgraph, producer, consumer, clients, outputs_set):
    out = producer.outputs[0]
    if out in outputs_set:
        return "its value is a function output"
    readers = clients.get(out, [])
    if any(not isinstance(n.op, Elemwise) for n, _ in readers):
        return "another reader is not elementwise"
    expensive = is_expensive(producer.op.expr)
    if len({n for n, _ in readers}) > 1 and expensive:
        return "it is expensive and has several readers (recomputing costs more than a buffer)"
    same = fgraph.dims.shape(out) == fgraph.dims.shape(consumer.outputs[0])
    if not same and expensive:
        return "it would be broadcast and recomputed per element"
    if len(consumer.inputs) + len(producer.inputs) > 48:
        return "too many inputs for one kernel"
    return None


def _replace_output(fgraph, old, new):
    """Point every reader (and the outputs list) of `old` at `new`, then refresh the order."""
    for node in fgraph.nodes:
        node.inputs = [new if i is old else i for i in node.inputs]
    fgraph.outputs = [new if o is old else o for o in fgraph.outputs]
    fgraph.refresh(dims=False)


@register("fuse_elemwise", levels=("O2", "O3"))
def fuse_elemwise(fgraph):
    return fuse_outputs(fgraph)
