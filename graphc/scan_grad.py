"""Back-propagation through time: the gradient of a Loop (so of every scan) is a Loop that runs
the other way.

Forward: body (x_t, s_{t-1}, p) -> (s_t, y_t), outputs (final states, stacked y). The backward
loop visits the steps in the opposite order, carrying the gradient of each float state and a
running sum of each float non-sequence's gradient. Each iteration recomputes the forward body
from x_t, s_{t-1} and p and takes its vector-Jacobian product, so the forward pass saves only the
state histories (one buffer of T steps each, which a scan's Loop returns anyway) and no
per-step intermediate. The backward Loop is an ordinary graph node: the passes optimize it, its
body included, and its own gradient (second order) is built the same way.

A Scan's truncate_gradient = k keeps the last k steps: the incoming gradients of earlier steps
are multiplied by a 0/1 mask, so nothing flows into or through them.
"""
import numpy as np

from .grad import _total
from .ir.constructors import constant
from .ir.graph import Variable, toposort
from .ir.inner_graph import InnerGraph
from .ir.ops.elemwise import add_op, cast, ge_op, mul_op, second_op, sub_op
from .ir.ops.loop import Loop
from .ir.ops.shape import arange, concatenate, dim_value, expand_dims
from .ir.types import FLOAT_DTYPES, TensorType


def vjp(outputs, output_grads, wrt):
    """Vector-Jacobian product: the gradients of `outputs` (weighted by `output_grads`, None for
    none) with respect to each variable of `wrt`; None where no gradient reaches it."""
    order = toposort(outputs)
    depends = set(wrt)
    for node in order:
        if any(i in depends for i in node.inputs):
            depends.update(node.outputs)
    contributions = {}
    for o, g in zip(outputs, output_grads):
        if g is not None and o in depends and o.dtype in FLOAT_DTYPES:
            contributions.setdefault(o, []).append(g)
    for node in reversed(order):
        if not any(o in contributions for o in node.outputs):
            continue
        if not any(i in depends for i in node.inputs):
            continue
        in_grads = node.op.grad(node, [_total(contributions.get(o), o) for o in node.outputs])
        for inp, g in zip(node.inputs, in_grads):
            if g is not None and inp in depends and inp.dtype in FLOAT_DTYPES:
                contributions.setdefault(inp, []).append(g)
    return [cast(_total(contributions[w], w), w.dtype) if w in contributions else None
            for w in wrt]


def _zeros_like(v):
    return second_op(v, constant(np.zeros((), dtype=v.dtype)))


def _state_histories(node):
    """Per state, the outer variable stacking its value after each step, and the forward node
    that provides them. A scan's body returns each state also as a per-step output; a bare Loop
    that does not is re-run with those outputs added (its forward work is then done twice)."""
    op = node.op
    body, nc = op.body, op.n_carry
    stacked = list(body.outputs[nc:])
    found, missing = [], []
    for j in range(nc):
        i = next((i for i, o in enumerate(stacked) if o is body.outputs[j]), None)
        found.append(i)
        if i is None:
            missing.append(j)
    if not missing:
        return [node.outputs[nc + i] for i in found]
    props = {p: getattr(op, p) for p in op.__props__}
    props["body"] = InnerGraph(body.inputs, list(body.outputs) + [body.outputs[j] for j in missing])
    outs = type(op)(**props).make_node(*node.inputs).outputs
    extra = dict(zip(missing, outs[len(node.outputs):]))
    return [node.outputs[nc + i] if i is not None else extra[j] for j, i in enumerate(found)]


def _previous_states(op, init, history, steps):
    """The state each step read: [init, h_0, ..., h_{T-2}] (reversed loops: [h_1, ..., init])."""
    first = expand_dims(init, 0)
    if op.reverse:
        both = concatenate([history, first], 0)
        return both[1:steps + 1] if isinstance(steps, int) else _slice(both, 1, steps + 1)
    both = concatenate([first, history], 0)
    return both[:steps] if isinstance(steps, int) else _slice(both, 0, steps)


def _slice(x, start, stop):
    from .ir.ops.shape import Subtensor
    index = ((start, stop, 1),) + tuple((0, d, 1) for d in x.type.shape[1:])
    return Subtensor(index)(x)


def loop_grad(node, output_grads):
    op = node.op
    body, ns, nc = op.body, op.n_seqs, op.n_carry
    seqs, inits, rest = node.inputs[:ns], node.inputs[ns:ns + nc], node.inputs[ns + nc:]
    steps = seqs[0].type.shape[0] if ns else op.n_steps
    g_final, g_stacked = output_grads[:nc], output_grads[nc:]
    histories = _state_histories(node)
    prev = [_previous_states(op, s0, h, steps) for s0, h in zip(inits, histories)]

    b_seq_in, b_state_in, b_rest_in = (body.inputs[:ns], body.inputs[ns:ns + nc],
                                       body.inputs[ns + nc:])
    float_states = [j for j in range(nc) if body.outputs[j].dtype in FLOAT_DTYPES]
    float_stacked = [i for i, o in enumerate(body.outputs[nc:]) if o.dtype in FLOAT_DTYPES]
    float_rest = [k for k, v in enumerate(b_rest_in) if v.dtype in FLOAT_DTYPES]
    float_seqs = [k for k, v in enumerate(b_seq_in) if v.dtype in FLOAT_DTYPES]

    # The backward body's own inputs (the forward body's inputs are reused as they are).
    gy = [Variable(body.outputs[nc + i].type, name=f"g_y{i}_t") for i in float_stacked]
    gs = [Variable(body.outputs[j].type, name=f"g_s{j}") for j in float_states]
    acc = [Variable(b_rest_in[k].type, name=f"g_p{k}_sum") for k in float_rest]
    truncate = getattr(op, "truncate_gradient", -1)
    mask_seq, mask_in = [], []
    if truncate is not None and truncate >= 0 and not op.reverse:
        mask = ge_op(arange(steps), sub_op(dim_value(steps), constant(np.int64(truncate))))
        mask_seq = [cast(mask, "float64")]
        mask_in = [Variable(TensorType("float64", ()), name="keep_t")]

    def masked(g):
        return mul_op(g, cast(mask_in[0], g.dtype)) if mask_in else g

    weights = [None] * len(body.outputs)
    for g, j in zip(gs, float_states):
        weights[j] = masked(g)
    for g, i in zip(gy, float_stacked):
        w = masked(g)
        weights[nc + i] = w if weights[nc + i] is None else add_op(weights[nc + i], w)
    outs, ws = [], []
    for o, w in zip(body.outputs, weights):  # an output listed twice gets both weights
        outs.append(o)
        ws.append(w)
    wrt = ([b_state_in[j] for j in float_states] + [b_rest_in[k] for k in float_rest] +
           [b_seq_in[k] for k in float_seqs])
    grads = vjp(outs, ws, wrt)
    g_prev = grads[:len(float_states)]
    g_rest = grads[len(float_states):len(float_states) + len(float_rest)]
    g_seq = grads[len(float_states) + len(float_rest):]

    new_states = [g if g is not None else _zeros_like(b_state_in[j])
                  for g, j in zip(g_prev, float_states)]
    new_states += [a if g is None else add_op(a, g) for a, g in zip(acc, g_rest)]
    per_step = [g if g is not None else _zeros_like(b_seq_in[k]) for g, k in zip(g_seq, float_seqs)]
    b_inputs = (list(b_seq_in) + list(b_state_in) + gy + mask_in + gs + acc + list(b_rest_in))
    back_body = InnerGraph(b_inputs, new_states + per_step)

    sequences = list(seqs) + prev + [g_stacked[i] for i in float_stacked] + mask_seq
    initial = [g_final[j] for j in float_states] + [_zeros_like(rest[k]) for k in float_rest]
    back = Loop(back_body, len(sequences), len(initial), None if sequences else steps,
                reverse=not op.reverse)
    res = back.make_node(*sequences, *initial, *rest).outputs
    g_inits = dict(zip(float_states, res[:len(float_states)]))
    g_rests = dict(zip(float_rest, res[len(float_states):len(initial)]))
    g_seqs = dict(zip(float_seqs, res[len(initial):]))
    return ([g_seqs.get(k) for k in range(ns)] + [g_inits.get(j) for j in range(nc)] +
            [g_rests.get(k) for k in range(len(rest))])


Loop.grad_rule = staticmethod(loop_grad)
