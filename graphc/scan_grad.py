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
from .ir.graph import Constant, Variable, toposort, variables_read
from .ir.inner_graph import InnerGraph
from .ir.ops.blas import Matmul
from .ir.ops.elemwise import add_op, cast, ge_op, mul_op, second_op, sub_op
from .ir.ops.loop import Loop
from .ir.ops.shape import arange, concatenate, dim_value, expand_dims, reshape
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


def _is_zero(g):
    """Whether g is the zeros that graphc.grad gives an output no gradient reached."""
    n = g.owner
    return n is not None and n.op == second_op and isinstance(n.inputs[1], Constant) and \
        not n.inputs[1].data.any()


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
    # per-step outputs that receive a gradient (a zero gradient is no input of the loop: the
    # step's saved products and unused outputs would otherwise read T steps of zeros)
    float_stacked = [i for i, o in enumerate(body.outputs[nc:])
                     if o.dtype in FLOAT_DTYPES and not _is_zero(g_stacked[i])]
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

    # Values the forward loop stacked are read back, not recomputed: their slices replace them.
    saved_in, saved_outer = _saved_values(node, grads)
    saved_in_vars = [Variable(v.type, name=f"saved_{v.label()}") for v in saved_in]
    grads = _replace(grads, dict(zip(saved_in, saved_in_vars)))
    g_prev = grads[:len(float_states)]
    g_rest = grads[len(float_states):len(float_states) + len(float_rest)]
    g_seq = grads[len(float_states) + len(float_rest):]

    # Weight gradients x_t^T @ g_t over steps leave the loop: g_t is stacked, one product after.
    outer_of = dict(zip(b_seq_in, seqs))
    outer_of.update(zip(b_state_in, prev))
    outer_of.update(zip(saved_in_vars, saved_outer))
    looped, hoisted = [], []
    for g in g_rest:
        inside, products = _split_products(g, outer_of)
        looped.append(inside)
        hoisted.append(products)
    per_step_g = [gt for products in hoisted for _, gt in products]

    new_states = [g if g is not None else _zeros_like(b_state_in[j])
                  for g, j in zip(g_prev, float_states)]
    keep_acc = [k for k, g in enumerate(looped) if g is not None or not hoisted[k]]
    new_states += [acc[k] if looped[k] is None else add_op(acc[k], looped[k]) for k in keep_acc]
    # a sequence no gradient reaches gets none (not T steps of zeros)
    float_seqs = [k for g, k in zip(g_seq, float_seqs) if g is not None]
    per_step = [g for g in g_seq if g is not None]
    # A weight's per-step factor that is also a sequence's gradient is stacked once (an LSTM's
    # g_z: z_t = (input projection)_t + h @ U gives both; stacked twice it cost a copy per step
    # and T steps of workspace).
    reuse = [next((k for k, g in enumerate(per_step) if _same_value(g, gt)), None)
             for gt in per_step_g]
    extra_g = [gt for gt, k in zip(per_step_g, reuse) if k is None]
    used = variables_read(new_states + per_step + extra_g)
    saved = [(v, o) for v, o in zip(saved_in_vars, saved_outer) if v in used]
    b_inputs = (list(b_seq_in) + list(b_state_in) + gy + mask_in + [v for v, _ in saved] + gs +
                [acc[k] for k in keep_acc] + list(b_rest_in))
    back_body = InnerGraph(b_inputs, new_states + per_step + extra_g)

    sequences = (list(seqs) + prev + [g_stacked[i] for i in float_stacked] + mask_seq +
                 [o for _, o in saved])
    initial = [g_final[j] for j in float_states] + [_zeros_like(rest[float_rest[k]])
                                                    for k in keep_acc]
    back = Loop(back_body, len(sequences), len(initial), None if sequences else steps,
                reverse=not op.reverse)
    res = back.make_node(*sequences, *initial, *rest).outputs
    g_inits = dict(zip(float_states, res[:len(float_states)]))
    acc_final = dict(zip(keep_acc, res[len(float_states):len(initial)]))
    seq_outs = res[len(initial):len(initial) + len(float_seqs)]
    g_seqs = dict(zip(float_seqs, seq_outs))
    extra_outs = iter(res[len(initial) + len(float_seqs):])
    stacked_g = iter([seq_outs[k] if k is not None else next(extra_outs) for k in reuse])
    g_rests = {}
    for k, products in enumerate(hoisted):
        total = acc_final.get(k)
        for a_outer, _ in products:
            term = _product_over_steps(a_outer, next(stacked_g))
            total = term if total is None else add_op(total, term)
        g_rests[float_rest[k]] = cast(total, rest[float_rest[k]].dtype)
    return ([g_seqs.get(k) for k in range(ns)] + [g_inits.get(j) for j in range(nc)] +
            [g_rests.get(k) for k in range(len(rest))])


def _same_value(a, b):
    """a and b are one value: the same variable, or outputs of equal ops on the same inputs
    (the gradients of both operands of an add are two such nodes)."""
    if a is b:
        return True
    na, nb = a.owner, b.owner
    return na is not None and nb is not None and na.op == nb.op and \
        len(na.inputs) == len(nb.inputs) and all(x is y for x, y in zip(na.inputs, nb.inputs)) and \
        na.outputs.index(a) == nb.outputs.index(b)


def _saved_values(node, grads):
    """The forward body's computed per-step outputs (each stacked by the loop) that the
    gradient expressions read: (inner variables, outer stacked variables)."""
    op = node.op
    body, nc = op.body, op.n_carry
    reachable = set()
    for n in toposort([g for g in grads if g is not None]):
        reachable.update(n.inputs)
    inner, outer = [], []
    for i, o in enumerate(body.outputs[nc:]):
        if o.owner is not None and o in reachable and o not in inner:
            inner.append(o)
            outer.append(node.outputs[nc + i])
    return inner, outer


def _replace(outputs, mapping):
    """outputs with the variables in mapping replaced (the nodes above them rebuilt)."""
    from .grad import _replace as replace
    live = [o for o in outputs if o is not None]
    new = iter(replace(live, mapping))
    return [next(new) if o is not None else None for o in outputs]


def _split_products(g, outer_of):
    """Split a weight gradient g (a sum of terms) into the terms to accumulate in the loop and
    the products a_t^T @ g_t whose a_t is a per-step slice of an outer variable: returns
    (the rest or None, [(outer a, g_t)])."""
    if g is None:
        return None, []
    terms, stack = [], [g]
    while stack:
        t = stack.pop()
        n = t.owner
        if n is not None and n.op == add_op and all(i.type.shape == t.type.shape for i in n.inputs):
            stack.extend(n.inputs)
        else:
            terms.append(t)
    rest, products = None, []
    for t in terms:
        n = t.owner
        if n is not None and isinstance(n.op, Matmul) and n.op.trans_a and not n.op.trans_b and \
                n.inputs[0] in outer_of and all(i.ndim == 2 for i in n.inputs):
            products.append((outer_of[n.inputs[0]], n.inputs[1]))
        else:
            rest = t if rest is None else add_op(rest, t)
    return rest, products


def _product_over_steps(a, g):
    """sum_t a[t]^T @ g[t] as one product: [T*n, k]^T @ [T*n, m]."""
    a2 = reshape(a, (-1, a.type.shape[-1]))
    g2 = reshape(g, (-1, g.type.shape[-1]))
    return Matmul(True, False)(a2, g2)


Loop.grad_rule = staticmethod(loop_grad)
