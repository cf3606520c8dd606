"""graphc.scan: Theano's scan. The step function is traced once into an inner graph that a Scan
op (a Loop: graphc/ir/ops/scan.py) runs once per step; the C target compiles it to one C loop.

    def step(x_t, h_tm1, W):
        return G.tanh(G.dot(x_t, W) + h_tm1)
    hs, updates = G.scan(step, sequences=X, outputs_info=h0, non_sequences=W)

How Theano's arguments map onto the Loop (sequences, carried states, non-sequences):
  - each tap of a sequence is a sequence of its own, a slice of the input shifted by the tap
    (go_backwards: the slice reversed);
  - a recurrent output with taps [-m..-1] carries m states (its last m values: the loop shifts
    them by one each step); its per-step values are the scan's output;
  - an update the step returns for a shared variable makes that variable a carried state too;
    its final value is the update scan returns;
  - whatever the step reads from outside (shared variables, outer inputs, values computed
    outside) becomes a non-sequence, after the ones given: work that does not depend on the
    step's inputs stays outside the loop.
The body also returns each carried state's per-step value, so its history is one buffer of T
steps that back-propagation through time (graphc/scan_grad.py) reads.
"""
import numpy as np
import sympy

from . import scan_grad  # noqa: F401  (installs the gradient of loops)
from .errors import GraphcShapeError, GraphcTypeError
from .ir.constructors import as_variable
from .ir.graph import Constant, Node, SharedVariable, Variable, leaves, toposort, variables_read
from .ir.inner_graph import InnerGraph
from .ir.ops.blas import Matmul
from .ir.ops.conv import FitsCheck
from .ir.ops import scalar_fns as sf
from .ir.ops.elemwise import Elemwise, add_op
from .ir.ops.scan import Scan
from .ir.ops.shape import reshape
from .ir.types import FLOAT_DTYPES, TensorType, as_dim, dims_equal
from .ir.value_dims import count_dim


def scan(fn, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         go_backwards=False, truncate_gradient=-1, strict=False, name=None, return_list=False):
    """Run `fn` over the steps of `sequences`, Theano's way; returns (outputs, updates).

    fn receives, in order: each sequence's slices (one per tap, default tap 0), each recurrent
    output's previous values (one per tap, default -1), then the non-sequences. It returns its
    outputs (a variable or a list), optionally with a dict of shared-variable updates.
    outputs_info: per output, None (not fed back), its initial value, or
    dict(initial=x, taps=[-2, -1]) (x[0] is the value at tap -2: x needs 2 leading entries).
    n_steps: an int, a graphc.dim, x.shape[i], or an integer scalar computed at run time (an
    input such as G.iscalar, bound when the function is called; a negative value runs 0 steps).
    As in Theano, each sequence must then have at least n_steps steps and is read up to there; what
    the shapes do not show is checked when the function is called, before anything runs.
    """
    where = f"scan {name!r}" if name else "scan"
    seqs = [_sequence(s, k, where) for k, s in enumerate(_as_list(sequences))]
    infos = [_output_info(o, k, where) for k, o in enumerate(_as_list(outputs_info))]
    explicit = [as_variable(v) for v in _as_list(non_sequences)]
    if truncate_gradient is None or int(truncate_gradient) == 0 or int(truncate_gradient) < -1:
        raise GraphcTypeError(f"{where}: truncate_gradient must be -1 (no truncation) or a "
                              f"positive number of steps, got {truncate_gradient!r}")
    steps, cut, counts = _steps(seqs, n_steps, where)

    # The step's inputs: sequence slices, then the recurrent outputs' previous values.
    seq_outer, seq_inner, fn_args = [], [], []
    for k, (x, taps) in enumerate(seqs):
        low, high = min(min(taps), 0), max(max(taps), 0)
        for tap in taps:
            # Without n_steps each sequence is cut to its own number of steps (a symbolic one
            # then stays tied to the others by the loop's shape check, which the call checks);
            # with n_steps, to its first n_steps (the call checks that they exist).
            count = steps if cut else x.type.shape[0] - (high - low)
            piece = _take(x, tap - low, count, go_backwards)
            inner = Variable(TensorType(x.dtype, x.type.shape[1:]), name=f"{x.label()}[t{tap:+d}]")
            seq_outer.append(piece)
            seq_inner.append(inner)
            fn_args.append(inner)
    slots = []  # per recurrent output: (outputs_info index, outer initials, inner slot variables)
    for k, info in enumerate(infos):
        if info is None:
            continue
        init, taps = info
        depth = -min(taps)
        outer = [init] if taps == [-1] else _initial_slices(init, depth, k, where)
        inner = [Variable(o.type, name=f"{where}.output{k}[t{-depth + i:+d}]")
                 for i, o in enumerate(outer)]
        slots.append((k, outer, inner))
        fn_args.extend(inner[depth + tap] for tap in taps)
    fn_args.extend(explicit)

    outputs, updates = _call(fn, fn_args, where)
    if outputs_info is None:
        infos = [None] * len(outputs)
    if len(outputs) != len(infos):
        raise GraphcTypeError(f"{where}: the step function returned {len(outputs)} output(s) but "
                              f"outputs_info has {len(infos)} entr{'y' if len(infos) == 1 else 'ies'}; "
                              "give one outputs_info entry per output (None for an output that "
                              "is not fed back)")
    for k, init, inner in slots:
        _check_recurrent(outputs[k], inner[-1], k, infos[k], where)

    # Shared variables the step updates are carried states; their inner stand-ins replace them.
    upd_vars = list(updates)
    upd_inner = [Variable(v.type, name=f"{v.label()} (in {where})") for v in upd_vars]
    standing_in = dict(zip(upd_vars, upd_inner))
    inner_inputs = seq_inner + [v for _, _, inner in slots for v in inner] + upd_inner
    results = list(outputs) + [as_variable(updates[v]) for v in upd_vars]
    for v, e in zip(upd_vars, results[len(outputs):]):
        if e.type.dtype != v.dtype or e.ndim != v.ndim:
            raise GraphcTypeError(f"{where}: the step updates shared {v.label()} ({v.type}) to "
                                  f"{e.type}; an update keeps the variable's type")
    # A run-time n_steps rides along as an unread non-sequence: its value binds the trip count
    # when the function is called, so its node must stay in the graph.
    results, outer_rest, inner_rest = _close_over(results, inner_inputs, standing_in,
                                                  explicit + counts, strict, where)
    results, hoisted_in, hoisted_outer = _hoist_input_products(results, seq_inner, seq_outer,
                                                               inner_rest, outer_rest)
    seq_inner, seq_outer = seq_inner + hoisted_in, seq_outer + hoisted_outer
    read = variables_read(results)  # a sequence whose every use was hoisted is no longer one
    kept = [k for k, v in enumerate(seq_inner) if v in read]
    seq_inner, seq_outer = [seq_inner[k] for k in kept], [seq_outer[k] for k in kept]
    outputs, new_upd = results[:len(outputs)], results[len(outputs):]

    # Body outputs: new states (each output's slots shifted, then the updated shareds), then the
    # per-step outputs (the step's, then the history of each slot that is not one of them).
    new_states, extra_history = [], []
    for k, outer, inner in slots:
        shifted = list(inner[1:]) + [outputs[k]]
        new_states += shifted
        extra_history += shifted[:-1]
    new_states += new_upd
    extra_history += new_upd
    # The step's products are kept per step (the gemm writes them in place): the gradient
    # reads them back instead of recomputing them (graphc/scan_grad.py).
    extra_history += [v for v in _products(new_states + list(outputs), inner_rest)
                      if v not in extra_history and v not in outputs]
    # So are the activations whose derivative reads their value (sigmoid, tanh, exp): BPTT then
    # does no transcendental work. A function without the gradient does not stack them.
    extra_history += [v for v in _activations(new_states + list(outputs), inner_rest)
                      if v not in extra_history and v not in outputs and v not in new_states]
    body = InnerGraph(seq_inner + [v for _, _, inner in slots for v in inner] + upd_inner +
                      inner_rest, new_states + list(outputs) + extra_history)
    initials = [o for _, outer, _ in slots for o in outer] + upd_vars
    op = Scan(body, len(seq_outer), len(initials), None if seq_outer else steps,
              truncate_gradient=int(truncate_gradient), name=name)
    node = op.make_node(*seq_outer, *initials, *outer_rest)
    if cut:
        node.constraints.extend(_length_checks(seqs, steps, where,
                                               counts[0].steps_label if counts else None))
    res = node.outputs
    finals, stacked = res[:len(initials)], res[len(initials):len(initials) + len(outputs)]
    new_values = dict(zip(upd_vars, finals[len(initials) - len(upd_vars):]))
    for v in stacked:
        v.name = f"{name or 'scan'}.out"
    if len(stacked) == 1 and not return_list:
        return stacked[0], new_values
    return list(stacked), new_values


# --- arguments ---------------------------------------------------------------------------------

def _as_list(x):
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _sequence(s, k, where):
    if isinstance(s, dict):
        if "input" not in s:
            raise GraphcTypeError(f"{where}: sequences[{k}] is a dict without 'input'; write "
                                  "dict(input=X, taps=[...])")
        x, taps = as_variable(s["input"]), s.get("taps", [0])
    else:
        x, taps = as_variable(s), [0]
    taps = _taps(taps, f"sequences[{k}]", where)
    if x.ndim < 1:
        raise GraphcTypeError(f"{where}: sequences[{k}] = {x.label()} is a scalar ({x.type}); a "
                              "sequence needs an axis 0 to step over")
    return x, taps


def _output_info(o, k, where):
    if o is None:
        return None
    if isinstance(o, dict):
        if o.get("initial") is None:
            return None
        init, taps = as_variable(o["initial"]), _taps(o.get("taps", [-1]), f"outputs_info[{k}]",
                                                      where)
        if any(t >= 0 for t in taps):
            raise GraphcTypeError(f"{where}: outputs_info[{k}] has taps {taps}; the taps of a "
                                  "recurrent output must be negative (-1: the previous step)")
        return init, taps
    return as_variable(o), [-1]


def _taps(taps, what, where):
    taps = [taps] if isinstance(taps, (int, np.integer)) else list(taps)
    if not taps or not all(isinstance(t, (int, np.integer)) for t in taps) or \
            len(set(taps)) != len(taps):
        raise GraphcTypeError(f"{where}: {what} taps must be distinct ints, got {taps!r}")
    return sorted(int(t) for t in taps)


def _steps(seqs, n_steps, where):
    """The trip count, whether the sequences are cut to it, and the run-time n_steps node if
    n_steps is a value: (steps, cut, counts). Without n_steps,
    the sequences' common number of steps; with it, n_steps (Theano: each sequence must be at
    least that long and is read up to there; what shapes cannot show is checked at call time,
    _length_checks)."""
    given, counts = _given_steps(n_steps, where)
    if not seqs:
        if given is None:
            raise GraphcTypeError(f"{where}: with no sequences the number of steps is unknown; "
                                  "pass n_steps")
        return given, False, counts
    lengths = _lengths(seqs, where)
    if given is None:
        for k, n in enumerate(lengths[1:], 1):
            if isinstance(n, int) and isinstance(lengths[0], int) and n != lengths[0]:
                raise GraphcShapeError(
                    f"{where}: sequences[{k}] gives {n} steps but sequences[0] gives "
                    f"{lengths[0]} (length minus the span of its taps); give sequences of one "
                    "length, or slice them, or pass n_steps")
        return lengths[0], False, counts
    for k, n in enumerate(lengths):
        room = _minus(n, given)
        if isinstance(room, int) and room < 0:
            raise GraphcShapeError(f"{where}: n_steps = {given} but sequences[{k}] gives only "
                                   f"{n} steps" if k else
                                   f"{where}: n_steps = {given} but the sequences give only "
                                   f"{n} steps")
    return given, True, counts


def _given_steps(n_steps, where):
    """(n_steps as a dim (an int or a sympy expression) or None, [the count node of a run-time
    n_steps]). A value computed at run time (Theano's iscalar n_steps) becomes a count bound when
    the function is called (ir/value_dims.count_dim); negative counts run 0 steps."""
    if n_steps is None:
        return None, []
    if hasattr(n_steps, "dim_expr"):
        given = n_steps.dim_expr
    elif isinstance(n_steps, Constant) and n_steps.ndim == 0:
        given = int(n_steps.data)
    elif isinstance(n_steps, Variable):
        if n_steps.ndim != 0 or not np.issubdtype(np.dtype(n_steps.dtype), np.integer):
            raise GraphcTypeError(f"{where}: n_steps = {n_steps.label()} is {n_steps.type}; "
                                  "pass an integer scalar, an int or a graphc.dim")
        count = count_dim(n_steps, f"{where}: n_steps = {n_steps.label()}")
        count.steps_label = n_steps.label()
        return count.dim_expr, [count]
    else:
        given = as_dim(n_steps, f"{where}: n_steps") if not (
            isinstance(n_steps, (int, np.integer)) and n_steps < 0) else int(n_steps)
    if isinstance(given, int) and given < 0:
        raise GraphcShapeError(f"{where}: n_steps = {given} is negative; pass the number of "
                               "steps (>= 0) and go_backwards=True to run backwards")
    return given, []


def _lengths(seqs, where):
    """Per sequence, the steps it gives: its length minus the span of its taps."""
    lengths = []
    for k, (x, taps) in enumerate(seqs):
        span = _span(taps)
        n = x.type.shape[0]
        lengths.append(n - span if isinstance(n, int) else sympy.expand(n - span))
        if isinstance(n, int) and n - span < 0:
            raise GraphcShapeError(f"{where}: sequences[{k}] has {n} entries, fewer than its taps "
                                   f"{taps} need ({span + 1} for one step)")
    return lengths


def _span(taps):
    return max(max(taps), 0) - min(min(taps), 0)


def _minus(a, b):
    r = sympy.expand(sympy.sympify(a) - b)
    return int(r) if r.is_Integer else r


def _length_checks(seqs, steps, where, steps_label=None):
    """The call-time checks that each sequence has the n_steps steps a scan reads: dim
    constraints Min(room, 0) == 0 (FitsCheck: sympy's Min is slow and folds what a dim being
    positive implies); graphc/runtime/checks.py runs them before the program, so a failing
    call changes nothing. None where the shapes already show it."""
    checks = []
    for k, n in enumerate(_lengths(seqs, where)):
        room = _minus(n, steps)
        if not isinstance(room, int):
            x, taps = seqs[k]
            checks.append((FitsCheck(room), 0,
                           SequenceTooShort(where, k, x.name, x.type.shape[0], taps, steps,
                                            steps_label)))
    return checks


class SequenceTooShort:
    """The message of a failed length check: it names the scan, the sequence, its length and
    n_steps, with their values for the call (runtime/checks.py calls `explain`; an AOT library
    prints str())."""

    def __init__(self, where, k, label, length, taps, steps, steps_label=None):
        self.where, self.k, self.label = where, k, label
        self.length, self.taps, self.steps = length, tuple(taps), steps
        self.steps_label = steps_label  # the run-time n_steps' variable, where it is one

    def _what(self):
        return f"sequences[{self.k}]" + (f" ({self.label})" if self.label else "")

    def _need(self, steps):
        span = _span(self.taps)
        if not span:
            return f"{steps}"
        return f"{steps} + {span} (the span of its taps {list(self.taps)})"

    def __str__(self):
        return (f"{self.where}: {self._what()} is shorter than the scan's n_steps = {self.steps}: "
                f"it needs {self._need(self.steps)} entries along axis 0 and has {self.length}")

    def __format__(self, spec):
        return format(str(self), spec)

    def __reduce__(self):
        return (SequenceTooShort, (self.where, self.k, self.label, self.length, self.taps,
                                   self.steps, self.steps_label))

    def explain(self, value_of, name_of=str):
        n, steps = value_of(self.length), value_of(self.steps)
        name = str(self.steps) if isinstance(self.steps, int) else \
            f"{self.steps_label or name_of(self.steps)} = {steps}"
        return (f"{self.where}: {self._what()} has {n} entries along axis 0 but the scan runs "
                f"n_steps = {name} steps, which read {self._need(steps)} entries of it; pass a "
                "sequence of at least that length (a longer one is read up to there) or a "
                "smaller n_steps")


def _take(x, start, steps, backwards):
    """x[start:start + steps], reversed when scanning backwards."""
    n = x.type.shape[0]
    piece = x if (start == 0 and dims_equal(steps, n)) else x[start:_plus(start, steps)]
    return piece[::-1] if backwards else piece


def _plus(a, b):
    r = sympy.expand(sympy.sympify(a) + b)
    return int(r) if r.is_Integer else r


def _initial_slices(init, depth, k, where):
    if init.ndim < 1:
        raise GraphcTypeError(f"{where}: outputs_info[{k}] has taps down to -{depth}, so its "
                              f"initial value needs a leading axis of {depth} entries; got "
                              f"{init.label()} of type {init.type}")
    n = init.type.shape[0]
    if isinstance(n, int) and n < depth:
        raise GraphcShapeError(f"{where}: outputs_info[{k}] has taps down to -{depth}, so its "
                               f"initial value needs {depth} leading entries; {init.label()} has {n}")
    return [init[i] for i in range(depth)]


def _call(fn, args, where):
    """Call the step function; returns (outputs list, updates dict) from any of Theano's forms."""
    ret = fn(*args)
    updates = {}
    if isinstance(ret, dict):
        return [], dict(ret)
    if isinstance(ret, tuple) and len(ret) == 2 and any(isinstance(r, dict) for r in ret):
        ret, updates = (ret[1], ret[0]) if isinstance(ret[0], dict) else ret
    outs = ret if isinstance(ret, (list, tuple)) else [ret]
    try:
        outs = [as_variable(o) for o in outs]
    except GraphcTypeError as e:
        raise GraphcTypeError(f"{where}: the step function returned something that is not a "
                              f"variable: {e}") from None
    updates = dict(updates.items() if hasattr(updates, "items") else updates)
    for v in updates:
        if not isinstance(v, SharedVariable):
            raise GraphcTypeError(f"{where}: the step returned an update for {v!r}, which is not "
                                  "a shared variable")
    return outs, updates


def _check_recurrent(out, slot, k, info, where):
    init, taps = info
    bad = out.dtype != slot.dtype or out.ndim != slot.ndim or any(
        isinstance(a, int) and isinstance(b, int) and a != b
        for a, b in zip(out.type.shape, slot.type.shape))
    if bad:
        raise GraphcTypeError(
            f"{where}: output {k} of the step is {out.type} but its initial value "
            f"outputs_info[{k}] ({init.label()}) gives steps of {slot.type}; a recurrent output "
            "keeps the shape and dtype of its initial value: fix the initial value or cast the "
            "step's result (.astype)")


def _hoist_input_products(results, seq_inner, seq_outer, rest_inner, rest_outer):
    """x_t @ W with x_t a sequence slice and W loop-invariant, for all steps at once: one
    product [T*b, n] @ W before the loop, whose slices become a sequence of the loop.
    Returns (results rewritten, new inner sequence variables, their outer sequences)."""
    from .grad import _replace
    seq_of = dict(zip(seq_inner, seq_outer))
    rest_of = dict(zip(rest_inner, rest_outer))
    mapping, new_inner, new_outer, done = {}, [], [], {}
    for node in toposort(results):
        a, w = node.inputs[0], node.inputs[-1]
        if not (type(node.op) is Matmul and not node.op.trans_a and not node.op.trans_b and
                a in seq_of and w in rest_of and a.ndim == 2 and w.ndim == 2):
            continue
        key = (a, w)
        if key not in done:
            x = seq_of[a]
            flat = reshape(x, (-1, x.type.shape[-1]))
            y = node.op(flat, rest_of[w])
            outer = reshape(y, tuple(x.type.shape[:2]) + (w.type.shape[1],))
            inner = Variable(node.outputs[0].type, name=f"{a.label()} @ {w.label()}")
            done[key] = inner
            new_inner.append(inner)
            new_outer.append(outer)
        mapping[node.outputs[0]] = done[key]
    if not mapping:
        return results, [], []
    return _replace(results, mapping), new_inner, new_outer


def _products(results, invariant):
    """Outputs of the float matrix products in the step that change from step to step. A product
    read only by one add of its shape (an LSTM's z = (x W)_t + h U) is kept as that sum: the
    gradient reads the sum (it would add again), and the product then accumulates into it (a
    gemm with beta = 1: passes/fuse_gemm.py) instead of being written and added."""
    fixed = set(invariant)
    order = toposort(results)
    readers = {}
    for node in order:
        for i in node.inputs:
            readers.setdefault(i, []).append(node)
    found = []
    for node in order:
        if isinstance(node.op, Matmul) and node.outputs[0].dtype in FLOAT_DTYPES and \
                not all(i in fixed or isinstance(i, Constant) for i in node.inputs):
            out = node.outputs[0]
            users = readers.get(out, [])
            if out not in results and len(users) == 1 and users[0].op == add_op and \
                    users[0].outputs[0].type == out.type:
                out = users[0].outputs[0]
            if out not in found:
                found.append(out)
    return found


def _activations(results, invariant):
    """Outputs of the step's elementwise functions whose gradient reads their output (the
    table's from_output rows: sigmoid, tanh, exp) and that change from step to step."""
    fixed = set(invariant)
    varying, found = set(), []
    for node in toposort(results):
        ins = [i for i in node.inputs if i.owner is None and i not in fixed and not isinstance(i, Constant)]
        if not ins and not any(i in varying for i in node.inputs):
            continue
        varying.update(node.outputs)
        out = node.outputs[0]
        if isinstance(node.op, Elemwise) and isinstance(node.op.expr, sf.REUSE_OUTPUT) and \
                out.dtype in FLOAT_DTYPES and out not in found:
            found.append(out)
    return found


def _close_over(results, inner_inputs, standing_in, explicit, strict, where):
    """Rebuild the step's graph over inner variables only: each value it reads from outside
    (after the explicit non-sequences) gets an inner stand-in and is passed as a non-sequence.
    Returns (rebuilt results, outer non-sequences, their inner stand-ins)."""
    inner_set = set(inner_inputs) | set(standing_in)
    order = toposort(results)
    inside = set(inner_set)
    for node in order:
        if any(i in inside for i in node.inputs):
            inside.update(node.outputs)
    outer, seen = [], set()
    for v in explicit:
        if v not in seen:
            seen.add(v)
            outer.append(v)
    implicit = []

    def visit(v):
        if v in inside or v in seen or (isinstance(v, Constant) and v.data.size <= 1):
            return
        seen.add(v)
        outer.append(v)
        implicit.append(v)

    for node in order:
        if node.outputs[0] in inside:
            for i in node.inputs:
                visit(i)
    for r in results:
        visit(r)
    if strict:
        listed = set(explicit)
        hidden = [v for v in leaves(implicit) if not isinstance(v, Constant) and v not in listed]
        if hidden:
            raise GraphcTypeError(f"{where}: strict=True but the step reads "
                                  f"{', '.join(v.label() for v in hidden)} without it being a "
                                  "sequence or non-sequence; add it to non_sequences")
    replaced = dict(standing_in)
    stand_ins = []
    for v in outer:
        s = Variable(v.type, name=v.name)
        replaced[v] = s
        stand_ins.append(s)
    for node in order:
        if node.outputs[0] not in inside:
            continue
        new = Node(node.op, [replaced.get(i, i) for i in node.inputs],
                   [o.type for o in node.outputs], node.constraints)
        for o, n in zip(node.outputs, new.outputs):
            n.name = o.name
            replaced[o] = n
    return [replaced.get(r, r) for r in results], outer, stand_ins
