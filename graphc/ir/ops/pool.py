"""2-D max and average pooling over the last two axes of NCHW tensors, with Caffe's rules.

Output size (ceil_mode=True, Caffe): out = ceil((H + 2p - k) / s) + 1, then clipped so that the
last window starts inside the image (not in the right/bottom padding):
    out = min(out, ceil((H + p) / s)).
(Caffe clips only when p > 0; with p == 0 and s > k an unclipped last window would be empty, so
the clip is applied always. ceil_mode=False gives floor((H + 2p - k) / s) + 1, as PyTorch.)

Max pooling takes the maximum over the window clipped to the image (padding is never the
maximum) and returns the argmax as a second output (int32 offset ih*W + iw in the plane); its
gradient routes to the argmax. Ties go to the first element in row-major window order; a NaN
wins over any number (as numpy's max). Average pooling divides by the window size clipped to
the padded bounds (Caffe; PyTorch's count_include_pad=True): padding counts as zeros, the part
of a ceil-mode window beyond the padding does not count.
"""
import functools

import numpy as np
import sympy

from ...errors import GraphcShapeError, GraphcTypeError
from ..graph import Op
from ..types import FLOAT_DTYPES, TensorType, simplify_dim
from .conv import div_dim, pair, shape_str


@functools.lru_cache(maxsize=4096)  # (pure; a layer's sizes recur in its gradient's graph)
def pool_out_dim(size, k, s, p, ceil_mode=True):
    if isinstance(size, int):
        if ceil_mode:
            out = -(-(size + 2 * p - k) // s) + 1
            return min(out, -(-(size + p) // s))
        return (size + 2 * p - k) // s + 1
    size = sympy.sympify(size)
    if ceil_mode:
        out = div_dim(size + 2 * p - k, s, up=True) + 1
        if s + p <= k:  # the last window starts before size + 2p - k + s <= size + p: no clip
            return simplify_dim(out)
        return simplify_dim(sympy.Min(out, div_dim(size + p, s, up=True)))
    return simplify_dim(div_dim(size + 2 * p - k, s) + 1)


def _eval(d, dims):
    return d if isinstance(d, int) else int(sympy.sympify(d).subs(dims))


class _PoolBase(Op):
    __props__ = ("kernel", "stride", "padding", "ceil_mode")
    kind = "pool"

    def __init__(self, kernel, stride, padding, ceil_mode=True):
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.padding, self.ceil_mode = tuple(padding), bool(ceil_mode)

    def _desc(self):
        return (f"kernel={self.kernel}, stride={self.stride}, padding={self.padding}"
                + ("" if self.ceil_mode else ", ceil_mode=False"))

    def out_hw(self, h, w):
        return (pool_out_dim(h, self.kernel[0], self.stride[0], self.padding[0], self.ceil_mode),
                pool_out_dim(w, self.kernel[1], self.stride[1], self.padding[1], self.ceil_mode))

    def _check_input(self, t, what="the input"):
        where = f"{self.kind}({self._desc()})"
        if t.ndim != 4:
            raise GraphcShapeError(f"{where}: {what} must be 4-D (NCHW), got {t}")
        if t.dtype not in FLOAT_DTYPES:
            raise GraphcTypeError(f"{where}: {what} must be float32 or float64, got {t}")
        for size, k, p, axis in ((t.shape[2], self.kernel[0], self.padding[0], "height"),
                                 (t.shape[3], self.kernel[1], self.padding[1], "width")):
            if isinstance(size, int) and k > size + 2 * p:
                raise GraphcShapeError(f"{where}: the window {axis} {k} is larger than the padded "
                                       f"input {axis} {size} + 2*{p} = {size + 2 * p} (input "
                                       f"{shape_str(t.shape)})")
        return where

    # numpy: window bounds per output row/column, as the C kernels compute them
    def _bounds(self, size, out, axis):
        k, s, p = self.kernel[axis], self.stride[axis], self.padding[axis]
        start = np.arange(out) * s - p
        end = np.minimum(start + k, size + p)
        pool = end - start
        return np.maximum(start, 0), np.minimum(end, size), pool


class MaxPool2d(_PoolBase):
    """x -> (y, argmax): argmax is the int32 offset ih*W + iw of the maximum in its plane."""
    nout = 2
    kind = "max_pool2d"

    def infer(self, input_types, ctx):
        (t,) = input_types
        self._check_input(t)
        shape = t.shape[:2] + self.out_hw(*t.shape[2:])
        return [TensorType(t.dtype, shape), TensorType("int32", shape)]

    def reference(self, x):
        n, c, h, w = x.shape
        ho, wo = self.out_hw(h, w)
        hs, he, _ = self._bounds(h, ho, 0)
        ws, we, _ = self._bounds(w, wo, 1)
        best = x[:, :, hs][:, :, :, ws].copy()
        arg = np.broadcast_to((hs[:, None] * w + ws[None, :]).astype(np.int64), best.shape).copy()
        for i in range(self.kernel[0]):
            ih = hs[:, None] + i
            okh = (ih < he[:, None])
            for j in range(self.kernel[1]):
                iw = ws[None, :] + j
                ok = okh & (iw < we[None, :])
                v = x[:, :, np.minimum(ih, h - 1)[:, 0]][:, :, :, np.minimum(iw, w - 1)[0]]
                take = ok & ((v > best) | (np.isnan(v) & ~np.isnan(best)))
                best = np.where(take, v, best)
                arg = np.where(take, ih * w + iw, arg)
        return best, arg.astype(np.int32)

    def grad(self, node, output_grads):
        x = node.inputs[0]
        gy = output_grads[0]
        return [MaxPool2dGrad(*self._props(), input_hw=x.type.shape[2:])(gy, node.outputs[1])]


class MaxPool2dGrad(_PoolBase):
    """(gy, argmax) -> gx: each gy added at its argmax."""
    __props__ = _PoolBase.__props__ + ("input_hw",)
    kind = "max_pool2d_grad"
    needs_dims = True

    def __init__(self, kernel, stride, padding, ceil_mode=True, input_hw=None):
        super().__init__(kernel, stride, padding, ceil_mode)
        self.input_hw = tuple(input_hw)

    def infer(self, input_types, ctx):
        gy, idx = input_types
        for a, b, what in zip(gy.shape, idx.shape, "NCHW"):
            ctx.equal(a, b, f"{self.kind}: gradient vs argmax axis {what}")
        return [TensorType(gy.dtype, gy.shape[:2] + self.input_hw)]

    def reference(self, gy, idx, dims=None):
        n, c = gy.shape[:2]
        h, w = (_eval(d, dims) for d in self.input_hw)
        gx = np.zeros((n * c, h * w), dtype=gy.dtype)
        rows = np.repeat(np.arange(n * c), gy[0, 0].size)
        np.add.at(gx, (rows, idx.reshape(-1).astype(np.int64)), gy.reshape(-1))
        return gx.reshape(n, c, h, w)

    def grad(self, node, output_grads):
        return [MaxPool2dGather()(output_grads[0], node.inputs[1]), None]


class MaxPool2dGather(Op):
    """(g (N, C, H, W), argmax (N, C, Ho, Wo)) -> g at the argmax: the adjoint of MaxPool2dGrad."""

    def infer(self, input_types, ctx):
        g, idx = input_types
        ctx.equal(g.shape[0], idx.shape[0], "max_pool2d gather batch")
        ctx.equal(g.shape[1], idx.shape[1], "max_pool2d gather channels")
        return [TensorType(g.dtype, idx.shape)]

    def reference(self, g, idx):
        n, c = g.shape[:2]
        flat = g.reshape(n * c, -1)
        rows = np.arange(n * c)[:, None]
        return flat[rows, idx.reshape(n * c, -1).astype(np.int64)].reshape(idx.shape)

    def grad(self, node, output_grads):
        g = node.inputs[0]
        # scatter back: the same op as MaxPool2dGrad, whose pooling props do not matter
        return [MaxPool2dGrad((1, 1), (1, 1), (0, 0), True, g.type.shape[2:])(output_grads[0],
                                                                              node.inputs[1]), None]


class AvgPool2d(_PoolBase):
    kind = "avg_pool2d"

    def infer(self, input_types, ctx):
        (t,) = input_types
        self._check_input(t)
        return [TensorType(t.dtype, t.shape[:2] + self.out_hw(*t.shape[2:]))]

    def reference(self, x):
        n, c, h, w = x.shape
        ho, wo = self.out_hw(h, w)
        hs, he, hp = self._bounds(h, ho, 0)
        ws, we, wp = self._bounds(w, wo, 1)
        out = np.zeros((n, c, ho, wo), dtype=x.dtype)
        for a in range(ho):
            for b in range(wo):
                out[:, :, a, b] = x[:, :, hs[a]:he[a], ws[b]:we[b]].sum(axis=(2, 3)) / (hp[a] * wp[b])
        return out

    def grad(self, node, output_grads):
        x = node.inputs[0]
        return [AvgPool2dGrad(*self._props(), input_hw=x.type.shape[2:])(output_grads[0])]


class AvgPool2dGrad(_PoolBase):
    """gy -> gx: the adjoint of AvgPool2d (each gy / window size spread over its window)."""
    __props__ = _PoolBase.__props__ + ("input_hw",)
    kind = "avg_pool2d_grad"
    needs_dims = True

    def __init__(self, kernel, stride, padding, ceil_mode=True, input_hw=None):
        super().__init__(kernel, stride, padding, ceil_mode)
        self.input_hw = tuple(input_hw)

    def infer(self, input_types, ctx):
        (gy,) = input_types
        ho, wo = self.out_hw(*self.input_hw)
        ctx.equal(gy.shape[2], ho, f"{self.kind}: output height")
        ctx.equal(gy.shape[3], wo, f"{self.kind}: output width")
        return [TensorType(gy.dtype, gy.shape[:2] + self.input_hw)]

    def reference(self, gy, dims=None):
        n, c, ho, wo = gy.shape
        h, w = (_eval(d, dims) for d in self.input_hw)
        hs, he, hp = self._bounds(h, ho, 0)
        ws, we, wp = self._bounds(w, wo, 1)
        gx = np.zeros((n, c, h, w), dtype=gy.dtype)
        for a in range(ho):
            for b in range(wo):
                gx[:, :, hs[a]:he[a], ws[b]:we[b]] += (gy[:, :, a, b] / (hp[a] * wp[b]))[:, :, None, None]
        return gx

    def grad(self, node, output_grads):
        return [AvgPool2d(*_PoolBase._props(self)[:4])(output_grads[0])]


def _pool_args(kernel, stride, padding, where):
    kernel = pair(kernel, "kernel", where, 1)
    stride = kernel if stride is None else pair(stride, "stride", where, 1)
    padding = pair(padding, "padding", where, 0)
    for p, k in zip(padding, kernel):
        if p >= k:
            raise GraphcShapeError(f"{where}: padding {padding} must be smaller than the window "
                                   f"{kernel} (a window could then lie entirely in the padding)")
    return kernel, stride, padding


def max_pool2d(x, kernel, stride=None, padding=(0, 0), ceil_mode=True, return_argmax=False):
    """Max pooling of NCHW x over (kernel) windows every (stride) (default: the kernel)."""
    from ..constructors import as_variable
    kernel, stride, padding = _pool_args(kernel, stride, padding, "max_pool2d")
    y, arg = MaxPool2d(kernel, stride, padding, ceil_mode)(as_variable(x))
    return (y, arg) if return_argmax else y


def avg_pool2d(x, kernel, stride=None, padding=(0, 0), ceil_mode=True):
    """Average pooling (Caffe: padding counts as zeros in the divisor, ceil-mode overhang not)."""
    from ..constructors import as_variable
    kernel, stride, padding = _pool_args(kernel, stride, padding, "avg_pool2d")
    return AvgPool2d(kernel, stride, padding, ceil_mode)(as_variable(x))
