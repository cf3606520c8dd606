"""Lowering of the convolutional-net ops (conv, pooling, LRN, random numbers) to kernels.

Convolution has two algorithms, chosen per op by `conv_algorithm` (the op's `algorithm` prop,
set by conv2d(algorithm=...) or GRAPHC_CONV_ALGO, forces one):
  gemm:   im2col of the whole batch into a (G, K, N*P) workspace matrix (K = C/G*kh*kw,
          P = Ho*Wo), then ONE gemm per group (OpenBLAS threads it; no gemm runs inside an OpenMP
          region), then a transpose of the (C_out, N, P) result into NCHW. The weight gradient is
          gy^T-times-col^T (K = N*P, one big gemm), the input gradient W^T-times-gy then col2im.
  direct: plain loops, OpenMP over (image, channel) planes or over filters.
Both were measured on LeNet's layers (bench/conv_lenet.py has the numbers): gemm wins except where
the gemm would be tiny.
"""
import sympy

from ..ir.ops import conv, normalization, pool, random
from ..targets.c.cprinter import C_TYPES, int_to_c
from .lower import _contig_strides, _emit_strided_copy, lowers


def _c(d):
    """C text of a size (no sympy.simplify: nested floor/ceiling sizes make it very slow)."""
    return str(d) if isinstance(d, int) else int_to_c(sympy.sympify(d))


def _mul(*ds):
    out = sympy.Integer(1)
    for d in ds:
        out = out * d
    return int(out) if out.is_Integer else out


# --- convolution ------------------------------------------------------------------------------

class _Geom:
    """Sizes of one convolution (ints or sympy expressions over the bound dims)."""

    def __init__(self, op, x_shape, w_shape, y_shape):
        self.n, self.ct, self.h, self.w = x_shape
        self.cout, self.cg, self.kh, self.kw = w_shape
        self.ho, self.wo = y_shape[2:]
        self.g = op.groups
        self.mg = self.cout // self.g if isinstance(self.cout, int) else sympy.sympify(self.cout) / self.g
        self.k = _mul(self.cg, self.kh, self.kw)  # gemm depth per group
        self.p = _mul(self.ho, self.wo)
        self.np = _mul(self.n, self.p)
        self.op = op

    def params(self, dtype, **extra):
        op = self.op
        out = dict(N=_c(self.n), G=str(self.g), CG=_c(self.cg), MG=_c(self.mg), C=_c(self.ct),
                   H=_c(self.h), W=_c(self.w), KH=_c(self.kh), KW=_c(self.kw),
                   SH=str(op.stride[0]), SW=str(op.stride[1]), PH=str(op.padding[0]),
                   PW=str(op.padding[1]), DH=str(op.dilation[0]), DW=str(op.dilation[1]),
                   HO=_c(self.ho), WO=_c(self.wo), ctype=C_TYPES[dtype],
                   acc_ctype=C_TYPES[dtype])
        out.update(extra)
        return out


def conv_algorithm(kind, geom):
    """'gemm' or 'direct' for one of the three conv kernels (kind: fwd, grad_input, grad_weights)."""
    if geom.op.algorithm in ("gemm", "direct"):
        return geom.op.algorithm
    k = geom.k if isinstance(geom.k, int) else 1 << 30
    mg = geom.mg if isinstance(geom.mg, int) else 1 << 30
    # Measured (float32, batch 64, 1 and 2 threads): a gemm with M = C_out/groups <= 2 rows
    # (depthwise convolution: 5x faster direct) or a depth K = C/groups*kh*kw <= 4 (a 1x1
    # convolution of 3 channels: 2x faster direct) does not pay for the im2col copy. Everywhere
    # else im2col + gemm wins: 2.4x on LeNet's conv2 forward, 5-30x on the weight gradient.
    if mg <= 2:
        return "direct"
    if k <= 4 and kind in ("fwd", "grad_input"):
        return "direct"
    return "gemm"


def _emit_gemm(L, out_buf, a_buf, b_buf, M, N, K, batch, lda, ldb, ldc, sa, sb, sc, ta, tb, dtype,
               label):
    L.emit("gemm", [out_buf], [a_buf, b_buf], label, M=_c(M), N=_c(N), K=_c(K), batch=_c(batch),
           lda=_c(lda), ldb=_c(ldb), ldc=_c(ldc), stride_a=_c(sa), stride_b=_c(sb),
           stride_c=_c(sc), trans_a=ta, trans_b=tb,
           prefix="s" if dtype == "float32" else "d", ctype=C_TYPES[dtype])


def _emit_im2col(L, geom, x_buf, dtype, label):
    """The (G*K, N*P) im2col matrix of x in a workspace buffer."""
    col = L.new_buffer(dtype, (_mul(geom.g, geom.k), geom.np), "temp", f"{label} im2col")
    L.emit("conv_im2col", [col], [x_buf], f"{label} im2col",
           **geom.params(dtype, RS=_c(geom.np), NS=_c(geom.p)))
    return col


def _nchw_to_cnp(L, geom, buf, channels, dtype, label):
    """(N, channels, P) -> (channels, N, P); the identity (no copy) when N == 1."""
    if geom.n == 1:
        return buf
    shape = (channels, geom.n, geom.p)
    out = L.new_buffer(dtype, shape, "temp", f"{label} (C, N, P)")
    src_strides = [geom.p, _mul(channels, geom.p), 1]
    _emit_strided_copy(L, out, buf, shape, src_strides, 0, _contig_strides(shape), 0,
                       f"{label} NCHW -> CNHW")
    return out


@lowers(conv.Conv2d)
def lower_conv2d(L, node):
    (x, w), y = node.inputs, node.outputs[0]
    geom = _Geom(node.op, L.shape(x), L.shape(w), L.shape(y))
    dtype, label = y.dtype, str(node.op)
    yb = L.out_buffer(y)
    if conv_algorithm("fwd", geom) == "direct":
        L.emit("conv_direct", [yb], [L.buffer(x), L.buffer(w)], label + " (direct)",
               **geom.params(dtype))
        return
    col = _emit_im2col(L, geom, L.buffer(x), dtype, label)
    # per group g: out[g] (Mg, N*P) = W[g] (Mg, K) @ col[g] (K, N*P)
    tmp = yb if geom.n == 1 else L.new_buffer(dtype, (geom.cout, geom.n, geom.p), "temp",
                                              f"{label} gemm result")
    _emit_gemm(L, tmp, L.buffer(w), col, geom.mg, geom.np, geom.k, geom.g,
               geom.k, geom.np, geom.np, _mul(geom.mg, geom.k), _mul(geom.k, geom.np),
               _mul(geom.mg, geom.np), False, False, dtype, label + " gemm")
    if tmp is not yb:
        shape = (geom.n, geom.cout, geom.p)
        _emit_strided_copy(L, yb, tmp, shape, [geom.p, geom.np, 1], 0, _contig_strides(shape), 0,
                           label + " CNHW -> NCHW")


@lowers(conv.Conv2dGradInput)
def lower_conv2d_grad_input(L, node):
    (gy, w), gx = node.inputs, node.outputs[0]
    geom = _Geom(node.op, L.shape(gx), L.shape(w), L.shape(gy))
    dtype, label = gx.dtype, str(node.op)
    gxb = L.out_buffer(gx)
    if conv_algorithm("grad_input", geom) == "direct":
        L.emit("conv_direct_grad_input", [gxb], [L.buffer(gy), L.buffer(w)], label + " (direct)",
               **geom.params(dtype))
        return
    gyt = _nchw_to_cnp(L, geom, L.buffer(gy), geom.cout, dtype, label)
    # per group g: col[g] (K, N*P) = W[g]^T (K, Mg) @ gy[g] (Mg, N*P)
    col = L.new_buffer(dtype, (_mul(geom.g, geom.k), geom.np), "temp", f"{label} col")
    _emit_gemm(L, col, L.buffer(w), gyt, geom.k, geom.np, geom.mg, geom.g,
               geom.k, geom.np, geom.np, _mul(geom.mg, geom.k), _mul(geom.mg, geom.np),
               _mul(geom.k, geom.np), True, False, dtype, label + " gemm")
    L.emit("conv_col2im", [gxb], [col], label + " col2im",
           **geom.params(dtype, RS=_c(geom.np), NS=_c(geom.p)))


@lowers(conv.Conv2dGradWeights)
def lower_conv2d_grad_weights(L, node):
    (x, gy), gw = node.inputs, node.outputs[0]
    geom = _Geom(node.op, L.shape(x), L.shape(gw), L.shape(gy))
    dtype, label = gw.dtype, str(node.op)
    gwb = L.out_buffer(gw)
    if conv_algorithm("grad_weights", geom) == "direct":
        L.emit("conv_direct_grad_weights", [gwb], [L.buffer(x), L.buffer(gy)],
               label + " (direct)", **geom.params(dtype, acc_ctype="double" if dtype == "float64" else "float"))
        return
    col = _emit_im2col(L, geom, L.buffer(x), dtype, label)
    gyt = _nchw_to_cnp(L, geom, L.buffer(gy), geom.cout, dtype, label)
    # per group g: gw[g] (Mg, K) = gy[g] (Mg, N*P) @ col[g]^T (N*P, K)
    _emit_gemm(L, gwb, gyt, col, geom.mg, geom.k, geom.np, geom.g,
               geom.np, geom.np, geom.k, _mul(geom.mg, geom.np), _mul(geom.k, geom.np),
               _mul(geom.mg, geom.k), False, True, dtype, label + " gemm")


# --- pooling ----------------------------------------------------------------------------------

def _pool_params(L, op, x_shape, y_shape, dtype):
    n, c, h, w = x_shape
    return dict(planes=_c(_mul(n, c)), H=_c(h), W=_c(w), HO=_c(y_shape[2]), WO=_c(y_shape[3]),
                KH=str(op.kernel[0]), KW=str(op.kernel[1]), SH=str(op.stride[0]),
                SW=str(op.stride[1]), PH=str(op.padding[0]), PW=str(op.padding[1]),
                HW=_c(_mul(h, w)), P=_c(_mul(*y_shape[2:])), ctype=C_TYPES[dtype])


@lowers(pool.MaxPool2d)
def lower_max_pool(L, node):
    x, (y, arg) = node.inputs[0], node.outputs
    L.emit("pool_max", [L.out_buffer(y), L.out_buffer(arg)], [L.buffer(x)], str(node.op),
           **_pool_params(L, node.op, L.shape(x), L.shape(y), x.dtype))


@lowers(pool.MaxPool2dGrad)
def lower_max_pool_grad(L, node):
    (gy, arg), gx = node.inputs, node.outputs[0]
    L.emit("pool_max_grad", [L.out_buffer(gx)], [L.buffer(gy), L.buffer(arg)], str(node.op),
           **_pool_params(L, node.op, L.shape(gx), L.shape(gy), gx.dtype))


@lowers(pool.MaxPool2dGather)
def lower_max_pool_gather(L, node):
    (g, arg), out = node.inputs, node.outputs[0]
    n, c, h, w = L.shape(g)
    L.emit("pool_max_gather", [L.out_buffer(out)], [L.buffer(g), L.buffer(arg)], str(node.op),
           planes=_c(_mul(n, c)), HW=_c(_mul(h, w)), P=_c(_mul(*L.shape(out)[2:])),
           ctype=C_TYPES[out.dtype])


@lowers(pool.AvgPool2d)
def lower_avg_pool(L, node):
    x, y = node.inputs[0], node.outputs[0]
    L.emit("pool_avg", [L.out_buffer(y)], [L.buffer(x)], str(node.op),
           **_pool_params(L, node.op, L.shape(x), L.shape(y), x.dtype))


@lowers(pool.AvgPool2dGrad)
def lower_avg_pool_grad(L, node):
    gy, gx = node.inputs[0], node.outputs[0]
    L.emit("pool_avg_grad", [L.out_buffer(gx)], [L.buffer(gy)], str(node.op),
           **_pool_params(L, node.op, L.shape(gx), L.shape(gy), gx.dtype))


# --- local response normalization ----------------------------------------------------------------

def _lrn_params(op, shape, dtype):
    from ..targets.c.cprinter import ScalarPrinter
    pr = ScalarPrinter(dtype)
    f = lambda v: pr.doprint(sympy.Float(v, 17))  # noqa: E731
    sfx = "f" if dtype == "float32" else ""
    one = f(1.0)
    # scale^-beta, as a C expression in @S@: sqrt forms for the usual betas (exact to an ulp or
    # two, and they vectorize), else exp(-beta * log(S)) through libmvec (powf does not vectorize).
    negpow = {0.75: f"({one} / sqrt{sfx}(@S@ * sqrt{sfx}(@S@)))", 0.5: f"({one} / sqrt{sfx}(@S@))",
              1.0: f"({one} / (@S@))"}.get(op.beta, f"exp{sfx}({f(-op.beta)} * log{sfx}(@S@))")
    return dict(N=_c(shape[0]), C=_c(shape[1]), P=_c(_mul(*shape[2:])), half=str((op.size - 1) // 2),
                k=f(op.k), alpha_n=f(op.alpha / op.size), coef=f(2.0 * op.alpha * op.beta / op.size),
                ctype=C_TYPES[dtype], negpow=negpow)


@lowers(normalization.LRN)
def lower_lrn(L, node):
    x, y = node.inputs[0], node.outputs[0]
    L.emit("lrn", [L.out_buffer(y)], [L.buffer(x)], str(node.op),
           **_lrn_params(node.op, L.shape(x), x.dtype))


@lowers(normalization.LRNGrad)
def lower_lrn_grad(L, node):
    (x, y, gy), gx = node.inputs, node.outputs[0]
    shape = L.shape(x)
    scale = L.new_buffer(x.dtype, shape, "temp", f"{node.op} scale")
    ratio = L.new_buffer(x.dtype, shape, "temp", f"{node.op} ratio")
    L.emit("lrn_grad", [L.out_buffer(gx), scale, ratio], [L.buffer(x), L.buffer(y), L.buffer(gy)],
           str(node.op), **_lrn_params(node.op, shape, x.dtype))


# --- random numbers -------------------------------------------------------------------------------

@lowers(random.RandomUniform)
def lower_random_uniform(L, node):
    out, op = node.outputs[0], node.op
    L.emit("random_uniform", [L.out_buffer(out)], [L.buffer(node.inputs[0])], str(op),
           n=_c(_mul(*L.shape(out))), single=out.dtype == "float32",
           k0=str(op.key & 0xFFFFFFFF), k1=str(op.key >> 32),
           m0=str(random.PHILOX_M0), m1=str(random.PHILOX_M1),
           w0=str(random.PHILOX_W0), w1=str(random.PHILOX_W1))
