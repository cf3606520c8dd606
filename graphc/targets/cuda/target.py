"""The CUDA target's steps for the compiler driver: render (templates/cuda/), build (nvcc, or g++
with the CPU execution model under GRAPHC_CUDA_EMULATE=1), load (CudaProgram)."""
from ..base import Built, Target
from ..c.capabilities import CCapabilities
from . import availability, toolchain



class CudaCapabilities(CCapabilities):
    """Lowering asks for the conv algorithm (the same choice as the C target's). No im2col
    budget: templates/cuda has no conv_chunked* kernels yet, so convolutions lower to the
    whole-batch im2col kernels (codegen/lower_cnn.py reads a missing budget as no chunks)."""
    __slots__ = ()
    conv_workspace_bytes = None


# No artifact cache yet: a warm compile re-renders and finds the library in the build cache.
CUDA_CAPABILITIES = CudaCapabilities(artifact_cache=False)


class CudaTarget(Target):
    name = "cuda"
    capabilities = CUDA_CAPABILITIES

    def available(self):
        return not availability.missing()

    def prepare(self, fgraph):
        availability.require()  # at G.function, naming what is missing
        availability.start_device()

    def render(self, program, name):
        from .render_cuda import render_program
        return [render_program(program, name)]

    def build(self, sources, program, name):
        from ..c.cache import cached_library
        from ..c.render_c import gemm_prefixes
        arch = availability.device_arch()
        link = []
        if gemm_prefixes(program.kernels):
            if toolchain.emulating():  # the wrappers call the C target's BLAS helpers
                from ..c import runtime_lib
                link = [runtime_lib.library_path()]
            else:
                availability.load_cublas()

        def build_one(source_paths, out_path, link):
            toolchain.build(source_paths[0], out_path, link, arch)

        path, hit, _ = cached_library(sources, name, link, area=("cuda",), build=build_one,
                                      key_material=toolchain.cache_key_material(arch),
                                      suffix=".cu")
        return Built(path, hit)

    def load(self, program, sources, built, fgraph):
        from .executable import CudaProgram
        return CudaProgram(program, "\n".join(sources), built.path, fgraph)
