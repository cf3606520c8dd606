"""Fold the elementwise work around training batch norm into its kernels (ResNet's pattern):

    relu(BatchNormTrain(x)[0])             -> BatchNormTrainRelu(x)           (one pass writes y)
    relu(BatchNormTrain(x)[0] + r)         -> BatchNormTrainRelu(x, r)        (residual)
    BatchNormTrainGrad(.., drelu(g, y, g)) -> BatchNormTrainReluGrad(.., g, y) (mask as gy is read)

Only where the value folded away has no other reader and is no function output (otherwise the
unfused kernels stay: the value must be stored anyway). A ReLU gradient that also flows to a
residual branch (read twice) is left to elementwise fusion, which computes it once with the add
that makes g. Runs before fuse_elemwise, which would hide the relu and drelu in fused chains.
`GRAPHC_DISABLE_PASSES=fuse_batch_norm` turns it off (the unfused graph, for comparison)."""
from ..ir.graph import Node
from ..ir.ops.batch_norm_ops import (BatchNormTrain, BatchNormTrainGrad, BatchNormTrainRelu,
                                     BatchNormTrainReluGrad)
from ..ir.ops.elemwise import Elemwise, _grad_expr, add_op, relu_op
from .manager import register


def _only_reader(fgraph, v):
    """The one node that reads v, once, where v is no output; else None."""
    if fgraph.is_output(v) or fgraph.n_reads(v) != 1:
        return None
    return next(iter(fgraph.readers(v)))


def _same_type(fgraph, a, b):
    return a.dtype == b.dtype and fgraph.dims.shape(a) == fgraph.dims.shape(b)


def _forward_match(fgraph, node):
    """(relu node, residual or None, None) that fold into `node`'s kernel, or (None, None,
    reason): reason None where no relu follows at all (nothing to say)."""
    y0 = node.outputs[0]
    readers = [n.op for n in fgraph.readers(y0)]
    if relu_op not in readers and add_op not in readers:
        return None, None, None
    reader = _only_reader(fgraph, y0)
    if reader is None:
        return None, None, "its output has other readers or is a function output"
    if reader.op == relu_op:
        return reader, None, None
    a, b = reader.inputs
    r = b if a is y0 else a
    if r is y0 or not _same_type(fgraph, r, y0):
        return None, None, "the add's other operand is not a residual of y's shape and dtype"
    relu = _only_reader(fgraph, reader.outputs[0])
    if relu is None or relu.op != relu_op:
        return None, None, "the add's result is not read by one relu alone"
    return relu, r, None


def _drelu_expr():
    return _grad_expr(relu_op.expr, 1, 0)


def _gradient_match(fgraph, node):
    """(g, y) with the BatchNormTrainGrad's gy = drelu(g, y, g) read by it alone, or (None, reason)."""
    gz = node.inputs[4]
    p = gz.owner
    if p is None or not isinstance(p.op, Elemwise) or p.op.name != "drelu" or \
            p.op.expr != _drelu_expr():
        return None, None
    if _only_reader(fgraph, gz) is None:
        return None, "the ReLU's gradient has other readers (a residual branch) or is an output"
    _, y, g = p.inputs
    x = node.inputs[0]
    if not (_same_type(fgraph, g, x) and _same_type(fgraph, y, x)):
        return None, "the ReLU's gradient does not match x's shape and dtype"
    return (g, y), None


def fuse_batch_norm(fgraph):
    """Returns (changed, notes): notes say where a pattern was found but not folded, and why."""
    changed, notes = False, []
    for node in list(fgraph.nodes):
        if type(node.op) is BatchNormTrain:
            relu, r, reason = _forward_match(fgraph, node)
            if relu is None:
                if reason:
                    notes.append(f"not folding relu into {node.op}: {reason}")
                continue
            op = BatchNormTrainRelu(node.op.eps, residual=r is not None)
            inputs = list(node.inputs) + ([r] if r is not None else [])
            constraints = node.constraints + relu.constraints
            if r is not None:
                constraints = constraints + relu.inputs[0].owner.constraints
            new = Node(op, inputs, [o.type for o in node.outputs], constraints)
            fgraph.replace(relu.outputs[0], new.outputs[0])
            for old, out in zip(node.outputs[1:], new.outputs[1:]):
                fgraph.replace(old, out)
            changed = True
        elif type(node.op) is BatchNormTrainGrad:
            found, reason = _gradient_match(fgraph, node)
            if found is None:
                if reason:
                    notes.append(f"not folding drelu into {node.op}: {reason}")
                continue
            constraints = node.constraints + node.inputs[4].owner.constraints
            new = Node(BatchNormTrainReluGrad(node.op.eps), list(node.inputs[:4]) + list(found),
                       [o.type for o in node.outputs], constraints)
            for old, out in zip(node.outputs, new.outputs):
                fgraph.replace(old, out)
            changed = True
    if changed:
        fgraph.refresh(dims=False)
    fgraph.batch_norm_notes = notes
    return changed, notes


@register("fuse_batch_norm")
def fuse_batch_norm_pass(fgraph):
    changed, _ = fuse_batch_norm(fgraph)
    return fgraph, changed
