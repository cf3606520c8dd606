"""Lowering of convolutions to the blocked direct kernels (templates/c/_conv_blocked.j2): vectors
of output pixels along a row times a tile of output channels, the input channels and taps in the
inner loop, from a zero-padded copy of each image (so no loop tests a bound).

Used where the target's capabilities say it pays (CCapabilities.blocked_conv_pays: small channel
counts, where im2col + gemm has few rows); lower_cnn.py asks `blocked_kind` first. The input
gradient of a stride-1 conv is the same kernel over gy with the filters turned and transposed
(FLIP), padded K-1-P; that of a strided conv is S_h x S_w such kernels, one per phase of gx's
rows and columns (`phase_geometry`), each with the taps of the filter that reach that phase.
A stride-1 conv whose output rows do not fill whole vectors (LeNet's 10-pixel rows) may run in
the C's flat layout (each image's outputs one row of HO*WO, each input channel's padded image
copied once per kernel column, _conv_blocked.j2's gc_cv_flat_of): its slots get room for it.
Scratch per kernel: the packed weights, the tap offsets, and one slot per thread
(CCapabilities.conv_slots) holding a padded image (and, for the weight gradient, gy's padded rows
and the thread's partial sums); its size is bounded for the widest vector the C may use (64
bytes, the AVX-512 hook), so the C may choose any width up to that.
"""
import sympy

from .lower_support import contig_strides, emit_strided_copy
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
    if kind == "grad_input" and (op.padding[0] > geom.kh - 1 or op.padding[1] > geom.kw - 1):
        return False
    if kind == "grad_input" and op.stride != (1, 1) and not all(
            phase_geometry(k, s, p) is not None for k, s, p in
            ((geom.kh, op.stride[0], op.padding[0]), (geom.kw, op.stride[1], op.padding[1]))):
        return False
    return pays(kind, geom.ct, geom.cout, geom.kh, geom.kw, op.stride, op.padding)


def phase_geometry(k, s, p):
    """The input gradient of a conv with kernel k, stride s, padding p along one axis, split by
    the phase r of gx's index (i = s * a + r): phase r is a stride-1 correlation of gy, padded L
    before, with the m taps k0, k0 + s, ... of the filter turned; its output a reads gy rows
    a - L .. a - L + m - 1. Returns [(k0, m, L)] per phase, or None where a phase has no tap
    (s > k) or would need gy cropped (L < 0: padding beyond the usual); those stay im2col + gemm."""
    out = []
    for r in range(s):
        k0 = (r + p) % s
        m = (k - k0 + s - 1) // s
        lead = m - 1 - (r + p) // s
        if m < 1 or lead < 0:
            return None
        out.append((k0, m, lead))
    return out


def _slot_image(c, h, w, sw, ph, pw, vl, extra_rows=0, extra_cols=0):
    """Elements of one padded image (the C's gc_cv_pad_of, for a vector of vl elements or fewer;
    extra_rows / extra_cols: room for outputs past the padded image's, a phase's)."""
    return _mul(c, sw, h + 2 * ph + extra_rows, _floor_div(w + 2 * pw + sw - 1, sw) + vl + extra_cols)


def _flat_image(c, h, ph, kw, wo, vl):
    """Elements of one image in the flat layout of a stride-1 conv (the C's gc_cv_flat_of: per
    channel, kw planes of the h + 2*ph padded rows, wo wide, and a vector's reach)."""
    return _mul(c, kw, (h + 2 * ph) * wo + vl)


def flat_may_pay(wo, vl):
    """Whether rows of wo outputs waste an eighth of their lanes or more in vectors of vl, vl/2 or
    vl/4 elements (64, 32, 16 bytes: the widths the C may be compiled for), the C's rule for the
    flat layout (gc_cv_flat_of)."""
    return any((-wo % v) * 8 >= wo + (-wo % v) for v in (vl, vl // 2, vl // 4) if v >= 1)


def _forward_image(c, h, w, ph, pw, kw, wo, sh, sw, vl):
    """Elements of one image of a conv_blocked slot: the row layout's, or where the C may choose
    the flat layout (stride 1, rows that waste lanes: flat_may_pay), the larger of the two.
    Symbolic sizes keep the row layout (the bench nets' 8-32 pixel rows fill their vectors) and
    its slot, unchanged."""
    image = _slot_image(c, h, w, sw, ph, pw, vl)
    sizes = (c, h, w, wo, image)
    if (sh, sw) != (1, 1) or not all(isinstance(d, (int, sympy.Integer)) for d in sizes):
        return image
    if not flat_may_pay(int(wo), vl):
        return image
    return max(int(image), _flat_image(int(c), int(h), ph, kw, int(wo), vl))


def emit_blocked(L, kind, geom, out_buf, in_buf, w_buf, dtype, label):
    """One conv_blocked kernel (kind fwd or grad_input) or conv_blocked_grad_weights (in_buf: x,
    w_buf: gy); the input gradient of a strided conv: one per phase (_emit_phases)."""
    if kind == "grad_input" and geom.op.stride != (1, 1):
        _emit_phases(L, geom, out_buf, in_buf, w_buf, dtype, label)
        return
    op, slots = geom.op, L.caps.conv_slots()
    vl = WIDEST_VECTOR_BYTES // DTYPE_BYTES[dtype]
    if kind == "grad_input":
        c, co, h, w, ho, wo = geom.cout, geom.ct, geom.ho, geom.wo, geom.h, geom.w
        ph, pw, sh, sw = geom.kh - 1 - op.padding[0], geom.kw - 1 - op.padding[1], 1, 1
    else:
        c, co, h, w, ho, wo = geom.ct, geom.cout, geom.h, geom.w, geom.ho, geom.wo
        (ph, pw), (sh, sw) = op.padding, op.stride
    image = _forward_image(c, h, w, ph, pw, geom.kw, wo, sh, sw, vl)
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
        # (the flat layout's gy: padded_co * (ho*wo + vl) elements, inside `rows`)
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


def _emit_phases(L, geom, gx_buf, gy_buf, w_buf, dtype, label):
    """gx of a strided conv, phase by phase: the phase's taps of w copied out, the blocked kernel
    with them turned (FLIP) over gy into a phase image, and that copied into every S-th row and
    column of gx. (Not chosen by default, CCapabilities.blocked_conv_pays: it did not beat im2col +
    gemm on ResNet-20's strided convs, bench/README.md.)"""
    op, slots = geom.op, L.caps.conv_slots()
    vl = WIDEST_VECTOR_BYTES // DTYPE_BYTES[dtype]
    (sh, sw), (kh, kw) = op.stride, (geom.kh, geom.kw)
    c, co, h, w = geom.cout, geom.ct, geom.ho, geom.wo  # the phase conv: gy -> a phase of gx
    gx_strides = contig_strides((geom.n, co, geom.h, geom.w))
    for rh, (k0h, mh, lh) in enumerate(phase_geometry(kh, sh, op.padding[0])):
        for rw, (k0w, mw, lw) in enumerate(phase_geometry(kw, sw, op.padding[1])):
            tag = f"{label} phase ({rh}, {rw})"
            hr, wr = _floor_div(geom.h - rh + sh - 1, sh), _floor_div(geom.w - rw + sw - 1, sw)
            taps = L.new_buffer(dtype, (c, co, mh, mw), "temp", f"{tag} filter taps")
            emit_strided_copy(L, taps, w_buf, (c, co, mh, mw), [co * kh * kw, kh * kw, sh * kw, sw],
                              k0h * kw + k0w, contig_strides((c, co, mh, mw)), 0, f"{tag} filter taps")
            phase = L.new_buffer(dtype, (geom.n, co, hr, wr), "temp", f"{tag} of gx")
            # (a phase's output may reach up to 2 kernels past gy's padded rows / columns:
            # room for it, zero, in the slot; the C sizes its image the same way, gc_cv_pad_of)
            image = _slot_image(c, h, w, 1, lh, lw, vl, 2 * kh, 2 * kw)
            packed = L.new_buffer(dtype, (_mul(co + TILE_CHANNELS - 1, c, mh, mw),), "temp",
                                  f"{tag} packed filters")
            toff = L.new_buffer("int64", (_mul(c, mh, mw),), "temp", f"{tag} tap offsets")
            pad = L.new_buffer(dtype, (slots, _mul(FWD_GROUP_IMAGES, image)), "temp", f"{tag} padded images")
            L.emit("conv_blocked", [phase], [gy_buf, taps], f"{tag} (blocked direct)",
                   SLOT_ELEMS=_mul(FWD_GROUP_IMAGES, image), FLIP=True, N=geom.n, C=c, H=h, W=w,
                   CO=co, KH=mh, KW=mw, SH=1, SW=1, PH=lh, PW=lw, HO=hr, WO=wr, SLOTS=slots, dtype=dtype,
                   epilogue=[])
            L.kernels[-1].scratch = [packed, toff, pad]
            emit_strided_copy(L, gx_buf, phase, (geom.n, co, hr, wr), contig_strides((geom.n, co, hr, wr)), 0,
                              [gx_strides[0], gx_strides[1], sh * gx_strides[2], sw], rh * geom.w + rw,
                              f"{tag} into gx")
