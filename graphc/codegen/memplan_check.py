"""`check_plan`: an independent validator of a memory plan (run by every test with
GRAPHC_CHECK_PLANS=1), recursively through loop bodies. Two checks, each sufficient alone:

1. The slot structure, proved for every dim value: the workspace slots lie end to end from 0
   (each offset is the one before plus that slot's size); every temporary starts at a slot's
   offset and fits it (its size proved <= the slot's size, memplan_sizes.provably_ge: Max slot
   sizes included), so a slot's size is >= 0 wherever its buffers' sizes are (every call that
   passes its shape checks); two temporaries of one slot are never live at the same kernel.
2. Byte ranges of temporaries live together are disjoint at many dim values (every dim the same
   value, and mixed values: a pooled size against a batch size), and where a sample overlaps,
   proved apart by sympy or refused. This catches a planner or prover bug that 1 would share.
"""
import itertools

import sympy

from .memplan_live import live_temps, liveness, loop_bodies
from .memplan_sizes import evaluate, provably_ge
from .memplan_slots import buffer_size


def check_plan(program):
    """Raise AssertionError if two temporaries that are live at the same time overlap, or a
    temporary is not inside its slot, or a loop's body does not fit its workspace region, or a
    loop's scratch aliases what it reads or writes."""
    for kern, body in loop_bodies(program):
        region = kern.scratch[0]
        gap = sympy.sympify(region.nbytes) - sympy.sympify(body.workspace_bytes)
        assert gap == 0 or sympy.expand(gap) == 0, \
            f"loop {kern.label}: body workspace {body.workspace_bytes} bytes, region {region.nbytes}"
        assert not set(map(id, kern.scratch)) & set(map(id, kern.inputs + kern.outputs)), \
            f"loop {kern.label}: a scratch buffer is also an input or output"
        assert len(set(map(id, kern.scratch))) == len(kern.scratch), \
            f"loop {kern.label}: two scratch buffers are one"
        check_plan(body)
    liveness(program)
    temps = live_temps(program)
    _check_sampled(temps)
    _check_slots(program, temps)
    return True


def _check_slots(program, temps):
    slots = [(sympy.sympify(o), sympy.sympify(s)) for o, s in program.workspace_slots]
    end = sympy.Integer(0)
    for j, (offset, size) in enumerate(slots):
        assert offset == end, f"workspace slot {j} starts at {offset}, not where slot {j - 1} ends ({end})"
        end = offset + size
    assert sympy.sympify(program.workspace_bytes) == end, \
        f"workspace of {program.workspace_bytes} bytes, but its slots end at {end}"
    at_offset = {}
    for j, (offset, size) in enumerate(slots):
        if size != 0:
            at_offset.setdefault(offset, []).append(j)
    members = {}
    for b in temps:
        size = buffer_size(b)
        if size == 0:
            continue  # no bytes: overlaps nothing
        found = at_offset.get(sympy.sympify(b.offset), [])
        assert len(found) == 1, f"buffer b{b.id} at {b.offset} is not at the start of one workspace slot"
        j = found[0]
        assert provably_ge(slots[j][1], size), \
            f"buffer b{b.id} of {size} bytes is not proved to fit workspace slot {j} of {slots[j][1]}"
        members.setdefault(j, []).append(b)
    for j, (offset, size) in enumerate(slots):
        assert j in members or size == 0, f"workspace slot {j} of {size} bytes holds no buffer"
    for j, bufs in members.items():
        bufs.sort(key=lambda b: (b.first, b.last))
        for a, b in zip(bufs, bufs[1:]):
            assert a.last < b.first, f"buffers b{a.id} and b{b.id} share workspace slot {j} and are live together"


# Dim values at which symbolic byte ranges are compared: every dim the same value, then mixed.
_SAMPLE_DIMS = (1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 64, 100, 127, 128, 1000, 4097)
_MIXED = (1, 3, 32, 128, 1000)


def _sample_envs(symbols):
    """Each dim at each sample value together, then (for several dims) every dim a value of
    _MIXED, spread so that each dim takes small values while others take large ones."""
    symbols = sorted(symbols, key=lambda s: s.name)
    envs = [tuple((s, v) for s in symbols) for v in _SAMPLE_DIMS] if symbols else [()]
    if len(symbols) > 1:
        for shift in range(len(_MIXED)):
            envs.append(tuple((s, _MIXED[(i + shift) % len(_MIXED)]) for i, s in enumerate(symbols)))
            envs.append(tuple((s, _MIXED[(shift - i) % len(_MIXED)]) for i, s in enumerate(symbols)))
    return envs


def _byte_range(buf):
    start = sympy.sympify(buf.offset)
    return start, start + buffer_size(buf)


def _sampled_ranges(ranges):
    """Each range's integer bounds at each sample environment (evaluated once per buffer)."""
    symbols = set().union(*(e.free_symbols for r in ranges for e in r))
    envs = _sample_envs(symbols)
    samples = [[(evaluate(start, env), evaluate(end, env)) for env in envs]
               for start, end in ranges]
    # Dim values at which some buffer has a negative size make no valid program (a conv's output
    # narrower than nothing): offsets there are meaningless, so they are not compared.
    keep = [k for k in range(len(envs)) if all(r[k][1] >= r[k][0] for r in samples)]
    keep = keep or range(len(envs))
    return [[r[k] for k in keep] for r in samples]


def _check_sampled(temps):
    ranges = [_byte_range(b) for b in temps]
    samples = _sampled_ranges(ranges)
    for i, j in itertools.combinations(range(len(temps)), 2):
        a, b = temps[i], temps[j]
        if a.last < b.first or b.last < a.first:
            continue
        assert _disjoint(ranges[i], ranges[j], samples[i], samples[j]), \
            f"buffers b{a.id} and b{b.id} are live together and overlap"


def _disjoint(a, b, a_samples, b_samples):
    """[a0, a1) and [b0, b1) do not overlap: checked at many dim values, and where a sample
    overlaps, proved by sympy or refused (sympy cannot always prove facts like
    64*ceiling(n/16) >= 64 for positive n, and asking it first is slow)."""
    if all(va1 <= vb0 or vb1 <= va0 for (va0, va1), (vb0, vb1) in zip(a_samples, b_samples)):
        return True
    (a0, a1), (b0, b1) = a, b
    return bool((a1 - b0).is_nonpositive or (b1 - a0).is_nonpositive)
