"""The C target's steps for the compiler driver: render, build, load, and the artifact cache
(artifact_target.py, shared with the CUDA target)."""
import shutil

from ...config import config
from ..base import Target
from .artifact_target import ArtifactCacheTarget, built_library
from .capabilities import C_CAPABILITIES
from .fastcall import prebuild_in_background
from .loader import CProgram


class CTarget(ArtifactCacheTarget, Target):
    name = "c"
    capabilities = C_CAPABILITIES

    def available(self):
        return shutil.which(config.cc) is not None

    def prepare(self, fgraph):
        # Both run gcc while Python optimizes, lowers and renders: the runtime library (when the
        # graph has products) and the fast call path's extension (once per machine).
        from . import runtime_lib  # (the build half: not imported by a warm compile, which loads)
        runtime_lib.prepare_for(fgraph)
        prebuild_in_background()

    def executable_from_artifact(self, record, lib_path, graph, rebuild):
        return CProgram(None, None, lib_path, graph, layout=record["layout"], rebuild=rebuild)

    def render(self, program, name):
        from .render_c import render_units  # (jinja2, ~50 ms to import: not on a warm compile)
        from .toolchain import blas_info, max_parallel_units
        return render_units(program, name, blas_info()[3], max_parallel_units())

    def build(self, sources, program, name):
        # (prepare() started finding or building the runtime library before optimizing)
        from . import runtime_lib
        from .cache import cached_library
        link = [runtime_lib.library_path()]  # (every program: its thread choice lives there)
        lib_path, hit, digest = cached_library(sources, name, link)
        return built_library(lib_path, hit, digest, link)

    def load(self, program, sources, built, fgraph):
        source = "\n".join(sources)  # for inspection (dump, G.debugprint): units one after another
        executable = CProgram(program, source, built.path, fgraph)
        executable.lib_sha256, executable.links = built.sha256, built.links
        return executable
