"""ONNX's control flow: If, Loop and Scan, mapped onto what graphc compiles.

- Scan -> graphc.scan, one to one (states are carried, scan inputs are sequences, scan outputs
  are stacked); input/output axes and directions become transposes and reversals around it.
  graphc's own Scan export (export_loop.py) reads back this way.
- Loop -> graphc.scan when its condition stays true: the body's condition output is true whatever
  happens (the condition input passed through, or a constant). The trip count is a number or a
  size of the input shapes, or a value computed from data at run time: then it is a count dim
  (graphc/ir/value_dims.py) bound when the call starts, as is an initial condition computed at
  run time. A count of 0 or less, or a false initial condition, runs no step: the carried
  outputs are the initial values (the scan's final states) and the scan outputs are empty. The
  iteration number is a sequence (arange), so the body reads it as a graph value. A while loop
  (a condition computed in the body) is refused: graphc's loops run a number of steps known
  when the call starts.
- If -> the branch taken when the condition is known at load time; otherwise both branches are
  computed and selected with where(), when both are cheap (no loops, few nodes) and their
  outputs agree in dtype and shape. Else it is refused with every reason.
"""
import numpy as np
import sympy

from ..ir.graph import Constant, Variable
from ..ir.ops import elemwise as E
from ..ir.ops.shape import arange, dim_value, reshape, transpose
from ..ir.ops.scan import Scan
from ..ir.types import dims_equal
from ..ir.value_dims import count_dim
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
        outs = node.subgraph_outputs(body, dict(zip(names, list(prev) + list(slices))), what,
                                     loop_body=True)
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
    """The Loop's trip count: an int or a symbolic size known at load time, a graphc int64
    scalar computed at run time, or None when absent."""
    if not node.has_input(0):
        return None
    v = node.value(0)
    if not is_static(v):
        x = node.input(0)
        if x.ndim and not all(d == 1 for d in x.type.shape):
            raise Unsupported(f"the trip count M has shape {x.type.shape}; it must hold one value")
        x = reshape(x, ()) if x.ndim else x
        return x if x.dtype == "int64" else E.cast(x, "int64")
    if v.size != 1:
        raise Unsupported(f"the trip count M has shape {v.shape}; it must hold one value")
    n = v.reshape(-1)[0]
    if is_symbolic(v) and isinstance(n, sympy.Basic) and not n.is_Integer:
        return n
    return int(n)


def _run_time_count(node, trip, cond):
    """The loop's number of steps when it is known only at the call: M where the initial
    condition is true, else 0, clipped at 0, as a count dim."""
    m = trip if isinstance(trip, Variable) else static_to_variable(np.array(trip, "int64")) \
        if isinstance(trip, int) else dim_value(trip)
    if cond is not None:
        m = E.where_op(_cond_scalar(cond), m, np.asarray(0, "int64"))
    return count_dim(m, f"the trip count of {node}")


def _final_states(stacked, n_carried):
    """The carried values after the last step: the Scan node's final states (its first outputs,
    in outputs_info order), which are the initial values when the loop runs no step (the last
    entry of a state's per-step history would not exist then)."""
    if not n_carried:
        return []
    scan_node = stacked[0].owner
    if not isinstance(scan_node.op, Scan) or scan_node.outputs[scan_node.op.n_carry] is not stacked[0]:
        raise Unsupported("internal: graphc.scan's outputs are not a Scan node's (its layout "
                          "changed); the Loop's final states cannot be found")
    return list(scan_node.outputs[:n_carried])


@converter("Loop", attrs=("body",))
def loop(node):
    body = node.attr("body")
    trip = _trip_count(node)
    reasons, cond = [], None
    if node.has_input(1):
        v = node.value(1)
        if not is_static(v):
            cond = node.input(1)   # a false one at the call gives 0 steps
        elif not static_true(v):
            trip = 0               # the loop never runs: its outputs are the initial values
    if trip is None:
        reasons.append("there is no trip count M (a while loop: it ends on its condition "
                       "alone, which graphc's scan cannot, since its steps are fixed when the "
                       "call starts)")
    if isinstance(trip, int):
        trip = max(trip, 0)        # ONNX runs a count of 0 or less no time
    run_time = isinstance(trip, Variable) or cond is not None
    if run_time and node.in_loop_body:
        reasons.append("its trip count or initial condition is computed at run time inside an "
                       "enclosing loop's body (graphc binds a run-time trip count once per call)")
    carried = [node.input(i) for i in range(2, len(node.input_names))]
    if any(v is None for v in carried):
        reasons.append("an omitted loop-carried input")
    names = body_inputs(body)
    if len(names) != 2 + len(carried):
        reasons.append(f"the body takes {len(names)} inputs, expected 2 + {len(carried)}")
    if reasons:
        raise Unsupported("graphc maps a Loop onto its scan only when it has a trip count and its "
                          "condition stays true; here " + "; ".join(reasons))
    n_carried = len(carried)
    n_scan_out = len(body.output) - 1 - n_carried
    what = f"{node} body"
    # A run-time count is passed as a non-sequence: the function finds its value dim there.
    count = [_run_time_count(node, trip, cond)] if run_time else []
    steps = count[0].dim_expr if count else trip

    def step(it, *prev):
        bound = {names[0]: it, names[1]: np.array(True)}
        bound.update(zip(names[2:], prev[:n_carried]))
        outs = node.subgraph_outputs(body, bound, what, loop_body=True)
        cond_out = outs[0]
        if isinstance(cond_out, Constant):
            cond_out = np.asarray(cond_out.data)
        if not static_true(cond_out):
            raise Unsupported("the body's condition output is computed at run time (a while loop "
                              "or an early exit); graphc maps only Loops whose condition stays "
                              "true, since its scan's steps are fixed when the call starts")
        return [_as_variable(v) for v in outs[1:]]

    out, _ = scan(step, sequences=[arange(steps, dtype="int64")], non_sequences=count,
                  outputs_info=list(carried) + [None] * n_scan_out, name=str(node),
                  return_list=True)
    return _final_states(out, n_carried) + list(out[n_carried:])


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
