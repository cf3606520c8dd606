"""Lowering of the convolutional-net ops (conv, pooling, LRN, random numbers) to kernels.

Convolution has two algorithms, chosen per kernel by the target's capabilities
(graphc.targets.c.capabilities.CCapabilities.conv_algorithm; GRAPHC_CONV_ALGO forces one):
  gemm:   im2col of the whole batch into a (G, K, N*P) workspace matrix (K = C/G*kh*kw,
          P = Ho*Wo), then ONE gemm per group (OpenBLAS threads it; no gemm runs inside an OpenMP
          region), then a transpose of the (C_out, N, P) result into NCHW. The weight gradient is
          gy^T-times-col^T (K = N*P, one big gemm), the input gradient W^T-times-gy then col2im.
  direct: plain loops, OpenMP over (image, channel) planes or over filters.
  blocked: a direct convolution blocked for the vector registers, for small channel counts
          (lower_cnn_blocked.py; CCapabilities.blocked_conv_pays says where).
  winograd: F(2x2, 3x3) for the forward and input gradient of 3x3 stride-1 convs with enough
          channels (CCapabilities.winograd_pays; templates/c/conv_winograd.j2), chunked like gemm;
          F(3x3, 2x2) for their weight gradient (conv_winograd_grad_weights.j2); F(4x4, 3x3) for
          the forward and input gradient where CCapabilities.winograd_tile says (conv_winograd4.j2).
The F(2x2, 3x3) and F(3x3, 2x2) Winograd kernels and the chunked gemm kernels below are calls of
functions compiled once into the C target's runtime library with run-time sizes
(graphc/targets/c/conv_library.py), as the blocked conv is; F(4x4, 3x3) renders inline.
Both were measured on LeNet's layers (bench/conv_lenet.py has the numbers): gemm wins except where
the gemm would be tiny.
A target whose capabilities set an im2col budget (conv_workspace_bytes: the C target) runs gemm
convolutions as one kernel that loops over chunks of NB images, NB as many as fit the budget (at
least one): im2col of the chunk, the gemm per group, the chunk's result in place. Its scratch is
bounded by the budget whatever the batch (AlexNet's conv1 at batch 128: ~560 MB unchunked).
"""
import functools

import sympy

from ..ir.ops import conv, normalization, pool, random
from ..ir.size_rounding import minmax, rounding
from ..ir.types import KeptMax, KeptMin
from .lower_cnn_blocked import blocked_kind, emit_blocked
from .lower_support import contig_strides as _contig_strides
from .lower_support import emit_strided_copy as _emit_strided_copy
from .lower_support import lowers
from .program import DTYPE_BYTES


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
        out = dict(N=self.n, G=self.g, CG=self.cg, MG=self.mg, C=self.ct, H=self.h, W=self.w,
                   KH=self.kh, KW=self.kw, SH=op.stride[0], SW=op.stride[1], PH=op.padding[0],
                   PW=op.padding[1], DH=op.dilation[0], DW=op.dilation[1], HO=self.ho,
                   WO=self.wo, dtype=dtype, acc_dtype=dtype)
        out.update(extra)
        return out


def conv_algorithm(L, kind, geom):
    """'gemm' or 'direct' for one of the three conv kernels (kind: fwd, grad_input, grad_weights),
    as the target's capabilities decide."""
    return L.caps.conv_algorithm(kind, geom.k, geom.mg)


# Chunks sized for the cache on one thread, not only for the memory budget: one image's column matrix is then
# still in L2 when the gemm packs it, and no (C_out, nb, P) transpose is needed. Measured on the
# CIFAR/ResNet/VGG layers (float32, 1 thread, forward + both gradients, interleaved): chunks of
# <= 512 KiB (one image there) vs the 32 MB budget: 1.45x faster on a 3-channel 5x5 conv,
# 1.39x on cifar-quick's conv2, 1.53x on ResNet's 16-channel 3x3, 1.20x on VGG's 64-channel
# 3x3, equal on 256 channels at 8x8 (bench/conv_layers.py; bench/README.md).
CONV_CHUNK_CACHE_BYTES = 512 * 1024


@functools.lru_cache(maxsize=1024)  # (sympy's Min/Max ask the assumptions, ~30 ms; a conv's
def _images_in(budget, per_image, n):  # three kernels ask for the same chunk)
    """Images of per_image bytes that fit budget, at least one and at most n. With symbolic
    sizes floor(Max(budget, size) / size) >= 1 by construction (sympy folds
    Max(1, floor(b / (13*d2*d3))) into the floor, which is 0 for large images, and the chunk
    loop then never advanced)."""
    if isinstance(per_image, int) and isinstance(n, int):
        return max(1, min(n, budget // max(per_image, 1)))
    size = minmax(sympy.Max, per_image, 1)  # (sympy's Max and floor, their failing proofs skipped)
    # Min and Max kept as written (sympy's evaluation asked the assumptions for ~0.1 s each), as
    # sympy would print them: arguments in its order, Max(budget, Max(1, s)) flat as Max(budget, s)
    top = [a for a in size.args if a != 1] if isinstance(size, sympy.Max) else [size]
    count = rounding(sympy.floor, KeptMax(*sympy.ordered([sympy.Integer(budget)] + top)) / size)
    if count.is_Number:
        return sympy.Min(n, count)  # (one symbol: sympy's Min is quick, and folds Min(n, 1))
    return KeptMin(*sympy.ordered([n, count]))


def _chunk_sizes(L, per_image, n):
    """(NB, NB1): images per chunk under the memory budget (the scratch is sized for it), and
    under CONV_CHUNK_CACHE_BYTES too, which the kernel uses when it runs on one thread. Cache
    chunks on 2 threads of a loaded 2-core machine were 3x slower (744 vs 242 ms, cifar-quick's
    conv2): every image then pays the OpenMP regions and barriers of its im2col and gemm."""
    workspace = L.caps.conv_workspace_bytes()
    return (_images_in(workspace, per_image, n),
            _images_in(min(workspace, CONV_CHUNK_CACHE_BYTES), per_image, n))


def _chunk_images(L, geom, dtype):
    """Images per chunk (an int, or an expression of the dims), or None: no budget, no chunks."""
    budget = getattr(L.caps, "conv_workspace_bytes", None)
    if budget is None:
        return None
    per_image = _mul(geom.g * geom.k + geom.cout, geom.p, DTYPE_BYTES[dtype])
    return _chunk_sizes(L, per_image, geom.n)


def _emit_chunked(L, kind, geom, nb, outs, ins, dtype, label):
    """One conv_chunked* kernel; its scratch: the column matrix (G*K, NB*P) and the
    (C_out, NB, P) product (forward) or output gradient (the gradients). nb: (NB, NB1)."""
    nb, nb1 = nb
    col = L.new_buffer(dtype, (_mul(geom.g, geom.k), _mul(nb, geom.p)), "temp", f"{label} im2col chunk")
    cnp = L.new_buffer(dtype, (geom.cout, _mul(nb, geom.p)), "temp", f"{label} (C_out, NB, P) chunk")
    size = f"{nb} images" if isinstance(nb, int) else "images"
    L.emit(kind, outs, ins, f"{label} (chunks of {size})", **geom.params(dtype, NB=nb, NB1=nb1))
    L.kernels[-1].scratch = [col, cnp]


def _winograd(L, kind, geom):
    """True where a 3x3, stride-1, undilated, ungrouped conv kernel (forward, input gradient
    whose padding 2 - PH must be >= 0, or weight gradient) runs as Winograd: only on a target with
    chunked conv kernels (a workspace budget), where its capabilities say it pays."""
    op, pays = geom.op, getattr(L.caps, "winograd_pays", None)
    if pays is None or getattr(L.caps, "conv_workspace_bytes", None) is None:
        return False
    if (geom.g, geom.kh, geom.kw, op.stride, op.dilation) != (1, 3, 3, (1, 1), (1, 1)):
        return False
    if kind == "grad_input" and max(op.padding) > 2:
        return False
    return pays(kind, geom.ct, geom.cout)


def _emit_winograd(L, geom, out_buf, in_buf, w_buf, flip, dtype, label):
    """One conv_winograd kernel: forward (x -> y) or, flip, the input gradient (gy -> gx), which is
    the same correlation of gy with the turned, transposed filters, padded 2 - PH."""
    if flip:
        ci, co, hi, wi, ho, wo = geom.cout, geom.ct, geom.ho, geom.wo, geom.h, geom.w
        ph, pw = 2 - geom.op.padding[0], 2 - geom.op.padding[1]
    else:
        ci, co, hi, wi, ho, wo = geom.ct, geom.cout, geom.h, geom.w, geom.ho, geom.wo
        ph, pw = geom.op.padding
    m = L.caps.winograd_tile("grad_input" if flip else "fwd", ci, co)  # output tile m x m
    e = (m + 2) ** 2  # transformed values per tile
    tiles = _mul(sympy.floor((sympy.sympify(ho) + m - 1) / m),
                 sympy.floor((sympy.sympify(wo) + m - 1) / m))
    per_image = _mul(e, ci + co, tiles, DTYPE_BYTES[dtype])
    nb, nb1 = _chunk_sizes(L, per_image, geom.n)
    scratch = [L.new_buffer(dtype, (e, co, ci), "temp", f"{label} Winograd filters"),
               L.new_buffer(dtype, (e, ci, _mul(nb, tiles)), "temp", f"{label} Winograd tiles"),
               L.new_buffer(dtype, (e, co, _mul(nb, tiles)), "temp", f"{label} Winograd products")]
    kind = "conv_winograd4" if m == 4 else "conv_winograd"
    L.emit(kind, [out_buf], [in_buf, w_buf], f"{label} (Winograd F({m}x{m},3x3))", N=geom.n,
           CI=ci, CO=co, HI=hi, WI=wi, HO=ho, WO=wo, PH=ph, PW=pw, NB=nb, NB1=nb1, FLIP=flip,
           dtype=dtype)
    L.kernels[-1].scratch = scratch


def _emit_winograd_grad_weights(L, geom, gw_buf, x_buf, gy_buf, dtype, label):
    """One conv_winograd_grad_weights kernel: F(3x3, 2x2) over the forward's tiles, the sum over
    tiles taken in the transformed domain (16 gemms per chunk of NB images)."""
    ci, co = geom.ct, geom.cout
    tiles = _mul(sympy.floor((sympy.sympify(geom.ho) + 1) / 2),
                 sympy.floor((sympy.sympify(geom.wo) + 1) / 2))
    nb, nb1 = _chunk_sizes(L, _mul(16, ci + co, tiles, DTYPE_BYTES[dtype]), geom.n)
    scratch = [L.new_buffer(dtype, (16, co, ci), "temp", f"{label} Winograd sum"),
               L.new_buffer(dtype, (16, ci, _mul(nb, tiles)), "temp", f"{label} Winograd tiles"),
               L.new_buffer(dtype, (16, co, _mul(nb, tiles)), "temp", f"{label} Winograd gy tiles")]
    L.emit("conv_winograd_grad_weights", [gw_buf], [x_buf, gy_buf],
           f"{label} (Winograd F(3x3,2x2))", N=geom.n, CI=ci, CO=co, HI=geom.h, WI=geom.w,
           HO=geom.ho, WO=geom.wo, PH=geom.op.padding[0], PW=geom.op.padding[1], NB=nb, NB1=nb1,
           dtype=dtype)
    L.kernels[-1].scratch = scratch


def _emit_gemm(L, out_buf, a_buf, b_buf, M, N, K, batch, lda, ldb, ldc, sa, sb, sc, ta, tb, dtype,
               label):
    L.emit("gemm", [out_buf], [a_buf, b_buf], label, M=M, N=N, K=K, batch=batch, lda=lda, ldb=ldb,
           ldc=ldc, stride_a=sa, stride_b=sb, stride_c=sc, trans_a=ta, trans_b=tb, dtype=dtype,
           alpha=1.0, beta=0.0)


def _emit_im2col(L, geom, x_buf, dtype, label):
    """The (G*K, N*P) im2col matrix of x in a workspace buffer."""
    col = L.new_buffer(dtype, (_mul(geom.g, geom.k), geom.np), "temp", f"{label} im2col")
    L.emit("conv_im2col", [col], [x_buf], f"{label} im2col",
           **geom.params(dtype, RS=geom.np, NS=geom.p))
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
    if conv_algorithm(L, "fwd", geom) == "direct":
        L.emit("conv_direct", [yb], [L.buffer(x), L.buffer(w)], label + " (direct)",
               **geom.params(dtype))
        return
    if blocked_kind(L, "fwd", geom):
        emit_blocked(L, "fwd", geom, yb, L.buffer(x), L.buffer(w), dtype, label)
        return
    if _winograd(L, "fwd", geom):
        _emit_winograd(L, geom, yb, L.buffer(x), L.buffer(w), False, dtype, label)
        return
    nb = _chunk_images(L, geom, dtype)
    if nb is not None:
        _emit_chunked(L, "conv_chunked", geom, nb, [yb], [L.buffer(x), L.buffer(w)], dtype, label)
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
    if conv_algorithm(L, "grad_input", geom) == "direct":
        L.emit("conv_direct_grad_input", [gxb], [L.buffer(gy), L.buffer(w)], label + " (direct)",
               **geom.params(dtype))
        return
    if blocked_kind(L, "grad_input", geom):
        emit_blocked(L, "grad_input", geom, gxb, L.buffer(gy), L.buffer(w), dtype, label)
        return
    if _winograd(L, "grad_input", geom):
        _emit_winograd(L, geom, gxb, L.buffer(gy), L.buffer(w), True, dtype, label)
        return
    nb = _chunk_images(L, geom, dtype)
    if nb is not None:
        _emit_chunked(L, "conv_chunked_grad_input", geom, nb, [gxb], [L.buffer(gy), L.buffer(w)],
                      dtype, label)
        return
    gyt = _nchw_to_cnp(L, geom, L.buffer(gy), geom.cout, dtype, label)
    # per group g: col[g] (K, N*P) = W[g]^T (K, Mg) @ gy[g] (Mg, N*P)
    col = L.new_buffer(dtype, (_mul(geom.g, geom.k), geom.np), "temp", f"{label} col")
    _emit_gemm(L, col, L.buffer(w), gyt, geom.k, geom.np, geom.mg, geom.g,
               geom.k, geom.np, geom.np, _mul(geom.mg, geom.k), _mul(geom.mg, geom.np),
               _mul(geom.k, geom.np), True, False, dtype, label + " gemm")
    L.emit("conv_col2im", [gxb], [col], label + " col2im",
           **geom.params(dtype, RS=geom.np, NS=geom.p))


@lowers(conv.Conv2dGradWeights)
def lower_conv2d_grad_weights(L, node):
    (x, gy), gw = node.inputs, node.outputs[0]
    geom = _Geom(node.op, L.shape(x), L.shape(gw), L.shape(gy))
    dtype, label = gw.dtype, str(node.op)
    gwb = L.out_buffer(gw)
    if conv_algorithm(L, "grad_weights", geom) == "direct":
        L.emit("conv_direct_grad_weights", [gwb], [L.buffer(x), L.buffer(gy)],
               label + " (direct)", **geom.params(dtype))
        return
    if _winograd(L, "grad_weights", geom):
        _emit_winograd_grad_weights(L, geom, gwb, L.buffer(x), L.buffer(gy), dtype, label)
        return
    if blocked_kind(L, "grad_weights", geom):
        emit_blocked(L, "grad_weights", geom, gwb, L.buffer(x), L.buffer(gy), dtype, label)
        return
    nb = _chunk_images(L, geom, dtype)
    if nb is not None:
        _emit_chunked(L, "conv_chunked_grad_weights", geom, nb, [gwb], [L.buffer(x), L.buffer(gy)],
                      dtype, label)
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
    return dict(planes=_mul(n, c), H=h, W=w, HO=y_shape[2], WO=y_shape[3], KH=op.kernel[0],
                KW=op.kernel[1], SH=op.stride[0], SW=op.stride[1], PH=op.padding[0],
                PW=op.padding[1], HW=_mul(h, w), P=_mul(*y_shape[2:]), dtype=dtype)


@lowers(pool.MaxPool2d)
def lower_max_pool(L, node):
    x, (y, arg) = node.inputs[0], node.outputs
    params = _pool_params(L, node.op, L.shape(x), L.shape(y), x.dtype)
    if (getattr(L.caps, "max_pool_without_argmax", False) and not L.fg.n_reads(arg)
            and not L.fg.is_output(arg)):
        # nothing reads the argmax (an inference graph): the kernel that does not compute it
        L.emit("pool_max_value", [L.out_buffer(y)], [L.buffer(x)], str(node.op), **params)
        return
    L.emit("pool_max", [L.out_buffer(y), L.out_buffer(arg)], [L.buffer(x)], str(node.op), **params)


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
           planes=_mul(n, c), HW=_mul(h, w), P=_mul(*L.shape(out)[2:]), dtype=out.dtype)


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
    # (the renderer writes scale^-beta: see _lrn_negpow.j2)
    return dict(N=shape[0], C=shape[1], P=_mul(*shape[2:]), half=(op.size - 1) // 2,
                k=float(op.k), alpha_n=float(op.alpha / op.size),
                coef=float(2.0 * op.alpha * op.beta / op.size), beta=float(op.beta), dtype=dtype)


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
           n=_mul(*L.shape(out)), single=out.dtype == "float32",
           k0=op.key & 0xFFFFFFFF, k1=op.key >> 32, m0=random.PHILOX_M0, m1=random.PHILOX_M1,
           w0=random.PHILOX_W0, w1=random.PHILOX_W1)
