"""Each call's OpenMP thread count, chosen from what the machine has free (templates/c/
_thread_choice.j2, in the runtime library): the policy and the /proc/stat parser with injected
readings, and the environment's say (OMP_NUM_THREADS always wins, GRAPHC_THREADS=N fixes N)."""
import ctypes
import os
import subprocess
import sys

import pytest

import graphc as G
from graphc.targets.c import runtime_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def rt():
    x = G.vector("x")
    G.function([x], x + 1)  # loads the runtime library with the BLAS its gemm resolves to
    lib = ctypes.CDLL(runtime_lib.library_path())
    lib.graphc_rt_threads_choose.argtypes = [ctypes.c_int, ctypes.c_int64]
    lib.graphc_rt_threads_others.argtypes = [ctypes.c_int] + [ctypes.c_uint64] * 3
    lib.graphc_rt_threads_others.restype = ctypes.c_int64
    lib.graphc_rt_threads_parse_stat.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                                 ctypes.POINTER(ctypes.c_uint64),
                                                 ctypes.POINTER(ctypes.c_uint64)]
    return lib


@pytest.mark.parametrize("allowed,others,threads", [
    (2, -1, 2),      # no reading yet: every core, as OpenMP's default
    (2, 0, 2), (2, 399, 2),            # a quiet machine, or a neighbour that barely runs
    (2, 400, 1), (2, 1000, 1),         # one core taken (a busy loop beside us)
    (2, 1900, 1), (2, 9000, 1),        # saturated: one thread, never zero
    (16, 1000, 15), (16, 1399, 15), (16, 1400, 14), (16, 16000, 1),
    (1, 0, 1), (0, 0, 1), (-3, 500, 1),
])
def test_one_thread_fewer_per_core_other_processes_fill(rt, allowed, others, threads):
    assert rt.graphc_rt_threads_choose(allowed, others) == threads


@pytest.mark.parametrize("online,busy,total,own,others", [
    (2, 200, 200, 200, 0),      # every busy tick was ours
    (2, 200, 200, 100, 1000),   # half the machine's ticks were someone else's: one core
    (2, 50, 200, 120, 0),       # our CPU clock ran ahead of the tick counts: nobody else
    (4, 300, 400, 100, 2000),
    (2, 10, 0, 0, -1),          # no time passed: no reading
])
def test_others_load_from_two_samples(rt, online, busy, total, own, others):
    assert rt.graphc_rt_threads_others(online, busy, total, own) == others


def _parse(rt, text):
    busy, total = ctypes.c_uint64(), ctypes.c_uint64()
    raw = text.encode() if isinstance(text, str) else text
    rc = rt.graphc_rt_threads_parse_stat(raw, len(raw), ctypes.byref(busy), ctypes.byref(total))
    return None if rc else (busy.value, total.value)


def test_the_stat_line_is_read_as_the_kernel_writes_it(rt):
    line = "cpu  4705 356 584 3699176 23060 0 277 11 0 0"
    # user nice system idle iowait irq softirq steal: busy excludes idle and iowait
    assert _parse(rt, line) == (4705 + 356 + 584 + 277 + 11, 4705 + 356 + 584 + 3699176 + 23060 + 277 + 11)
    assert _parse(rt, "cpu 1 2 3 4") == (6, 10)   # an old kernel's four counts


@pytest.mark.parametrize("text", ["", "cpu", "cpu ", "cpu0 1 2 3 4 5", "intr 1 2 3 4",
                                  "cpu 1 2 3", "cpu a b c d", "cpu -1 2 3 4",
                                  "cpu 99999999999999999999999 1 2 3",
                                  "cpu 18446744073709551615 18446744073709551615 1 1",
                                  b"cpu 1\x00 2 3 4"])
def test_a_malformed_stat_line_is_no_reading(rt, text):
    assert _parse(rt, text) is None


def test_a_truncated_read_parses_only_what_it_was_given(rt):
    raw = b"cpu 10 20 30 40 50 60 70 80"
    busy, total = ctypes.c_uint64(), ctypes.c_uint64()
    assert rt.graphc_rt_threads_parse_stat(raw, 15, ctypes.byref(busy), ctypes.byref(total)) == 0
    assert (busy.value, total.value) == (10 + 20 + 30, 100)   # "cpu 10 20 30 40"


_PROBE = """
import ctypes, sys
import numpy as np
import graphc as G
from graphc.targets.c import runtime_lib
x = G.vector("x")
f = G.function([x], x * 2)
assert (f(np.ones(3, "float32")) == 2).all()
rt = ctypes.CDLL(runtime_lib.library_path())
mode, threads, others = ctypes.c_int(), ctypes.c_int(), ctypes.c_int64()
rt.graphc_rt_threads_state(ctypes.byref(mode), ctypes.byref(threads), ctypes.byref(others))
gomp = ctypes.CDLL("libgomp.so.1")   # the calling thread's setting, as the call left it
print(mode.value, threads.value, gomp.omp_get_max_threads())
"""


def _probe(**env):
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GRAPHC_THREADS")}
    environ.update(env, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=environ, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return tuple(int(v) for v in out.stdout.split())


def test_the_users_omp_num_threads_always_wins():
    # graphc leaves OpenMP alone (mode 0), even with GRAPHC_THREADS set too
    mode, _, omp = _probe(OMP_NUM_THREADS="3", GRAPHC_THREADS="1")
    assert (mode, omp) == (0, 3)


def test_graphc_threads_fixes_the_count_and_auto_adapts():
    assert _probe(GRAPHC_THREADS="1") == (1, 1, 1)
    mode, threads, omp = _probe(GRAPHC_THREADS="auto")
    assert mode == 2 and 1 <= threads <= os.cpu_count() and omp == threads
