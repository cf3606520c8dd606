"""What every lowering module shares: the registry of lowering functions by op class, and the
strided-copy helpers. lower.py (the driver and the core ops) and lower_cnn.py both import it, and
neither imports the other's lowerings (lower.py imports lower_cnn only to register them)."""
import sympy

from ..ir.types import size_of

LOWERINGS = {}


def lowers(*op_classes):
    def deco(fn):
        for c in op_classes:
            LOWERINGS[c] = fn
        return fn
    return deco


def lowering_for(op):
    return next((LOWERINGS[c] for c in type(op).__mro__ if c in LOWERINGS), None)


def contig_strides(shape):
    st, acc = [], sympy.Integer(1)
    for d in reversed(shape):
        st.append(acc)
        acc = acc * d
    return list(reversed(st))


def emit_strided_copy(L, dst, src, shape, src_strides, src_offset, dst_strides, dst_offset, label,
                      accumulate=False):
    """dst[dst_offset + sum(i*dst_strides)] = src[src_offset + sum(i*src_strides)] over shape."""
    keep = [k for k, d in enumerate(shape) if d != 1] or []
    shape = [shape[k] for k in keep]
    src_strides = [src_strides[k] for k in keep]
    dst_strides = [dst_strides[k] for k in keep]
    L.emit("strided_copy", [dst], [src], label, rank=len(shape), shape=shape,
           src_strides=src_strides, dst_strides=dst_strides, src_offset=src_offset,
           dst_offset=dst_offset, n=size_of(shape), dtype=dst.dtype, accumulate=accumulate)

