"""Render a Program as CUDA from templates/cuda/ (jinja2): one .cu holding every kernel's
device function(s) and the host launcher `gc_run` that launches them all in one call, or,
for a parallel build, several .cu units holding contiguous segments (render_units).

The scalar bodies, sizes and types are printed by the C target's filters (render_c.C_FILTERS):
the C printer's output is valid CUDA device code (templates declare temporaries with `auto`).
A kernel kind without templates/cuda/<kind>.cu.j2 is refused by name before anything renders.

With racecheck (GRAPHC_CUDA_RACECHECK=1, emulated builds only) the templates render checked
pointers and a wrapped gc_run for templates/cuda/gc_cuda_racecheck.h; without it they render the
real build's source, unchanged by the checker."""
from functools import lru_cache

from ...errors import CompileError
from ..c.cache_trust import check_file, private_dir
from ..c.cprinter import C_TYPES, int_to_c
from ..c.jinja_env import make_environment
from ..c.render_c import C_FILTERS, _BufView, _all_kernels, gemm_prefixes, plan_segments
from ..c.size_bound import size_checks
from ..c.templates_dir import templates_root
from .vectorize import vector_width

CUDA_FILTERS = dict(C_FILTERS, vector_width=vector_width)
# The entry point's name: `<prefix>run`; kernels are `<prefix>k<index>`.
ENTRY_PREFIX = "gc_"
# nvcc's cost of a unit (nvcc --time, default host optimization, sm_90 SASS + PTX, a loaded
# 2-core machine): ~5.3 s whatever it holds (preprocessing and cudafe++ of the CUDA headers, cicc
# and the host compile of the runtime header), then ~0.1 s per kernel of the MLP step and ~0.2 s
# per kernel of LeNet's (7.7 s for the 25 kernels of the MLP step, 17 s for LeNet's 58). A unit
# of fewer kernels than this adds more processor time than it takes off the wall clock.
MIN_UNIT_KERNELS = 12


@lru_cache(maxsize=None)
def environment(racecheck=False):
    """The CUDA templates' environment; `racecheck`: the race checker's build (the templates'
    global of that name)."""
    env = make_environment(templates_root(), private_dir("jinja-cuda"), None,
                           filters=CUDA_FILTERS, check_file=check_file)
    env.globals["racecheck"] = racecheck
    return env


def template_kinds(env=None):
    """The kernel kinds that have a CUDA template (templates/cuda/<kind>.cu.j2)."""
    names = (env or environment()).list_templates(
        filter_func=lambda n: n.startswith("cuda/") and n.endswith(".cu.j2"))
    return {n[len("cuda/"):-len(".cu.j2")] for n in names
            if not n[len("cuda/"):].startswith(("_", "program", "device_lib"))}


def check_kinds(program, env=None):
    """A clear error naming the first kernel the CUDA target has no template for."""
    kinds = template_kinds(env)
    for k in _all_kernels(program.kernels):
        if k.kind not in kinds:
            raise CompileError(
                f"target cuda cannot compile {k.kind} (op {k.label or '?'}) yet: there is no "
                f"templates/cuda/{k.kind}.cu.j2; compile this function for the CPU "
                "(target='c') or leave this op out of the graph")


def render_program(program, name, env=None, extra=None):
    """The whole program as one CUDA source (`env`: another jinja environment, for tests; `extra`:
    more template context, as profile=True for the profiling build: cuda/profiling.py)."""
    env = env or environment()
    check_kinds(program, env)
    used = {b.id for k in program.kernels for b in k.buffers}
    externals = [_BufView(b) for b in program.externals]
    temps = [_BufView(b) for b in program.buffers if b.role == "temp" and b.id in used]
    template = env.get_template("cuda/program.cu.j2")
    return template.render(
        name=name, prefix=ENTRY_PREFIX,
        dim_names=[s.name for s in program.dim_symbols],
        workspace_bytes=int_to_c(program.workspace_bytes),
        seq_buffers=externals + temps, seq_kernels=list(enumerate(program.kernels)),
        size_checks=size_checks(program, program.kernels),
        gemm_prefixes=gemm_prefixes(program.kernels),
        racecheck_shared=[(b.slot, int_to_c(b.size), C_TYPES[b.dtype])
                          for b in program.externals if b.role == "shared"], **(extra or {}))


def render_racecheck(program, name):
    """The race checker's build of the program: one unit, checked pointers (emulated only)."""
    return [render_program(program, name, environment(racecheck=True))]


def _unit_cost(kernel):
    if kernel.kind == "loop":
        return sum(_unit_cost(k) for k in kernel.params["body"].kernels)
    return 1


@lru_cache(maxsize=None)
def _reports_errors(kind, env):
    """Whether the kind's template reports errors found in a kernel (defines error_message)."""
    return hasattr(env.get_template(f"cuda/{kind}.cu.j2").module, "error_message")


def render_units(program, name, max_units, env=None, min_unit_kernels=MIN_UNIT_KERNELS):
    """The program as a list of .cu translation units, built in parallel and linked into one
    library: contiguous segments of the kernels (one unit when splitting would not pay)."""
    env = env or environment()
    segments = plan_segments(program, max_units, _unit_cost, min_unit_kernels)
    if len(segments) == 1:
        return [render_program(program, name, env)]
    check_kinds(program, env)
    views = {b.id: _BufView(b) for b in program.buffers}
    template = env.get_template("cuda/program_unit.cu.j2")
    sources, fallible = [], False
    for u, seg in enumerate(segments):
        kernels = [program.kernels[ki] for ki in seg]
        used = {b.id: views[b.id] for k in kernels for b in k.buffers}
        sources.append(template.render(
            name=name, prefix=ENTRY_PREFIX, unit=u, n_units=len(segments),
            fallible_before=fallible, dim_names=[s.name for s in program.dim_symbols],
            seq_kernels=[(ki, program.kernels[ki]) for ki in seg],
            seq_buffers=sorted(used.values(), key=lambda v: v.id),
            workspace_bytes=int_to_c(program.workspace_bytes),
            size_checks=size_checks(program, program.kernels),
            gemm_prefixes=gemm_prefixes(kernels)))
        fallible = fallible or any(_reports_errors(k.kind, env) for k in kernels)
    return sources
