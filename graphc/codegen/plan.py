"""The target-neutral half of compiling: the optimized graph lowered to a kernel Program, with
its memory planned (what every compiling target renders, and what AOT export renders)."""
import contextlib

from ..config import config
from ..errors import CompileError
from ..ir.graph import LazyText
from ..ir.types import simplify_dim, size_of
from .lower import lower_program
from .memplan import check_plan, plan_memory
from .program import DTYPE_BYTES


def build_program(fgraph, checker, capabilities, stage=None):
    """Lower and plan: the target-independent program for this graph (`capabilities`: the
    target's, for the few choices that change the kernel sequence). `stage(name)`, when given,
    is a context manager that times the stages "lower" and "plan" (the compiler's timings)."""
    stage = stage or _untimed
    unbound = set()
    for node in fgraph.nodes:
        for v in node.outputs:
            for d in fgraph.dims.shape(v):
                if not isinstance(d, int):
                    unbound |= {s for s in d.free_symbols if s not in checker.symbols}
    if unbound:
        raise CompileError(f"the sizes {sorted(map(str, unbound))} cannot be determined from the "
                           "function's inputs; give them a concrete size or tie them to an input")
    with stage("lower"):
        program = lower_program(fgraph, checker.symbols, capabilities)
    n = fgraph.n_user_outputs
    pairs = [(program.output_buffers[n + j], program.externals[len(fgraph.inputs) + fgraph.shareds.index(sv)])
             for j, sv in enumerate(fgraph.update_targets)]
    with stage("plan"):
        plan_memory(program, pairs)
        if config.check_plans:
            check_plan(program)
    return program


@contextlib.contextmanager
def _untimed(name):
    yield


def naive_bytes(fgraph):
    """Bytes a naive executor holds: every intermediate value of the graph as the user wrote it
    (before fusion), each in its own buffer. The baseline the memory plan is measured against."""
    total = 0
    for node in fgraph.nodes:
        for o in node.outputs:
            total = total + size_of(fgraph.dims.shape(o)) * DTYPE_BYTES[o.dtype]
    return simplify_dim(total)


class _GraphNaiveBytes:
    """naive_bytes of a graph, summed when first asked: only dumps and tests read it, and on a
    ResNet the sum of every intermediate's symbolic size took ~8 % of a cold compile."""

    def __init__(self, fgraph):
        self.fgraph, self.value = fgraph, None

    def __call__(self):
        if self.fgraph is not None:
            self.value, self.fgraph = naive_bytes(self.fgraph), None
        return self.value

    def __reduce__(self):  # pickled as its value (the graph stays behind)
        return (_known, (self(),))


def _known(value):
    lazy = _GraphNaiveBytes(None)
    lazy.value = value
    return lazy


def _naive_note(lazy):
    return f"memory: every intermediate of the graph as written, kept apart: {lazy()} bytes"


def note_naive_bytes(program, fgraph):
    """Record the naive baseline of the graph as written in `program` (for dumps and tests):
    program.graph_naive_bytes, computed when first read."""
    program.graph_naive = lazy = _GraphNaiveBytes(fgraph)
    program.plan_notes.append(LazyText(_naive_note, lazy))
