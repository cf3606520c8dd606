"""A loaded CUDA program and its call: device arguments in, one host call (gc_run) launches the
whole step, outputs back to numpy, updates left on the device.

Function (graphc/runtime/function.py) hands a CUDA call its checker, arguments and shared
variables (`run_shared`): shared values stay on the device between calls (residency.py), so the
host copy of a parameter is never touched by a training step."""
import ctypes
import threading

import numpy as np

from ...errors import RaceCheckError, RuntimeCheckError
from ..base import RebuildsOnDemand
from ..c.loader import runtime_layout
from .device import DeviceArray, device_view
from .residency import make_resident


# gc_run's return when the race checker's build found hazards (gc_cuda_racecheck.h)
RACECHECK_FAILED = -2


class _Library:
    """The program's shared library, loaded with ctypes (one host call per step: the ctypes
    overhead is a few microseconds, nothing next to a device synchronization)."""

    def __init__(self, path):
        self.lib = lib = ctypes.CDLL(path)
        lib.gc_ctx_new.restype = ctypes.c_void_p
        lib.gc_ctx_free.argtypes = [ctypes.c_void_p]
        lib.gc_ctx_error.argtypes, lib.gc_ctx_error.restype = [ctypes.c_void_p], ctypes.c_char_p
        lib.gc_run.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                               ctypes.POINTER(ctypes.c_int64)]
        lib.gc_run.restype = ctypes.c_int

    def racecheck_report(self):
        """The race checker's full report of the last call (its build exports gc_rc_report)."""
        report = getattr(self.lib, "gc_rc_report", None)
        if report is None:
            return ""
        report.restype = ctypes.c_char_p
        return report().decode(errors="replace")


class CudaProgram(RebuildsOnDemand):
    """What the Function of a CUDA target runs."""

    source_suffix = ".cu"

    def __init__(self, program, source, lib_path, fgraph, layout=None, rebuild=None):
        # program and source: None on a warm compile (artifact cache), rebuilt when asked for
        self._program, self._source, self._rebuild = program, source, rebuild
        self.lib_path = lib_path
        self.layout = layout = layout or runtime_layout(program, len(fgraph.inputs))
        self.library = _Library(lib_path)
        lib = self.library.lib
        ctx = lib.gc_ctx_new()
        if not ctx:
            raise RuntimeCheckError("target cuda: could not create the program's CUDA context "
                                    "(stream and error word): out of device memory?")
        self.ctx = ctx
        self._free_ctx = lib.gc_ctx_free
        self.lock = threading.Lock()
        self.n_inputs, self.n_shared = len(fgraph.inputs), len(fgraph.shareds)
        for sv in fgraph.shareds:
            make_resident(sv)
        self.consts = [DeviceArray.from_host(v) for v in layout["const_values"]]
        self.const_slot = self.n_inputs + self.n_shared
        self.out_slot = self.const_slot + len(self.consts)
        n_ext = max(layout["n_externals"], 1)
        self.ptrs = (ctypes.c_void_p * n_ext)()
        self.dims = (ctypes.c_int64 * max(len(layout["dim_names"]), 1))()
        for k, c in enumerate(self.consts):
            self.ptrs[self.const_slot + k] = c.ptr
        self.out_specs = []
        for dtype, spec in layout["out_specs"]:
            self.out_specs.append((None, spec) if dtype is None else (np.dtype(dtype), spec))
        # Outputs as numpy arrays (True, the default), or as DeviceArrays left on the device:
        # False gives the caller its own buffers; "borrow" the program's, valid until the next
        # call (no allocation per call: what a benchmark or a tight device loop wants).
        self.host_outputs = True
        # Device buffers of inputs and outputs, kept between calls of the same sizes.
        self._in_pool, self._out_pool = {}, {}

    def __del__(self):
        ctx, self.ctx = getattr(self, "ctx", None), None
        if ctx:
            self._free_ctx(ctx)

    def describe(self):
        return self.program.describe()

    def profiled(self, fgraph, name):
        """The profiling build of this program (event timers around each kernel), loaded beside
        it (graphc.profile, graphc.profiler.watch)."""
        from .profiling import build_profiled  # (renders and builds: only when profiling)
        return build_profiled(self.program, name, fgraph)

    def fast_path(self, checker, graph, single_output):
        return None  # every call takes run_shared (device residency)

    def raise_error(self, rc=-1):
        msg = self.library.lib.gc_ctx_error(self.ctx).decode(errors="replace")
        if rc == RACECHECK_FAILED:  # the race checker's build (gc_cuda_racecheck.h)
            report = self.library.racecheck_report()
            raise RaceCheckError(f"{msg}:\n{report}\nThe call changed no shared variable. This is a "
                                 "bug in graphc's CUDA templates: please report it with this message.")
        raise RuntimeCheckError(f"compiled function failed: {msg}")

    def _pooled(self, pool, key, shape, dtype):
        buf = pool.get(key)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = pool[key] = DeviceArray(shape, dtype)
        return buf

    def _out_shape(self, spec, dims):
        import sympy  # (an output size that is an expression of the dims: rare)
        shape = []
        for s in spec:
            if isinstance(s, int):
                shape.append(s)
            elif s[0] == "dim":
                shape.append(dims[s[1]])
            else:
                expr = sympy.sympify(s[1])
                env = {sympy.Symbol(n): v for n, v in zip(self.layout["dim_names"], dims)}
                shape.append(int(expr.subs({sym: env.get(sympy.Symbol(sym.name), 0)
                                            for sym in expr.free_symbols})))
        return tuple(shape)

    def run_shared(self, checker, args, shareds, targets, n_user, host_outputs=None):
        """Check the arguments (the same checker as the C target's), run the step, apply the
        updates on the device; returns the user outputs (numpy, or DeviceArrays when
        host_outputs is False). Nothing changes when the call fails."""
        if host_outputs is None:
            host_outputs = self.host_outputs
        views = [device_view(a) for a in args]
        # Device arrays are checked by shape and dtype through a host stand-in (never read).
        stand_ins = [np.empty(v.shape, v.dtype) if v is not None else a for a, v in zip(args, views)]
        arrays, dims = checker.check(stand_ins)
        with self.lock:
            ptrs = self.ptrs
            keep = []
            for k, (a, v) in enumerate(zip(arrays, views)):
                if v is None:
                    v = self._pooled(self._in_pool, k, a.shape, a.dtype)
                    v.set(a)
                keep.append(v)
                ptrs[k] = v.ptr
            for j, sv in enumerate(shareds):
                ptrs[self.n_inputs + j] = sv.device_value().ptr
            outs = []
            for j, (dtype, spec) in enumerate(self.out_specs):
                if dtype is None:  # written in place into shared variable `spec`
                    out = shareds[spec].device_value()
                else:
                    out = self._pooled(self._out_pool, j, self._out_shape(spec, dims), dtype)
                outs.append(out)
                ptrs[self.out_slot + j] = out.ptr
            for k, d in enumerate(dims):
                self.dims[k] = d
            rc = self.library.lib.gc_run(self.ctx, ptrs, self.dims)
            if rc != 0:
                self.raise_error(rc)
            if host_outputs is True:
                results = [o.get() for o in outs[:n_user]]
            elif host_outputs == "borrow":
                results = outs[:n_user]
            else:
                results = [_detached(o, self._out_pool, j) for j, o in enumerate(outs[:n_user])]
            for j, sv in enumerate(targets):
                slot = n_user + j
                if self.out_specs[slot][0] is None:
                    sv.device_written()
                else:  # the variable takes the output buffer; its old one serves next call
                    old = sv.device_written(self._out_pool.pop(slot))
                    if old is not None:
                        self._out_pool[slot] = old
        return results


def _detached(buf, pool, slot):
    """A device output handed to the caller: the pool makes a new buffer next call."""
    if pool.get(slot) is buf:
        del pool[slot]
    return buf
