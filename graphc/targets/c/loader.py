"""Load a built C program with cffi and run it: pointers in, numpy arrays out."""
import os
import pickle
import threading

import numpy as np
import sympy

from ...config import config
from ...errors import RuntimeCheckError
from ..base import FastPath
from .fastcall import build_spec, dispatch_module
from .ffi_module import load_ffi
from .omp_fork import protect_children

# The module cffi generated for the entry points (see ffi_module): the package's copy from
# install time, or one generated into the cache.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ffi = load_ffi(_PACKAGE_DIR, os.path.join(config.cache_dir, "ffi"))
_libs = {}  # path -> loaded library (dlopen once per process)


def _load(path):
    lib = _libs.get(path)
    if lib is None:
        protect_children()
        lib = _libs[path] = _ffi.dlopen(path)
    return lib


def _context_destructor(lib):
    """gc_ctx_free of `lib`, holding the library: a context freed late in interpreter shutdown
    (after the module's table of libraries is gone) must not call into an unmapped library."""
    return lambda ctx: lib.gc_ctx_free(ctx)


def runtime_layout(program, n_inputs):
    """What running a program needs, in plain Python values (no sympy): cheap to unpickle on a
    warm compile. Output sizes are ints, dim positions, or expressions kept as text."""
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
                spec.append(("expr", str(d)))
        specs.append((b.dtype, tuple(spec)))
    return {"n_externals": len(program.externals), "dim_names": [s.name for s in syms],
            "const_values": [b.value for b in program.externals if b.role == "const"],
            "out_specs": specs}


def _size_fn(entry, dim_names):
    expr = sympy.sympify(entry[1], locals={n: sympy.Symbol(n, integer=True, positive=True)
                                           for n in dim_names})
    syms = [sympy.Symbol(n, integer=True, positive=True) for n in dim_names]
    return ("expr", sympy.lambdify(syms, expr, "math"))


class CProgram:
    """A loaded library and what it takes to call it. `program` (the kernel Program) is kept,
    or for a warm compile unpickled only when asked for (dumps, AOT export)."""

    def __init__(self, program, source, lib_path, fgraph, layout=None, program_bytes=None):
        self._program, self._program_bytes = program, program_bytes
        self.source, self.lib_path = source, lib_path
        layout = layout or runtime_layout(program, len(fgraph.inputs))
        self.layout = layout
        self.lib = _load(lib_path)
        self.ctx = _ffi.gc(self.lib.gc_ctx_new(), _context_destructor(self.lib))
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

    @property
    def program(self):
        if self._program is None:
            self._program = pickle.loads(self._program_bytes)
        return self._program

    def fast_path(self, checker, graph, single_output):
        """The C call path (gc_dispatch), when this program qualifies for it; else None."""
        module = dispatch_module()
        spec = build_spec(self, checker, graph, single_output) if module else None
        if spec is None:
            return None
        return FastPath(call=module.call, spec=spec, lock=self.lock,
                        fn_addr=int(_ffi.cast("uintptr_t", self.lib.gc_run)),
                        ctx_addr=int(_ffi.cast("uintptr_t", self.ctx)),
                        consts=list(self.const_values))

    def raise_error(self):
        msg = _ffi.string(self.lib.gc_ctx_error(self.ctx)).decode(errors="replace")
        raise RuntimeCheckError(f"compiled function failed: {msg}")

    def describe(self):
        return self.program.describe()

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
