"""Local rewrites: small named functions that match one node and return its replacement.

`rewrite_graph` rebuilds the graph bottom-up, offering every node to each rewrite until none
applies (a fixpoint). Rewrites are registered into groups with the `local_rewrite` decorator.
"""
import numpy as np

from ..ir.graph import Constant, Node, toposort
from ..ir.ops import scalar_fns as sf
from ..ir.ops.elemwise import Elemwise
from ..ir.types import DTYPES

GROUPS = {}


def local_rewrite(*groups):
    def deco(fn):
        for g in groups:
            GROUPS.setdefault(g, []).append(fn)
        return fn
    return deco


def rebuild(node, new_inputs):
    """The same op applied to new inputs (a new node); the old node is left untouched."""
    return Node(node.op, new_inputs, [o.type for o in node.outputs], node.constraints)


def rewrite_outputs(outputs, rewrites, max_rounds=8, log=None):
    """Apply `rewrites` everywhere under `outputs`; returns the new output variables."""
    return rewrite_outputs_changed(outputs, rewrites, max_rounds, log)[0]


def rewrite_outputs_changed(outputs, rewrites, max_rounds=8, log=None):
    """rewrite_outputs, and whether any rewrite fired. The graph is rebuilt, not edited: the
    nodes above a replacement are new, so this also serves graphs that are not a pass's own
    (the stabilized cost that grad differentiates)."""
    fired = False
    for _ in range(max_rounds):
        replaced = {}
        changed = False
        for node in toposort(outputs):
            inputs = [replaced.get(i, i) for i in node.inputs]
            new_node = node if inputs == node.inputs else rebuild(node, inputs)
            for k, o in enumerate(node.outputs):
                if new_node is not node:
                    replaced[o] = new_node.outputs[k]
            if len(new_node.outputs) == 1:
                for rw in rewrites:
                    out = rw(new_node)
                    if out is not None and out is not new_node.outputs[0]:
                        if log is not None:
                            log.append(f"{rw.__name__}: {new_node} -> {out.owner.op if out.owner else out.label()}")
                        replaced[node.outputs[0]] = out
                        changed = True
                        break
        outputs = [replaced.get(o, o) for o in outputs]
        fired = fired or changed
        if not changed:
            break
    return outputs, fired


def rewrite_fgraph(fgraph, group, log=None):
    """Run the rewrites of `group` over the graph: returns (fgraph, changed)."""
    fgraph.outputs, changed = rewrite_outputs_changed(fgraph.outputs, GROUPS.get(group, []), log=log)
    return fgraph, changed


def outputs_changed(before, after):
    """Whether a rebuilt graph differs: a rebuild makes new nodes up to every output above a
    change, so the outputs' identities tell."""
    return len(before) != len(after) or any(a is not b for a, b in zip(before, after))


# --- matching helpers ---------------------------------------------------------------------
# Rewrites match ops by identity (the op objects of graphc.ir.ops: E.add_op, E.log_op, ...) or
# by class, never by name: names are for people, and a fused op may carry any name. This is the
# one place that decides what "is an add" means.

def applies(node, op):
    """Whether `node` applies `op` (an op object: the same one, or one with equal props)."""
    mine = node.op
    return mine is op or (type(mine) is type(op) and mine == op)


def made_by(v, op):
    """Whether variable v is the output of a node applying `op` (False for leaves)."""
    return v.owner is not None and applies(v.owner, op)


def is_cast(op):
    """A dtype conversion: the Elemwise that applies the cast function of its dtype rule
    (comparisons also have the rule "bool", but another expression)."""
    return type(op) is Elemwise and op.dtype_rule in DTYPES and \
        op.expr.func is sf.make_cast(op.dtype_rule)


def is_constant(v, value=None):
    if not isinstance(v, Constant):
        return False
    if value is None:
        return True
    return v.data.size >= 1 and bool(np.all(v.data == value))
