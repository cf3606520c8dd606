"""Gemm update: `c + k * (a @ b)` (an SGD step on a weight: w - lr * x.T @ g) becomes one gemm
that accumulates into c, so the weight-sized product is never stored and read back. With the
memory planner's in-place updates the gemm then writes straight into the weight."""
import sympy

from ..ir.graph import Constant, Node
from ..ir.ops.blas import GemmUpdate, Matmul
from ..ir.ops.elemwise import ARGS, Elemwise
from ..ir.ops.scalar_expr import thaw
from .manager import register


def _linear_update(node):
    """(i, j, k) when node computes inputs[i] + k * inputs[j] for a constant k, else None."""
    expr = node.op.expr
    subs = {ARGS[n]: sympy.Float(float(v.data.reshape(()).item()))
            for n, v in enumerate(node.inputs) if isinstance(v, Constant) and v.data.size == 1}
    expr = thaw(expr.xreplace(subs))  # matching a linear form: sympy's algebra is wanted here
    if not isinstance(expr, sympy.Expr) or node.outputs[0].dtype not in ("float32", "float64"):
        return None
    expr = sympy.expand(expr)
    free = [s for s in expr.free_symbols if s in ARGS]
    if len(free) != 2:
        return None
    for s_i, s_j in (free, free[::-1]):
        k = expr.coeff(s_j)
        if expr.coeff(s_i) == 1 and k.is_Number and sympy.expand(expr - s_i - k * s_j) == 0:
            return ARGS.index(s_i), ARGS.index(s_j), float(k)
    return None


def fuse_gemm(fgraph):
    clients = fgraph.clients()
    outputs = set(fgraph.outputs)
    for node in list(fgraph.nodes):
        if not isinstance(node.op, Elemwise) or len(node.outputs) != 1:
            continue
        found = _linear_update(node)
        if found is None:
            continue
        i, j, k = found
        c, prod, out = node.inputs[i], node.inputs[j], node.outputs[0]
        m = prod.owner
        if m is None or type(m.op) is not Matmul or prod in outputs or len(clients.get(prod, [])) != 1:
            continue
        shape = fgraph.dims.shape(out)
        if fgraph.dims.shape(c) != shape or fgraph.dims.shape(prod) != shape or \
                not (c.dtype == prod.dtype == out.dtype):
            continue
        new = Node(GemmUpdate(m.op.trans_a, m.op.trans_b, k), [c] + list(m.inputs), [out.type],
                   node.constraints + m.constraints)
        for reader, _ in clients.get(out, []):
            reader.inputs = [new.outputs[0] if v is out else v for v in reader.inputs]
        fgraph.outputs = [new.outputs[0] if o is out else o for o in fgraph.outputs]
        fgraph.refresh(dims=False)
        clients = fgraph.clients()
        outputs = set(fgraph.outputs)
    return fgraph


@register("fuse_gemm", levels=("O3",))
def fuse_gemm_pass(fgraph):
    return fuse_gemm(fgraph)
