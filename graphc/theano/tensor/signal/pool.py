"""theano.tensor.signal.pool.pool_2d over graphc's pooling ops, with Theano's semantics:
ignore_border=False keeps the partial windows at the bottom and right edges (graphc's ceil
mode), padding needs ignore_border=True, and the modes 'max', 'sum', 'average_inc_pad' (the
padding counts in the divisor) and 'average_exc_pad' (it does not)."""
import numpy as np

from ....errors import GraphcShapeError, GraphcTypeError
from ....ir.constructors import as_variable, constant
from ....ir.ops import elemwise as E
from ....ir.ops.pool import avg_pool2d, max_pool2d, pool_out_dim
from ....math import ones_like

MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")


def pool_2d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0), mode="max", ds=None,
            st=None, padding=None):
    """Pooling over the last two axes of a 4-D input (ds, st, padding: Theano's older names)."""
    ws = ws if ws is not None else ds
    if ws is None:
        raise GraphcTypeError("pool_2d: give the window size ws")
    stride = stride if stride is not None else st if st is not None else ws
    pad = tuple(padding if padding is not None else pad)
    ignore_border = bool(ignore_border)  # Theano: None means False (with a warning)
    if mode not in MODES:
        raise GraphcTypeError(f"pool_2d: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if pad != (0, 0) and not ignore_border:
        raise GraphcTypeError("pool_2d: padding works only with ignore_border=True (as in Theano)")
    x = as_variable(input)
    ceil = not ignore_border
    if mode == "max":
        return max_pool2d(x, ws, stride, pad, ceil_mode=ceil)
    avg = avg_pool2d(x, ws, stride, pad, ceil_mode=ceil)
    if mode == "average_inc_pad" or (mode == "average_exc_pad" and pad == (0, 0)):
        return avg  # without padding the two averages agree (the edge windows: real cells only)
    if mode == "average_exc_pad":
        return E.div_op(avg, avg_pool2d(ones_like(x), ws, stride, pad, ceil_mode=ceil))
    return E.mul_op(avg, _window_sizes(x, ws, stride, pad, ceil))


def _window_sizes(x, ws, stride, pad, ceil):
    """The cells (padding included, the edge overhang not) of each window: avg * this = sum."""
    if not ceil:
        return float(ws[0] * ws[1])
    h, w = x.type.shape[2:]
    if not (isinstance(h, int) and isinstance(w, int)):
        raise GraphcShapeError("pool_2d: mode='sum' with ignore_border=False needs the image size "
                               "when the graph is built (a static input shape)")
    sizes = [
        [min(k, size + 2 * p - i * s) for i in range(pool_out_dim(size, k, s, p, True))]
        for size, k, s, p in zip((h, w), ws, stride, pad)]
    return constant(np.outer(*sizes).astype(x.dtype))
