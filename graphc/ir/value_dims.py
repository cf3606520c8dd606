"""Value dims: sizes that come from the values of integer scalars rather than from input shapes.

`x[i * bs:(i + 1) * bs]` with `i` an input has a length known only at run time. The slice is an
ordinary Subtensor whose start and length on that axis are two new dim symbols (and its step a
third when the step is a graph scalar too: `x[a:b:s]`, any sign); the function
computes their values from the bounds before the program runs (graphc/runtime/value_binding.py),
clipping them as numpy does, and the program reads them like any other dim. A bound is any
integer scalar of the graph (inputs, shared variables, constants, shapes and arithmetic on them),
evaluated with each op's numpy reference.
"""
import itertools

import numpy as np
import sympy

from ..errors import GraphcTypeError
from .graph import Constant, Variable

_counter = itertools.count()


def _symbol(prefix):
    return sympy.Symbol(f"{prefix}{next(_counter)}", integer=True, nonnegative=True)


def _step_symbol():
    """A run-time slice step: an integer of either sign (never 0: checked at call time)."""
    return sympy.Symbol(f"_t{next(_counter)}", integer=True, nonzero=True)


class ValueDim:
    """The start and length of one dynamically sliced axis, and how to compute them: the axis
    size (a dim expression), the step (an int, or a graph scalar whose value is bound to
    `step_sym`) and the start/stop bound variables (or None)."""
    __slots__ = ("start_sym", "len_sym", "step_sym", "size", "step", "start", "stop", "label")

    def __init__(self, start_sym, len_sym, size, step, start, stop, label, step_sym=None):
        self.start_sym, self.len_sym, self.size, self.step = start_sym, len_sym, size, step
        self.start, self.stop, self.label, self.step_sym = start, stop, label, step_sym

    @property
    def symbols(self):
        """The dims this slice binds: start, length, and the step when it is a run-time one."""
        return (self.start_sym, self.len_sym) + (() if self.step_sym is None else (self.step_sym,))


def is_dynamic_bound(v):
    """Whether a slice bound is a graph variable whose value is not a known size."""
    return isinstance(v, Variable) and not hasattr(v, "dim_expr") and not isinstance(v, Constant)


def slice_step(step):
    """A slice step as an int (ints, numpy ints, integer constants), or an integer scalar of the
    graph whose value comes at run time (its sign too; zero raises when the function is called)."""
    if step is None:
        return 1
    if isinstance(step, Constant) and step.data.ndim == 0 and step.data.dtype.kind in "iu":
        step = step.data.item()
    if isinstance(step, (int, np.integer)) and not isinstance(step, bool):
        if step == 0:
            raise GraphcTypeError("slice step cannot be zero")
        return int(step)
    if isinstance(step, Variable):  # (x.shape[0] // 2 too: a dim, but of unknown sign)
        return _as_bound(step, "step")
    raise GraphcTypeError(f"a slice step must be an int or an integer scalar of the graph, got "
                          f"{step!r}; pass an int, or an lscalar/iscalar")


def dynamic_entry(sl, step, axis, bounds):
    """(index entry, dynamic record) of a slice with run-time bounds or step on `axis`; the
    bound variables are appended to `bounds` (the Subtensor node's extra inputs). The record is
    (axis, start, length, k_start, k_stop, k_step): k is the bound's position among `bounds`,
    -1 where the bound was left out (k_step -1: the step is the int in the index entry)."""
    ks = []
    for v in (sl.start, sl.stop, step if isinstance(step, Variable) else None):
        if v is None:
            ks.append(-1)
            continue
        v = _as_bound(v)
        bounds.append(v)
        ks.append(len(bounds) - 1)
    start, length = _symbol("_s"), _symbol("_l")
    if isinstance(step, Variable):
        step = _step_symbol()
    return (start, start + length * step, step), (axis, start, length, ks[0], ks[1], ks[2])


def _as_bound(v, what="bound"):
    from .constructors import as_variable
    v = as_variable(v)
    if v.ndim != 0 or v.dtype not in ("int32", "int64"):
        raise GraphcTypeError(f"a slice {what} must be an integer scalar (int32 or int64), got "
                              f"{v.label()} of type {v.type}; cast it with .astype('int64')")
    return v


COUNT_LIMIT = 2 ** 62  # a count binds as len(range(COUNT_LIMIT)[:bound]): the bound clipped at 0


def count_dim(bound, label):
    """An int64 scalar whose value is the integer scalar `bound` clipped at 0, and whose
    `dim_expr` is a value dim bound to that value when the function is called (before the
    program runs), so it can size outputs and set a scan's n_steps. The node must stay in the
    graph the function is built from (pass it along, e.g. as a scan non-sequence)."""
    from .ops.elemwise import maximum_op
    from .ops.shape import ValueCount
    bound = _as_bound(bound, "count")
    # (a negative stop would count from the end of range(COUNT_LIMIT))
    out = ValueCount(_symbol("_l"))(maximum_op(bound, np.asarray(0, bound.dtype)))
    out.dim_expr = out.owner.op.expr
    out.count_label = label
    return out


def collect(nodes):
    """The ValueDims of the dynamic slices and counts among `nodes` (the graph the user built),
    once each."""
    from .ops.shape import IncSubtensor, Subtensor, ValueCount
    found, seen = [], set()
    for node in nodes:
        op = node.op
        if isinstance(op, ValueCount) and op.expr not in seen:
            seen.add(op.expr)
            label = getattr(node.outputs[0], "count_label", None) or \
                f"the count {expr_text(node.inputs[0])}"
            found.append(ValueDim(_symbol("_s"), op.expr, COUNT_LIMIT, 1, None, node.inputs[0],
                                  label))
            continue
        if not isinstance(op, (Subtensor, IncSubtensor)) or not op.dynamic:
            continue
        shape = node.inputs[0].type.shape if isinstance(op, Subtensor) else op.shape
        bounds = node.inputs[1:]
        for axis, start, length, k_start, k_stop, k_step in op.dynamic:
            if (start, length) in seen:
                continue
            seen.add((start, length))
            lo = bounds[k_start] if k_start >= 0 else None
            hi = bounds[k_stop] if k_stop >= 0 else None
            step = bounds[k_step] if k_step >= 0 else op.index[axis][2]
            step_sym = op.index[axis][2] if k_step >= 0 else None
            what = node.inputs[0].label() if isinstance(op, Subtensor) else "the gradient"
            step_text = expr_text(step) if k_step >= 0 else str(step)
            label = (f"{what}[{'' if lo is None else expr_text(lo)}:"
                     f"{'' if hi is None else expr_text(hi)}"
                     f"{'' if step_text == '1' else ':' + step_text}] (axis {axis})")
            found.append(ValueDim(start, length, shape[axis], step, lo, hi, label, step_sym))
    return found


_INFIX = {"add": "+", "sub": "-", "mul": "*", "floor_div": "//", "mod": "%"}


def expr_text(v, depth=0):
    """A bound as the user wrote it, roughly: `index * 20`, for messages."""
    if v.owner is None or depth > 3:
        return v.label()
    op, args = v.owner.op, [expr_text(i, depth + 1) for i in v.owner.inputs]
    name = getattr(op, "name", type(op).__name__)
    if name in _INFIX and len(args) == 2:
        text = f"{args[0]} {_INFIX[name]} {args[1]}"
        return text if depth == 0 else f"({text})"
    if name.startswith("cast_"):
        return args[0]
    return f"{name}({', '.join(args)})"
