"""Workspace layout for temporaries. `plan_naive` gives every temp its own slot; the liveness
planner (graphc.codegen.liveness) lets temps that never live at once share storage."""
import sympy

from ..ir.types import simplify_dim


def plan_naive(program):
    offset = sympy.Integer(0)
    for b in program.buffers:
        if b.role == "temp":
            b.offset = simplify_dim(offset)
            offset = offset + b.aligned_nbytes
    program.workspace_bytes = simplify_dim(offset)
    return program


def plan_memory(program):
    return plan_naive(program)
