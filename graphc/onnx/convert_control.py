"""ONNX's control flow: If, Loop and Scan, mapped onto what graphc compiles.

- Scan -> graphc.scan, one to one (states are carried, scan inputs are sequences, scan outputs
  are stacked); input/output axes and directions become transposes and reversals around it.
  graphc's own Scan export (export_loop.py) reads back this way.
- Loop -> graphc.scan when its condition stays true: the trip count is fixed at load time (a
  number, or a size from the input shapes), and the body's condition output is true whatever
  happens (the condition input passed through, or a constant). The iteration number is a
  sequence (arange). A while loop (condition computed at run time) and a trip count computed
  from data are refused: graphc's loops run a number of steps known when the call starts.
- If -> the branch taken when the condition is known at load time; otherwise both branches are
  computed and selected with where(), when both are cheap (no loops, few nodes) and their
  outputs agree in dtype and shape. Else it is refused with every reason.
"""
import numpy as np
import sympy

from ..ir.graph import Constant, Variable
from ..ir.ops import elemwise as E
from ..ir.ops.shape import arange, reshape, transpose
from ..ir.types import dims_equal
from ..scan import scan
from .importer import static_to_variable
from .node import is_static, is_symbolic
from .registry import Unsupported, converter
from .subgraph import body_inputs, count_nodes, static_true

CHEAP_BRANCH_NODES = 16   # an If computed as a select runs both branches: keep them small


def _as_variable(v):
    return v if isinstance(v, Variable) else static_to_variable(np.asarray(v))


def _move_axis(x, src, dst):
    if src == dst:
        return x
    perm = [i for i in range(x.ndim) if i != src]
    perm.insert(dst, src)
    return transpose(x, perm)


@converter("Scan", attrs=("body", "num_scan_inputs", "scan_input_axes", "scan_input_directions",
                          "scan_output_axes", "scan_output_directions"))
def scan_(node):
    body, m = node.attr("body"), node.attr("num_scan_inputs")
    ins = node.inputs()
    n_states = len(ins) - (m or 0)
    if m is None or m < 1 or n_states < 0:
        raise Unsupported(f"num_scan_inputs={m} with {len(ins)} inputs: graphc's scan needs at "
                          "least one scan input (it gives the number of steps)")
    states, xs = ins[:n_states], ins[n_states:]
    if any(v is None for v in ins):
        raise Unsupported("an omitted input (graphc needs every state and scan input)")
    n_scan_out = len(body.output) - n_states
    in_axes = node.attr("scan_input_axes") or [0] * m
    in_dirs = node.attr("scan_input_directions") or [0] * m
    out_axes = node.attr("scan_output_axes") or [0] * n_scan_out
    out_dirs = node.attr("scan_output_directions") or [0] * n_scan_out
    if len(in_axes) != m or len(in_dirs) != m or len(out_axes) != n_scan_out \
            or len(out_dirs) != n_scan_out or n_scan_out < 0:
        raise Unsupported("scan_input_*/scan_output_* attributes do not match the inputs/outputs")
    seqs = []
    for x, axis, rev in zip(xs, in_axes, in_dirs):
        if x.ndim == 0:
            raise Unsupported(f"scan input {x.label()} is a scalar; a scan input has an axis to "
                              "step along")
        x = _move_axis(x, axis % x.ndim, 0)
        seqs.append(x[::-1] if rev else x)
    names = body_inputs(body)
    if len(names) != n_states + m:
        raise Unsupported(f"the body takes {len(names)} inputs; {n_states} states + {m} scan "
                          "inputs were given")
    what = f"{node} body"

    def step(*args):
        slices, prev = args[:m], args[m:m + n_states]
        outs = node.subgraph_outputs(body, dict(zip(names, list(prev) + list(slices))), what)
        return [_as_variable(v) for v in outs]

    out, _ = scan(step, sequences=seqs, outputs_info=list(states) + [None] * n_scan_out,
                  name=str(node), return_list=True)
    finals = [o[-1] for o in out[:n_states]]
    stacked = []
    for y, axis, rev in zip(out[n_states:], out_axes, out_dirs):
        y = y[::-1] if rev else y
        stacked.append(_move_axis(y, 0, axis % y.ndim))
    return finals + stacked


def _trip_count(node):
    """The Loop's trip count as an int or a symbolic size; None when absent."""
    if not node.has_input(0):
        return None
    v = node.value(0)
    if not is_static(v):
        raise Unsupported(f"the trip count M ({node.input_names[0]!r}) must be known when the "
                          "model loads (a number or a size of the inputs' shapes): graphc's loops "
                          "run a number of steps fixed when the call starts; give its value with "
                          "load(static_inputs={name: value})")
    if v.size != 1:
        raise Unsupported(f"the trip count M has shape {v.shape}; it must hold one value")
    n = v.reshape(-1)[0]
    if is_symbolic(v) and isinstance(n, sympy.Basic) and not n.is_Integer:
        return n
    return int(n)


@converter("Loop", attrs=("body",))
def loop(node):
    body = node.attr("body")
    trip = _trip_count(node)
    reasons = []
    if node.has_input(1):
        cond = node.value(1)
        if not is_static(cond):
            raise Unsupported(f"the initial condition ({node.input_names[1]!r}) must be known "
                              "when the model loads (true): a condition computed at run time "
                              "makes a while loop, which graphc does not compile")
        elif not static_true(cond):
            reasons.append("the initial condition is false (the loop never runs)")
    if trip is None:
        reasons.append("there is no trip count M (the loop ends on its condition alone)")
    if isinstance(trip, int) and trip < 1:
        reasons.append(f"the trip count is {trip} (graphc's loops run at least one step)")
    carried = [node.input(i) for i in range(2, len(node.input_names))]
    if any(v is None for v in carried):
        reasons.append("an omitted loop-carried input")
    names = body_inputs(body)
    if len(names) != 2 + len(carried):
        reasons.append(f"the body takes {len(names)} inputs, expected 2 + {len(carried)}")
    if reasons:
        raise Unsupported("graphc maps a Loop onto its scan only when the condition stays true and "
                          "the trip count is known at load time; here " + "; ".join(reasons))
    n_carried = len(carried)
    n_scan_out = len(body.output) - 1 - n_carried
    what = f"{node} body"

    def step(it, *prev):
        bound = {names[0]: it, names[1]: np.array(True)}
        bound.update(zip(names[2:], prev))
        outs = node.subgraph_outputs(body, bound, what)
        cond_out = outs[0]
        if isinstance(cond_out, Constant):
            cond_out = np.asarray(cond_out.data)
        if not static_true(cond_out):
            raise Unsupported("the body's condition output is computed at run time (an early "
                              "exit); graphc maps only Loops whose condition stays true")
        return [_as_variable(v) for v in outs[1:]]

    out, _ = scan(step, sequences=[arange(trip, dtype="int64")],
               outputs_info=list(carried) + [None] * n_scan_out, name=str(node), return_list=True)
    return [o[-1] for o in out[:n_carried]] + list(out[n_carried:])


def _cond_scalar(cond):
    if cond.ndim and not all(d == 1 for d in cond.type.shape):
        raise Unsupported(f"the condition has shape {cond.type.shape}; it must hold one value")
    c = reshape(cond, ()) if cond.ndim else cond
    return c if c.dtype == "bool" else E.neq_op(c, np.asarray(0, c.dtype))


@converter("If", attrs=("then_branch", "else_branch"))
def if_(node):
    then_g, else_g = node.attr("then_branch"), node.attr("else_branch")
    cond = node.value(0)
    if is_static(cond) and not is_symbolic(cond):
        if cond.size != 1:
            raise Unsupported(f"the condition has shape {cond.shape}; it must hold one value")
        chosen = then_g if bool(cond.reshape(-1)[0]) else else_g
        return node.subgraph_outputs(chosen, {}, f"{node} branch")
    reasons = []
    for label, g in (("then", then_g), ("else", else_g)):
        n, types = count_nodes(g)
        if types & {"Loop", "Scan", "If"}:
            reasons.append(f"the {label} branch holds {sorted(types & {'Loop', 'Scan', 'If'})}")
        if n > CHEAP_BRANCH_NODES:
            reasons.append(f"the {label} branch has {n} nodes (over {CHEAP_BRANCH_NODES})")
    if not reasons:
        t = [_as_variable(v) for v in node.subgraph_outputs(then_g, {}, f"{node} then_branch")]
        e = [_as_variable(v) for v in node.subgraph_outputs(else_g, {}, f"{node} else_branch")]
        for k, (a, b) in enumerate(zip(t, e)):
            if a.dtype != b.dtype or a.ndim != b.ndim or not all(
                    dims_equal(x, y) for x, y in zip(a.type.shape, b.type.shape)):
                reasons.append(f"output {k} is {a.type} in the then branch and {b.type} in the else "
                               "branch")
    if reasons:
        raise Unsupported("the condition is computed at run time and graphc computes such an If "
                          "as a select of both branches, which needs both cheap (no loops, at most "
                          f"{CHEAP_BRANCH_NODES} nodes) and outputs of one dtype and shape; here "
                          + "; ".join(reasons))
    c = _cond_scalar(node.input(0))
    return [E.where_op(c, a, b) for a, b in zip(t, e)]
