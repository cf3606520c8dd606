"""Timing and reporting utilities for the benchmark suite.

* :func:`measure` - median / IQR of a zero-argument callable (perf_counter,
  warm-up first, auto-batched for sub-millisecond calls, GC off while timing).
* :func:`memcpy_bandwidth` - numpy copy of a big array, GB/s counting read+write;
  a rough "how fast is this (shared, noisy) machine right now" reference.
* :class:`Results` - collects entries, prints the markdown table (with
  graphc/peer ratios once graphc has numbers) and writes JSON.
"""
from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

perf_counter = time.perf_counter
NOISY = 0.2  # other_cpu above this marks a measurement as noisy in the table


@dataclass
class Timing:
    median: float          # seconds per call
    q1: float
    q3: float
    iqr: float
    runs: int              # number of samples
    number: int            # calls per sample (>1 only for very fast calls)
    min: float
    mean: float
    total_time: float      # wall time spent measuring (excl. warm-up)
    other_cpu: float | None = None  # share of the machine's CPUs busy with *other*
                                    # processes while sampling (0 = quiet, 1 = all cores)

    def as_dict(self):
        return asdict(self)


def _quantile(sorted_xs, q):
    if len(sorted_xs) == 1:
        return sorted_xs[0]
    pos = q * (len(sorted_xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


_CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _system_busy_seconds():
    """CPU-seconds spent busy by all processes (from /proc/stat), or None."""
    try:
        with open("/proc/stat") as fh:
            f = fh.readline().split()[1:]
    except OSError:
        return None
    v = [int(x) for x in f]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    busy = sum(v[:8]) - idle                      # user..steal
    return busy / _CLK


def _self_cpu_seconds():
    t = os.times()  # includes waited-for children (the runner's compile subprocesses)
    return t.user + t.system + t.children_user + t.children_system


class CpuMonitor:
    """Fraction of the machine used by *other* processes over an interval:
    (system busy CPU-s - this process's CPU-s) / (wall * ncpu)."""

    def __init__(self):
        self.t0 = perf_counter()
        self.b0 = _system_busy_seconds()
        self.s0 = _self_cpu_seconds()

    def other(self):
        b1 = _system_busy_seconds()
        if self.b0 is None or b1 is None:
            return None
        wall = perf_counter() - self.t0
        if wall <= 0:
            return None
        other = (b1 - self.b0) - (_self_cpu_seconds() - self.s0)
        return max(0.0, min(1.0, other / (wall * (os.cpu_count() or 1))))


def other_cpu_now(interval=0.5):
    """Sample how busy other processes keep the machine for ``interval`` s."""
    m = CpuMonitor()
    time.sleep(interval)
    return m.other()


def wait_for_quiet(max_wait, threshold=0.15, interval=0.5):
    """Wait (up to ``max_wait`` s) until other processes use < threshold of the CPUs."""
    deadline = perf_counter() + max_wait
    o = other_cpu_now(interval)
    while o is not None and o >= threshold and perf_counter() < deadline:
        time.sleep(1.0)
        o = other_cpu_now(interval)
    return o


def measure(fn, warmup=3, min_runs=10, min_time=1.0, max_time=30.0, min_sample=2e-4,
            max_runs=100000):
    """Time ``fn()``: median and IQR in seconds per call.

    ``warmup`` calls are made first (not timed).  Then samples are taken until
    at least ``min_runs`` samples *and* ``min_time`` seconds have accumulated,
    or ``max_time`` seconds have passed (with at least 3 samples).  Calls faster
    than ``min_sample`` seconds are batched ``number`` to a sample so that timer
    resolution/overhead does not dominate; each sample is then divided by
    ``number``.  The garbage collector is disabled while sampling.
    """
    for _ in range(warmup):
        fn()
    # calibrate calls per sample
    number = 1
    t0 = perf_counter()
    fn()
    t1 = perf_counter() - t0
    if t1 < min_sample:
        while True:
            t0 = perf_counter()
            for _ in range(number):
                fn()
            dt = perf_counter() - t0
            if dt >= min_sample or number >= 1 << 20:
                break
            number *= 2 if dt <= 0 else max(2, min(10, int(min_sample / dt) + 1))
    samples = []
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    mon = CpuMonitor()
    try:
        start = perf_counter()
        while True:
            t0 = perf_counter()
            for _ in range(number):
                fn()
            samples.append((perf_counter() - t0) / number)
            elapsed = perf_counter() - start
            if len(samples) >= min_runs and elapsed >= min_time:
                break
            if elapsed >= max_time and len(samples) >= 3:
                break
            if len(samples) >= max_runs:
                break
    finally:
        if was_enabled:
            gc.enable()
    s = sorted(samples)
    q1, q3 = _quantile(s, 0.25), _quantile(s, 0.75)
    return Timing(median=statistics.median(s), q1=q1, q3=q3, iqr=q3 - q1, runs=len(s),
                  number=number, min=s[0], mean=statistics.fmean(s),
                  total_time=perf_counter() - start, other_cpu=mon.other())


def memcpy_bandwidth(nbytes=256 * 1024 * 1024, repeats=7):
    """numpy copy of an ``nbytes`` array; GB/s counting read + write (2*nbytes)."""
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault pages in
    times = []
    for _ in range(repeats):
        t0 = perf_counter()
        np.copyto(dst, src)
        times.append(perf_counter() - t0)
    times.sort()
    moved = 2 * src.nbytes / 1e9
    return {"bytes": int(src.nbytes), "gbps_best": moved / times[0],
            "gbps_median": moved / statistics.median(times)}


# ------------------------------------------------------------------ formatting
def fmt_time(sec):
    if sec is None:
        return "-"
    if sec >= 1.0:
        return f"{sec:.2f} s"
    if sec >= 1e-3:
        return f"{sec * 1e3:.3g} ms" if sec < 0.1 else f"{sec * 1e3:.0f} ms"
    if sec >= 1e-6:
        return f"{sec * 1e6:.3g} us"
    return f"{sec * 1e9:.3g} ns"


def machine_info():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"python": sys.version.split()[0], "numpy": np.__version__,
            "platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count()}


@dataclass
class Entry:
    workload: str
    peer: str
    status: str                     # ok | skipped | error
    message: str = ""
    timing: dict | None = None      # Timing.as_dict()
    build_s: float | None = None    # builder (graph construction + eager compile)
    first_call_s: float | None = None  # first step() (includes lazy JIT)
    cold_s: float | None = None     # compile workload only
    warm_s: float | None = None
    import_s: float | None = None
    note: str = ""
    check: dict | None = None       # agreement with the reference
    loadavg: list | None = None     # os.getloadavg() just before measuring (noise hint)
    other_cpu: float | None = None  # compile workload: other processes' CPU share

    @property
    def median(self):
        if self.cold_s is not None:
            return self.cold_s
        return self.timing["median"] if self.timing else None


@dataclass
class Results:
    meta: dict = field(default_factory=dict)
    entries: list = field(default_factory=list)

    def add(self, entry: Entry):
        self.entries.append(entry)
        return entry

    def get(self, workload, peer):
        for e in self.entries:
            if e.workload == workload and e.peer == peer:
                return e
        return None

    def workloads(self):
        seen = []
        for e in self.entries:
            if e.workload not in seen:
                seen.append(e.workload)
        return seen

    def peers(self):
        seen = []
        for e in self.entries:
            if e.peer not in seen:
                seen.append(e.peer)
        return seen

    def row_name(self, workload):
        return self.meta.get("row_names", {}).get(workload, workload)

    # -------------------------------------------------------------- output
    def _cell(self, e):
        if e is None:
            return ""
        if e.status == "skipped":
            return "skip"
        if e.status == "error":
            return "ERROR"
        if e.cold_s is not None:
            warm = f" / {fmt_time(e.warm_s)}" if e.warm_s is not None else ""
            noisy = " ~" if (e.other_cpu or 0) > NOISY else ""
            return f"{fmt_time(e.cold_s)}{warm}{noisy}"
        t = e.timing
        bad = " (!)" if e.check and not e.check.get("ok", True) else ""
        noisy = " ~" if (t.get("other_cpu") or 0) > NOISY else ""
        return f"{fmt_time(t['median'])} ±{fmt_time(t['iqr'] / 2)}{noisy}{bad}"

    def table(self):
        peers = self.peers()
        lines = []
        head = "| workload | " + " | ".join(peers) + " |"
        lines.append(head)
        lines.append("|" + "---|" * (len(peers) + 1))
        for w in self.workloads():
            cells = [self._cell(self.get(w, p)) for p in peers]
            lines.append(f"| {self.row_name(w)} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Cells: median ± IQR/2 per step; compile_mlp: cold / warm seconds "
                     "(fresh process; cold = empty on-disk caches). (!) = result disagrees "
                     "with the numpy reference. ~ = other processes kept more than "
                     f"{NOISY:.0%} of the CPUs busy while it was measured (noisy).")
        ratio = self.ratio_table()
        if ratio:
            lines.append("")
            lines.append(ratio)
        probs = [e for e in self.entries if e.status != "ok"]
        notes = [e for e in self.entries if e.status == "ok" and e.note]
        if probs or notes:
            lines.append("")
            lines.append("Notes:")
            for e in probs:
                lines.append(f"- {e.workload}/{e.peer}: {e.status}: {e.message}")
            for e in notes:
                lines.append(f"- {e.workload}/{e.peer}: {e.note}")
        return "\n".join(lines)

    def ratio_table(self, ours="graphc"):
        """graphc/peer median ratios (<1 means graphc is faster)."""
        rows = []
        peers = [p for p in self.peers() if p != ours]
        for w in self.workloads():
            g = self.get(w, ours)
            if g is None or g.status != "ok" or not g.median:
                continue
            cells = []
            for p in peers:
                e = self.get(w, p)
                if e is None or e.status != "ok" or not e.median:
                    cells.append("")
                else:
                    cells.append(f"{g.median / e.median:.2f}x")
            rows.append(f"| {self.row_name(w)} | " + " | ".join(cells) + " |")
        if not rows:
            return ""
        head = [f"Ratio {ours}/peer (median time; < 1 means {ours} is faster):", "",
                "| workload | " + " | ".join(peers) + " |", "|" + "---|" * (len(peers) + 1)]
        return "\n".join(head + rows)

    def sort(self, workload_order, peer_order):
        def key(e):
            w = workload_order.index(e.workload) if e.workload in workload_order else 99
            p = peer_order.index(e.peer) if e.peer in peer_order else 99
            return (w, p)
        self.entries.sort(key=key)

    def to_json(self):
        return {"meta": self.meta, "entries": [asdict(e) for e in self.entries]}

    def write_json(self, directory):
        os.makedirs(directory, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = os.path.join(directory, f"run-{stamp}.json")
        data = json.dumps(self.to_json(), indent=1, default=str)
        for p in (path, os.path.join(directory, "latest.json")):
            with open(p, "w") as fh:
                fh.write(data)
        return path
