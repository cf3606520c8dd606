"""Matrix products. One op, Matmul(trans_a, trans_b), over 2-D or batched 3-D operands; the
vector cases of dot() are reshapes around it, so the kernel is always a (batched) gemm."""
import numpy as np

from ...errors import GraphcShapeError, GraphcTypeError
from ..graph import Op
from ..types import FLOAT_DTYPES, TensorType


def _t(x, trans):
    return np.swapaxes(x, -1, -2) if trans else x


class Matmul(Op):
    __props__ = ("trans_a", "trans_b")

    def __init__(self, trans_a=False, trans_b=False):
        self.trans_a, self.trans_b = bool(trans_a), bool(trans_b)

    def infer(self, input_types, ctx):
        a, b = input_types
        if a.ndim != b.ndim or a.ndim not in (2, 3):
            raise GraphcShapeError(f"matmul: operands must both be 2-D or both 3-D, got {a} and {b}")
        if a.dtype != b.dtype or a.dtype not in FLOAT_DTYPES:
            raise GraphcTypeError(f"matmul: operands must share a float dtype, got {a.dtype} and {b.dtype}")
        m, ka = (a.shape[-1], a.shape[-2]) if self.trans_a else a.shape[-2:]
        kb, n = (b.shape[-1], b.shape[-2]) if self.trans_b else b.shape[-2:]
        ctx.equal(ka, kb, f"inner dimensions of {a} @ {b}")
        batch = ()
        if a.ndim == 3:
            batch = (ctx.equal(a.shape[0], b.shape[0], "batch dimensions"),)
        return [TensorType(a.dtype, batch + (m, n))]

    def reference(self, a, b):
        return np.asarray(np.matmul(_t(a, self.trans_a), _t(b, self.trans_b)), order="C")

    def grad(self, node, output_grads):
        (a, b), (g,) = node.inputs, output_grads
        ta, tb = self.trans_a, self.trans_b
        ga = Matmul(tb, True)(b, g) if ta else Matmul(False, not tb)(g, b)
        gb = Matmul(True, ta)(g, a) if tb else Matmul(not ta, False)(a, g)
        return [ga, gb]


class GemmUpdate(Op):
    """c + alpha * op(a) @ op(b): a gemm that accumulates into c (beta = 1). Made by the
    fuse_gemm pass from `w - lr * (x.T @ g)`, so the product is never stored on its own."""
    __props__ = ("trans_a", "trans_b", "alpha")

    def __init__(self, trans_a, trans_b, alpha):
        self.trans_a, self.trans_b, self.alpha = bool(trans_a), bool(trans_b), float(alpha)

    def infer(self, input_types, ctx):
        c = input_types[0]
        (prod,) = Matmul(self.trans_a, self.trans_b).infer(input_types[1:], ctx)
        for k, (x, y) in enumerate(zip(c.shape, prod.shape)):
            ctx.equal(x, y, f"gemm update axis {k}")
        return [c]

    def reference(self, c, a, b):
        prod = Matmul(self.trans_a, self.trans_b).reference(a, b)
        return (c + np.asarray(self.alpha, c.dtype) * prod).astype(c.dtype)


def dot(a, b):
    """numpy.dot for rank <= 2 (and matmul for a batched 3-D pair)."""
    from ..constructors import as_variable
    from .elemwise import cast, mul_op
    from .reduce import reduce_sum
    from .shape import reshape
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        return mul_op(a, b)
    dtype = np.result_type(a.dtype, b.dtype).name
    if dtype not in FLOAT_DTYPES:
        dtype = "float64"
    a, b = cast(a, dtype), cast(b, dtype)
    if a.ndim == 1 and b.ndim == 1:
        return reduce_sum(mul_op(a, b), 0)
    if a.ndim == 3 and b.ndim == 3:
        return Matmul()(a, b)
    if a.ndim > 2 or b.ndim > 2:
        raise GraphcShapeError(f"dot: ranks {a.ndim} and {b.ndim} are not supported (use 1-D, 2-D "
                               "or a batched 3-D pair)")
    a2 = reshape(a, (1, a.type.shape[0])) if a.ndim == 1 else a
    b2 = reshape(b, (b.type.shape[0], 1)) if b.ndim == 1 else b
    out = Matmul()(a2, b2)
    if a.ndim == 1:
        return reshape(out, (out.type.shape[1],))
    if b.ndim == 1:
        return reshape(out, (out.type.shape[0],))
    return out


def matmul(a, b):
    return dot(a, b)
