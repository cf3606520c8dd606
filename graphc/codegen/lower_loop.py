"""Lowering of ir.ops.loop.Loop to a `loop` kernel: the body's inner graph becomes a Program of
its own (its buffers numbered with the outer ones, its sizes over the outer dims), and the
bindings say where each of the body's external buffers points on iteration `it`.

Loop-carried states are double-buffered: iteration it reads `cur` and writes `nxt`, two
distinct buffers (iteration 0 reads the initial state in place), then they swap; after the last
iteration `cur` is copied to the final-state output. The memory planner (memplan.py) gives the
body its own workspace region, one scratch buffer of the loop kernel.
"""
import sympy

from ..errors import CompileError
from ..ir.inner_graph import InnerGraph
from ..ir.ops.loop import Loop
from ..ir.types import size_of
from .kernels import spec_of
from .lower_support import lowers


class _BodyDims:
    """The body graph's dim resolution, in the outer graph's dims (sizes of the body's kernels
    are then expressions over the dims the outer program binds)."""

    def __init__(self, inner, outer_of):
        self.inner, self.outer_of = inner, outer_of

    def resolve(self, d):
        r = self.inner.resolve(d)
        return r if isinstance(r, int) else sympy.sympify(r).xreplace(self.outer_of)

    def shape(self, var):
        return tuple(self.resolve(d) for d in var.type.shape)


def _body_dims(L, node, fg):
    """Tie each dim of the body's inputs to the outer size it takes on every iteration."""
    op, outer_of = node.op, {}
    for k, (v, bv) in enumerate(zip(node.inputs, op.body.inputs)):
        shape = L.shape(v)[1:] if k < op.n_seqs else L.shape(v)
        for d_outer, d_body in zip(shape, bv.type.shape):
            r = fg.dims.resolve(d_body)
            if isinstance(r, sympy.Symbol):
                outer_of.setdefault(r, d_outer)
    return _BodyDims(fg.dims, outer_of)


def _unused_stacked(L, node):
    """Indices (among the stacked outputs) of per-step outputs nothing reads: the body does not
    produce them and no T-step buffer is planned (a scan saves its products for the gradient;
    a function without the gradient does not pay for them)."""
    op = node.op
    return {i for i, o in enumerate(node.outputs[op.n_carry:])
            if not L.fg.n_reads(o) and not L.fg.is_output(o)}


@lowers(Loop)
def lower_loop(L, node):
    op = node.op
    unused = _unused_stacked(L, node)
    node_outputs = [o for j, o in enumerate(node.outputs)
                    if j < op.n_carry or j - op.n_carry not in unused]
    if unused:
        body_outputs = [o for j, o in enumerate(op.body.outputs)
                        if j < op.n_carry or j - op.n_carry not in unused]
        op = Loop(InnerGraph(op.body.inputs, body_outputs), op.n_seqs, op.n_carry, op.n_steps,
                  op.reverse)
    fg = op.body.function_graph()
    body = L.body_lowerer(fg, _body_dims(L, node, fg)).run()
    inputs = [L.buffer(v) for v in node.inputs]
    outputs = [L.out_buffer(o) for o in node_outputs]
    bindings = []
    for k, b in enumerate(body.externals):
        if b.role == "input":
            if k < op.n_seqs:
                bindings.append(("slice", k, size_of(b.shape)))
            elif k < op.n_seqs + op.n_carry:
                bindings.append(("state_in", k - op.n_seqs, 0))
            else:
                bindings.append(("whole", k, 0))
        elif b.role == "const":  # the body's constants become the outer program's
            c = L.new_buffer(b.dtype, b.shape, "const", b.name)
            c.value = b.value
            bindings.append(("whole", len(inputs), 0))
            inputs.append(c)
        else:  # the body's outputs: new states, then per-step outputs
            j = b.slot_index
            bindings.append(("state_out", j, 0) if j < op.n_carry else
                            ("slice_out", j, size_of(b.shape)))
    trip = L.shape(node.inputs[0])[0] if op.n_seqs else L.dims.resolve(op.n_steps)
    unbound = sympy.sympify(trip).free_symbols - set(L.dim_symbols)
    if unbound:
        raise CompileError(f"{op}: the trip count {trip} uses {sorted(map(str, unbound))}, which "
                           "no input's shape gives; pass a sequence of that length, or make "
                           "n_steps an int or a dim of an input")
    # The body's workspace (sized by the memory planner), then cur/nxt for each state.
    scratch = [L.new_buffer("float64", (0,), "temp", f"{op} body workspace")]
    for j, o in enumerate(node_outputs[:op.n_carry]):
        scratch += [L.new_buffer(o.dtype, L.shape(o), "temp", f"loop state {j} ({half})")
                    for half in ("a", "b")]
    packs = _packed_products(L, body, bindings, inputs, scratch)
    step_macs, step_elements = _step_work(body)
    L.emit("loop", outputs, inputs, str(node.op), trip=trip, n_seqs=op.n_seqs, n_states=op.n_carry,
           state_sizes=[size_of(L.shape(o)) for o in node_outputs[:op.n_carry]],
           bindings=bindings, body=body, reverse=op.reverse,
           body_fallible=any(spec_of(k.kind).can_fail(k) for k in body.kernels), packs=packs,
           step_macs=step_macs, step_elements=step_elements)
    L.kernels[-1].scratch = scratch


def _step_work(body):
    """(multiply-adds of the body's products, elements its other kernels write), per iteration,
    over the outer dims: what a target weighs to decide whether a step is worth threads."""
    macs = elements = sympy.Integer(0)
    for k in body.kernels:
        if k.kind == "gemm":
            p = k.params
            macs += sympy.sympify(p["batch"]) * p["M"] * p["N"] * p["K"]
        else:
            elements += sum((sympy.sympify(size_of(b.shape)) for b in k.outputs), sympy.Integer(0))
    return macs, elements


def _packed_products(L, body, bindings, inputs, scratch):
    """The body's products whose right operand the loop reads whole (a recurrent weight) and
    the target packs once before the first iteration, where its capabilities say it pays: the
    BLAS would pack that operand again on every step. Each packed operand gets a scratch buffer
    (appended to `scratch`); returns the loop's `packs` param."""
    pays = getattr(L.caps, "packs_loop_product", None)
    if pays is None:
        return []
    whole = {id(b): index for b, (kind, index, _) in zip(body.externals, bindings)
             if kind == "whole"}
    packs, packed = [], {}  # packed: (input index, trans_b) -> scratch index
    for ki, k in enumerate(body.kernels):
        if k.kind != "gemm" or id(k.inputs[1]) not in whole:
            continue
        p = k.params
        if p["batch"] != 1 or not pays(p["M"], p["N"], p["K"], p["dtype"]):
            continue
        index, N, K = whole[id(k.inputs[1])], int(p["N"]), int(p["K"])
        key = (index, bool(p["trans_b"]), N, K, p["ldb"])
        if key not in packed:
            panels = -(-N // 32) * 32  # whole panels of the widest (float32) kernel
            packed[key] = len(scratch)
            scratch.append(L.new_buffer(p["dtype"], (panels * K,), "temp",
                                        f"packed {inputs[index].name or 'operand'} of {k.label}"))
        packs.append((ki, index, packed[key], bool(p["trans_b"]), K, N, p["ldb"]))
    return packs
