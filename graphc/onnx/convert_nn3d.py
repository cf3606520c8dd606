"""3-D Conv, MaxPool and AveragePool (NCDHW), and dilated pools, composed at load time from
graphc's 2-D ops, so gradients and every target come with them.

- Conv: a 3-D convolution is a sum over the kernel's depth of 2-D convolutions of depth slices.
  The kD slices of the (depth-padded) input that output depth od reads, x[:, :, od*sD + kd*dD],
  are stacked along the channels (group by group) and the batch and output depth are merged:
  one 2-D convolution of (N*Do, kD*C, H, W) with the weight reshaped to (O, kD*C/g, kH, kW).
  Cost: the stacked input is kD times the input (a 3-D im2col along depth, before the 2-D
  convolution's own), plus a transpose of the input and one of the output.
- MaxPool and AveragePool: a pool over a box is separable, one axis after the other: along an
  axis, the max (or sum) of k strided slices of the input padded along it (-inf or 0), and for
  the average, division by the count of window positions inside the input (or the pads, when
  counted; ceil mode's overhang never) of each output position, computed at load time; the
  box's divisor is the product of these. A 3-D pool runs graphc's 2-D pool over every depth
  slice and then this along depth; pools with dilations (which graphc's 2-D kernels lack) run
  this along every axis. Cost: per axis, the padded input and k - 1 elementwise maxima or sums.
"""
import numpy as np
import sympy

from ..ir.constructors import constant
from ..ir.ops import elemwise as E
from ..ir.ops.conv import conv2d
from ..ir.ops.shape import concatenate, reshape, transpose
from ..ir.types import simplify_dim
from .convert_nn import (_ints, _kernel_of, _pads, avg_pool_2d, check_pool_pads, max_pool_2d,
                         pad_zeros)
from .convert_tensor import pad_constant
from .registry import Unsupported


def _geometry(node, x, kernel):
    strides, dil = _ints(node, "strides", 3, 1), _ints(node, "dilations", 3, 1)
    begins, ends = _pads(node, x.type.shape[2:], kernel, strides, dil)
    return strides, dil, begins, ends


def _out_depth(d, k, s, dil, p0, p1, ceil=False):
    """ONNX's output size along an axis (ceil mode: the last window starts inside input + pad)."""
    span = sympy.sympify(d) + p0 + p1 - dil * (k - 1) - 1
    if not ceil:
        return simplify_dim(sympy.floor(span / s) + 1)
    if not isinstance(d, int):
        raise Unsupported(f"ceil_mode over the symbolic size {d}")
    n = -(-int(span) // s) + 1
    if (n - 1) * s >= d + p0:
        n -= 1
    return n


def _depth_slices(x, k, s, dil, n_out):
    """The kD strided depth slices x[:, :, kd*dil :: s][:n_out] of (N, C, D', H, W)."""
    out = []
    for kd in range(k):
        start = kd * dil
        stop = simplify_dim(sympy.sympify(start) + s * (n_out - 1) + 1)
        out.append(x[:, :, start:stop:s])
    return out


def _pad_depth(x, before, after, value):
    if not before and not after:
        return x
    z = [0] * (x.ndim - 3)
    return pad_constant(x, [0, 0, before] + z, [0, 0, after] + z, value)


def conv_3d(node, x, w, b):
    kernel = _kernel_of(node, w.type.shape)
    if len(kernel) != 3:
        raise Unsupported(f"kernel_shape {kernel} for an input of rank 5")
    (kd, kh, kw) = kernel
    strides, dil, begins, ends = _geometry(node, x, kernel)
    g = node.attr("group", 1)
    n, c, d, h, wd = x.type.shape
    o = w.type.shape[0]
    if not isinstance(c, int) or c % g:
        raise Unsupported(f"{c} input channels in {g} groups")
    cg = c // g
    d_out = _out_depth(d, kd, strides[0], dil[0], begins[0], ends[0])
    xp = _pad_depth(x, begins[0], ends[0], 0)
    pieces = [reshape(p, (n, g, 1, cg, d_out, h, wd))
              for p in _depth_slices(xp, kd, strides[0], dil[0], d_out)]
    stacked = concatenate(pieces, 2) if kd > 1 else pieces[0]      # (N, g, kD, C/g, Do, H, W)
    stacked = transpose(stacked, (0, 4, 1, 2, 3, 5, 6))             # (N, Do, g, kD, C/g, H, W)
    x2 = reshape(stacked, (simplify_dim(sympy.sympify(n) * d_out), kd * c, h, wd))
    w2 = reshape(transpose(w, (0, 2, 1, 3, 4)), (o, kd * cg, kh, kw))
    hb, he = begins[1:], ends[1:]
    if hb != he:
        x2, hb = pad_zeros(x2, hb, he), [0, 0]
    y = conv2d(x2, w2, stride=tuple(strides[1:]), padding=tuple(hb), dilation=tuple(dil[1:]),
               groups=g)                                            # (N*Do, O, Ho, Wo)
    ho, wo = y.type.shape[2:]
    y = transpose(reshape(y, (n, d_out, o, ho, wo)), (0, 2, 1, 3, 4))
    if b is not None:
        y = y + reshape(b, (1, b.type.shape[0], 1, 1, 1))
    return y


def _pool_plan(node, x):
    """kernel, strides, dilations, begins, ends, ceil of a pool over x's spatial axes."""
    nsp = x.ndim - 2
    kernel = _kernel_of(node)
    if len(kernel) != nsp:
        raise Unsupported(f"kernel_shape {kernel} for an input of rank {x.ndim}")
    strides, dil = _ints(node, "strides", nsp, 1), _ints(node, "dilations", nsp, 1)
    begins, ends = _pads(node, x.type.shape[2:], kernel, strides, dil)
    for k, dl, p0, p1 in zip(kernel, dil, begins, ends):
        if max(p0, p1) >= dl * (k - 1) + 1:
            raise Unsupported(f"pads {begins + ends} as large as the window {kernel}")
    return kernel, strides, dil, begins, ends, bool(node.attr("ceil_mode", 0))


def _per_slice_2d(x, fn):
    """fn (a 2-D pool) over every depth slice of (N, C, D, H, W)."""
    n, c, d, h, w = x.type.shape
    y = fn(reshape(x, (n, simplify_dim(sympy.sympify(c) * d), h, w)))
    return reshape(y, (n, c, d) + tuple(y.type.shape[2:]))


def _pool_axis(y, axis, k, s, dil, p0, p1, ceil, kind, include_pad):
    """y pooled along one axis: the max (kind "max") or the mean (kind "avg") of k strided
    slices of y padded along that axis (-inf or 0; ceil mode reads past the pads)."""
    size = y.type.shape[axis]
    n_out = _out_depth(size, k, s, dil, p0, p1, ceil)
    padded = p0 or p1 or ceil
    if padded:
        if not isinstance(size, int):
            raise Unsupported(f"a pooling window with pads over the symbolic size {size}")
        after = max((n_out - 1) * s + dil * (k - 1) + 1 - size - p0, 0)
        z = [0] * y.ndim
        before_l, after_l = list(z), list(z)
        before_l[axis], after_l[axis] = p0, after
        y = pad_constant(y, before_l, after_l, -np.inf if kind == "max" else 0)
    out = None
    for kk in range(k):
        index = [slice(None)] * y.ndim
        start = kk * dil
        index[axis] = slice(start, simplify_dim(sympy.sympify(start) + s * (n_out - 1) + 1), s)
        piece = y[tuple(index)]
        out = piece if out is None else (E.maximum_op(out, piece) if kind == "max" else out + piece)
    if kind == "max":
        return out
    if not padded:
        return out * np.asarray(1.0 / k, y.dtype)
    # per output position: the window positions inside the input (and the pads, when counted)
    lo, hi = (-p0, size + p1) if include_pad else (0, size)
    counts = np.array([sum(1 for kk in range(k) if lo <= o * s - p0 + kk * dil < hi)
                       for o in range(n_out)], y.dtype)
    shape = [1] * y.ndim
    shape[axis] = n_out
    return out / constant(counts.reshape(shape))


def separable_pool(node, x, kind):
    """A pool of any rank as one pass per spatial axis (dilations allowed: graphc's 2-D pool
    kernels have none). The 2-D kernels do height and width of a 3-D pool when they can."""
    kernel, strides, dil, begins, ends, ceil = _pool_plan(node, x)
    include_pad = bool(node.attr("count_include_pad", 0))
    axes = list(range(2, x.ndim))
    y = x
    if x.ndim == 5 and dil[1:] == [1, 1]:
        check_pool_pads(kernel[1:], begins[1:], ends[1:])
        if kind == "max":
            y = _per_slice_2d(x, lambda x2: max_pool_2d(x2, kernel[1:], strides[1:], begins[1:],
                                                        ends[1:], ceil))
        else:
            y = _per_slice_2d(x, lambda x2: avg_pool_2d(x2, kernel[1:], strides[1:], begins[1:],
                                                        ends[1:], ceil, include_pad))
        axes = [2]
    for a in axes:
        i = a - 2
        y = _pool_axis(y, a, kernel[i], strides[i], dil[i], begins[i], ends[i], ceil, kind,
                       include_pad)
    return y
