"""Workspace slots: temporaries that never live at once share storage.

Each slot holds buffers whose live ranges (first..last kernel, inclusive) are disjoint, so any two
of them may use the same bytes; slots are laid end to end, so buffers of different slots never
overlap. A slot's size must hold each of its buffers for every value of the dims:

- sizes proved ordered (memplan_sizes.provably_ge, for all dims) keep the larger one only:
  `512*n*h*w` holds `256*n*h*w` and `256*n*ceiling(h/2)*ceiling(w/2)`;
- sizes that cannot be ordered (a conv's chunked scratch `2304*h*w*Min(n, ...)` against an
  activation `256*n*h*w`: which is larger depends on n) give the slot the size Max(a, b):
  correct for every dim value, and never more than a slot of its own would cost (Max(a, b) <=
  a + b), so a buffer always joins a free slot when there is one.

Which free slot, and in which order buffers are placed, is a cost choice, read at typical dim
values (memplan_sizes.typical: every dim 4, 16 and 64, each weighted by that point's total):
buffers go largest first (greedy by size: the big activations and scratch buffers claim the
slots, smaller ones fill their gaps in time), each into the free slot it grows least, then wastes
least. The cost only chooses; correctness never depends on it.
"""
import functools

import sympy

from ..ir.types import simplify_dim
from .memplan_live import live_temps, liveness
from .memplan_sizes import add_to_max, integer_valued, max_of, typical
from .program import ALIGN, _aligned


class _Slot:
    __slots__ = ("parts", "value", "spans", "buffers")

    def __init__(self, buf, size, value):
        self.parts, self.value = [size], value  # maximal sizes (none proved >= another); typical
        self.spans, self.buffers = [(buf.first, buf.last)], [buf]

    def free_during(self, first, last):
        return all(end < first or last < start for start, end in self.spans)

    def take(self, buf, size, value):
        self.parts = add_to_max(self.parts, size)
        self.value = tuple(max(a, b) for a, b in zip(self.value, value))
        self.spans.append((buf.first, buf.last))
        self.buffers.append(buf)


def buffer_size(buf):
    """A temporary's bytes in the workspace (whole 64-byte lines), in canonical form."""
    return _whole_lines(sympy.sympify(buf.nbytes))


@functools.lru_cache(maxsize=16384)
def _whole_lines(nbytes):
    """nbytes rounded up to whole lines: itself when each term is a multiple of the line over
    integer factors (`256*n*h*w`, most activations); building sympy's ceiling first costs ~10 ms
    a size (its evaluation asks the assumptions of every term)."""
    if nbytes.is_Integer:
        return -(-int(nbytes) // ALIGN) * ALIGN
    if all(_whole_line_term(t) for t in sympy.Add.make_args(nbytes)):
        return nbytes
    return simplify_dim(_aligned(nbytes))


def _whole_line_term(term):
    coeff, rest = term.as_coeff_Mul()
    return coeff.is_Integer and int(coeff) % ALIGN == 0 and integer_valued(rest)


def plan_slots(program):
    """Assign workspace offsets to temporaries; returns (planned bytes, naive bytes)."""
    liveness(program)
    temps = live_temps(program)
    sizes = {b.id: buffer_size(b) for b in temps}
    values = {b.id: typical(sizes[b.id]) for b in temps}
    totals = [max(1, sum(values[b.id][i] for b in temps)) for i in range(len(_points(values)))]

    def weight(vector):  # a size as a share of all temporaries, summed over the typical points
        return sum(float(x) / t for x, t in zip(vector, totals))

    slots = []
    for b in sorted(temps, key=lambda b: (-weight(values[b.id]), b.first, b.id)):
        size, value = sizes[b.id], values[b.id]
        best, best_cost = None, None
        first, last = b.first, b.last
        for slot in slots:
            for start, end in slot.spans:
                if not (end < first or last < start):
                    break
            else:  # free during b's life: what it would grow and waste, weighed
                # (weight() of the positive and negative parts, written out: ~a third of the
                # plan's time went to the generators; zero terms add nothing to the sums)
                grow = waste = 0
                for v, s, t in zip(value, slot.value, totals):
                    if v > s:
                        grow += float(v - s) / t
                    elif s > v:
                        waste += float(s - v) / t
                if best is None or (grow, waste) < best_cost:
                    best, best_cost = slot, (grow, waste)
        if best is None:
            slots.append(_Slot(b, size, value))
        else:
            best.take(b, size, value)
    # Sums of expanded sizes are expanded already: expanding each running offset again cost a
    # quadratic amount of sympy work (seconds for a CNN compiled for symbolic shapes).
    offset = sympy.Integer(0)
    program.workspace_slots = []
    for slot in slots:
        for b in slot.buffers:
            b.offset = _as_dim(offset)
        size = max_of(slot.parts)
        program.workspace_slots.append((_as_dim(offset), _as_dim(size)))
        offset = offset + size
    program.workspace_bytes = _as_dim(offset)
    naive = sympy.Add(*(sizes[b.id] for b in temps))  # (one Add: a running sum is quadratic)
    return program.workspace_bytes, _as_dim(naive)


def _points(values):
    return next(iter(values.values()), ())


def _as_dim(expr):
    expr = sympy.sympify(expr)
    return int(expr) if expr.is_Integer else expr
