"""The C toolchain: gcc with OpenMP, linked to the BLAS that ships as a Python package."""
import functools
import os
import subprocess
import sys

from ...config import config
from ...errors import CompileError
from . import runtime_build
from .runtime_build import BASE_CFLAGS, BLAS_SYMBOL_PREFIX


@functools.lru_cache(maxsize=None)
def blas_info():
    """(include dir, lib dir, library name, symbol prefix) of the BLAS to link for gemm."""
    found = _openblas_files()
    if found is not None:
        return found + (BLAS_SYMBOL_PREFIX,)
    try:
        import scipy_openblas32 as sob
        return sob.get_include_dir(), sob.get_lib_dir(), sob.get_library(), BLAS_SYMBOL_PREFIX
    except ImportError as e:
        raise CompileError("graphc needs an optimized BLAS for gemm: pip install scipy-openblas32") from e


def _openblas_files():
    """scipy_openblas32's (include dir, lib dir, link name) read off its files, as its
    get_include_dir/get_lib_dir/get_library give them, without importing it: its __init__ reads
    its version through importlib.metadata (which imports email), ~0.1 s of every cold compile.
    None when it is not laid out that way (the import then decides)."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("scipy_openblas32")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or sys.platform == "win32":
        return None
    here = os.path.dirname(os.path.realpath(spec.origin))
    lib = os.path.join(here, "lib")
    try:
        libs = [x for x in os.listdir(lib) if x.startswith("libscipy_openblas")]  # (its order)
    except OSError:
        return None
    if not libs or not os.path.isdir(os.path.join(here, "include")):
        return None
    return os.path.join(here, "include"), lib, os.path.splitext(libs[0])[0][3:]


@functools.lru_cache(maxsize=None)
def compiler_version():
    try:
        return runtime_build.compiler_version(config.cc)
    except (OSError, subprocess.CalledProcessError) as e:
        raise CompileError(f"cannot run the C compiler {config.cc!r}: {e}; install gcc or set CC") from e


def cflags():
    inc, lib, name, _ = blas_info()
    return BASE_CFLAGS + [f"-I{inc}"] + list(config.extra_cflags)


def ldflags():
    inc, lib, name, _ = blas_info()
    # Always a dependency, even of a program whose products all go through the runtime library
    # (gcc links --as-needed by default on some systems): that library's BLAS calls resolve to it.
    return [f"-L{lib}", "-Wl,--push-state,--no-as-needed", f"-l{name}", "-Wl,--pop-state",
            f"-Wl,-rpath,{lib}"] + _mvec() + ["-lm"]


@functools.lru_cache(maxsize=None)
def _mvec():
    """glibc's vector math library, when the C library has it (see gc_runtime.h)."""
    import ctypes.util
    return ["-lmvec"] if ctypes.util.find_library("mvec") else []


def build_shared_library(source_paths, out_path, link=()):
    """Compile the translation units (in parallel, one gcc each) and link them into `out_path`,
    with the shared libraries at the paths `link` (recorded by absolute path: they have no soname,
    so the loader finds them without a search path)."""
    libs = [os.path.abspath(path) for path in link]
    if len(source_paths) == 1:
        _run([config.cc] + cflags() + ["-shared", source_paths[0], "-o", out_path] + libs
             + ldflags(), source_paths)
        return out_path
    objects = [f"{out_path}.{i}.o" for i in range(len(source_paths))]
    try:
        procs = [(subprocess.Popen([config.cc] + cflags() + ["-c", src, "-o", obj],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), src)
                 for src, obj in zip(source_paths, objects)]
        errors = [(proc, proc.communicate()[1], src) for proc, src in procs]  # wait for all
        for proc, err, src in errors:
            if proc.returncode != 0:
                _fail(proc.args, err, [src])
        _run([config.cc, "-shared", "-fopenmp"] + _fast_linker() + objects + ["-o", out_path]
             + libs + ldflags(), source_paths)
    finally:
        for obj in objects:
            if os.path.exists(obj):
                os.unlink(obj)
    return out_path


@functools.lru_cache(maxsize=None)
def _fast_linker():
    """gold links the units in ~0.03 s where GNU ld takes ~0.05 s; used when installed."""
    import shutil
    return ["-fuse-ld=gold"] if shutil.which("ld.gold") else []


def _run(cmd, source_paths):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        _fail(cmd, proc.stderr, source_paths)


def _fail(cmd, stderr, source_paths):
    raise CompileError(f"C compilation failed ({' '.join(cmd)}):\n{stderr[-4000:]}\n"
                       f"The generated source is kept at {', '.join(source_paths)}; set "
                       "GRAPHC_DUMP=dir to see every stage.")


def max_parallel_units():
    """How many translation units to compile at once: the CPUs this process may use, or
    GRAPHC_COMPILE_JOBS."""
    if config.compile_jobs:
        return config.compile_jobs
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cache_key_material():
    return "\n".join([compiler_version(), " ".join(cflags()), " ".join(ldflags()),
                      os.uname().machine])
