"""Render a Program as CUDA from templates/cuda/ (jinja2): one .cu holding every kernel's
__global__ function(s) and the host launcher `gc_run` that launches them all in one call.

The scalar bodies, sizes and types are printed by the C target's filters (render_c.C_FILTERS):
the C printer's output is valid CUDA device code (templates declare temporaries with `auto`).
A kernel kind without templates/cuda/<kind>.cu.j2 is refused by name before anything renders."""
from functools import lru_cache

from ...errors import CompileError
from ..c.cache_trust import check_file, private_dir
from ..c.cprinter import int_to_c
from ..c.jinja_env import make_environment
from ..c.render_c import C_FILTERS, _BufView, _all_kernels, gemm_prefixes
from ..c.size_bound import size_checks
from ..c.templates_dir import templates_root

CUDA_FILTERS = dict(C_FILTERS)
# The entry point's name: `<prefix>run`; kernels are `<prefix>k<index>`.
ENTRY_PREFIX = "gc_"


@lru_cache(maxsize=None)
def environment():
    return make_environment(templates_root(), private_dir("jinja-cuda"), None,
                            filters=CUDA_FILTERS, check_file=check_file)


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


def render_program(program, name, env=None):
    """The whole program as one CUDA source (`env`: another jinja environment, for tests)."""
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
        gemm_prefixes=gemm_prefixes(program.kernels))
