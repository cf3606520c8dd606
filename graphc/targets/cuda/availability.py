"""What the CUDA target needs on this machine, and what is missing: asked by the test fixture
(available) and by G.function(target="cuda") (require), never at import."""
import ctypes
import ctypes.util
import functools
import glob
import os
import shutil
import sys

from ...errors import GraphcError
from . import toolchain


class CudaUnavailableError(GraphcError, RuntimeError):
    """target='cuda' was asked for on a machine that cannot run it."""


def missing():
    """Names of what this machine lacks for the CUDA target (empty: it can run)."""
    if toolchain.emulating():
        return [] if shutil.which("g++") else ["g++ (GRAPHC_CUDA_EMULATE=1 compiles CUDA as C++)"]
    return list(_missing_for_gpu())


@functools.lru_cache(maxsize=None)
def _missing_for_gpu():
    out = []
    if toolchain.nvcc_path() is None:
        out.append("nvcc (the CUDA toolkit; set CUDA_HOME)")
    try:
        import pycuda.driver as drv  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or an OSError when libcuda is absent
        out.append("pycuda (pip install pycuda)")
        if ctypes.util.find_library("cuda") is None:
            out.append("the NVIDIA driver (libcuda)")
        return tuple(out)
    try:
        drv.init()
        if drv.Device.count() == 0:
            out.append("a CUDA device (the driver sees none)")
    except Exception as e:  # noqa: BLE001 - pycuda raises its own error types
        out.append(f"a working NVIDIA driver and device ({type(e).__name__}: {e})")
    return tuple(out)


def require():
    """Raise CudaUnavailableError naming what is missing."""
    lacking = missing()
    if lacking:
        raise CudaUnavailableError(
            "target cuda cannot run on this machine: missing " + ", ".join(lacking) +
            ". Use target='c' for the CPU, or set GRAPHC_CUDA_EMULATE=1 to run the CUDA code on "
            "the CPU's execution model (slow, for tests).")


_context = []


def start_device():
    """On a GPU: pycuda's primary context of device 0, current in this thread (the CUDA runtime
    in graphc's libraries uses the same primary context). Once per process."""
    if toolchain.emulating() or _context:
        return
    import pycuda.driver as drv
    drv.init()
    ctx = drv.Device(int(os.environ.get("GRAPHC_CUDA_DEVICE", "0"))).retain_primary_context()
    ctx.push()
    _context.append(ctx)


def device_arch():
    """sm_XY of the device in use (nvcc builds SASS for it), or the default without a device."""
    if toolchain.emulating() or not _context:
        return toolchain.DEFAULT_ARCH
    major, minor = _context[0].get_device().compute_capability()
    return f"sm_{major}{minor}"


@functools.lru_cache(maxsize=None)
def load_cublas():
    """Load libcublas globally (the programs look its entry points up by name): NVIDIA's
    nvidia-cublas wheel first, then the CUDA toolkit's and the system's."""
    candidates = []
    for base in sys.path:
        candidates += sorted(glob.glob(os.path.join(base, "nvidia", "cublas", "lib", "libcublas.so*")))
    lib_dir = toolchain.cuda_lib_dir()
    if lib_dir:
        candidates += sorted(glob.glob(os.path.join(lib_dir, "libcublas.so*")))
    found = ctypes.util.find_library("cublas")
    if found:
        candidates.append(found)
    for path in candidates:
        try:
            return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
    raise CudaUnavailableError("target cuda: this function multiplies matrices and cuBLAS was not "
                               "found; pip install nvidia-cublas (or install the CUDA toolkit's "
                               "cuBLAS)")
