"""The C target's steps for the compiler driver: render, build, load, and the artifact cache."""
import os
import shutil

from . import artifact_record, artifacts
from ...config import config
from ..base import Built, Target
from .capabilities import C_CAPABILITIES
from .fastcall import prebuild_in_background
from .cache_trust import file_digest, private_dir
from .loader import CProgram, library_matches


class CTarget(Target):
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

    def cache_key(self, fgraph, opt_level):
        return artifacts.graph_signature(fgraph, self.name, opt_level)

    def load_artifact(self, key):
        return artifacts.load(key)

    def save_artifact(self, key, record):
        try:
            text = artifact_record.encode(**record)
        except artifact_record.Unencodable:  # an output size the record cannot hold as data
            return
        artifacts.save(key, text)

    def artifact_record(self, executable):
        return {"layout": executable.layout,
                "lib_key": os.path.basename(executable.lib_path)[:-len(".so")],
                "lib_sha256": executable.lib_sha256, "links": executable.links}

    def from_artifact(self, record, graph, rebuild):
        key = record["lib_key"]
        lib_path = os.path.join(private_dir(key[:2]), f"{key}.so")
        if not library_matches(lib_path, record["lib_sha256"], record["links"]):
            return None
        return CProgram(None, None, lib_path, graph, layout=record["layout"], rebuild=rebuild)

    def render(self, program, name):
        from .render_c import render_units  # (jinja2, ~50 ms to import: not on a warm compile)
        from .toolchain import blas_info, max_parallel_units
        return render_units(program, name, blas_info()[3], max_parallel_units())

    def build(self, sources, program, name):
        # (prepare() started finding or building the runtime library before optimizing)
        from . import runtime_lib
        from .cache import cached_library
        from .render_c import gemm_prefixes
        link = [runtime_lib.library_path()] if gemm_prefixes(program.kernels) else []
        lib_path, hit, digest = cached_library(sources, name, link)
        built = Built(lib_path, hit)
        built.sha256 = digest
        # A record checks the runtime library too when it is in the cache (the package's copy is
        # trusted as the package is).
        built.links = [(path, file_digest(path)) for path in link
                       if os.path.abspath(path).startswith(os.path.abspath(config.cache_dir) + os.sep)]
        return built

    def load(self, program, sources, built, fgraph):
        source = "\n".join(sources)  # for inspection (dump, G.debugprint): units one after another
        executable = CProgram(program, source, built.path, fgraph)
        executable.lib_sha256, executable.links = built.sha256, built.links
        return executable
