"""Load a built C program with cffi and run it: pointers in, numpy arrays out."""
import ctypes
import os
import threading

import numpy as np
import sympy

from ...errors import RuntimeCheckError
from ..base import FastPath, RebuildsOnDemand
from .cache_trust import check_file, file_digest, private_dir
from .fastcall import build_spec, dispatch_module, output_size_expressions, output_sizes_prebind
from .ffi_module import load_ffi
from .omp_fork import protect_children
from .runtime_build import BLAS_SONAME

# The module cffi generated for the entry points (see ffi_module): the package's copy from
# install time, or one generated into the (checked) cache.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ffi = load_ffi(_PACKAGE_DIR, lambda: private_dir("ffi"), check_file)
_libs = {}  # path -> Library, while some program's context uses it
_libs_lock = threading.RLock()  # a context freed by gc while held
_pinned = {}  # soname -> the library, never closed


class Library:
    """One dlopen of a compiled program, shared by the contexts made from it and dlclosed when
    the last one is freed (a notebook or a hyper-parameter search drops thousands of functions).
    Counted, not left to __del__: a finalizer's order in a garbage cycle (or at exit) is
    arbitrary, and a context must be freed before its library is unmapped."""

    def __init__(self, path):
        self.path = path
        self.lib = _ffi.dlopen(path)
        self.users = 0

    def new_context(self):
        """A gc_ctx of this library that keeps it open until the context is freed."""
        ctx = _ffi.gc(self.lib.gc_ctx_new(), self._free_context)
        return ctx

    def _free_context(self, ctx):
        self.lib.gc_ctx_free(ctx)
        self.release()

    def release(self):
        with _libs_lock:
            self.users -= 1
            if self.users == 0:
                del _libs[self.path]
                _ffi.dlclose(self.lib)


def is_loaded(path):
    return path in _libs


def new_context(path):
    """(library, context) for the library at `path`: dlopened once per process while used."""
    with _libs_lock:
        library = _libs.get(path)  # (nothing here allocates: a gc-run release cannot interleave)
        if library is None:
            protect_children()
            library = _libs[path] = Library(path)
            _pin_threaded_dependencies()
        library.users += 1
    try:
        return library, library.new_context()
    except BaseException:
        library.release()
        raise


def _pin_threaded_dependencies():
    """Keep OpenMP and the BLAS loaded for good: their worker threads outlive any one program,
    and unmapping a library whose threads still run crashes the process. Tried at every load
    until each is pinned: a small program has no parallel region and does not bring in libgomp,
    so the first load may not find it (a later program's threads then died with libgomp)."""
    mode = os.RTLD_NOW | getattr(os, "RTLD_NOLOAD", 0)
    # By soname, with RTLD_NOLOAD: only what the program already brought in (finding the BLAS
    # by path would import scipy_openblas32, ~25 ms of a warm compile).
    for name in ("libgomp.so.1", BLAS_SONAME):
        if name not in _pinned:
            try:
                _pinned[name] = ctypes.CDLL(name, mode=mode)  # ctypes never dlcloses
            except OSError:
                pass


def library_matches(path, sha256, links=()):
    """Whether the library at `path` (and each linked (path, sha256)) is the one a record
    describes: a damaged or replaced file is rebuilt, never loaded. One already loaded here is
    what runs, whatever the file holds now."""
    if is_loaded(path):
        return True
    return file_digest(path) == sha256 and all(file_digest(p) == h for p, h in links)


def runtime_layout(program, n_inputs):
    """What running a program needs, in plain Python values (no sympy): cheap to unpickle on a
    warm compile. Output sizes are ints, dim positions, or sympy expressions of the dims."""
    syms = program.dim_symbols
    specs = []
    for j, b in enumerate(program.output_buffers):
        if j in program.in_place_updates:  # the kernel writes into the shared array itself
            specs.append((None, program.in_place_updates[j].slot - n_inputs))
            continue
        spec = []
        for d in b.shape:
            if isinstance(d, int):
                spec.append(d)
            elif d in syms:
                spec.append(("dim", syms.index(d)))
            else:
                spec.append(("expr", d))
        specs.append((b.dtype, tuple(spec)))
    return {"n_externals": len(program.externals), "dim_names": [s.name for s in syms],
            "const_values": [b.value for b in program.externals if b.role == "const"],
            "out_specs": specs}


def _size_fn(entry, dim_names):
    expr = sympy.sympify(entry[1])
    by_name = {s.name: s for s in expr.free_symbols}
    syms = [by_name.get(n, sympy.Symbol(n)) for n in dim_names]
    return ("expr", sympy.lambdify(syms, expr, "math"))


class CProgram(RebuildsOnDemand):
    """A loaded library and what it takes to call it. `program` (the kernel Program) and
    `source` are kept, or for a warm compile rebuilt from this function's own graph when asked
    for (dumps, AOT export): `rebuild` returns (program, source)."""

    def __init__(self, program, source, lib_path, fgraph, layout=None, rebuild=None):
        self._program, self._source, self._rebuild = program, source, rebuild
        self.lib_path = lib_path
        layout = layout or runtime_layout(program, len(fgraph.inputs))
        self.layout = layout
        self.library, self.ctx = new_context(lib_path)
        self.lib = self.library.lib
        self.lock = threading.Lock()
        self.n_inputs = len(fgraph.inputs)
        self.n_shared = len(fgraph.shareds)
        self.const_values = layout["const_values"]
        self.const_slot = self.n_inputs + self.n_shared
        self.out_slot = self.const_slot + len(self.const_values)
        self.ptrs = _ffi.new("void *[]", max(layout["n_externals"], 1))
        self.n_dims = len(layout["dim_names"])
        self.dims = _ffi.new("int64_t[]", max(self.n_dims, 1))
        for k, value in enumerate(self.const_values):
            self.ptrs[self.const_slot + k] = _ffi.from_buffer(value)
        self.out_specs = []
        for dtype, spec in layout["out_specs"]:
            if dtype is None:
                self.out_specs.append((None, spec, None))
                continue
            spec = tuple(_size_fn(s, layout["dim_names"]) if isinstance(s, tuple) and s[0] == "expr"
                         else s for s in spec)
            self.out_specs.append((np.dtype(dtype), spec, all(isinstance(s, int) for s in spec)))

    def fast_path(self, checker, graph, single_output):
        """The C call path (gc_dispatch), when this program qualifies for it; else None."""
        module = dispatch_module()
        spec = build_spec(self, checker, graph, single_output) if module else None
        if spec is None:
            return None
        # Dims computed from values (run-time slices) and checks of dim expressions (x[-1] of
        # a symbolic axis) are made in Python first, by the caller's prebind.
        checked_first = checker.values is not None or checker.symbolic_checks or \
            checker.runtime_checks
        size_fns = output_size_expressions(self)
        prebind = output_sizes_prebind(checker, size_fns) if size_fns else \
            checker.prebind if checked_first else None
        return FastPath(caller_type=module.Caller, spec=spec, lock=self.lock, prebind=prebind,
                        fn_addr=int(_ffi.cast("uintptr_t", self.lib.gc_run)),
                        ctx_addr=int(_ffi.cast("uintptr_t", self.ctx)),
                        consts=list(self.const_values))

    def raise_error(self):
        msg = _ffi.string(self.lib.gc_ctx_error(self.ctx)).decode(errors="replace")
        raise RuntimeCheckError(f"compiled function failed: {msg}")

    def describe(self):
        return self.program.describe()

    def profiled(self, fgraph, name):
        """The profiling build of this program (timers around each kernel), loaded beside it."""
        from .profiling import build_profiled  # (renders and builds: only when profiling)
        return build_profiled(self.program, name, fgraph)

    def _alloc_outputs(self, dims, shared_values):
        outs = []
        for dtype, spec, static in self.out_specs:
            if dtype is None:
                outs.append(shared_values[spec])
                continue
            if static:
                shape = spec
            else:
                shape = tuple(s if isinstance(s, int) else dims[s[1]] if s[0] == "dim"
                              else int(s[1](*dims)) for s in spec)
            outs.append(np.empty(shape, dtype))
        return outs

    def run(self, arrays, shared_values, dims):
        outs = self._alloc_outputs(dims, shared_values)
        ptrs, fb = self.ptrs, _ffi.from_buffer
        with self.lock:
            slot = 0
            for a in arrays:
                ptrs[slot] = fb(a)
                slot += 1
            for a in shared_values:
                ptrs[slot] = fb(a)
                slot += 1
            slot = self.out_slot
            for a in outs:
                ptrs[slot] = fb(a)
                slot += 1
            for k, d in enumerate(dims):
                self.dims[k] = d
            rc = self.lib.gc_run(self.ctx, ptrs, self.dims)
            if rc != 0:
                self.raise_error()
        return outs
