"""Load a built C program with cffi and run it: pointers in, numpy arrays out."""
import threading

import cffi
import numpy as np
import sympy

from ..errors import RuntimeCheckError

_ffi = cffi.FFI()
_ffi.cdef("""
typedef struct gc_ctx gc_ctx;
gc_ctx *gc_ctx_new(void);
void gc_ctx_free(gc_ctx *ctx);
const char *gc_ctx_error(gc_ctx *ctx);
int gc_run(gc_ctx *ctx, void *const *bufs, const int64_t *dims);
""")
_libs = {}  # path -> loaded library (dlopen once per process)


def _load(path):
    lib = _libs.get(path)
    if lib is None:
        lib = _libs[path] = _ffi.dlopen(path)
    return lib


class CProgram:
    def __init__(self, program, source, lib_path, fgraph):
        self.program, self.source, self.lib_path = program, source, lib_path
        self.lib = _load(lib_path)
        self.ctx = _ffi.gc(self.lib.gc_ctx_new(), self.lib.gc_ctx_free)
        self.lock = threading.Lock()
        ext = program.externals
        self.n_inputs = len(fgraph.inputs)
        self.n_shared = len(fgraph.shareds)
        self.const_values = [b.value for b in ext if b.role == "const"]
        self.const_slot = self.n_inputs + self.n_shared
        self.out_slot = self.const_slot + len(self.const_values)
        self.ptrs = _ffi.new("void *[]", max(len(ext), 1))
        self.dims = _ffi.new("int64_t[]", max(len(program.dim_symbols), 1))
        for k, value in enumerate(self.const_values):
            self.ptrs[self.const_slot + k] = _ffi.from_buffer(value)
        self._keep = list(self.const_values)
        syms = program.dim_symbols
        # Output shapes: each entry an int, a dim position, or an expression over the dims.
        self.out_specs = []
        n_in = len(fgraph.inputs)
        for j, b in enumerate(program.output_buffers):
            if j in program.in_place_updates:  # the kernel writes into the shared array itself
                self.out_specs.append((None, program.in_place_updates[j].slot - n_in, None))
                continue
            spec = []
            for d in b.shape:
                if isinstance(d, int):
                    spec.append(d)
                elif d in syms:
                    spec.append(("dim", syms.index(d)))
                else:
                    spec.append(("expr", sympy.lambdify(syms, d, "math")))
            self.out_specs.append((np.dtype(b.dtype), tuple(spec),
                                   all(isinstance(s, int) for s in spec)))

    def fast_path(self, fn):
        """Give Function `fn` the C call path when this program qualifies for it."""
        from .fastcall import build_spec, dispatch_module
        module = dispatch_module()
        spec = build_spec(self, fn.checker, fn.fgraph, fn.single_output) if module else None
        if spec is None:
            return
        fn._spec, fn._fast, fn._lock = spec, module.call, self.lock
        fn._fn_addr = int(_ffi.cast("uintptr_t", self.lib.gc_run))
        fn._ctx_addr = int(_ffi.cast("uintptr_t", self.ctx))
        fn._consts = list(self.const_values)

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
