"""The CUDA target's steps for the compiler driver: render (templates/cuda/), build (nvcc, or g++
with the CPU execution model under GRAPHC_CUDA_EMULATE=1), load (CudaProgram), and the C
target's artifact cache (a warm compile in a new process only loads the library)."""
import os

from ..base import Target
from ..c.artifact_target import ArtifactCacheTarget, built_library
from ..c.capabilities import CCapabilities
from . import availability, toolchain


# Bytes of device im2col workspace one convolution may use (the batch is cut into chunks of as
# many images as fit, at least one: the conv_chunked* templates). Larger than the C target's
# 32 MB: device memory is tens of GB, and fewer, wider chunks mean fewer launches and wider
# gemms; AlexNet's conv1 at batch 128 (~560 MB unchunked) still runs in three chunks.
CUDA_CONV_WORKSPACE_BYTES = 256 << 20


class CudaCapabilities(CCapabilities):
    """Lowering asks for the conv algorithm (the same choice as the C target's) and the im2col
    budget (GRAPHC_CONV_WORKSPACE, checked as on the C target, else the CUDA default)."""
    __slots__ = ()
    # A loop body's products go to cuBLAS: no operand is packed (_gemm_packed.j2 is the C target's).
    packs_loop_product = None
    # No CUDA templates for these C kernels (conv_winograd, conv_blocked*): lowering keeps the
    # chunked im2col + gemm convolutions for this target.
    winograd_pays = None
    blocked_conv_pays = None
    max_pool_without_argmax = False  # (no CUDA pool_max_value: pool_max, its argmax unread)

    @staticmethod
    def conv_workspace_bytes():
        if os.environ.get("GRAPHC_CONV_WORKSPACE", "").strip():
            return CCapabilities.conv_workspace_bytes()
        return CUDA_CONV_WORKSPACE_BYTES


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
        if toolchain.racechecking():
            return "emulated racecheck"
        return "emulated" if toolchain.emulating() else availability.device_arch()

    def executable_from_artifact(self, record, lib_path, graph, rebuild):
        from .executable import CudaProgram
        if "cublas" in record["loads"] and not toolchain.emulating():
            availability.load_cublas()
        return CudaProgram(None, None, lib_path, graph, layout=record["layout"], rebuild=rebuild)

    def render(self, program, name):
        from ..c.toolchain import max_parallel_units
        from .render_cuda import render_racecheck, render_units
        if toolchain.racechecking():
            return render_racecheck(program, name)
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
