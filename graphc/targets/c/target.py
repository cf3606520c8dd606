"""The C target's steps for the compiler driver: render, build, load, and the artifact cache."""
import pickle
import shutil

from . import artifacts, runtime_lib
from .cache import cached_library
from .render_c import gemm_prefixes, render_units
from .toolchain import blas_info, max_parallel_units
from ...config import config
from ..base import Built, Target
from .capabilities import C_CAPABILITIES
from .fastcall import prebuild_in_background
from .loader import CProgram


class CTarget(Target):
    name = "c"
    capabilities = C_CAPABILITIES

    def available(self):
        return shutil.which(config.cc) is not None

    def prepare(self, fgraph):
        # Both run gcc while Python optimizes, lowers and renders: the runtime library (when the
        # graph has products) and the fast call path's extension (once per machine).
        runtime_lib.prepare_for(fgraph)
        prebuild_in_background()

    def cache_key(self, fgraph, opt_level):
        return artifacts.graph_signature(fgraph, self.name, opt_level)

    def load_artifact(self, key):
        return artifacts.load(key)

    def save_artifact(self, key, record):
        artifacts.save(key, record)

    def artifact_record(self, executable):
        return {"program_bytes": pickle.dumps(executable.program, protocol=pickle.HIGHEST_PROTOCOL),
                "layout": executable.layout, "source": executable.source,
                "lib_path": executable.lib_path}

    def from_artifact(self, record, graph):
        return CProgram(None, record["source"], record["lib_path"], graph,
                        layout=record["layout"], program_bytes=record["program_bytes"])

    def render(self, program, name):
        return render_units(program, name, blas_info()[3], max_parallel_units())

    def build(self, sources, program, name):
        # (prepare() started finding or building the runtime library before optimizing)
        link = [runtime_lib.library_path()] if gemm_prefixes(program.kernels) else []
        lib_path, hit = cached_library(sources, name, link)
        return Built(lib_path, hit)

    def load(self, program, sources, built, fgraph):
        source = "\n".join(sources)  # for inspection (dump, G.debugprint): units one after another
        return CProgram(program, source, built.path, fgraph)
