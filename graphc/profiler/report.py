"""The profiler's report: one row per kernel in execution order, totals per kernel kind, the
call's time outside kernels; as a table (str), JSON (to_json) and a Chrome trace
(to_chrome_trace: chrome://tracing, https://ui.perfetto.dev)."""
import json
import re
from dataclasses import asdict, dataclass, field

# Names the compiler makes up (v12, out0, const3, shared4): not the user's.
_MADE_UP = re.compile(r"(v|out|const|shared)\d+")
_USER_NAME = re.compile(r"[A-Za-z_][\w.:/-]*")


def user_names(kernel):
    """The user's names of the values a kernel reads and writes (inputs, parameters such as a
    graphc.nn layer's "conv1.W", named intermediates), in order, once each."""
    names = []
    for b in kernel.inputs + kernel.outputs:
        if b.name and _USER_NAME.fullmatch(b.name) and not _MADE_UP.fullmatch(b.name) \
                and b.name not in names:
            names.append(b.name)
    return names


@dataclass
class KernelRow:
    index: int
    kind: str
    ops: str  # the ops fused into it (the kernel's label)
    names: list  # the user's names of what it reads and writes
    seconds: float  # median (G.profile) or mean (watched calls) per call
    share: float  # of the call
    flops: int
    bytes: int
    dtype: str
    bound: str = ""  # "compute" or "memory": which peak the fraction is of
    rate: float = 0.0  # GFLOP/s (compute) or GB/s (memory)
    peak_fraction: float | None = None
    min_seconds: float | None = None
    mean_seconds: float | None = None
    # a loop kernel (G.scan's C loop): iterations a call, and a row per body kernel (its time,
    # FLOPs and bytes summed over the iterations; index: its place in the body)
    iterations: float | None = None
    body: list = field(default_factory=list)

    @property
    def rate_unit(self):
        return "GFLOP/s" if self.bound == "compute" else "GB/s"


@dataclass
class Report:
    function: str
    statistic: str  # "median" over repeats, or "mean" over a watched function's calls
    calls: int
    dims: dict
    call_seconds: float  # the profiled call, timed from Python (what the kernels are a part of)
    run_seconds: float  # inside the compiled program (gc_run)
    kernels: list
    # The call outside kernels, split: inside the compiled program (size checks, workspace) and
    # in Python (argument checks, outputs, updates); medians of each call's own difference.
    c_overhead_seconds: float = 0.0
    python_overhead_seconds: float = 0.0
    unprofiled_call_seconds: float | None = None  # the normal build (no timers), same inputs
    mean_call_seconds: float | None = None  # (means add up where medians need not)
    peak: object = None
    trace: list = field(default_factory=list, repr=False)  # per call: times (see to_chrome_trace)

    # --- derived ---
    @property
    def kernel_seconds(self):
        return sum(k.seconds for k in self.kernels)

    @property
    def overhead_seconds(self):
        """The call's time outside kernels: Python (argument checks, outputs, updates) and C
        (size checks, workspace), each measured per call."""
        return self.c_overhead_seconds + self.python_overhead_seconds

    def kernels_seconds_except(self, rows):
        skip = {id(k) for k in rows}
        return sum(k.seconds for k in self.kernels if id(k) not in skip)

    def by_kind(self):
        """[(kind, kernels, seconds, share of the call)], the most time first."""
        kinds = {}
        for k in self.kernels:
            count, seconds = kinds.get(k.kind, (0, 0.0))
            kinds[k.kind] = (count + 1, seconds + k.seconds)
        rows = [(kind, n, s, s / self.call_seconds if self.call_seconds else 0.0)
                for kind, (n, s) in kinds.items()]
        return sorted(rows, key=lambda r: -r[2])

    # --- output ---
    def to_dict(self):
        d = {"function": self.function, "statistic": self.statistic, "calls": self.calls,
             "dims": dict(self.dims), "call_seconds": self.call_seconds,
             "run_seconds": self.run_seconds, "kernel_seconds": self.kernel_seconds,
             "overhead_seconds": self.overhead_seconds,
             "c_overhead_seconds": self.c_overhead_seconds,
             "python_overhead_seconds": self.python_overhead_seconds,
             "unprofiled_call_seconds": self.unprofiled_call_seconds,
             "mean_call_seconds": self.mean_call_seconds,
             "kernels": [asdict(k) for k in self.kernels],
             "by_kind": [{"kind": kind, "kernels": n, "seconds": s, "share": share}
                         for kind, n, s, share in self.by_kind()]}
        if self.peak is not None:
            d["peak"] = {"gemm_gflops": dict(self.peak.gemm_gflops),
                         "copy_gbps": {str(n): v for n, v in self.peak.copy_gbps.items()},
                         "machine": self.peak.machine,
                         "measured": self.peak.measured}
        return d

    def to_json(self, indent=1):
        return json.dumps(self.to_dict(), indent=indent)

    def chrome_trace(self):
        """The calls as Chrome trace events (JSON object format): per call, the Python call, the
        compiled program's run inside it, and each kernel inside that, at the times measured (in
        microseconds from the first call)."""
        events = [{"ph": "M", "pid": 1, "tid": 1, "name": "process_name",
                   "args": {"name": f"graphc {self.function}"}},
                  {"ph": "M", "pid": 1, "tid": 1, "name": "thread_name",
                   "args": {"name": "calls"}}]
        if not self.trace:
            return {"traceEvents": events, "displayTimeUnit": "ns"}
        origin = min(c["t0"] for c in self.trace)

        def us(t):
            return round((t - origin) * 1e6, 3)

        for n, call in enumerate(self.trace):
            events.append({"ph": "X", "pid": 1, "tid": 1, "cat": "call", "name": self.function,
                           "ts": us(call["t0"]), "dur": round((call["t1"] - call["t0"]) * 1e6, 3),
                           "args": {"call": n}})
            events.append({"ph": "X", "pid": 1, "tid": 1, "cat": "run", "name": "gc_run",
                           "ts": us(call["run_t0"]), "dur": round(call["run_s"] * 1e6, 3),
                           "args": {}})
            for k, start, dur in zip(self.kernels, call["starts"], call["durations"]):
                events.append({"ph": "X", "pid": 1, "tid": 1, "cat": k.kind,
                               "name": f"k{k.index} {k.kind}", "ts": us(start),
                               "dur": round(dur * 1e6, 3),
                               "args": {"ops": k.ops, "names": ", ".join(k.names),
                                        "flops": k.flops, "bytes": k.bytes}})
        return {"traceEvents": events, "displayTimeUnit": "ns"}

    def to_chrome_trace(self, path):
        """Write the trace (chrome_trace()) to `path`; open it in chrome://tracing or Perfetto."""
        with open(path, "w") as fh:
            json.dump(self.chrome_trace(), fh)
        return path

    def table(self, top=None):
        """The table as text; top=N: only the N kernels that took the most time (still in
        execution order), the rest summed on one line."""
        return format_table(self, top)

    def __str__(self):
        return format_table(self)

    def _repr_pretty_(self, p, cycle):  # IPython shows the table
        p.text(str(self))


def seconds_text(s):
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(s) >= scale:
            return f"{s / scale:.3g} {unit}" if abs(s) < 100 * scale else f"{s / scale:.0f} {unit}"
    return f"{s * 1e9:.0f} ns"


def count_text(n):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _table_row(label, k):
    ops = k.ops if len(k.ops) <= 38 else k.ops[:35] + "..."
    names = ", ".join(k.names)
    names = names if len(names) <= 24 else names[:21] + "..."
    rate = f"{k.rate:.3g} {k.rate_unit}" if k.seconds > 0 and (k.flops or k.bytes) else "-"
    peak = f"{k.peak_fraction * 100:.0f}%" if k.peak_fraction is not None else "-"
    return (label, k.kind, ops, names, seconds_text(k.seconds), f"{k.share * 100:.1f}",
            count_text(k.flops), count_text(k.bytes), rate, peak)


def format_table(r, top=None):
    dims = ", ".join(f"{k}={v}" for k, v in r.dims.items())
    lines = [f"graphc profile of {r.function}: {r.statistic} of {r.calls} calls"
             + (f" ({dims})" if dims else "")]
    head = ("kernel", "kind", "ops", "names", "time", "% call", "FLOPs", "bytes", "rate", "peak")
    rows = []
    shown = r.kernels
    if top is not None and len(shown) > top:
        keep = {id(k) for k in sorted(shown, key=lambda k: -k.seconds)[:top]}
        shown = [k for k in r.kernels if id(k) in keep]
    for k in shown:
        rows.append(_table_row(f"k{k.index}", k))
        # a loop's body kernels under it (indented): time summed over its iterations
        rows += [_table_row(f"  k{k.index}.{b.index}", b) for b in k.body]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    numeric = {4, 5, 6, 7, 8, 9}
    for row in [head] + rows:
        lines.append("  ".join(str(x).rjust(w) if i in numeric else str(x).ljust(w)
                               for i, (x, w) in enumerate(zip(row, widths))).rstrip())
    if len(shown) < len(r.kernels):
        rest = r.kernels_seconds_except(shown)
        lines.append(f"... {len(r.kernels) - len(shown)} more kernels: {seconds_text(rest)} "
                     f"({rest / r.call_seconds * 100 if r.call_seconds else 0:.1f}% of the call)")
    for k in shown:
        if k.iterations is not None:
            # (means add up where medians need not)
            means = [k.mean_seconds] + [b.mean_seconds for b in k.body]
            own = (means[0] - sum(means[1:]) if None not in means else
                   k.seconds - sum(b.seconds for b in k.body))
            lines.append(f"k{k.index} loop: {k.iterations:.3g} iterations a call; k{k.index}.N are "
                         f"its body's kernels, time summed over the iterations (the loop's own "
                         f"{seconds_text(own)}: slices, state swaps, timers)")
    lines.append("")
    lines.append("totals per kernel kind:")
    for kind, n, s, share in r.by_kind():
        lines.append(f"  {kind:<24} {n:>3} kernel{'s' if n != 1 else ' '}  {seconds_text(s):>10}"
                     f"  {share * 100:5.1f}%")
    kern = r.kernel_seconds
    lines.append("")
    lines.append(f"call {seconds_text(r.call_seconds)} ({r.statistic}); outside kernels "
                 f"{seconds_text(r.overhead_seconds)}: {seconds_text(r.c_overhead_seconds)} in "
                 f"the compiled program (size checks, workspace), "
                 f"{seconds_text(r.python_overhead_seconds)} in Python (argument checks, "
                 "outputs, updates)")
    means = [k.mean_seconds for k in r.kernels]
    share = f"{kern / r.call_seconds * 100:.1f}%" if r.call_seconds else "-"
    if r.mean_call_seconds and None not in means:
        lines.append(f"kernels {seconds_text(kern)} ({share} of the call); the means over the "
                     f"same calls add up: call {seconds_text(r.mean_call_seconds)}, kernels "
                     f"{seconds_text(sum(means))} ({sum(means) / r.mean_call_seconds * 100:.1f}%)")
    else:
        lines.append(f"kernels {seconds_text(kern)} ({share} of the call)")
    if r.unprofiled_call_seconds is not None:
        lines.append(f"the normal build (no timers), same inputs: "
                     f"{seconds_text(r.unprofiled_call_seconds)} a call")
    if r.peak is not None:
        lines.append(f"peak: {r.peak.describe()}; measure again on a quiet machine: "
                     "graphc profile --remeasure-peak")
    lines.append("(times on a loaded machine vary from run to run: compare within one report)")
    return "\n".join(lines)
