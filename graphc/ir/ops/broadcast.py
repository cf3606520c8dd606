"""broadcast_to: x repeated along its size-1 (or missing leading) axes to a shape whose entries
may be symbolic. A composition, not a kernel: `second(carrier, x)` broadcasts x against a small
carrier (an arange of the target size along one axis) per widened axis, and fusion folds the
chain into the consumer's loop, so no repeated copy is stored unless a kernel needs one."""
from ...errors import GraphcShapeError
from ..types import as_dim, dims_equal


def broadcast_shape(a, b):
    """numpy's broadcast of two shapes (ints or symbolic dims); symbolic dims broadcast only
    against 1, as everywhere in graphc."""
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x == 1:
            out.append(y)
        elif y == 1 or dims_equal(x, y):
            out.append(x)
        else:
            raise GraphcShapeError(f"shapes {a} and {b} do not broadcast (axis {i}: {x} vs {y})")
    return tuple(out)


def broadcast_to(x, shape):
    """x broadcast to `shape` (numpy.broadcast_to; entries ints or graphc dims)."""
    from ..constructors import as_variable
    from .elemwise import second_op
    from .shape import arange, reshape
    x = as_variable(x)
    shape = tuple(as_dim(d, "broadcast_to") for d in shape)
    if len(shape) < x.ndim:
        raise GraphcShapeError(f"broadcast_to {x.label()}: cannot broadcast {x.type} to fewer axes "
                               f"{shape}")
    padded = (1,) * (len(shape) - x.ndim) + tuple(x.type.shape)
    widen = []
    for axis, (have, want) in enumerate(zip(padded, shape)):
        if dims_equal(have, want):
            continue
        if have != 1:
            raise GraphcShapeError(f"broadcast_to {x.label()}: axis {axis} of {x.type} has size "
                                   f"{have}, which broadcasts only from 1, to {want} of {shape}")
        widen.append(axis)
    y = reshape(x, padded) if len(padded) != x.ndim else x
    for axis in widen:
        carrier_shape = [1] * len(shape)
        carrier_shape[axis] = shape[axis]
        y = second_op(reshape(arange(shape[axis]), carrier_shape), y)
    return y
