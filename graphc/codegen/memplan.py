"""Memory planning over the final kernel schedule.

1. Liveness: each buffer lives from the first to the last kernel that touches it.
2. In place (what a kernel allows is its spec's traits, codegen/kernels.py): an elementwise
   kernel writes over a full-size input that dies there (same dtype and
   size), and a parameter update writes straight into its shared variable when that kernel is the
   last reader of the old value and nothing after it can fail (so a failed call still leaves every
   shared variable as it was, and every update still reads the values from before the call).
3. Sharing: temporaries that never live at once share workspace slots (best fit); sizes stay
   symbolic until the dims are bound, so slot sizes and offsets are sympy expressions.
4. Loops: a loop kernel's body Program is planned first, on its own: its temporaries share the
   body's workspace region, which every iteration reuses. That region and the two buffers of
   each loop-carried state are the loop kernel's scratch, temporaries live at that kernel only,
   so they never alias the loop's inputs and outputs (live there too) and may share storage
   with temporaries elsewhere. A buffer the body reads on every iteration is an input of the
   loop kernel: it lives across the whole loop.
`check_plan` is a separate validator: no two temporaries live at the same time may overlap,
recursively through loop bodies.
"""
import sympy

from ..ir.types import dims_equal, simplify_dim
from .kernels import spec_of
from .program import DTYPE_BYTES, Program


def loop_bodies(program):
    """(kernel, body Program) for each loop kernel of the program (not recursing)."""
    return [(k, k.params["body"]) for k in program.kernels
            if isinstance(k.params.get("body"), Program)]


def liveness(program):
    for b in program.buffers:
        b.first, b.last = -1, -1
    for k, kern in enumerate(program.kernels):
        for b in kern.buffers:
            if b.first < 0:
                b.first = k
            b.last = k


def _replace_buffer(program, old, new):
    for kern in program.kernels:
        kern.inputs = [new if b is old else b for b in kern.inputs]
        kern.outputs = [new if b is old else b for b in kern.outputs]
    program.output_buffers = [new if b is old else b for b in program.output_buffers]


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
        _replace_buffer(program, out_buf, shared_buf)
        kern.in_place = True
        program.in_place_updates[out_buf.slot_index] = shared_buf
        liveness(program)
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
                    _replace_buffer(program, out, cand)
                    kern.in_place = True
                    liveness(program)
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


def plan_slots(program):
    """Assign workspace offsets to temporaries; returns (planned bytes, naive bytes)."""
    liveness(program)
    temps = sorted((b for b in program.buffers if b.role == "temp" and b.first >= 0),
                   key=lambda b: (b.first, b.id))
    slots = []  # [size expr, free_from kernel index, buffers]
    for b in temps:
        need = b.aligned_nbytes
        best = None
        for slot in slots:
            if slot[1] > b.first:
                continue
            fits = _fits(slot[0], need)
            if fits and (best is None or _smaller(slot[0], best[0])):
                best = slot
        if best is None:
            # No free slot is big enough: grow the largest free one if any, else open a new one.
            free = [s for s in slots if s[1] <= b.first and _is_int(s[0]) and _is_int(need)]
            if free:
                best = free[0]
                best[0] = simplify_dim(sympy.Max(best[0], need))
            else:
                best = [need, 0, []]
                slots.append(best)
        best[1] = b.last + 1
        best[2].append(b)
    # Sums of expanded sizes are expanded already: expanding each running offset again cost a
    # quadratic amount of sympy work (seconds for a CNN compiled for symbolic shapes).
    offset = sympy.Integer(0)
    program.workspace_slots = []
    for slot in slots:
        for b in slot[2]:
            b.offset = _as_dim(offset)
        size = simplify_dim(slot[0])
        program.workspace_slots.append((_as_dim(offset), size))
        offset = offset + size
    program.workspace_bytes = _as_dim(offset)
    naive = sum((simplify_dim(b.aligned_nbytes) for b in temps), sympy.Integer(0))
    return program.workspace_bytes, _as_dim(naive)


def _as_dim(expr):
    return int(expr) if expr.is_Integer else expr


def _is_int(e):
    return sympy.sympify(e).is_Integer


def _fits(slot_size, need):
    """A slot can hold a buffer: static sizes compare; symbolic sizes must match exactly (asking
    sympy to order general size expressions can take minutes)."""
    a, b = sympy.sympify(slot_size), sympy.sympify(need)
    if a.is_Integer and b.is_Integer:
        return a >= b
    return a == b


def _smaller(a, b):
    a, b = sympy.sympify(a), sympy.sympify(b)
    return bool(a.is_Integer and b.is_Integer and a < b)


def check_plan(program):
    """Raise AssertionError if two temporaries that are live at the same time overlap, or a loop's
    body does not fit its workspace region, or a loop's scratch aliases what it reads or writes."""
    for kern, body in loop_bodies(program):
        check_plan(body)
        region = kern.scratch[0]
        assert sympy.simplify(region.nbytes - body.workspace_bytes) == 0, \
            f"loop {kern.label}: body workspace {body.workspace_bytes} bytes, region {region.nbytes}"
        assert not set(map(id, kern.scratch)) & set(map(id, kern.inputs + kern.outputs)), \
            f"loop {kern.label}: a scratch buffer is also an input or output"
        assert len(set(map(id, kern.scratch))) == len(kern.scratch), \
            f"loop {kern.label}: two scratch buffers are one"
    liveness(program)
    temps = [b for b in program.buffers if b.role == "temp" and b.first >= 0]
    ranges = [_byte_range(b) for b in temps]
    samples = _sampled_ranges(ranges)
    for i, a in enumerate(temps):
        for j in range(i + 1, len(temps)):
            b = temps[j]
            if a is b or a.last < b.first or b.last < a.first:
                continue
            assert _disjoint(ranges[i], ranges[j], samples[i], samples[j]), \
                f"buffers b{a.id} and b{b.id} are live together and overlap"
    return True


# Dim values at which symbolic byte ranges are compared when sympy cannot prove them apart.
_SAMPLE_DIMS = (1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 64, 100, 127, 128, 1000, 4097)


def _byte_range(buf):
    start = sympy.sympify(buf.offset)
    return start, start + buf.aligned_nbytes


def _sampled_ranges(ranges):
    """Each range's integer bounds with every dim set to each sample value in turn. Evaluated
    once per buffer (xreplace, not subs: subs made check_plan take minutes on symbolic CNNs)."""
    symbols = set().union(*(e.free_symbols for r in ranges for e in r))
    envs = [{s: sympy.Integer(v) for s in symbols} for v in _SAMPLE_DIMS] if symbols else [{}]
    samples = [[(int(start.xreplace(env)), int(end.xreplace(env))) for env in envs]
               for start, end in ranges]
    # Dim values at which some buffer has a negative size make no valid program (a conv's output
    # narrower than nothing): offsets there are meaningless, so they are not compared.
    keep = [k for k in range(len(envs)) if all(r[k][1] >= r[k][0] for r in samples)]
    keep = keep or range(len(envs))
    return [[r[k] for k in keep] for r in samples]


def _disjoint(a, b, a_samples, b_samples):
    """[a0, a1) and [b0, b1) do not overlap: checked at many dim values, and where a sample
    overlaps, proved by sympy or refused (sympy cannot always prove facts like
    64*ceiling(n/16) >= 64 for positive n, and asking it first is slow)."""
    if all(va1 <= vb0 or vb1 <= va0 for (va0, va1), (vb0, vb1) in zip(a_samples, b_samples)):
        return True
    (a0, a1), (b0, b1) = a, b
    return bool((a1 - b0).is_nonpositive or (b1 - a0).is_nonpositive)


def plan_memory(program, update_pairs=()):
    for kern, body in loop_bodies(program):
        plan_memory(body)
        region = kern.scratch[0]  # float64 elements: the body's workspace is whole 64-byte lines
        # (sympify: an int workspace / 8 in python is a float, and a float size poisons caches)
        region.shape = (simplify_dim(sympy.sympify(body.workspace_bytes) / DTYPE_BYTES[region.dtype]),)
    notes = plan_in_place(program, update_pairs)
    planned, naive = plan_slots(program)
    program.plan_notes = notes + [f"memory plan: peak workspace {planned} bytes vs {naive} bytes "
                                  "for all intermediates kept apart"]
    program.naive_bytes = naive
    return program
