"""compile_c: FunctionGraph -> lowered Program -> C source -> cached library -> CProgram."""
import time

from ..errors import CompileError
from .cache import cached_library
from .c_capabilities import C_CAPABILITIES
from .lower import lower_program
from ..config import config
from .memplan import check_plan, plan_memory
from . import runtime_lib
from .render_c import gemm_prefixes, render_units
from .toolchain import blas_info, max_parallel_units


def build_program(fgraph, checker):
    """Lower and plan: the target-independent program for this graph."""
    unbound = set()
    for node in fgraph.nodes:
        for v in node.outputs:
            for d in fgraph.dims.shape(v):
                if not isinstance(d, int):
                    unbound |= {s for s in d.free_symbols if s not in checker.symbols}
    if unbound:
        raise CompileError(f"the sizes {sorted(map(str, unbound))} cannot be determined from the "
                           "function's inputs; give them a concrete size or tie them to an input")
    program = lower_program(fgraph, checker.symbols, C_CAPABILITIES)
    n = fgraph.n_user_outputs
    pairs = [(program.output_buffers[n + j], program.externals[len(fgraph.inputs) + fgraph.shareds.index(sv)])
             for j, sv in enumerate(fgraph.update_targets)]
    plan_memory(program, pairs)
    if config.check_plans:
        check_plan(program)
    return program


def compile_c(fgraph, checker, name, timings):
    from ..runtime.cbackend import CProgram
    from ..runtime.fastcall import prebuild_in_background
    prebuild_in_background()
    t = time.perf_counter()
    program = build_program(fgraph, checker)
    timings["lower"] = time.perf_counter() - t
    t = time.perf_counter()
    sources = render_units(program, name, blas_info()[3], max_parallel_units())
    timings["render"] = time.perf_counter() - t
    t = time.perf_counter()
    # (graphc.function started finding or building it before optimizing the graph)
    link = [runtime_lib.library_path()] if gemm_prefixes(program.kernels) else []
    lib_path, hit = cached_library(sources, name, link)
    timings["build"] = time.perf_counter() - t
    timings["cache_hit"] = hit
    t = time.perf_counter()
    source = "\n".join(sources)  # for inspection (dump, G.debugprint): units one after another
    runner = CProgram(program, source, lib_path, fgraph)
    timings["load"] = time.perf_counter() - t
    return runner
