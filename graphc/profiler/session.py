"""Running a function's profiling build: G.profile (time a call `repeat` times, then put every
shared variable back) and watch (a function whose every call is timed, as Theano's
profile=True; GRAPHC_PROFILE=1 watches every function and prints their reports at exit)."""
import statistics
import time

import numpy as np

from ..errors import GraphcError
from ..runtime.function import Function
from .peak import machine_peak
from .report import Report
from .rows import body_work, kernel_rows, kernel_work


class ProfileError(GraphcError, TypeError):
    pass


class ProfiledFunction(Function):
    """A Function that runs the profiling build of another one (same graph, kernels, memory plan
    and call path; timers around each kernel). Its calls train as the original's do; report()
    gives the mean per call over every call since the last reset()."""

    def __init__(self, fn):
        if not isinstance(fn, Function):
            raise ProfileError(f"graphc.profile: expected a compiled function (graphc.function), "
                               f"got {type(fn).__name__}")
        original = getattr(fn, "original", fn)
        make = getattr(original.program, "profiled", None)
        if make is None:
            raise ProfileError(_unprofiled_target_message(fn.name, original))
        executable = make(original.fgraph, original.name)
        super().__init__(original.fgraph, executable, original.checker, original.name,
                         original.single_output, original.timings, original._pass_log)
        if hasattr(original, "_source"):
            self._source = original._source  # pickles as the original: compiled again on load
        self.original = original
        self.reset()

    def __call__(self, *args, **kwargs):
        if self._dim_symbols:  # what the FLOPs and bytes are of (profiling only: ~10 us)
            try:
                key = tuple(int(d) for d in self.checker.check(
                    self._merge_kwargs(args, kwargs) if kwargs else args)[1])
            except GraphcError:
                key = None  # the call raises it below
            if key is not None:
                self.dim_counts[key] = self.dim_counts.get(key, 0) + 1
        t0 = time.monotonic()
        try:
            return self._call(*args, **kwargs)  # (the native call path, or the checked one)
        finally:
            t1 = time.monotonic()
            self.wall_s += t1 - t0
            self.last_call = (t0, t1)

    def reset(self):
        self.wall_s, self.last_call = 0.0, None
        self._dim_symbols = list(self.program.program.dim_symbols)
        self.dim_counts = {} if self._dim_symbols else {(): 1}
        self.program.reset()

    def report(self, peak=None):
        """The mean per call over every call since the last reset() (None before the first).
        peak: as for graphc.profile."""
        c = self.program.counters()
        if c.calls == 0:
            return None
        program = self.program.program
        if peak is None:
            peak = _default_peak(self.program)
        call = self.wall_s / c.calls
        common = max(self.dim_counts, key=self.dim_counts.get, default=())
        dims = {s.name: v for s, v in zip(self._dim_symbols, common)}
        loops = {i: (n / c.calls, body / c.calls, None) for i, (n, body) in c.loops.items()}
        rows = kernel_rows(program, kernel_work(program, self.dim_counts), c.kernel_s / c.calls,
                           call, peak or None, loops=loops,
                           loop_work=body_work(program, self.dim_counts))
        run = c.run_s / c.calls
        trace = []  # the most recent call, for to_chrome_trace
        if self.last_call is not None:
            trace.append({"t0": self.last_call[0], "t1": self.last_call[1], "run_t0": c.last_t0,
                          "run_s": c.last_run_s, "starts": c.last_start.tolist(),
                          "durations": c.last_s.tolist()})
        return Report(self.name, "mean", c.calls, dims, call, run, rows,
                      c_overhead_seconds=run - sum(r.seconds for r in rows),
                      python_overhead_seconds=call - run, peak=peak or None, trace=trace)


def _default_peak(executable):
    """The machine's peak (measured once, cached), or False (no fraction of peak) for a device's
    kernels: the host's peak says nothing of them, and the device's is not measured yet."""
    if getattr(executable, "runs_on_device", False):
        return False
    return machine_peak(_float_types(executable.program))


def _unprofiled_target_message(name, fn):
    return (f"{name}: its backend runs no compiled kernels to time (the py backend runs numpy); "
            "compile it with backend='c' to profile it")


def _twin(fn):
    """The profiling twin of `fn` that G.profile runs: made once per function, its counters
    apart from a watched function's."""
    original = getattr(fn, "original", fn)
    twin = original.__dict__.get("_profiling_twin")
    if twin is None:
        twin = original.__dict__["_profiling_twin"] = ProfiledFunction(original)
    return twin


class _Restore:
    """Every variable a function updates, as it was: put back after each call and at the end,
    so profiling never trains the model (the arrays themselves too: in-place updates wrote
    into them)."""

    def __init__(self, fn):
        self.saved = [(sv, sv._value, sv._value.copy()) for sv in fn.fgraph.update_targets]

    def __call__(self):
        for sv, array, copy in self.saved:
            with sv._lock:
                np.copyto(array, copy)
                sv._value = array


def profile(fn, *args, repeat=20, warmup=2, peak=None, compare=True):
    """Time the kernels of `fn` on these arguments: `repeat` calls of its profiling build (after
    `warmup` untimed ones), interleaved with calls of the normal build; returns a Report (print
    it for the table). A function with updates is left with every shared variable exactly as
    before. peak: a Peak, None (the machine's, measured once and cached) or False (no fraction of
    peak). compare=False skips the normal build's calls."""
    if not isinstance(repeat, int) or repeat < 1:
        raise ProfileError(f"graphc.profile: repeat must be a positive int, got {repeat!r}")
    twin = _twin(fn)
    original = twin.original
    arrays, dim_values = original.checker.check(args)  # the same errors as a call, up front
    restore = _Restore(original)
    calls, normal, loop_calls = [], [], []  # loop_calls: each call's {loop: (its, body s)}
    loops_before = twin.program.counters().loops  # (loop counters are sums: take differences)
    try:
        for n in range(warmup + repeat):
            if compare:
                t = time.perf_counter()
                original(*args)
                if n >= warmup:
                    normal.append(time.perf_counter() - t)
                restore()
            twin(*args)
            c = twin.program.counters()
            restore()
            if n >= warmup:
                loop_calls.append({i: (its - loops_before[i][0], body - loops_before[i][1])
                                   for i, (its, body) in c.loops.items()})
            loops_before = c.loops
            if n >= warmup:
                t0, t1 = twin.last_call
                calls.append({"t0": t0, "t1": t1, "run_t0": c.last_t0, "run_s": c.last_run_s,
                              "starts": c.last_start.tolist(), "durations": c.last_s.tolist()})
    finally:
        restore()
    program = twin.program.program
    dims = tuple(int(d) for d in dim_values)
    if peak is None:
        peak = _default_peak(twin.program)
    durations = np.array([c["durations"] for c in calls]).reshape(len(calls), -1)
    call = statistics.median(c["t1"] - c["t0"] for c in calls)
    loops = {}
    for i in loop_calls[0]:
        body = np.array([lc[i][1] for lc in loop_calls])
        loops[i] = (statistics.median(lc[i][0] for lc in loop_calls), np.median(body, axis=0),
                    body.mean(axis=0))
    rows = kernel_rows(program, kernel_work(program, {dims: 1}), np.median(durations, axis=0),
                       call, peak or None, min_seconds=durations.min(axis=0),
                       mean_seconds=durations.mean(axis=0), loops=loops,
                       loop_work=body_work(program, {dims: 1}))
    return Report(original.name, "median", repeat,
                  {s.name: v for s, v in zip(program.dim_symbols, dims)}, call,
                  statistics.median(c["run_s"] for c in calls), rows,
                  c_overhead_seconds=statistics.median(c["run_s"] - sum(c["durations"])
                                                       for c in calls),
                  python_overhead_seconds=statistics.median(c["t1"] - c["t0"] - c["run_s"]
                                                            for c in calls),
                  unprofiled_call_seconds=statistics.median(normal) if normal else None,
                  mean_call_seconds=statistics.fmean(c["t1"] - c["t0"] for c in calls),
                  peak=peak or None, trace=calls)


def _float_types(program):
    found = {k.params["dtype"] for k in program.kernels
             if k.kind == "gemm" or k.kind.startswith(("conv_direct", "conv_blocked"))}
    return tuple(sorted(found & {"float32", "float64"})) or ("float32",)
