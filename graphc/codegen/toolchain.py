"""The C toolchain: gcc with OpenMP, linked to the BLAS that ships as a Python package."""
import functools
import os
import subprocess

from ..config import config
from ..errors import CompileError


@functools.lru_cache(maxsize=None)
def blas_info():
    """(include dir, lib dir, library name, symbol prefix) of the BLAS to link for gemm."""
    try:
        import scipy_openblas32 as sob
        return sob.get_include_dir(), sob.get_lib_dir(), sob.get_library(), "scipy_"
    except ImportError as e:
        raise CompileError("graphc needs an optimized BLAS for gemm: pip install scipy-openblas32") from e


@functools.lru_cache(maxsize=None)
def compiler_version():
    try:
        out = subprocess.run([config.cc, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise CompileError(f"cannot run the C compiler {config.cc!r}: {e}; install gcc or set CC") from e
    return out.stdout.splitlines()[0]


def cflags():
    inc, lib, name, _ = blas_info()
    return ["-O3", "-march=native", "-std=gnu11", "-fPIC", "-fopenmp", "-fno-math-errno",
            "-fno-trapping-math", "-Wno-unused-variable", "-Wno-unused-but-set-variable",
            f"-I{inc}"] + list(config.extra_cflags)


def ldflags():
    inc, lib, name, _ = blas_info()
    return [f"-L{lib}", f"-l{name}", f"-Wl,-rpath,{lib}"] + _mvec() + ["-lm"]


@functools.lru_cache(maxsize=None)
def _mvec():
    """glibc's vector math library, when the C library has it (see gc_runtime.h)."""
    import ctypes.util
    return ["-lmvec"] if ctypes.util.find_library("mvec") else []


def build_shared_library(source_path, out_path):
    cmd = [config.cc] + cflags() + ["-shared", source_path, "-o", out_path] + ldflags()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError(f"C compilation failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}\n"
                           f"The generated source is kept at {source_path}; set GRAPHC_DUMP=dir to "
                           "see every stage.")
    return out_path


def cache_key_material():
    return "\n".join([compiler_version(), " ".join(cflags()), " ".join(ldflags()),
                      os.uname().machine])
