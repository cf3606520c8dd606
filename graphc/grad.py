"""Reverse-mode differentiation: walks the graph backwards, calling each op's `grad` rule; the
result is ordinary graph nodes, so the passes optimize forward and backward together."""
import warnings

import numpy as np

from .errors import GradError
from .ir.constructors import as_variable, constant
from .ir.graph import Node, Variable, toposort
from .ir.ops.elemwise import add_op, cast, second_op
from .ir.types import FLOAT_DTYPES


def grad(cost, wrt, consider_constant=(), disconnected_inputs="raise", known_grads=None):
    """Gradient of scalar `cost` w.r.t. each variable in `wrt` (a variable or a list).

    disconnected_inputs: "raise" (a GradError naming the variable), "warn" or "ignore" (both
    return zeros of the variable's shape). consider_constant: variables whose gradient is cut.
    """
    single = isinstance(wrt, Variable)
    if not single and not isinstance(wrt, (list, tuple)):
        raise GradError(f"grad: wrt must be a graph variable or a list of them, got "
                        f"{type(wrt).__name__} {wrt!r}; pass the shared variables or inputs to "
                        "differentiate with respect to")
    wrt_list = [wrt] if single else list(wrt)
    cost = as_variable(cost)
    if cost.ndim != 0:
        raise GradError(f"grad: the cost must be a scalar, but {cost.label()} has type {cost.type}; "
                        "reduce it first (e.g. cost.mean() or cost.sum())")
    if cost.dtype not in FLOAT_DTYPES:
        raise GradError(f"grad: the cost must be a float scalar, got {cost.dtype}")
    for w in wrt_list:
        if not isinstance(w, Variable):
            raise GradError(f"grad: wrt entries must be graph variables, got {type(w).__name__}")
        if w.dtype not in FLOAT_DTYPES:
            raise GradError(f"grad: cannot differentiate with respect to {w.label()} of dtype {w.dtype}")
    if disconnected_inputs not in ("raise", "warn", "ignore"):
        raise GradError("grad: disconnected_inputs must be 'raise', 'warn' or 'ignore'")

    if isinstance(consider_constant, Variable):
        consider_constant = [consider_constant]
    cut = set(consider_constant)
    # Differentiate the stabilized cost: d/dx log(1 - sigmoid(x)) is finite, while the
    # gradient of the literal form goes through 1/(1 - p) = inf when p rounds to 1.
    cost = _stabilized(cost, list(wrt_list) + list(consider_constant) + list(known_grads or {}))
    order = toposort([cost])
    # Variables from which some wrt is reachable: only their gradients are worth building.
    depends = set(wrt_list)
    for node in order:
        if any(i in depends and i not in cut for i in node.inputs):
            depends.update(node.outputs)

    contributions = {cost: [constant(np.ones((), dtype=cost.dtype))]}
    for v, g in (known_grads or {}).items():
        contributions.setdefault(v, []).append(as_variable(g))
    for node in reversed(order):
        if not any(o in contributions for o in node.outputs):
            continue
        if not any(i in depends and i not in cut for i in node.inputs):
            continue
        out_grads = [_total(contributions.get(o), o) for o in node.outputs]
        in_grads = node.op.grad(node, out_grads)
        for inp, g in zip(node.inputs, in_grads):
            if g is None or inp not in depends or inp in cut or inp.dtype not in FLOAT_DTYPES:
                continue
            contributions.setdefault(inp, []).append(g)

    results = []
    for w in wrt_list:
        if w not in contributions:
            msg = (f"grad: the cost does not depend on {w.label()}; pass "
                   "disconnected_inputs='ignore' to get zeros instead")
            if disconnected_inputs == "raise":
                raise GradError(msg)
            if disconnected_inputs == "warn":
                warnings.warn(msg, stacklevel=2)
            results.append(second_op(w, constant(np.zeros((), dtype=w.dtype))))
            continue
        g = _total(contributions[w], w)
        results.append(cast(g, w.dtype))
    return results[0] if single else results


def _stabilized(cost, keep):
    """`cost` with the stabilizing rewrites applied above the variables in `keep` (the wrt,
    consider_constant and known_grads variables), which stay the very same objects: a rewrite
    may neither replace them (a consider_constant p = 1 / (1 + exp(-x)) would become a new
    sigmoid the cut no longer names) nor look through them."""
    from .passes.stabilize import stabilize_outputs
    keep = [v for v in keep if isinstance(v, Variable) and v.owner is not None]
    if not keep:
        return stabilize_outputs([cost])[0]
    # Stand-in leaves for the kept variables while rewriting, then the originals put back.
    stand_in = {}
    for v in keep:
        stand_in.setdefault(v, Variable(v.type, name=v.name))
    cost = _replace([cost], stand_in)[0]
    cost = stabilize_outputs([cost])[0]
    return _replace([cost], {s: v for v, s in stand_in.items()})[0]


def _replace(outputs, mapping):
    """`outputs` with each variable in `mapping` replaced, the nodes above them rebuilt."""
    replaced = dict(mapping)
    for node in toposort(outputs):
        inputs = [replaced.get(i, i) for i in node.inputs]
        if any(a is not b for a, b in zip(inputs, node.inputs)):
            new = Node(node.op, inputs, [o.type for o in node.outputs], node.constraints)
            for o, n in zip(node.outputs, new.outputs):
                n.name = o.name
                replaced.setdefault(o, n)
    return [replaced.get(o, o) for o in outputs]


def _total(parts, var):
    """Sum of the gradient contributions to var (zeros when none reached it)."""
    if not parts:
        return second_op(var, constant(np.zeros((), dtype=var.dtype)))
    total = parts[0]
    for p in parts[1:]:
        total = add_op(total, p)
    return total
