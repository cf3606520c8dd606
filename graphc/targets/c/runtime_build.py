"""Building graphc's runtime library (templates/c/runtime_lib.c.j2): the parts that setup.py runs
at install, to ship the library in the package (graphc/_runtime/), where a cold compile finds it.
runtime_lib.py looks for it there and otherwise builds it into the cache.

Standalone on purpose (stdlib and jinja2 only): setup.py loads this file by path. The library is
linked without the BLAS: its gemm calls resolve, when a program loads it, to the BLAS that
program links (dependencies of a loaded library are searched for its undefined symbols), so the
install-time build needs only the BLAS headers.
"""
import functools
import hashlib
import os
import platform
import subprocess
import tempfile


# scipy-openblas32 prefixes every symbol: scipy_cblas_sgemm, scipy_openblas_set_num_threads.
BLAS_SYMBOL_PREFIX = "scipy_"
BLAS_SONAME = "libscipy_openblas.so"  # scipy-openblas32's library, as programs link it
SHIPPED_DIR_NAME = "_runtime"
# graphc's C flags (toolchain.cflags adds the BLAS include directory and GRAPHC_CFLAGS).
BASE_CFLAGS = ["-O3", "-march=native", "-std=gnu11", "-fPIC", "-fopenmp", "-fno-math-errno",
               "-fno-trapping-math", "-Wno-unused-variable", "-Wno-unused-but-set-variable"]


@functools.lru_cache(maxsize=None)
def host_cpu():
    """What -march=native compiles for: a library built on one CPU can crash on another that
    shares the cache directory (an NFS home), so the CPU model and flags are part of every key."""
    try:
        with open("/proc/cpuinfo") as fh:
            info = fh.read()
        wanted = [ln for ln in info.splitlines()
                  if ln.split(":")[0].strip() in ("vendor_id", "model name", "flags", "Features",
                                                 "CPU implementer", "CPU part")]
        return "\n".join(sorted(set(wanted)))
    except OSError:
        return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=None)
def compiler_version(cc):
    out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


# The reductions of symbolic size (templates/c/_reduce_helpers.j2) compiled into the library,
# (kind, input, accumulator, output dtype): what lowering makes of float sums and products (a
# double accumulator) and float max/min. Each cost gcc ~0.15 s in every translation unit that
# used it (a batch-normalized CNN's two units both use two). Other dtypes stay in the program.
RUNTIME_REDUCTIONS = tuple(
    [(kind, dt, "float64", out) for kind in ("sum", "prod") for dt in ("float32", "float64")
     for out in ("float32", "float64")]
    + [(kind, dt, dt, dt) for kind in ("max", "min") for dt in ("float32", "float64")])
_C_TYPES = {"float32": "float", "float64": "double"}


def reduce_helper_name(kind, in_dtype, acc_dtype, out_dtype):
    return f"gc_reduce_{kind}_{in_dtype}_{acc_dtype}_{out_dtype}"


# Kernels whose code is compiled into the library and only called from a program (issue 16: each
# cost gcc 0.05-0.17 s in every program that had it): family -> kinds (templates/c/_lib_kernels.j2
# and the family's _<family>_lib.j2). Every float32/float64 kernel of these kinds calls its
# function (pool_*.j2, lrn*.j2, softmax_xent.j2); softmax cross-entropy has one per label type.
RUNTIME_KERNEL_FAMILIES = {
    "pool": ("pool_max", "pool_max_value", "pool_avg", "pool_avg_grad", "pool_max_grad",
             "pool_max_gather"),
    "lrn": ("lrn", "lrn_grad"),
    "softmax_xent": ("softmax_xent", "softmax_xent_grad"),
}
_LABEL_C_TYPES = {"int32": "int32_t", "int64": "int64_t"}
_PRECISIONS = {"float32": "s", "float64": "d"}


def library_kernel(kind, dtype, label_dtype=None):
    """The library function (a dict for _lib_kernels.j2) that a kernel of `kind` over `dtype` calls
    (`label_dtype`: softmax cross-entropy's labels), or None when its code stays in the program."""
    family = next((f for f, kinds in RUNTIME_KERNEL_FAMILIES.items() if kind in kinds), None)
    if family is None or dtype not in _PRECISIONS:
        return None
    P = _PRECISIONS[dtype]
    entry = {"family": family, "kind": kind, "P": P, "dtype": dtype, "ctype": _C_TYPES[dtype],
             "name": f"graphc_rt_{P}{kind}", "label": None, "label_ctype": None}
    if family == "softmax_xent":
        if label_dtype not in _LABEL_C_TYPES:
            return None
        label = "i" + label_dtype[3:]
        entry.update(name=f"{entry['name']}_{label}", label=label, label_ctype=_LABEL_C_TYPES[label_dtype])
    return entry


def all_library_kernels():
    """Every function the runtime library defines for RUNTIME_KERNEL_FAMILIES."""
    out = []
    for family, kinds in RUNTIME_KERNEL_FAMILIES.items():
        for kind in kinds:
            for dtype in _PRECISIONS:
                for label in (_LABEL_C_TYPES if family == "softmax_xent" else [None]):
                    out.append(library_kernel(kind, dtype, label))
    return out


def _no_fused_body(body):
    raise ValueError("the runtime library's reductions read a plain input (no fused body)")


def render_source(templates_root, env=None):
    """The library's C. `env`: a jinja environment over the same templates with graphc's C filters
    (graphc's own, whose compiled templates ship: parsing these in every cold process cost ~50 ms
    of CPU); setup.py, which has none, gets a plain one."""
    if env is None:
        import jinja2  # (here, not at the top: a warm compile never renders, and jinja2 costs ~50 ms)
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_root), keep_trailing_newline=True,
                                 trim_blocks=True, lstrip_blocks=True,  # (as graphc's: jinja_env.py)
                                 undefined=jinja2.StrictUndefined)
        env.filters.update(c_type=_C_TYPES.__getitem__, c_scalar_code=_no_fused_body)
    helpers = [{"name": reduce_helper_name(*r), "kind": r[0], "in_dtype": r[1], "acc_dtype": r[2],
                "out_dtype": r[3], "fused": False, "prebuilt": True} for r in RUNTIME_REDUCTIONS]
    return env.get_template("c/runtime_lib.c.j2").render(blas_prefix=BLAS_SYMBOL_PREFIX,
                                                         reduce_helpers=helpers,
                                                         lib_kernels=all_library_kernels())


def library_name(source, cc, extra_cflags=()):
    """File name of the library built from `source` with these flags on this CPU: what a shipped
    copy must be called to be used."""
    h = hashlib.sha256()
    for part in [source, compiler_version(cc), " ".join(BASE_CFLAGS + list(extra_cflags)), host_cpu()]:
        h.update(part.encode() + b"\0")
    return f"libgraphc_rt_{h.hexdigest()[:24]}.so"


def _math_libraries():
    """libm, and glibc's vector math when the C library has it: the library's softmax and LRN loops
    call its SIMD exp/log (gc_runtime.h), and a program that does not use them itself does not
    link it (gcc links --as-needed)."""
    import ctypes.util
    return (["-lmvec"] if ctypes.util.find_library("mvec") else []) + ["-lm"]


def build(source, out_path, cc, blas_include_dir):
    """Compile `source` into the shared library `out_path` (appears atomically)."""
    directory = os.path.dirname(out_path)
    os.makedirs(directory, exist_ok=True)
    fd, src = tempfile.mkstemp(dir=directory, suffix=".c")
    with os.fdopen(fd, "w") as fh:
        fh.write(source)
    tmp = out_path + f".{os.getpid()}.tmp"
    try:
        subprocess.run([cc] + BASE_CFLAGS + [f"-I{blas_include_dir}", "-shared", src, "-o", tmp]
                       + _math_libraries(), check=True, capture_output=True, text=True)
        os.replace(tmp, out_path)
    finally:
        for path in (src, tmp):
            if os.path.exists(path):
                os.unlink(path)
    return out_path
