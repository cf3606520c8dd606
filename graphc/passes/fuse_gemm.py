"""Gemm update: `c + k * (a @ b)` (an SGD step on a weight: w - lr * x.T @ g) becomes one gemm
that accumulates into c, so the weight-sized product is never stored and read back. With the
memory planner's in-place updates the gemm then writes straight into the weight."""
import sympy

from ..ir.graph import Constant, Node
from ..ir.ops.blas import GemmUpdate, Matmul
from ..ir.ops.elemwise import ARGS, Elemwise
from ..ir.ops.scalar_expr import thaw
from .manager import register


def _linear_updates(node):
    """Every (i, j, k) such that node computes inputs[i] + k * inputs[j] for a constant k (both
    orders of `a + b`), in input order: the first whose inputs[j] is a product is fused."""
    expr = node.op.expr
    subs = {ARGS[n]: sympy.Float(float(v.data.reshape(()).item()))
            for n, v in enumerate(node.inputs) if isinstance(v, Constant) and v.data.size == 1}
    expr = thaw(expr.xreplace(subs))  # matching a linear form: sympy's algebra is wanted here
    if not isinstance(expr, sympy.Expr) or node.outputs[0].dtype not in ("float32", "float64"):
        return []
    expr = sympy.expand(expr)
    # Sorted: a set of symbols iterates in string-hash order, which changes per process.
    free = sorted((s for s in expr.free_symbols if s in ARGS), key=ARGS.index)
    if len(free) != 2:
        return []
    found = []
    for s_i, s_j in (free, free[::-1]):
        k = expr.coeff(s_j)
        if expr.coeff(s_i) == 1 and k.is_Number and sympy.expand(expr - s_i - k * s_j) == 0:
            found.append((ARGS.index(s_i), ARGS.index(s_j), float(k)))
    return found


def fuse_gemm(fgraph):
    """Returns whether any update became a gemm."""
    changed = False
    for node in list(fgraph.nodes):
        if not isinstance(node.op, Elemwise) or len(node.outputs) != 1:
            continue
        # Cheap tests first: expanding a long fused expression can take sympy many seconds.
        variables = [v for v in node.inputs if not (isinstance(v, Constant) and v.data.size == 1)]
        if len(variables) != 2 or not any(_fusible_product(fgraph, v) for v in variables):
            continue
        # `x @ a + y @ b`: either product may become the gemm's; the first that qualifies does.
        found = [(i, j, k) for i, j, k in _linear_updates(node)
                 if _fusible_product(fgraph, node.inputs[j])]
        if not found:
            continue
        i, j, k = found[0]
        c, prod, out = node.inputs[i], node.inputs[j], node.outputs[0]
        m = prod.owner
        shape = fgraph.dims.shape(out)
        if fgraph.dims.shape(c) != shape or fgraph.dims.shape(prod) != shape or \
                not (c.dtype == prod.dtype == out.dtype):
            continue
        new = Node(GemmUpdate(m.op.trans_a, m.op.trans_b, k), [c] + list(m.inputs), [out.type],
                   node.constraints + m.constraints)
        fgraph.replace(out, new.outputs[0])
        changed = True
    fgraph.refresh(dims=False)
    return changed


def _fusible_product(fgraph, v):
    """v is a plain matrix product read only by the update (so it need never be stored)."""
    return v.owner is not None and type(v.owner.op) is Matmul and not fgraph.is_output(v) and \
        fgraph.n_reads(v) == 1


@register("fuse_gemm")
def fuse_gemm_pass(fgraph):
    changed = fuse_gemm(fgraph)
    return fgraph, changed
