"""The CUDA toolchain: nvcc for a real device (host code + SASS for the device's architecture +
PTX), or g++ with graphc's CPU execution model (GRAPHC_CUDA_EMULATE=1) for tests without a GPU."""
import functools
import os
import shutil
import subprocess

from ...errors import CompileError
from ..c.templates_dir import templates_root

DEFAULT_ARCH = "sm_90"
# No -O3: nvcc's -O is the host compiler's level, and the host code is only the launcher (the
# kernels get cicc's and ptxas's -O3 by default). Measured with nvcc --time on the MLP step
# (25 kernels): the host compile 3.2 s at -O3, 2.0 s at the default, of ~8.8 s in all.
# 177: a helper of gc_cuda_runtime.h the program does not call; 550: an external buffer the
# program does not touch (an output written in place into a shared variable).
_NVCC_QUIET = ["-diag-suppress=177,550"]


def emulating():
    """GRAPHC_CUDA_EMULATE=1: build and run CUDA programs on the CPU (read at each compile)."""
    return os.environ.get("GRAPHC_CUDA_EMULATE", "").strip().lower() not in ("", "0", "false", "no")


def racechecking():
    """GRAPHC_CUDA_RACECHECK=1 (with GRAPHC_CUDA_EMULATE=1): the emulated build checks every
    load and store of its kernels for data races and out-of-bounds accesses (templates/cuda/
    gc_cuda_racecheck.h). Read at each compile."""
    if os.environ.get("GRAPHC_CUDA_RACECHECK", "").strip().lower() in ("", "0", "false", "no"):
        return False
    if not emulating():
        raise CompileError(
            "GRAPHC_CUDA_RACECHECK=1 checks the emulated CUDA build only, but GRAPHC_CUDA_EMULATE "
            "is not set: set GRAPHC_CUDA_EMULATE=1 as well, or unset GRAPHC_CUDA_RACECHECK and run "
            "NVIDIA's compute-sanitizer --tool racecheck on a GPU")
    return True


def _emulation_flags():
    # A checked element is an object: a ?: whose other operand has another type converts it to
    # that type (`c ? part[i] : 0` would truncate a double to int), where a plain element would
    # not. g++ says so for floats; the templates convert such elements (_kernel.cu.j2's elem).
    return ["-DGC_RACECHECK=1", "-Werror=float-conversion"] if racechecking() else []


def nvcc_path():
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    path = os.path.join(home, "bin", "nvcc")
    return path if os.access(path, os.X_OK) else None


def emulator_header():
    return os.path.join(templates_root(), "cuda", "gc_cuda_emulate.h")


def racecheck_header():
    return os.path.join(templates_root(), "cuda", "gc_cuda_racecheck.h")


def _gencode(arch):
    """SASS for `arch` and PTX of the same level (a newer device JIT-compiles the PTX)."""
    number = arch.split("_", 1)[1]
    return [f"-gencode=arch=compute_{number},code=[sm_{number},compute_{number}]"]


def nvcc_compile_command(src, obj, arch=DEFAULT_ARCH):
    """Compile only (the tests on machines without a GPU run this)."""
    return [nvcc_path() or "nvcc", "-c", "-std=c++17", "-Xcompiler", "-fPIC"] + \
        _gencode(arch) + _NVCC_QUIET + [src, "-o", obj]


def build_command(src, out, link=(), arch=DEFAULT_ARCH):
    """The command that builds one .cu into a shared library, for a device or emulated."""
    libs = [os.path.abspath(path) for path in link]
    if emulating():
        return ["g++", "-x", "c++", "-std=c++17", "-O1", "-fPIC", "-shared"] + _emulation_flags() + \
            ["-include", emulator_header(), src, "-x", "none", "-o", out] + libs + _emulated_blas(libs) + \
            ["-lm"]
    rpath = [f"-Xlinker=-rpath={d}" for d in [cuda_lib_dir()] if d]
    return [nvcc_path() or "nvcc", "-std=c++17", "-shared", "-Xcompiler", "-fPIC",
            "--cudart", "shared"] + _gencode(arch) + _NVCC_QUIET + [src, "-o", out] + libs + \
        rpath + ["-ldl"]


def _emulated_blas(libs):
    """Emulated products call the C target's runtime library, which needs its BLAS linked."""
    if not libs:
        return []
    from ..c.toolchain import ldflags
    return ldflags()


def cuda_lib_dir():
    """Where libcudart is (the libraries nvcc builds load it from there)."""
    nvcc = nvcc_path()
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"),
             os.path.dirname(os.path.dirname(os.path.realpath(nvcc))) if nvcc else None,
             "/usr/local/cuda"]
    for home in filter(None, homes):
        for sub in ("lib64", "lib"):
            d = os.path.join(home, sub)
            if os.path.isdir(d) and any(f.startswith("libcudart.so") for f in os.listdir(d)):
                return d
    return None


def build(src, out, link=(), arch=DEFAULT_ARCH):
    cmd = build_command(src, out, link, arch)
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        _fail(cmd, proc.stderr, [src])


def object_command(src, obj, arch=DEFAULT_ARCH):
    """Compile one translation unit of a split program to an object file."""
    if emulating():
        return ["g++", "-x", "c++", "-std=c++17", "-O1", "-fPIC", "-c"] + _emulation_flags() + \
            ["-include", emulator_header(), src, "-o", obj]
    return nvcc_compile_command(src, obj, arch)


def link_command(objects, out, link=()):
    """Link a split program's objects (no relocatable device code: every kernel is launched
    from its own unit) into one shared library."""
    libs = [os.path.abspath(path) for path in link]
    if emulating():
        return ["g++", "-shared"] + list(objects) + ["-o", out] + libs + _emulated_blas(libs) + ["-lm"]
    rpath = [f"-Xlinker=-rpath={d}" for d in [cuda_lib_dir()] if d]
    return [nvcc_path() or "nvcc", "-shared", "--cudart", "shared"] + list(objects) + \
        ["-o", out] + libs + rpath + ["-ldl"]


def build_units(srcs, out, link=(), arch=DEFAULT_ARCH):
    """Build the translation units `srcs` into one library at `out`: one compiler process per
    unit, all at once, then one link (a single unit is built and linked in one step)."""
    if len(srcs) == 1:
        return build(srcs[0], out, link, arch)
    objects = [f"{out}.{i}.o" for i in range(len(srcs))]
    try:
        procs = [(subprocess.Popen(object_command(src, obj, arch), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, errors="replace"), src)
                 for src, obj in zip(srcs, objects)]
        results = [(proc, proc.communicate()[1], src) for proc, src in procs]  # wait for all
        for proc, err, src in results:
            if proc.returncode != 0:
                _fail(proc.args, err, [src])
        cmd = link_command(objects, out, link)
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        if proc.returncode != 0:
            _fail(cmd, proc.stderr, srcs)
    finally:
        for obj in objects:
            if os.path.exists(obj):
                os.unlink(obj)


def _fail(cmd, stderr, srcs):
    raise CompileError(f"CUDA compilation failed ({' '.join(cmd)}):\n{stderr[-4000:]}\n"
                       f"The generated source is kept at {', '.join(srcs)}; set GRAPHC_DUMP=dir "
                       "to see every stage.")


@functools.lru_cache(maxsize=None)
def _version(tool):
    try:
        return subprocess.run([tool, "--version"], capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise CompileError(f"cannot run {tool!r}: {e}") from e


def cache_key_material(arch=DEFAULT_ARCH):
    """What the built library depends on besides the source."""
    if emulating():
        headers = []
        for path in (emulator_header(), racecheck_header()):
            with open(path, "rb") as fh:
                headers.append(fh.read().decode("utf-8", "replace"))
        return "\n".join(["emulate", _version("g++"), *headers, " ".join(_emulated_blas(["blas"])),
                          " ".join(_emulation_flags())])
    return "\n".join(["nvcc", _version(nvcc_path() or "nvcc"), arch])
