"""The cffi declarations of a compiled program's entry points, as an out-of-line ABI module.

cffi parses C declarations with pycparser (~0.05 s with its import). The out-of-line mode does
that once and writes a small Python module; setup.py writes it into the package at install (this
file imports nothing of graphc, so setup.py can load it), and a source checkout writes it into the
cache on first use.
"""
import hashlib
import importlib.util
import os

CDEF = """
typedef struct gc_ctx gc_ctx;
gc_ctx *gc_ctx_new(void);
void gc_ctx_free(gc_ctx *ctx);
const char *gc_ctx_error(gc_ctx *ctx);
int gc_run(gc_ctx *ctx, void *const *bufs, const int64_t *dims);
"""

MODULE_NAME = "_gc_ffi_" + hashlib.sha256(CDEF.encode()).hexdigest()[:12]


def emit(directory):
    """Write the module into `directory` (atomically: concurrent processes may race)."""
    import cffi
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, MODULE_NAME + ".py")
    builder = cffi.FFI()
    builder.cdef(CDEF)
    builder.set_source(MODULE_NAME, None)
    tmp = f"{path}.{os.getpid()}.tmp"
    builder.emit_python_code(tmp)
    os.chmod(tmp, 0o600)  # run by every process that uses this cache: this user's alone
    os.replace(tmp, path)
    return path


def load_ffi(shipped_dir, cache_dir, check_file=None):
    """The cffi FFI object: from the module shipped in the package, else from (or into) the cache.
    `cache_dir` may be a function that returns it (made and checked only when needed);
    `check_file(path)` vets a module found there before it is run."""
    path = os.path.join(shipped_dir, MODULE_NAME + ".py")
    if not os.path.exists(path):
        cache_dir = cache_dir() if callable(cache_dir) else cache_dir
        path = os.path.join(cache_dir, MODULE_NAME + ".py")
        if not (check_file(path) if check_file else os.path.exists(path)):
            emit(cache_dir)
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ffi
