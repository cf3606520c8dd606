"""Merge products: a sum of matrix products becomes one product of concatenations,

    a1.T @ b1 + a2.T @ b2 + ...  ->  concat([a1, a2, ...]).T @ concat([b1, b2, ...]),

the operands joined along their inner (summed) axis. Back-propagation through the steps of an
unrolled RNN makes such sums: the weight gradient is one small-depth product per step (a depth
of the batch size, 32), which a BLAS runs far below its speed, and the partial sums are added
one by one. One deep product instead: unrolled LSTM step, 31 products of depth 32 and their
sum (~20 ms) become one product of depth 992 plus two copies.
"""
from ..ir.ops import elemwise as E
from ..ir.ops.blas import Matmul
from ..ir.ops.shape import Concatenate
from .manager import register
from .rewriting import local_rewrite, made_by, rewrite_fgraph


def _inner_axes(op):
    """Axes of the (a, b) operands of a 2-D Matmul that the product sums over."""
    return (0 if op.trans_a else 1), (1 if op.trans_b else 0)


def _parts(v, axis):
    """v as the list of the tensors it concatenates along `axis` (just [v] otherwise)."""
    if v.owner is not None and isinstance(v.owner.op, Concatenate) and v.owner.op.axis == axis:
        return list(v.owner.inputs)
    return [v]


@local_rewrite("merge_products")
def add_of_products(node):
    """add(op(a) @ op(b), op(c) @ op(d)) -> op(concat(a, c)) @ op(concat(b, d))."""
    if not made_by(node.outputs[0], E.add_op):
        return None
    left, right = (v.owner for v in node.inputs)
    if left is None or right is None or type(left.op) is not Matmul or left.op != right.op:
        return None
    out = node.outputs[0]
    if out.ndim != 2 or any(tuple(v.type.shape) != tuple(out.type.shape) or v.dtype != out.dtype
                            for v in node.inputs):
        return None
    axis_a, axis_b = _inner_axes(left.op)
    a = _parts(left.inputs[0], axis_a) + _parts(right.inputs[0], axis_a)
    b = _parts(left.inputs[1], axis_b) + _parts(right.inputs[1], axis_b)
    return Matmul(left.op.trans_a, left.op.trans_b)(Concatenate(axis_a)(*a), Concatenate(axis_b)(*b))


@register("merge_products")
def merge_products(fgraph):
    return rewrite_fgraph(fgraph, "merge_products")
