"""The C target's profiling build: the same Program rendered with timers around each kernel
(templates/c/_profile.j2, the `profile` render option), built into its own cached library and
loaded beside the normal one. The normal build carries no timers.

The counters live in the library's context (a gc_ctx followed by them), so each loaded
ProfiledProgram has its own; read them with counters(), zero them with reset()."""
import ctypes
import os
from dataclasses import dataclass

import numpy as np

from .cache_trust import file_digest
from .loader import CProgram, _ffi


@dataclass
class Counters:
    """What a profiling library measured (CLOCK_MONOTONIC seconds, as time.monotonic): summed
    over `calls` since the last reset, and for the most recent call alone (last_*; kernel starts
    are absolute times)."""
    calls: int
    run_s: float
    kernel_s: np.ndarray
    last_t0: float
    last_run_s: float
    last_start: np.ndarray
    last_s: np.ndarray
    # top-level loop kernels: {kernel index: (iterations, body kernels' seconds)}, summed
    loops: dict = None


def render_profiled(program, name):
    """The profiling build's C source: one translation unit (the timers' counters are the
    context's, which only unit 0 defines)."""
    from .render_c import render_program
    from .toolchain import blas_info
    slots, extra = loop_slots(program)
    return render_program(program, name, blas_info()[3],
                          extra={"profile": True, "profile_kernels": max(1, len(program.kernels)),
                                 "profile_loop_slots": slots, "profile_extra": extra})


def loop_slots(program):
    """Where each top-level loop kernel's counters sit after the kernels' (4 + 3n): {kernel
    index: offset of [iterations, body kernel seconds...]}, and how many doubles they take."""
    offset = 4 + 3 * max(1, len(program.kernels))
    slots = {}
    for i, k in enumerate(program.kernels):
        if k.kind == "loop":
            slots[i] = offset
            offset += 1 + len(k.params["body"].kernels)
    return slots, offset - (4 + 3 * max(1, len(program.kernels)))


def build_profiled(program, name, fgraph):
    """A ProfiledProgram for `program` (the kernel Program of a compiled function)."""
    from . import runtime_lib
    from .cache import cached_library
    source = render_profiled(program, name)
    link = [runtime_lib.library_path()]  # (every program: its thread choice lives there)
    lib_path, _, digest = cached_library([source], name, link)
    executable = ProfiledProgram(program, source, lib_path, fgraph)
    executable.lib_sha256 = digest
    executable.links = [(p, file_digest(p)) for p in link]
    return executable


class CounterReader:
    """Reads a profiling library's counters (the layout of templates/c/_profile.j2, which the
    CUDA target's profiling build shares): mixed into the loaded program of each target."""

    def _open_counters(self, lib_path, ctx_addr, program):
        self.n_kernels = len(program.kernels)
        # ctypes for the two profiling entry points; the same dlopen handle as the program's,
        # kept open by ctypes for the process's life.
        lib = ctypes.CDLL(os.path.abspath(lib_path))
        self._read = lib.gc_profile_read
        self._read.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_double), ctypes.c_int64]
        self._read.restype = ctypes.c_int
        self._reset = lib.gc_profile_reset
        self._reset.argtypes = [ctypes.c_void_p]
        self._reset.restype = None
        self._ctx_addr = ctx_addr
        self._loop_slots, extra = loop_slots(program)
        self._body_sizes = {i: len(program.kernels[i].params["body"].kernels)
                            for i in self._loop_slots}
        self._buf = np.zeros(4 + 3 * max(1, self.n_kernels) + extra, np.float64)

    def counters(self):
        buf = self._buf
        with self.lock:
            n = self._read(self._ctx_addr, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                           len(buf))
        if n != len(buf):
            raise RuntimeError(f"{self.lib_path}: a profiling library of another program "
                               f"({n} counters, expected {len(buf)})")
        k, m = self.n_kernels, max(1, self.n_kernels)  # (the C arrays have at least one)
        return Counters(calls=int(buf[0]), run_s=float(buf[1]), last_t0=float(buf[2]),
                        last_run_s=float(buf[3]), kernel_s=buf[4:4 + k].copy(),
                        last_start=buf[4 + m:4 + m + k].copy(),
                        last_s=buf[4 + 2 * m:4 + 2 * m + k].copy(),
                        loops={i: (float(buf[at]), buf[at + 1:at + 1 + self._body_sizes[i]].copy())
                               for i, at in self._loop_slots.items()})

    def reset(self):
        with self.lock:
            self._reset(self._ctx_addr)


class ProfiledProgram(CounterReader, CProgram):
    """A CProgram whose library times its kernels; run and called exactly as the normal one."""

    def __init__(self, program, source, lib_path, fgraph):
        super().__init__(program, source, lib_path, fgraph)
        self._open_counters(lib_path, int(_ffi.cast("uintptr_t", self.ctx)), program)
