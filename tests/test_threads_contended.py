"""A contended program's thread count (templates/c/_thread_choice.j2): while other processes hold
cores, each program times its calls on the load-based count and on every core and keeps the faster
(the pure policy, with injected records); a simulated busy machine (GRAPHC_THREADS_STAT: fake
/proc/stat text) drives a real program through it; large products widen to every core and hand
out their pieces dynamically (templates/c/_gemm_parallel.j2), with the static split's results."""
import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

import graphc as G
from graphc.targets.c import runtime_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUTO, FIXED, LEAVE = 2, 1, 0


class Record(ctypes.Structure):  # graphc_rt_threads_prog (templates/c/_thread_prog.j2)
    _fields_ = [("mean_ns", ctypes.c_int64 * 2), ("calls", ctypes.c_int64),
                ("next_probe", ctypes.c_int64), ("interval", ctypes.c_int64)]


@pytest.fixture(scope="module")
def rt():
    x = G.matrix("x")
    # the program loads the runtime and its BLAS; it stays referenced so neither is unloaded
    keep = G.function([x], G.dot(x, x))
    keep(np.ones((2, 2), "float32"))
    lib = ctypes.CDLL(runtime_lib.library_path())
    lib.keep_loaded = keep
    lib.graphc_rt_threads_pick_arm.argtypes = [ctypes.POINTER(Record)]
    lib.graphc_rt_threads_record.argtypes = [ctypes.POINTER(Record), ctypes.c_int, ctypes.c_int64]
    lib.graphc_rt_threads_widen.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_double]
    return lib


def _run(rt, rec, times):
    """Feed call times (ns per arm) through pick and record; the arms the calls ran on."""
    arms = []
    for _ in range(len(times[0]) + len(times[1])):
        arm = rt.graphc_rt_threads_pick_arm(ctypes.byref(rec))
        arms.append(arm)
        rt.graphc_rt_threads_record(ctypes.byref(rec), arm, times[arm].pop(0) if times[arm] else 10)
    return arms


def test_each_arm_is_timed_first_then_the_faster_runs_and_the_slower_is_probed(rt):
    rec = Record()
    # every core (arm 1) takes 100, the load-based count (arm 0) 300: a program of long kernels
    arms = [rt.graphc_rt_threads_pick_arm(ctypes.byref(rec))]
    for n in range(40):
        arm = arms[-1]
        rt.graphc_rt_threads_record(ctypes.byref(rec), arm, 100 if arm else 300)
        arms.append(rt.graphc_rt_threads_pick_arm(ctypes.byref(rec)))
    assert arms[:2] == [0, 1]              # one call on each
    assert arms.count(0) < 8               # then the faster, with ever rarer probes of the slower
    probes = [i for i, a in enumerate(arms) if a == 0][1:]
    gaps = np.diff(probes)
    assert len(probes) >= 2 and (gaps[1:] >= gaps[:-1]).all() and gaps[-1] > gaps[0]


def test_a_program_that_collapses_on_every_core_stays_on_the_choice(rt):
    rec = Record()
    arms = []
    for _ in range(300):
        arm = rt.graphc_rt_threads_pick_arm(ctypes.byref(rec))
        arms.append(arm)
        rt.graphc_rt_threads_record(ctypes.byref(rec), arm, 1000 if arm else 100)
    assert arms[:2] == [0, 1]
    assert sum(arms) <= 8                  # probes at 4, 8, 16, ... calls: log-many in 300
    assert rec.interval >= 64


def test_when_the_slower_arm_becomes_faster_the_probe_switches_to_it(rt):
    rec = Record()
    for arm, t in [(0, 300), (1, 100)]:
        rt.graphc_rt_threads_record(ctypes.byref(rec), arm, t)
    while rt.graphc_rt_threads_pick_arm(ctypes.byref(rec)) == 1:   # exploit every core...
        rt.graphc_rt_threads_record(ctypes.byref(rec), 1, 100)
    assert rt.graphc_rt_threads_pick_arm(ctypes.byref(rec)) == 0   # ...until the probe
    rt.graphc_rt_threads_record(ctypes.byref(rec), 0, 10)   # finds the choice faster now
    assert rt.graphc_rt_threads_pick_arm(ctypes.byref(rec)) == 0
    assert rec.interval == 4                                 # and probes every core soon again


@pytest.mark.parametrize("mode,chosen,allowed,work,threads", [
    (AUTO, 1, 2, 1e9, 2),        # contended, a long product: every core
    (AUTO, 1, 2, 1e6, 1),        # contended, a short one: the call's choice
    (AUTO, 2, 2, 1e9, 2),        # quiet: unchanged
    (AUTO, 3, 16, 1e9, 16),
    (FIXED, 1, 2, 1e9, 1),       # GRAPHC_THREADS=1 is kept exactly
    (LEAVE, 3, 2, 1e9, 3),       # and so is OMP_NUM_THREADS
])
def test_long_products_widen_to_every_core_only_when_graphc_chooses(rt, mode, chosen, allowed, work,
                                                                    threads):
    assert rt.graphc_rt_threads_widen(mode, chosen, allowed, work) == threads


_PROBE = r"""
import ctypes, os, sys, time
import numpy as np
import graphc as G
from graphc.targets.c import runtime_lib
stat = os.environ["GRAPHC_THREADS_STAT"]
x = G.vector("x")
f = G.function([x], x * 2)
gomp = ctypes.CDLL("libgomp.so.1")   # the calling thread's setting, as the call left it
procs = gomp.omp_get_num_procs()
ticks = [0, 0]

def machine(busy_cores):
    # the next 0.25 s as /proc/stat would show it: `busy_cores` of `procs` busy with others
    total = int(0.25 * 100 * procs)          # clock ticks at 100 Hz over every core
    ticks[0] += int(total * busy_cores / procs)
    ticks[1] += total
    with open(stat, "w") as fh:
        fh.write(f"cpu  {ticks[0]} 0 0 {ticks[1] - ticks[0]} 0 0 0 0 0 0\ncpu0 1 2 3 4\n")

def call():
    assert (f(np.ones(3, "float32")) == 2).all()
    return gomp.omp_get_max_threads()

machine(0); call()
seen = []
for busy in [0, procs - 0.5, procs - 0.5, procs - 0.5, 0, 0]:
    time.sleep(0.25)
    machine(busy)
    seen.append(call())
print(procs, *seen)
"""


def test_a_simulated_busy_machine_drives_a_program_through_both_arms(tmp_path):
    """GRAPHC_THREADS_STAT: the load read from a file the test writes (fake /proc/stat)."""
    stat = tmp_path / "stat"
    stat.write_text("cpu  0 0 0 0 0 0 0 0 0 0\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GRAPHC_THREADS")}
    env.update(GRAPHC_THREADS_STAT=str(stat), PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    procs, *seen = (int(v) for v in out.stdout.split())
    if procs < 2:
        pytest.skip("one core: every choice is one thread")
    quiet1, arm0, arm1, _, quiet2, quiet3 = seen
    assert quiet1 == procs                  # nobody else: every core
    assert (arm0, arm1) == (1, procs)       # others hold all but half a core: the choice, then all
    assert quiet3 == procs                  # quiet again: every core


# --- the gemm's pieces (templates/c/_gemm_parallel.j2) -----------------------------------------

I64 = ctypes.c_int64
# (batch, M, N, K): columns cut (M <= N), rows cut, 16-blocks and pieces that do not divide the
# size, a batch of whole items, a batch smaller than the threads (items cut too), a row vector
SHAPES = [(1, 67, 3001, 77), (1, 3001, 67, 77), (1, 129, 1300, 650), (16, 64, 500, 64),
          (3, 100, 701, 90), (1, 1, 40000, 64)]


def _gemm(lib, dtype, threads, trans, a, b, shape):
    batch, m, n, k = shape
    ctypes.CDLL("libgomp.so.1").omp_set_num_threads(threads)  # this thread's count, as a call's
    scalar = ctypes.c_float if dtype == "float32" else ctypes.c_double
    fn = lib.graphc_rt_sgemm if dtype == "float32" else lib.graphc_rt_dgemm
    fn.argtypes = [ctypes.c_int, ctypes.c_int, I64, I64, I64, I64, scalar, ctypes.c_void_p, I64, I64,
                   ctypes.c_void_p, I64, I64, scalar, ctypes.c_void_p, I64, I64]
    c = np.zeros((batch, m, n), dtype)
    fn(trans[0], trans[1], batch, m, n, k, 1.0, a.ctypes.data, m if trans[0] else k, a[0].size,
       b.ctypes.data, k if trans[1] else n, b[0].size, 0.0, c.ctypes.data, n, m * n)
    return c


@pytest.fixture(scope="module")
def blas(rt):
    import scipy_openblas32 as sob
    return ctypes.CDLL(os.path.join(sob.get_lib_dir(), f"lib{sob.get_library()}.so"))


def _static_split(blas, dtype, threads, trans, a, b, shape):
    """The split before pieces: whole items per thread, or one block of 16-panels per thread,
    each a BLAS call of its own (the same calls, so the same arithmetic)."""
    batch, m, n, k = shape
    scalar = ctypes.c_float if dtype == "float32" else ctypes.c_double
    fn = blas.scipy_cblas_sgemm if dtype == "float32" else blas.scipy_cblas_dgemm
    fn.argtypes = [ctypes.c_int] * 6 + [scalar, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                        ctypes.c_int, scalar, ctypes.c_void_p, ctypes.c_int]
    c = np.zeros((batch, m, n), dtype)
    row_major, op = 101, [111, 112]
    lda, ldb, size = m if trans[0] else k, k if trans[1] else n, a.itemsize
    cut_n, d = m <= n, (n if m <= n else m)
    block = (-(-d // threads) + 15) // 16 * 16
    spans = [(0, d)] if batch >= threads else [(lo, min(lo + block, d)) for lo in range(0, d, block)]
    for bt in range(batch):
        pa, pb, pc = a[bt].ctypes.data, b[bt].ctypes.data, c[bt].ctypes.data
        for d0, d1 in spans:
            if cut_n:
                fn(row_major, op[trans[0]], op[trans[1]], m, d1 - d0, k, 1.0, pa, lda,
                   pb + (d0 * ldb if trans[1] else d0) * size, ldb, 0.0, pc + d0 * size, n)
            else:
                fn(row_major, op[trans[0]], op[trans[1]], d1 - d0, n, k, 1.0,
                   pa + (d0 if trans[0] else d0 * lda) * size, lda, pb, ldb, 0.0,
                   pc + d0 * n * size, n)
    return c


@pytest.mark.parametrize("shape", SHAPES)
def test_dynamic_pieces_give_the_static_splits_results(rt, blas, shape, dtype):
    batch, m, n, k = shape
    rng = np.random.RandomState(m + n + k)
    for trans in [(0, 0), (1, 1)]:
        a = rng.randn(batch, *((k, m) if trans[0] else (m, k))).astype(dtype)
        b = rng.randn(batch, *((n, k) if trans[1] else (k, n))).astype(dtype)
        want = np.matmul(a.transpose(0, 2, 1) if trans[0] else a, b.transpose(0, 2, 1) if trans[1] else b)
        for threads in (2, 3):  # 3: shares that do not divide any size here
            static = _static_split(blas, dtype, threads, trans, a, b, shape)
            runs = [_gemm(rt, dtype, threads, trans, a, b, shape) for _ in range(3)]
            for got in runs[1:]:  # which thread takes a piece never changes a result
                np.testing.assert_array_equal(got, runs[0])
            if dtype == "float64":
                np.testing.assert_array_equal(runs[0], static)
            else:  # the BLAS's float kernels round a narrower block's edge columns differently
                np.testing.assert_allclose(runs[0], static, rtol=1e-5, atol=1e-5 * np.sqrt(k))
            np.testing.assert_allclose(runs[0], want, rtol=1e-4 if dtype == "float32" else 1e-10,
                                       atol=1e-3 if dtype == "float32" else 1e-9)


# --- finer pieces while contended (_thread_choice.j2's graphc_rt_threads_pieces, the gemm's cut
# graphc_rt_gemm_split, the loops' gc_loop_piece) ----------------------------------------------

@pytest.mark.parametrize("mode,chosen,allowed,quiet,pieces", [
    (AUTO, 1, 2, 1, 4),          # others hold a core: four pieces per thread
    (AUTO, 2, 2, 1, 1),          # quiet: the build's one (the quiet MLP step's)
    (AUTO, 3, 4, 8, 8),          # a build that asks for more keeps them
    (FIXED, 1, 2, 1, 1),         # GRAPHC_THREADS=N: the build's
    (LEAVE, 1, 2, 1, 1),         # OMP_NUM_THREADS: the build's
])
def test_products_are_cut_finer_only_while_others_hold_cores(rt, mode, chosen, allowed, quiet, pieces):
    assert rt.graphc_rt_threads_pieces(mode, chosen, allowed, quiet) == pieces


def _split(rt, batch, m, n, k, threads, per_thread):
    block = I64()
    rt.graphc_rt_gemm_split.restype = I64
    rt.graphc_rt_gemm_split.argtypes = [I64, I64, I64, I64, ctypes.c_int, ctypes.c_int,
                                        ctypes.POINTER(I64)]
    blocks = rt.graphc_rt_gemm_split(batch, m, n, k, threads, per_thread, ctypes.byref(block))
    return blocks, block.value


@pytest.mark.parametrize("shape,quiet,contended", [
    # AlexNet's grouped conv2 forward, a chunk of 4 images: 2 groups of (128, 4*729) x 1200. Quiet
    # each thread takes a group; beside a busy core the thread sharing it held back a whole group.
    ((2, 128, 4 * 729, 1200), (1, 4 * 729), (4, 736)),
    ((1, 16, 4096, 9216), (2, 2048), (8, 512)),       # fc6 at batch 16: columns cut
    ((1, 9216, 4096, 16), (2, 4608), (8, 1152)),      # its weight gradient: rows cut
    ((16, 64, 500, 64), (1, 500), (1, 500)),          # Winograd's 16 products: whole items
    ((1, 64, 100, 64), (2, 64), (2, 64)),             # too little work for more than a piece each
    ((3, 100, 701, 90), (1, 701), (3, 240)),          # a batch between threads and pieces
])
def test_a_contended_product_is_cut_into_pieces_a_slow_thread_cannot_hold_back(rt, shape, quiet,
                                                                               contended):
    assert _split(rt, *shape, 2, 1) == quiet
    assert _split(rt, *shape, 2, 4) == contended
    blocks, block = _split(rt, *shape, 2, 4)
    d = max(shape[1], shape[2])   # the cut dimension: N where M <= N, else M
    assert block % 16 == 0 or blocks == 1 and block == d   # whole 16-panels, or whole items
    assert (blocks - 1) * block < d <= blocks * block


_CONTENDED_GEMM = r"""
import ctypes, os, sys, time
import numpy as np
import graphc as G
from graphc.targets.c import runtime_lib
stat = os.environ["GRAPHC_THREADS_STAT"]
x = G.vector("x")
f = G.function([x], x * 2)
lib = ctypes.CDLL(runtime_lib.library_path())
procs = ctypes.CDLL("libgomp.so.1").omp_get_num_procs()
I64 = ctypes.c_int64

def machine(busy_cores, ticks=[0, 0]):
    total = int(0.25 * 100 * procs)
    ticks[0] += int(total * busy_cores / procs)
    ticks[1] += total
    with open(stat, "w") as fh:
        fh.write(f"cpu  {ticks[0]} 0 0 {ticks[1] - ticks[0]} 0 0 0 0 0 0\n")

def products(dtype):
    # a grouped conv's batch of 2, a batch of 1 (columns cut), one with rows cut; odd sizes
    out = []
    for batch, m, n, k in [(2, 96, 2917, 300), (1, 33, 5000, 129), (1, 3001, 67, 77)]:
        rng = np.random.RandomState(m)
        a = rng.randn(batch, m, k).astype(dtype)
        b = rng.randn(batch, k, n).astype(dtype)
        c = np.zeros((batch, m, n), dtype)
        scalar = ctypes.c_float if dtype == "float32" else ctypes.c_double
        fn = lib.graphc_rt_sgemm if dtype == "float32" else lib.graphc_rt_dgemm
        fn.argtypes = [ctypes.c_int, ctypes.c_int, I64, I64, I64, I64, scalar, ctypes.c_void_p, I64,
                       I64, ctypes.c_void_p, I64, I64, scalar, ctypes.c_void_p, I64, I64]
        fn(0, 0, batch, m, n, k, 1.0, a.ctypes.data, k, m * k, b.ctypes.data, n, k * n, 0.0,
           c.ctypes.data, n, m * n)
        out.append((c, np.matmul(a.astype("float64"), b.astype("float64"))))
    return out

machine(0); f(np.ones(3, "float32"))
time.sleep(0.25); machine(0); f(np.ones(3, "float32"))
ctypes.CDLL("libgomp.so.1").omp_set_num_threads(procs)
quiet = {dt: products(dt) for dt in ("float32", "float64")}
quiet_pieces = lib.graphc_rt_gemm_pieces()
lib.graphc_rt_threads_for_loop.argtypes = [ctypes.c_double]
quiet_loops = lib.graphc_rt_threads_for_loop(1e8)     # quiet: the call's count, every core
time.sleep(0.25); machine(0); f(np.ones(3, "float32"))   # (the next reading spans only the sleep)
time.sleep(0.25); machine(procs - 0.5); f(np.ones(3, "float32"))
ctypes.CDLL("libgomp.so.1").omp_set_num_threads(procs)   # as a call on every core (arm 1)
busy = {dt: products(dt) for dt in ("float32", "float64")}
busy_pieces = lib.graphc_rt_gemm_pieces()
# a loop of the library on a call given one thread (arm 0): a long one takes every core
ctypes.CDLL("libgomp.so.1").omp_set_num_threads(1)
lib.graphc_rt_threads_for_loop.argtypes = [ctypes.c_double]
loops = [lib.graphc_rt_threads_for_loop(float(w)) for w in (1e5, 1e8)]
for dt in quiet:
    for (q, want), (c, _) in zip(quiet[dt], busy[dt]):
        if dt == "float64":
            assert np.array_equal(q, c)
        else:
            np.testing.assert_allclose(c, q, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-3 if dt == "float32" else 1e-9)
print(procs, quiet_pieces, busy_pieces, quiet_loops, *loops)
"""


def test_a_simulated_busy_machine_cuts_products_finer_and_widens_long_loops(tmp_path):
    """Beside a (simulated) busy core: products in 4 pieces per thread with the quiet cut's results
    (float64 bit for bit), and a long loop of the library on every core on a one-thread call."""
    stat = tmp_path / "stat"
    stat.write_text("cpu  0 0 0 0 0 0 0 0 0 0\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GRAPHC_THREADS")}
    env.update(GRAPHC_THREADS_STAT=str(stat), PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", _CONTENDED_GEMM], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    procs, quiet_pieces, busy_pieces, quiet_loop, short_loop, long_loop = (int(v) for v in out.stdout.split())
    if procs < 2:
        pytest.skip("one core: nothing is ever contended")
    assert (quiet_pieces, busy_pieces) == (1, 4)
    assert (quiet_loop, short_loop, long_loop) == (procs, 1, procs)


def test_long_loops_of_the_library_hand_out_pieces_dynamically():
    """The chunked conv's im2col / col2im / copies, LRN and pooling: no static split, in which the
    thread sharing its core with another process holds the loop back by half, and the thread
    count of a long one widened on a contended call (_loop_pieces.j2)."""
    from graphc.targets.c import runtime_build
    src = runtime_build.render_source(os.path.join(ROOT, "templates"))
    functions = {}
    name = None
    for line in src.splitlines():
        if line and not line[0].isspace() and "graphc_rt_" in line and "(" in line:
            name = line.split("graphc_rt_", 1)[1].split("(", 1)[0]
        elif name and line.lstrip().startswith("#pragma omp parallel for"):
            functions.setdefault(name, []).append(line.strip())
    wanted = [n for n in functions if "conv_chunked" in n or "lrn" in n or "pool_" in n]
    assert len(wanted) >= 2 * (3 + 2 + 6)   # both precisions: 3 convs, 2 LRNs, 6 pools
    for n in wanted:
        for pragma in functions[n]:
            assert "schedule(dynamic, gc_loop_piece(" in pragma, (n, pragma)
            assert "num_threads(gc_nt)" in pragma, (n, pragma)   # gc_loop_threads: wide if long
