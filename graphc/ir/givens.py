"""What graphc.function does to the user's graph before compiling it, as Theano does: `givens`
(variables replaced by expressions), the `default_update` of shared variables collected into the
updates, and the check of inputs nothing reads (`on_unused_input`)."""
import copy
import warnings

import numpy as np
import sympy

from ..errors import GraphcShapeError, GraphcTypeError, InputError
from .constructors import as_variable
from .graph import Constant, SharedVariable, Variable, leaves, toposort


def clone_replace(outputs, replace):
    """`outputs` rebuilt with each key of `replace` (a variable) read as its value (an expression
    of the same dtype and rank). Nodes above a replaced variable are made again, so shapes are
    inferred anew; a symbolic dim of a replaced variable (x's fresh batch dim) means the new
    value's dim in the ops that carry it (x.shape[0], reshapes, random shapes)."""
    mapping, dims = {}, {}
    for old, new in replace.items():
        for a, b in zip(old.type.shape, new.type.shape):
            if isinstance(a, sympy.Symbol) and not (isinstance(b, sympy.Basic) and a == b):
                dims[a] = sympy.Integer(b) if isinstance(b, int) else b
        mapping[old] = new
    for node in toposort(outputs):
        inputs = [mapping.get(i, i) for i in node.inputs]
        op = _with_dims(node.op, dims) if dims else node.op
        if op is node.op and all(a is b for a, b in zip(inputs, node.inputs)):
            continue
        new_outputs = op.make_node(*inputs).outputs
        for o, n in zip(node.outputs, new_outputs):
            n.name = o.name
            mapping[o] = n
    return [mapping.get(o, o) for o in outputs]


def _with_dims(op, dims):
    """op, or a copy whose parameters read the dims `dims` maps to (None: no parameter has one)."""
    changed = {}
    for p in op.__props__:
        value = getattr(op, p)
        new = _subs(value, dims)
        if new is not value:
            changed[p] = new
    if not changed:
        return op
    clone = copy.copy(op)
    for p, value in changed.items():
        setattr(clone, p, value)
    return clone


def _subs(value, dims):
    if isinstance(value, sympy.Basic):
        if not value.free_symbols & dims.keys():
            return value
        out = value.xreplace(dims)
        return int(out) if out.is_Integer else out
    if isinstance(value, (tuple, list)):
        items = [_subs(v, dims) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return type(value)(items)
    return value


def apply_givens(givens, outputs, update_values):
    """(outputs, update values) with `givens` ({variable: expression} or pairs) substituted."""
    pairs = list(givens.items()) if isinstance(givens, dict) else list(givens)
    replace = {}
    for k, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise GraphcTypeError(f"givens[{k}] is {pair!r}, not a (variable, expression) pair; "
                                  "give givens as {x: expression} or [(x, expression), ...]")
        old, new = pair
        if not isinstance(old, Variable) or isinstance(old, Constant):
            raise GraphcTypeError(f"givens: the key {old!r} is not a variable of the graph")
        new = _given_value(old, new)
        if old in replace:
            raise GraphcTypeError(f"givens: {old.label()} is given twice")
        replace[old] = new
    out = clone_replace(list(outputs) + list(update_values), replace)
    return out[:len(outputs)], out[len(outputs):]


def _given_value(old, new):
    if not isinstance(new, Variable):
        data = np.asarray(new)
        if data.dtype.kind == "f" and old.dtype.startswith("float") or data.dtype.kind in "iub":
            data = data.astype(old.dtype)
        new = Constant(data)
    if new.dtype != old.dtype:
        raise GraphcTypeError(f"givens: {old.label()} is {old.type} but the expression given "
                              f"for it is {new.type}; cast it with .astype('{old.dtype}')")
    if new.ndim != old.ndim:
        raise GraphcShapeError(f"givens: {old.label()} has rank {old.ndim} ({old.type}) but the "
                               f"expression given for it has rank {new.ndim} ({new.type})")
    for axis, (a, b) in enumerate(zip(old.type.shape, new.type.shape)):
        if isinstance(a, int) and isinstance(b, int) and a != b:
            raise GraphcShapeError(f"givens: {old.label()} has size {a} on axis {axis} but the "
                                   f"expression given for it has size {b}")
    return new


def default_updates(outputs, update_pairs, no_default_updates=False):
    """The (shared, new value) pairs of `default_update`s to add: every shared variable the graph
    reads (or that a default update reads) whose default_update is set, unless the updates name
    it or no_default_updates is True or lists it."""
    if no_default_updates is True:
        return []
    skip = set(no_default_updates or ())
    named = {sv for sv, _ in update_pairs}
    added, seen = [], set()
    todo = list(outputs) + [new for _, new in update_pairs]
    while todo:
        found = [v for v in leaves(todo) if isinstance(v, SharedVariable) and v not in seen]
        todo = []
        for sv in found:
            seen.add(sv)
            new = getattr(sv, "default_update", None)
            if new is None or sv in named or sv in skip:
                continue
            added.append((sv, as_variable(new)))
            todo.append(added[-1][1])
    return added


def check_unused_inputs(inputs, outputs, on_unused_input, name):
    """Theano's on_unused_input: 'raise', 'warn' or 'ignore' (None: ignore) for inputs that no
    output or update reads."""
    if on_unused_input in (None, "ignore"):
        return
    if on_unused_input not in ("raise", "warn"):
        raise GraphcTypeError(f"function: on_unused_input must be 'raise', 'warn' or 'ignore', "
                              f"got {on_unused_input!r}")
    used = set(leaves(list(outputs)))
    unused = [v.label() for v in inputs if isinstance(v, Variable) and v not in used]
    if not unused:
        return
    msg = (f"{name or 'function'}: input(s) {', '.join(unused)} are not used to compute any "
           "output or update; remove them from inputs, or pass on_unused_input='ignore'")
    if on_unused_input == "raise":
        raise InputError(msg)
    warnings.warn(msg, stacklevel=3)


def theano_graph(inputs, outputs, updates, givens, no_default_updates, on_unused_input, name):
    """(outputs, update pairs) as graphc.function compiles them: givens substituted, default
    updates added, unused inputs reported."""
    from .fgraph import _update_pairs
    outputs = [as_variable(o) for o in outputs]
    pairs = [(sv, as_variable(new)) for sv, new in _update_pairs(updates)]
    if givens:
        outputs, new_values = apply_givens(givens, outputs, [new for _, new in pairs])
        pairs = [(sv, new) for (sv, _), new in zip(pairs, new_values)]
    pairs += default_updates(outputs, pairs, no_default_updates)
    check_unused_inputs(inputs, list(outputs) + [new for _, new in pairs], on_unused_input, name)
    return outputs, pairs
