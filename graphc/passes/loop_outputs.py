"""Per-step outputs of a loop that nothing reads leave the loop's body before the body is
optimized: a scan stacks its step's products and activations for a gradient (graphc/scan.py),
and a function without that gradient must fuse its cell as if they were never stacked (the
lowering would drop their buffers, but fusion would already have kept them as kernel outputs)."""
from ..ir.inner_graph import InnerGraph
from ..ir.ops.loop import Loop


def drop_unused_stacked(fgraph):
    """Rebuild each Loop whose stacked outputs include some with no reader and not an output of
    the graph, without them; returns whether any changed."""
    changed = False
    for node in list(fgraph.nodes):
        op = node.op
        if not isinstance(op, Loop):
            continue
        nc = op.n_carry
        keep = [j for j, o in enumerate(node.outputs)
                if j < nc or fgraph.n_reads(o) or fgraph.is_output(o)]
        if len(keep) == len(node.outputs):
            continue
        values = dict(zip(op.__props__, op._props()))
        body = InnerGraph(op.body.inputs, [op.body.outputs[j] for j in keep])
        new = type(op)(**{**values, "body": body}).make_node(*node.inputs)
        new.constraints.extend(node.constraints)
        for j, out in zip(keep, new.outputs):
            out.name = node.outputs[j].name
            fgraph.replace(node.outputs[j], out)
        changed = True
    if changed:
        fgraph.refresh()
    return changed
