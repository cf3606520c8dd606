"""The CUDA target's profiling build: the same Program rendered with a cudaEvent pair around each
kernel's launches (templates/cuda/_profile.cu.j2, the `profile` render option), built into its own
cached library and loaded beside the normal one. The normal build carries no events.

The counters have the C target's layout (targets/c/profiling.py), so graphc.profiler reads both
alike; emulated (GRAPHC_CUDA_EMULATE=1), the emulator's events read the host clock."""
from ..c.profiling import CounterReader, loop_slots
from .executable import CudaProgram

# loop.cu.j2 numbers a loop's body kernels (ki + 1) * 1000 + j: a top-level loop at 1000 or past
# would share its index with a nested loop, so only those before get body timers (its row keeps
# the loop's own time).
MAX_TIMED_LOOP = 1000


def profile_context(program):
    """The template context of the profiling build: counter slots and event numbers."""
    n = max(1, len(program.kernels))
    slots, extra = loop_slots(program)
    slots = {i: at for i, at in slots.items() if i < MAX_TIMED_LOOP}
    events, next_event = {}, 1 + 2 * n
    for i in slots:
        events[i] = next_event
        next_event += 2 * len(program.kernels[i].params["body"].kernels)
    return {"profile": True, "profile_kernels": n, "profile_loop_slots": slots,
            "profile_loop_events": events, "profile_extra": extra, "profile_events": next_event}


def render_profiled(program, name):
    """The profiling build's CUDA source: one translation unit (the counters are the context's)."""
    from .render_cuda import render_program
    return render_program(program, name, extra=profile_context(program))


def build_profiled(program, name, fgraph):
    """A ProfiledCudaProgram for `program` (the kernel Program of a compiled CUDA function)."""
    from .target import CudaTarget
    source = render_profiled(program, name)
    built = CudaTarget().build([source], program, name)
    executable = ProfiledCudaProgram(program, source, built.path, fgraph)
    executable.lib_sha256, executable.links, executable.loads = built.sha256, built.links, built.loads
    return executable


class ProfiledCudaProgram(CounterReader, CudaProgram):
    """A CudaProgram whose library times its kernels; run and called exactly as the normal one."""

    # the profiler compares its kernels with the device's peak, which no one has measured yet
    # (the host's peak says nothing of them)
    runs_on_device = True

    def __init__(self, program, source, lib_path, fgraph):
        super().__init__(program, source, lib_path, fgraph)
        self._open_counters(lib_path, self.ctx, program)
