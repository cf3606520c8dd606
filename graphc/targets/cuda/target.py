"""The CUDA target's steps for the compiler driver: render (templates/cuda/), build (nvcc, or g++
with the CPU execution model under GRAPHC_CUDA_EMULATE=1), load (CudaProgram), and the C
target's artifact cache (a warm compile in a new process only loads the library)."""
from ..base import Target
from ..c.artifact_target import ArtifactCacheTarget, built_library
from ..c.capabilities import CCapabilities
from . import availability, toolchain



class CudaCapabilities(CCapabilities):
    """Lowering asks for the conv algorithm (the same choice as the C target's). No im2col
    budget: templates/cuda has no conv_chunked* kernels yet, so convolutions lower to the
    whole-batch im2col kernels (codegen/lower_cnn.py reads a missing budget as no chunks)."""
    __slots__ = ()
    conv_workspace_bytes = None


CUDA_CAPABILITIES = CudaCapabilities(artifact_cache=True)


class CudaTarget(ArtifactCacheTarget, Target):
    name = "cuda"
    capabilities = CUDA_CAPABILITIES
    library_area = ("cuda",)

    def available(self):
        return not availability.missing()

    def prepare(self, fgraph):
        availability.require()  # at G.function, naming what is missing
        availability.start_device()

    def cache_variant(self):
        # Asked before prepare() (a warm compile never reaches it): the same checks, and the
        # device's architecture, which the library's SASS is built for.
        self.prepare(None)
        return "emulated" if toolchain.emulating() else availability.device_arch()

    def executable_from_artifact(self, record, lib_path, graph, rebuild):
        from .executable import CudaProgram
        if "cublas" in record["loads"] and not toolchain.emulating():
            availability.load_cublas()
        return CudaProgram(None, None, lib_path, graph, layout=record["layout"], rebuild=rebuild)

    def render(self, program, name):
        from ..c.toolchain import max_parallel_units
        from .render_cuda import render_units
        return render_units(program, name, max_parallel_units())

    def build(self, sources, program, name):
        from ..c.cache import cached_library
        from ..c.render_c import gemm_prefixes
        arch = availability.device_arch()
        link, loads = [], []
        if gemm_prefixes(program.kernels):
            if toolchain.emulating():  # the wrappers call the C target's BLAS helpers
                from ..c import runtime_lib
                link = [runtime_lib.library_path()]
            else:
                availability.load_cublas()
                loads = ["cublas"]

        def build_one(source_paths, out_path, link):
            toolchain.build_units(source_paths, out_path, link, arch)

        path, hit, digest = cached_library(sources, name, link, area=self.library_area,
                                           build=build_one, suffix=".cu",
                                           key_material=toolchain.cache_key_material(arch))
        built = built_library(path, hit, digest, link)
        built.loads = loads
        return built

    def load(self, program, sources, built, fgraph):
        from .executable import CudaProgram
        executable = CudaProgram(program, "\n".join(sources), built.path, fgraph)
        executable.lib_sha256, executable.links = built.sha256, built.links
        executable.loads = built.loads
        return executable
