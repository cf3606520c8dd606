"""The machine's measured peak, the denominators of the profiler's "fraction of peak": gemm
GFLOP/s (per float type) and copy bandwidth, each measured once with graphc's own compiled
kernels (so the peak is what graphc's gemm and a streaming loop reach on all of this process's
threads) and cached per machine in GRAPHC_CACHE_DIR/profile/peak.json."""
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field

import numpy as np

GEMM_SIZE = 1024  # an n x n x n product: 2 GFLOP, large enough for every thread to be busy
# Copies of float32 arrays of these lengths: 128 KiB moved (in a core's cache), 4 MiB (in the
# last-level cache), 64 MiB (memory). A kernel's bandwidth is compared with the copy that moves
# as many bytes as it does: a small kernel running from cache is not "above peak".
COPY_ELEMENTS = (1 << 14, 1 << 19, 1 << 23)
_FILE = "peak.json"


@dataclass
class Peak:
    gemm_gflops: dict = field(default_factory=dict)  # float type -> GFLOP/s
    copy_gbps: dict = field(default_factory=dict)  # bytes moved -> (read + written) / s / 1e9
    machine: str = ""
    measured: str = ""  # when (UTC)

    def gflops(self, dtype):
        return self.gemm_gflops.get(dtype) or self.gemm_gflops.get("float32")

    def bandwidth(self, nbytes):
        """GB/s of the copy that moves at least `nbytes` (the largest when none does); never
        less than a larger copy reached (a smaller one fits in a nearer cache)."""
        if not self.copy_gbps:
            return None
        sizes = sorted(self.copy_gbps)
        size = next((n for n in sizes if n >= nbytes), sizes[-1])
        return max(v for n, v in self.copy_gbps.items() if n >= size)

    def describe(self):
        gemm = ", ".join(f"{d} {v:,.1f}" for d, v in sorted(self.gemm_gflops.items()))
        copy = ", ".join(f"{_size_text(n)} {v:,.1f}" for n, v in sorted(self.copy_gbps.items()))
        return (f"gemm GFLOP/s {gemm}; copy GB/s {copy} "
                f"(measured {self.measured or 'now'} on {self.machine})")


def _size_text(n):
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def machine_key():
    """What the peak depends on: the CPU model, the CPUs this process may use and the thread
    count asked for."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}; {cpus} cpus; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')}"


def _finite_positive(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and value > 0


def _records(data):
    """{machine key: record} of the cache file's bytes ({} when they are not that)."""
    try:
        records = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return records if isinstance(records, dict) else {}


def parse(data, machine):
    """A Peak from the cache file's bytes, or None when they hold no well-formed record of this
    machine (the file is input like any other: anything unexpected is measured again). The file
    maps machine keys to records (a home directory shared by machines, or thread settings)."""
    return parse_record(_records(data).get(machine), machine)


def parse_record(record, machine):
    if not isinstance(record, dict) or record.get("machine") != machine:
        return None
    gemm, copy = record.get("gemm_gflops"), record.get("copy_gbps")
    if not isinstance(gemm, dict) or not isinstance(copy, dict):
        return None
    gemm = {k: float(v) for k, v in gemm.items()
            if k in ("float32", "float64") and _finite_positive(v)}
    sizes = {str(8 * n): 8 * n for n in COPY_ELEMENTS}  # (JSON keys are strings)
    copy = {sizes[k]: float(v) for k, v in copy.items() if k in sizes and _finite_positive(v)}
    if len(copy) != len(COPY_ELEMENTS):
        return None
    measured = record.get("measured") if isinstance(record.get("measured"), str) else ""
    return Peak(gemm, copy, machine, measured[:40])


def _path():
    from ..targets.c.cache_trust import private_dir
    return os.path.join(private_dir("profile"), _FILE)


def _best_seconds(fn, args, repeat):
    fn(*args)  # warm: pages touched, threads started
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t)
    return best


def measure_gemm(dtype, n=GEMM_SIZE, repeat=5):
    from ..compiler import function
    from ..ir.constructors import tensor
    from ..ir.ops.blas import dot
    a, b = tensor("a", (n, n), dtype), tensor("b", (n, n), dtype)
    f = function([a, b], dot(a, b), name="peak_gemm")
    x = np.random.RandomState(0).rand(n, n).astype(dtype)
    return 2.0 * n ** 3 / _best_seconds(f, (x, x), repeat) / 1e9


def measure_copy(lengths=COPY_ELEMENTS):
    """{bytes moved: GB/s} of a streaming float32 loop (one load, one store per element)."""
    from ..compiler import function
    from ..ir.constructors import tensor
    from ..ir.types import dim
    x = tensor("x", (dim("n"),), "float32")
    f = function([x], -x, name="peak_copy")
    out = {}
    for n in lengths:
        data = np.ones(n, "float32")
        repeat = max(5, min(200, (1 << 24) // n))
        out[8 * n] = 8.0 * n / _best_seconds(f, (data,), repeat) / 1e9
    return out


def machine_peak(dtypes=("float32",), measure=True, remeasure=False):
    """The cached Peak, with every dtype in `dtypes` measured first where the cache lacks it
    (a few seconds, once per machine). measure=False: what the cache has, or None.
    remeasure=True: measure again (the first measurement ran while the machine was busy)."""
    from ..targets.c.cache_trust import parse_trusted, read_trusted, write_private
    machine = machine_key()
    path = _path()
    peak = None if remeasure else parse_trusted(path, lambda data: parse(data, machine))
    missing = [d for d in dtypes if peak is None or d not in peak.gemm_gflops]
    if not missing:
        return peak
    if not measure:
        return peak
    peak = Peak(dict(peak.gemm_gflops) if peak else {}, dict(peak.copy_gbps) if peak else {},
                machine)
    for dtype in missing:
        peak.gemm_gflops[dtype] = measure_gemm(dtype)
    if not peak.copy_gbps:
        peak.copy_gbps = measure_copy()
    peak.measured = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    record = {"machine": machine, "gemm_gflops": peak.gemm_gflops,
              "copy_gbps": {str(n): v for n, v in peak.copy_gbps.items()},
              "measured": peak.measured}
    records = _records(read_trusted(path) or b"")
    records = {k: v for k, v in records.items()
               if isinstance(k, str) and parse_record(v, k) is not None}  # (well-formed only)
    records[machine] = record
    write_private(path, json.dumps(records, indent=1).encode())
    return peak
