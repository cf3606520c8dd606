"""Memory planning over the final kernel schedule.

1. Liveness: each buffer lives from the first to the last kernel that touches it.
2. In place (what a kernel allows is its spec's traits, codegen/kernels.py): an elementwise
   kernel writes over a full-size input that dies there (same dtype and
   size), and a parameter update writes straight into its shared variable when that kernel is the
   last reader of the old value and nothing after it can fail (so a failed call still leaves every
   shared variable as it was, and every update still reads the values from before the call).
3. Sharing (memplan_slots.py): temporaries that never live at once share workspace slots, of
   different symbolic sizes too (ordered by memplan_sizes.py, else a Max slot size); sizes stay
   symbolic until the dims are bound, so slot sizes and offsets are sympy expressions.
4. Loops: a loop kernel's body Program is planned first, on its own: its temporaries share the
   body's workspace region, which every iteration reuses. That region and the two buffers of
   each loop-carried state are the loop kernel's scratch, temporaries live at that kernel only,
   so they never alias the loop's inputs and outputs (live there too) and may share storage
   with temporaries elsewhere. A buffer the body reads on every iteration is an input of the
   loop kernel: it lives across the whole loop.
`check_plan` (memplan_check.py) is a separate validator: no two temporaries live at the same
time may overlap, recursively through loop bodies.
"""
import sympy

from ..ir.graph import LazyText
from ..ir.types import dims_equal, simplify_dim
from .kernels import spec_of
from .memplan_check import check_plan  # noqa: F401  (the planner's validator, imported from here)
from .memplan_live import liveness, loop_bodies
from .memplan_slots import plan_slots
from .program import DTYPE_BYTES


def _replace_buffer(program, old, new):
    for kern in program.kernels:
        kern.inputs = [new if b is old else b for b in kern.inputs]
        kern.outputs = [new if b is old else b for b in kern.outputs]
    program.output_buffers = [new if b is old else b for b in program.output_buffers]


def _merge_buffer(program, old, new):
    """_replace_buffer, then liveness as liveness(program) would leave it, for current liveness:
    only the kernels `old` lives at change, and `new` lives over both ranges. (A ResNet step
    merges ~300 buffers; rescanning every kernel for each was ~10 % of its planning.)"""
    for kern in program.kernels[old.first:old.last + 1]:
        kern.inputs = [new if b is old else b for b in kern.inputs]
        kern.outputs = [new if b is old else b for b in kern.outputs]
    program.output_buffers = [new if b is old else b for b in program.output_buffers]
    if old.first >= 0:
        new.first = old.first if new.first < 0 else min(new.first, old.first)
        new.last = max(new.last, old.last)
    old.first, old.last = -1, -1


def _full_inputs(kern):
    return [kern.inputs[i] for i in kern.params.get("full_inputs", [])]


def plan_in_place(program, update_pairs):
    """update_pairs: [(output buffer, shared buffer)] for the updated shared variables."""
    notes = []
    liveness(program)
    last_fallible = max((k for k, kern in enumerate(program.kernels) if spec_of(kern.kind).can_fail(kern)),
                        default=-1)
    for out_buf, shared_buf in update_pairs:
        k = out_buf.first
        kern = program.kernels[k] if k >= 0 else None
        if _gemm_update_in_place(program, k, out_buf, shared_buf, last_fallible):
            notes.append(f"update of {shared_buf.name}: gemm accumulates into it in place")
            program.in_place_updates[out_buf.slot_index] = shared_buf
            liveness(program)
            continue
        if kern is None or not spec_of(kern.kind).elementwise or out_buf not in kern.outputs:
            notes.append(f"update of {shared_buf.name}: not in place (not made by an elementwise kernel)")
            continue
        if shared_buf not in _full_inputs(kern) or shared_buf.last != k:
            notes.append(f"update of {shared_buf.name}: not in place (the old value is read later)")
            continue
        if k <= last_fallible:
            notes.append(f"update of {shared_buf.name}: not in place (a later kernel can fail)")
            continue
        if out_buf.last != k or out_buf.dtype != shared_buf.dtype:
            notes.append(f"update of {shared_buf.name}: not in place (its new value is read again)")
            continue
        _merge_buffer(program, out_buf, shared_buf)
        kern.in_place = True
        program.in_place_updates[out_buf.slot_index] = shared_buf
    # Temporaries: an elementwise kernel overwrites a full-size input temp that dies with it
    # (each input at most once: two outputs never share a buffer).
    for k, kern in enumerate(program.kernels):
        if not spec_of(kern.kind).elementwise:
            continue
        for out in list(kern.outputs):
            if out.role != "temp" or out.first != k:
                continue
            for cand in _full_inputs(kern):
                if cand.role == "temp" and cand.last == k and cand.dtype == out.dtype and \
                        dims_equal(cand.size, out.size) and cand not in kern.outputs:
                    _merge_buffer(program, out, cand)
                    kern.in_place = True
                    break
    return notes


def _gemm_update_in_place(program, k, out_buf, shared_buf, last_fallible):
    """copy(shared -> out); gemm(out += alpha a b) (or any kernel that accumulates into its one
    output): drop the copy, accumulate into shared."""
    kerns = program.kernels
    if k < 0 or k + 1 >= len(kerns):
        return False
    copy, gemm = kerns[k], kerns[k + 1]
    if not spec_of(copy.kind).copies_input or copy.inputs != [shared_buf] or \
            gemm.outputs != [out_buf] or not spec_of(gemm.kind).accumulates_into_output(gemm):
        return False
    if shared_buf.last != k or out_buf.last != k + 1 or k + 1 <= last_fallible:
        return False
    if shared_buf in gemm.inputs:  # the product reads the old value: it must stay intact
        return False
    del kerns[k]
    _replace_buffer(program, out_buf, shared_buf)
    gemm.in_place = True
    return True


def _plan_note(planned, naive):
    return f"memory plan: peak workspace {planned} bytes vs {naive} bytes for all intermediates kept apart"


def plan_memory(program, update_pairs=()):
    for kern, body in loop_bodies(program):
        plan_memory(body)
        region = kern.scratch[0]  # float64 elements: the body's workspace is whole 64-byte lines
        # (sympify: an int workspace / 8 in python is a float, and a float size poisons caches)
        region.shape = (simplify_dim(sympy.sympify(body.workspace_bytes) / DTYPE_BYTES[region.dtype]),)
    notes = plan_in_place(program, update_pairs)
    planned, naive = plan_slots(program)
    # (printed when read: sympy's printer took ~0.3 s on a ResNet's symbolic totals, every compile)
    program.plan_notes = notes + [LazyText(_plan_note, planned, naive)]
    program.naive_bytes = naive
    return program
