"""Lowering of convolutions to the blocked direct kernels (templates/c/_conv_blocked.j2): vectors
of output pixels along a row times a tile of output channels, the input channels and taps in the
inner loop, from a zero-padded copy of each image (so no loop tests a bound).

Used where the target's capabilities say it pays (CCapabilities.blocked_conv_pays: small channel
counts, where im2col + gemm has few rows); lower_cnn.py asks `blocked_kind` first. The input
gradient of a stride-1 conv is the same kernel over gy with the filters turned and transposed
(FLIP), padded K-1-P. Scratch per kernel: the packed weights, the tap offsets, and one slot per
thread (CCapabilities.conv_slots) holding a padded image (and, for the weight gradient, gy's
padded rows and the thread's partial sums); its size is bounded for the widest vector the C may
use (64 bytes, the AVX-512 hook), so the C may choose any width up to that.
"""
import sympy

from .program import DTYPE_BYTES

TILE_CHANNELS = 4   # GC_CONV_R: output channels per register tile
WIDEST_VECTOR_BYTES = 64
# Extra elements per weight-gradient slot, for groups of small images (a register tile then sweeps
# several images before it adds into the partial sums): 8x8 images of 32-64 channels fit 3 (256 KB
# of float32 per slot: the planned workspace of a tiny conv is mostly this).
GROUP_ELEMS = 1 << 16
# Images per forward slot (GC_CONV_Q): the forward kernel pads that many small images side by side
# when one image's pixel vectors do not fill whole 3-vector tiles (8x8: 8 vectors, 9 computed).
FWD_GROUP_IMAGES = 3


def _mul(*ds):
    out = sympy.Integer(1)
    for d in ds:
        out = out * d
    return int(out) if out.is_Integer else out


def _floor_div(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    return sympy.floor(sympy.sympify(a) / b)


def blocked_kind(L, kind, geom):
    """True where conv kernel `kind` (fwd, grad_input, grad_weights) of this geometry runs as a
    blocked direct convolution: an ungrouped, undilated conv (the input gradient also stride 1,
    padding below the kernel) on a target whose capabilities say it pays."""
    op, pays = geom.op, getattr(L.caps, "blocked_conv_pays", None)
    if pays is None or geom.g != 1 or op.dilation != (1, 1):
        return False
    budget = getattr(L.caps, "conv_workspace_bytes", None)
    if budget is not None:
        budget()  # (a bad GRAPHC_CONV_WORKSPACE is an error whichever kernel a conv gets)
    if not all(isinstance(d, int) for d in (geom.ct, geom.cout, geom.kh, geom.kw)):
        return False  # (filters of a symbolic shape: the tile and the packing want numbers)
    if kind == "grad_input" and (op.stride != (1, 1) or op.padding[0] > geom.kh - 1
                                 or op.padding[1] > geom.kw - 1):
        return False
    return pays(kind, geom.ct, geom.cout, geom.kh, geom.kw, op.stride, op.padding)


def _slot_image(c, h, w, sw, ph, pw, vl):
    """Elements of one padded image (the C's gc_cv_pad_of, for a vector of vl elements or fewer)."""
    return _mul(c, sw, h + 2 * ph, _floor_div(w + 2 * pw + sw - 1, sw) + vl)


def emit_blocked(L, kind, geom, out_buf, in_buf, w_buf, dtype, label):
    """One conv_blocked kernel (kind fwd or grad_input) or conv_blocked_grad_weights (in_buf: x,
    w_buf: gy)."""
    op, slots = geom.op, L.caps.conv_slots()
    vl = WIDEST_VECTOR_BYTES // DTYPE_BYTES[dtype]
    if kind == "grad_input":
        c, co, h, w, ho, wo = geom.cout, geom.ct, geom.ho, geom.wo, geom.h, geom.w
        ph, pw, sh, sw = geom.kh - 1 - op.padding[0], geom.kw - 1 - op.padding[1], 1, 1
    else:
        c, co, h, w, ho, wo = geom.ct, geom.cout, geom.h, geom.w, geom.ho, geom.wo
        (ph, pw), (sh, sw) = op.padding, op.stride
    image = _slot_image(c, h, w, sw, ph, pw, vl)
    taps = _mul(c, geom.kh, geom.kw)
    params = dict(N=geom.n, C=c, H=h, W=w, CO=co, KH=geom.kh, KW=geom.kw, SH=sh, SW=sw, PH=ph,
                  PW=pw, HO=ho, WO=wo, SLOTS=slots, dtype=dtype)
    toff = L.new_buffer("int64", (taps,), "temp", f"{label} tap offsets")
    if kind == "grad_weights":
        padded_co = co + TILE_CHANNELS - 1
        # the partials, one image and its gy rows, and room to group small images (the C picks
        # how many fit, up to 8)
        # (gy's rows: ho * (wo + vl) bounds ho * nvec * VL; written ho*wo + (h+2ph)*vl, as
        # ho <= h + 2*ph, so that no sum of it is negative where the dims do not make a conv)
        rows = _mul(padded_co, ho, wo) + _mul(padded_co, h + 2 * ph, vl)
        slot = _mul(padded_co, taps, vl) + image + rows + GROUP_ELEMS
        scratch = [toff, L.new_buffer(dtype, (slots, slot), "temp", f"{label} padded images")]
        L.emit("conv_blocked_grad_weights", [out_buf], [in_buf, w_buf],
               f"{label} (blocked direct)", SLOT_ELEMS=slot, **params)
    else:
        packed = L.new_buffer(dtype, (_mul(co + TILE_CHANNELS - 1, taps),), "temp",
                              f"{label} packed filters")
        slot = _mul(FWD_GROUP_IMAGES, image)
        scratch = [packed, toff, L.new_buffer(dtype, (slots, slot), "temp", f"{label} padded images")]
        L.emit("conv_blocked", [out_buf], [in_buf, w_buf], f"{label} (blocked direct)",
               SLOT_ELEMS=slot, FLIP=kind == "grad_input", epilogue=[], **params)
    L.kernels[-1].scratch = scratch
