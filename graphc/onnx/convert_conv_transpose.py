"""ONNX's ConvTranspose (1-D, 2-D and 3-D) as graphc's input gradient of a 2-D convolution.

Along each spatial axis the un-padded result covers positions 0 .. F-1, F = s*(n-1) + (k-1)*d + 1
(input size n, stride s, kernel k, dilation d); ONNX's output is the window [B, B + O) of it,
zeros past its ends: B the begin pad and O = F + output_padding - B - E from pads, or, given
output_shape (or auto_pad SAME_*: O = n*s), O that and B from the total padding it leaves, split
as ONNX's spec says (pads are then ignored). An axis whose window the 2-D op can cut itself (symmetric, within one
stride) is given to it; any other is computed whole and cut (or widened with zeros) after.

3-D: the 2-D transposed convolution of every depth slice (batch and depth merged) with all kD
depth taps of the weight at once (as output channels); tap kd of input depth id lands on output
depth id*sD + kd*dD, so each tap's result is spread by the stride (zeros between), shifted by
kd*dD, and the taps are summed; the depth window is then cut as above. Everything is graphc
graph (gradients and every target come with it).
"""
import sympy

from ..ir.ops.conv import Conv2dGradInput
from ..ir.ops.shape import reshape, transpose
from ..ir.types import simplify_dim
from .convert_nn import _as_2d, _from_2d, _ints, _kernel_of
from .convert_tensor import pad_constant
from .registry import Unsupported, converter


def _dim(n):
    return n if isinstance(n, int) else sympy.sympify(n)


def _static(v, what):
    v = simplify_dim(v) if not isinstance(v, int) else v
    if isinstance(v, sympy.Basic):
        if not v.is_Integer:
            raise Unsupported(f"{what} depends on the symbolic input size ({v})")
        v = int(v)
    return v


def geometry(node, sizes, kernel, strides, dil):
    """(full, begins, outs) per spatial axis: the un-padded length F, the window's begin B and
    the output length O (ONNX's pads, output_padding, output_shape and auto_pad)."""
    nsp = len(kernel)
    opad = _ints(node, "output_padding", nsp, 0)
    auto = node.attr("auto_pad", "NOTSET")
    if auto not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"auto_pad={auto!r}")
    full = [s * (_dim(n) - 1) + (k - 1) * d + 1 for n, k, s, d in zip(sizes, kernel, strides, dil)]
    shape = node.attr("output_shape")
    if shape is not None and len(shape) != nsp:
        raise Unsupported(f"output_shape {list(shape)} for {nsp} spatial axes")
    if shape is not None or (node.attr("pads") is None and auto in ("SAME_UPPER", "SAME_LOWER")):
        # ONNX: output_shape (SAME_*: the input size times the stride) sets the total padding,
        # and the pads are ignored; SAME_UPPER puts the odd one at the end
        targets = list(shape) if shape is not None else [_dim(n) * s for n, s in zip(sizes, strides)]
        begins = []
        for f, o, t in zip(full, opad, targets):
            total = _static(f + o - t, "the padding output_shape leaves")
            begins.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
        return full, begins, targets
    pads = [0] * (2 * nsp) if auto == "VALID" else _ints(node, "pads", 2 * nsp, 0)
    return full, pads[:nsp], [simplify_dim(f + o - b - e) if not isinstance(f, int) else f + o - b - e
                              for f, o, b, e in zip(full, opad, pads[:nsp], pads[nsp:])]


def _cut_by_the_op(full, begin, out, stride):
    """The 2-D op writes the window itself when it is symmetric within one stride:
    out + 2*begin = full + r, 0 <= r < stride (its size check then holds)."""
    r = _static(out + 2 * begin - full, "the output window")
    return begin >= 0 and 0 <= r < stride


def cut(y, axis, length, begin, out):
    """The window [begin, begin + out) of y's `axis` (of `length` positions), zeros outside."""
    before = max(0, -begin)
    after = max(0, _static(begin + out - length, "the output window"))
    if before or after:
        lo, hi = [0] * y.ndim, [0] * y.ndim
        lo[axis], hi[axis] = before, after
        y = pad_constant(y, lo, hi, 0)
    start = begin + before
    index = [slice(None)] * y.ndim
    index[axis] = slice(start, simplify_dim(sympy.sympify(start) + out))
    return y[tuple(index)]


def _planar(x2, w2, strides, dil, group, full, begins, outs):
    """The 2-D transposed convolution of (N, C, H, W) with the window of each axis applied."""
    direct = [_cut_by_the_op(f, b, o, s) for f, b, o, s in zip(full, begins, outs, strides)]
    pads = tuple(b if ok else 0 for b, ok in zip(begins, direct))
    hw = tuple(o if ok else f for f, o, ok in zip(full, outs, direct))
    y = Conv2dGradInput(tuple(strides), pads, tuple(dil), group, input_hw=hw)(x2, w2)
    for axis, (ok, f, b, o) in enumerate(zip(direct, full, begins, outs), 2):
        if not ok:
            y = cut(y, axis, f, b, o)
    return y


@converter("ConvTranspose", attrs=("auto_pad", "dilations", "group", "kernel_shape", "pads",
                                   "strides", "output_padding", "output_shape"))
def conv_transpose(node):
    x, w, b = node.input(0), node.input(1), node.input(2)
    nsp = x.ndim - 2
    if nsp not in (1, 2, 3):
        raise Unsupported(f"input of rank {x.ndim}: graphc has 1-D, 2-D and 3-D ConvTranspose")
    kernel = _kernel_of(node, w.type.shape)
    if len(kernel) != nsp or w.ndim != x.ndim:
        raise Unsupported(f"kernel_shape {kernel} and weight {w.type} for an input of rank {x.ndim}")
    strides, dil = _ints(node, "strides", nsp, 1), _ints(node, "dilations", nsp, 1)
    full, begins, outs = geometry(node, x.type.shape[2:], kernel, strides, dil)
    if nsp == 3:
        y = _conv_transpose_3d(node, x, w, kernel, strides, dil, full, begins, outs)
        return y + reshape(b, (1, b.type.shape[0], 1, 1, 1)) if b is not None else y
    if nsp == 1:   # over a height of 1
        strides, dil, full, outs = ([1] + v for v in (strides, dil, full, outs))
        begins = [0] + begins
    y = _planar(_as_2d(x), _as_2d(w), strides, dil, node.attr("group", 1), full, begins, outs)
    if b is not None:
        y = y + reshape(b, (1, b.type.shape[0], 1, 1))
    return _from_2d(y, nsp)


def _conv_transpose_3d(node, x, w, kernel, strides, dil, full, begins, outs):
    g = node.attr("group", 1)
    kd = kernel[0]
    n, c, d, h, wd = x.type.shape
    og = w.type.shape[1]
    if not isinstance(og, int) or w.type.shape[0] != c:
        raise Unsupported(f"weight {w.type} for {c} input channels")
    nd = simplify_dim(sympy.sympify(n) * d)
    x2 = reshape(transpose(x, (0, 2, 1, 3, 4)), (nd, c, h, wd))          # (N*D, C, H, W)
    w2 = reshape(transpose(w, (0, 2, 1, 3, 4)), (c, kd * og) + tuple(kernel[1:]))
    y = _planar(x2, w2, strides[1:], dil[1:], g, full[1:], begins[1:], outs[1:])
    ho, wo = y.type.shape[2:]
    y = reshape(y, (n, d, g, kd, og, ho, wo))                            # channels (g, kD, O/g)
    sd, dd = strides[0], dil[0]
    spread = simplify_dim(sympy.sympify(d) * sd)
    total = None
    for k in range(kd):
        tap = reshape(y[:, :, :, k], (n, d, 1, g * og, ho, wo))
        if sd > 1:   # input depth id at id*sD, zeros between
            tap = pad_constant(tap, [0] * 6, [0, 0, sd - 1, 0, 0, 0], 0)
        tap = reshape(tap, (n, spread, g * og, ho, wo))
        tap = pad_constant(tap, [0, k * dd, 0, 0, 0], [0, (kd - 1 - k) * dd, 0, 0, 0], 0)
        total = tap if total is None else total + tap
    # the taps cover depths 0 .. D*sD + (kD-1)*dD - 1 (F and sD - 1 zeros)
    length = simplify_dim(spread + (kd - 1) * dd)
    y = cut(total, 1, length, begins[0], outs[0])
    return transpose(y, (0, 2, 1, 3, 4))                                  # (N, O, Do, Ho, Wo)
