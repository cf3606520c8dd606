"""2-D convolution in NCHW (cross-correlation, as Caffe/Theano's corrMM and PyTorch).

conv2d(x, w): x (N, C, H, W), w (C_out, C/groups, kh, kw) -> (N, C_out, H_out, W_out) with
H_out = floor((H + 2*pad - dilation*(kh-1) - 1) / stride) + 1.

The gradients are ops of their own: Conv2dGradInput(gy, w) and Conv2dGradWeights(x, gy). The
three are linear in each argument, so their own gradients are again these three ops (second
derivatives work). The C lowering (graphc.codegen.lower_cnn) picks im2col + gemm or direct loops.
"""

import functools

import numpy as np
import sympy

from ...errors import GraphcShapeError, GraphcTypeError
from ..graph import LazyText, Op
from ..types import FLOAT_DTYPES, FitsCheck, TensorType, simplify_dim  # noqa: F401 (FitsCheck: its old home)


# --- shared helpers (pool.py uses them too) -------------------------------------------------

def pair(v, what, where, minimum=0):
    """(a, b) of python ints from an int or a pair; every entry >= minimum."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        v = (int(v), int(v))
    try:
        v = tuple(v)
    except TypeError:
        raise GraphcTypeError(f"{where}: {what} must be an int or a pair of ints, got {v!r}") from None
    if len(v) != 2 or not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in v):
        raise GraphcTypeError(f"{where}: {what} must be an int or a pair of ints, got {v!r}")
    v = (int(v[0]), int(v[1]))
    if min(v) < minimum:
        raise GraphcTypeError(f"{where}: {what} entries must be >= {minimum}, got {v}")
    return v


def shape_str(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


@functools.lru_cache(maxsize=4096)  # (pure; a layer's sizes recur in its gradient's graph)
def div_dim(num, s, up=False):
    """floor(num / s) (ceiling when `up`) of an integer-valued dim expression and a positive int
    stride, in the form sympy's evaluation gives, built without it: floor and ceiling ask sympy's
    assumptions about every term (~50 ms a call, most of a CNN's graph-building time). Integer
    terms of num / s move out; the rest stays inside, unevaluated."""
    num = sympy.sympify(num)
    if s == 1:
        return num
    inner, whole = sympy.Integer(0), sympy.Integer(0)
    for term in sympy.Add.make_args(sympy.expand(num / s)):
        if term.is_Integer or term.is_integer:  # (a term's own assumptions: cheap)
            whole += term
        else:
            inner += term
    if inner == 0:
        return whole
    if inner.is_Number:
        return whole + (sympy.ceiling(inner) if up else sympy.floor(inner))
    fn = sympy.ceiling if up else sympy.floor
    return whole + fn(inner, evaluate=False)


def conv_out_dim(size, k, s, p, d):
    """floor((size + 2p - d*(k-1) - 1) / s) + 1, an int when size and k are."""
    eff = d * (k - 1) + 1
    if isinstance(size, int) and isinstance(k, int):
        return (size + 2 * p - eff) // s + 1
    return simplify_dim(div_dim(sympy.sympify(size) + 2 * p - eff, s) + 1)


def _require_float4(t, name, where):
    if t.ndim != 4:
        raise GraphcShapeError(f"{where}: {name} must be 4-D (NCHW), got {t}")
    if t.dtype not in FLOAT_DTYPES:
        raise GraphcTypeError(f"{where}: {name} must be float32 or float64, got {t}")


def _eval_dim(d, dims):
    return d if isinstance(d, int) else int(sympy.sympify(d).subs(dims))


def _is_int(*ds):
    return all(isinstance(d, int) for d in ds)


class _ConvBase(Op):
    """A convolution is its geometry only: how a target computes it (the C target: im2col + gemm
    or direct loops) is the target's choice (graphc.targets.c.capabilities), not the op's."""
    __props__ = ("stride", "padding", "dilation", "groups")

    def __init__(self, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        self.stride, self.padding = tuple(stride), tuple(padding)
        self.dilation, self.groups = tuple(dilation), int(groups)

    def base_props(self):
        return (self.stride, self.padding, self.dilation, self.groups)

    def _desc(self):
        return (f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}")

    def _check_geometry(self, x_shape, w_shape, ctx, where):
        """Check channels, groups and kernel extent; return the output spatial dims."""
        n, c, h, wd = x_shape
        cout, cin_g, kh, kw = w_shape
        g = self.groups
        if _is_int(cout) and cout % g:
            raise GraphcShapeError(f"{where}: groups={g} does not divide the {cout} output channels "
                                   f"of filters {shape_str(w_shape)}")
        if _is_int(c) and c % g:
            raise GraphcShapeError(f"{where}: groups={g} does not divide the {c} input channels of "
                                   f"input {shape_str(x_shape)}")
        if _is_int(c, cin_g):
            if c != cin_g * g:
                raise GraphcShapeError(
                    f"{where}: input {shape_str(x_shape)} has {c} channels but filters "
                    f"{shape_str(w_shape)} with groups={g} expect {cin_g * g} (= {cin_g} x {g})")
        else:
            ctx.equal(c, simplify_dim(sympy.sympify(cin_g) * g),
                      LazyText(lambda: f"input channels of {shape_str(x_shape)} vs filters "
                                       f"{shape_str(w_shape)} x groups"))
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        for size, k, p, d, axis in ((h, kh, ph, dh, "height"), (wd, kw, pw, dw, "width")):
            if _is_int(size, k) and d * (k - 1) + 1 > size + 2 * p:
                raise GraphcShapeError(
                    f"{where}: the {axis} of the filters {shape_str(w_shape)} (extent {d * (k - 1) + 1} "
                    f"with dilation {d}) is larger than the padded input {axis} {size} + 2*{p} "
                    f"= {size + 2 * p} (input {shape_str(x_shape)}, {self._desc()})")
            fits_any_size = _is_int(k) and 2 * p - d * (k - 1) >= 0  # size >= 1
            if not _is_int(size, k) and not fits_any_size and ctx is not None:
                # Known only at the call: the argument checks test it (an output dim < 1 would
                # otherwise reach numpy or the kernels); `Min(room, 0) == 0` reads `room >= 0`.
                room = sympy.sympify(size) + 2 * p - d * (sympy.sympify(k) - 1) - 1
                ctx.equal(FitsCheck(room), 0,
                          f"the filters' {axis} (extent {d}*(k - 1) + 1 with dilation {d}) must "
                          f"fit in the input's {axis} + 2*{p} padding")
        return conv_out_dim(h, kh, sh, ph, dh), conv_out_dim(wd, kw, sw, pw, dw)

    # --- numpy building blocks --------------------------------------------------------------
    def _patches(self, kh, kw, ho, wo):
        """Yield (i, j, index): xp[index][..., a, b] = xp[..., a*sh + i*dh, b*sw + j*dw] for a 5-D
        (n, g, c, H, W) padded array."""
        (sh, sw), (dh, dw) = self.stride, self.dilation
        for i in range(kh):
            for j in range(kw):
                yield i, j, (slice(None), slice(None), slice(None),
                             slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
                             slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))

    def _pad(self, x):
        ph, pw = self.padding
        return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


class Conv2d(_ConvBase):
    def infer(self, input_types, ctx):
        x, w = input_types
        where = f"conv2d({self._desc()})"
        _require_float4(x, "the input", where)
        _require_float4(w, "the filters", where)
        if x.dtype != w.dtype:
            raise GraphcTypeError(f"{where}: input {x} and filters {w} must share a dtype")
        ho, wo = self._check_geometry(x.shape, w.shape, ctx, where)
        return [TensorType(x.dtype, (x.shape[0], w.shape[0], ho, wo))]

    def reference(self, x, w):
        n, c, h, wd = x.shape
        cout, cin_g, kh, kw = w.shape
        g = self.groups
        ho = conv_out_dim(h, kh, self.stride[0], self.padding[0], self.dilation[0])
        wo = conv_out_dim(wd, kw, self.stride[1], self.padding[1], self.dilation[1])
        xp = self._pad(x).reshape(n, g, cin_g, h + 2 * self.padding[0], wd + 2 * self.padding[1])
        wg = w.reshape(g, cout // g, cin_g, kh, kw)
        out = np.zeros((n, g, cout // g, ho, wo), dtype=x.dtype)
        for i, j, sl in self._patches(kh, kw, ho, wo):
            patch = xp[sl]  # (n, g, cin_g, ho, wo)
            out += np.einsum("ngchw,goc->ngohw", patch, wg[:, :, :, i, j])
        return out.reshape(n, cout, ho, wo)

    def grad(self, node, output_grads):
        (x, w), (gy,) = node.inputs, output_grads
        p = self.base_props()
        return [Conv2dGradInput(*p, input_hw=x.type.shape[2:])(gy, w),
                Conv2dGradWeights(*p, kernel_hw=w.type.shape[2:])(x, gy)]


class Conv2dGradInput(_ConvBase):
    """d conv2d / d x: (gy (N, C_out, Ho, Wo), w) -> (N, C, H, W); H, W given (they are not
    recoverable from Ho when the stride does not divide evenly)."""
    __props__ = _ConvBase.__props__ + ("input_hw",)

    def __init__(self, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, input_hw=None):
        super().__init__(stride, padding, dilation, groups)
        self.input_hw = tuple(input_hw)

    def infer(self, input_types, ctx):
        gy, w = input_types
        where = f"conv2d_grad_input({self._desc()})"
        _require_float4(gy, "the output gradient", where)
        _require_float4(w, "the filters", where)
        n = gy.shape[0]
        c = simplify_dim(sympy.sympify(w.shape[1]) * self.groups)
        x_shape = (n, c) + self.input_hw
        ctx.equal(gy.shape[1], w.shape[0], "output channels of the gradient vs the filters")
        ho, wo = self._check_geometry(x_shape, w.shape, ctx, where)
        ctx.equal(gy.shape[2], ho, "output height")
        ctx.equal(gy.shape[3], wo, "output width")
        return [TensorType(gy.dtype, x_shape)]

    needs_dims = True

    def reference(self, gy, w, dims=None):
        n, cout, ho, wo = gy.shape
        _, cin_g, kh, kw = w.shape
        g = self.groups
        h, wd = (_eval_dim(d, dims) for d in self.input_hw)
        ph, pw = self.padding
        gxp = np.zeros((n, g, cin_g, h + 2 * ph, wd + 2 * pw), dtype=gy.dtype)
        gyg = gy.reshape(n, g, cout // g, ho, wo)
        wg = w.reshape(g, cout // g, cin_g, kh, kw)
        for i, j, sl in self._patches(kh, kw, ho, wo):
            gxp[sl] += np.einsum("ngohw,goc->ngchw", gyg, wg[:, :, :, i, j])
        return np.ascontiguousarray(gxp[:, :, :, ph:ph + h, pw:pw + wd]).reshape(n, g * cin_g, h, wd)

    def grad(self, node, output_grads):
        (gy, w), (a,) = node.inputs, output_grads
        p = self.base_props()
        return [Conv2d(*p)(a, w), Conv2dGradWeights(*p, kernel_hw=w.type.shape[2:])(a, gy)]


class Conv2dGradWeights(_ConvBase):
    """d conv2d / d w: (x, gy) -> (C_out, C/groups, kh, kw)."""
    __props__ = _ConvBase.__props__ + ("kernel_hw",)

    def __init__(self, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, kernel_hw=None):
        super().__init__(stride, padding, dilation, groups)
        self.kernel_hw = tuple(kernel_hw)

    def infer(self, input_types, ctx):
        x, gy = input_types
        where = f"conv2d_grad_weights({self._desc()})"
        _require_float4(x, "the input", where)
        _require_float4(gy, "the output gradient", where)
        cout = gy.shape[1]
        c = x.shape[1]
        if _is_int(c) and c % self.groups:
            raise GraphcShapeError(f"{where}: groups={self.groups} does not divide the {c} input "
                                   f"channels of {shape_str(x.shape)}")
        cin_g = simplify_dim(sympy.sympify(c) / self.groups)
        w_shape = (cout, cin_g) + self.kernel_hw
        ho, wo = self._check_geometry(x.shape, w_shape, ctx, where)
        ctx.equal(gy.shape[0], x.shape[0], "batch")
        ctx.equal(gy.shape[2], ho, "output height")
        ctx.equal(gy.shape[3], wo, "output width")
        return [TensorType(x.dtype, w_shape)]

    needs_dims = True

    def reference(self, x, gy, dims=None):
        n, c, h, wd = x.shape
        _, cout, ho, wo = gy.shape
        kh, kw = (_eval_dim(d, dims) for d in self.kernel_hw)
        g = self.groups
        cin_g = c // g
        xp = self._pad(x).reshape(n, g, cin_g, h + 2 * self.padding[0], wd + 2 * self.padding[1])
        gyg = gy.reshape(n, g, cout // g, ho, wo)
        gw = np.zeros((g, cout // g, cin_g, kh, kw), dtype=x.dtype)
        for i, j, sl in self._patches(kh, kw, ho, wo):
            gw[:, :, :, i, j] = np.einsum("ngohw,ngchw->goc", gyg, xp[sl])
        return gw.reshape(cout, cin_g, kh, kw)

    def grad(self, node, output_grads):
        (x, gy), (b,) = node.inputs, output_grads
        p = self.base_props()
        return [Conv2dGradInput(*p, input_hw=x.type.shape[2:])(gy, b), Conv2d(*p)(x, b)]


def conv2d(x, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, filter_flip=False):
    """Cross-correlation of x (N, C, H, W) with filters w (C_out, C/groups, kh, kw) (no bias:
    add one with `+ b.dimshuffle('x', 0, 'x', 'x')`). filter_flip=True: a true convolution, the
    filters read flipped in both spatial axes (Theano's default; weights trained by Theano need
    it). The C target picks im2col + gemm, Winograd F(2x2, 3x3) (3x3 stride 1, >= 32 channels) or
    direct loops by the sizes; GRAPHC_CONV_ALGO=gemm|direct|winograd, set when the function is
    compiled, forces one (winograd where the shape allows it, gemm elsewhere)."""
    from ..constructors import as_variable
    from .elemwise import cast
    x, w = as_variable(x), as_variable(w)
    where = "conv2d"
    if x.dtype != w.dtype and x.dtype in FLOAT_DTYPES and w.dtype in FLOAT_DTYPES:
        dtype = np.result_type(x.dtype, w.dtype).name  # as dot: the wider float
        x, w = cast(x, dtype), cast(w, dtype)
    stride = pair(stride, "stride", where, 1)
    padding = pair(padding, "padding", where, 0)
    dilation = pair(dilation, "dilation", where, 1)
    if not isinstance(groups, (int, np.integer)) or isinstance(groups, bool) or groups < 1:
        raise GraphcTypeError(f"{where}: groups must be a positive int, got {groups!r}")
    if filter_flip:
        w = w[:, :, ::-1, ::-1]
    return Conv2d(stride, padding, dilation, int(groups))(x, w)
