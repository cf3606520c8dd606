"""Local rewrites: small named functions that match one node and return its replacement.

`rewrite_graph` rebuilds the graph bottom-up, offering every node to each rewrite until none
applies (a fixpoint). Rewrites are registered into groups with the `local_rewrite` decorator.
"""
import numpy as np

from ..ir.graph import Constant, Node, toposort

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
        if not changed:
            break
    return outputs


def rewrite_fgraph(fgraph, group, log=None):
    fgraph.outputs = rewrite_outputs(fgraph.outputs, GROUPS.get(group, []), log=log)
    return fgraph


# --- matching helpers ---------------------------------------------------------------------

def op_name(v):
    """Name of the elementwise op that produced v ('' for anything else)."""
    return getattr(v.owner.op, "name", "") if v.owner is not None else ""


def is_constant(v, value=None):
    if not isinstance(v, Constant):
        return False
    if value is None:
        return True
    return v.data.size >= 1 and bool(np.all(v.data == value))
