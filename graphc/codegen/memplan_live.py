"""Liveness over a kernel program, for the memory planner and its checker: each buffer lives from
the first to the last kernel that touches it (inclusive), and a loop kernel's body is a Program
of its own."""
from .program import Program


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


def live_temps(program):
    """The temporaries some kernel touches (liveness must be current)."""
    return [b for b in program.buffers if b.role == "temp" and b.first >= 0]
