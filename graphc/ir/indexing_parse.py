"""Turn a python index (ints, slices, None, Ellipsis, integer variables) into graph ops."""
import numpy as np

from ..errors import GraphcTypeError
from .constructors import as_variable
from .graph import Variable
from .ops.indexing import AdvancedSubtensor, take
from .ops.shape import Subtensor, reshape, resolve_slice
from .value_dims import dynamic_entry, is_dynamic_bound, slice_step


def getitem(x, index):
    if not isinstance(index, tuple):
        index = (index,)
    index = tuple(as_variable(i) if isinstance(i, (list, np.ndarray)) else i for i in index)
    if any(i is Ellipsis for i in index):
        k = index.index(Ellipsis)
        fill = x.ndim - (len(index) - 1 - sum(1 for i in index if i is None))
        index = index[:k] + (slice(None),) * fill + index[k + 1:]
    scalars = [k for k, i in enumerate(index) if _is_scalar_index(i)]
    if scalars and not any(isinstance(i, Variable) and k not in scalars for k, i in enumerate(index)):
        # Integer scalars of the graph among slices (x[:, i]): numpy's basic indexing, as a
        # take on each such axis (the last first, so the others keep their numbers), then the rest.
        axis_of = {k: sum(1 for i in index[:k] if i is not None) for k in scalars}
        for k in reversed(scalars):
            x = take(x, index[k], axis=axis_of[k])
        rest = tuple(i for k, i in enumerate(index) if k not in scalars)
        return getitem(x, rest) if rest else x
    advanced = [k for k, i in enumerate(index) if isinstance(i, Variable)]
    if advanced:
        if any(i is None for i in index) or any(isinstance(i, (int, np.integer)) for i in index):
            raise GraphcTypeError(f"indexing {x.label()}: mixing index arrays with ints or None is not "
                                  "supported; index in two steps")
        lead = [i for i in index[:advanced[0]]]
        if all(isinstance(i, slice) and i == slice(None) for i in lead) and \
                advanced == list(range(advanced[0], advanced[0] + len(advanced))):
            rest = index[advanced[-1] + 1:]
            if any(not (isinstance(i, slice) and i == slice(None)) for i in rest):
                raise GraphcTypeError(f"indexing {x.label()}: slices after index arrays are not "
                                      "supported; slice first, then index")
            if advanced[0] == 0:
                return AdvancedSubtensor()(x, *[index[k] for k in advanced])
            if len(advanced) == 1:
                return take(x, index[advanced[0]], axis=advanced[0])
        raise GraphcTypeError(f"indexing {x.label()}: index arrays must sit on consecutive leading "
                              "axes (x[i], x[i, j]) or be a single one (x[:, i])")
    # basic indexing: ints and slices, with None adding axes afterwards
    entries, new_axes, axis, out_pos = [], [], 0, 0
    dynamic, bounds = [], []  # slices with run-time bounds (graphc/ir/value_dims.py)
    for i in index:
        if i is None:
            new_axes.append(out_pos)
            out_pos += 1
            continue
        if axis >= x.ndim:
            raise GraphcTypeError(f"indexing {x.label()}: too many indices for rank {x.ndim}")
        n = x.type.shape[axis]
        if isinstance(i, slice):
            i = slice(_const_int(i.start), _const_int(i.stop), slice_step(i.step))
            if is_dynamic_bound(i.start) or is_dynamic_bound(i.stop) or \
                    isinstance(i.step, Variable):
                entry, record = dynamic_entry(i, i.step, axis, bounds)
                entries.append(entry)
                dynamic.append(record)
            else:
                entries.append(resolve_slice(i, n))
            out_pos += 1
        elif isinstance(i, (int, np.integer)):
            i = int(i)
            if isinstance(n, int) and not -n <= i < n:
                raise GraphcTypeError(f"indexing {x.label()}: index {i} is out of range for axis "
                                      f"{axis} of size {n}")
            entries.append(i if i >= 0 else n + i)
        else:
            raise GraphcTypeError(f"indexing {x.label()}: unsupported index {i!r}")
        axis += 1
    full = not dynamic and all(isinstance(e, tuple) and e == (0, x.type.shape[k], 1)
                               for k, e in enumerate(entries))
    y = x if full else Subtensor(tuple(entries), tuple(dynamic))(x, *bounds)
    if new_axes:
        shape = list(y.type.shape)
        for pos in new_axes:
            shape.insert(pos, 1)
        y = reshape(y, shape)
    return y


def _const_int(v):
    """A constant integer scalar bound as an int (the slice is then resolved when built)."""
    from .graph import Constant
    if isinstance(v, Constant) and v.data.ndim == 0 and v.data.dtype.kind in "iu":
        return int(v.data.item())
    return v


def _is_scalar_index(i):
    return isinstance(i, Variable) and i.ndim == 0 and i.dtype in ("int32", "int64") \
        and not hasattr(i, "dim_expr")
