"""Matrix products. One op, Matmul(trans_a, trans_b), over 2-D or batched 3-D operands; dot
(numpy's, any rank), matmul (numpy's @) and batched_dot (Theano's) are reshapes and transposes
around it, so the kernel is always a (batched) gemm."""
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


def _float_pair(a, b):
    """Both operands as variables of one float dtype (numpy's promotion; integers give float64)."""
    from ..constructors import as_variable
    from .elemwise import cast
    a, b = as_variable(a), as_variable(b)
    dtype = np.result_type(a.dtype, b.dtype).name
    if dtype not in FLOAT_DTYPES:
        dtype = "float64"
    return cast(a, dtype), cast(b, dtype)


def dot(a, b):
    """numpy.dot: for N-D operands a sum over a's last axis and b's second-to-last (b's only
    axis when b is 1-D), so (2,3,4) . (5,4,6) is (2,3,5,6). Batched products are matmul's."""
    from ..constructors import as_variable
    from .elemwise import mul_op
    from .reduce import reduce_sum
    from .shape import reshape, transpose
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0:
        return mul_op(a, b)
    a, b = _float_pair(a, b)
    if a.ndim == 1 and b.ndim == 1:
        return reduce_sum(mul_op(a, b), 0)
    if a.ndim == 2 and b.ndim == 2:  # one Matmul node: the passes (gemm fusion, scan's hoist) match it
        return Matmul()(a, b)
    # General case: one 2-D product of a as (rows, k) and b as (k, columns), reshaped back.
    lead, k = tuple(a.type.shape[:-1]), a.type.shape[-1]
    kb = b.type.shape[0] if b.ndim == 1 else b.type.shape[-2]
    if isinstance(k, int) and isinstance(kb, int) and k != kb:
        raise GraphcShapeError(f"dot {a.label()} . {b.label()}: a's last axis ({k}) must match "
                               f"b's {'only' if b.ndim == 1 else 'second-to-last'} axis ({kb}); "
                               f"shapes {a.type} and {b.type} (for a batched product use matmul)")
    a2 = reshape(a, (-1, k))
    if b.ndim == 1:
        b2, tail = reshape(b, (b.type.shape[0], 1)), ()
    else:  # move b's contracted axis (second-to-last) to the front, flatten the rest
        perm = (b.ndim - 2,) + tuple(range(b.ndim - 2)) + (b.ndim - 1,)
        b2 = reshape(transpose(b, perm), (b.type.shape[-2], -1))
        tail = tuple(b.type.shape[:-2]) + (b.type.shape[-1],)
    return reshape(Matmul()(a2, b2), lead + tail)


def matmul(a, b):
    """numpy.matmul (the @ operator) for ranks 1 to 3: dot, except that two 3-D operands are a
    batched product over their first axis (which must match) and 2-D @ 3-D broadcasts a."""
    from ..constructors import as_variable
    from .shape import transpose
    a, b = as_variable(a), as_variable(b)
    if a.ndim == 0 or b.ndim == 0 or a.ndim > 3 or b.ndim > 3:
        raise GraphcShapeError(f"matmul {a.label()} @ {b.label()}: operands must have rank 1 to 3, "
                               f"got ranks {a.ndim} and {b.ndim} (use dot for a scalar or "
                               "reshape higher ranks to one batch axis)")
    if a.ndim == 3 and b.ndim == 3:
        return Matmul()(*_float_pair(a, b))
    if a.ndim == 2 and b.ndim == 3:  # dot gives (m, batch, n); matmul puts the batch first
        return transpose(dot(a, b), (1, 0, 2))
    return dot(a, b)


def batched_dot(a, b):
    """Theano's batched_dot: out[i] = dot(a[i], b[i]) over the shared first axis, for operands
    of rank 2 or 3 ((B,n).(B,n) -> (B,), (B,m,k).(B,k) -> (B,m), (B,k).(B,k,n) -> (B,n))."""
    from ..constructors import as_variable
    from .elemwise import mul_op
    from .reduce import reduce_sum
    from .shape import reshape
    a, b = as_variable(a), as_variable(b)
    if a.ndim not in (2, 3) or b.ndim not in (2, 3):
        raise GraphcShapeError(f"batched_dot {a.label()}, {b.label()}: operands must have rank 2 or "
                               f"3 (a batch axis first), got ranks {a.ndim} and {b.ndim}")
    a, b = _float_pair(a, b)
    if a.ndim == 2 and b.ndim == 2:
        return reduce_sum(mul_op(a, b), 1)
    a3 = reshape(a, (a.type.shape[0], 1, a.type.shape[1])) if a.ndim == 2 else a
    b3 = reshape(b, tuple(b.type.shape) + (1,)) if b.ndim == 2 else b
    out = Matmul()(a3, b3)
    if a.ndim == 2:
        return reshape(out, (out.type.shape[0], out.type.shape[2]))
    if b.ndim == 2:
        return reshape(out, (out.type.shape[0], out.type.shape[1]))
    return out
