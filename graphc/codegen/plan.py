"""The target-neutral half of compiling: the optimized graph lowered to a kernel Program, with
its memory planned (what every compiling target renders, and what AOT export renders)."""
from ..config import config
from ..errors import CompileError
from ..ir.types import simplify_dim, size_of
from .lower import lower_program
from .memplan import check_plan, plan_memory
from .program import DTYPE_BYTES


def build_program(fgraph, checker, capabilities):
    """Lower and plan: the target-independent program for this graph (`capabilities`: the
    target's, for the few choices that change the kernel sequence)."""
    unbound = set()
    for node in fgraph.nodes:
        for v in node.outputs:
            for d in fgraph.dims.shape(v):
                if not isinstance(d, int):
                    unbound |= {s for s in d.free_symbols if s not in checker.symbols}
    if unbound:
        raise CompileError(f"the sizes {sorted(map(str, unbound))} cannot be determined from the "
                           "function's inputs; give them a concrete size or tie them to an input")
    program = lower_program(fgraph, checker.symbols, capabilities)
    n = fgraph.n_user_outputs
    pairs = [(program.output_buffers[n + j], program.externals[len(fgraph.inputs) + fgraph.shareds.index(sv)])
             for j, sv in enumerate(fgraph.update_targets)]
    plan_memory(program, pairs)
    if config.check_plans:
        check_plan(program)
    return program


def naive_bytes(fgraph):
    """Bytes a naive executor holds: every intermediate value of the graph as the user wrote it
    (before fusion), each in its own buffer. The baseline the memory plan is measured against."""
    total = 0
    for node in fgraph.nodes:
        for o in node.outputs:
            total = total + size_of(fgraph.dims.shape(o)) * DTYPE_BYTES[o.dtype]
    return simplify_dim(total)


def note_naive_bytes(program, fgraph):
    """Record the naive baseline of the graph as written in `program` (for dumps and tests)."""
    naive = naive_bytes(fgraph)
    program.graph_naive_bytes = naive
    program.plan_notes.append(
        f"memory: every intermediate of the graph as written, kept apart: {naive} bytes")
